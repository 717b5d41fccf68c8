"""scikit-learn transformer: landmark matrix → model-ready float64 features.

The fitted state (analytes, baseline window, category levels, feature order) is persisted
as JSON and shipped inside the registered model, so training and serving use one object.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.kinetics import landmark_matrix

ID_COLUMNS = ["patient_id", "landmark_hours", "eligible", "label"]


class KineticFeatures(TransformerMixin, BaseEstimator):
    """Turns a landmark matrix (from :func:`landmark_matrix`) into numeric model inputs.

    Categorical covariates are one-hot encoded with levels learned in `fit`; a level unseen
    in training (another product, another disease) becomes all-zero, never an error.
    """

    def __init__(self, analytes: tuple[str, ...] = ("IL6", "IFNG", "CRP", "FERRITIN", "ANG2"),
                 baseline_window_hours: tuple[float, float] = (-168.0, 0.0),
                 horizon_hours: float = 72.0,
                 categorical: tuple[str, ...] = ("therapy", "disease"),
                 numeric_covariates: tuple[str, ...] = ("age_years",)) -> None:
        self.analytes = analytes
        self.baseline_window_hours = baseline_window_hours
        self.horizon_hours = horizon_hours
        self.categorical = categorical
        self.numeric_covariates = numeric_covariates

    # -- building the landmark matrix from canonical tables (the same code at train and serve time)
    def build(self, labs: pd.DataFrame, patients: pd.DataFrame, landmarks: list[float]) -> pd.DataFrame:
        return landmark_matrix(labs, patients, landmarks, self.horizon_hours, list(self.analytes),
                               tuple(self.baseline_window_hours),
                               covariates=[*self.categorical, *self.numeric_covariates])

    def fit(self, X: pd.DataFrame, y: Any = None) -> KineticFeatures:
        X = self._check_frame(X)
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) if c in X else []
                            for c in self.categorical}
        self.kinetic_columns_ = [f"{a}__{f}" for a in self.analytes for f in _kinetic_names()]
        self.feature_names_out_ = np.array(
            ["landmark_hours", *self.numeric_covariates, *self.kinetic_columns_,
             *[f"{c}={v}" for c in self.categorical for v in self.categories_[c]]], dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_out_")
        X = self._check_frame(X)
        cols: dict[str, np.ndarray] = {
            "landmark_hours": pd.to_numeric(X["landmark_hours"], errors="coerce").to_numpy("float64")}
        for c in (*self.numeric_covariates, *self.kinetic_columns_):
            cols[c] = (pd.to_numeric(X[c], errors="coerce").to_numpy("float64") if c in X
                       else np.full(len(X), np.nan))
        for c in self.categorical:
            values = X[c].astype(str).to_numpy() if c in X else np.full(len(X), "")
            for v in self.categories_[c]:
                cols[f"{c}={v}"] = (values == v).astype("float64")
        return pd.DataFrame(cols, index=X.index)[list(self.feature_names_out_)]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def _check_frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame) or "landmark_hours" not in X:
            raise ValueError("KineticFeatures expects the landmark matrix DataFrame from build()")
        return X

    # -- persistence (JSON, no pickle)
    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self, "feature_names_out_")
        return {"params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.get_params().items()},
                "categories": self.categories_, "feature_names": list(self.feature_names_out_)}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> KineticFeatures:
        p = spec["params"]
        obj = cls(analytes=tuple(p["analytes"]), baseline_window_hours=tuple(p["baseline_window_hours"]),
                  horizon_hours=float(p["horizon_hours"]), categorical=tuple(p["categorical"]),
                  numeric_covariates=tuple(p["numeric_covariates"]))
        obj.categories_ = {k: list(v) for k, v in spec["categories"].items()}
        obj.kinetic_columns_ = [f"{a}__{f}" for a in obj.analytes for f in _kinetic_names()]
        obj.feature_names_out_ = np.array(spec["feature_names"], dtype=object)
        obj.n_features_in_ = None
        return obj

    def save(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)

    @classmethod
    def load(cls, path: str) -> KineticFeatures:
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


def _kinetic_names() -> list[str]:
    from features.kinetics import KINETIC_FEATURES

    return KINETIC_FEATURES
