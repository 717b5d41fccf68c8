import json

import numpy as np
import pandas as pd
import pytest

from cohorts.describe import (
    cohort_statistics,
    compare_with_targets,
    format_comparison,
    load_targets,
)
from cohorts.errors import CohortError
from cohorts.registry import analyte_registry
from cohorts.schema import canonical_events, canonical_labs, canonical_patients
from cohorts.sim_labs import true_log_values
from cohorts.simulate import (
    iter_chunks,
    latent_distribution,
    load_simulator_params,
    write_simulated_cohort,
)
from tests.conftest import MIX


def test_same_seed_same_cohort_different_seed_different(small_cohort):
    again = next(iter_chunks(400, seed=3, therapy_mix=MIX))
    for name in ("labs", "patients", "events", "grades"):
        pd.testing.assert_frame_equal(getattr(small_cohort, name), getattr(again, name))
    other = next(iter_chunks(400, seed=4, therapy_mix=MIX))
    assert not other.labs["value"].equals(small_cohort.labs["value"])


def test_latent_distribution_reproduces_published_rates():
    sp = load_simulator_params()
    rng = np.random.default_rng(0)
    for therapy, t in sp["therapies"].items():
        mu, sigma = latent_distribution(t["any_crs"], t["severe"], sp["grade_thresholds"])
        s = rng.normal(mu, sigma, 200_000)
        assert abs((s > sp["grade_thresholds"][0]).mean() - t["any_crs"]) < 0.01, therapy
        assert abs((s > sp["grade_thresholds"][2]).mean() - t["severe"]) < 0.01, therapy


def test_cohort_matches_published_reference_targets(capsys):
    """Large simulated cohort vs data/reference/simulator_targets.csv (targets and tolerances with sources)."""
    sp = load_simulator_params()
    cohort = next(iter_chunks(21_000, seed=1, therapy_mix=dict.fromkeys(sp["therapies"], 1.0), chunk_size=21_000))
    table = compare_with_targets(cohort_statistics(cohort.labs, cohort.patients, load_targets()))
    with capsys.disabled():
        print("\n" + format_comparison(table))
    assert len(table) >= 25
    assert table["within_tolerance"].all(), format_comparison(table[~table["within_tolerance"]])


def test_outputs_are_canonical_and_within_assay_limits(small_cohort):
    labs = canonical_labs(small_cohort.labs)
    canonical_patients(small_cohort.patients)
    canonical_events(small_cohort.events)
    reg = analyte_registry()
    assert (labs["value"] > 0).all()
    for code, rows in labs.groupby("analyte"):
        lloq, uloq = reg.loc[code, "lloq"], reg.loc[code, "uloq"]
        if np.isfinite(lloq):
            assert rows["value"].min() >= lloq - 1e-9
            assert (rows.loc[rows["censor"] == "<", "value"] == lloq).all()
        if np.isfinite(uloq):
            assert rows["value"].max() <= uloq + 1e-9
        assert rows["value"].between(reg.loc[code, "plausible_min"], reg.loc[code, "plausible_max"]).all()
    p = small_cohort.patients
    severe = p["crs_max_grade"] >= 3
    assert p.loc[severe, "severe_onset_hours"].notna().all()
    assert p.loc[~severe, "severe_onset_hours"].isna().all()
    assert (p.loc[severe, "severe_onset_hours"] >= p.loc[severe, "crs_onset_hours"]).all()
    assert labs["source_row"].is_unique


def test_nothing_recorded_after_follow_up_ends(small_cohort):
    fu = small_cohort.patients.set_index("patient_id")["followup_hours"]
    for table in (small_cohort.labs, small_cohort.events, small_cohort.grades):
        assert (table["hours_since_infusion"].to_numpy() <= fu.reindex(table["patient_id"]).to_numpy() + 0.1).all()


def test_grade_course_both_scales(small_cohort):
    p = small_cohort.patients.set_index("patient_id")
    g = small_cohort.grades
    assert (p["crs_max_grade_lee2014"] >= p["crs_max_grade"]).all()
    assert (p["crs_max_grade_lee2014"] - p["crs_max_grade"]).max() <= 1
    assert (g.groupby("patient_id")["grade_astct"].max().reindex(p.index).fillna(0) == p["crs_max_grade"]).all()
    first3 = g[g["grade_astct"] >= 3].groupby("patient_id")["hours_since_infusion"].min()
    np.testing.assert_allclose(first3.to_numpy(), p.loc[first3.index, "severe_onset_hours"].to_numpy())


def test_site_panels_and_send_out_turnaround(small_cohort):
    labs = small_cohort.labs.merge(small_cohort.patients[["patient_id", "site"]], on="patient_id")
    community = labs[labs["site"] == "community"]
    assert set(community["analyte"]) <= {"CRP", "FERRITIN", "LDH", "PLT", "CREAT", "TEMP_MAX"}
    assert community["resulted_hours"].isna().all()
    send_out = labs[(labs["site"] == "send_out") & labs["analyte"].isin(["IL6", "IFNG"])]
    tat = send_out["resulted_hours"] - send_out["hours_since_infusion"]
    assert len(send_out) and tat.between(24, 120).all()
    assert not labs[labs["site"] == "send_out"]["analyte"].isin(["ANG2", "ANG1"]).any()
    assert {"ANG2", "IL6"} <= set(labs.loc[labs["site"] == "research", "analyte"])


def test_guideline_treatments(small_cohort):
    p = small_cohort.patients.set_index("patient_id")
    e = small_cohort.events
    toci = e[e["event"] == "tocilizumab"]
    assert (toci["dose"] <= 800).all()
    assert p.loc[toci["patient_id"].unique(), "crs_max_grade"].min() >= 1  # never given without CRS
    steroid_patients = e.loc[e["event"] == "corticosteroids", "patient_id"].unique()
    assert (p.loc[steroid_patients, "crs_max_grade"] >= 3).all()
    grade2 = p.index[(p["crs_max_grade"] >= 2)]
    assert np.isin(grade2, toci["patient_id"]).mean() > 0.9  # tocilizumab at grade 2 (unless follow-up ends first)


def test_tocilizumab_raises_il6_and_lowers_crp():
    """Same patient, with and without tocilizumab: serum IL-6 up, CRP down afterwards."""
    sp = load_simulator_params()
    course = {"s": np.array([2.4]), "onset": np.array([40.0]), "peak": np.array([80.0]),
              "tumor_burden": np.array([0.0]), "grade": np.array([3]), "steroid": np.array([np.nan])}
    times = np.arange(0, 240, 6.0)[None, :]
    out = {}
    for label, toci in (("with", 60.0), ("without", np.nan)):
        c = course | {"toci_first": np.array([toci])}
        out[label] = {a: true_log_values(a, sp["analytes"][a], c, times, np.random.default_rng(0), sp)[0]
                      for a in ("IL6", "CRP")}
    later = times[0] > 60 + 48
    assert (out["with"]["IL6"][later] > out["without"]["IL6"][later]).all()
    assert (out["with"]["CRP"][later] < out["without"]["CRP"][later]).all()
    before = times[0] <= 60
    np.testing.assert_array_equal(out["with"]["IL6"][before], out["without"]["IL6"][before])


def test_streaming_writer_counts_match_tables(tmp_path):
    counts = write_simulated_cohort(tmp_path, 120, seed=5, therapy_mix=MIX, chunk_size=50)
    labs = pd.read_parquet(tmp_path / "labs.parquet")
    patients = pd.read_parquet(tmp_path / "patients.parquet")
    assert counts["labs"] == len(labs) and counts["patients"] == len(patients) == 120
    assert patients["patient_id"].is_unique and labs["source_row"].is_unique
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert prov["synthetic"] is True and prov["rows"] == counts


def test_zero_patients_gives_empty_valid_tables(tmp_path):
    counts = write_simulated_cohort(tmp_path, 0, seed=5, therapy_mix=MIX)
    assert counts["patients"] == 0
    assert list(pd.read_parquet(tmp_path / "labs.parquet").columns)[:3] == ["patient_id", "analyte",
                                                                          "hours_since_infusion"]


def test_unknown_therapy_or_site_is_an_input_error():
    with pytest.raises(CohortError, match="therapy_mix"):
        next(iter_chunks(10, seed=1, therapy_mix={"not-a-product": 1.0}))
    with pytest.raises(CohortError, match="site_mix"):
        next(iter_chunks(10, seed=1, therapy_mix=MIX, site_mix={"moon-base": 1.0}))
