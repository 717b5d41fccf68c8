"""The full landmark feature set: hand-computed values, leakage, absence, relativity, order, chunks."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.kinetics import (
    EVENT_TYPES,
    KINETIC_FEATURES,
    FeatureSpec,
    availability_hours,
    effective_turnaround,
    kinetic_features_at,
    landmark_matrix,
    patient_chunks,
)
from features.transformer import KineticFeatures
from tests.conftest import lab_rows

ANALYTES = ["IL6", "IFNG", "CRP", "FERRITIN", "ANG2"]
WINDOW = (-168.0, 0.0)
OPTIONS = {"trailing_window_hours": 48.0, "rise_fold": 4.0}


def _events(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [p for p, _, _ in rows], "event": [e for _, e, _ in rows],
                         "hours_since_infusion": [float(t) for _, _, t in rows],
                         "dose": 8.0, "dose_unit": "mg/kg"})


def _hand_labs() -> pd.DataFrame:
    il6 = lab_rows("P1", "IL6", [(-100, 2), (-20, 4), (20, 8), (30, 32), (44, 64), (70, 40)])
    il6.loc[il6["hours_since_infusion"] == 44, "censor"] = ">"  # at the assay's upper limit
    return pd.concat([
        il6,
        lab_rows("P1", "IL6", [(46, 999)], resulted=[60.0]),  # send-out, known only at 60 h
        lab_rows("P1", "CRP", [(10, 5), (34, 25), (46, 40)]),  # no pre-infusion baseline
        lab_rows("P1", "TEMP_MAX", [(-10, 37.0), (12, 38.5), (36, 39.2), (47.5, 38.0)]),
        lab_rows("P2", "CRP", [(-300, 6)]),  # only a draw older than the baseline window
    ], ignore_index=True)


def _hand_events() -> pd.DataFrame:
    return _events([("P1", "tocilizumab", 40), ("P1", "tocilizumab", 46), ("P1", "tocilizumab", 50),
                    ("P1", "corticosteroids", 60), ("P2", "vasopressors", 48)])


def test_hand_computed_every_feature():
    w = kinetic_features_at(_hand_labs(), 48.0, ANALYTES, WINDOW, events=_hand_events(), **OPTIONS)
    p1 = w.loc["P1"]
    # IL-6: available at 48 h: -100 (2), -20 (4), 20 (8), 30 (32), 44 (64, ">"); log2: 1, 2, 3, 5, 6
    assert p1["IL6__baseline"] == 4 and p1["IL6__has_baseline"] == 1      # last draw in [-168, 0]
    assert p1["IL6__ref_is_fallback"] == 0 and p1["IL6__reference_censored"] == 0
    assert p1["IL6__latest"] == 64 and p1["IL6__log2_fc"] == 4.0          # 64 / 4 = 2^4
    assert p1["IL6__max_log2_fc"] == 4.0 and p1["IL6__max_since_infusion"] == 64
    assert math.isclose(p1["IL6__serial_log2_ratio_per24h"], 1 / 14 * 24)   # 32 → 64 in 14 h
    # least squares over [0, 48]: t = 20, 30, 44; y = 3, 5, 6 → Sty = 106/3, Stt = 872/3
    assert math.isclose(p1["IL6__slope_log2_per24h"], 106 / 872 * 24)
    assert p1["IL6__hours_since_kfold_rise"] == 18.0                       # first >= 4-fold at 30 h
    # trapezoid from the baseline draw: (-20,0)→(20,1): 20; (20,1)→(30,3): 20; (30,3)→(44,4): 49
    assert math.isclose(p1["IL6__auc_log2_fc_days"], 89 / 24)
    assert p1["IL6__n_draws"] == 5 and p1["IL6__hours_since_last"] == 4
    assert p1["IL6__latest_censored"] == 1 and p1["IL6__any_above_uloq"] == 1
    # CRP: no baseline → stated fallback: the first draw after infusion (10 h, 5 mg/L), flagged
    assert np.isnan(p1["CRP__baseline"]) and p1["CRP__has_baseline"] == 0
    assert p1["CRP__ref_is_fallback"] == 1
    assert math.isclose(p1["CRP__log2_fc"], 3.0) and math.isclose(p1["CRP__max_log2_fc"], 3.0)  # 40/5 = 2^3
    assert p1["CRP__hours_since_kfold_rise"] == 14.0                       # 25 / 5 >= 4 at 34 h
    l5 = math.log2(5)
    assert math.isclose(p1["CRP__auc_log2_fc_days"], (0.5 * l5 * 24 + 0.5 * (l5 + 3) * 12) / 24)
    assert math.isclose(p1["CRP__slope_log2_per24h"], np.polyfit([10, 34, 46], np.log2([5, 25, 40]), 1)[0] * 24)
    # cross-analyte: CRP fold change minus IL-6's; CRP rose 4 h after IL-6 (34 h vs 30 h)
    assert math.isclose(p1["CRP__log2_fc_minus_IL6"], -1.0) and p1["CRP__rise_lag_vs_IL6_hours"] == 4.0
    assert np.isnan(p1["IL6__log2_fc_minus_IFNG"]) and np.isnan(p1["IL6__rise_lag_vs_IFNG_hours"])
    # never drawn: counts and flags 0, values NaN
    assert p1["IFNG__n_draws"] == 0 and p1["IFNG__has_baseline"] == 0 and p1["IFNG__ref_is_fallback"] == 0
    assert np.isnan(p1["IFNG__latest"]) and np.isnan(p1["IFNG__slope_log2_per24h"])
    # temperature covariate: absolute values only
    assert p1["TEMP_MAX__latest"] == 38.0 and p1["TEMP_MAX__max_since_infusion"] == 39.2
    assert p1["TEMP_MAX__n_draws"] == 4 and "TEMP_MAX__log2_fc" not in w
    # treatments at or before 48 h; the dose at 50 h and steroids at 60 h do not exist yet
    assert p1["tocilizumab__given"] == 1 and p1["tocilizumab__doses"] == 2
    assert p1["tocilizumab__hours_since_first_dose"] == 8 and p1["tocilizumab__hours_since_last_dose"] == 2
    assert p1["corticosteroids__given"] == 0 and np.isnan(p1["corticosteroids__hours_since_first_dose"])
    # P2: a draw older than the window is neither baseline nor fallback; an event exactly at L counts
    p2 = w.loc["P2"]
    assert p2["CRP__n_draws"] == 1 and p2["CRP__has_baseline"] == 0 and p2["CRP__ref_is_fallback"] == 0
    assert np.isnan(p2["CRP__log2_fc"]) and np.isnan(p2["CRP__reference_censored"])
    assert p2["tocilizumab__given"] == 0
    # vasopressors are not a predictor (ASTCT: a vasopressor is grade 3, the outcome itself)
    assert not any(c.startswith("vasopressors__") for c in w.columns)


def test_send_out_result_appears_once_resulted():
    at60 = kinetic_features_at(_hand_labs(), 60.0, ANALYTES, WINDOW, **OPTIONS).loc["P1"]
    assert at60["IL6__latest"] == 999 and at60["IL6__n_draws"] == 6


def test_fallback_reference_fold_change_needs_a_later_draw():
    one = kinetic_features_at(lab_rows("P", "IL6", [(20, 50)]), 48.0, ANALYTES, WINDOW).loc["P"]
    assert one["IL6__ref_is_fallback"] == 1 and np.isnan(one["IL6__log2_fc"])  # no self-comparison
    assert np.isnan(one["IL6__auc_log2_fc_days"]) and np.isnan(one["IL6__max_log2_fc"])
    base_only = kinetic_features_at(lab_rows("P", "IL6", [(-5, 5)]), 48.0, ANALYTES, WINDOW).loc["P"]
    assert base_only["IL6__has_baseline"] == 1 and np.isnan(base_only["IL6__log2_fc"])


def test_simultaneous_draws_give_no_rate_not_infinity():
    w = kinetic_features_at(lab_rows("P", "IL6", [(-5, 5), (10, 5), (10 + 1e-9, 50)]), 24.0, ANALYTES,
                            WINDOW).loc["P"]
    assert np.isnan(w["IL6__serial_log2_ratio_per24h"]) and np.isfinite(w["IL6__slope_log2_per24h"])


def test_events_none_means_unknown_and_empty_means_not_given():
    labs = lab_rows("P1", "CRP", [(-20, 5), (20, 40)])
    unknown = kinetic_features_at(labs, 24.0, ANALYTES, WINDOW).loc["P1"]
    none_given = kinetic_features_at(labs, 24.0, ANALYTES, WINDOW, events=_events([])).loc["P1"]
    assert np.isnan(unknown["tocilizumab__given"]) and none_given["tocilizumab__given"] == 0
    assert none_given["tocilizumab__doses"] == 0 and np.isnan(none_given["tocilizumab__hours_since_last_dose"])


# ----------------------------------------------------------------------------- no look-ahead

CODES = ["IL6", "IFNG", "CRP", "TEMP_MAX"]
lab_st = st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from(CODES), st.floats(-200, 200),
                   st.floats(0.01, 1e5), st.sampled_from(["", "<", ">"]),
                   st.one_of(st.none(), st.floats(0, 150)))
event_st = st.tuples(st.sampled_from(["A", "B", "C"]), st.sampled_from([*EVENT_TYPES, "plasmapheresis"]),
                     st.floats(-50, 200))


def _labs_from(rows) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": [r[0] for r in rows], "analyte": [r[1] for r in rows],
                         "hours_since_infusion": [r[2] for r in rows], "value": [r[3] for r in rows],
                         "censor": [r[4] for r in rows],
                         "resulted_hours": [np.nan if r[5] is None else r[2] + r[5] for r in rows],
                         "source_row": np.arange(len(rows))}, columns=["patient_id", "analyte",
                                                                       "hours_since_infusion", "value", "censor",
                                                                       "resulted_hours", "source_row"])


PATIENTS = pd.DataFrame({"patient_id": ["A", "B", "C"], "therapy": ["axi-cel", "ide-cel", "tisa-cel"],
                         "crs_max_grade": [3.0, 1.0, 0.0], "severe_onset_hours": [60.0, np.nan, np.nan]})


def _matrix(labs, events, patients=PATIENTS, landmarks=(24.0, 48.0), chunk=50_000):
    return landmark_matrix(labs, patients, list(landmarks), 72.0, ANALYTES, WINDOW, covariates=["therapy"],
                           events=events, chunk_patients=chunk, covariate_analytes=["TEMP_MAX"],
                           **OPTIONS).drop(columns=["eligible", "label", "outcome_status"])


@settings(max_examples=40, deadline=None)
@given(labs=st.lists(lab_st, max_size=30), events=st.lists(event_st, max_size=8),
       new_labs=st.lists(lab_st, max_size=10), new_events=st.lists(event_st, max_size=5),
       landmark=st.sampled_from([24.0, 48.0, 96.0]), scale=st.floats(0.001, 1000), shift=st.floats(0.01, 100),
       drop=st.integers(0, 2**16))
def test_no_look_ahead_bit_for_bit(labs, events, new_labs, new_events, landmark, scale, shift, drop):
    """Alter, add or delete any lab drawn or resulted after L, or any event after L: features at L
    are unchanged bit for bit; moving the outcome (label) never changes features either."""
    before_labs, before_events = _labs_from(labs), _events(events)
    before = _matrix(before_labs, before_events, landmarks=[landmark])
    # after L: drawn after it, resulted after it, or, without a result time, ASSUMED available after it
    # (draw + the analyte's default turnaround: IL-6/IFN-γ 72 h, CRP/temperature 0 h)
    future = availability_hours(before_labs, dict(effective_turnaround(CODES))) > landmark
    rng = np.random.default_rng(drop)
    altered = before_labs.copy()
    altered.loc[future, "value"] = altered.loc[future, "value"] * scale
    altered.loc[future, "resulted_hours"] = np.fmax(altered.loc[future, "resulted_hours"], landmark) + shift
    altered = altered[~(future & (rng.random(len(altered)) < 0.5))]
    # new rows: drawn after L, or drawn before L but resulted after it
    add = _labs_from(new_labs)
    add["hours_since_infusion"] = np.where(rng.random(len(add)) < 0.5, landmark + shift,
                                           np.minimum(add["hours_since_infusion"], landmark))
    add["resulted_hours"] = landmark + shift + 1
    # and cytokines drawn before L without a result time, whose assumed availability (draw + 72 h) is after L
    assumed = _labs_from(new_labs)
    assumed = assumed[assumed["analyte"].isin(["IL6", "IFNG"])].assign(
        hours_since_infusion=landmark - (shift % 71.9), resulted_hours=np.nan)
    add = pd.concat([add, assumed], ignore_index=True)
    ev = before_events.copy()
    ev_future = ev["hours_since_infusion"] > landmark
    ev.loc[ev_future, "hours_since_infusion"] += shift
    ev = ev[~(ev_future & (rng.random(len(ev)) < 0.5))]
    add_ev = _events(new_events).assign(hours_since_infusion=landmark + shift)
    moved = PATIENTS.assign(severe_onset_hours=[30.0, 200.0, 49.0], crs_max_grade=[4.0, 3.0, 3.0])
    after = _matrix(pd.concat([altered, add], ignore_index=True), pd.concat([ev, add_ev], ignore_index=True),
                    patients=moved, landmarks=[landmark])
    pd.testing.assert_frame_equal(before, after, check_exact=True)


# ----------------------------------------------------------------------------- baseline relativity

RELATIVE = ["log2_fc", "max_log2_fc", "serial_log2_ratio_per24h", "slope_log2_per24h",
            "hours_since_kfold_rise", "auc_log2_fc_days"]
series_st = st.lists(st.tuples(st.floats(-150, 120), st.floats(0.01, 1e4)), min_size=1, max_size=12,
                     unique_by=lambda p: p[0])


@settings(max_examples=50, deadline=None)
@given(il6=series_st, crp=series_st, ifng=series_st, c=st.floats(1e-3, 1e3), landmark=st.sampled_from([24.0, 72.0]))
def test_baseline_relativity_all_fold_and_ratio_features(il6, crp, ifng, c, landmark):
    """Multiplying all of one patient's values of an analyte by a constant leaves every fold-change
    and ratio feature (own and cross-analyte) unchanged; absolute values scale by the constant."""
    labs = pd.concat([lab_rows("P", "IL6", il6), lab_rows("P", "CRP", crp), lab_rows("P", "IFNG", ifng)],
                     ignore_index=True)
    scaled = labs.assign(value=np.where(labs["analyte"] == "IL6", labs["value"] * c, labs["value"]))
    a = kinetic_features_at(labs, landmark, ANALYTES, WINDOW, **OPTIONS).loc["P"]
    b = kinetic_features_at(scaled, landmark, ANALYTES, WINDOW, **OPTIONS).loc["P"]
    relative = ([f"IL6__{f}" for f in RELATIVE]
                + ["IL6__log2_fc_minus_IFNG", "IL6__rise_lag_vs_IFNG_hours",
                   "CRP__log2_fc_minus_IL6", "CRP__rise_lag_vs_IL6_hours"])
    np.testing.assert_allclose(b[relative].to_numpy(float), a[relative].to_numpy(float), rtol=1e-9, atol=1e-9)
    assert not np.isinf(a.to_numpy(float)).any()  # missing is NaN, never ±inf
    absolute = ["IL6__baseline", "IL6__latest", "IL6__max_since_infusion"]
    np.testing.assert_allclose(b[absolute].to_numpy(float), a[absolute].to_numpy(float) * c, rtol=1e-12)


# ----------------------------------------------------------------------------- order, chunks, absence

def _with_events(cohort) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    ids = cohort.patients["patient_id"].to_numpy()
    pick = rng.choice(ids, 150)
    return _events([(p, str(rng.choice(EVENT_TYPES)), float(t)) for p, t in zip(pick, rng.uniform(-10, 150, 150),
                                                                                    strict=True)])


def test_order_independence_with_events_and_send_outs(small_cohort):
    labs = small_cohort.labs.copy()
    rng = np.random.default_rng(1)
    late = rng.random(len(labs)) < 0.3
    labs.loc[late, "resulted_hours"] = labs.loc[late, "hours_since_infusion"] + rng.uniform(0, 96, late.sum())
    labs = pd.concat([labs, labs.iloc[:50]], ignore_index=True)  # exact duplicate draws tie in time
    events = _with_events(small_cohort)
    a = _matrix(labs, events, small_cohort.patients, [24.0, 72.0])
    b = _matrix(labs.sample(frac=1.0, random_state=3), events.sample(frac=1.0, random_state=4),
                small_cohort.patients.sample(frac=1.0, random_state=5), [72.0, 24.0, 24.0])
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_patient_chunks_never_change_values(small_cohort):
    events = _with_events(small_cohort)
    whole = _matrix(small_cohort.labs, events, small_cohort.patients, [24.0, 48.0])
    chunked = _matrix(small_cohort.labs, events, small_cohort.patients, [24.0, 48.0], chunk=7)
    pd.testing.assert_frame_equal(whole, chunked, check_exact=True)
    assert [c for c in patient_chunks(10, 4)] == [(0, 4), (4, 8), (8, 10)]


def test_folder_streaming_equals_in_memory(tmp_path, small_cohort):
    from cohorts.io import Cohort, write_cohort
    from features.chunks import featurize_folder

    cohort = Cohort(small_cohort.labs, small_cohort.patients, _with_events(small_cohort), {})
    write_cohort(cohort, tmp_path / "c")
    kf = KineticFeatures()
    counts = featurize_folder(tmp_path / "c", tmp_path / "m.parquet", kf, [24.0, 48.0], chunk_patients=90)
    streamed = pd.read_parquet(tmp_path / "m.parquet")
    in_memory = kf.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0], events=cohort.events)
    pd.testing.assert_frame_equal(streamed, in_memory, check_exact=True)
    assert counts["patients"] == len(small_cohort.patients) and counts["rows"] == len(in_memory)


def test_no_labs_and_no_events_still_give_rows():
    empty = lab_rows("X", "CRP", [])
    m = _matrix(empty, None, PATIENTS, [24.0])
    assert len(m) == 3 and (m.filter(like="__n_draws") == 0).all().all()
    assert m["tocilizumab__given"].isna().all()


def test_routine_labs_only_cohort_is_scored(small_cohort):
    """No cytokines anywhere (CRP, ferritin, temperature only): features and probabilities, no error."""
    import xgboost as xgb

    from models.bundle import ModelBundle
    from models.predict import predict_cohort

    kf = KineticFeatures()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0])
    rows = matrix[matrix["eligible"] & matrix["label"].notna()]
    X = kf.fit(rows).transform(rows)
    dm = xgb.DMatrix(X.to_numpy("float64"), label=rows["label"].to_numpy(), feature_names=list(X.columns))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "seed": 1}, dm, 20)
    bundle = ModelBundle(booster, kf, {"method": "sigmoid", "slope": 1.0, "intercept": 0.0}, {})
    routine = small_cohort.labs[small_cohort.labs["analyte"].isin(["CRP", "FERRITIN", "TEMP_MAX"])]
    out = predict_cohort(bundle, routine, small_cohort.patients, [24.0, 48.0])
    scored = out[out["status"] == "scored"]
    assert len(out) == 2 * len(small_cohort.patients) and len(scored) > 0
    assert scored["probability"].between(0, 1).all()
    X = bundle.features.transform(bundle.features.build(routine, small_cohort.patients, [24.0]))
    assert (X["IL6__n_draws"] == 0).all() and X["IL6__log2_fc"].isna().all()


def test_tocilizumab_is_visible_to_the_model_input():
    labs = lab_rows("P1", "IL6", [(-20, 5), (20, 40), (40, 900)])
    kf = KineticFeatures()
    m = kf.build(labs, PATIENTS.head(1).assign(patient_id="P1"), [48.0],
                 events=_events([("P1", "tocilizumab", 30.0)]))
    X = kf.fit(m).transform(m)
    assert X.loc[0, "tocilizumab__given"] == 1 and X.loc[0, "tocilizumab__hours_since_first_dose"] == 18


def test_feature_spec_rejects_nonsense_and_names_are_stable():
    with pytest.raises(ValueError):
        FeatureSpec(baseline_window_hours=(0.0, -10.0))
    with pytest.raises(ValueError):
        FeatureSpec(rise_fold=1.0)
    spec = FeatureSpec(analytes=("CRP",), cross_analyte_pairs=(("CRP", "IL6"),))
    assert spec.cross_columns() == []  # IL-6 not featurized: no pair
    names = FeatureSpec(current_grade=False).feature_names()
    assert len(names) == len(set(names)) == 5 * len(KINETIC_FEATURES) + 4 * 3 + 4 + 4 * 4
    assert "vasopressors" not in FeatureSpec().event_types
    assert FeatureSpec().feature_names() == [*names, "current_grade"]  # on by default


def test_featurize_stage_events_file_absent_means_unknown(tmp_path, small_cohort):
    from cohorts.io import Cohort, write_cohort
    from pipeline.featurize import featurize

    patients = small_cohort.patients.head(30)
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(patients["patient_id"])]
    write_cohort(Cohort(labs, patients, _events([]), {}), tmp_path / "c")
    featurize(tmp_path / "c", [24.0], tmp_path / "a.parquet")
    recorded = pd.read_parquet(tmp_path / "a.parquet")
    assert (recorded["tocilizumab__given"] == 0).all()
    (tmp_path / "c" / "events.parquet").unlink()
    featurize(tmp_path / "c", [24.0], tmp_path / "b.parquet")
    unrecorded = pd.read_parquet(tmp_path / "b.parquet")
    assert unrecorded["tocilizumab__given"].isna().all()
    event_cols = [c for c in recorded if c.split("__")[0] in EVENT_TYPES]
    pd.testing.assert_frame_equal(recorded.drop(columns=event_cols), unrecorded.drop(columns=event_cols))


# ----------------------------------------------------------------------------- result turnaround

def test_send_out_cytokine_without_result_time_waits_for_the_assumed_turnaround():
    """No result time: available at draw + default_turnaround_hours (IL-6 72 h), never at the draw;
    a per-analyte override (an in-house same-day assay) makes it visible at the draw."""
    labs = pd.concat([lab_rows("P", "IL6", [(-20, 4)]), lab_rows("P", "IL6", [(30, 400)], resulted=None),
                      lab_rows("P", "CRP", [(30, 50)], resulted=None)], ignore_index=True)
    at48 = kinetic_features_at(labs, 48.0, ANALYTES, WINDOW).loc["P"]
    assert at48["IL6__latest"] == 4 and at48["IL6__n_draws"] == 1  # drawn at 30 h, assumed back at 102 h
    assert at48["CRP__latest"] == 50                                # routine lab: turnaround 0
    assert kinetic_features_at(labs, 102.0, ANALYTES, WINDOW).loc["P", "IL6__latest"] == 400
    same_day = kinetic_features_at(labs, 48.0, ANALYTES, WINDOW, turnaround_hours={"IL6": 0.0}).loc["P"]
    assert same_day["IL6__latest"] == 400
    kf = KineticFeatures(assume_turnaround_hours={"IL6": 0.0})
    m = kf.build(labs, pd.DataFrame({"patient_id": ["P"]}), [48.0])
    assert m.loc[0, "IL6__latest"] == 400 and KineticFeatures().build(labs, pd.DataFrame({"patient_id": ["P"]}),
                                                                      [48.0]).loc[0, "IL6__latest"] == 4


def test_turnaround_map_is_fitted_state_and_travels_in_json():
    kf = KineticFeatures(assume_turnaround_hours={"IL6": 6.0})
    m = kf.build(lab_rows("P", "CRP", [(-5, 5), (20, 9)]), pd.DataFrame({"patient_id": ["P"]}), [24.0])
    kf.fit(m)
    assert kf.turnaround_hours_["IL6"] == 6.0 and kf.turnaround_hours_["IFNG"] == 72.0
    assert kf.turnaround_hours_["CRP"] == 0.0 and kf.turnaround_hours_["ANG2"] == 120.0
    back = KineticFeatures.from_dict(kf.to_dict())
    assert back.turnaround_map() == kf.turnaround_map() and back.spec() == kf.spec()
    old = kf.to_dict()
    del old["turnaround_hours"]  # a model saved before result turnaround existed: its rule was "at draw"
    assert set(KineticFeatures.from_dict(old).turnaround_map().values()) == {0.0}
    del old["params"]["current_grade"]  # a model saved before current_grade existed was trained without it
    assert KineticFeatures.from_dict(old).current_grade is False and back.current_grade is True
    with pytest.raises(ValueError, match="unknown analyte"):
        KineticFeatures(assume_turnaround_hours={"IL-6": 0}).spec()
    from_params = KineticFeatures.from_params({"assume_turnaround_hours": {"IL6": 0}, "current_grade": True})
    assert from_params.turnaround_map()["IL6"] == 0.0 and from_params.spec().current_grade
    assert KineticFeatures.from_params({"assume_turnaround_hours": {}}).assume_turnaround_hours is None
    with pytest.raises(ValueError, match=">= 0"):
        KineticFeatures(assume_turnaround_hours={"IL6": -1}).spec()


# ----------------------------------------------------------------------------- vasopressors, grade

PATIENTS_ASTCT = PATIENTS.assign(grading="ASTCT", followup_hours=400.0)


@settings(max_examples=40, deadline=None)
@given(labs=st.lists(lab_st, max_size=30), events=st.lists(event_st, max_size=8),
       vaso=st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(-50, 200)), min_size=1, max_size=5),
       landmark=st.sampled_from([24.0, 48.0, 96.0]))
def test_vasopressor_never_changes_a_feature(labs, events, vaso, landmark):
    """Vasopressors (before L or after) are the outcome under ASTCT, not a predictor: adding them
    never changes a feature at L (it may change eligibility: they move the onset)."""
    kf = KineticFeatures(covariate_analytes=("TEMP_MAX",))
    base = _events(events)
    more = pd.concat([base, _events([(p, "vasopressors", t) for p, t in vaso])], ignore_index=True)
    ids = ["patient_id", "landmark_hours", "eligible", "label", "outcome_status"]
    a = kf.build(_labs_from(labs), PATIENTS_ASTCT, [landmark], events=base).drop(columns=ids)
    b = kf.build(_labs_from(labs), PATIENTS_ASTCT, [landmark], events=more).drop(columns=ids)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_vasopressor_moves_the_onset_for_astct_patients():
    kf = KineticFeatures()
    labs = lab_rows("A", "CRP", [(-5, 5), (20, 9)])
    patients = PATIENTS_ASTCT.head(1)  # A: grade 3, graded onset 60 h
    ev = _events([("A", "vasopressors", 40.0)])
    rows = kf.build(labs, patients, [24.0, 48.0], events=ev).set_index("landmark_hours")
    assert rows.loc[24.0, "label"] == 1 and rows.loc[48.0, "outcome_status"] == "already_severe"
    lee = kf.build(labs, patients.assign(grading="Lee2014"), [48.0], events=ev)
    assert lee.loc[0, "eligible"] and lee.loc[0, "label"] == 1  # graded onset 60 h stands


def _grades(rows):
    return pd.DataFrame({"patient_id": [p for p, _, _ in rows], "hours_since_infusion": [float(t) for _, t, _ in rows],
                         "grade": [float(g) for _, _, g in rows]})


def test_current_grade_is_the_highest_recorded_by_the_landmark():
    labs = lab_rows("A", "CRP", [(-5, 5)])
    grades = _grades([("A", 10, 1), ("A", 30, 2), ("A", 45, 1), ("A", 60, 3), ("B", 50, 2)])
    pats = PATIENTS_ASTCT
    assert "current_grade" not in KineticFeatures(current_grade=False).build(labs, pats, [48.0], grades=grades)
    kf = KineticFeatures()  # on by default
    m = kf.build(labs, pats, [24.0, 48.0, 72.0], grades=grades).set_index(["patient_id", "landmark_hours"])
    assert m.loc[("A", 24.0), "current_grade"] == 1 and m.loc[("A", 48.0), "current_grade"] == 2
    assert m.loc[("B", 24.0), "current_grade"] == 0 and m.loc[("B", 72.0), "current_grade"] == 2
    assert m.loc[("C", 72.0), "current_grade"] == 0            # a grades table, nothing recorded for C
    assert kf.build(labs, pats, [48.0])["current_grade"].isna().all()  # no grade course: unknown
    # a recorded grade >= 3 makes the patient known severe (A's graded onset is 60 h; grade 3 at 60 h too)
    assert m.loc[("A", 72.0), "outcome_status"] == "already_severe"
    # nothing recorded after L reaches the feature
    later = pd.concat([grades, _grades([("A", 48.5, 4), ("C", 49, 2)])], ignore_index=True)
    m2 = kf.build(labs, pats, [48.0], grades=later).set_index("patient_id")
    assert m2.loc["A", "current_grade"] == 2 and m2.loc["C", "current_grade"] == 0


grade_st = st.tuples(st.sampled_from(["A", "B", "C"]), st.floats(-50, 200),
                     st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]), st.just(np.nan)))


@settings(max_examples=60, deadline=None)
@given(labs=st.lists(lab_st, max_size=20), grades=st.lists(grade_st, max_size=12),
       new_grades=st.lists(grade_st, max_size=6), landmark=st.sampled_from([24.0, 48.0, 96.0]),
       shift=st.floats(0.01, 100), drop=st.integers(0, 2**16))
def test_a_grade_recorded_after_the_landmark_never_changes_features_or_eligibility(labs, grades, new_grades, landmark,
                                                                                   shift, drop):
    """Add, move later, regrade or delete any grade recorded after L: every feature at L (current_grade
    included) and who is already severe at L are unchanged bit for bit. The grade course is a bedside
    observation: it counts at its recorded time, with no turnaround."""
    kf = KineticFeatures(covariate_analytes=("TEMP_MAX",))
    assert kf.current_grade
    before_grades = _grades(grades) if grades else _grades([]).astype({"patient_id": object})
    rng = np.random.default_rng(drop)
    future = (before_grades["hours_since_infusion"] > landmark).to_numpy()
    after_grades = before_grades.copy()
    after_grades.loc[future, "hours_since_infusion"] += shift
    after_grades.loc[future, "grade"] = rng.integers(0, 6, int(future.sum())).astype(float)
    after_grades = after_grades[~(future & (rng.random(len(after_grades)) < 0.5))]
    added = _grades(new_grades) if new_grades else _grades([])
    added = added.assign(hours_since_infusion=landmark + shift)
    after_grades = pd.concat([after_grades, added], ignore_index=True)
    keep = ["patient_id", "landmark_hours", "eligible"]
    cols = [*keep, *kf.spec().feature_names()]
    a = kf.build(_labs_from(labs), PATIENTS_ASTCT, [landmark], grades=before_grades)
    b = kf.build(_labs_from(labs), PATIENTS_ASTCT, [landmark], grades=after_grades)
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert ((a["outcome_status"] == "already_severe") == (b["outcome_status"] == "already_severe")).all()


def test_a_grade_counts_from_its_recorded_time_exactly():
    kf = KineticFeatures()
    labs = lab_rows("B", "CRP", [(-5, 5)])
    pats = PATIENTS_ASTCT.iloc[[1]]  # B: grade 1 overall, no onset
    at = kf.build(labs, pats, [48.0], grades=_grades([("B", 48.0, 2)]))
    after = kf.build(labs, pats, [48.0], grades=_grades([("B", 48.0 + 1e-9, 2)]))
    assert at["current_grade"].iloc[0] == 2 and after["current_grade"].iloc[0] == 0
    severe = kf.build(labs, pats, [48.0], grades=_grades([("B", 48.0, 3)]))
    assert severe["outcome_status"].iloc[0] == "already_severe"
