"""Train the primary model and its comparators.

Held-out predictions come from nested patient-grouped cross-validation (:mod:`models.crossval`);
the final model is then tuned, fitted and calibrated the same way on all training patients.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xgboost as xgb

from cohorts.errors import CohortError
from features.transformer import KineticFeatures
from models.bundle import ModelBundle
from models.crossval import TrainConfig, fit_calibrated, outer_cross_validation


def training_rows(matrix: pd.DataFrame) -> pd.DataFrame:
    rows = matrix[matrix["eligible"] & matrix["label"].notna()].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        raise CohortError("Training needs eligible landmark rows with both outcomes (grade >=3 and not); "
                          f"found {len(rows)} rows with labels {sorted(rows['label'].unique().tolist())}")
    return rows


def permute_labels(matrix: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Negative control: labels permuted across rows, a deliberately useless model that the
    promotion gates must refuse (params `train.negative_control`)."""
    rng = np.random.default_rng(seed)
    return matrix.assign(label=rng.permutation(matrix["label"].to_numpy()))


def train_model(matrix: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig,
                progress: Callable[[int], None] | None = None) -> tuple[ModelBundle, pd.DataFrame]:
    """Return the final model bundle and held-out predictions (all models) for every eligible row.
    `progress` (optional) is called with 1 after each of the cfg.n_folds outer folds and the final fit."""
    rows = training_rows(matrix)
    oof = outer_cross_validation(rows, features, cfg, progress)
    final = fit_calibrated(rows, features, cfg)
    if progress is not None:
        progress(1)
    y = rows["label"].to_numpy().astype(int)
    meta = {"n_rows": int(len(rows)), "n_patients": int(rows["patient_id"].nunique()),
            "n_events": int(y.sum()), "n_folds": int(np.unique(oof["fold"]).size), "seed": cfg.seed,
            "chosen_params": final.tuned.params, "n_rounds": final.tuned.n_rounds,
            "inner_auroc": final.tuned.inner_auroc, "operating_threshold": final.threshold,
            "target_sensitivity": cfg.target_sensitivity, "xgboost_base_params": cfg.xgboost,
            "xgboost_version": xgb.__version__}
    bundle = ModelBundle(final.tuned.booster, final.features, final.calibration, meta)
    return bundle, oof
