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


@dataclass
class InnerFit:
    """The best configuration found on inner folds, before any refit."""
    config: dict[str, Any]
    params: dict[str, Any]         # full XGBoost params of that configuration
    n_rounds: int                  # mean early-stopping iteration over the inner folds
    inner_auroc: float
    inner_oof_margin: np.ndarray


def search_space(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Cartesian grid of the (small) search space in params.yaml."""
    keys = sorted(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]


def booster_params(base: dict[str, Any], config: dict[str, Any], seed: int) -> dict[str, Any]:
    skip = {"n_estimators", "early_stopping_rounds"}
    merged = {k: v for k, v in {**base, **config}.items() if k not in skip}
    return {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "logloss",
            "seed": seed, "nthread": 1, **merged}


def inner_folds_of(groups: pd.Series, y: np.ndarray, inner_folds: int, seed: int) -> np.ndarray:
    """The inner folds of one training part (shared by every candidate fitted on it)."""
    return patient_folds(groups, pd.Series(y), inner_folds, seed + 1)


def early_stopped_margins(X: pd.DataFrame, y: np.ndarray, folds: np.ndarray, params: dict[str, Any],
                          max_rounds: int, patience: int) -> tuple[np.ndarray, int]:
    """Inner out-of-fold margins with early stopping on each inner validation fold, and the mean
    best number of rounds."""
    margin = np.full(len(y), np.nan)
    rounds = []
    for k in np.unique(folds):
        tr, va = folds != k, folds == k
        dval = _dmatrix(X[va], y[va])
        model = xgb.train(params, _dmatrix(X[tr], y[tr]), num_boost_round=max_rounds,
                          evals=[(dval, "inner_validation")], early_stopping_rounds=patience, verbose_eval=False)
        rounds.append(model.best_iteration + 1)
        margin[va] = model.predict(dval, output_margin=True, iteration_range=(0, model.best_iteration + 1))
    return margin, int(round(np.mean(rounds)))


def tune(X: pd.DataFrame, y: np.ndarray, folds: np.ndarray, base: dict[str, Any],
         space: dict[str, list[Any]], seed: int) -> InnerFit:
    """The config with the best inner AUROC (first of equals in grid order)."""
    max_rounds = int(base.get("n_estimators", 500))
    patience = int(base.get("early_stopping_rounds", 30))
    best: InnerFit | None = None
    for config in search_space(space) or [{}]:
        params = booster_params(base, config, seed)
        margin, n_rounds = early_stopped_margins(X, y, folds, params, max_rounds, patience)
        score = auroc(y, margin)
        if best is None or score > best.inner_auroc:
            best = InnerFit(config, params, n_rounds, float(score), margin)
    assert best is not None
    return best


def refit(X: pd.DataFrame, y: np.ndarray, fit: InnerFit) -> xgb.Booster:
    return xgb.train(fit.params, _dmatrix(X, y), num_boost_round=fit.n_rounds)


def fit_tuned(X: pd.DataFrame, y: np.ndarray, groups: pd.Series, base: dict[str, Any],
              space: dict[str, list[Any]], inner_folds: int, seed: int) -> TunedBooster:
    """Choose the config with the best inner AUROC; the number of rounds is the mean early-stopping
    iteration over the inner folds; refit on all of (X, y)."""
    best = tune(X, y, inner_folds_of(groups, y, inner_folds, seed), base, space, seed)
    return TunedBooster(refit(X, y, best), {**best.config}, best.n_rounds, best.inner_auroc, best.inner_oof_margin)


def predict_margin(booster: xgb.Booster, X: pd.DataFrame) -> np.ndarray:
    return booster.predict(_dmatrix(X), output_margin=True)
