"""`ingest_to_folder(format, path, out)` (streamed, bounded memory) and `ingest(format, path)` (in memory):
any supported input -> canonical tables + quarantine + validation report."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.harmonise import DEFAULT_WINDOW_HOURS
from cohorts.ingest.reconcile import (
    extend_followup,
    outcome_report,
    report_from_counts,
    result_time_note,
)
from cohorts.ingest.source import CHUNK_ROWS, Source
from cohorts.ingest.stream import stream_labs
from cohorts.ingest.tables import ends_cut, estimate_rows
from cohorts.io import Cohort
from cohorts.registry import core_analytes
from cohorts.schema import canonical_events, canonical_grades, canonical_patients, time_window

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


def ingest(fmt: str, path: Path | str, window_hours: tuple[float, float] | None = None,
           chunk_rows: int = CHUNK_ROWS, progress: Callable[[int], None] | None = None) -> IngestResult:
    """The cohort in memory (for `crs evaluate --format` and tests): the streamed ingest into a
    scratch folder, read back. `crs ingest` streams to its output folder (`ingest_to_folder`).
    `progress` (optional) is called with the number of input lab rows of each chunk read."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="crs-ingest-") as tmp:
        folder = Path(tmp)
        report, provenance, passthrough = _ingest_into(fmt, path, folder, window_hours, chunk_rows, str, progress)
        labs = pd.read_parquet(folder / "labs.parquet")
        patients = pd.read_parquet(folder / "patients.parquet")
        events, grades = (pd.read_parquet(folder / f"{name}.parquet") if (folder / f"{name}.parquet").exists()
                          else None for name in ("events", "grades"))
        quarantine = pd.read_parquet(folder / "quarantine.parquet")
    return IngestResult(Cohort(labs, patients, events, provenance, grades), quarantine, report, passthrough)


def ingest_to_folder(fmt: str, path: Path | str, out: Path | str, window_hours: tuple[float, float] | None = None,
                     chunk_rows: int = CHUNK_ROWS, name_file: Callable[[str], str] = str,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Stream any supported input into the empty folder `out` (the temporary folder of an atomic
    swap): labs, patients, events and quarantine .parquet, validation.json, provenance.json and the
    passthrough tables. Memory is bounded by `chunk_rows`, not by the input size (cohorts.ingest.stream).
    `name_file` names input files in the outputs (e.g. relative to the project). Returns the report."""
    return _ingest_into(fmt, path, Path(out), window_hours, chunk_rows, name_file, progress)[0]


def _ingest_into(fmt: str, path: Path | str, out: Path, window_hours: tuple[float, float] | None, chunk_rows: int,
                 name_file: Callable[[str], str], progress: Callable[[int], None] | None = None,
                 ) -> tuple[dict[str, Any], dict[str, Any], list[Path]]:
    path = Path(path)
    if not path.exists():
        raise CohortError(f"The input {path} does not exist", file=str(path))
    if int(chunk_rows) < 1:
        raise CohortError(f"--chunk-rows must be >= 1; got {chunk_rows}")
    window = ((float(window_hours[0]), float(window_hours[1])) if window_hours is not None
              else time_window() or DEFAULT_WINDOW_HOURS)
    source = _open(fmt, path, int(chunk_rows))
    patients = canonical_patients(source.patients, file=source.provenance.get("patients_file"))
    lab_path = Path(source.lab_file)
    tally = stream_labs(source, out, patients, window, int(chunk_rows), name_file, source.units_canonical,
                        cut=ends_cut(lab_path), estimated_rows=estimate_rows(lab_path), progress=progress)
    # no events table in the source = treatments not recorded: none is written (features say unknown)
    events = canonical_events(source.events) if source.events is not None else None
    grades = canonical_grades(source.grades)
    if source.followup_from_records:  # a follow-up read from record dates is at least the last lab draw
        last = pd.concat(tally.last_draw) if tally.last_draw else pd.Series(dtype="float64")
        patients = extend_followup(patients, pd.DataFrame({"patient_id": last.index.astype(str),
                                                           "hours_since_infusion": last.to_numpy()}))
    notes = list(source.notes)
    result_times = result_time_note(dict(sorted(tally.result_times.items())), notes)
    outcomes = outcome_report(patients, notes)
    extra = {
        "format": fmt, "input": name_file(str(path)), "lab_file": name_file(source.lab_file),
        "patients_in": int(len(patients)),
        "patients_with_labs": tally.patients_with_labs,
        "events_recorded": events is not None,
        "events_out": int(len(events)) if events is not None else 0,
        "grade_course_rows": int(len(grades)) if grades is not None else 0,
        "result_times": result_times,
        "outcomes": outcomes,
        "time_window_hours": list(window),
        "mixed_units": {"patient_analyte_series": tally.mixed_series, "examples": tally.mixed_examples},
        "patients_without_baseline": {c: tally.no_baseline[c] for c in core_analytes() if c in tally.no_baseline},
        "notes": notes,
    }
    report = report_from_counts(tally, extra)
    provenance = dict(source.provenance)
    for key in ("patients_file", "path"):
        if key in provenance:
            provenance[key] = name_file(str(provenance[key]))
    provenance["ingest"] = {"format": fmt, "input": report["input"], "rows_in": report["rows_in"],
                            "rows_out": report["rows_out"], "rows_quarantined": report["rows_quarantined"]}
    patients.to_parquet(out / "patients.parquet", index=False)
    if events is not None:
        events.to_parquet(out / "events.parquet", index=False)
    if grades is not None:
        grades.to_parquet(out / "grades.parquet", index=False)
    for table in source.passthrough:
        shutil.copyfile(table, out / table.name)
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True))
    (out / "validation.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report, provenance, source.passthrough


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
