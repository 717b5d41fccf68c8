"""The simulator's cohort exported to each format and ingested back gives the same canonical tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohorts.simulate import write_simulated_cohort
from tests.exporters import to_long, to_omop, to_sdtm
from tests.ingest_helpers import ingest_and_check

MIX = {"axi-cel": 0.3, "tisa-cel": 0.2, "ide-cel": 0.2, "cilta-cel": 0.2, "blinatumomab": 0.1}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from cohorts.io import read_cohort

    folder = tmp_path_factory.mktemp("sim") / "cohort"
    write_simulated_cohort(folder, 40, 11, MIX)
    return read_cohort(folder)


def _same_labs(got: pd.DataFrame, want: pd.DataFrame, ids: dict[str, str] | None = None) -> None:
    key = ["patient_id", "analyte", "hours_since_infusion"]
    got = got.assign(patient_id=got["patient_id"].map(ids) if ids else got["patient_id"])
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    assert len(got) == len(want)
    assert got["patient_id"].tolist() == want["patient_id"].astype(str).tolist()
    assert got["analyte"].tolist() == want["analyte"].astype(str).tolist()
    assert got["censor"].tolist() == want["censor"].astype(str).tolist()
    np.testing.assert_allclose(got["hours_since_infusion"], want["hours_since_infusion"], atol=1e-6)
    np.testing.assert_allclose(got["value"], want["value"], rtol=1e-9)


def _same_outcomes(got: pd.DataFrame, want: pd.DataFrame, ids: dict[str, str] | None = None) -> None:
    got = got.assign(patient_id=got["patient_id"].map(ids) if ids else got["patient_id"]).set_index("patient_id")
    want = want.set_index(want["patient_id"].astype(str))
    got = got.loc[want.index]
    assert got["therapy"].tolist() == want["therapy"].astype(str).tolist()
    np.testing.assert_allclose(got["age_years"], want["age_years"])
    for col in ("crs_max_grade", "severe_onset_hours"):
        np.testing.assert_allclose(got[col].astype(float), want[col].astype(float), atol=1e-6, equal_nan=True)
    has_onset = want["crs_onset_hours"].notna()
    np.testing.assert_allclose(got.loc[has_onset, "crs_onset_hours"], want.loc[has_onset, "crs_onset_hours"],
                               atol=1e-6)


def _same_events(got: pd.DataFrame, want: pd.DataFrame, ids: dict[str, str] | None = None) -> None:
    got = got.assign(patient_id=got["patient_id"].map(ids) if ids else got["patient_id"])
    key = ["patient_id", "event", "hours_since_infusion"]
    got, want = got.sort_values(key).reset_index(drop=True), want.sort_values(key).reset_index(drop=True)
    assert got["event"].tolist() == want["event"].astype(str).tolist()
    np.testing.assert_allclose(got["hours_since_infusion"], want["hours_since_infusion"], atol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_long_round_trip(simulated, tmp_path, fmt):
    from cohorts.io import read_cohort

    v = ingest_and_check("long", to_long(simulated, tmp_path / "in", fmt), tmp_path / "out")
    assert v["rows_quarantined"] == 0 and v["rows_out"] == len(simulated.labs)
    got = read_cohort(tmp_path / "out")
    _same_labs(got.labs, simulated.labs)
    want = simulated.labs.sort_values(["patient_id", "analyte", "hours_since_infusion"])
    have = got.labs.sort_values(["patient_id", "analyte", "hours_since_infusion"])
    np.testing.assert_allclose(have["resulted_hours"], want["resulted_hours"], equal_nan=True)
    cols = ["patient_id", "therapy", "disease", "sex", "crs_max_grade", "severe_onset_hours"]
    pd.testing.assert_frame_equal(got.patients[cols], simulated.patients[cols].astype({"patient_id": str}),
                                  check_dtype=False)
    assert got.provenance["synthetic"] is False and got.provenance["source"] == "long"


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_sdtm_round_trip(simulated, tmp_path, fmt):
    from cohorts.io import read_cohort

    v = ingest_and_check("sdtm", to_sdtm(simulated, tmp_path / "in", fmt), tmp_path / "out")
    assert v["rows_quarantined"] == 0 and v["rows_out"] == len(simulated.labs)
    got = read_cohort(tmp_path / "out")
    _same_labs(got.labs, simulated.labs)
    _same_outcomes(got.patients, simulated.patients)
    _same_events(got.events, simulated.events)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_omop_round_trip(simulated, tmp_path, fmt):
    from cohorts.io import read_cohort

    v = ingest_and_check("omop", to_omop(simulated, tmp_path / "in", fmt), tmp_path / "out")
    assert v["rows_quarantined"] == 0 and v["rows_out"] == len(simulated.labs)
    got = read_cohort(tmp_path / "out")
    ids = {str(i + 1): pid for i, pid in enumerate(simulated.patients["patient_id"])}
    _same_labs(got.labs, simulated.labs, ids)
    _same_outcomes(got.patients, simulated.patients, ids)
    _same_events(got.events, simulated.events, ids)
