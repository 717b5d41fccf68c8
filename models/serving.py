"""MLflow models-from-code entry: the registered `severe-crs` pyfunc.

Input: the table of :mod:`models.model_input` (canonical labs + patient covariates).
Params: ``landmarks`` ("24,48"). Output: one row per patient × landmark with status,
probability (calibrated P(grade ≥3 CRS within the horizon)) and risk band.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SevereCrsModel(PythonModel):
    def load_context(self, context) -> None:
        from models.bundle import ModelBundle

        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from models.model_input import from_model_input
        from models.predict import predict_cohort

        params = params or {}
        landmarks = [float(x) for x in str(params.get("landmarks", "24,48,72,96")).split(",") if x.strip()]
        labs, patients = from_model_input(model_input)
        return predict_cohort(self.bundle, labs, patients, landmarks)


mlflow.models.set_model(SevereCrsModel())
