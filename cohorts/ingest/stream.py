"""Ingest in bounded memory: lab rows are harmonised chunk by chunk and written out as they come.

Pass 1 reads the lab file once, `chunk_rows` rows at a time. Each chunk is harmonised; its
quarantined rows are appended to quarantine.parquet and its accepted rows to one of K staging
files by patient (patients are split into K contiguous ranges of their sorted ids; K is the
estimated number of lab rows / `chunk_rows`, times a margin for a wrong estimate).
Pass 2 reads the staging files in order, a group of them at a time (at most about `chunk_rows`
rows), applies the duplicate rule (same patient, analyte and time: the first row in input order
is kept) — complete, since every row of a patient is in the same file — and appends the kept rows
to labs.parquet (patients in id order, each patient's rows in input order: the same whatever
the chunk size) and the duplicates to quarantine.parquet. The reports (counts by analyte and reason, mixed units, patients without a
baseline) are added up chunk by chunk. Memory: a chunk or a staging group, whatever the input
size; only the patients table (one row per patient) is held whole.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.harmonise import QUARANTINE_COLUMNS, harmonise_chunk
from cohorts.ingest.reconcile import canonical_lab_table, drop_duplicates, mixed_units, no_baseline
from cohorts.registry import default_turnaround_hours
from cohorts.schema import LAB_COLUMNS, result_time_counts

PARTITION_MARGIN = 4   # staging files per chunk of estimated rows: an estimate 4x too low still fits
MAX_PARTITIONS = 256   # one open file each


def _schemas():
    import pyarrow as pa

    text, num, whole = pa.string(), pa.float64(), pa.int64()
    kinds = {"patient_id": text, "analyte": text, "hours_since_infusion": num, "value": num, "censor": text,
             "resulted_hours": num, "source_row": whole}
    labs = pa.schema([(c, kinds[c]) for c in LAB_COLUMNS])
    staged = pa.schema([*labs, ("unit_key", text), ("_seq", whole), ("_rank", whole)])
    quarantine = pa.schema([(c, whole if c == "source_row" else text) for c in QUARANTINE_COLUMNS])
    return labs, staged, quarantine


class _Appender:
    """One Parquet file written table by table (opened on the first rows; an empty file if none came)."""

    def __init__(self, path: Path, schema) -> None:
        self.path, self.schema, self.writer, self.rows = path, schema, None, 0

    def append(self, frame) -> None:
        """A DataFrame or an Arrow table with the file's columns."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not len(frame):
            return
        table = (frame.select(self.schema.names).cast(self.schema) if isinstance(frame, pa.Table)
                 else pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, self.schema)
        self.writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            pq.write_table(self.schema.empty_table(), self.path)
        else:
            self.writer.close()
            self.writer = None


class _Staged:
    """One staging file of a patient range: Arrow IPC (lz4), appended chunk by chunk, read back whole
    (written and read once, so no Parquet encoding and statistics)."""

    def __init__(self, path: Path, schema) -> None:
        self.path, self.schema, self.writer, self.rows = path, schema, None, 0

    def append(self, table) -> None:
        import pyarrow as pa

        if self.writer is None:
            options = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
            self.writer = pa.ipc.new_file(str(self.path), self.schema, options=options)
        self.writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def read(self) -> pd.DataFrame:
        import pyarrow as pa

        if not self.rows:
            return self.schema.empty_table().to_pandas()
        with pa.OSFile(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all().to_pandas()


@dataclass
class Tally:
    """Counts added up chunk by chunk for validation.json."""

    rows_in: int = 0
    rows_out: int = 0
    in_by_analyte: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    out_by_analyte: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    q_by_reason: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    q_by_code: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    rows_quarantined: int = 0
    patients_with_labs: int = 0
    no_baseline: dict[str, int] = field(default_factory=dict)
    mixed_series: int = 0
    mixed_examples: list[dict] = field(default_factory=list)
    last_draw: list[pd.Series] = field(default_factory=list)  # per patient (one value each), for follow-up
    result_times: dict[str, dict[str, float]] = field(default_factory=dict)  # schema.result_time_counts, added up

    @staticmethod
    def _add(total: pd.Series, part: pd.Series) -> pd.Series:
        return total.add(part, fill_value=0).astype("int64")

    def quarantined(self, q: pd.DataFrame) -> None:
        self.rows_quarantined += len(q)
        self.q_by_reason = self._add(self.q_by_reason, q["reason"].value_counts())
        self.q_by_code = self._add(self.q_by_code, q["analyte_code"].replace("", "(unrecognised)").value_counts())


def _mark_cut_row(chunks: Iterator[pd.DataFrame], cut: bool) -> Iterator[pd.DataFrame]:
    """The last row of a file that does not end with a line break may have been cut short: it is
    quarantined (`truncated_row`), never read as a shorter number. One chunk of look-ahead."""
    if not cut:
        yield from chunks
        return
    previous = None
    for chunk in chunks:
        if previous is not None:
            yield previous
        previous = chunk
    if previous is not None and len(previous):
        flag = np.zeros(len(previous), dtype=bool)
        flag[-1] = True
        yield previous.assign(truncated=flag)
    elif previous is not None:
        yield previous


def _partitions(patient_ids: pd.Series, estimated_rows: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Rank of each patient (by position in the patients table) in sorted id order, and its partition:
    one of K contiguous ranges of sorted ids."""
    n = len(patient_ids)
    k = int(min(MAX_PARTITIONS, max(1, n), max(1, -(-estimated_rows // max(1, chunk_rows))) * PARTITION_MARGIN))
    order = np.argsort(patient_ids.astype(str).to_numpy(), kind="stable")
    rank = np.empty(n, dtype="int64")
    rank[order] = np.arange(n)
    return rank, (rank * k) // max(n, 1), k


def stream_labs(source, out: Path, patients: pd.DataFrame, window: tuple[float, float], chunk_rows: int,
                name_file: Callable[[str], str], units_canonical: bool, cut: bool,
                estimated_rows: int, progress: Callable[[int], None] | None = None) -> Tally:
    """Write out/labs.parquet and out/quarantine.parquet from the source's lab chunks (see module doc)."""
    import pyarrow as pa

    labs_schema, staged_schema, q_schema = _schemas()
    tally = Tally()
    lab_file = name_file(source.lab_file)
    known = pd.Index(patients["patient_id"].astype(str))
    rank_of, part_of, k = _partitions(patients["patient_id"], estimated_rows, chunk_rows)
    staging = out / ".staging"
    staging.mkdir()
    quarantine = _Appender(out / "quarantine.parquet", q_schema)
    staged = [_Staged(staging / f"part-{i:04d}.arrow", staged_schema) for i in range(k)]
    try:
        for raw in _mark_cut_row(source.lab_chunks(), cut):
            part = harmonise_chunk(raw, source.lab_file, known, window, offset=tally.rows_in)
            tally.rows_in += len(raw)
            if progress is not None:
                progress(len(raw))
            tally.in_by_analyte = tally._add(tally.in_by_analyte, part.counts_in)
            q = part.quarantine
            if len(q):
                q = q.assign(file=lab_file)
                quarantine.append(q)
                tally.quarantined(q)
            labs = part.labs
            if not len(labs):
                continue
            position = known.get_indexer(labs["patient_id"])
            which = part_of[position]
            order = np.argsort(which, kind="stable")
            bounds = np.searchsorted(which[order], np.arange(k + 1))
            labs = labs.assign(_rank=rank_of[position])
            table = pa.Table.from_pandas(labs, schema=staged_schema, preserve_index=False).take(order)
            for i in np.flatnonzero(np.diff(bounds)):
                staged[i].append(table.slice(bounds[i], bounds[i + 1] - bounds[i]))
        for s in staged:
            s.close()
        if tally.rows_in == 0:
            raise CohortError("The labs table has no data rows", file=source.lab_file)
        labs_out = _Appender(out / "labs.parquet", labs_schema)
        group: list[_Staged] = []
        rows = 0
        for s in [*staged, None]:
            if s is not None and (not group or rows + s.rows <= chunk_rows):
                group.append(s)
                rows += s.rows
                continue
            if group:
                frame = pd.concat([g.read() for g in group], ignore_index=True)
                _deduplicate(frame, lab_file, units_canonical, labs_out, quarantine, tally)
            group, rows = ([s], s.rows) if s is not None else ([], 0)
        labs_out.close()
        quarantine.close()
    finally:
        for s in staged:
            s.close()
        shutil.rmtree(staging, ignore_errors=True)
    return tally


def _deduplicate(frame: pd.DataFrame, lab_file: str, units_canonical: bool, labs_out: _Appender,
                 quarantine: _Appender, tally: Tally) -> None:
    """One group of staging files (whole patients): duplicates out, reports in, rows written."""
    if not len(frame):
        return
    # patients in id order, each patient's rows in input order: the same order whatever the chunk size
    frame = frame.iloc[np.lexsort((frame["_seq"].to_numpy(), frame["_rank"].to_numpy()))].reset_index(drop=True)
    frame["_seq"] = np.arange(len(frame))  # this order: within each patient it is the input order (duplicate rule)
    if not units_canonical:
        mixed = mixed_units(frame[["patient_id", "analyte", "unit_key"]])
        tally.mixed_series += mixed["patient_analyte_series"]
        tally.mixed_examples = (tally.mixed_examples + mixed["examples"])[:10]
    kept, dup_q = drop_duplicates(frame.drop(columns=["unit_key", "_rank"]), lab_file)
    if len(dup_q):
        quarantine.append(dup_q)
        tally.quarantined(dup_q)
    kept = canonical_lab_table(kept)
    labs_out.append(kept)
    tally.rows_out += len(kept)
    tally.out_by_analyte = tally._add(tally.out_by_analyte, kept["analyte"].value_counts())
    tally.patients_with_labs += int(kept["patient_id"].nunique())
    for code, n in no_baseline(kept, None).items():
        tally.no_baseline[code] = tally.no_baseline.get(code, 0) + n
    tally.last_draw.append(kept.groupby("patient_id", sort=False)["hours_since_infusion"].max())
    for code, c in result_time_counts(kept, default_turnaround_hours()).items():
        total = tally.result_times.setdefault(code, dict.fromkeys(("rows", "without_result_time",
                                                                   "assumed_later_than_draw"), 0))
        for key in total:
            total[key] += c[key]
        total["turnaround_hours"] = c["turnaround_hours"]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
