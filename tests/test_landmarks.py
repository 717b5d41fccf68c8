import numpy as np
import pandas as pd

from features.landmarks import landmark_rows


def test_eligibility_and_label_window():
    patients = pd.DataFrame({
        "patient_id": ["never", "early", "in_window", "late", "unknown"],
        "crs_max_grade": [1.0, 3.0, 4.0, 3.0, np.nan],
        "severe_onset_hours": [np.nan, 20.0, 60.0, 200.0, np.nan],
    })
    rows = landmark_rows(patients, [24.0, 48.0], horizon_hours=72.0).set_index(["patient_id", "landmark_hours"])
    assert rows.loc[("never", 24.0), "eligible"] and rows.loc[("never", 24.0), "label"] == 0
    assert not rows.loc[("early", 24.0), "eligible"]          # already severe at L: not eligible
    assert rows.loc[("in_window", 24.0), "label"] == 1        # 60 in (24, 96]
    assert rows.loc[("in_window", 48.0), "label"] == 1        # 60 in (48, 120]
    assert rows.loc[("late", 24.0), "label"] == 0             # 200 beyond the horizon
    assert np.isnan(rows.loc[("unknown", 24.0), "label"])


def test_severe_exactly_at_landmark_is_not_eligible():
    patients = pd.DataFrame({"patient_id": ["p"], "crs_max_grade": [3.0], "severe_onset_hours": [48.0]})
    rows = landmark_rows(patients, [48.0], 72.0)
    assert not rows["eligible"].iloc[0]


def test_no_outcome_columns_means_scoring_rows():
    rows = landmark_rows(pd.DataFrame({"patient_id": ["a", "b"]}), [24.0], 72.0)
    assert rows["eligible"].all() and rows["label"].isna().all() and len(rows) == 2
