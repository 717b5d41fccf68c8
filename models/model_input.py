"""The registered model's single input table: canonical labs, patients and treatment events in one frame.

MLflow pyfunc takes one DataFrame, so the three canonical tables travel as rows of one table:
- a **patient row** per patient (empty `analyte` and `event`), carrying the covariates, so a
  patient without any lab still reaches the output;
- **lab rows** (`analyte` set) with the patient's covariates beside them;
- **event rows** (`event` set: tocilizumab, corticosteroids, ...) at their `hours_since_infusion`.
Outcomes never travel; only a known current severe status (`severe_onset_hours` already reached)
may be passed, which marks the patient `already_severe` from then on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LAB_PART = ["patient_id", "analyte", "hours_since_infusion", "value", "censor", "resulted_hours"]
EVENT_PART = ["event", "dose"]
PATIENT_PART = ["therapy", "disease", "age_years", "severe_onset_hours"]
COLUMNS = LAB_PART + EVENT_PART + PATIENT_PART
STRING_COLUMNS = ("patient_id", "analyte", "censor", "event", "therapy", "disease")
FLOAT_COLUMNS = ("hours_since_infusion", "value", "resulted_hours", "dose", "age_years", "severe_onset_hours")


def to_model_input(labs: pd.DataFrame, patients: pd.DataFrame, events: pd.DataFrame | None = None,
                   *, known_severe: bool = False) -> pd.DataFrame:
    """Pack canonical tables into the pyfunc's input. `known_severe=True` passes severe_onset_hours
    as a *current* status (scoring a live cohort); by default outcomes are dropped."""
    cov = patients.reindex(columns=["patient_id", *PATIENT_PART])
    if not known_severe:
        cov["severe_onset_hours"] = np.nan
    patient_rows = cov.assign(analyte="", hours_since_infusion=np.nan, value=np.nan, censor="",
                              resulted_hours=np.nan, event="", dose=np.nan)
    lab_rows = labs.reindex(columns=LAB_PART).merge(cov, on="patient_id", how="left").assign(event="", dose=np.nan)
    parts = [patient_rows, lab_rows]
    if events is not None and len(events):
        ev = events.reindex(columns=["patient_id", "event", "hours_since_infusion", "dose"])
        parts.append(ev.merge(cov, on="patient_id", how="left").assign(analyte="", value=np.nan, censor="",
                                                                       resulted_hours=np.nan))
    frame = pd.concat([p.reindex(columns=COLUMNS) for p in parts], ignore_index=True)
    for c in FLOAT_COLUMNS:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in STRING_COLUMNS:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "").astype(str)
    return frame


def from_model_input(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """Split the model input back into (labs, patients, events). With no event row at all, events is
    None: treatments were not recorded, so treatment features are unknown (NaN) rather than "none given"."""
    frame = frame.copy()
    frame["patient_id"] = frame["patient_id"].astype(str)
    analyte = frame["analyte"].fillna("").astype(str) if "analyte" in frame else pd.Series("", index=frame.index)
    event = frame["event"].fillna("").astype(str) if "event" in frame else pd.Series("", index=frame.index)
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
    return labs.reset_index(drop=True), patients.reset_index(drop=True), events


def synthetic_example(therapy_mix: dict[str, float], n_patients: int = 2, seed: int = 1) -> pd.DataFrame:
    """The input example logged with the model: simulated patients (a fixed seed, whatever cohort the
    model was trained on), ids EXAMPLE-1, EXAMPLE-2, ... No row, age, therapy or disease of a real
    or training patient ever reaches the logged model."""
    from cohorts.simulate import iter_chunks

    chunk = next(iter_chunks(n_patients, seed=seed, therapy_mix=therapy_mix))
    frame = to_model_input(chunk.labs, chunk.patients, chunk.events)
    order = list(dict.fromkeys(chunk.patients["patient_id"].astype(str)))
    return frame.assign(patient_id=frame["patient_id"].map({pid: f"EXAMPLE-{i + 1}" for i, pid in enumerate(order)}))
