import numpy as np
import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.registry import analyte_registry
from cohorts.schema import canonical_labs, canonical_patients
from cohorts.simulate import (
    iter_chunks,
    latent_distribution,
    load_simulator_params,
    write_simulated_cohort,
)
from tests.conftest import MIX


def test_same_seed_same_cohort_different_seed_different(small_cohort):
    again = next(iter_chunks(400, seed=3, therapy_mix=MIX))
    pd.testing.assert_frame_equal(small_cohort.labs, again.labs)
    pd.testing.assert_frame_equal(small_cohort.patients, again.patients)
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


def test_severe_rate_per_therapy_matches_parameter_file():
    sp = load_simulator_params()
    mix = {k: 1.0 for k in sp["therapies"]}
    cohort = next(iter_chunks(14_000, seed=1, therapy_mix=mix))
    rate = cohort.patients.groupby("therapy")["crs_max_grade"].apply(lambda g: (g >= 3).mean())
    for therapy, t in sp["therapies"].items():
        # binomial SE at n~2000 is <= 0.011; allow 3 SE
        assert abs(rate[therapy] - t["severe"]) < 0.035, (therapy, rate[therapy])


def test_outputs_are_canonical_and_within_assay_limits(small_cohort):
    labs = canonical_labs(small_cohort.labs)
    canonical_patients(small_cohort.patients)
    reg = analyte_registry()
    assert (labs["value"] > 0).all()
    for code, rows in labs.groupby("analyte"):
        lloq, uloq = reg.loc[code, "lloq"], reg.loc[code, "uloq"]
        assert rows["value"].min() >= lloq - 1e-9
        assert rows["value"].max() <= uloq + 1e-9
        assert (rows.loc[rows["censor"] == "<", "value"] == lloq).all()
    p = small_cohort.patients
    severe = p["crs_max_grade"] >= 3
    assert p.loc[severe, "severe_onset_hours"].notna().all()
    assert p.loc[~severe, "severe_onset_hours"].isna().all()
    assert (p.loc[severe, "severe_onset_hours"] >= p.loc[severe, "crs_onset_hours"]).all()


def test_severe_patients_rise_further_above_baseline(small_cohort):
    labs = small_cohort.labs.merge(small_cohort.patients, on="patient_id")
    il6 = labs[labs["analyte"] == "IL6"]
    base = il6[il6["hours_since_infusion"] < 0].groupby("patient_id")["value"].first()
    peak = il6[il6["hours_since_infusion"] > 0].groupby("patient_id")["value"].max()
    fold = (peak / base).dropna()
    grade = small_cohort.patients.set_index("patient_id")["crs_max_grade"].reindex(fold.index)
    assert np.median(fold[grade >= 3]) > 10 * np.median(fold[grade < 1])


def test_streaming_writer_counts_match_tables(tmp_path):
    counts = write_simulated_cohort(tmp_path, 120, seed=5, therapy_mix=MIX, chunk_size=50)
    labs = pd.read_parquet(tmp_path / "labs.parquet")
    patients = pd.read_parquet(tmp_path / "patients.parquet")
    assert counts["labs"] == len(labs) and counts["patients"] == len(patients) == 120
    assert patients["patient_id"].is_unique
    assert (tmp_path / "provenance.json").read_text().count('"synthetic": true') == 1


def test_unknown_therapy_is_an_input_error():
    with pytest.raises(CohortError, match="therapy_mix"):
        next(iter_chunks(10, seed=1, therapy_mix={"not-a-product": 1.0}))
