"""Every reader fills followup_hours and counts lab rows whose result time will be assumed (issue 12)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.ingest import ingest
from tests.ingest_helpers import ingest_and_check, write_long

FIXTURES = Path(__file__).parent / "fixtures"


def test_sdtm_followup_from_ds_ae_lb_and_assumed_result_times(tmp_path):
    v = ingest_and_check("sdtm", FIXTURES / "sdtm", tmp_path / "out")
    p = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")["followup_hours"]
    assert p["CRS01-001"] == 327.0      # DS COMPLETED 2024-01-24 (date only: 00:00), day 0 2024-01-10T09:00
    assert p["CRS01-002"] == 37.5       # no DS end: last AE date 2024-02-03 (00:00) after the last LB draw
    assert np.isnan(p["CRS01-003"])     # day 0 unknown (EXSTDTC without a clock time)
    assert v["outcomes"] == {"patients": 3, "outcome_recorded": 3, "severe": 1, "severe_without_onset_time": 0,
                             "followup_known": 2, "followup_unknown": 1}
    rt = v["result_times"]
    assert rt["IL6"] == {"rows": 2, "without_result_time": 2, "turnaround_hours": 72.0, "assumed_later_than_draw": 2}
    assert rt["ANG2"]["assumed_later_than_draw"] == 1 and rt["ANG2"]["turnaround_hours"] == 120.0
    assert rt["CRP"] == {"rows": 1, "without_result_time": 1, "turnaround_hours": 0.0, "assumed_later_than_draw": 0}
    assert any("IL6 2 row(s) +72 h" in n for n in v["notes"])
    grades = pd.read_parquet(tmp_path / "out" / "grades.parquet")
    assert grades[grades["patient_id"] == "CRS01-001"]["grade"].tolist() == [1.0, 3.0]


def test_sdtm_followup_from_dm_end_of_participation(tmp_path):
    folder = tmp_path / "sdtm"
    shutil.copytree(FIXTURES / "sdtm", folder)
    (folder / "ds.csv").unlink()
    dm = pd.read_csv(folder / "dm.csv", dtype=str)
    dm["RFPENDTC"] = ["2024-01-20T09:00", "", ""]
    dm.to_csv(folder / "dm.csv", index=False)
    p = ingest("sdtm", folder).cohort.patients.set_index("patient_id")["followup_hours"]
    assert p["CRS01-001"] == 240.0 and p["CRS01-002"] == 37.5


def test_omop_followup_from_observation_period_else_records(tmp_path):
    v = ingest_and_check("omop", FIXTURES / "omop", tmp_path / "out")
    p = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")["followup_hours"]
    assert p["101"] == 735.0            # observation_period_end_date 2024-02-10, day 0 2024-01-10T09:00
    assert p["102"] == 60.0             # no period: the last dated record (CRS grade 2024-02-03T12:00)
    assert np.isnan(p["103"])           # no day 0
    assert v["result_times"]["IL6"]["assumed_later_than_draw"] == 2
    assert v["result_times"]["CRP"]["without_result_time"] == 3
    (tmp_path / "omop").mkdir()
    for f in (FIXTURES / "omop").glob("*.csv"):
        if f.stem != "observation_period":
            shutil.copy(f, tmp_path / "omop" / f.name)
    p2 = ingest("omop", tmp_path / "omop").cohort.patients.set_index("patient_id")["followup_hours"]
    assert p2["101"] == 59.0            # the last dated record: tocilizumab 2024-01-12T20:00 (last draw 47 h)


def _long_patients(**extra) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ["P1", "P2"], "therapy": ["axi-cel", "tisa-cel"],
                         "infusion_datetime": ["2024-03-01T10:00", "2024-03-02T08:30"], **extra})


LONG_LABS = pd.DataFrame({"patient_id": ["P1", "P1", "P1", "P2"], "analyte": ["IL-6", "IL-6", "CRP", "IFN-γ"],
                          "hours_since_infusion": [-10, 30, 30, 20], "value": [3, 400, 50, 80],
                          "unit": ["pg/mL", "pg/mL", "mg/L", "pg/mL"], "resulted_hours": [-9, "", "", ""]})


def test_long_followup_hours_column(tmp_path):
    v = ingest_and_check("long", write_long(tmp_path / "in", LONG_LABS, _long_patients(followup_hours=[200, ""])),
                         tmp_path / "out")
    p = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")["followup_hours"]
    assert p["P1"] == 200 and np.isnan(p["P2"])
    assert v["outcomes"]["followup_known"] == 1 and v["outcomes"]["followup_unknown"] == 1
    assert v["result_times"]["IL6"] == {"rows": 2, "without_result_time": 1, "turnaround_hours": 72.0,
                                        "assumed_later_than_draw": 1}
    assert v["result_times"]["IFNG"]["assumed_later_than_draw"] == 1
    assert v["result_times"]["CRP"]["assumed_later_than_draw"] == 0


def test_long_followup_from_last_contact_datetime(tmp_path):
    pats = _long_patients(last_contact_datetime=["2024-03-08T10:00", "2024-03-05"])
    p = ingest("long", write_long(tmp_path / "in", LONG_LABS, pats)).cohort.patients.set_index("patient_id")
    assert p.loc["P1", "followup_hours"] == 168.0 and p.loc["P2", "followup_hours"] == 63.5  # date only: 00:00


def test_long_without_followup_says_unknown(tmp_path):
    v = ingest_and_check("long", write_long(tmp_path / "in", LONG_LABS, _long_patients()), tmp_path / "out")
    assert "followup_hours" not in pd.read_parquet(tmp_path / "out" / "patients.parquet")
    assert v["outcomes"]["followup_unknown"] == 2
    assert any("follow-up unknown" in n for n in v["notes"])
    assert not v["events_recorded"] and not (tmp_path / "out" / "events.parquet").exists()


def test_long_bad_followup_is_an_input_error(tmp_path):
    with pytest.raises(CohortError, match="followup_hours"):
        ingest("long", write_long(tmp_path / "a", LONG_LABS, _long_patients(followup_hours=[-5, 10])))
    with pytest.raises(CohortError, match="last_contact_datetime"):
        ingest("long", write_long(tmp_path / "b", LONG_LABS,
                                  _long_patients(last_contact_datetime=["soon", ""])))


def test_grade3_without_onset_is_warned_and_counted(tmp_path):
    pats = _long_patients(crs_max_grade=[3, 1], severe_onset_hours=["", ""], followup_hours=[300, 300])
    v = ingest_and_check("long", write_long(tmp_path / "in", LONG_LABS, pats), tmp_path / "out")
    assert v["outcomes"]["severe_without_onset_time"] == 1
    assert any(n.startswith("WARNING: 1 patient(s) reached grade >= 3 with no onset time") for n in v["notes"])
    assert json.loads((tmp_path / "out" / "validation.json").read_text())["outcomes"]["severe"] == 1
