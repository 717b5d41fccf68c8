"""The serving path: canonical tables → one row per patient × landmark with a status and a probability.

Used by the registered pyfunc and by `crs score`; the same transformer and booster as training.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.kinetics import available_at
from models.bundle import ModelBundle

STATUSES = ["scored", "already_severe", "no_data_before_landmark"]


def risk_band(probability: np.ndarray, edges: list[float]) -> np.ndarray:
    """'low' / 'intermediate' / 'high' by the band edges (probabilities) in params."""
    names = np.array(["low", "intermediate", "high"])
    band = names[np.digitize(probability, edges)].astype(object)
    band[np.isnan(probability)] = ""
    return band


def predict_cohort(bundle: ModelBundle, labs: pd.DataFrame, patients: pd.DataFrame,
                   landmarks: list[float], band_edges: list[float] | None = None,
                   events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every input patient × landmark appears in the output, with a status.

    `events` (treatments given): None means not recorded, so treatment features are unknown (NaN).
    """
    band_edges = band_edges or bundle.meta.get("risk_band_edges", [0.1, 0.3])
    serving_patients = patients.drop(columns=[c for c in ("crs_max_grade", "crs_onset_hours")
                                              if c in patients], errors="ignore")
    matrix = bundle.features.build(labs, serving_patients, landmarks, events=events)
    status = np.where(matrix["eligible"].to_numpy(), "scored", "already_severe").astype(object)
    any_data = pd.Series(False, index=matrix.index)
    for L in landmarks:  # one vectorised membership test per landmark
        seen = set(available_at(labs, L)["patient_id"].unique())
        at_l = matrix["landmark_hours"] == L
        any_data[at_l] = matrix.loc[at_l, "patient_id"].isin(seen)
    status[(status == "scored") & ~any_data.to_numpy()] = "no_data_before_landmark"
    out = matrix[["patient_id", "landmark_hours"]].copy()
    out["status"] = status
    out["probability"] = np.nan
    todo = out["status"].to_numpy() == "scored"
    if todo.any():
        X = bundle.features.transform(matrix.loc[todo])
        out.loc[todo, "probability"] = bundle.probability(X)
    out["risk_band"] = risk_band(out["probability"].to_numpy(), band_edges)
    return out.reset_index(drop=True)
