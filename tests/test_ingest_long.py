"""Long CSV/Parquet reader: harmonisation, quarantine reasons, refusals, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.ingest import ingest
from pipeline.cli import main
from tests.ingest_helpers import assert_reconciles, ingest_and_check, write_long

PATIENTS = pd.DataFrame({"patient_id": ["P1", "P2"], "therapy": ["axi-cel", "tisa-cel"],
                         "age_years": [60, 55], "site": ["A", "B"],
                         "infusion_datetime": ["2024-03-01T10:00", "2024-03-02T08:30"]})


def labs(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["patient_id", "analyte", "hours_since_infusion", "value", "unit"])


def test_names_units_and_text_values_are_harmonised(tmp_path):
    frame = labs([("P1", "IL-6", -20, "4.1", "pg/mL"), ("P1", "Interleukin 6", 24, "<2.5", "ng/L"),
                  ("P1", "IFN-γ", 24, "2,5", "pg/ml"), ("P1", "C-reactive protein", 24, "3.2", "mg/dL"),
                  ("P1", "Ferritin", 24, "1000", "pmol/L"), ("P1", "Ang-2", 24, "2.1", "ng/mL"),
                  ("P1", "PLT", 24, "150", "x10^3/uL"), ("P2", "Platelets", 24, "90", "10^9/L"),
                  ("P2", "LDH", 24, ">5000", "U/L"), ("P2", "ferritin", 30, "500", "µg/L"),
                  ("P2", "IL6", 30, "1e3", "pg/mL")])
    v = ingest_and_check("long", write_long(tmp_path / "in", frame, PATIENTS), tmp_path / "out")
    assert v["rows_quarantined"] == 0
    out = pd.read_parquet(tmp_path / "out" / "labs.parquet").set_index("source_row")
    assert out.loc[1, ["analyte", "value", "censor"]].tolist() == ["IL6", 2.5, "<"]
    assert out.loc[2, "value"] == 2.5 and out.loc[2, "analyte"] == "IFNG"
    assert out.loc[3, "value"] == pytest.approx(32.0)          # CRP mg/dL x10 -> mg/L
    assert out.loc[4, "value"] == pytest.approx(445.0)         # ferritin pmol/L -> ng/mL
    assert out.loc[5, "value"] == pytest.approx(2100.0)        # Ang-2 ng/mL -> pg/mL
    assert out.loc[8, ["value", "censor"]].tolist() == [5000.0, ">"]
    patients = pd.read_parquet(tmp_path / "out" / "patients.parquet")
    assert "site" in patients and "crs_max_grade" not in patients  # extras carried; outcomes may be absent


def test_every_quarantine_reason_lands_with_reconciled_counts(tmp_path):
    frame = labs([("P1", "IL-6", 0, "5", "pg/mL"),          # ok
                  ("P9", "IL-6", 0, "5", "pg/mL"),          # unknown_patient
                  ("", "IL-6", 0, "5", "pg/mL"),            # no_patient_id
                  ("P1", "Troponin", 0, "5", "ng/L"),       # unknown_analyte
                  ("P1", "CRP", 1, "", "mg/L"),             # missing_value
                  ("P1", "CRP", 2, "high", "mg/L"),         # unparseable_value
                  ("P1", "CRP", 3, "5,000", "mg/L"),        # ambiguous -> unparseable_value
                  ("P1", "CRP", 4, "5", ""),                # missing_unit
                  ("P1", "CRP", 5, "5", "mmol/L"),          # unknown_unit
                  ("P1", "CRP", "day 2", "5", "mg/L"),      # unparseable_time
                  ("P1", "CRP", -5000, "5", "mg/L"),        # time_out_of_window
                  ("P1", "CRP", 6, "-1", "mg/L"),           # negative_value
                  ("P1", "CRP", 7, "5000", "mg/L"),         # implausible_value
                  ("P1", "IL-6", 0, "5", "pg/mL"),          # duplicate
                  ("P1", "IL-6", 0, "7", "pg/mL")])         # conflicting_duplicate
    v = ingest_and_check("long", write_long(tmp_path / "in", frame, PATIENTS), tmp_path / "out")
    assert v["rows_in"] == 15 and v["rows_out"] == 1
    assert v["by_reason"] == {"unknown_patient": 1, "no_patient_id": 1, "unknown_analyte": 1,
                              "missing_value": 1, "unparseable_value": 2, "missing_unit": 1,
                              "unknown_unit": 1, "unparseable_time": 1, "time_out_of_window": 1,
                              "negative_value": 1, "implausible_value": 1, "duplicate": 1,
                              "conflicting_duplicate": 1}
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet")
    row = q[q["reason"] == "unknown_unit"].iloc[0]
    assert row["unit"] == "mmol/L" and "mg/dL" in row["detail"] and row["file"].endswith("labs.csv")
    assert q.loc[q["reason"] == "unparseable_time", "time"].iloc[0] == "day 2"


def test_mixed_units_are_converted_and_reported(tmp_path):
    frame = labs([("P1", "CRP", 24, "3", "mg/dL"), ("P1", "CRP", 48, "50", "mg/L")])
    v = ingest_and_check("long", write_long(tmp_path / "in", frame, PATIENTS), tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out" / "labs.parquet")
    assert out["value"].tolist() == [30.0, 50.0]
    assert v["mixed_units"]["patient_analyte_series"] == 1
    assert v["mixed_units"]["examples"][0]["units"] == ["mg/dl", "mg/l"]


def test_datetimes_become_hours_since_infusion(tmp_path):
    frame = pd.DataFrame({"patient_id": ["P1", "P1", "P2", "P1"], "analyte": ["CRP"] * 4,
                          "datetime": ["2024-03-02T10:00", "2024-02-29T22:00:00", "2024-03-02T09:00",
                                       "2024-03-03"],
                          "value": [10, 5, 4, 3], "unit": "mg/L"})
    v = ingest_and_check("long", write_long(tmp_path / "in", frame, PATIENTS, "parquet"), tmp_path / "out")
    out = pd.read_parquet(tmp_path / "out" / "labs.parquet")
    assert out["hours_since_infusion"].tolist() == [24.0, -12.0, 0.5]  # 2024 is a leap year
    assert v["by_reason"] == {"imprecise_time": 1}
    assert v["patients_without_baseline"]["CRP"] == 1  # P2's series starts after infusion


def test_parquet_and_csv_give_the_same_tables(tmp_path):
    frame = labs([("P1", "IL-6", 0, 5.0, "pg/mL"), ("P2", "CRP", 24, 7.5, "mg/L")])
    a = ingest("long", write_long(tmp_path / "a", frame, PATIENTS, "csv"))
    b = ingest("long", write_long(tmp_path / "b", frame, PATIENTS, "parquet"))
    pd.testing.assert_frame_equal(a.cohort.labs, b.cohort.labs)


@pytest.mark.parametrize("problem,needle", [
    ("missing_column", "lacks required column(s) ['unit']"),
    ("semicolons", "separated by semicolons"),
    ("binary", "Parquet file, not comma-separated"),
    ("empty", "empty"),
    ("header_only", "no data rows"),
    ("no_time", "hours_since_infusion"),
    ("duplicate_patient", "appears more than once"),
    ("text_grade", "crs_max_grade must be a number"),
])
def test_unreadable_input_is_refused_with_one_clear_message(tmp_path, problem, needle):
    folder = write_long(tmp_path / "in", labs([("P1", "IL-6", 0, 5.0, "pg/mL")]), PATIENTS)
    path = folder / "labs.csv"
    if problem == "missing_column":
        pd.read_csv(path).drop(columns="unit").to_csv(path, index=False)
    elif problem == "semicolons":
        pd.read_csv(path).to_csv(path, index=False, sep=";")
    elif problem == "binary":
        pd.read_csv(path).to_parquet(path)
    elif problem == "empty":
        path.write_text("")
    elif problem == "header_only":
        path.write_text("patient_id,analyte,hours_since_infusion,value,unit\n")
    elif problem == "no_time":
        pd.read_csv(path).drop(columns="hours_since_infusion").to_csv(path, index=False)
    elif problem == "duplicate_patient":
        pd.concat([PATIENTS, PATIENTS]).to_csv(folder / "patients.csv", index=False)
    elif problem == "text_grade":
        PATIENTS.assign(crs_max_grade=["3", "grade two"]).to_csv(folder / "patients.csv", index=False)
    with pytest.raises(CohortError) as err:
        ingest("long", folder)
    assert needle in str(err.value) and "file" in str(err.value)


def test_cli_ingest_exit_codes(tmp_path, capsys):
    folder = write_long(tmp_path / "in", labs([("P1", "IL-6", 0, 5.0, "pg/mL")]), PATIENTS)
    assert main(["ingest", "--format", "long", "--input", str(folder), "--out", str(tmp_path / "o")]) == 0
    assert_reconciles(tmp_path / "o")
    (folder / "labs.csv").write_text("a;b;c\n1;2;3\n")
    code = main(["ingest", "--format", "long", "--input", str(folder), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert code == 2 and "semicolons" in err and "Traceback" not in err and err.count("\n") == 1


def test_simulated_cohort_passes_through_unchanged(tmp_path):
    from cohorts.io import read_cohort
    from cohorts.simulate import write_simulated_cohort

    write_simulated_cohort(tmp_path / "sim", 60, 4, {"axi-cel": 0.5, "ide-cel": 0.5})
    v = ingest_and_check("long", tmp_path / "sim", tmp_path / "out")
    assert v["rows_quarantined"] == 0
    sim = pd.read_parquet(tmp_path / "sim" / "labs.parquet")
    out = read_cohort(tmp_path / "out")
    labs = out.labs.sort_values("source_row").reset_index(drop=True)  # ingest writes labs grouped by patient
    cols = ["patient_id", "analyte", "hours_since_infusion", "value", "censor"]
    pd.testing.assert_frame_equal(labs[cols], sim[cols].astype({"analyte": str}), check_dtype=False)
    assert np.array_equal(labs["source_row"], np.arange(len(sim)))
    assert out.provenance["synthetic"] is True and out.provenance["ingest"]["format"] == "long"


def test_help_lists_ingest():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--format" in out.stdout and "--input" in out.stdout
