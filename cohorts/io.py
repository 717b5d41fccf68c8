"""Read and write a canonical cohort folder: labs.parquet, patients.parquet, and the optional
events.parquet (treatments; absent = not recorded, which features report as unknown) and
grades.parquet (time-resolved CRS grades)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cohorts.errors import CohortError
from cohorts.schema import (
    canonical_events,
    canonical_grades,
    canonical_labs,
    canonical_patients,
    known_patients,
)


@dataclass
class Cohort:
    labs: pd.DataFrame
    patients: pd.DataFrame
    events: pd.DataFrame | None  # None: treatments not recorded (not "none given")
    provenance: dict = field(default_factory=dict)
    grades: pd.DataFrame | None = None  # patient_id, hours_since_infusion, grade; None: no grade course


def read_cohort(folder: Path | str) -> Cohort:
    folder = Path(folder)
    if not folder.is_dir():
        raise CohortError(f"Cohort folder {folder} does not exist or is not a folder")
    tables = {}
    for name in ("labs", "patients"):
        path = folder / f"{name}.parquet"
        if not path.exists():
            raise CohortError(f"Cohort folder {folder} has no {name}.parquet "
                              "(expected the canonical tables written by `crs simulate` or `crs ingest`)",
                              file=str(path))
        try:
            tables[name] = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types for a damaged file
            raise CohortError(f"Cannot read {path} as Parquet: {exc}", file=str(path)) from exc
    events_path = folder / "events.parquet"
    events = _optional(events_path)
    grades_path = folder / "grades.parquet"
    grades = _optional(grades_path)
    prov_path = folder / "provenance.json"
    provenance = json.loads(prov_path.read_text()) if prov_path.exists() else {}
    labs = canonical_labs(tables["labs"], file=str(folder / "labs.parquet"))
    patients = canonical_patients(tables["patients"], file=str(folder / "patients.parquet"))
    ids = patients["patient_id"]
    known_patients(labs, ids, "Lab", str(folder / "labs.parquet"))
    events = canonical_events(events, file=str(events_path)) if events is not None else None
    if events is not None:
        known_patients(events, ids, "Event", str(events_path))
    grades = canonical_grades(grades, file=str(grades_path))
    if grades is not None:
        known_patients(grades, ids, "Grade", str(grades_path))
    return Cohort(labs, patients, events, provenance, grades)


def _optional(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise CohortError(f"Cannot read {path} as Parquet: {exc}", file=str(path)) from exc


def write_cohort(cohort: Cohort, folder: Path | str) -> None:
    """Write the cohort folder whole: into a temporary sibling folder that replaces `folder` in one
    step when every table is written (a reader, or a run killed half-way, never sees a mixture)."""
    from cohorts.atomic import atomic_folder

    with atomic_folder(folder) as tmp:
        write_tables(cohort, tmp)


def write_tables(cohort: Cohort, folder: Path | str) -> None:
    """The cohort's tables and provenance.json into `folder` as it is (see `write_cohort`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cohort.labs.to_parquet(folder / "labs.parquet", index=False)
    cohort.patients.to_parquet(folder / "patients.parquet", index=False)
    if cohort.events is not None:
        cohort.events.to_parquet(folder / "events.parquet", index=False)
    if cohort.grades is not None:
        cohort.grades.to_parquet(folder / "grades.parquet", index=False)
    (folder / "provenance.json").write_text(json.dumps(cohort.provenance, indent=2, sort_keys=True))
