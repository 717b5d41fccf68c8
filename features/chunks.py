"""Big cohorts in patient chunks: read, featurize and write without holding the whole cohort.

A canonical cohort folder (labs.parquet, patients.parquet, optional events.parquet and
grades.parquet) is read one patient chunk at a time: patients are sorted by id, and chunk k reads only the lab and event
rows whose patient_id lies in that chunk's id range. The range filter is pushed down to the
Parquet reader, so a file grouped by patient (as `crs simulate` and most extracts write it)
reads only the row groups it needs; any other file is still read correctly, one filtered scan
per chunk. Output rows are identical to the in-memory build (tested), in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

LAB_READ_COLUMNS = ["patient_id", "analyte", "hours_since_infusion", "value", "censor", "resulted_hours"]


def iter_cohort_chunks(folder: Path | str, chunk_patients: int = 50_000,
                       analytes: list[str] | None = None,
                       validate: bool = True, with_grades: bool = False) -> Iterator[tuple]:
    """Yield (labs, patients, events) per chunk of `chunk_patients` patients, in patient-id order;
    (labs, patients, events, grades) with `with_grades`.

    `analytes` limits the lab rows read (the featurizer needs only its own). `validate` runs
    the canonical-table checks on each chunk, as `read_cohort` does on a whole cohort.
    `events` is None when the folder has no events.parquet (treatments not recorded); `grades`
    None when it has no grades.parquet (no time-resolved CRS grades).
    """
    import pyarrow.dataset as ds

    from cohorts import canonical_folder as cf
    from cohorts.schema import canonical_grades, canonical_patients

    folder = Path(folder)
    patients_path, labs_path, events_path = (folder / f"{n}.parquet" for n in ("patients", "labs", "events"))
    patients = cf.read_table(patients_path)
    if validate:
        patients = canonical_patients(patients, file=str(patients_path))
    patients = patients.assign(patient_id=patients["patient_id"].astype(str))
    patients = patients.sort_values("patient_id", kind="mergesort").reset_index(drop=True)
    labs_ds = cf.dataset(labs_path)
    columns = [c for c in LAB_READ_COLUMNS if c in labs_ds.schema.names]
    events_ds = cf.dataset(events_path) if events_path.exists() else None
    grades_path = folder / "grades.parquet"
    grades_ds = cf.dataset(grades_path) if with_grades and grades_path.exists() else None
    ids = patients["patient_id"]
    lab_id, event_id = _string_id(labs_ds), _string_id(events_ds) if events_ds is not None else None
    grade_id = _string_id(grades_ds) if grades_ds is not None else None
    check_labs = check_events = check_grades = None
    if validate:
        check_labs, check_events, check_grades = _checks(folder, pd.Index(ids))
        for path, data, table in ((labs_path, labs_ds, "labs"), (events_path, events_ds, "events"),
                                  (grades_path, grades_ds, "grades")):
            if data is not None:  # a range filter never reads a null id: found here instead
                cf.no_empty_ids(path, table)
        if not len(patients):  # no chunk at all: still no row of an unknown patient
            cf.locate(labs_path, check_labs, columns)
            for path, data, check in ((events_path, events_ds, check_events), (grades_path, grades_ds, check_grades)):
                if data is not None:
                    cf.locate(path, check)
    for first in range(0, len(patients), chunk_patients):
        stop = min(first + chunk_patients, len(patients))
        # contiguous ranges [first id of this chunk, first id of the next): every row is read by exactly
        # one chunk, so a row of a patient missing from patients.parquet is seen (and refused), never skipped
        lo = ids.iloc[first] if first > 0 else None
        nxt = ids.iloc[stop] if stop < len(patients) else None
        lab_filter = _id_range(lab_id, lo, nxt)
        if analytes is not None:
            wanted = ds.field("analyte").isin(list(analytes))
            lab_filter = wanted if lab_filter is None else lab_filter & wanted
        labs = cf.to_pandas(labs_ds, lab_filter, columns, labs_path)
        if validate:
            keep = None if analytes is None else (lambda f: f["analyte"].astype(str).isin(list(analytes)).to_numpy())
            labs = cf.checked(labs, labs_path, check_labs, columns, keep)
        events = None
        if events_ds is not None:
            events = cf.to_pandas(events_ds, _id_range(event_id, lo, nxt), path=events_path)
            if validate:
                events = cf.checked(events, events_path, check_events)
        part = patients.iloc[first:stop].reset_index(drop=True)
        if not with_grades:
            yield labs, part, events
            continue
        grades = None
        if grades_ds is not None:
            grades = cf.to_pandas(grades_ds, _id_range(grade_id, lo, nxt), path=grades_path)
            grades = (cf.checked(grades, grades_path, check_grades) if validate
                      else canonical_grades(grades, file=str(grades_path)))
        yield labs, part, events, grades


def _id_range(field, lo: str | None, nxt: str | None):
    """lo <= id < nxt (either bound may be absent); None when both are."""
    parts = [*([field >= lo] if lo is not None else []), *([field < nxt] if nxt is not None else [])]
    return None if not parts else parts[0] if len(parts) == 1 else parts[0] & parts[1]


def _checks(folder: Path, ids: pd.Index):
    """The canonical checks of one lab / event / grade chunk: cohorts.schema, as `read_cohort` runs them."""
    from cohorts.schema import (
        canonical_events,
        canonical_grades,
        canonical_labs,
        known_patients,
        time_window,
    )

    window = time_window()
    labs_file, events_file, grades_file = (str(folder / f"{n}.parquet") for n in ("labs", "events", "grades"))

    def labs(frame: pd.DataFrame, rows) -> pd.DataFrame:
        out = canonical_labs(frame, file=labs_file, window=window, row_numbers=rows)
        known_patients(out, ids, "Lab", labs_file, row_numbers=rows)
        return out

    def events(frame: pd.DataFrame, rows) -> pd.DataFrame:
        out = canonical_events(frame, file=events_file, row_numbers=rows)
        known_patients(out, ids, "Event", events_file, row_numbers=rows)
        return out

    def grades(frame: pd.DataFrame, rows) -> pd.DataFrame:
        out = canonical_grades(frame, file=grades_file, row_numbers=rows)
        known_patients(out, ids, "Grade", grades_file, row_numbers=rows)
        return out

    return labs, events, grades


def _string_id(dataset):
    """patient_id as a string expression: ids are compared as strings (as the patients table is sorted),
    whatever type a file stored them in (an empty events table often has a float column)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    field = ds.field("patient_id")
    kind = dataset.schema.field("patient_id").type
    return field if pa.types.is_string(kind) or pa.types.is_large_string(kind) else field.cast(pa.string())


def featurize_folder(folder: Path | str, out: Path | str, features: Any, landmarks: list[float],
                     chunk_patients: int = 50_000, validate: bool = True,
                     progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Stream the landmark matrix of a cohort folder to one Parquet file, chunk by chunk.

    `features` is a KineticFeatures (its `build` makes each chunk, computing in its own smaller
    `chunk_patients` slices). `chunk_patients` here is the read size: Parquet row groups hold
    many patients, so reading fewer, larger chunks decodes each row group about once. Peak
    memory is one read chunk's tables and matrix plus the patients table, whatever the cohort size.
    `progress` (optional) is called with the number of patients of each chunk written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cohorts.atomic import AtomicFile
    from cohorts.schema import result_time_counts

    chunk = int(chunk_patients)
    codes = [*features.analytes, *features.covariate_analytes]
    turnaround = features.turnaround_map()
    target = AtomicFile(out)  # a unique temporary beside `out`, renamed over it only when whole
    tmp = target.tmp
    writer = None
    counts: dict[str, Any] = {"patients": 0, "lab_rows": 0, "rows": 0}
    assumed: dict[str, dict[str, float]] = {}
    try:
        for labs, patients, events, grades in iter_cohort_chunks(folder, chunk, codes, validate, with_grades=True):
            matrix = features.build(labs, patients, landmarks, events=events, grades=grades)
            table = pa.Table.from_pandas(matrix, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            counts["patients"] += len(patients)
            counts["lab_rows"] += len(labs)
            counts["rows"] += len(matrix)
            for code, c in result_time_counts(labs, turnaround).items():
                total = assumed.setdefault(code, dict.fromkeys(("rows", "without_result_time",
                                                                 "assumed_later_than_draw"), 0))
                for key in total:
                    total[key] += c[key]
                total["turnaround_hours"] = c["turnaround_hours"]
            if progress is not None:
                progress(len(patients))
    except BaseException:
        target.discard()
        raise
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no patients at all: still a valid (empty) matrix
        features.build(pd.DataFrame(columns=LAB_READ_COLUMNS), pd.DataFrame({"patient_id": []}),
                       landmarks).to_parquet(tmp, index=False)
    target.commit()
    counts["assumed_result_times"] = dict(sorted(assumed.items()))
    return counts


def folder_result_time_counts(folder: Path | str, turnaround: dict[str, float],
                              batch_rows: int = 2_000_000) -> dict[str, dict[str, float]]:
    """`cohorts.schema.result_time_counts` over a cohort folder's labs.parquet, streamed in batches
    of two columns (analyte, resulted_hours): rows per analyte without a result time, whose
    availability the feature build assumed (draw + `turnaround`)."""
    import pyarrow.parquet as pq

    from cohorts.schema import result_time_counts

    pf = pq.ParquetFile(Path(folder) / "labs.parquet")
    columns = [c for c in ("analyte", "resulted_hours") if c in pf.schema_arrow.names]
    total: dict[str, dict[str, float]] = {}
    for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
        for code, c in result_time_counts(batch.to_pandas(), turnaround).items():
            t = total.setdefault(code, {"rows": 0, "without_result_time": 0, "turnaround_hours": c["turnaround_hours"],
                                        "assumed_later_than_draw": 0})
            for key in ("rows", "without_result_time", "assumed_later_than_draw"):
                t[key] += c[key]
    return dict(sorted(total.items()))


def labs_row_count(folder: Path | str) -> int:
    """Rows in labs.parquet, from the file footer (no data read)."""
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(Path(folder) / "labs.parquet").metadata.num_rows)
