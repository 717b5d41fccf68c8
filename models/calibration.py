"""Recalibration of XGBoost margins (sigmoid/Platt or isotonic), fitted on out-of-sample margins only.

Stored as plain JSON numbers so the registered model needs no pickle.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression


def fit_calibration(margin: np.ndarray, y: np.ndarray, method: str = "sigmoid") -> dict:
    margin, y = np.asarray(margin, dtype="float64"), np.asarray(y).astype(int)
    if np.unique(y).size < 2:
        return {"method": "identity"}
    if method == "sigmoid":
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(margin.reshape(-1, 1), y)
        return {"method": "sigmoid", "slope": float(lr.coef_[0, 0]), "intercept": float(lr.intercept_[0])}
    if method == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
        return {"method": "isotonic", "x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    raise ValueError(f"calibration method must be 'sigmoid' or 'isotonic', not {method!r}")


def apply_calibration(margin: np.ndarray, calibration: dict) -> np.ndarray:
    margin = np.asarray(margin, dtype="float64")
    method = calibration.get("method", "sigmoid")
    if method == "identity":
        return 1.0 / (1.0 + np.exp(-margin))
    if method == "isotonic":
        return np.interp(margin, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
    z = calibration["slope"] * margin + calibration["intercept"]
    return 1.0 / (1.0 + np.exp(-z))
