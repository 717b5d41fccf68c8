"""Patient-grouped, outcome-stratified folds: a patient's landmark rows never straddle train and test."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold


def patient_folds(patient_id: pd.Series, label: pd.Series, n_splits: int, seed: int) -> np.ndarray:
    """Fold number (0..n_splits-1) for every row; all rows of one patient share a fold."""
    y = label.to_numpy().astype(int)
    groups = patient_id.to_numpy()
    n_groups = pd.unique(groups).size
    n_splits = max(2, min(n_splits, n_groups))
    folds = np.full(len(y), -1, dtype=int)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        folds[test] = k
    return folds
