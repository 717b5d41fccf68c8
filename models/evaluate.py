"""Evaluation on held-out patients: every measure per landmark and pooled, with patient-level
bootstrap 95% CIs; the kinetics-vs-single-values comparison as a paired bootstrap ΔAUROC;
decision curves; subgroups with small-count suppression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.bootstrap import bootstrap_ci
from models.metrics import (
    auprc,
    auroc,
    brier,
    calibration_curve,
    calibration_slope_intercept,
    confusion_at,
    net_benefit,
    net_benefit_treat_all,
)

# column in the out-of-fold table → (short name, readable name, is a probability)
MODELS: dict[str, tuple[str, str, bool]] = {
    "probability": ("xgb_kinetics", "XGBoost, baseline-relative kinetics (calibrated)", True),
    "p_absolute_xgb": ("xgb_absolute", "XGBoost, absolute values only", True),
    "p_single_value_lr": ("lr_single_value", "Logistic regression, single absolute values at L", True),
    "p_prevalence": ("prevalence_only", "Prevalence only", True),
    "m_easix": ("m_easix", "m-EASIX as published (LDH x CRP[mg/dL] / PLT)", False),
    "easix": ("easix", "EASIX as published (LDH x creatinine / PLT)", False),
}
PRIMARY = "probability"
COMPARATORS = ["p_single_value_lr", "p_absolute_xgb", "m_easix", "easix"]
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
            if col != "p_prevalence":
                slope, intercept = calibration_slope_intercept(yy, ss)
                out[f"{name}.calibration_slope"], out[f"{name}.calibration_intercept"] = slope, intercept
        if col != PRIMARY and PRIMARY in scores:
            both = ok & ~np.isnan(scores[PRIMARY])
            out[f"delta_auroc.xgb_kinetics_minus_{name}"] = auroc(y[both], scores[PRIMARY][both]) - auroc(y[both], s[both])
    if threshold is not None and PRIMARY in scores:
        for k, v in confusion_at(y, scores[PRIMARY], threshold).items():
            out[f"xgb_kinetics.{k}_at_operating_point"] = v
    return out


def block_metrics(frame: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Point estimates and patient-level bootstrap CIs for one set of rows (a landmark, or pooled)."""
    y = frame["label"].to_numpy().astype(int)
    cols = _present(frame)
    scores = {c: frame[c].to_numpy(dtype="float64") for c in cols}
    threshold = frame["threshold"].to_numpy() if "threshold" in frame else None
    point = point_metrics(y, scores, threshold)
    ci = bootstrap_ci(frame["patient_id"].to_numpy(),
                      lambda r: point_metrics(y[r], {c: s[r] for c, s in scores.items()},
                                              None if threshold is None else threshold[r]),
                      n_boot, seed)
    out: dict[str, Any] = {"n_rows": int(len(frame)), "n_patients": int(frame["patient_id"].nunique()),
                           "n_events": int(y.sum()), "prevalence": float(y.mean()) if len(y) else float("nan")}
    for key, value in point.items():
        out[key] = value
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = lo, hi
    for col in ("m_easix", "easix"):
        if col in frame:
            out[f"{MODELS[col][0]}.n_rows_with_inputs"] = int(frame[col].notna().sum())
    return out


def subgroup_metrics(frame: pd.DataFrame, column: str, n_boot: int, seed: int, min_events: int) -> dict[str, Any]:
    """Primary-model AUROC per subgroup; estimates suppressed below `min_events` events or non-events."""
    out: dict[str, Any] = {}
    for value, g in frame.groupby(column, sort=True):
        y = g["label"].to_numpy().astype(int)
        entry: dict[str, Any] = {"n_patients": int(g["patient_id"].nunique()), "n_rows": int(len(g)),
                                 "n_events": int(y.sum())}
        if y.sum() < min_events or (len(y) - y.sum()) < min_events:
            entry["suppressed"] = f"fewer than {min_events} events or non-events"
        else:
            p = g[PRIMARY].to_numpy()
            entry["auroc"] = auroc(y, p)
            lo, hi = bootstrap_ci(g["patient_id"].to_numpy(), lambda r, y=y, p=p: {"a": auroc(y[r], p[r])},
                                  n_boot, seed).get("a", (float("nan"), float("nan")))
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


def evaluate_predictions(oof: pd.DataFrame, n_boot: int, seed: int, min_subgroup_events: int = 10,
                         progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """`progress` (optional) is called with 1 after each block (see :func:`evaluation_steps`)."""
    step = progress or (lambda n: None)
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
        if is_prob and col != "p_prevalence":
            table[name] = net_benefit(y, oof[col].to_numpy(), thresholds)
    return table


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
