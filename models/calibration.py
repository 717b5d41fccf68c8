"""Logistic (Platt) recalibration of XGBoost margins, fitted on out-of-fold predictions only."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression


def fit_platt(margin: np.ndarray, y: np.ndarray) -> dict[str, float]:
    if np.unique(y).size < 2:
        return {"method": "identity", "slope": 1.0, "intercept": 0.0}
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y)
    return {"method": "sigmoid", "slope": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}


def apply_calibration(margin: np.ndarray, calibration: dict[str, float]) -> np.ndarray:
    z = calibration["slope"] * np.asarray(margin, dtype="float64") + calibration["intercept"]
    return 1.0 / (1.0 + np.exp(-z))
