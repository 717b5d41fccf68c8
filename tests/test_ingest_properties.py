"""Hypothesis: malformed rows thrown at each reader. It returns (and the counts reconcile) or raises
CohortError; it never crashes with anything else."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.errors import CohortError
from cohorts.ingest import ingest, write_ingested
from tests.ingest_helpers import assert_reconciles

FIXTURES = Path(__file__).parent / "fixtures"
junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=12)
numbers = st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr)
cell_value = st.one_of(numbers, junk, st.sampled_from(["<2.5", ">5000", "2,5", "5,000", "", "-1", "≤1", "1e400"]))
cell_unit = st.one_of(junk, st.sampled_from(["pg/mL", "mg/dL", "mg/L", "x10^3/uL", "µg/L", "", "mmol/L"]))
cell_analyte = st.one_of(junk, st.sampled_from(["IL-6", "CRP", "IFN-γ", "Ferritin", "PLT", "Troponin", ""]))
cell_time = st.one_of(numbers, junk, st.sampled_from(["2024-01-11T08:00", "2024-01-11", "", "PT6H", "-24"]))
SETTINGS = settings(max_examples=int(os.environ.get("CRS_HYPOTHESIS_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(fmt: str, folder: Path) -> None:
    try:
        result = ingest(fmt, folder)
    except CohortError:
        return
    with tempfile.TemporaryDirectory() as out:
        write_ingested(result, out)
        assert_reconciles(Path(out))
        v = result.validation
        assert v["rows_in"] == v["rows_out"] + v["rows_quarantined"]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["P1", "P2", "P9", "", " P1 "]) | junk, cell_analyte,
                          cell_time, cell_value, cell_unit), min_size=0, max_size=25),
       st.sampled_from(["csv", "parquet"]))
def test_long_reader_never_crashes(rows, kind):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        labs = pd.DataFrame(rows, columns=["patient_id", "analyte", "hours_since_infusion", "value", "unit"],
                            dtype=object)
        patients = pd.DataFrame({"patient_id": ["P1", "P2"], "therapy": ["axi-cel", "other"]})
        if kind == "csv":
            labs.to_csv(folder / "labs.csv", index=False)
            patients.to_csv(folder / "patients.csv", index=False)
        else:
            labs.astype(str).to_parquet(folder / "labs.parquet")
            patients.to_parquet(folder / "patients.parquet")
        _run("long", folder)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["CRS01-001", "CRS01-002", "X"]) | junk, cell_analyte, cell_value,
                          cell_unit, cell_time, cell_time), min_size=0, max_size=20))
def test_sdtm_reader_never_crashes(rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sdtm"
        shutil.copytree(FIXTURES / "sdtm", folder)
        pd.DataFrame(rows, columns=["USUBJID", "LBTESTCD", "LBORRES", "LBORRESU", "LBDTC", "LBELTM"]) \
            .assign(LBDY="2").to_csv(folder / "lb.csv", index=False)
        _run("sdtm", folder)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["101", "102", "7"]) | junk, cell_analyte | st.just("26881-3"),
                          cell_value, cell_unit, cell_time), min_size=0, max_size=20))
def test_omop_reader_never_crashes(rows):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "omop"
        shutil.copytree(FIXTURES / "omop", folder)
        pd.DataFrame(rows, columns=["person_id", "measurement_source_value", "value_source_value",
                                    "unit_source_value", "measurement_datetime"]) \
            .to_csv(folder / "measurement.csv", index=False)
        _run("omop", folder)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(["labs.csv", "labs.parquet", "patients.csv"]))
def test_arbitrary_bytes_are_refused_or_read(data, name):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pd.DataFrame({"patient_id": ["P1"], "analyte": ["IL-6"], "hours_since_infusion": [0],
                      "value": [1.0], "unit": ["pg/mL"]}).to_csv(folder / "labs.csv", index=False)
        pd.DataFrame({"patient_id": ["P1"]}).to_csv(folder / "patients.csv", index=False)
        if name.endswith(".parquet"):
            (folder / "labs.csv").unlink()
        (folder / name).write_bytes(data)
        _run("long", folder)
