"""External validation: a trained model scored on another cohort, with the same metrics as training.

Nothing is refitted: the model's own feature state, calibration and operating threshold are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.io import Cohort
from models.baselines import easix, m_easix
from models.bundle import ModelBundle


def external_predictions(bundle: ModelBundle, cohort: Cohort, landmarks: list[float]) -> pd.DataFrame:
    """Held-out-style table (label, probability, threshold, published scores) for every eligible labelled row."""
    if "crs_max_grade" not in cohort.patients or "severe_onset_hours" not in cohort.patients:
        raise CohortError("External validation needs outcomes: the patients table must have crs_max_grade "
                          "and severe_onset_hours (a cohort to be scored instead goes to `crs score`)")
    matrix = bundle.features.build(cohort.labs, cohort.patients, landmarks, events=cohort.events,
                                   grades=cohort.grades)  # the grade course, as featurize reads it
    rows = matrix[matrix["eligible"] & matrix["label"].notna()].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        raise CohortError(f"External cohort has {len(rows)} eligible labelled landmark rows and needs both "
                          "outcomes (grade >=3 within the horizon and not) to be evaluated")
    X = bundle.features.transform(rows)
    published = bundle.kinetic.transform(rows)  # the model's own input may be compact or standardised
    out = rows[["patient_id", "landmark_hours", "label"]].copy()
    for col in ("therapy", "disease"):
        out[col] = rows[col].astype(str) if col in rows else ""
    out["fold"] = -1
    out["margin"] = bundle.margin(X)
    out["probability"] = bundle.probability(X)
    out["threshold"] = float(bundle.meta.get("operating_threshold", np.nan))
    out["m_easix"], out["easix"] = m_easix(published), easix(published)
    out["p_prevalence"] = bundle.meta["n_events"] / bundle.meta["n_rows"]
    return out

