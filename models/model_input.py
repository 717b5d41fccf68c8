"""The registered model's single input table: canonical labs, patients, treatment events and CRS
grades in one frame.

MLflow pyfunc takes one DataFrame, so the four canonical tables travel as rows of one table:
- a **patient row** per patient (empty `analyte` and `event`, no `grade`), carrying the covariates,
  so a patient without any lab still reaches the output;
- **lab rows** (`analyte` set) with the patient's covariates beside them;
- **event rows** (`event` set: tocilizumab, corticosteroids, ...) at their `hours_since_infusion`;
- **grade rows** (`grade` set, empty `analyte` and `event`): the CRS grade recorded at the bedside at
  their `hours_since_infusion` (the cohort's grading scale). They give `current_grade`, the highest
  grade recorded by the landmark, and a grade >= 3 recorded by then makes the patient
  `already_severe`. With no grade row at all (or an input without the `grade` column) the grade
  course is not recorded: `current_grade` is unknown (NaN). Once any patient of the input has a
  grade row, a patient without one has no grade recorded yet (0); send a grade-0 row to say so
  explicitly.
Outcomes never travel; only a known current severe status (`severe_onset_hours` already reached)
may be passed, which marks the patient `already_severe` from then on.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

LAB_PART = ["patient_id", "analyte", "hours_since_infusion", "value", "censor", "resulted_hours"]
EVENT_PART = ["event", "dose"]
GRADE_PART = ["grade"]
PATIENT_PART = ["therapy", "disease", "age_years", "severe_onset_hours"]
COLUMNS = LAB_PART + EVENT_PART + GRADE_PART + PATIENT_PART
STRING_COLUMNS = ("patient_id", "analyte", "censor", "event", "therapy", "disease")
FLOAT_COLUMNS = ("hours_since_infusion", "value", "resulted_hours", "dose", "grade", "age_years",
                 "severe_onset_hours")


def to_model_input(labs: pd.DataFrame, patients: pd.DataFrame, events: pd.DataFrame | None = None,
                   *, grades: pd.DataFrame | None = None, known_severe: bool = False) -> pd.DataFrame:
    """Pack canonical tables into the pyfunc's input. `grades` (patient_id, hours_since_infusion,
    grade; the simulator's `grade_astct` is read as `grade`): the recorded CRS grade course, if any;
    ungraded records (empty grade) say nothing and are left out. `known_severe=True` passes
    severe_onset_hours as a *current* status (scoring a live cohort); by default outcomes are dropped."""
    cov = patients.reindex(columns=["patient_id", *PATIENT_PART])
    if not known_severe:
        cov["severe_onset_hours"] = np.nan
    patient_rows = cov.assign(analyte="", hours_since_infusion=np.nan, value=np.nan, censor="",
                              resulted_hours=np.nan, event="", dose=np.nan, grade=np.nan)
    lab_rows = labs.reindex(columns=LAB_PART).merge(cov, on="patient_id", how="left").assign(
        event="", dose=np.nan, grade=np.nan)
    parts = [patient_rows, lab_rows]
    if events is not None and len(events):
        ev = events.reindex(columns=["patient_id", "event", "hours_since_infusion", "dose"])
        parts.append(ev.merge(cov, on="patient_id", how="left").assign(analyte="", value=np.nan, censor="",
                                                                       resulted_hours=np.nan, grade=np.nan))
    if grades is not None and len(grades):
        gr = grades.rename(columns={"grade_astct": "grade"}) if "grade" not in grades else grades
        gr = gr.reindex(columns=["patient_id", "hours_since_infusion", "grade"])
        gr = gr[pd.to_numeric(gr["grade"], errors="coerce").notna().to_numpy()]  # ungraded records say nothing
        parts.append(gr.merge(cov, on="patient_id", how="left").assign(analyte="", value=np.nan, censor="",
                                                                       resulted_hours=np.nan, event="",
                                                                       dose=np.nan))
    frame = pd.concat([p.reindex(columns=COLUMNS) for p in parts], ignore_index=True)
    for c in FLOAT_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in STRING_COLUMNS:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str)
    return frame


class ModelInputTables(NamedTuple):
    """The model input split back into canonical tables."""

    labs: pd.DataFrame
    patients: pd.DataFrame
    events: pd.DataFrame | None
    grades: pd.DataFrame | None


def grade_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of the grade rows: `grade` given (anything but empty), on a row that is no lab or event row.
    A grade that is not a number stays a grade row, so that validation names it."""
    if "grade" not in frame:
        return np.zeros(len(frame), dtype=bool)
    raw = frame["grade"]
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        given = raw.notna().to_numpy()
    else:
        text = raw.astype("string").str.strip()
        given = (text.notna() & (text != "")).fillna(False).to_numpy(dtype=bool)
    return given & (_text(frame, "analyte") == "").to_numpy() & (_text(frame, "event") == "").to_numpy()


def _text(frame: pd.DataFrame, col: str) -> pd.Series:
    return frame[col].fillna("").astype(str) if col in frame else pd.Series("", index=frame.index)


def from_model_input(frame: pd.DataFrame) -> ModelInputTables:
    """Split the model input back into (labs, patients, events, grades). With no event row at all,
    events is None: treatments were not recorded, so treatment features are unknown (NaN) rather
    than "none given". Likewise grades is None with no grade row (or no `grade` column): the grade
    course is not recorded and `current_grade` is unknown. Grade values are checked by
    :func:`models.serving.validate_model_input` (cohorts.schema.canonical_grades)."""
    frame = frame.copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    analyte = _text(frame, "analyte")
    event = _text(frame, "event")
    present = [c for c in PATIENT_PART if c in frame]
    patients = frame.drop_duplicates("patient_id", keep="first")[["patient_id", *present]].copy()
    for c in ("therapy", "disease"):
        if c in patients:
            patients[c] = patients[c].replace("", np.nan)
    labs = frame.loc[analyte != ""].reindex(columns=LAB_PART)
    labs["censor"] = labs["censor"].fillna("").astype(str)
    for c in ("hours_since_infusion", "value", "resulted_hours"):
        labs[c] = pd.to_numeric(labs[c], errors="coerce").astype("float64")
    events = None
    if "event" in frame and (event != "").any():
        events = frame.loc[event != "", ["patient_id", "event", "hours_since_infusion"]].copy()
        events["dose"] = pd.to_numeric(frame.loc[event != "", "dose"], errors="coerce") if "dose" in frame else np.nan
        events["hours_since_infusion"] = pd.to_numeric(events["hours_since_infusion"], errors="coerce")
        events["dose_unit"] = ""
        events = events.reset_index(drop=True)
    grades = None
    is_grade = grade_rows(frame)
    if is_grade.any():  # raw values: canonical_grades coerces them, naming a bad one
        grades = frame.loc[is_grade, ["patient_id", "hours_since_infusion", "grade"]].reset_index(drop=True)
    return ModelInputTables(labs.reset_index(drop=True), patients.reset_index(drop=True), events, grades)


def synthetic_example(therapy_mix: dict[str, float], n_patients: int = 2, seed: int = 1) -> pd.DataFrame:
    """The input example logged with the model: simulated patients (a fixed seed, whatever cohort the
    model was trained on), ids EXAMPLE-1, EXAMPLE-2, ... No row, age, therapy or disease of a real
    or training patient ever reaches the logged model."""
    from cohorts.simulate import iter_chunks

    chunk = next(iter_chunks(n_patients, seed=seed, therapy_mix=therapy_mix))
    frame = to_model_input(chunk.labs, chunk.patients, chunk.events, grades=chunk.grades)
    order = list(dict.fromkeys(chunk.patients["patient_id"].astype(str)))
    return frame.assign(patient_id=frame["patient_id"].map({pid: f"EXAMPLE-{i + 1}" for i, pid in enumerate(order)}))
