"""`ingest(format, path)`: any supported input -> canonical Cohort + quarantine + validation report."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.harmonise import DEFAULT_WINDOW_HOURS, empty_quarantine, harmonise_chunk
from cohorts.ingest.reconcile import (
    canonical_lab_table,
    drop_duplicates,
    extend_followup,
    mixed_units,
    no_baseline,
    outcome_report,
    result_time_report,
    validation_report,
)
from cohorts.ingest.source import CHUNK_ROWS, Source
from cohorts.io import Cohort
from cohorts.schema import canonical_events, canonical_grades, canonical_patients

FORMATS = ("long", "sdtm", "omop")


@dataclass
class IngestResult:
    cohort: Cohort
    quarantine: pd.DataFrame
    validation: dict[str, Any]
    passthrough: list[Path] = field(default_factory=list)


def _open(fmt: str, path: Path, chunk_rows: int) -> Source:
    if fmt == "long":
        from cohorts.ingest.long import open_long

        return open_long(path, chunk_rows)
    if fmt == "sdtm":
        from cohorts.ingest.sdtm import open_sdtm

        return open_sdtm(path, chunk_rows)
    if fmt == "omop":
        from cohorts.ingest.omop import open_omop

        return open_omop(path, chunk_rows)
    raise CohortError(f"Unknown --format {fmt!r}; choose one of {list(FORMATS)}")


def ingest(fmt: str, path: Path | str, window_hours: tuple[float, float] = DEFAULT_WINDOW_HOURS,
           chunk_rows: int = CHUNK_ROWS, progress: Callable[[int], None] | None = None) -> IngestResult:
    """Read, harmonise and check a cohort. `progress` (optional) is called with the number of
    input lab rows of each chunk read."""
    path = Path(path)
    if not path.exists():
        raise CohortError(f"The input {path} does not exist", file=str(path))
    source = _open(fmt, path, chunk_rows)
    patients = canonical_patients(source.patients, file=source.provenance.get("patients_file"))
    known = pd.Index(patients["patient_id"])
    labs_parts, q_parts, unit_parts, in_counts = [], [], [], []
    rows_in = 0
    for raw in source.lab_chunks():
        part = harmonise_chunk(raw, source.lab_file, known, window_hours, offset=rows_in)
        rows_in += len(raw)
        in_counts.append(part.counts_in)
        unit_parts.append(part.labs[["patient_id", "analyte", "unit_key"]].drop_duplicates())
        labs_parts.append(part.labs.drop(columns="unit_key"))
        q_parts.append(part.quarantine)
        if progress is not None:
            progress(len(raw))
    if rows_in == 0:
        raise CohortError("The labs table has no data rows", file=source.lab_file)
    labs = pd.concat(labs_parts, ignore_index=True) if labs_parts else pd.DataFrame()
    labs, dup_q = drop_duplicates(labs, source.lab_file)
    quarantine = pd.concat([q for q in [*q_parts, dup_q] if len(q)] or [empty_quarantine()],
                           ignore_index=True)
    units = pd.concat(unit_parts, ignore_index=True)
    labs = canonical_lab_table(labs)
    in_by = pd.concat(in_counts).groupby(level=0).sum() if in_counts else pd.Series(dtype=int)
    # no events table in the source = treatments not recorded: none is written (features say unknown)
    events = canonical_events(source.events) if source.events is not None else None
    grades = canonical_grades(source.grades)
    if source.followup_from_records:  # a follow-up read from record dates is at least the last lab draw
        patients = extend_followup(patients, labs)
    notes = list(source.notes)
    result_times = result_time_report(labs, notes)
    outcomes = outcome_report(patients, notes)
    extra = {
        "format": fmt, "input": str(path), "lab_file": source.lab_file,
        "patients_in": int(len(patients)),
        "patients_with_labs": int(labs["patient_id"].nunique()),
        "events_recorded": events is not None,
        "events_out": int(len(events)) if events is not None else 0,
        "grade_course_rows": int(len(grades)) if grades is not None else 0,
        "result_times": result_times,
        "outcomes": outcomes,
        "time_window_hours": list(window_hours),
        "mixed_units": mixed_units(units) if not source.units_canonical else
        {"patient_analyte_series": 0, "examples": []},
        "patients_without_baseline": no_baseline(labs, patients["patient_id"]),
        "notes": notes,
    }
    report = validation_report(rows_in, labs, quarantine, in_by, extra)
    provenance = dict(source.provenance)
    provenance["ingest"] = {"format": fmt, "input": str(path), "rows_in": report["rows_in"],
                            "rows_out": report["rows_out"], "rows_quarantined": report["rows_quarantined"]}
    return IngestResult(Cohort(labs, patients, events, provenance, grades), quarantine, report, source.passthrough)


def write_ingested(result: IngestResult, out: Path | str) -> None:
    """The canonical tables, quarantine.parquet and validation.json, swapped in for `out` whole."""
    from cohorts.atomic import atomic_folder
    from cohorts.io import write_tables

    with atomic_folder(out) as tmp:
        write_tables(result.cohort, tmp)
        for path in result.passthrough:
            shutil.copyfile(path, tmp / path.name)
        result.quarantine.to_parquet(tmp / "quarantine.parquet", index=False)
        (tmp / "validation.json").write_text(json.dumps(result.validation, indent=2, sort_keys=True) + "\n")
