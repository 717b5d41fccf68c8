"""The registered model's single input table: canonical labs with the patient covariates beside them.

MLflow pyfunc takes one DataFrame, so patients travel on their lab rows, and each patient also
gets one row with an empty analyte: a patient without any lab still reaches the output.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LAB_PART = ["patient_id", "analyte", "hours_since_infusion", "value", "censor", "resulted_hours"]
PATIENT_PART = ["therapy", "disease", "age_years", "severe_onset_hours"]


def to_model_input(labs: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    cov = patients.reindex(columns=["patient_id", *PATIENT_PART])
    # outcomes are never model input; only a *known current* severe status may be passed
    cov["severe_onset_hours"] = np.nan
    lab_rows = labs.reindex(columns=LAB_PART).merge(cov, on="patient_id", how="left")
    patient_rows = cov.assign(analyte="", hours_since_infusion=np.nan, value=np.nan, censor="",
                              resulted_hours=np.nan)
    frame = pd.concat([patient_rows[LAB_PART + PATIENT_PART], lab_rows[LAB_PART + PATIENT_PART]],
                      ignore_index=True)
    for c in ("hours_since_infusion", "value", "resulted_hours", "age_years", "severe_onset_hours"):
        frame[c] = frame[c].astype("float64")
    for c in ("patient_id", "analyte", "censor", "therapy", "disease"):
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str)
    return frame


def from_model_input(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the model input back into (labs, patients)."""
    frame = frame.copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    present = [c for c in PATIENT_PART if c in frame]
    patients = frame.drop_duplicates("patient_id", keep="first")[["patient_id", *present]]
    for c in ("therapy", "disease"):
        if c in patients:
            patients[c] = patients[c].replace("", np.nan)
    is_lab = frame["analyte"].fillna("").astype(str) != ""
    labs = frame.loc[is_lab].reindex(columns=LAB_PART)
    labs["censor"] = labs["censor"].fillna("").astype(str)
    for c in ("hours_since_infusion", "value", "resulted_hours"):
        labs[c] = pd.to_numeric(labs[c], errors="coerce").astype("float64")
    return labs.reset_index(drop=True), patients.reset_index(drop=True)
