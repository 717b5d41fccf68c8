"""Streamed ingest (issue 15, item 8): tables written chunk by chunk, memory bounded by --chunk-rows,
duplicates found across chunks, and the same cohort whatever the chunk size.

Speed and peak memory at 0.5, 2 and 8 million rows are measured in benchmarks/bench_ingest.py.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cohorts.ingest import stream
from cohorts.ingest.api import ingest_to_folder
from tests.ingest_helpers import assert_reconciles, write_long
from tests.test_crash_consistency import same_content


def _hostile_long(n_patients: int = 25, per_patient: int = 16, seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A long-format export in time order (not grouped by patient), with duplicates far apart (same
    value and conflicting), mixed units and rows that must be quarantined."""
    rng = np.random.default_rng(seed)
    n = n_patients * per_patient
    labs = pd.DataFrame({
        "patient_id": np.repeat([f"P{i:03d}" for i in range(n_patients)], per_patient),
        "analyte": rng.choice(["IL-6", "CRP", "Ferritin"], n),
        "hours_since_infusion": np.round(rng.uniform(-100, 300, n), 1),
        "value": np.round(rng.uniform(1, 200, n), 1).astype(str),
    })
    labs["unit"] = labs["analyte"].map({"IL-6": "pg/mL", "CRP": "mg/L", "Ferritin": "ng/mL"})
    labs.loc[labs.index % 7 == 0, "unit"] = np.where(labs.loc[labs.index % 7 == 0, "analyte"] == "CRP", "mg/dL",
                                                    labs.loc[labs.index % 7 == 0, "unit"])
    labs = labs.sort_values("hours_since_infusion", kind="stable").reset_index(drop=True)
    copies = labs.sample(30, random_state=seed)
    copies.loc[copies.index[:12], "value"] = "999"  # conflicting
    labs = pd.concat([labs, copies, labs.head(3).assign(unit="furlongs"), labs.head(2).assign(patient_id="NOBODY")],
                     ignore_index=True)
    patients = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(n_patients)], "therapy": "axi-cel"})
    return labs, patients


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_chunk_size_never_changes_the_ingested_cohort(tmp_path, kind):
    labs, patients = _hostile_long()
    folder = write_long(tmp_path / "in", labs, patients, fmt=kind)
    outs = []
    for chunk_rows in (1_000_000, 37, 1):
        out = tmp_path / f"out-{chunk_rows}"
        out.mkdir()
        ingest_to_folder("long", folder, out, chunk_rows=chunk_rows)
        assert_reconciles(out)
        outs.append(out)
    assert same_content(outs[0], outs[1]) and same_content(outs[0], outs[2])
    q = pd.read_parquet(outs[2] / "quarantine.parquet")
    dup = q["reason"].isin(["duplicate", "conflicting_duplicate"])
    assert dup.sum() >= 30 and (q["reason"] == "conflicting_duplicate").sum() >= 12
    kept = pd.read_parquet(outs[2] / "labs.parquet")
    assert not kept.duplicated(["patient_id", "analyte", "hours_since_infusion"]).any()
    assert kept["patient_id"].is_monotonic_increasing  # grouped by patient: fast chunked reads downstream
    first = kept.groupby("patient_id")["source_row"].apply(lambda s: s.is_monotonic_increasing)
    assert first.all()  # each patient's rows in input order: the first of each duplicate group was kept
    v = json.loads((outs[2] / "validation.json").read_text())
    assert v["mixed_units"]["patient_analyte_series"] > 0


def test_memory_is_bounded_by_chunk_rows(tmp_path, monkeypatch):
    """No step holds more than about `chunk_rows` lab rows, whatever the input size."""
    labs, patients = _hostile_long(n_patients=200, per_patient=25)
    folder = write_long(tmp_path / "in", labs, patients, fmt="parquet")
    held: list[int] = []
    real_harmonise, real_dedup = stream.harmonise_chunk, stream._deduplicate

    def harmonise(raw, *args, **kwargs):
        held.append(len(raw))
        return real_harmonise(raw, *args, **kwargs)

    def dedup(frame, *args, **kwargs):
        held.append(len(frame))
        return real_dedup(frame, *args, **kwargs)

    monkeypatch.setattr(stream, "harmonise_chunk", harmonise)
    monkeypatch.setattr(stream, "_deduplicate", dedup)
    chunk_rows = 400
    out = tmp_path / "out"
    out.mkdir()
    v = ingest_to_folder("long", folder, out, chunk_rows=chunk_rows)
    assert v["rows_in"] == len(labs) > 10 * chunk_rows
    assert max(held) <= chunk_rows and len(held) > 2 * len(labs) // chunk_rows
    assert not (out / ".staging").exists()


def test_cli_ingest_streams_with_chunk_rows(tmp_path, capsys):
    from pipeline.cli import main

    labs, patients = _hostile_long()
    folder = write_long(tmp_path / "in", labs, patients)
    assert main(["ingest", "--format", "long", "--input", str(folder), "--out", str(tmp_path / "a")]) == 0
    assert main(["ingest", "--format", "long", "--input", str(folder), "--out", str(tmp_path / "b"),
                 "--chunk-rows", "11"]) == 0
    assert same_content(tmp_path / "a", tmp_path / "b")
    assert main(["ingest", "--format", "long", "--input", str(folder), "--out", str(tmp_path / "c"),
                 "--chunk-rows", "0"]) == 2
    assert "--chunk-rows must be >= 1" in capsys.readouterr().err and not (tmp_path / "c").exists()
