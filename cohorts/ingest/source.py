"""What every reader hands to the shared ingest: patients, events, and a stream of raw lab chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHUNK_ROWS = 250_000  # lab rows per streamed chunk: ~0.6 GiB peak whatever the input size (benchmarks/bench_ingest.py)


@dataclass
class Source:
    patients: pd.DataFrame                      # canonical patient columns (+ extras carried along)
    events: pd.DataFrame | None                 # canonical events or None
    lab_file: str                               # the file the lab rows come from (for quarantine)
    lab_chunks: Callable[[], Iterator[pd.DataFrame]]  # raw chunks in the harmonise contract
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # warnings for validation.json
    units_canonical: bool = False               # a canonical cohort folder: units are the registry's
    passthrough: list[Path] = field(default_factory=list)  # other canonical tables, copied unchanged
    grades: pd.DataFrame | None = None          # canonical grade course (patient_id, hours_since_infusion, grade)
    followup_from_records: bool = False         # followup_hours is a last-record date: raise it to the last lab draw
    # rows of the lab table as read (columns lower-cased) -> raw chunk in the harmonise contract; the
    # second argument is the first row's number, or every row's number (rows read by another engine,
    # e.g. Spark, arrive grouped by patient, not in one run): scoring/spark_ingest.py
    raw_rows: Callable[[pd.DataFrame, Any], pd.DataFrame] | None = None


def row_numbers(offset: Any, n: int) -> np.ndarray:
    """Input row numbers of a chunk: `offset` is the first one (a run of rows) or all of them."""
    if np.ndim(offset):
        return np.asarray(offset, dtype="int64")
    return np.arange(int(offset), int(offset) + n, dtype="int64")
