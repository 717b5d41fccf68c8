"""Site recalibration: a trained model's calibration refitted on a hospital's own labelled cohort.

A model trained elsewhere usually ranks a new site's patients about as well as it did at home, but
its probabilities are off (another case mix, assay, grading habit). Recalibration keeps the booster
and the feature state and refits only the map from the booster's **margin** (raw log-odds) to a
probability:

- ``logistic`` (default): p = σ(a + b · margin), intercept *and* slope. For a model calibrated by a
  sigmoid (the project's default), logit(p_old) = s · margin + c is linear in the margin, so this
  is exactly the classic logistic recalibration logit(p_new) = α + β · logit(p_old) (a = α + β·c,
  b = β·s), written on the margin; for an isotonic model it replaces the step function by a
  two-parameter logistic map;
- ``intercept`` (recalibration in the large): the old map with its intercept shifted so that the
  mean predicted risk matches the observed rate; the slope is kept. Two parameters need events:
  with few events at the site this is the safer update. Needs a sigmoid (or identity) calibration.

Honesty about the after-numbers: a map fitted on a cohort and judged on the same cohort looks better
than it will be. The "after" figures are therefore **cross-fitted**: the cohort is split into K
patient-grouped, outcome-stratified folds, each fold's probabilities come from a map fitted on the
other folds. The in-sample figures are reported beside them, labelled optimistic. The map that is
registered is fitted on all rows. CIs: patient-level bootstrap, the same resamples for before and
after, so the Brier difference is paired.

Pure functions: arrays in, dicts and arrays out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.bootstrap import bootstrap_draws, percentile_ci
from models.calibration import apply_calibration, fit_calibration
from models.folds import patient_folds
from models.metrics import (
    auroc,
    auroc_weighted,
    brier,
    brier_weighted,
    calibration_slope_intercept,
    calibration_slope_intercept_weighted,
)

METHODS = ("logistic", "intercept")
MEASURES = ("calibration_intercept", "calibration_slope", "brier", "auroc", "mean_predicted", "observed_rate")


def linear_map(calibration: dict[str, Any]) -> tuple[float, float]:
    """(slope, intercept) of logit(p) on the margin for a sigmoid or identity calibration."""
    method = calibration.get("method", "sigmoid")
    if method == "identity":
        return 1.0, 0.0
    if method == "sigmoid":
        return float(calibration["slope"]), float(calibration["intercept"])
    raise ValueError(f"recalibration in the large keeps the model's slope, which a {method!r} calibration does not "
                     "have; use the logistic method (intercept and slope)")


def fit_recalibration(margin: np.ndarray, y: np.ndarray, current: dict[str, Any], method: str = "logistic") -> dict[str, Any]:
    """The new calibration (a sigmoid on the margin, the form models.calibration applies)."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y).astype(int)
    if method not in METHODS:
        raise ValueError(f"recalibration method must be one of {METHODS}, not {method!r}")
    if np.unique(y).size < 2:
        raise ValueError("recalibration needs rows with and without the outcome")
    if method == "logistic":
        new = fit_calibration(margin, y, "sigmoid")
        return {"method": "sigmoid", "slope": float(new["slope"]), "intercept": float(new["intercept"])}
    slope, intercept = linear_map(current)
    shift = calibration_slope_intercept(y, apply_calibration(margin, current))[1]
    return {"method": "sigmoid", "slope": slope, "intercept": intercept + shift}


def cross_fitted_probability(margin: np.ndarray, y: np.ndarray, patient_id: np.ndarray, current: dict[str, Any],
                             method: str, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(probability, fold) for every row, each from a map fitted on the other folds' patients."""
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y).astype(int)
    fold = patient_folds(pd.Series(np.asarray(patient_id)), pd.Series(y), folds, seed)
    p = np.full(len(y), np.nan)
    for k in np.unique(fold):
        train, test = fold != k, fold == k
        p[test] = apply_calibration(margin[test], fit_recalibration(margin[train], y[train], current, method))
    return p, fold


def _measures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    slope, intercept = calibration_slope_intercept(y, p)
    return {"calibration_intercept": intercept, "calibration_slope": slope, "brier": brier(y, p),
            "auroc": auroc(y, p), "mean_predicted": float(np.mean(p)), "observed_rate": float(np.mean(y))}


def _measures_weighted(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> dict[str, np.ndarray]:
    slope, intercept = calibration_slope_intercept_weighted(y, p, W)
    total = W.sum(axis=1)
    return {"calibration_intercept": intercept, "calibration_slope": slope, "brier": brier_weighted(y, p, W),
            "auroc": auroc_weighted(y, p, W), "mean_predicted": W @ p / total, "observed_rate": W @ y / total}


def calibration_report(y: np.ndarray, patient_id: np.ndarray, probabilities: dict[str, np.ndarray],
                       n_boot: int, seed: int, reference: str = "before", level: float = 0.95) -> dict[str, Any]:
    """For each named probability vector: every measure with a patient-bootstrap CI; for each other
    vector, its paired Brier difference from `reference` (same resamples) with a CI.

    The resamples re-weight patients; they do not refit the maps, so the CIs describe the sampling of
    the evaluated patients given the fitted maps (cross-fitting, not the bootstrap, removes the
    optimism of judging a map on the rows it was fitted on)."""
    y = np.asarray(y, dtype="float64")

    def statistic(W: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, p in probabilities.items():
            out |= {f"{name}|{k}": v for k, v in _measures_weighted(y, p, W).items()}
        return out

    draws = bootstrap_draws(patient_id, statistic, n_boot, seed)
    report: dict[str, Any] = {}
    for name, p in probabilities.items():
        block = {}
        for k, v in _measures(y, p).items():
            lo, hi = percentile_ci(draws[f"{name}|{k}"], level)
            block[k] = {"value": v, "ci_low": float(lo), "ci_high": float(hi)}
        if name != reference and reference in probabilities:
            d = draws[f"{name}|brier"] - draws[f"{reference}|brier"]
            lo, hi = percentile_ci(d, level)
            block["change_in_brier"] = {"value": block["brier"]["value"] - report[reference]["brier"]["value"],
                                        "ci_low": float(lo), "ci_high": float(hi)}
        report[name] = block
    return report


def map_threshold(threshold: float, old: dict[str, Any], new: dict[str, Any]) -> float:
    """The probability threshold that flags the same rows after recalibration (both maps increase with
    the margin): the old threshold's margin, passed through the new map. NaN stays NaN."""
    if not threshold == threshold:
        return float("nan")
    grid = np.linspace(-40, 40, 160_001)   # margin grid (1/2000 log-odds); isotonic maps are step functions
    old_p = apply_calibration(grid, old)
    at = np.searchsorted(old_p, threshold, side="left")
    if at >= grid.size:
        return 1.0
    return float(apply_calibration(grid[at:at + 1], new)[0])


def recalibrate(margin: np.ndarray, y: np.ndarray, patient_id: np.ndarray, current: dict[str, Any], *,
                method: str = "logistic", folds: int = 5, n_boot: int = 1000, seed: int = 0,
                threshold: float = float("nan")) -> dict[str, Any]:
    """Refit the calibration on a labelled cohort and report it honestly.

    Returns {"calibration": the map fitted on all rows (to register), "cross_fitted_probability",
    "fold", "threshold": the operating threshold mapped to the new scale, "report": before / after
    (cross-fitted) / after (in-sample, optimistic) with CIs, "counts"}.
    """
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y).astype(int)
    pid = np.asarray(patient_id).astype(str)
    new = fit_recalibration(margin, y, current, method)
    before = apply_calibration(margin, current)
    crossed, fold = cross_fitted_probability(margin, y, pid, current, method, folds, seed)
    in_sample = apply_calibration(margin, new)
    report = calibration_report(y, pid, {"before": before, "after_cross_fitted": crossed,
                                         "after_in_sample": in_sample}, n_boot, seed)
    report["after_in_sample"]["note"] = ("fitted and evaluated on the same rows: optimistic; "
                                         "after_cross_fitted is the honest estimate")
    counts = {"n_rows": int(len(y)), "n_patients": int(pd.unique(pid).size), "n_event_rows": int(y.sum()),
              "n_event_patients": int(pd.unique(pid[y == 1]).size)}
    return {"method": method, "scale": "margin (booster log-odds); p = sigmoid(intercept + slope * margin)",
            "calibration": new, "previous_calibration": current, "cross_fitted_probability": crossed,
            "fold": fold, "folds": int(np.unique(fold).size), "threshold": map_threshold(threshold, current, new),
            "report": report, "counts": counts, "n_bootstrap": n_boot}
