"""Therapies, treatment events and CRS outcomes from clinical tables (SDTM EX/CM/AE, OMOP drug/condition).

Stated rules:
- day 0 (infusion) is the earliest administration of a CAR-T product or bispecific named in
  data/reference/treatments.csv (lymphodepleting chemotherapy is not day 0);
- a date without a clock time is placed at the start of that day for CRS onsets (a patient counts as
  severe no later than recorded) and at the end of that day for treatments (a treatment is never
  known before it was given); how many times were placed this way is reported in validation.json;
- crs_max_grade is the highest grade recorded; severe_onset_hours the first time grade >= 3 was
  recorded; patients with no CRS record get grade 0 when the outcome table was supplied at all;
- the grade course (a predictor: the grade recorded by the landmark) places a date-only record at the
  end of its day (a grade is never known before it was recorded). It is kept only when the study
  records grade changes as separate records (some patient has records of different grades): a study
  with one record per episode at its worst grade would show that worst grade from the episode's start;
- follow-up (last time observed) is the latest of the dates given; a date without a clock time is
  placed at the start of that day (follow-up is never claimed longer than recorded).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from cohorts.ingest.times import HOUR, infusion_of, num, parse_datetimes, plausible_years
from cohorts.ingest.vocab import _map_uniques
from crs_settings import reference_dir

CRS_PATTERN = r"cytokine[\s-]*release[\s-]*syndrome|^\s*crs\s*$"


@lru_cache(maxsize=2)
def _treatments(path: str) -> list[tuple[re.Pattern, str, str]]:
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [(re.compile(r["pattern"], re.IGNORECASE), r["kind"], r["canonical"]) for _, r in table.iterrows()]


def match_treatments(names: pd.Series) -> pd.DataFrame:
    """Per row: kind ('therapy', 'event' or None) and canonical name, from treatments.csv patterns."""
    rules = _treatments(str(reference_dir() / "treatments.csv"))

    def one(name: object) -> tuple[str | None, str | None]:
        for pattern, kind, canonical in rules:
            if pattern.search(str(name)):
                return kind, canonical
        return None, None

    pairs = _map_uniques(names.astype("string"), one)
    pairs = pairs.map(lambda p: p if isinstance(p, tuple) else (None, None))
    return pd.DataFrame({"kind": pairs.str[0], "canonical": pairs.str[1]}, index=names.index)


def clock_hours(raw: pd.Series, patient_ids: pd.Series, infusion: pd.Series,
                date_only: str) -> tuple[pd.Series, int]:
    """Hours since infusion; date-only values at the start ('start') or end ('end') of that day."""
    ts, problem = parse_datetimes(raw)
    is_date = (problem == "imprecise_time").to_numpy()
    if is_date.any():
        day = pd.to_datetime(raw.astype("string").str.strip().str[:10], format="%Y-%m-%d", errors="coerce")
        day = plausible_years(day)
        shift = pd.Timedelta(hours=23, minutes=59) if date_only == "end" else pd.Timedelta(0)
        ts = ts.copy()
        ts[is_date] = (day[is_date] + shift).to_numpy()
    ref = infusion_of(patient_ids, infusion)
    hours = ((ts.astype("datetime64[ns]") - ref) / HOUR).astype("float64")
    return hours, int((is_date & hours.notna().to_numpy()).sum())


def infusion_from(records: pd.DataFrame) -> tuple[pd.Series, pd.Series, int]:
    """records: patient_id, name, start (text). -> (infusion datetime, therapy, date-only count)."""
    records = records.reset_index(drop=True)
    kinds = match_treatments(records["name"])
    prod = records[(kinds["kind"] == "therapy").to_numpy()].assign(therapy=kinds["canonical"])
    ts, problem = parse_datetimes(prod["start"])
    prod = prod.assign(ts=ts.to_numpy(), problem=problem.to_numpy())
    first = prod.sort_values("ts").groupby("patient_id", sort=True).first()
    date_only = int((first["problem"] == "imprecise_time").sum())
    return first["ts"].dropna(), first["therapy"], date_only


def events_from(records: pd.DataFrame, infusion: pd.Series) -> tuple[pd.DataFrame, int]:
    """records: patient_id, name, start, dose, dose_unit -> canonical events (date-only at day end)."""
    records = records.reset_index(drop=True)
    kinds = match_treatments(records["name"])
    ev = records[(kinds["kind"] == "event").to_numpy()].copy()
    ev["event"] = kinds.loc[ev.index, "canonical"]
    hours, n_date = clock_hours(ev["start"], ev["patient_id"], infusion, "end")
    out = pd.DataFrame({"patient_id": ev["patient_id"].astype(str), "event": ev["event"].astype(str),
                        "hours_since_infusion": hours,
                        "dose": num(ev["dose"]) if "dose" in ev else np.nan,
                        "dose_unit": ev["dose_unit"].astype("string").fillna("").astype(str)
                        if "dose_unit" in ev else ""})
    return out[out["hours_since_infusion"].notna()].reset_index(drop=True), n_date


def outcomes_from(grades: pd.DataFrame, patient_ids: pd.Series, infusion: pd.Series) -> tuple[pd.DataFrame, int]:
    """grades: patient_id, grade (text/number), start (text) -> per patient crs_max_grade and onsets."""
    grade = num(grades["grade"].astype("string").str.extract(r"(\d)")[0])
    hours, n_date = clock_hours(grades["start"], grades["patient_id"], infusion, "start")
    g = pd.DataFrame({"patient_id": grades["patient_id"].astype(str).to_numpy(), "grade": grade.to_numpy(),
                      "hours": hours.to_numpy()})
    out = pd.DataFrame({"patient_id": patient_ids.astype(str).to_numpy()}).set_index("patient_id")
    out["crs_max_grade"] = g.groupby("patient_id")["grade"].max()
    ungraded = out.index.isin(g["patient_id"]) & out["crs_max_grade"].isna().to_numpy()
    out["crs_max_grade"] = out["crs_max_grade"].fillna(0.0)
    out.loc[ungraded, "crs_max_grade"] = np.nan  # a CRS record without any grade: unknown, not 0
    out["crs_onset_hours"] = g[(g["grade"] >= 1) | g["grade"].isna()].groupby("patient_id")["hours"].min()
    out["severe_onset_hours"] = g[g["grade"] >= 3].groupby("patient_id")["hours"].min()
    return out.reset_index(), n_date


def grade_course(grades: pd.DataFrame, infusion: pd.Series) -> tuple[pd.DataFrame | None, str]:
    """grades: patient_id, grade, start (text) -> canonical grades table (or None) and a note.

    None when no record has both a grade and a time, or when no patient has records of different
    grades (one record per episode, at its worst grade, would leak that grade to its start).
    """
    grade = num(grades["grade"].astype("string").str.extract(r"(\d)")[0])
    hours, _ = clock_hours(grades["start"], grades["patient_id"], infusion, "end")
    g = pd.DataFrame({"patient_id": grades["patient_id"].astype(str).to_numpy(),
                      "hours_since_infusion": hours.to_numpy(), "grade": grade.to_numpy()})
    g = g[g["hours_since_infusion"].notna() & g["grade"].notna()]
    if g.empty:
        return None, "no CRS record has both a grade and a time: no grade course (current_grade unknown)"
    if not (g.groupby("patient_id")["grade"].nunique() > 1).any():
        return None, ("no patient has CRS records of different grades (one record per episode, likely at its "
                      "worst grade): no grade course, current_grade unknown (it would see the worst grade "
                      "from the episode's start)")
    g = g.sort_values(["patient_id", "hours_since_infusion", "grade"], kind="mergesort").reset_index(drop=True)
    return g, f"grade course: {len(g)} timed CRS grade record(s) of {g['patient_id'].nunique()} patient(s)"


def last_seen_hours(records: pd.DataFrame, patient_ids: pd.Series, infusion: pd.Series) -> pd.Series:
    """records: patient_id, when (text dates) -> per patient in `patient_ids` the latest time, in hours
    since infusion (date-only at 00:00: never longer than recorded); NaN where none."""
    out = pd.Series(np.nan, index=pd.Index(patient_ids.astype(str).to_numpy(), name="patient_id"))
    if records.empty:
        return out
    hours, _ = clock_hours(records["when"], records["patient_id"].astype(str), infusion, "start")
    last = pd.Series(hours.to_numpy(), index=records["patient_id"].astype(str).to_numpy()).groupby(level=0).max()
    return out.fillna(last.reindex(out.index))
