"""XGBoost with hyperparameters tuned on inner, patient-grouped folds and early stopping on
inner validation data only. Nothing here ever sees the outer test patients."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from models.bundle import dmatrix as _dmatrix
from models.folds import patient_folds
from models.metrics import auroc


@dataclass
class TunedBooster:
    booster: xgb.Booster
    params: dict[str, Any]
    n_rounds: int
    inner_auroc: float
    inner_oof_margin: np.ndarray   # margins for the training rows, each from a model that did not see them


def search_space(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian grid of the (small) search space in params.yaml."""
    keys = sorted(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]


def _booster_params(base: dict[str, Any], config: dict[str, Any], seed: int) -> dict[str, Any]:
    skip = {"n_estimators", "early_stopping_rounds"}
    merged = {k: v for k, v in {**base, **config}.items() if k not in skip}
    return {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "logloss",
            "seed": seed, "nthread": 1, **merged}


def fit_tuned(X: pd.DataFrame, y: np.ndarray, groups: pd.Series, base: dict[str, Any],
              space: dict[str, list[Any]], inner_folds: int, seed: int) -> TunedBooster:
    """Choose the config with the best inner AUROC; the number of rounds is the mean early-stopping
    iteration over the inner folds; refit on all of (X, y)."""
    max_rounds = int(base.get("n_estimators", 500))
    patience = int(base.get("early_stopping_rounds", 30))
    folds = patient_folds(groups, pd.Series(y), inner_folds, seed + 1)
    best: tuple[float, dict[str, Any], int, np.ndarray] | None = None
    for config in search_space(space) or [{}]:
        params = _booster_params(base, config, seed)
        margin = np.full(len(y), np.nan)
        rounds = []
        for k in np.unique(folds):
            tr, va = folds != k, folds == k
            dval = _dmatrix(X[va], y[va])
            model = xgb.train(params, _dmatrix(X[tr], y[tr]), num_boost_round=max_rounds,
                              evals=[(dval, "inner_validation")], early_stopping_rounds=patience,
                              verbose_eval=False)
            rounds.append(model.best_iteration + 1)
            margin[va] = model.predict(dval, output_margin=True, iteration_range=(0, model.best_iteration + 1))
        score = auroc(y, margin)
        if best is None or score > best[0]:
            best = (score, config, int(round(np.mean(rounds))), margin)
    score, config, n_rounds, margin = best
    params = _booster_params(base, config, seed)
    booster = xgb.train(params, _dmatrix(X, y), num_boost_round=n_rounds)
    return TunedBooster(booster, {**config}, n_rounds, float(score), margin)


def predict_margin(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    return booster.predict(_dmatrix(X), output_margin=True)
