"""Honest comparators on the same folds as the kinetics model.

(a) logistic regression on single absolute values at L; (b) the same model family (XGBoost) on
absolute values only; (c) published scores computed as given, never refitted: m-EASIX and EASIX
from the latest values at L; (d) prevalence only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def single_value_columns(columns: list[str], analytes: list[str]) -> list[str]:
    """Latest absolute value of each analyte at L, plus the landmark time."""
    return ["landmark_hours", *[c for c in (f"{a}__latest" for a in analytes) if c in columns]]


def absolute_only_columns(columns: list[str]) -> list[str]:
    """Everything that is not baseline-relative or serial: covariates, latest values, censor flags."""
    keep_suffixes = ("__latest", "__latest_censored", "__max_since_infusion")
    return [c for c in columns if "__" not in c or c.endswith(keep_suffixes)]


def _log_positive(X: np.ndarray) -> np.ndarray:
    return np.log(np.clip(X, 1e-6, None))


def single_value_logistic() -> object:
    """Log-transformed latest values, median-imputed with missing indicators, standardised."""
    return make_pipeline(FunctionTransformer(_log_positive), SimpleImputer(strategy="median", add_indicator=True,
                                                                          keep_empty_features=True),
                         StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))


def m_easix(X: pd.DataFrame) -> np.ndarray:
    """m-EASIX = LDH (U/L) × CRP (mg/dL) / platelets (10⁹/L); CRP is stored in mg/L, hence / 10."""
    return _ratio(X, "LDH__latest", "CRP__latest", "PLT__latest", scale=0.1)


def easix(X: pd.DataFrame) -> np.ndarray:
    """EASIX = LDH (U/L) × creatinine (mg/dL) / platelets (10⁹/L)."""
    return _ratio(X, "LDH__latest", "CREAT__latest", "PLT__latest", scale=1.0)


def _ratio(X: pd.DataFrame, a: str, b: str, c: str, scale: float) -> np.ndarray:
    if not {a, b, c} <= set(X.columns):
        return np.full(len(X), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = X[a].to_numpy() * X[b].to_numpy() * scale / X[c].to_numpy()
    return np.where(np.isfinite(value), value, np.nan)
