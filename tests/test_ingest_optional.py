"""Issue 11: every reader survives every optional part being absent.

Hypothesis drops any set of optional domains/tables and optional columns from the SDTM, OMOP and
long fixtures. The reader returns a cohort whose counts reconcile (and which featurizes, with the
landmark counts partitioning the rows) or it raises CohortError (a missing part that makes a
required fact unknowable); never any other exception.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.errors import CohortError
from cohorts.ingest import ingest, write_ingested
from cohorts.io import read_cohort
from features.landmarks import landmark_counts
from features.transformer import KineticFeatures
from tests.ingest_helpers import assert_reconciles

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = settings(max_examples=int(os.environ.get("CRS_HYPOTHESIS_EXAMPLES", "40")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

SDTM_DOMAINS = ["ex", "ae", "cm", "ds", "sv"]
SDTM_COLUMNS = [("dm", c) for c in ("AGE", "SEX", "ARM", "RFPENDTC")] + \
    [("lb", c) for c in ("LBSTRESN", "LBSTRESC", "LBSTRESU", "LBTEST", "LBDY", "LBELTM", "LBSEQ", "VISIT",
                         "LBDTC")] + \
    [("ae", c) for c in ("AEDECOD", "AETERM", "AEENDTC")] + [("cm", c) for c in ("CMDECOD", "CMTRT", "CMDOSE",
                                                                               "CMDOSU")] + \
    [("ex", c) for c in ("EXDOSE", "EXDOSU")] + [("ds", "DSSTDTC"), ("sv", "SVENDTC")]
OMOP_TABLES = ["drug_exposure", "observation", "condition_occurrence", "observation_period"]
OMOP_COLUMNS = [("measurement", c) for c in ("measurement_concept_id", "measurement_source_value",
                                             "value_as_number", "unit_concept_id", "unit_source_value",
                                             "measurement_datetime", "measurement_time", "measurement_id")] + \
    [("person", c) for c in ("gender_concept_id", "year_of_birth", "gender_source_value")] + \
    [("drug_exposure", c) for c in ("drug_exposure_start_datetime", "drug_source_value", "quantity",
                                    "dose_unit_source_value", "drug_concept_id")] + \
    [("condition_occurrence", c) for c in ("condition_start_datetime", "condition_source_value")] + \
    [("observation", c) for c in ("value_as_number", "value_as_string", "observation_datetime")] + \
    [("observation_period", "observation_period_end_date")]
LONG_TABLES = ["events", "grades"]
LONG_COLUMNS = [("labs", c) for c in ("censor", "resulted_hours")] + \
    [("patients", c) for c in ("therapy", "disease", "age_years", "crs_max_grade", "severe_onset_hours",
                               "followup_hours", "grading", "crs_onset_hours")] + \
    [("events", c) for c in ("dose", "dose_unit")]


def _long_folder(folder: Path) -> Path:
    folder.mkdir()
    pd.DataFrame({"patient_id": ["P1", "P1", "P1", "P2", "P2", "P3"],
                  "analyte": ["IL-6", "IL-6", "CRP", "IFN-γ", "CRP", "CRP"],
                  "hours_since_infusion": [-10, 30, 30, 20, 50, 10], "value": ["3", "400", "50", "<1", "80", "9"],
                  "unit": ["pg/mL", "pg/mL", "mg/L", "pg/mL", "mg/L", "mg/L"], "censor": ["", "", "", "<", "", ""],
                  "resulted_hours": [-9, "", "", 70, "", ""]}).to_csv(folder / "labs.csv", index=False)
    pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "therapy": ["axi-cel", "tisa-cel", "other"],
                  "disease": "LBCL", "age_years": [60, 50, 40], "crs_max_grade": [3, 1, 4],
                  "crs_onset_hours": [20, 30, ""], "severe_onset_hours": [60, "", ""],
                  "followup_hours": [300, 40, ""], "grading": "ASTCT"}).to_csv(folder / "patients.csv", index=False)
    pd.DataFrame({"patient_id": ["P1", "P1"], "event": ["tocilizumab", "vasopressors"],
                  "hours_since_infusion": [40, 50], "dose": [8, ""], "dose_unit": ["mg/kg", ""]}) \
        .to_csv(folder / "events.csv", index=False)
    pd.DataFrame({"patient_id": ["P1", "P1", "P2"], "hours_since_infusion": [20, 60, 30], "grade": [1, 3, 1]}) \
        .to_csv(folder / "grades.csv", index=False)
    return folder


def _sdtm_folder(folder: Path) -> Path:
    shutil.copytree(FIXTURES / "sdtm", folder)
    dm = pd.read_csv(folder / "dm.csv", dtype=str)
    dm["RFPENDTC"] = ["2024-01-20T09:00", "", "2024-03-20"]
    dm.to_csv(folder / "dm.csv", index=False)
    pd.DataFrame({"STUDYID": "CRS01", "DOMAIN": "SV", "USUBJID": ["CRS01-001", "CRS01-002"],
                  "VISIT": ["DAY 7", "DAY 3"], "SVSTDTC": ["2024-01-17T08:00", "2024-02-04"],
                  "SVENDTC": ["2024-01-17T09:00", ""]}).to_csv(folder / "sv.csv", index=False)
    return folder


def _drop(folder: Path, tables: set[str], columns: set[tuple[str, str]]) -> None:
    for name in tables:
        (folder / f"{name}.csv").unlink(missing_ok=True)
    for table, col in columns:
        path = folder / f"{table}.csv"
        if path.exists():
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            frame.drop(columns=[c for c in frame.columns if c.lower() == col.lower()]).to_csv(path, index=False)


def _survives(fmt: str, folder: Path) -> None:
    try:
        result = ingest(fmt, folder)
    except CohortError:
        return
    with tempfile.TemporaryDirectory() as out:
        write_ingested(result, out)
        assert_reconciles(Path(out))
        cohort = read_cohort(out)
    matrix = KineticFeatures(current_grade=True).build(cohort.labs, cohort.patients, [24.0, 48.0], events=cohort.events,
                                     grades=cohort.grades)
    assert len(matrix) == 2 * len(cohort.patients)
    counts = landmark_counts(matrix)
    for block in counts.values():
        assert block["rows"] == block["eligible"] + block["already_severe"] + block["not_observed"]
    if cohort.events is None:  # treatments not recorded: unknown, never "not given"
        assert matrix["tocilizumab__given"].isna().all()
    if cohort.grades is None:
        assert matrix["current_grade"].isna().all()


@SETTINGS
@given(st.sets(st.sampled_from(SDTM_DOMAINS)), st.sets(st.sampled_from(SDTM_COLUMNS), max_size=6))
def test_sdtm_without_optional_domains_and_columns(domains, columns):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _sdtm_folder(Path(tmp) / "sdtm")
        _drop(folder, domains, columns)
        _survives("sdtm", folder)


@SETTINGS
@given(st.sets(st.sampled_from(OMOP_TABLES)), st.sets(st.sampled_from(OMOP_COLUMNS), max_size=6))
def test_omop_without_optional_tables_and_columns(tables, columns):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "omop"
        shutil.copytree(FIXTURES / "omop", folder)
        _drop(folder, tables, columns)
        _survives("omop", folder)


@SETTINGS
@given(st.sets(st.sampled_from(LONG_TABLES)), st.sets(st.sampled_from(LONG_COLUMNS), max_size=6))
def test_long_without_optional_tables_and_columns(tables, columns):
    with tempfile.TemporaryDirectory() as tmp:
        folder = _long_folder(Path(tmp) / "long")
        _drop(folder, tables, columns)
        _survives("long", folder)


@pytest.mark.parametrize("fmt,drop", [("sdtm", "cm"), ("sdtm", "ex"), ("sdtm", "ae"), ("sdtm", "ds"),
                                      ("omop", "drug_exposure"), ("omop", "observation"), ("long", "events")])
def test_each_optional_part_alone(tmp_path, fmt, drop):
    """Each named case of the issue, explicitly (the property tests above cover the combinations)."""
    folder = {"sdtm": lambda: _sdtm_folder(tmp_path / "in"), "long": lambda: _long_folder(tmp_path / "in"),
              "omop": lambda: shutil.copytree(FIXTURES / "omop", tmp_path / "in")}[fmt]()
    _drop(Path(folder), {drop}, set())
    result = ingest(fmt, folder)  # none of these makes the whole input unusable
    v = result.validation
    assert v["rows_in"] == v["rows_out"] + v["rows_quarantined"]
    if drop in ("cm", "drug_exposure", "events"):
        assert result.cohort.events is None and not v["events_recorded"]
    if drop == "ex" or drop == "drug_exposure":  # no day 0: date-time lab rows quarantined with a reason
        assert v["by_reason"].get("no_infusion_time", 0) > 0
    _survives(fmt, Path(folder))
    assert np.isfinite(v["rows_in"])
