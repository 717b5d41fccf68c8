"""OMOP CDM (v5.3/5.4): a folder with person, measurement [, drug_exposure, condition_occurrence,
observation, concept] as CSV or Parquet (column names any case).

measurement -> labs. The analyte comes from measurement_concept_id via the folder's own `concept`
table (concept_id -> LOINC concept_code) when present, else via data/reference/omop_concepts.csv (a
few verified standard concepts), else from measurement_source_value (a LOINC code or a name).
The unit from unit_source_value, else unit_concept_id (UCUM code in concept). The value is
value_as_number, else value_source_value (text such as '<2.5'). The time is measurement_datetime,
else measurement_date + measurement_time; a date alone is `imprecise_time`.
drug_exposure -> day 0 (first CAR-T/bispecific, by drug_source_value or concept name) and events.
condition_occurrence (CRS by condition_source_value or concept name) and observation rows whose
observation_source_value names a CRS grade (value_as_number or value_as_string) -> outcomes and,
where grades change over time, the grade course.
followup_hours = observation_period_end (latest period) or the death date where given, else the
latest drug_exposure, condition_occurrence, observation and measurement date (clinical.py states
the date rules). Without drug_exposure day 0 is unknown: every lab row is quarantined
(no_infusion_time) and treatments are unknown (no events table).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.clinical import (
    CRS_PATTERN,
    events_from,
    grade_course,
    infusion_from,
    last_seen_hours,
    outcomes_from,
)
from cohorts.ingest.source import Source, row_numbers
from cohorts.ingest.tables import columns_of, find_table, iter_chunks, read_all, require
from cohorts.ingest.tables import text_column as _col
from cohorts.ingest.times import hours_from, infusion_of, num, parse_datetimes
from cohorts.ingest.vocab import map_analytes
from crs_settings import reference_dir

TEXT = {c: "string" for c in ("person_id", "measurement_source_value", "value_source_value",
                               "unit_source_value", "measurement_datetime", "measurement_date",
                               "measurement_time", "drug_source_value", "drug_exposure_start_datetime",
                               "drug_exposure_start_date", "condition_source_value",
                               "condition_start_datetime", "condition_start_date",
                               "observation_source_value", "value_as_string", "observation_datetime",
                               "observation_date", "gender_source_value", "concept_code", "concept_name",
                               "vocabulary_id", "dose_unit_source_value", "observation_period_end_date",
                               "observation_period_end_datetime", "death_date", "death_datetime",
                               "drug_exposure_end_date", "drug_exposure_end_datetime", "condition_end_date",
                               "condition_end_datetime")}
GRADE_PATTERN = r"(?:crs|cytokine[\s-]*release[\s-]*syndrome).*grade|grade.*(?:crs|cytokine)"


def _lower(path: Path) -> dict[str, str]:
    return {c.strip(): c.strip().lower() for c in columns_of(path)}


def _table(folder: Path, name: str, required: list[str], needed: bool) -> pd.DataFrame | None:
    path = find_table(folder, name, required=needed)
    if path is None:
        return None
    frame = read_all(path, TEXT, _lower(path))
    require(list(frame.columns), required, path, name)
    if "person_id" in frame:
        frame["person_id"] = _s(frame["person_id"]).str.replace(r"\.0$", "", regex=True).str.strip()
    return frame


def _s(series: pd.Series) -> pd.Series:
    return series.astype("string")


def _concepts(folder: Path) -> tuple[pd.Series, pd.Series]:
    """concept_id (text) -> code and -> name; the folder's own concept table first, then ours."""
    ours = pd.read_csv(reference_dir() / "omop_concepts.csv", dtype=str, keep_default_na=False)
    frames = [ours.rename(columns={"code": "concept_code", "name": "concept_name"})]
    theirs = _table(folder, "concept", ["concept_id", "concept_code"], False)
    if theirs is not None:
        frames.insert(0, theirs)
    table = pd.concat([f[["concept_id", "concept_code"] + (["concept_name"] if "concept_name" in f else [])]
                       for f in frames], ignore_index=True)
    table["concept_id"] = _s(table["concept_id"]).str.replace(r"\.0$", "", regex=True)
    table = table.drop_duplicates("concept_id")
    names = table["concept_name"] if "concept_name" in table else pd.Series("", index=table.index)
    return (pd.Series(table["concept_code"].to_numpy(), index=table["concept_id"]),
            pd.Series(names.to_numpy(), index=table["concept_id"]))


def _when(frame: pd.DataFrame, prefix: str, suffix: str = "") -> pd.Series:
    """<prefix>_datetime, else <prefix>_date (+ <prefix>_time) as one text column."""
    dt = _col(frame, f"{prefix}{suffix}_datetime")
    date = _col(frame, f"{prefix}{suffix}_date")
    time = _col(frame, f"{prefix}_time") if not suffix else pd.Series(pd.NA, index=frame.index, dtype="string")
    joined = date.where(time.isna() | (time.str.strip() == ""), date.str.strip() + "T" + time.str.strip())
    return dt.where(dt.notna() & (dt.str.strip() != ""), joined)


def open_omop(folder: Path, chunk_rows: int) -> Source:
    if not folder.is_dir():
        raise CohortError("--format omop expects a folder with person and measurement tables (CSV or Parquet)",
                          file=str(folder))
    person_path = find_table(folder, "person")
    person = _table(folder, "person", ["person_id"], True)
    if person.empty:
        raise CohortError("The person table has no rows", file=str(person_path))
    codes, names = _concepts(folder)
    patients = pd.DataFrame({"patient_id": person["person_id"].astype(str)})
    notes: list[str] = []
    drugs = _table(folder, "drug_exposure", ["person_id"], False)
    infusion, therapy, events = pd.Series(dtype="datetime64[ns]"), pd.Series(dtype=object), None
    if drugs is not None:
        dname = _col(drugs, "drug_source_value")
        if "drug_concept_id" in drugs:
            cname = _s(drugs["drug_concept_id"]).str.replace(r"\.0$", "", regex=True).map(names)
            dname = dname.where(dname.notna() & (dname.str.strip() != ""), cname)
        rec = pd.DataFrame({"patient_id": drugs["person_id"].astype(str), "name": dname,
                            "start": _when(drugs, "drug_exposure", "_start"),
                            "dose": _col(drugs, "quantity"), "dose_unit": _col(drugs, "dose_unit_source_value")})
        infusion, therapy, n_date = infusion_from(rec)
        if n_date:
            notes.append(f"{n_date} patient(s) have a CAR-T/bispecific start date without a clock time: "
                         "day 0 unknown, their date-time lab rows are quarantined (no_infusion_time)")
        infusion = infusion[infusion.notna()]
        events, n_ev = events_from(rec, infusion)
        if n_ev:
            notes.append(f"{n_ev} treatment time(s) had a date only: placed at 23:59 of that day")
    else:
        notes.append("no drug_exposure table: day 0 unknown, every lab row is quarantined (no_infusion_time)")
    patients["therapy"] = patients["patient_id"].map(therapy).astype(object).fillna("other").to_numpy()
    if "year_of_birth" in person:
        yob = num(person["year_of_birth"]).to_numpy()
        year = infusion_of(patients["patient_id"], infusion).dt.year.to_numpy(dtype=float)
        patients["age_years"] = year - yob
    gender = _col(person, "gender_source_value")
    if "gender_concept_id" in person:
        gender = gender.fillna(_s(person["gender_concept_id"]).str.replace(r"\.0$", "", regex=True).map(codes))
    patients["sex"] = gender.fillna("").astype(str).to_numpy()
    patients["disease"] = "unknown"
    patients, grades, seen = _outcomes(folder, patients, infusion, names, notes)
    if drugs is not None:
        seen += [_dated(drugs, "drug_exposure", "_start"), _dated(drugs, "drug_exposure", "_end")]
    patients["followup_hours"] = _followup(folder, patients["patient_id"], infusion, seen, notes).to_numpy()
    m_path = find_table(folder, "measurement")
    cols = _lower(m_path)
    mnames = list(cols.values())
    require(mnames, ["person_id"], m_path, "measurement")
    if not {"measurement_concept_id", "measurement_source_value"} & set(mnames):
        raise CohortError("The measurement table needs measurement_concept_id or measurement_source_value",
                          file=str(m_path), column="measurement_concept_id")
    if not {"value_as_number", "value_source_value"} & set(mnames):
        raise CohortError("The measurement table needs value_as_number or value_source_value",
                          file=str(m_path), column="value_as_number")
    if not {"measurement_datetime", "measurement_date"} & set(mnames):
        raise CohortError("The measurement table needs measurement_datetime or measurement_date",
                          file=str(m_path), column="measurement_datetime")

    def chunks() -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in iter_chunks(m_path, chunk_rows, TEXT, cols):
            yield _raw_measurement(chunk.reset_index(drop=True), offset, infusion, codes)
            offset += len(chunk)

    provenance = {"synthetic": False, "source": "omop", "path": str(folder), "patients_file": str(person_path)}
    return Source(patients, events, str(m_path), chunks, provenance, notes, grades=grades,
                  followup_from_records=True,
                  raw_rows=lambda m, offset: _raw_measurement(m.reset_index(drop=True), offset, infusion, codes))


def _dated(frame: pd.DataFrame, prefix: str, suffix: str = "") -> pd.DataFrame:
    return pd.DataFrame({"patient_id": frame["person_id"].astype(str).to_numpy(),
                         "when": _when(frame, prefix, suffix).to_numpy()})


def _followup(folder: Path, patient_ids: pd.Series, infusion: pd.Series, seen: list[pd.DataFrame],
              notes: list[str]) -> pd.Series:
    """observation_period end (or death) where given, else the latest dated record."""
    ends = []
    period = _table(folder, "observation_period", ["person_id"], False)
    if period is not None:
        ends.append(_dated(period, "observation_period", "_end"))
    death = _table(folder, "death", ["person_id"], False)
    if death is not None:
        ends.append(_dated(death, "death"))
    stated = last_seen_hours(pd.concat(ends, ignore_index=True).dropna(subset=["when"]) if ends
                             else pd.DataFrame(columns=["patient_id", "when"]), patient_ids, infusion)
    records = last_seen_hours(pd.concat(seen, ignore_index=True).dropna(subset=["when"]) if seen
                              else pd.DataFrame(columns=["patient_id", "when"]), patient_ids, infusion)
    notes.append("followup_hours: observation_period end (or death) for "
                 f"{int(stated.notna().sum())} patient(s), else the latest drug, condition, observation or "
                 "measurement date (date-only at 00:00); unknown for patients without any")
    return stated.fillna(records)


def _outcomes(folder: Path, patients: pd.DataFrame, infusion: pd.Series, names: pd.Series,
              notes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame | None, list[pd.DataFrame]]:
    records = []
    seen: list[pd.DataFrame] = []
    cond = _table(folder, "condition_occurrence", ["person_id"], False)
    if cond is not None:
        text = _col(cond, "condition_source_value")
        if "condition_concept_id" in cond:
            text = text.fillna(_s(cond["condition_concept_id"]).str.replace(r"\.0$", "", regex=True).map(names))
        crs = text.str.contains(CRS_PATTERN, case=False, regex=True, na=False) | \
            text.str.contains(r"cytokine release", case=False, na=False)
        c = cond[crs.to_numpy()]
        records.append(pd.DataFrame({"patient_id": c["person_id"].astype(str),
                                     "grade": text[crs].str.extract(r"(?i)grade\s*(\d)")[0],
                                     "start": _when(c, "condition", "_start")}))
        seen += [_dated(cond, "condition", "_start"), _dated(cond, "condition", "_end")]
    obs = _table(folder, "observation", ["person_id"], False)
    if obs is not None:
        text = _col(obs, "observation_source_value")
        graded = text.str.contains(GRADE_PATTERN, case=False, regex=True, na=False).to_numpy()
        o = obs[graded]
        grade = _col(o, "value_as_number").fillna(_col(o, "value_as_string"))
        records.append(pd.DataFrame({"patient_id": o["person_id"].astype(str), "grade": grade,
                                     "start": _when(o, "observation")}))
        seen.append(_dated(obs, "observation"))
    if not records:
        notes.append("no condition_occurrence/observation: CRS outcomes absent (a cohort to be scored)")
        return patients, None, seen
    crs = pd.concat(records, ignore_index=True)
    outcomes, n_date = outcomes_from(crs, patients["patient_id"], infusion)
    if n_date:
        notes.append(f"{n_date} CRS record time(s) had a date only: placed at 00:00 of that day")
    out = patients.merge(outcomes, on="patient_id", how="left")
    out["grading"] = "unknown"
    grades, note = grade_course(crs, infusion)
    notes.append(f"condition_occurrence/observation: {note}")
    return out, grades, seen


def _raw_measurement(m: pd.DataFrame, offset: int, infusion: pd.Series, codes: pd.Series) -> pd.DataFrame:
    source = _col(m, "measurement_source_value")
    code = pd.Series(None, index=m.index, dtype=object)
    if "measurement_concept_id" in m:
        concept = _s(m["measurement_concept_id"]).str.replace(r"\.0$", "", regex=True)
        code = map_analytes(concept.map(codes))
    code = code.where(code.notna(), map_analytes(source))
    value = _col(m, "value_as_number")
    value = value.where(value.notna() & (value.str.strip() != ""), _col(m, "value_source_value"))
    unit = _col(m, "unit_source_value")
    if "unit_concept_id" in m:
        ucode = _s(m["unit_concept_id"]).str.replace(r"\.0$", "", regex=True).map(codes)
        unit = unit.where(unit.notna() & (unit.str.strip() != ""), ucode)
    when = _when(m, "measurement")
    pid = _col(m, "person_id").str.strip()
    ts, problem = parse_datetimes(when)
    hours, p2 = hours_from(ts, pid, infusion)
    problem = problem.where(problem != "", p2)
    rid = num(_col(m, "measurement_id"))
    source_row = np.where(rid.notna(), rid.fillna(-1), row_numbers(offset, len(m))).astype("int64")
    analyte_in = source.fillna(_col(m, "measurement_concept_id"))
    return pd.DataFrame({"source_row": source_row, "patient_id": pid.to_numpy(),
                         "analyte_in": analyte_in.to_numpy(), "analyte": code.to_numpy(),
                         "value_in": value.to_numpy(), "unit_in": unit.to_numpy(), "time_in": when.to_numpy(),
                         "hours": hours.to_numpy(), "time_problem": problem.to_numpy()})
