import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.kinetics import kinetic_features_at, landmark_matrix
from features.transformer import KineticFeatures
from tests.conftest import lab_rows

ANALYTES = ["IL6", "IFNG", "CRP", "FERRITIN", "ANG2"]
WINDOW = (-168.0, 0.0)


def test_hand_computed_patient():
    labs = pd.concat([
        lab_rows("P1", "IL6", [(-20, 4), (20, 8), (44, 64), (70, 40)]),
        lab_rows("P1", "CRP", [(22, 10)]),  # no baseline for CRP
    ], ignore_index=True)
    wide = kinetic_features_at(labs, 48.0, ANALYTES, WINDOW).loc["P1"]
    assert wide["IL6__baseline"] == 4
    assert wide["IL6__latest"] == 64
    assert wide["IL6__log2_fc"] == 4.0                       # 64 / 4 = 2^4
    assert wide["IL6__max_log2_fc"] == 4.0
    assert math.isclose(wide["IL6__serial_log2_ratio_per24h"], 3.0 / 24 * 24)  # 8 → 64 in 24 h
    assert wide["IL6__n_draws"] == 3 and wide["IL6__hours_since_last"] == 4
    assert wide["CRP__has_baseline"] == 0 and np.isnan(wide["CRP__log2_fc"])
    assert wide["IFNG__n_draws"] == 0 and np.isnan(wide["IFNG__latest"])


def test_send_out_result_invisible_until_resulted():
    labs = pd.concat([lab_rows("P1", "IL6", [(-20, 4)]),
                      lab_rows("P1", "IL6", [(40, 400)], resulted=[100.0])], ignore_index=True)
    at48 = kinetic_features_at(labs, 48.0, ANALYTES, WINDOW).loc["P1"]
    at100 = kinetic_features_at(labs, 100.0, ANALYTES, WINDOW).loc["P1"]
    assert at48["IL6__latest"] == 4 and at100["IL6__latest"] == 400


def _features(labs, patients, landmarks):
    return landmark_matrix(labs, patients, landmarks, 72.0, ANALYTES, WINDOW,
                           covariates=["therapy"]).drop(columns=["eligible", "label", "outcome_status"])


later = st.lists(st.tuples(st.sampled_from(ANALYTES), st.floats(48.01, 400), st.floats(0.01, 1e5)),
                 min_size=1, max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=later, landmark=st.sampled_from([24.0, 48.0]), drop_frac=st.floats(0, 1),
       scale=st.floats(0.01, 100))
def test_no_look_ahead(small_cohort, extra, landmark, drop_frac, scale):
    """Adding, altering or deleting anything after L (drawn or resulted) never changes features at L."""
    patients = small_cohort.patients.head(25)
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(patients["patient_id"])]
    before = _features(labs, patients, [landmark])
    future = labs["hours_since_infusion"] > landmark
    rng = np.random.default_rng(len(extra))
    altered = labs.copy()
    altered.loc[future, "value"] = altered.loc[future, "value"] * scale
    drop = future & (rng.random(len(labs)) < drop_frac)
    altered = altered[~drop]
    added = pd.DataFrame({"patient_id": patients["patient_id"].iloc[0], "analyte": [a for a, _, _ in extra],
                          "hours_since_infusion": [t for _, t, _ in extra], "value": [v for _, _, v in extra],
                          "censor": "", "resulted_hours": np.nan, "source_row": -1})
    # a past draw whose result arrives after L is also future information
    late_result = lab_rows(patients["patient_id"].iloc[1], "IL6", [(landmark - 1, 9999.0)],
                           resulted=[landmark + 1])
    altered = pd.concat([altered, added, late_result], ignore_index=True)
    # moving the outcome never changes features either
    moved = patients.assign(severe_onset_hours=patients["severe_onset_hours"] + 500)
    after = _features(altered, moved, [landmark])
    pd.testing.assert_frame_equal(before, after)


def test_order_independence(small_cohort):
    labs, patients = small_cohort.labs, small_cohort.patients
    a = _features(labs, patients, [24.0, 72.0])
    b = _features(labs.sample(frac=1.0, random_state=1), patients.sample(frac=1.0, random_state=2), [24.0, 72.0])
    pd.testing.assert_frame_equal(a, b)


def test_baseline_relativity():
    labs = lab_rows("P1", "IL6", [(-20, 4), (20, 8), (44, 64)])
    scaled = labs.assign(value=labs["value"] * 7.5)
    cols = ["IL6__log2_fc", "IL6__max_log2_fc", "IL6__serial_log2_ratio_per24h"]
    a = kinetic_features_at(labs, 48.0, ANALYTES, WINDOW)[cols]
    b = kinetic_features_at(scaled, 48.0, ANALYTES, WINDOW)[cols]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-12)


def test_routine_labs_only_still_yields_features():
    labs = lab_rows("P1", "CRP", [(-20, 5), (20, 40)])
    patients = pd.DataFrame({"patient_id": ["P1", "P2"], "therapy": ["axi-cel", "ide-cel"]})
    kf = KineticFeatures()
    matrix = kf.build(labs, patients, [24.0])
    X = kf.fit(matrix).transform(matrix)
    assert len(X) == 2 and X.dtypes.eq("float64").all()
    assert X.loc[0, "IL6__has_baseline"] == 0 and X.loc[0, "CRP__has_baseline"] == 1


def test_transformer_roundtrip_and_unseen_category(tmp_path, small_cohort):
    kf = KineticFeatures()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0])
    kf.fit(matrix)
    kf.save(str(tmp_path / "f.json"))
    back = KineticFeatures.load(str(tmp_path / "f.json"))
    pd.testing.assert_frame_equal(kf.transform(matrix), back.transform(matrix))
    other = matrix.assign(therapy="a-product-never-seen")
    X = back.transform(other)
    assert (X.filter(like="therapy=").to_numpy() == 0).all()
    assert list(back.get_feature_names_out()) == list(X.columns)
