"""A canonical cohort folder's Parquet files, read with one clear error for every problem.

`crs score` and `crs featurize` read a folder chunk by chunk (features.chunks), `read_cohort`
reads it whole; both validate with the same checks (cohorts.schema: canonical_labs,
canonical_patients, canonical_events, known_patients). This module adds what reading in chunks
needs so that the answer is the same as reading whole:
- a file that cannot be read (truncated, damaged, not Parquet) is an input error naming it;
- empty patient ids are found from the file's statistics before any chunk is read (a patient-id
  range filter would skip those rows silently);
- a problem found in a chunk is reported at its row in the file (rows counted from 0), by
  re-running the same check over the file in order (only when there is a problem).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cohorts.errors import CohortError

LOCATE_BATCH_ROWS = 262_144


def require_tables(folder: Path | str, error: type[CohortError] = CohortError) -> Path:
    """`folder` as a Path when it is a folder holding labs.parquet and patients.parquet; else one
    `error` saying what is missing (`crs score`, `crs report` and Spark read the same layout)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise error(f"Cohort folder {folder} does not exist or is not a folder "
                    "(give a folder of canonical tables, or an input path with --format)")
    for name in ("labs", "patients"):
        if not (folder / f"{name}.parquet").exists():
            raise error(f"Cohort folder {folder} has no {name}.parquet (expected the canonical tables "
                        "written by `crs simulate` or `crs ingest`; other layouts need --format)",
                        file=str(folder / f"{name}.parquet"))
    return folder


def read_error(path: Path | str, exc: BaseException) -> CohortError:
    first = str(exc).splitlines()[0] if str(exc) else repr(exc)
    return CohortError(f"Cannot read {path} as Parquet (damaged, cut short or not a Parquet file): {first}",
                       file=str(path))


def _unreadable() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError, ValueError)


def open_parquet(path: Path | str):
    """pyarrow.parquet.ParquetFile, or CohortError naming the file."""
    import pyarrow.parquet as pq

    if Path(path).is_dir():
        raise CohortError(f"{path} is a folder (a dataset of part files, as Spark writes it); one machine reads "
                          "one Parquet file per table: combine the parts into one file, or run with --engine spark",
                          file=str(path))
    try:
        return pq.ParquetFile(path)
    except _unreadable() as exc:
        raise read_error(path, exc) from exc


def read_table(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        return open_parquet(path).read(columns=columns).to_pandas()
    except CohortError:
        raise
    except _unreadable() as exc:
        raise read_error(path, exc) from exc


def dataset(path: Path | str):
    """A pyarrow dataset of one file whose footer was read (a truncated file fails here, by name)."""
    import pyarrow.dataset as ds

    open_parquet(path)
    try:
        return ds.dataset(path, format="parquet")
    except _unreadable() as exc:
        raise read_error(path, exc) from exc


def to_pandas(data, filter=None, columns: list[str] | None = None, path: Path | str = "") -> pd.DataFrame:
    """`dataset.to_table(...).to_pandas()`, a damaged data page being an input error naming the file."""
    try:
        return data.to_table(filter=filter, columns=columns).to_pandas()
    except _unreadable() as exc:
        raise read_error(path, exc) from exc


def no_empty_ids(path: Path | str, table: str) -> None:
    """Stop at the first row with a null patient_id, found from the row-group statistics (no data read)
    or, when a file has none, one scan of the id column."""
    import pyarrow.compute as pc

    pf = open_parquet(path)
    names = pf.schema_arrow.names
    if "patient_id" not in names:
        raise CohortError(f"The {table} table lacks required column(s) ['patient_id']; it has {names}",
                          file=str(path), column="patient_id")
    col = names.index("patient_id")
    meta = pf.metadata
    counts = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
    if all(s is not None and s.has_null_count for s in counts) and not any(s.null_count for s in counts):
        return
    offset = 0
    for batch in pf.iter_batches(batch_size=LOCATE_BATCH_ROWS, columns=["patient_id"]):
        nulls = pc.is_null(batch.column(0)).to_numpy(zero_copy_only=False)
        if nulls.any():
            raise CohortError(f"A row of the {table} table has an empty patient_id", file=str(path),
                              row=offset + int(np.flatnonzero(nulls)[0]), column="patient_id")
        offset += batch.num_rows


def locate(path: Path | str, check: Callable[[pd.DataFrame, np.ndarray], object],
           columns: list[str] | None = None, keep: Callable[[pd.DataFrame], np.ndarray] | None = None) -> None:
    """Run `check(frame, row_numbers)` over the whole file in order (rows selected by `keep`, as the
    chunk reader selected them), so the CohortError it raises names the first bad row of the file."""
    offset = 0
    for batch in open_parquet(path).iter_batches(batch_size=LOCATE_BATCH_ROWS, columns=columns):
        frame = batch.to_pandas()
        rows = np.arange(offset, offset + len(frame))
        if keep is not None:
            mask = np.asarray(keep(frame), dtype=bool)
            frame, rows = frame[mask].reset_index(drop=True), rows[mask]
        check(frame, rows)
        offset += batch.num_rows


def checked(frame: pd.DataFrame, path: Path | str, check: Callable[[pd.DataFrame, np.ndarray | None], pd.DataFrame],
            columns: list[str] | None = None, keep: Callable[[pd.DataFrame], np.ndarray] | None = None) -> pd.DataFrame:
    """`check(frame, None)` on a chunk; if it finds a problem, the error names the problem's row in the file."""
    try:
        return check(frame, None)
    except CohortError:
        locate(path, check, columns, keep)
        raise
