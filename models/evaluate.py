"""Evaluation on held-out patients: every measure per landmark and pooled, with patient-level
bootstrap 95% CIs; paired bootstrap ΔAUROC of the primary model against each comparator; decision
curves; subgroups with small-count suppression.

Counts say what they count: rows (patient × landmark) and patients, events by row and by patient;
subgroups are suppressed by the number of *patients* with (and without) an event. The bootstrap
resamples patients (all their landmark rows together) as row weights: one set of weights per block
of rows serves every model and measure (models/bootstrap.py), with the same draws as resampling rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.baselines import case_mix_prevalence
from models.bootstrap import bootstrap_ci_weighted, bootstrap_draws, percentile_ci
from models.metrics import (
    auprc,
    auprc_weighted,
    auroc,
    auroc_weighted,
    brier,
    brier_weighted,
    calibration_curve,
    calibration_slope_intercept,
    calibration_slope_intercept_weighted,
    confusion_at,
    confusion_at_weighted,
    net_benefit,
    net_benefit_treat_all,
)

# column in the out-of-fold table → (short name, readable name, is a probability)
MODELS: dict[str, tuple[str, str, bool]] = {
    "probability": ("xgb_kinetics", "XGBoost, baseline-relative kinetics (calibrated)", True),
    "p_absolute_xgb": ("xgb_absolute", "XGBoost, absolute values only", True),
    "p_single_value_lr": ("lr_single_value", "Logistic regression, single absolute values at L", True),
    "p_case_mix": ("case_mix_prevalence", "Product case-mix alone: outcome rate by therapy x landmark in the "
                                          "training folds", True),
    "p_prevalence": ("prevalence_only", "Prevalence only", True),
    "m_easix": ("m_easix", "m-EASIX as published (LDH x CRP[mg/dL] / PLT), latest values at L", False),
    "m_easix_day_minus1": ("m_easix_day_minus1", "m-EASIX at day -1, its published time (Pennisi 2021)", False),
    "m_easix_day_plus1": ("m_easix_day_plus1", "m-EASIX at day +1, its published time (Pennisi 2021)", False),
    "easix": ("easix", "EASIX as published (LDH x creatinine / PLT)", False),
}
PRIMARY = "probability"
COMPARATORS = ["p_single_value_lr", "p_absolute_xgb", "p_case_mix", "m_easix", "m_easix_day_minus1",
               "m_easix_day_plus1", "easix"]
CONSTANT = {"p_prevalence"}  # one value for every row of a fold: no calibration slope
# Predictions are made under usual care: treatments given on clinical grounds before L are predictors.
# The treatment-naive rows (neither of these given at or before L) are also reported on their own.
NAIVE_OF = ("tocilizumab", "corticosteroids")
NAIVE_DEFINITION = ("no tocilizumab and no corticosteroid recorded at or before the landmark; rows whose "
                    "treatments were not recorded do not count as naive")


def treatment_naive(matrix: pd.DataFrame) -> np.ndarray:
    """Per landmark row: known to have had neither tocilizumab nor a corticosteroid at or before L.

    Unknown treatment (no events table: NaN) is not naive. A treatment the feature set does not
    read (e.g. removed from featurize.event_types) is unknown too, so no row is naive.
    """
    naive = np.ones(len(matrix), dtype=bool)
    for event in NAIVE_OF:
        col = f"{event}__given"
        if col not in matrix:
            return np.zeros(len(matrix), dtype=bool)
        naive &= pd.to_numeric(matrix[col], errors="coerce").to_numpy("float64") == 0
    return naive


def _present(frame: pd.DataFrame) -> list[str]:
    return [c for c in MODELS if c in frame and frame[c].notna().any()]


def point_metrics(y: np.ndarray, scores: dict[str, np.ndarray], threshold: np.ndarray | None) -> dict[str, float]:
    """Flat dict `<model>.<measure>` for one set of rows."""
    out: dict[str, float] = {}
    for col, s in scores.items():
        name, _, is_prob = MODELS[col]
        ok = ~np.isnan(s)
        yy, ss = y[ok], s[ok]
        out[f"{name}.auroc"] = auroc(yy, ss)
        out[f"{name}.auprc"] = auprc(yy, ss)
        if is_prob:
            out[f"{name}.brier"] = brier(yy, ss)
            if col not in CONSTANT:
                slope, intercept = calibration_slope_intercept(yy, ss)
                out[f"{name}.calibration_slope"], out[f"{name}.calibration_intercept"] = slope, intercept
        if col != PRIMARY and PRIMARY in scores:
            both = ok & ~np.isnan(scores[PRIMARY])
            out[f"delta_auroc.xgb_kinetics_minus_{name}"] = auroc(y[both], scores[PRIMARY][both]) - auroc(y[both], s[both])
    if threshold is not None and PRIMARY in scores:
        for k, v in confusion_at(y, scores[PRIMARY], threshold).items():
            out[f"xgb_kinetics.{k}_at_operating_point"] = v
    return out


def _columns(W: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return W if mask.all() else W[:, mask]


def weighted_metrics(y: np.ndarray, scores: dict[str, np.ndarray], threshold: np.ndarray | None,
                     W: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`point_metrics` for every resample (row of W) at once: name → one value per resample."""
    out: dict[str, np.ndarray] = {}
    primary_auroc: np.ndarray | None = None
    for col, s in scores.items():
        name, _, is_prob = MODELS[col]
        ok = ~np.isnan(s)
        yy, ss, Wk = y[ok], s[ok], _columns(W, ok)
        out[f"{name}.auroc"] = auroc_weighted(yy, ss, Wk)
        if col == PRIMARY and ok.all():
            primary_auroc = out[f"{name}.auroc"]
        out[f"{name}.auprc"] = auprc_weighted(yy, ss, Wk)
        if is_prob:
            out[f"{name}.brier"] = brier_weighted(yy, ss, Wk)
            if col not in CONSTANT:
                out[f"{name}.calibration_slope"], out[f"{name}.calibration_intercept"] = (
                    calibration_slope_intercept_weighted(yy, ss, Wk))
    if PRIMARY in scores:
        p = scores[PRIMARY]
        for col, s in scores.items():
            if col == PRIMARY:
                continue
            both = ~np.isnan(s) & ~np.isnan(p)
            Wb = _columns(W, both)
            mine = primary_auroc if (both.all() and primary_auroc is not None) else auroc_weighted(y[both], p[both], Wb)
            out[f"delta_auroc.xgb_kinetics_minus_{MODELS[col][0]}"] = mine - auroc_weighted(y[both], s[both], Wb)
        if threshold is not None:
            for k, v in confusion_at_weighted(y, p, threshold, W).items():
                out[f"xgb_kinetics.{k}_at_operating_point"] = v
    return out


def _event_patients(patient_id: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    """(patients with an event row, patients with a non-event row)."""
    return int(pd.unique(patient_id[y == 1]).size), int(pd.unique(patient_id[y == 0]).size)


def block_metrics(frame: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Point estimates and patient-level bootstrap CIs for one set of rows (a landmark, or pooled)."""
    y = frame["label"].to_numpy().astype(int)
    pid = frame["patient_id"].to_numpy()
    cols = _present(frame)
    scores = {c: frame[c].to_numpy(dtype="float64") for c in cols}
    threshold = frame["threshold"].to_numpy(dtype="float64") if "threshold" in frame else None
    point = point_metrics(y, scores, threshold)
    draws = bootstrap_draws(pid, lambda W: weighted_metrics(y, scores, threshold, W), n_boot, seed)
    event_patients, _ = _event_patients(pid, y)
    out: dict[str, Any] = {"n_rows": int(len(frame)), "n_patients": int(pd.unique(pid).size),
                           "n_events": int(y.sum()), "n_event_patients": event_patients,
                           "prevalence": float(y.mean()) if len(y) else float("nan")}
    for key, value in point.items():
        out[key] = value
        lo, hi = percentile_ci(draws[key]) if key in draws else (float("nan"), float("nan"))
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = float(lo), float(hi)
    for col in ("m_easix", "m_easix_day_minus1", "m_easix_day_plus1", "easix"):
        if col in frame:
            out[f"{MODELS[col][0]}.n_rows_with_inputs"] = int(frame[col].notna().sum())
    return out


def subgroup_metrics(frame: pd.DataFrame, column: str, n_boot: int, seed: int, min_events: int) -> dict[str, Any]:
    """Primary-model AUROC per subgroup; suppressed below `min_events` patients with an event (or
    without one): a subgroup of 3 patients with 9 event rows has 3 events' worth of information."""
    out: dict[str, Any] = {}
    for value, g in frame.groupby(column, sort=True):
        y = g["label"].to_numpy().astype(int)
        pid = g["patient_id"].to_numpy()
        event_patients, non_event_patients = _event_patients(pid, y)
        entry: dict[str, Any] = {"n_patients": int(pd.unique(pid).size), "n_rows": int(len(g)),
                                 "n_events": int(y.sum()), "n_event_patients": event_patients}
        if event_patients < min_events or non_event_patients < min_events:
            entry["suppressed"] = f"fewer than {min_events} patients with (or without) an event"
        else:
            p = g[PRIMARY].to_numpy(dtype="float64")
            entry["auroc"] = auroc(y, p)
            lo, hi = bootstrap_ci_weighted(pid, lambda W, y=y, p=p: {"a": auroc_weighted(y, p, W)},
                                           n_boot, seed)["a"]
            entry["auroc_ci_low"], entry["auroc_ci_high"] = lo, hi
            entry["observed_rate"] = float(y.mean())
            entry["mean_predicted"] = float(p.mean())
        out[str(value)] = entry
    return out


def evaluation_steps(oof: pd.DataFrame) -> int:
    """Blocks :func:`evaluate_predictions` reports progress for: pooled, each landmark, each subgroup
    column and the treatment-naive rows."""
    return (1 + int(oof["landmark_hours"].nunique()) + sum(c in oof for c in ("therapy", "disease"))
            + int("treatment_naive" in oof))


def with_case_mix(oof: pd.DataFrame) -> pd.DataFrame:
    """The OOF table with `p_case_mix` (product case-mix alone, from each fold's training rows) when
    fold assignments and therapy are known; unchanged otherwise (e.g. external validation)."""
    if "p_case_mix" in oof or not {"fold", "therapy"} <= set(oof) or not (oof["fold"].to_numpy() >= 0).any():
        return oof
    return oof.assign(p_case_mix=case_mix_prevalence(oof))


def hours_of_label(label: object) -> float:
    """The hours of a landmark label as :func:`evaluate_predictions` writes it ('24h' -> 24.0); inf for
    any other label (sorts after the landmarks)."""
    try:
        return float(str(label).rstrip("h"))
    except ValueError:
        return float("inf")


def evaluate_predictions(oof: pd.DataFrame, n_boot: int, seed: int, min_subgroup_events: int = 10,
                         progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`progress` (optional) is called with 1 after each block (see :func:`evaluation_steps`)."""
    step = progress or (lambda n: None)
    oof = with_case_mix(oof)
    metrics: dict[str, Any] = {"pooled": block_metrics(oof, n_boot, seed), "by_landmark": {}}
    step(1)
    for landmark, frame in oof.groupby("landmark_hours"):
        metrics["by_landmark"][f"{landmark:g}h"] = block_metrics(frame, n_boot, seed)
        step(1)
    metrics["subgroups"] = {}
    for c in ("therapy", "disease"):
        if c in oof:
            metrics["subgroups"][c] = subgroup_metrics(oof, c, n_boot, seed, min_subgroup_events)
            step(1)
    if "treatment_naive" in oof:
        naive = oof[oof["treatment_naive"].to_numpy(dtype=bool)]
        block: dict[str, Any] = {"definition": NAIVE_DEFINITION, "n_rows": int(len(naive)),
                                 "share_of_rows": float(len(naive) / len(oof)) if len(oof) else float("nan")}
        y = naive["label"].to_numpy()
        if len(naive) and 0 < y.sum() < len(y):
            block["pooled"] = block_metrics(naive, n_boot, seed)
            block["by_landmark"] = {f"{landmark:g}h": block_metrics(frame, n_boot, seed)
                                    for landmark, frame in naive.groupby("landmark_hours")}
        else:
            block["not_estimable"] = "needs treatment-naive rows with and without the outcome"
        metrics["treatment_naive"] = block
        step(1)
    metrics["models"] = {MODELS[c][0]: MODELS[c][1] for c in _present(oof)}
    return metrics


def decision_curve(oof: pd.DataFrame, thresholds: np.ndarray) -> pd.DataFrame:
    y = oof["label"].to_numpy().astype(int)
    table = pd.DataFrame({"threshold": thresholds, "treat_all": net_benefit_treat_all(y, thresholds),
                          "treat_none": 0.0})
    for col in _present(oof):
        name, _, is_prob = MODELS[col]
        if is_prob and col not in CONSTANT:
            table[name] = net_benefit(y, oof[col].to_numpy(), thresholds)
    return table


def decision_curves_by_landmark(oof: pd.DataFrame, thresholds: np.ndarray, n_boot: int, seed: int) -> pd.DataFrame:
    """Pooled and per-landmark decision curves of every probability model with bootstrap bands."""
    from models.decision_curves import decision_curves

    oof = with_case_mix(oof)
    models = {c: MODELS[c][0] for c in _present(oof) if MODELS[c][2] and c not in CONSTANT}
    return decision_curves(oof, models, thresholds, n_boot, seed)


def curve_tables(oof: pd.DataFrame, bins: int = 10) -> dict[str, pd.DataFrame]:
    """Plot data for the primary model: ROC, PR and calibration (DVC plots diff compares these)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y, p = oof["label"].to_numpy().astype(int), oof[PRIMARY].to_numpy()
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    mean_p, observed, count = calibration_curve(y, p, bins)
    return {"roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}),
            "pr": pd.DataFrame({"recall": recall, "precision": precision}),
            "calibration": pd.DataFrame({"mean_predicted": mean_p, "observed": observed, "n": count})}
