"""Nested, patient-grouped cross-validation of the kinetics model and its baselines on the same folds.

Outer folds give the held-out predictions every reported metric is computed from. Inside each
outer training part: the feature transformer is fitted, hyperparameters are tuned and early
stopping is done on inner folds, the calibrator is fitted on inner out-of-fold margins, and the
operating threshold is chosen; only then are the outer test patients predicted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.transformer import KineticFeatures
from models.baselines import (
    absolute_only_columns,
    easix,
    m_easix,
    single_value_columns,
    single_value_logistic,
)
from models.calibration import apply_calibration, fit_calibration
from models.evaluate import treatment_naive
from models.folds import patient_folds
from models.metrics import threshold_for_sensitivity
from models.tuning import fit_tuned, predict_margin


@dataclass
class TrainConfig:
    xgboost: dict[str, Any]
    search_space: dict[str, list[Any]] = field(default_factory=dict)
    n_folds: int = 5
    inner_folds: int = 3
    seed: int = 7
    calibration: str = "sigmoid"
    target_sensitivity: float = 0.9
    baselines: bool = True

    @classmethod
    def from_params(cls, t: dict[str, Any]) -> TrainConfig:
        return cls(xgboost=dict(t["xgboost"]), search_space=dict(t.get("search_space") or {}),
                   n_folds=int(t["n_folds"]), inner_folds=int(t.get("inner_folds", 3)), seed=int(t["seed"]),
                   calibration=str(t.get("calibration", "sigmoid")),
                   target_sensitivity=float(t.get("target_sensitivity", 0.9)),
                   baselines=bool(t.get("baselines", True)))


@dataclass
class Fitted:
    """A tuned, calibrated XGBoost on one set of rows, with its operating threshold."""
    features: KineticFeatures
    tuned: Any
    calibration: dict[str, Any]
    threshold: float
    columns: list[str]


def fit_calibrated(rows: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig) -> Fitted:
    """Fit the feature transformer on `rows`, then the tuned, calibrated booster on its output."""
    fitted_features = KineticFeatures(**features.get_params()).fit(rows)
    return _fit_matrix(fitted_features, fitted_features.transform(rows), rows, cfg)


def _fit_matrix(fitted_features: KineticFeatures, X: pd.DataFrame, rows: pd.DataFrame, cfg: TrainConfig,
                columns: list[str] | None = None) -> Fitted:
    y = rows["label"].to_numpy().astype(int)
    cols = columns if columns is not None else list(X.columns)
    tuned = fit_tuned(X[cols], y, rows["patient_id"], cfg.xgboost, cfg.search_space, cfg.inner_folds, cfg.seed)
    calibration = fit_calibration(tuned.inner_oof_margin, y, cfg.calibration)
    inner_p = apply_calibration(tuned.inner_oof_margin, calibration)
    threshold = threshold_for_sensitivity(y, inner_p, cfg.target_sensitivity)
    return Fitted(fitted_features, tuned, calibration, threshold, cols)


def _predict_matrix(model: Fitted, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    margin = predict_margin(model.tuned.booster, X[model.columns])
    return margin, apply_calibration(margin, model.calibration)


def outer_cross_validation(rows: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig,
                           progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Held-out predictions of every model for every row, with the outer fold and chosen threshold.
    `progress` (optional) is called with 1 after each outer fold."""
    y = rows["label"].to_numpy().astype(int)
    folds = patient_folds(rows["patient_id"], rows["label"], cfg.n_folds, cfg.seed)
    out = rows[["patient_id", "landmark_hours", "label"]].copy()
    for col in ("therapy", "disease"):
        out[col] = rows[col].astype(str) if col in rows else ""
    out["fold"] = folds
    out["treatment_naive"] = treatment_naive(rows)  # no tocilizumab/steroid by L (reported apart)
    names = ["margin", "probability", "threshold", "p_single_value_lr", "p_absolute_xgb", "m_easix", "easix",
             "p_prevalence"]
    for name in names:
        out[name] = np.nan
    analytes = list(features.analytes) + list(getattr(features, "covariate_analytes", ()))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        # one transformer per outer fold, fitted on its training patients; every model below shares it
        fold_features = KineticFeatures(**features.get_params()).fit(rows[train])
        X_train, X_test = fold_features.transform(rows[train]), fold_features.transform(rows[test])
        primary = _fit_matrix(fold_features, X_train, rows[train], cfg)
        margin, prob = _predict_matrix(primary, X_test)
        out.loc[test, "margin"], out.loc[test, "probability"] = margin, prob
        out.loc[test, "threshold"] = primary.threshold
        out.loc[test, "m_easix"] = m_easix(X_test)
        out.loc[test, "easix"] = easix(X_test)
        out.loc[test, "p_prevalence"] = y[train].mean()
        if cfg.baselines:
            single = single_value_columns(list(X_train.columns), analytes)
            lr = single_value_logistic().fit(X_train[single].to_numpy(), y[train])
            out.loc[test, "p_single_value_lr"] = lr.predict_proba(X_test[single].to_numpy())[:, 1]
            absolute = _fit_matrix(fold_features, X_train, rows[train], cfg, absolute_only_columns(list(X_train.columns)))
            out.loc[test, "p_absolute_xgb"] = _predict_matrix(absolute, X_test)[1]
        if progress is not None:
            progress(1)
    return out
