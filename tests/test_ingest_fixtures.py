"""Hand-made SDTM and OMOP fixtures (tests/fixtures/): what lands where, and why."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.ingest import ingest
from pipeline.cli import main
from tests.ingest_helpers import assert_reconciles, ingest_and_check
from tests.xpt_writer import write_xpt

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def _as_xpt(src, dest):
    dest.mkdir()
    for csv in src.glob("*.csv"):
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        for col in ("AGE", "LBSEQ", "LBSTRESN", "LBDY", "EXDOSE", "CMDOSE", "AESEQ", "EXSEQ", "CMSEQ"):
            if col in frame:
                frame[col] = pd.to_numeric(frame[col], errors="coerce")
        write_xpt(frame, dest / f"{csv.stem}.xpt", csv.stem.upper())
    return dest


@pytest.mark.parametrize("kind", ["csv", "xpt"])
def test_sdtm_fixture(tmp_path, kind):
    folder = FIXTURES / "sdtm" if kind == "csv" else _as_xpt(FIXTURES / "sdtm", tmp_path / "xpt")
    v = ingest_and_check("sdtm", folder, tmp_path / "out")
    assert (v["rows_in"], v["rows_out"], v["rows_quarantined"]) == (13, 7, 6)
    assert v["by_reason"] == {"duplicate": 1, "imprecise_time": 1, "negative_value": 1, "no_infusion_time": 1,
                              "unknown_analyte": 1, "unknown_patient": 1}
    labs = pd.read_parquet(tmp_path / "out" / "labs.parquet").set_index("source_row")
    assert labs.loc[0, "hours_since_infusion"] == -25.0              # day -1 baseline, EX day 0 at 09:00
    assert labs.loc[1, ["value", "censor"]].tolist() == [1.5, "<"]   # LBSTRESC '<1.5'
    assert labs.loc[2, "value"] == 35.0                              # standardised result used
    assert labs.loc[4, "analyte"] == "IFNG"                          # unknown LBTESTCD, known LBTEST
    assert labs.loc[8, "value"] == 2500.0                            # Ang-2 ng/mL -> pg/mL
    assert labs.loc[9, "hours_since_infusion"] == 30.0               # LBDY 2 + LBELTM PT6H
    p = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")
    assert p.loc["CRS01-001", ["therapy", "crs_max_grade", "crs_onset_hours", "severe_onset_hours"]].tolist() \
        == ["axi-cel", 3.0, 23.0, 65.0]                              # day 0 = CAR-T, not fludarabine
    assert p.loc["CRS01-002", "crs_max_grade"] == 2.0 and p.loc["CRS01-003", "crs_max_grade"] == 0.0
    ev = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert ev["event"].tolist() == ["tocilizumab", "corticosteroids"]  # paracetamol is not an event
    assert ev["hours_since_infusion"].iloc[1] == pytest.approx(72 + 14 + 59 / 60)  # date only -> 23:59


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_omop_fixture(tmp_path, kind):
    folder = FIXTURES / "omop"
    if kind == "parquet":
        folder = tmp_path / "pq"
        folder.mkdir()
        for csv in (FIXTURES / "omop").glob("*.csv"):
            pd.read_csv(csv).to_parquet(folder / f"{csv.stem}.parquet")
    v = ingest_and_check("omop", folder, tmp_path / "out")
    assert (v["rows_in"], v["rows_out"], v["rows_quarantined"]) == (12, 7, 5)
    assert v["by_reason"] == {"imprecise_time": 1, "no_infusion_time": 1, "unknown_analyte": 1,
                              "unknown_patient": 1, "unknown_unit": 1}
    labs = pd.read_parquet(tmp_path / "out" / "labs.parquet").set_index("source_row")  # measurement_id
    assert labs.loc[1001, ["analyte", "value"]].tolist() == ["CRP", 8.0]    # concept 3020460, mg/dL -> mg/L
    assert labs.loc[1002, "value"] == 95.0                                  # unit from unit_concept_id 8840
    assert labs.loc[1003, ["analyte", "value", "censor"]].tolist() == ["IL6", 1.5, "<"]
    assert labs.loc[1004, "value"] == pytest.approx(667.5)                  # ferritin pmol/L
    assert labs.loc[1005, "analyte"] == "PLT"                               # concept 3024929, 10*9/L
    assert labs.loc[1008, "hours_since_infusion"] == -26.5                  # date + time columns
    p = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")
    assert p.loc["101", ["therapy", "crs_max_grade", "severe_onset_hours", "age_years", "sex"]].tolist() \
        == ["axi-cel", 3.0, 57.0, 64.0, "M"]
    assert p.loc["102", ["therapy", "crs_max_grade", "sex"]].tolist() == ["cilta-cel", 2.0, "F"]
    ev = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert sorted(ev["event"]) == ["corticosteroids", "tocilizumab"]


@pytest.mark.parametrize("fmt,table,drop,needle", [
    ("sdtm", "lb.csv", ["LBTESTCD", "LBTEST"], "LBTESTCD or LBTEST"),
    ("sdtm", "dm.csv", ["USUBJID"], "lacks required column(s) ['USUBJID']"),
    ("omop", "measurement.csv", ["value_as_number", "value_source_value"], "value_as_number"),
    ("omop", "person.csv", ["person_id"], "lacks required column(s) ['person_id']"),
])
def test_missing_required_columns_are_refused(tmp_path, fmt, table, drop, needle):
    folder = tmp_path / fmt
    shutil.copytree(FIXTURES / fmt, folder)
    pd.read_csv(folder / table, dtype=str).drop(columns=drop).to_csv(folder / table, index=False)
    with pytest.raises(CohortError) as err:
        ingest(fmt, folder)
    assert needle in str(err.value) and table in str(err.value)


def test_xpt_that_is_not_xpt_is_refused(tmp_path):
    folder = tmp_path / "sdtm"
    shutil.copytree(FIXTURES / "sdtm", folder)
    (folder / "lb.csv").rename(folder / "lb.xpt")
    with pytest.raises(CohortError, match="not a SAS transport"):
        ingest("sdtm", folder)


@pytest.mark.parametrize("fmt", ["sdtm", "omop"])
def test_cli_reads_each_format(tmp_path, fmt):
    assert main(["ingest", "--format", fmt, "--input", str(FIXTURES / fmt), "--out", str(tmp_path / "o")]) == 0
    assert_reconciles(tmp_path / "o")
