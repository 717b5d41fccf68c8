"""Landmark design: who is eligible at L and what the label is. This is what keeps numbers honest."""

from __future__ import annotations

import numpy as np
import pandas as pd


def landmark_rows(patients: pd.DataFrame, landmarks: list[float], horizon_hours: float) -> pd.DataFrame:
    """One row per patient × landmark with `eligible` and `label`.

    Eligible at L: grade >= 3 not reached by L (severe_onset_hours missing or > L).
    Label: grade >= 3 first reached in (L, L + horizon]; NaN when outcomes are unknown (scoring).
    """
    n, k = len(patients), len(landmarks)
    rows = pd.DataFrame({
        "patient_id": np.repeat(patients["patient_id"].to_numpy(), k),
        "landmark_hours": np.tile(np.asarray(landmarks, dtype="float64"), n),
    })
    L = rows["landmark_hours"].to_numpy()
    if "severe_onset_hours" in patients:
        severe = np.repeat(patients["severe_onset_hours"].to_numpy(dtype="float64"), k)
    else:
        severe = np.full(len(rows), np.nan)
    rows["eligible"] = ~(severe <= L)  # NaN compares False: not (yet) severe → eligible
    if "crs_max_grade" not in patients:  # a cohort to be scored: outcome unknown
        rows["label"] = np.nan
        return rows
    known = np.repeat(patients["crs_max_grade"].notna().to_numpy(), k)
    label = ((severe > L) & (severe <= L + horizon_hours)).astype("float64")
    rows["label"] = np.where(known, label, np.nan)
    return rows
