"""Long format: a folder with labs.csv|parquet and patients.csv|parquet (column names any case).

labs: patient_id, analyte (name, code or LOINC as written), value (number or text such as '<2.5'),
      unit, and the time as `hours_since_infusion` or as `datetime` (ISO 8601; then patients needs
      `infusion_datetime`); optional `censor`, `resulted_hours` or `resulted_datetime`.
patients: patient_id (required), the canonical patient columns of cohorts/schema.py where known,
      optional infusion_datetime; extra columns are carried along. Follow-up: `followup_hours`, else
      `last_contact_datetime` (ISO 8601, with infusion_datetime), else unknown (the landmark rules
      then take the patient's last record as a lower bound, features/landmarks.py).
events (optional): patient_id, event, hours_since_infusion [, dose, dose_unit]. No events file =
      treatments not recorded (features unknown); a file with a header only = none given.
grades (optional): patient_id, hours_since_infusion, grade (the CRS grade course, on the cohort's scale).
A canonical cohort folder (written by `crs simulate` / `crs ingest`: provenance.json, no unit column)
is read with the registry's canonical units, so the simulated cohort flows through the same checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.source import Source, row_numbers
from cohorts.ingest.tables import columns_of, find_table, iter_chunks, read_all, require
from cohorts.ingest.times import hours_from, num, parse_datetimes, parse_hours
from cohorts.ingest.vocab import map_analytes, vocab

TEXT = {"patient_id": "string", "analyte": "string", "unit": "string", "censor": "string",
        "datetime": "string", "resulted_datetime": "string", "infusion_datetime": "string",
        "last_contact_datetime": "string", "grading": "string"}


def _lower(columns: list[str]) -> dict[str, str]:
    return {c.strip(): c.strip().lower() for c in columns}


def _patients(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    patients = read_all(path, TEXT, _lower(columns_of(path)))
    if patients.empty:
        raise CohortError("The patients table has no rows", file=str(path))
    require(list(patients.columns), ["patient_id"], path, "patients")
    patients["patient_id"] = patients["patient_id"].astype("string").str.strip()
    blank = patients["patient_id"].isna() | (patients["patient_id"] == "")
    if blank.any():
        raise CohortError("A patient has a blank patient_id", file=str(path),
                          row=int(np.flatnonzero(blank.to_numpy())[0]), column="patient_id")
    _check_numbers(patients, path)
    infusion = pd.Series(dtype="datetime64[ns]")
    if "infusion_datetime" in patients:
        ts, problem = parse_datetimes(patients["infusion_datetime"])
        bad = (problem != "") & (problem != "missing_time")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CohortError(f"infusion_datetime {patients['infusion_datetime'].iloc[i]!r} is not an ISO "
                              "date-time with a clock time (e.g. 2024-03-01T14:30)", file=str(path),
                              row=i, column="infusion_datetime")
        infusion = pd.Series(ts.to_numpy(), index=patients["patient_id"].astype(str)).dropna()
    if "followup_hours" not in patients and "last_contact_datetime" in patients:
        if infusion.empty:
            raise CohortError("patients give 'last_contact_datetime' but no 'infusion_datetime' to measure "
                              "follow-up from", file=str(path), column="infusion_datetime")
        ts, problem = parse_datetimes(patients["last_contact_datetime"])
        bad = (problem != "") & (problem != "missing_time") & (problem != "imprecise_time")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CohortError(f"last_contact_datetime {patients['last_contact_datetime'].iloc[i]!r} is not an "
                              "ISO date-time (e.g. 2024-03-09T10:00)", file=str(path), row=i,
                              column="last_contact_datetime")
        from cohorts.ingest.clinical import last_seen_hours

        dated = pd.DataFrame({"patient_id": patients["patient_id"].astype(str).to_numpy(),
                              "when": patients["last_contact_datetime"].to_numpy()}).dropna(subset=["when"])
        patients["followup_hours"] = last_seen_hours(dated, patients["patient_id"], infusion).to_numpy()
    return patients, infusion


NUMERIC_PATIENT_COLUMNS = {"age_years": (0, 120), "weight_kg": (1, 400), "tumor_burden": (-1e9, 1e9),
                           "crs_max_grade": (0, 5), "crs_onset_hours": (-720, 8760),
                           "severe_onset_hours": (-720, 8760), "followup_hours": (0, 87600)}


def _check_numbers(patients: pd.DataFrame, path: Path) -> None:
    """Text or impossible numbers in a numeric patient column stop the ingest at the first bad cell."""
    for col, (lo, hi) in NUMERIC_PATIENT_COLUMNS.items():
        if col not in patients:
            continue
        raw = patients[col]
        value = num(raw)
        blank = raw.isna() | (raw.astype("string").str.strip() == "")
        bad = (value.isna() & ~blank) | (value < lo) | (value > hi)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise CohortError(f"{col} must be a number from {lo:g} to {hi:g} (or blank if unknown); found "
                              f"{raw.iloc[i]!r} for patient {patients['patient_id'].iloc[i]!r}",
                              file=str(path), row=i, column=col)


def open_long(folder: Path, chunk_rows: int) -> Source:
    if not folder.is_dir():
        raise CohortError("--format long expects a folder holding labs.csv|parquet and "
                          "patients.csv|parquet", file=str(folder))
    labs_path = find_table(folder, "labs")
    patients_path = find_table(folder, "patients")
    patients, infusion = _patients(patients_path)
    cols = _lower(columns_of(labs_path))
    names = list(cols.values())
    prov_path = folder / "provenance.json"
    canonical_units = "unit" not in names and prov_path.exists()
    require(names, ["patient_id", "analyte", "value"] + ([] if canonical_units else ["unit"]),
            labs_path, "labs")
    if "hours_since_infusion" not in names and "datetime" not in names:
        raise CohortError("The labs table needs the sample time as 'hours_since_infusion' or as "
                          f"'datetime' (ISO 8601); it has {names}", file=str(labs_path),
                          column="hours_since_infusion")
    if "hours_since_infusion" not in names and infusion.empty:
        raise CohortError("labs give 'datetime' but patients has no 'infusion_datetime' to measure "
                          "hours since infusion from", file=str(patients_path), column="infusion_datetime")
    if prov_path.exists():
        provenance = json.loads(prov_path.read_text())
    else:
        provenance = {"synthetic": False, "source": "long", "path": str(folder)}
    provenance["patients_file"] = str(patients_path)
    notes = ([f"{labs_path.name} has no unit column; its folder {folder.name} is a canonical cohort folder "
              "(provenance.json), so values are in the canonical units of data/reference/analytes.csv"]
             if canonical_units else [])
    if "followup_hours" in patients:
        source = "followup_hours" if "last_contact_datetime" not in patients else "last_contact_datetime"
        notes.append(f"followup_hours from the patients table ({source}); unknown where blank")
    else:
        notes.append("no followup_hours or last_contact_datetime in the patients table: follow-up unknown; each "
                     "patient's last record is taken as a lower bound and labels beyond it are unknown")

    def chunks() -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in iter_chunks(labs_path, chunk_rows, TEXT, cols):
            yield _raw(chunk, offset, infusion, canonical_units)
            offset += len(chunk)

    passthrough = ([p for p in sorted(folder.glob("*.parquet"))
                    if p.stem not in ("labs", "patients", "events", "quarantine")] if canonical_units else [])
    notes += [f"{p.name} copied unchanged from the canonical cohort folder" for p in passthrough]
    grades = None if canonical_units else _grades(folder)
    events = _events(folder)
    if events is None:
        notes.append("no events table: treatments not recorded, so treatment features are unknown (NaN)")
    return Source(patients, events, str(labs_path), chunks, provenance, notes, canonical_units,
                  passthrough, grades=grades,
                  raw_rows=lambda chunk, offset: _raw(chunk, offset, infusion, canonical_units))


def _raw(chunk: pd.DataFrame, offset: int, infusion: pd.Series, canonical_units: bool) -> pd.DataFrame:
    n = len(chunk)
    chunk = chunk.reset_index(drop=True)
    raw = pd.DataFrame({"patient_id": chunk["patient_id"], "analyte_in": chunk["analyte"],
                        "value_in": chunk["value"]})
    keep_rows = canonical_units and "source_row" in chunk
    raw["source_row"] = (num(chunk["source_row"]).fillna(-1).astype("int64").to_numpy()
                         if keep_rows else row_numbers(offset, n))
    if canonical_units:
        raw["unit_in"] = map_analytes(raw["analyte_in"]).map(vocab().canonical_unit)
    else:
        raw["unit_in"] = chunk["unit"]
    if "hours_since_infusion" in chunk:
        hours, problem = parse_hours(chunk["hours_since_infusion"])
        raw["time_in"] = chunk["hours_since_infusion"]
    else:
        ts, problem = parse_datetimes(chunk["datetime"])
        hours, p2 = hours_from(ts, chunk["patient_id"].astype("str").str.strip(), infusion)
        problem = problem.where(problem != "", p2)
        raw["time_in"] = chunk["datetime"]
    raw["hours"] = hours.to_numpy()
    raw["time_problem"] = problem.to_numpy()
    if "resulted_hours" in chunk:
        raw["resulted_hours"] = num(chunk["resulted_hours"]).to_numpy()
    elif "resulted_datetime" in chunk and not infusion.empty:
        ts, _ = parse_datetimes(chunk["resulted_datetime"])
        raw["resulted_hours"] = hours_from(ts, raw["patient_id"].astype("str").str.strip(), infusion)[0].to_numpy()
    if "censor" in chunk:
        raw["censor_in"] = chunk["censor"]
    return raw


def _events(folder: Path) -> pd.DataFrame | None:
    path = find_table(folder, "events", required=False)
    if path is None:
        return None
    names = _lower(columns_of(path))
    events = read_all(path, TEXT, names)
    if events.columns.empty:  # a Parquet file without row groups: keep its column names
        events = pd.DataFrame(columns=list(names.values()))
    require(list(events.columns), ["patient_id", "event", "hours_since_infusion"], path, "events")
    return events  # a header without rows: recorded, none given


def _grades(folder: Path) -> pd.DataFrame | None:
    from cohorts.schema import canonical_grades

    path = find_table(folder, "grades", required=False)
    if path is None:
        return None
    return canonical_grades(read_all(path, TEXT, _lower(columns_of(path))), file=str(path))
