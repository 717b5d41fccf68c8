"""Landmark design: who is eligible at L and what the label is. This is what keeps numbers honest.

A pure function of the canonical tables (patients, plus per-patient times the feature engine reads
from labs, events and grades), vectorised over patients × landmarks.

Known severe time (the patient is at grade >= 3 from then on): the earliest of
- the graded `severe_onset_hours`;
- the first recorded grade >= 3 in the optional `grades` table;
- for ASTCT-graded patients (`grading` starts with "ASTCT"), the first vasopressor: under ASTCT 2019,
  hypotension that needs a vasopressor *is* grade 3, so a vasopressor record before the recorded
  onset only reflects documentation lag.

Follow-up (last time the patient was observed): `followup_hours`, raised to the last record we hold
(a lab draw of an analyte the model reads, a treatment event, a recorded grade, a CRS onset). Where
`followup_hours` is unknown, the last record is a lower bound and nothing beyond it is assumed: a
patient is never taken as observed past their last record.

Per landmark L and horizon h, `outcome_status` (first that applies) and `eligible` / `label`:

| outcome_status   | meaning                                                         | eligible | label |
|------------------|-----------------------------------------------------------------|----------|-------|
| already_severe   | known severe at or before L                                     | no       | NaN   |
| not_observed     | follow-up ended before L (training/evaluation cohorts only)     | no       | NaN   |
| outcome_unknown  | crs_max_grade missing                                           | yes      | NaN   |
| onset_unknown    | crs_max_grade >= 3 but no severe onset time                     | yes      | NaN   |
| event            | grade >= 3 first reached in (L, L + h]                          | yes      | 1     |
| no_event         | observed to L + h without it                                    | yes      | 0     |
| censored         | follow-up ended in [L, L + h) without it                        | yes      | NaN   |
| not_labelled     | a cohort to be scored (no crs_max_grade column)                 | yes      | NaN   |

Training and evaluation use `eligible & label.notna()`; the unknown rows are counted
(:func:`landmark_counts`), never silently negative. A cohort to be scored has no outcome columns:
follow-up does not apply there (the clinic is asking about a patient in front of it), only the
known severe status (`already_severe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SEVERE_GRADE = 3
PROXY_EVENT = "vasopressors"  # ASTCT 2019: a vasopressor for CRS hypotension = grade >= 3
STATUSES = ("already_severe", "not_observed", "outcome_unknown", "onset_unknown", "event", "no_event",
            "censored", "not_labelled")
ELIGIBLE_STATUSES = ("outcome_unknown", "onset_unknown", "event", "no_event", "censored", "not_labelled")


@dataclass(frozen=True)
class PatientTimes:
    """Per-patient times (hours since infusion) aligned with the patients table; NaN = none."""

    last_record_hours: np.ndarray      # last lab draw / event / recorded grade
    first_vasopressor_hours: np.ndarray
    first_severe_grade_hours: np.ndarray  # first grade >= 3 in the grades table

    @classmethod
    def empty(cls, n: int) -> PatientTimes:
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan))


def _column(patients: pd.DataFrame, name: str) -> np.ndarray:
    if name not in patients:
        return np.full(len(patients), np.nan)
    return pd.to_numeric(patients[name], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def is_astct(patients: pd.DataFrame) -> np.ndarray:
    """Patients graded on the ASTCT 2019 scale (the vasopressor rule applies to them only)."""
    if "grading" not in patients:
        return np.zeros(len(patients), dtype=bool)
    text = patients["grading"].astype("string").str.strip().str.upper()
    return text.str.startswith("ASTCT").fillna(False).to_numpy(dtype=bool)


def known_severe_hours(patients: pd.DataFrame, times: PatientTimes | None = None) -> np.ndarray:
    """Per patient: the earliest time the patient is known to be at grade >= 3 (NaN: never known)."""
    times = times or PatientTimes.empty(len(patients))
    vaso = np.where(is_astct(patients), times.first_vasopressor_hours, np.nan)
    return np.fmin(np.fmin(_column(patients, "severe_onset_hours"), times.first_severe_grade_hours), vaso)


def followup_lower_bound(patients: pd.DataFrame, times: PatientTimes | None = None) -> np.ndarray:
    """`followup_hours` raised to the last record we hold; the last record alone when it is unknown."""
    times = times or PatientTimes.empty(len(patients))
    fu = np.fmax(_column(patients, "followup_hours"), times.last_record_hours)
    for col in ("crs_onset_hours", "severe_onset_hours"):
        fu = np.fmax(fu, _column(patients, col))
    return fu


def landmark_rows(patients: pd.DataFrame, landmarks: list[float], horizon_hours: float,
                  times: PatientTimes | None = None) -> pd.DataFrame:
    """One row per patient × landmark (patient-major): `eligible`, `label`, `outcome_status`."""
    n, k = len(patients), len(landmarks)
    times = times or PatientTimes.empty(n)
    rows = pd.DataFrame({
        "patient_id": np.repeat(patients["patient_id"].to_numpy(), k),
        "landmark_hours": np.tile(np.asarray(landmarks, dtype="float64"), n),
    })
    L = rows["landmark_hours"].to_numpy()
    severe = np.repeat(known_severe_hours(patients, times), k)
    already = severe <= L  # NaN compares False
    if "crs_max_grade" not in patients:  # a cohort to be scored: outcome unknown, follow-up irrelevant
        status = np.where(already, "already_severe", "not_labelled")
        label = np.full(len(rows), np.nan)
    else:
        grade = np.repeat(_column(patients, "crs_max_grade"), k)
        graded_onset = np.repeat(_column(patients, "severe_onset_hours"), k)
        followup = np.repeat(followup_lower_bound(patients, times), k)
        end = L + horizon_hours
        status = np.select(
            [already, ~(followup >= L), np.isnan(grade),
             (grade >= SEVERE_GRADE) & np.isnan(graded_onset),
             (severe > L) & (severe <= end), followup >= end],
            ["already_severe", "not_observed", "outcome_unknown", "onset_unknown", "event", "no_event"],
            default="censored")
        label = np.select([status == "event", status == "no_event"], [1.0, 0.0], default=np.nan)
    rows["eligible"] = np.isin(status, ELIGIBLE_STATUSES)
    rows["label"] = label
    rows["outcome_status"] = status.astype(object)
    return rows


def landmark_counts(matrix: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per landmark ("24h", ...) and pooled: rows by outcome status, eligible, labelled and events.

    `eligible = labelled + censored + onset_unknown + outcome_unknown + not_labelled`; the unknown
    rows are excluded from training and evaluation and reported here.
    """
    table = pd.crosstab(matrix["landmark_hours"].to_numpy(), matrix["outcome_status"].astype(str).to_numpy())

    def block(counts: pd.Series, part: pd.DataFrame) -> dict[str, Any]:
        get = {s: int(counts.get(s, 0)) for s in STATUSES}
        labelled = part["eligible"].to_numpy(bool) & part["label"].notna().to_numpy()
        return {"rows": int(len(part)), "eligible": int(part["eligible"].sum()),
                "labelled": int(labelled.sum()),
                "events": int(np.nansum(part["label"].to_numpy(dtype="float64")[labelled])),
                "unknown_censored": get["censored"], "unknown_onset": get["onset_unknown"],
                "unknown_outcome": get["outcome_unknown"], "not_labelled": get["not_labelled"],
                "already_severe": get["already_severe"], "not_observed": get["not_observed"]}

    out: dict[str, dict[str, int]] = {}
    for landmark, part in matrix.groupby("landmark_hours", sort=True):
        out[f"{landmark:g}h"] = block(table.loc[landmark], part)
    out["pooled"] = block(table.sum(axis=0), matrix)
    return out
