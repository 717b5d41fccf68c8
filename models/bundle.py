"""A trained model on disk: booster (.ubj), fitted feature state and calibration (JSON). No pickle."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.transformer import KineticFeatures
from models.calibration import apply_calibration

BOOSTER = "booster.ubj"
FEATURES = "features.json"
CALIBRATION = "calibration.json"
META = "meta.json"


def dmatrix(X: pd.DataFrame, label: np.ndarray | None = None) -> xgb.DMatrix:
    """The model's input matrix: float64, column names as feature names, NaN = missing."""
    return xgb.DMatrix(X.to_numpy("float64"), label=label, feature_names=[str(c) for c in X.columns],
                       missing=np.nan)


@dataclass
class ModelBundle:
    booster: xgb.Booster
    features: KineticFeatures
    calibration: dict[str, float]
    meta: dict[str, Any]

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
        return cls(booster, KineticFeatures.load(str(folder / FEATURES)),
                   json.loads((folder / CALIBRATION).read_text()), json.loads((folder / META).read_text()))
