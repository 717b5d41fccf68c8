"""The project's central claim, measured so that it can come out false.

Claim: a patient's *baseline-relative* kinetics (fold changes against the pre-infusion value)
predict severe CRS better than what the same serial draws say without a baseline.

Three nested, pre-specified feature sets share every non-kinetic input (landmark, clinical
covariates, therapy and disease, current grade) and one model family with fixed hyperparameters,
so the feature set is the only difference:

- **M0**: the latest absolute value of every analyte at L;
- **M1**: M0 + baseline-free serial features (slopes, serial ratios, draw counts, hours since the
  last draw, maximum since infusion, any value above the assay range) + treatments given by L;
- **M2**: M1 + baseline-relative features (the baseline itself, fold changes, maximum fold change,
  area under the fold-change curve, time since the first k-fold rise, cross-analyte fold-change
  differences and rise lags, and the reference flags).

What M2 − M1 isolates: slopes and serial ratios are within-patient log ratios between post-infusion
draws, so in a world where a patient's values scale with their own baseline they are already free of
it. M2 − M1 therefore measures what the *pre-infusion* reference adds to post-infusion within-patient
change; M1 − M0 measures what serial change (and treatment history) adds to single values.

Which set a feature belongs to is the explicit mapping below, over the names
:class:`features.transformer.KineticFeatures` produces: a feature the mapping does not know raises
:class:`UnclassifiedFeature` (and fails ``tests/test_claim.py``) until someone classifies it.

Measurement: repeated patient-grouped, outcome-stratified K-fold cross-validation (R repeats); in
every fold each set's model is fitted on the training patients and predicts the held-out ones, so
each repeat gives every row one held-out score per set. ΔAUROC (M2 − M1, M1 − M0) is computed per
repeat on that repeat's held-out scores and averaged over repeats (averaging removes the
arbitrariness of one split). Its 95% CI is a patient-level bootstrap *within* repeats: the same
resampled patients (shared weights) are applied to every repeat's held-out scores, and the
percentile interval is taken over the resamples of the repeat-averaged difference. Why this and not
a t-interval over the R repeat-level differences: the repeats reuse the same patients, so their
spread measures only how the split was drawn, not which patients were sampled; a t-interval over
them is far too narrow (it shrinks to zero with more repeats). As a check that also carries
training-set variability, each contrast also gets the corrected repeated-CV t-interval of
Bouckaert & Frank (2004; Nadeau & Bengio's variance correction 1/(R·K) + n_test/n_train over the
R·K fold-level differences).

Pure functions: arrays and frames in, arrays and dicts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.kinetics import COVARIATE_ANALYTE_FEATURES, EVENT_FEATURES, KINETIC_FEATURES
from models.bootstrap import percentile_ci, weight_blocks
from models.folds import patient_folds
from models.metrics import auroc, auroc_weighted

SETS = ("M0", "M1", "M2")
CONTRASTS = (("M1", "M0"), ("M2", "M1"), ("M2", "M0"))
HEADLINE = ("M2", "M1")  # the claim: baseline-relative features add to baseline-free serial ones

# --- the partition: every feature name the transformer makes lands in exactly one tier -------------
# "shared" goes into all three sets; M0 ⊂ M1 ⊂ M2 adds its tier to the one before.
PER_ANALYTE: dict[str, str] = {
    "latest": "M0",
    "latest_censored": "M0",                # the latest value is a bound: part of reading it
    "serial_log2_ratio_per24h": "M1",
    "slope_log2_per24h": "M1",
    "n_draws": "M1",
    "hours_since_last": "M1",
    "max_since_infusion": "M1",
    "any_above_uloq": "M1",                 # any draw so far above range: history, no baseline
    "baseline": "M2",
    "has_baseline": "M2",
    "ref_is_fallback": "M2",
    "reference_censored": "M2",
    "log2_fc": "M2",
    "max_log2_fc": "M2",
    "hours_since_kfold_rise": "M2",         # k-fold over the reference
    "auc_log2_fc_days": "M2",
}
COVARIATE_ANALYTE: dict[str, str] = {"latest": "M0", "max_since_infusion": "M1", "n_draws": "M1"}
EVENT: dict[str, str] = {"given": "M1", "doses": "M1", "hours_since_first_dose": "M1",
                         "hours_since_last_dose": "M1"}
CROSS: dict[str, str] = {"log2_fc_minus": "M2", "rise_lag_vs": "M2"}   # fold changes of two analytes
PATIENT_STATE: dict[str, str] = {"current_grade": "shared"}            # clinical state at L, not a lab


class UnclassifiedFeature(ValueError):
    """A feature name the claim's partition does not know: classify it in models/claim.py."""


def feature_tiers(features: Any) -> dict[str, str]:
    """Tier ("shared", "M0", "M1", "M2") of every output column of a *fitted* KineticFeatures."""
    spec = features.spec()
    known: dict[str, str] = {"landmark_hours": "shared"}
    known |= {c: "shared" for c in features.numeric_covariates}
    for c in features.categorical:
        known |= {f"{c}={v}": "shared" for v in features.categories_.get(c, [])}
    known |= {name: tier for name, tier in PATIENT_STATE.items()}
    for a in spec.analytes:
        known |= {f"{a}__{f}": PER_ANALYTE[f] for f in KINETIC_FEATURES if f in PER_ANALYTE}
    for a in spec.covariate_analytes:
        known |= {f"{a}__{f}": COVARIATE_ANALYTE[f] for f in COVARIATE_ANALYTE_FEATURES if f in COVARIATE_ANALYTE}
    for a, b in spec.pairs:
        known |= {f"{a}__log2_fc_minus_{b}": CROSS["log2_fc_minus"], f"{a}__rise_lag_vs_{b}_hours": CROSS["rise_lag_vs"]}
    for e in spec.event_types:
        known |= {f"{e}__{f}": EVENT[f] for f in EVENT_FEATURES if f in EVENT}
    names = [str(n) for n in features.get_feature_names_out()]
    missing = [n for n in names if n not in known]
    if missing:
        raise UnclassifiedFeature(f"{len(missing)} feature(s) not in the claim's partition: {missing[:8]}; "
                                  "add each to M0, M1 or M2 in models/claim.py")
    return {n: known[n] for n in names}


def nested_sets(tiers: dict[str, str]) -> dict[str, list[str]]:
    """{"M0": shared + M0, "M1": ... + M1, "M2": ... + M2}, each in the transformer's column order."""
    order = {"shared": 0, "M0": 0, "M1": 1, "M2": 2}
    return {s: [n for n, t in tiers.items() if order[t] <= i] for i, s in enumerate(SETS)}


def real_baseline_rows(X: pd.DataFrame, analytes: list[str]) -> np.ndarray:
    """Rows in which every core analyte drawn by L has a real pre-infusion baseline (no fallback
    reference), and at least one does."""
    drawn = np.column_stack([X[f"{a}__n_draws"].to_numpy() > 0 for a in analytes])
    based = np.column_stack([X[f"{a}__has_baseline"].to_numpy() == 1 for a in analytes])
    return (based | ~drawn).all(axis=1) & based.any(axis=1)


# --- repeated cross-validation ---------------------------------------------------------------------

@dataclass
class ClaimConfig:
    """Settings of the measurement; the defaults live in params.yaml `claim` (:meth:`from_params`)."""
    repeats: int
    folds: int
    seed: int
    n_rounds: int
    xgboost: dict[str, Any]
    n_bootstrap: int
    min_event_patients: int
    level: float = 0.95

    @classmethod
    def from_params(cls, c: dict[str, Any]) -> ClaimConfig:
        return cls(repeats=int(c["repeats"]), folds=int(c["folds"]), seed=int(c["seed"]),
                   n_rounds=int(c["n_rounds"]), xgboost=dict(c["xgboost"]), n_bootstrap=int(c["n_bootstrap"]),
                   min_event_patients=int(c["min_event_patients"]), level=float(c.get("level", 0.95)))


def _booster_params(cfg: ClaimConfig, seed: int) -> dict[str, Any]:
    return {"objective": "binary:logistic", "tree_method": "hist", "seed": seed, "nthread": 1, **cfg.xgboost}


def repeated_cv(X: pd.DataFrame, y: np.ndarray, patient_id: np.ndarray, sets: dict[str, list[str]],
                cfg: ClaimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Held-out margins (repeats × sets × rows) and fold numbers (repeats × rows).

    In repeat r the folds are patient-grouped and outcome-stratified with seed `cfg.seed + r`;
    every set is fitted on the same training rows with the same booster settings and seed.
    """
    y = np.asarray(y).astype(int)
    pid = pd.Series(np.asarray(patient_id))
    margins = np.full((cfg.repeats, len(sets), len(y)), np.nan)
    folds = np.zeros((cfg.repeats, len(y)), dtype=int)
    arrays = {s: X[cols].to_numpy("float64") for s, cols in sets.items()}
    for r in range(cfg.repeats):
        folds[r] = patient_folds(pid, pd.Series(y), cfg.folds, cfg.seed + r)
        params = _booster_params(cfg, cfg.seed + r)
        for k in np.unique(folds[r]):
            train, test = folds[r] != k, folds[r] == k
            for j, (s, cols) in enumerate(sets.items()):
                A = arrays[s]
                booster = xgb.train(params, xgb.DMatrix(A[train], label=y[train], feature_names=cols, missing=np.nan),
                                    num_boost_round=cfg.n_rounds)
                margins[r, j, test] = booster.predict(xgb.DMatrix(A[test], feature_names=cols, missing=np.nan),
                                                      output_margin=True)
    return margins, folds


# --- summary ---------------------------------------------------------------------------------------

def _corrected_t(diffs: np.ndarray, n_folds: int, level: float) -> tuple[float, float]:
    """Bouckaert & Frank corrected repeated-CV t-interval over fold-level differences (NaN skipped)."""
    from scipy.stats import t as student

    d = diffs[~np.isnan(diffs)]
    if d.size < 2:
        return float("nan"), float("nan")
    var = d.var(ddof=1) * (1 / d.size + 1 / (n_folds - 1))
    half = student.ppf(0.5 + level / 2, d.size - 1) * np.sqrt(var)
    return float(d.mean() - half), float(d.mean() + half)


def subsets_of(rows: pd.DataFrame, with_baseline: np.ndarray) -> dict[str, np.ndarray]:
    """Row masks of every reported subset: pooled, per landmark, per therapy, real baseline."""
    out = {"pooled": np.ones(len(rows), dtype=bool)}
    for L in sorted(rows["landmark_hours"].unique()):
        out[f"landmark {L:g}h"] = (rows["landmark_hours"] == L).to_numpy()
    if "therapy" in rows:
        therapy = rows["therapy"].astype(str).to_numpy()
        for t in sorted(set(therapy)):
            out[f"therapy {t}"] = therapy == t
    out["with real baseline"] = np.asarray(with_baseline, dtype=bool)
    return out


def summarise(margins: np.ndarray, folds: np.ndarray, y: np.ndarray, patient_id: np.ndarray,
              subsets: dict[str, np.ndarray], cfg: ClaimConfig, set_names: tuple[str, ...] = SETS) -> dict[str, Any]:
    """Per subset: counts (rows, patients, event rows, event patients), AUROC of each set (mean over
    repeats), and each contrast's ΔAUROC with its bootstrap and corrected-t CIs. Subsets with fewer
    than `cfg.min_event_patients` patients with, or without, an event are suppressed."""
    y = np.asarray(y).astype(int)
    pid = np.asarray(patient_id)
    n_rep = margins.shape[0]
    idx = {s: i for i, s in enumerate(set_names)}
    out: dict[str, Any] = {}
    kept: dict[str, np.ndarray] = {}
    for name, mask in subsets.items():
        sub_pid, sub_y = pid[mask], y[mask]
        event_patients = int(pd.unique(sub_pid[sub_y == 1]).size)
        entry: dict[str, Any] = {"n_rows": int(mask.sum()), "n_patients": int(pd.unique(sub_pid).size),
                                 "n_event_rows": int(sub_y.sum()), "n_event_patients": event_patients}
        non_event_patients = int(pd.unique(sub_pid[sub_y == 0]).size)
        if min(event_patients, non_event_patients) < cfg.min_event_patients:
            entry["suppressed"] = f"fewer than {cfg.min_event_patients} patients with (or without) an event"
        else:
            kept[name] = np.flatnonzero(mask)
        out[name] = entry
    # point estimates: per repeat, AUROC of each set on its held-out scores
    point = {name: np.array([[auroc(y[rows], margins[r, j, rows]) for j in range(len(set_names))]
                             for r in range(n_rep)]) for name, rows in kept.items()}   # repeats × sets
    # bootstrap: one set of patient weights for every repeat, set and subset
    draws: dict[str, list[np.ndarray]] = {name: [] for name in kept}
    for W in weight_blocks(pid, cfg.n_bootstrap, cfg.seed):
        for name, rows in kept.items():
            Wr, yr = W[:, rows], y[rows]
            draws[name].append(np.stack([np.stack([auroc_weighted(yr, margins[r, j, rows], Wr)
                                                   for j in range(len(set_names))], axis=1)
                                         for r in range(n_rep)], axis=1))   # resamples × repeats × sets
    for name, rows in kept.items():
        boot = np.concatenate(draws[name], axis=0)
        entry = out[name]
        for s in set_names:
            entry[f"auroc.{s}"] = float(point[name][:, idx[s]].mean())
        for a, b in CONTRASTS:
            if a not in idx or b not in idx:
                continue
            per_repeat = point[name][:, idx[a]] - point[name][:, idx[b]]
            lo, hi = percentile_ci((boot[:, :, idx[a]] - boot[:, :, idx[b]]).mean(axis=1), cfg.level)
            fold_d = np.array([auroc(y[rows][f == k], margins[r, idx[a], rows][f == k])
                               - auroc(y[rows][f == k], margins[r, idx[b], rows][f == k])
                               for r in range(n_rep) for f in [folds[r, rows]] for k in np.unique(f)])
            t_lo, t_hi = _corrected_t(fold_d, int(folds.max()) + 1, cfg.level)
            key = f"delta_auroc.{a}_minus_{b}"
            entry[key] = float(per_repeat.mean())
            entry[f"{key}_ci_low"], entry[f"{key}_ci_high"] = float(lo), float(hi)
            entry[f"{key}_repeat_sd"] = float(per_repeat.std(ddof=1)) if n_rep > 1 else float("nan")
            entry[f"{key}_corrected_t_ci_low"], entry[f"{key}_corrected_t_ci_high"] = t_lo, t_hi
    return out


def claim_found(entry: dict[str, Any], contrast: tuple[str, str] = HEADLINE) -> bool | None:
    """True when the contrast's bootstrap CI lies above 0; False when it does not; None if suppressed."""
    key = f"delta_auroc.{contrast[0]}_minus_{contrast[1]}_ci_low"
    return None if key not in entry else bool(entry[key] > 0)


def evaluate_claim(rows: pd.DataFrame, X: pd.DataFrame, tiers: dict[str, str], analytes: list[str],
                   cfg: ClaimConfig) -> dict[str, Any]:
    """The whole measurement on training rows `rows` (patient_id, landmark_hours, label, therapy)
    and their model inputs `X` (same order): design, feature sets, per-subset results, headline."""
    sets = nested_sets(tiers)
    y = rows["label"].to_numpy().astype(int)
    pid = rows["patient_id"].astype(str).to_numpy()
    margins, folds = repeated_cv(X, y, pid, sets, cfg)
    subsets = subsets_of(rows, real_baseline_rows(X, analytes))
    results = summarise(margins, folds, y, pid, subsets, cfg)
    pooled = results["pooled"]
    headline = {k: v for k, v in pooled.items() if k.startswith("delta_auroc.")}
    return {
        "design": {
            "question": "do baseline-relative kinetics (M2) add to baseline-free serial features (M1), and "
                        "serial features to the latest absolute values (M0)?",
            "model": "XGBoost, fixed hyperparameters (no tuning), the same for every feature set",
            "xgboost": {**cfg.xgboost, "n_rounds": cfg.n_rounds},
            "cross_validation": f"{cfg.repeats} repeats x {cfg.folds}-fold, patient-grouped, outcome-stratified",
            "estimate": "mean over repeats of the per-repeat ΔAUROC on held-out scores",
            "ci": f"patient bootstrap within repeats ({cfg.n_bootstrap} resamples shared by every repeat, set and "
                  "subset), percentile interval of the repeat-averaged ΔAUROC",
            "ci_check": "corrected repeated-CV t-interval (Bouckaert & Frank 2004) over fold-level ΔAUROC",
            "suppression": f"subsets with fewer than {cfg.min_event_patients} patients with (or without) an event",
            "real_baseline_rows": "every core analyte drawn by L has a pre-infusion baseline, and at least one does",
            "transformer": "category levels learnt once on all rows (no outcome information); features are "
                           "computed per row from that row's own data",
        },
        "feature_sets": {s: {"n_features": len(cols), "added": [c for c in cols if tiers[c] == s]}
                         for s, cols in sets.items()} | {"shared": [c for c, t in tiers.items() if t == "shared"]},
        "subsets": results,
        "headline": headline,
        "claim_found": claim_found(pooled),
        "serial_adds_to_absolute": claim_found(pooled, ("M1", "M0")),
    }


def flat_headline(claim: dict[str, Any]) -> dict[str, float]:
    """The pooled deltas (with CIs) as flat `claim.<key>` numbers for metrics_full.json."""
    return {f"claim.{k}": float(v) for k, v in claim["headline"].items()}
