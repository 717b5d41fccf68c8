"""Shared helpers for the ingest tests: write small inputs, check validation.json reconciles."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from cohorts.ingest import ingest, write_ingested


def write_long(folder: Path, labs: pd.DataFrame, patients: pd.DataFrame, fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("labs", labs), ("patients", patients)):
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def ingest_and_check(fmt: str, path: Path, out: Path) -> dict:
    """Ingest, write, and check the report reconciles with the files written."""
    result = ingest(fmt, path)
    write_ingested(result, out)
    assert_reconciles(out)
    return json.loads((out / "validation.json").read_text())


def assert_reconciles(out: Path) -> None:
    v = json.loads((out / "validation.json").read_text())
    labs = pd.read_parquet(out / "labs.parquet")
    q = pd.read_parquet(out / "quarantine.parquet")
    for key in ("rows_in", "rows_out", "rows_quarantined"):
        assert isinstance(v[key], int)
    assert v["rows_in"] == v["rows_out"] + v["rows_quarantined"]
    assert v["rows_out"] == len(labs) and v["rows_quarantined"] == len(q)
    assert sum(v["by_reason"].values()) == len(q)
    assert sum(a["out"] for a in v["by_analyte"].values()) == len(labs)
    assert sum(a["in"] for a in v["by_analyte"].values()) == v["rows_in"]
    # every input row is in exactly one of the two
    keys = pd.concat([labs["source_row"], q["source_row"]])
    assert not keys.duplicated().any()
