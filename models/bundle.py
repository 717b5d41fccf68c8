"""A trained model on disk: booster (.ubj), fitted feature state and calibration (JSON). No pickle.

Whichever candidate family won (meta `family`), the bundle is the same four files: the feature
state turns a landmark matrix into the booster's input (the full kinetic set, or the compact set
of :mod:`models.compact`, standardised for the linear family), the booster gives the margin, the
calibration the probability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from models.calibration import apply_calibration
from models.compact import load_features

BOOSTER = "booster.ubj"
FEATURES = "features.json"
CALIBRATION = "calibration.json"
META = "meta.json"


def dmatrix(X: pd.DataFrame, label: np.ndarray | None = None) -> xgb.DMatrix:
    """The model's input matrix: float64, column names as feature names, NaN = missing."""
    return xgb.DMatrix(X.to_numpy("float64"), label=label, feature_names=[str(c) for c in X.columns],
                       missing=np.nan)


def contributions(booster: xgb.Booster, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, p], bias [n]) on the log-odds scale, from XGBoost's `pred_contribs`: TreeSHAP for a
    tree booster, coefficient × value for gblinear; each row adds up, with the bias, to the margin."""
    if len(X) == 0:
        return np.empty((0, X.shape[1])), np.empty(0)
    contribs = booster.predict(dmatrix(X), pred_contribs=True)
    return contribs[:, :-1], contribs[:, -1]


@dataclass
class ModelBundle:
    booster: xgb.Booster
    features: Any                  # KineticFeatures (full set) or models.compact.CompactFeatures
    calibration: dict[str, float]
    meta: dict[str, Any]

    @property
    def kinetic(self):
        """The full kinetic feature transformer underneath (the compact families wrap one): what the
        published scores (m-EASIX, EASIX) and other comparators read, whichever family won."""
        return getattr(self.features, "kinetic", self.features)

    @property
    def family(self) -> str:
        """The candidate family that won the selection (models saved before it existed: xgb_full)."""
        return str(self.meta.get("family", "xgb_full"))

    def explain(self, matrix: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """(contributions [n, p], bias [n], X shown [n, p]) for landmark-matrix rows, on the margin
        (log-odds) scale: TreeSHAP for trees, exact coefficient × value for the linear family;
        columns in their own units (a linear model's missing indicator adds to its column)."""
        X = self.features.transform(matrix)
        values, bias = contributions(self.booster, X)
        if hasattr(self.features, "display"):
            return self.features.group(values, list(X.columns)), bias, self.features.display(matrix)
        return values, bias, X

    def margin(self, X: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(dmatrix(X), output_margin=True)

    def probability(self, X: pd.DataFrame) -> np.ndarray:
        return apply_calibration(self.margin(X), self.calibration)

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / BOOSTER)
        self.features.save(str(folder / FEATURES))
        (folder / CALIBRATION).write_text(json.dumps(self.calibration, indent=2))
        (folder / META).write_text(json.dumps(self.meta, indent=2, sort_keys=True))

    @classmethod
    def load(cls, folder: Path | str) -> ModelBundle:
        folder = Path(folder)
        booster = xgb.Booster()
        booster.load_model(folder / BOOSTER)
        booster.set_param({"nthread": 0})
        return cls(booster, load_features(folder / FEATURES),
                   json.loads((folder / CALIBRATION).read_text()), json.loads((folder / META).read_text()))
