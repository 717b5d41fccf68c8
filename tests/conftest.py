from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CRS_PROJECT_ROOT", str(ROOT))

MIX = {"axi-cel": 0.3, "tisa-cel": 0.3, "liso-cel": 0.1, "ide-cel": 0.1, "cilta-cel": 0.1,
       "blinatumomab": 0.1}


@pytest.fixture(scope="session")
def small_cohort():
    """A few hundred simulated patients, shared read-only by the tests."""
    from cohorts.simulate import iter_chunks

    return next(iter_chunks(400, seed=3, therapy_mix=MIX))


@pytest.fixture(scope="session")
def feature_params():
    from features.transformer import KineticFeatures

    return KineticFeatures(baseline_window_hours=(-168.0, 0.0), horizon_hours=72.0)


def lab_rows(patient: str, analyte: str, points: list[tuple[float, float]], resulted=None) -> pd.DataFrame:
    """Tiny hand-made lab series: [(hours_since_infusion, value), ...]."""
    return pd.DataFrame({
        "patient_id": patient, "analyte": analyte,
        "hours_since_infusion": [float(t) for t, _ in points],
        "value": [float(v) for _, v in points], "censor": "",
        "resulted_hours": resulted if resulted is not None else np.nan,
        "source_row": np.arange(len(points)),
    })
