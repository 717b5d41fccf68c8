"""The canonical tables: the contract between `cohorts/` and everything downstream."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.registry import analyte_codes

LAB_COLUMNS = ["patient_id", "analyte", "hours_since_infusion", "value", "censor",
               "resulted_hours", "source_row"]
PATIENT_REQUIRED = ["patient_id"]
PATIENT_COLUMNS = ["patient_id", "therapy", "disease", "age_years", "weight_kg", "sex",
                   "tumor_burden", "crs_max_grade", "grading", "crs_onset_hours",
                   "severe_onset_hours", "followup_hours"]
OUTCOME_COLUMNS = ["crs_max_grade", "crs_onset_hours", "severe_onset_hours", "followup_hours"]
EVENT_COLUMNS = ["patient_id", "event", "hours_since_infusion", "dose", "dose_unit"]
# Optional time-resolved CRS grades on the cohort's grading scale (patients.grading).
GRADE_COLUMNS = ["patient_id", "hours_since_infusion", "grade"]
THERAPIES = ["axi-cel", "tisa-cel", "liso-cel", "brexu-cel", "ide-cel", "cilta-cel",
             "blinatumomab", "other"]
EVENT_TYPES = ["tocilizumab", "corticosteroids", "siltuximab", "anakinra", "vasopressors"]
CENSOR_VALUES = ["", "<", ">"]


def _missing(frame: pd.DataFrame, required: list[str], table: str, file: str | None) -> None:
    absent = [c for c in required if c not in frame.columns]
    if absent:
        raise CohortError(
            f"The {table} table lacks required column(s) {absent}; it has {list(frame.columns)}",
            file=file, column=absent[0])


def _first_bad(mask, frame: pd.DataFrame, row_numbers=None) -> int:
    """The row number (in the file the table came from, counted from 0) of the first True in `mask`:
    the position in `frame`, or `row_numbers[position]` when the frame is a part of a bigger table."""
    position = int(np.flatnonzero(np.asarray(mask, dtype=bool))[0])
    return position if row_numbers is None else int(np.asarray(row_numbers)[position])


def time_window() -> tuple[float, float] | None:
    """Plausible sample and result times around infusion, in hours: params.yaml
    `ingest.time_window_hours`, the window ingest quarantines by; a canonical table is held to it too.
    None where no params.yaml exists at all (a registered model's code served outside any project,
    which checks the window its bundle carries, if any)."""
    from crs_settings import load_params, params_path

    if not params_path().is_file():
        return None
    lo, hi = (float(x) for x in load_params()["ingest"]["time_window_hours"])
    return lo, hi


def patient_ids(frame: pd.DataFrame, table: str, file: str | None = None, row_numbers=None) -> pd.Series:
    """`patient_id` as text; an empty id (null or blank) is an error, never the text 'None' or 'nan'."""
    pid = frame["patient_id"]
    text = pid.astype(str)
    empty = pid.isna().to_numpy() | (text.str.strip() == "").to_numpy()
    if empty.any():
        raise CohortError(f"A row of the {table} table has an empty patient_id", file=file,
                          row=_first_bad(empty, frame, row_numbers), column="patient_id")
    return text


def optional_numbers(frame: pd.DataFrame, col: str, file: str | None = None, row_numbers=None) -> pd.Series:
    """A numeric column where empty means unknown: anything given must be a finite number."""
    raw = frame[col]
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        given = raw.notna().to_numpy()
    else:
        text = raw.astype("string").str.strip()
        given = (text.notna() & (text != "")).to_numpy()
    bad = given & ~np.isfinite(num.to_numpy())
    if bad.any():
        raise CohortError(f"Column '{col}' must be a finite number or empty (unknown); found {raw[bad].iloc[0]!r}",
                          file=file, row=_first_bad(bad, frame, row_numbers), column=col)
    return num


def known_patients(table: pd.DataFrame, ids, what: str, file: str | None = None,
                   patients_file: str = "patients.parquet", row_numbers=None) -> None:
    """Every row of `table` (labs, events) belongs to a patient of the patients table."""
    unknown = ~table["patient_id"].isin(ids).to_numpy()
    if unknown.any():
        raise CohortError(f"{what} rows for patient {table['patient_id'][unknown].iloc[0]!r} who is not in "
                          f"{patients_file}", file=file, row=_first_bad(unknown, table, row_numbers),
                          column="patient_id")


def canonical_labs(labs: pd.DataFrame, file: str | None = None, *, window: tuple[float, float] | None = None,
                   row_numbers=None) -> pd.DataFrame:
    """Check and coerce a labs table to canonical dtypes; raise CohortError naming the first bad row
    (`row_numbers`: each row's number in its file, when `labs` is a part of it) and column."""
    _missing(labs, ["patient_id", "analyte", "hours_since_infusion", "value"], "labs", file)
    out = pd.DataFrame(index=labs.index)
    out["patient_id"] = patient_ids(labs, "labs", file, row_numbers)
    known = set(analyte_codes())
    analyte = labs["analyte"].astype(str)
    bad = ~analyte.isin(known)
    if bad.any():
        raise CohortError(
            f"Unknown analyte code {analyte[bad].iloc[0]!r}; canonical codes are {sorted(known)}",
            file=file, row=_first_bad(bad, labs, row_numbers), column="analyte")
    out["analyte"] = analyte
    for col in ("hours_since_infusion", "value"):
        num = pd.to_numeric(labs[col], errors="coerce")
        bad = num.isna() | ~np.isfinite(num.astype(float))
        if bad.any():
            raise CohortError(f"Column '{col}' must be a finite number; found {labs[col][bad].iloc[0]!r}",
                              file=file, row=_first_bad(bad, labs, row_numbers), column=col)
        out[col] = num.astype("float64")
    lo, hi = window or time_window() or (-np.inf, np.inf)
    hours = out["hours_since_infusion"]
    bad = (hours < lo) | (hours > hi)
    if bad.any():
        raise CohortError(f"Sample time {hours[bad].iloc[0]:g} h is outside the plausible window {lo:g} to {hi:g} h "
                          "around infusion (params.yaml ingest.time_window_hours; `crs ingest` quarantines "
                          "such rows)", file=file, row=_first_bad(bad, labs, row_numbers),
                          column="hours_since_infusion")
    bad = out["value"] < 0
    if bad.any():
        raise CohortError(f"A concentration or count cannot be negative; found {out['value'][bad].iloc[0]:g}",
                          file=file, row=_first_bad(bad, labs, row_numbers), column="value")
    censor = labs["censor"].fillna("").astype(str) if "censor" in labs else pd.Series("", index=labs.index)
    bad = ~censor.isin(CENSOR_VALUES)
    if bad.any():
        raise CohortError(f"Column 'censor' must be '', '<' or '>'; found {censor[bad].iloc[0]!r}",
                          file=file, row=_first_bad(bad, labs, row_numbers), column="censor")
    out["censor"] = censor
    if "resulted_hours" in labs:
        out["resulted_hours"] = optional_numbers(labs, "resulted_hours", file, row_numbers)
        bad = out["resulted_hours"] > hi
        if bad.any():
            raise CohortError(f"Result time {out['resulted_hours'][bad].iloc[0]:g} h is after the plausible window "
                              f"{lo:g} to {hi:g} h around infusion (params.yaml ingest.time_window_hours)",
                              file=file, row=_first_bad(bad, labs, row_numbers), column="resulted_hours")
        bad = out["resulted_hours"] < out["hours_since_infusion"]
        if bad.any():
            raise CohortError("A result cannot be available before its sample was drawn "
                              "(resulted_hours < hours_since_infusion)",
                              file=file, row=_first_bad(bad, labs, row_numbers), column="resulted_hours")
    else:
        out["resulted_hours"] = np.nan
    out["source_row"] = (pd.to_numeric(labs["source_row"], errors="coerce").astype("int64")
                         if "source_row" in labs else np.arange(len(labs), dtype="int64"))
    return out.reset_index(drop=True)


def canonical_patients(patients: pd.DataFrame, file: str | None = None, *, row_numbers=None) -> pd.DataFrame:
    _missing(patients, PATIENT_REQUIRED, "patients", file)
    out = patients.copy()
    out["patient_id"] = patient_ids(patients, "patients", file, row_numbers)
    dup = out["patient_id"].duplicated()
    if dup.any():
        raise CohortError(f"Patient {out['patient_id'][dup].iloc[0]!r} appears more than once",
                          file=file, row=_first_bad(dup, out, row_numbers), column="patient_id")
    for col in ("age_years", "weight_kg", "tumor_burden", "crs_max_grade", "crs_onset_hours",
                "severe_onset_hours", "followup_hours"):
        if col in out:
            out[col] = optional_numbers(out, col, file, row_numbers)
    for col in ("therapy", "disease", "sex", "grading"):
        if col in out:
            out[col] = out[col].astype(str)
    if "followup_hours" in out:
        bad = out["followup_hours"] < 0
        if bad.any():
            raise CohortError("followup_hours (last time the patient was observed, hours since infusion) cannot "
                              f"be negative; found {out['followup_hours'][bad].iloc[0]!r}", file=file,
                              row=int(np.flatnonzero(bad.to_numpy())[0]), column="followup_hours")
    return out.reset_index(drop=True)


def canonical_events(events: pd.DataFrame | None, file: str | None = None, *, row_numbers=None) -> pd.DataFrame:
    if events is None or events.empty:
        return pd.DataFrame({"patient_id": pd.Series(dtype=str), "event": pd.Series(dtype=str),
                             "hours_since_infusion": pd.Series(dtype="float64"),
                             "dose": pd.Series(dtype="float64"), "dose_unit": pd.Series(dtype=str)})
    _missing(events, ["patient_id", "event", "hours_since_infusion"], "events", file)
    out = events.copy()
    out["patient_id"] = patient_ids(events, "events", file, row_numbers)
    out["event"] = out["event"].astype(str)
    hours = pd.to_numeric(out["hours_since_infusion"], errors="coerce").astype("float64")
    bad = ~np.isfinite(hours.to_numpy())
    if bad.any():
        raise CohortError(f"Column 'hours_since_infusion' must be a finite number; found "
                          f"{events['hours_since_infusion'][bad].iloc[0]!r}", file=file,
                          row=_first_bad(bad, events, row_numbers), column="hours_since_infusion")
    out["hours_since_infusion"] = hours
    return out.reset_index(drop=True)


def canonical_grades(grades: pd.DataFrame | None, file: str | None = None, *,
                     row_numbers=None) -> pd.DataFrame | None:
    """patient_id, hours_since_infusion, grade (float; NaN = ungraded record). None stays None (no table).

    The grade is on the cohort's grading scale. A table without `grade` but with the simulator's
    `grade_astct` uses that column (the simulated patients are graded on ASTCT 2019).
    """
    if grades is None:
        return None
    frame = grades
    if "grade" not in frame and "grade_astct" in frame:
        frame = frame.rename(columns={"grade_astct": "grade"})
    _missing(frame, GRADE_COLUMNS, "grades", file)
    frame = frame.reset_index(drop=True)
    grade = optional_numbers(frame, "grade", file, row_numbers)  # text such as 'severe' is an error, not unknown
    out = pd.DataFrame({"patient_id": patient_ids(frame, "grades", file, row_numbers).to_numpy(),
                        "hours_since_infusion": pd.to_numeric(frame["hours_since_infusion"], errors="coerce")
                        .to_numpy("float64", na_value=np.nan),
                        "grade": grade.to_numpy("float64", na_value=np.nan)})
    bad = ~np.isfinite(out["hours_since_infusion"].to_numpy())
    if bad.any():
        raise CohortError("Column 'hours_since_infusion' of the grades table must be a finite number; found "
                          f"{frame['hours_since_infusion'][bad].iloc[0]!r}",
                          file=file, row=_first_bad(bad, frame, row_numbers), column="hours_since_infusion")
    g = out["grade"]
    bad = g.notna() & (~g.between(0, 5) | (g != np.round(g)))
    if bad.any():
        raise CohortError(f"A CRS grade must be a whole number 0-5 (or empty: ungraded); found {g[bad].iloc[0]:g}",
                          file=file, row=_first_bad(bad, frame, row_numbers), column="grade")
    return out


def result_time_counts(labs: pd.DataFrame, turnaround: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per analyte of `turnaround` that has lab rows: rows, rows without a result time (their
    availability is assumed: draw + `turnaround_hours`), and how many of those the assumption places
    later than the draw (turnaround > 0). Used by ingest (registry defaults) and featurize (the
    model's effective map)."""
    if labs.empty or not turnaround:
        return {}
    analyte = labs["analyte"].astype(str)
    missing = (labs["resulted_hours"].isna() if "resulted_hours" in labs
               else pd.Series(True, index=labs.index))
    rows = analyte.value_counts()
    without = analyte[missing.to_numpy()].value_counts()
    out = {}
    for code in sorted(turnaround):
        if rows.get(code, 0):
            n = int(without.get(code, 0))
            hours = float(turnaround[code])
            out[code] = {"rows": int(rows[code]), "without_result_time": n, "turnaround_hours": hours,
                         "assumed_later_than_draw": n if hours > 0 else 0}
    return out
