"""Eligibility, labels and outcome statuses per landmark (features/landmarks.py)."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.landmarks import (
    STATUSES,
    PatientTimes,
    landmark_counts,
    landmark_rows,
)


def _rows(patients, landmarks, horizon=72.0, times=None):
    return landmark_rows(patients, landmarks, horizon, times).set_index(["patient_id", "landmark_hours"])


def test_eligibility_and_label_window():
    patients = pd.DataFrame({
        "patient_id": ["never", "early", "in_window", "late", "unknown"],
        "crs_max_grade": [1.0, 3.0, 4.0, 3.0, np.nan],
        "severe_onset_hours": [np.nan, 20.0, 60.0, 200.0, np.nan],
        "followup_hours": 500.0,
    })
    rows = _rows(patients, [24.0, 48.0])
    assert rows.loc[("never", 24.0), "eligible"] and rows.loc[("never", 24.0), "label"] == 0
    assert not rows.loc[("early", 24.0), "eligible"]          # already severe at L: not eligible
    assert rows.loc[("in_window", 24.0), "label"] == 1        # 60 in (24, 96]
    assert rows.loc[("in_window", 48.0), "label"] == 1        # 60 in (48, 120]
    assert rows.loc[("late", 24.0), "label"] == 0             # 200 beyond the horizon
    assert np.isnan(rows.loc[("unknown", 24.0), "label"])
    assert rows.loc[("unknown", 24.0), "outcome_status"] == "outcome_unknown"


def test_severe_exactly_at_landmark_is_not_eligible():
    patients = pd.DataFrame({"patient_id": ["p"], "crs_max_grade": [3.0], "severe_onset_hours": [48.0]})
    rows = landmark_rows(patients, [48.0], 72.0)
    assert not rows["eligible"].iloc[0] and rows["outcome_status"].iloc[0] == "already_severe"


def test_no_outcome_columns_means_scoring_rows():
    """A cohort to be scored: only a known severe status matters, follow-up does not apply."""
    rows = landmark_rows(pd.DataFrame({"patient_id": ["a", "b"], "followup_hours": [10.0, np.nan]}), [24.0], 72.0)
    assert rows["eligible"].all() and rows["label"].isna().all() and len(rows) == 2
    assert (rows["outcome_status"] == "not_labelled").all()


def test_one_of_each_status():
    patients = pd.DataFrame({
        "patient_id": ["neg", "pos", "cens", "gone", "noonset", "vaso", "vaso_lee", "nofu"],
        "crs_max_grade": [1.0, 3.0, 2.0, 0.0, 4.0, 3.0, 3.0, 0.0],
        "grading": ["ASTCT"] * 6 + ["Lee2014", "ASTCT"],
        "severe_onset_hours": [np.nan, 70.0, np.nan, np.nan, np.nan, 90.0, 90.0, np.nan],
        "followup_hours": [300.0, 300.0, 60.0, 10.0, 300.0, 300.0, 300.0, np.nan],
    })
    n = len(patients)
    vaso = np.full(n, np.nan)
    vaso[5] = vaso[6] = 30.0  # vasopressor at 30 h, graded onset at 90 h
    last = np.full(n, np.nan)
    last[7] = 100.0           # follow-up unknown; last lab draw at 100 h
    times = PatientTimes(last, vaso, np.full(n, np.nan))
    rows = _rows(patients, [24.0, 48.0], 72.0, times)
    status = rows["outcome_status"]
    assert status[("neg", 24.0)] == "no_event" and rows.loc[("neg", 24.0), "label"] == 0
    assert status[("pos", 24.0)] == "event" and status[("pos", 48.0)] == "event"
    assert status[("cens", 24.0)] == "censored" and np.isnan(rows.loc[("cens", 24.0), "label"])
    assert rows.loc[("cens", 24.0), "eligible"]
    assert status[("gone", 24.0)] == "not_observed" and not rows.loc[("gone", 24.0), "eligible"]
    assert status[("noonset", 24.0)] == "onset_unknown" and np.isnan(rows.loc[("noonset", 48.0), "label"])
    # ASTCT: the vasopressor at 30 h is the onset (graded 90 h): event at 24, already severe at 48
    assert status[("vaso", 24.0)] == "event" and status[("vaso", 48.0)] == "already_severe"
    # Lee 2014: a vasopressor is not by itself grade 3; the graded onset (90 h) stands
    assert status[("vaso_lee", 24.0)] == "event" and status[("vaso_lee", 48.0)] == "event"
    # unknown follow-up: the last draw (100 h) is a lower bound; 24 + 72 <= 100, 48 + 72 > 100
    assert status[("nofu", 24.0)] == "no_event" and status[("nofu", 48.0)] == "censored"
    assert landmark_rows(patients.iloc[[7]], [120.0], 72.0,
                         PatientTimes(np.array([100.0]), np.array([np.nan]), np.array([np.nan])))[
        "outcome_status"].iloc[0] == "not_observed"


def test_counts_partition_the_rows():
    patients = pd.DataFrame({"patient_id": list("abcdef"), "crs_max_grade": [0, 3, 2, 4, 0, np.nan],
                             "severe_onset_hours": [np.nan, 30, np.nan, np.nan, np.nan, np.nan],
                             "followup_hours": [400, 400, 50, 400, 5, 400]})
    rows = landmark_rows(patients, [24.0, 48.0], 72.0)
    counts = landmark_counts(rows)
    assert set(counts) == {"24h", "48h", "pooled"}
    for block in counts.values():
        assert block["eligible"] == (block["labelled"] + block["unknown_censored"] + block["unknown_onset"]
                                     + block["unknown_outcome"] + block["not_labelled"])
        assert block["rows"] == block["eligible"] + block["already_severe"] + block["not_observed"]
    assert counts["24h"] == {"rows": 6, "eligible": 5, "labelled": 2, "events": 1, "unknown_censored": 1,
                             "unknown_onset": 1, "unknown_outcome": 1, "not_labelled": 0, "already_severe": 0,
                             "not_observed": 1}
    assert counts["pooled"]["already_severe"] == 1 and counts["pooled"]["rows"] == 12


# ----------------------------------------------------------------------------- properties

times_st = st.one_of(st.none(), st.floats(0, 400))
landmarks_st = st.lists(st.sampled_from([0.0, 24.0, 48.0, 72.0, 96.0, 168.0]), min_size=1, max_size=4, unique=True)


@settings(max_examples=200, deadline=None)
@given(grade=st.sampled_from([0.0, 1.0, 2.0]), followup=st.floats(0, 400), last=times_st, vaso=times_st,
       landmarks=landmarks_st, horizon=st.sampled_from([24.0, 72.0]), astct=st.booleans())
def test_followup_ending_before_the_horizon_without_an_event_is_unknown(grade, followup, last, vaso, landmarks,
                                                                        horizon, astct):
    """A patient observed only to before L + h, with no grade >= 3 seen, never gets a label (0 or 1)."""
    last = np.nan if last is None else min(last, followup)
    vaso = np.nan if vaso is None else min(vaso, followup)
    patients = pd.DataFrame({"patient_id": ["p"], "crs_max_grade": [grade], "severe_onset_hours": [np.nan],
                             "followup_hours": [followup], "grading": ["ASTCT" if astct else "Lee2014"]})
    times = PatientTimes(np.array([last]), np.array([vaso]), np.array([np.nan]))
    rows = landmark_rows(patients, landmarks, horizon, times)
    severe = vaso if astct else np.nan
    L = rows["landmark_hours"].to_numpy()
    no_event_seen = ~((severe > L) & (severe <= L + horizon))
    short = (followup < L + horizon) & no_event_seen
    assert rows["label"].to_numpy()[short].size == 0 or np.isnan(rows["label"].to_numpy()[short]).all()
    assert set(rows["outcome_status"]) <= set(STATUSES)


@settings(max_examples=200, deadline=None)
@given(grade=st.sampled_from([3.0, 4.0, 5.0]), followup=st.one_of(st.none(), st.floats(0, 1000)), last=times_st,
       vaso=times_st, severe_grade=times_st, landmarks=landmarks_st, horizon=st.sampled_from([24.0, 72.0]),
       grading=st.sampled_from(["ASTCT", "Lee2014", "unknown"]))
def test_grade3_without_onset_time_never_gets_label_0(grade, followup, last, vaso, severe_grade, landmarks,
                                                      horizon, grading):
    patients = pd.DataFrame({"patient_id": ["p"], "crs_max_grade": [grade], "severe_onset_hours": [np.nan],
                             "followup_hours": [np.nan if followup is None else followup], "grading": [grading]})
    times = PatientTimes(*(np.array([np.nan if x is None else x]) for x in (last, vaso, severe_grade)))
    rows = landmark_rows(patients, landmarks, horizon, times)
    assert not (rows["label"] == 0).any()
    assert (rows.loc[rows["eligible"], "outcome_status"] == "onset_unknown").all()
    assert rows["label"].isna().all()
