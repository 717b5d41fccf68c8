"""Train the primary model: XGBoost on landmark kinetics, patient-grouped out-of-fold predictions,
Platt calibration on those, and a final refit on all training patients."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.transformer import KineticFeatures
from models.bundle import ModelBundle
from models.calibration import apply_calibration, fit_platt
from models.folds import patient_folds


def _fit_booster(X: pd.DataFrame, y: np.ndarray, xgb_params: dict[str, Any], seed: int) -> xgb.Booster:
    params = {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "logloss",
              "seed": seed, "nthread": 2, **{k: v for k, v in xgb_params.items() if k != "n_estimators"}}
    dm = xgb.DMatrix(X.to_numpy("float64"), label=y, feature_names=list(X.columns), missing=np.nan)
    return xgb.train(params, dm, num_boost_round=int(xgb_params.get("n_estimators", 200)))


def _margin(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    dm = xgb.DMatrix(X.to_numpy("float64"), feature_names=list(X.columns), missing=np.nan)
    return booster.predict(dm, output_margin=True)


def train_model(matrix: pd.DataFrame, features: KineticFeatures, xgb_params: dict[str, Any],
                n_folds: int, seed: int) -> tuple[ModelBundle, pd.DataFrame]:
    """Return the final model bundle and out-of-fold predictions for every eligible training row."""
    rows = matrix[matrix["eligible"] & matrix["label"].notna()].reset_index(drop=True)
    if rows.empty or rows["label"].nunique() < 2:
        from cohorts.errors import CohortError

        raise CohortError("Training needs eligible landmark rows with both outcomes (grade >=3 and not); "
                          f"found {len(rows)} rows with labels {sorted(rows['label'].unique().tolist())}")
    y = rows["label"].to_numpy().astype(int)
    folds = patient_folds(rows["patient_id"], rows["label"], n_folds, seed)
    oof_margin = np.full(len(rows), np.nan)
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        # the feature transformer is refitted inside each fold: nothing about test patients leaks in
        fold_features = KineticFeatures(**features.get_params()).fit(rows[train])
        booster = _fit_booster(fold_features.transform(rows[train]), y[train], xgb_params, seed)
        oof_margin[test] = _margin(booster, fold_features.transform(rows[test]))
    calibration = fit_platt(oof_margin, y)
    final_features = KineticFeatures(**features.get_params()).fit(rows)
    final = _fit_booster(final_features.transform(rows), y, xgb_params, seed)
    oof = rows[["patient_id", "landmark_hours", "label"]].assign(
        fold=folds, margin=oof_margin, probability=apply_calibration(oof_margin, calibration))
    meta = {"n_rows": int(len(rows)), "n_patients": int(rows["patient_id"].nunique()),
            "n_events": int(y.sum()), "n_folds": int(np.unique(folds).size), "seed": seed,
            "xgboost_params": xgb_params, "xgboost_version": xgb.__version__}
    return ModelBundle(final, final_features, calibration, meta), oof
