"""MLflow models-from-code entry: the registered `severe-crs` pyfunc.

Input: one table of canonical labs, patients, treatment events and CRS grades (:mod:`models.model_input`).
Params: ``landmarks`` (e.g. "24,48"; default: the landmarks the model was trained on; or ``as_of`` = "latest"), ``reasons`` ("all", "none", "above:P").
Output: one row per patient × landmark with status, calibrated probability of grade ≥3 CRS within
the horizon, risk band and the top drivers. Feature building, calibration and explanation all
happen in here, with the fitted state shipped beside it: no training/serving skew.
"""

from __future__ import annotations

import inspect
import os

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class SevereCrsModel(PythonModel):
    def load_context(self, context) -> None:
        from models.bundle import ModelBundle

        reference = context.artifacts.get("reference")
        if reference and not os.environ.get("CRS_REFERENCE_DIR"):
            # the reference tables shipped with the model (analyte registry: readable driver names)
            # serve a scoring process that has no project folder of its own
            os.environ["CRS_REFERENCE_DIR"] = reference
        self.bundle = ModelBundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from models.model_input import from_model_input
        from models.predict import predict_cohort

        params = params or {}
        labs, patients, events, grades = from_model_input(model_input)
        window = self.bundle.meta.get("time_window_hours")  # else params.yaml's, where there is one
        grades = validate_model_input(model_input, labs, patients, events, tuple(window) if window else None,
                                      grades=grades)
        accepted = inspect.signature(predict_cohort).parameters
        kwargs = {"events": events}
        if "grades" in accepted:
            kwargs["grades"] = grades
        as_of = str(params.get("as_of", "") or "")
        if as_of == "latest" and "as_of_latest" in accepted:
            kwargs["as_of_latest"] = True
            landmarks = None
        else:
            text = str(params.get("landmarks") or "")
            landmarks = ([float(x) for x in text.split(",") if x.strip()] if text.strip()
                         else [float(x) for x in self.bundle.meta["landmarks_hours"]])
        if "reasons" in accepted and params.get("reasons"):
            kwargs["reasons"] = str(params["reasons"])
        return predict_cohort(self.bundle, labs, patients, landmarks, **kwargs)


def validate_model_input(frame: pd.DataFrame, labs: pd.DataFrame, patients: pd.DataFrame,
                         events: pd.DataFrame | None, window: tuple[float, float] | None = None, *,
                         grades: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The canonical-table checks every entry point runs (cohorts.schema), on the split model input;
    a problem raises CohortError naming its row in the input frame (counted from 0) and column.
    Returns the grades table in canonical form (None: no grade course recorded)."""
    import numpy as np

    from cohorts.errors import CohortError
    from cohorts.schema import (
        canonical_events,
        canonical_grades,
        canonical_labs,
        canonical_patients,
        patient_ids,
    )
    from models.model_input import grade_rows

    def text(col: str) -> pd.Series:
        return frame[col].fillna("").astype(str) if col in frame else pd.Series("", index=frame.index)

    where = "model input"
    ids = patient_ids(frame.reset_index(drop=True), "model input", where)  # before a null became 'None'
    first_rows = np.flatnonzero(~ids.duplicated().to_numpy())  # the patients table is in first-seen order
    canonical_patients(patients, file=where, row_numbers=first_rows)
    canonical_labs(labs, file=where, window=window,
                   row_numbers=np.flatnonzero((text("analyte") != "").to_numpy()))
    if events is not None:
        canonical_events(events, file=where, row_numbers=np.flatnonzero((text("event") != "").to_numpy()))
    if "grade" in frame:  # a grade on a lab or event row would be dropped: one kind of row each
        given = frame["grade"].astype("string").str.strip()
        both = ((given.notna() & (given != "")).fillna(False).to_numpy(dtype=bool)
                & ((text("analyte") != "") | (text("event") != "")).to_numpy())
        if both.any():
            raise CohortError("A row carries both a grade and an analyte or event; a grade row has `grade` and "
                              "`hours_since_infusion` only (empty analyte and event)", file=where,
                              row=int(np.flatnonzero(both)[0]), column="grade")
    if grades is None:
        return None
    return canonical_grades(grades, file=where, row_numbers=np.flatnonzero(grade_rows(frame.reset_index(drop=True))))


mlflow.models.set_model(SevereCrsModel())
