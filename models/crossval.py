"""Nested, patient-grouped cross-validation with the candidate family chosen inside each fold, and
the baselines on the same folds.

Outer folds give the held-out predictions every reported metric is computed from. Inside each
outer training part: the feature transformer is fitted; every candidate family
(:mod:`models.candidates`, params `train.candidates`) is tuned and scored on the SAME inner
folds; the selection rule picks one family on those inner scores alone; the chosen family is
refitted on the whole outer training part, calibrated on its inner out-of-fold margins, and its
operating threshold chosen; only then are the outer test patients predicted. The outer folds thus
judge the whole procedure, selection included. The final model repeats it on all rows.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

import models.candidates as candidates
from features.transformer import KineticFeatures
from models.baselines import (
    absolute_only_columns,
    easix,
    m_easix,
    single_value_columns,
    single_value_logistic,
)
from models.bundle import dmatrix
from models.calibration import apply_calibration, fit_calibration
from models.evaluate import treatment_naive
from models.folds import patient_folds
from models.metrics import threshold_for_sensitivity
from models.train_config import TrainConfig
from models.tuning import fit_tuned, inner_folds_of, predict_margin


@dataclass
class Fitted:
    """The chosen family, refitted and calibrated on one training part, with its operating threshold."""
    family: str
    features: Any                  # landmark matrix → the booster's input
    booster: xgb.Booster
    calibration: dict[str, Any]
    threshold: float
    inner_auroc: float             # of the chosen family
    candidates_inner_auroc: dict[str, float]
    skipped: dict[str, str]        # requested families that could not compete, and why
    settings: dict[str, Any]

    def margin(self, rows: pd.DataFrame) -> np.ndarray:
        return self.booster.predict(dmatrix(self.features.transform(rows)), output_margin=True)


def competing(features: KineticFeatures, cfg: TrainConfig) -> tuple[list[str], dict[str, str]]:
    """(families that compete, {family: why not} for the requested ones that cannot)."""
    names, skipped = [], {}
    for name in cfg.candidates:
        why = candidates.unavailable(name, cfg, features)
        if why:
            skipped[name] = why
        else:
            names.append(name)
    if not names:
        raise ValueError(f"no candidate family can be trained: {skipped}")
    return names, skipped


def _part(kinetic: KineticFeatures, X: pd.DataFrame, rows: pd.DataFrame, cfg: TrainConfig) -> candidates.TrainingPart:
    y = rows["label"].to_numpy().astype(int)
    return candidates.TrainingPart(rows, kinetic, X, inner_folds_of(rows["patient_id"], y, cfg.inner_folds, cfg.seed),
                                   cfg)


def _finish(part: candidates.TrainingPart, result: candidates.InnerResult, scores: dict[str, float],
            skipped: dict[str, str]) -> Fitted:
    """Refit one family on the whole part; calibrate it on its inner out-of-fold margins."""
    cfg = part.cfg
    fit = candidates.FAMILIES[result.family].refit(part, result)
    calibration = fit_calibration(result.inner_oof_margin, part.y, cfg.calibration)
    threshold = threshold_for_sensitivity(part.y, apply_calibration(result.inner_oof_margin, calibration),
                                          cfg.target_sensitivity)
    return Fitted(result.family, fit.features, fit.booster, calibration, threshold, result.inner_auroc, scores,
                  dict(skipped), fit.settings)


def select_and_fit(kinetic: KineticFeatures, X: pd.DataFrame, rows: pd.DataFrame, cfg: TrainConfig,
                   names: list[str], skipped: dict[str, str]) -> Fitted:
    """Score every family on the same inner folds of `rows`, choose one by the rule, refit it on
    all of `rows`, calibrate it on its inner out-of-fold margins and choose its threshold."""
    part = _part(kinetic, X, rows, cfg)
    results = {name: candidates.FAMILIES[name].inner(part) for name in names}
    scores = {name: r.inner_auroc for name, r in results.items()}
    chosen = candidates.select_family(scores, cfg.selection_tolerance)
    return _finish(part, results[chosen], scores, skipped)


def fit_selected(rows: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig) -> Fitted:
    """Fit the feature transformer on `rows`, then select, refit and calibrate a family on them."""
    names, skipped = competing(features, cfg)
    kinetic = KineticFeatures(**features.get_params()).fit(rows)
    return select_and_fit(kinetic, kinetic.transform(rows), rows, cfg, names, skipped)


def fit_each(rows: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig) -> tuple[str, dict[str, Fitted]]:
    """Every competing family refitted and calibrated on `rows` (the same inner folds as the
    selection), and the family the rule selects: (selected, {family: Fitted}). The selected entry
    equals :func:`fit_selected`'s model (benchmarks score each candidate alone this way)."""
    names, skipped = competing(features, cfg)
    kinetic = KineticFeatures(**features.get_params()).fit(rows)
    part = _part(kinetic, kinetic.transform(rows), rows, cfg)
    results = {name: candidates.FAMILIES[name].inner(part) for name in names}
    scores = {name: r.inner_auroc for name, r in results.items()}
    fits = {name: _finish(part, results[name], scores, skipped) for name in names}
    return candidates.select_family(scores, cfg.selection_tolerance), fits


def _fit_absolute(X: pd.DataFrame, rows: pd.DataFrame, cfg: TrainConfig, columns: list[str]):
    """The absolute-values-only XGBoost baseline: today's tuning on a column subset, calibrated."""
    y = rows["label"].to_numpy().astype(int)
    tuned = fit_tuned(X[columns], y, rows["patient_id"], cfg.xgboost, cfg.search_space, cfg.inner_folds, cfg.seed)
    calibration = fit_calibration(tuned.inner_oof_margin, y, cfg.calibration)
    return lambda X_new: apply_calibration(predict_margin(tuned.booster, X_new[columns]), calibration)


def inner_score_column(family: str) -> str:
    return f"inner_auroc__{family}"


def outer_cross_validation(rows: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig,
                           progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Held-out predictions of every model for every row, with the outer fold, the family chosen in
    that fold (`family`), every family's inner AUROC there, and the chosen threshold.
    `progress` (optional) is called with 1 after each outer fold."""
    y = rows["label"].to_numpy().astype(int)
    names, skipped = competing(features, cfg)
    for name, why in skipped.items():
        print(f"train: candidate {name} left out: {why}", file=sys.stderr)
    folds = patient_folds(rows["patient_id"], rows["label"], cfg.n_folds, cfg.seed)
    out = rows[["patient_id", "landmark_hours", "label"]].copy()
    for col in ("therapy", "disease"):
        out[col] = rows[col].astype(str) if col in rows else ""
    out["fold"] = folds
    out["treatment_naive"] = treatment_naive(rows)  # no tocilizumab/steroid by L (reported apart)
    out["family"] = ""
    numeric = ["margin", "probability", "threshold", "p_single_value_lr", "p_absolute_xgb", "m_easix", "easix",
               "p_prevalence", *(inner_score_column(n) for n in names)]
    for name in numeric:
        out[name] = np.nan
    analytes = list(features.analytes) + list(getattr(features, "covariate_analytes", ()))
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        # one transformer per outer fold, fitted on its training patients; every model below shares it
        fold_features = KineticFeatures(**features.get_params()).fit(rows[train])
        X_train, X_test = fold_features.transform(rows[train]), fold_features.transform(rows[test])
        primary = select_and_fit(fold_features, X_train, rows[train], cfg, names, skipped)
        margin = primary.margin(rows[test])
        out.loc[test, "margin"] = margin
        out.loc[test, "probability"] = apply_calibration(margin, primary.calibration)
        out.loc[test, "threshold"] = primary.threshold
        out.loc[test, "family"] = primary.family
        for name, score in primary.candidates_inner_auroc.items():
            out.loc[test, inner_score_column(name)] = score
        out.loc[test, "m_easix"] = m_easix(X_test)
        out.loc[test, "easix"] = easix(X_test)
        out.loc[test, "p_prevalence"] = y[train].mean()
        if cfg.baselines:
            single = single_value_columns(list(X_train.columns), analytes)
            lr = single_value_logistic().fit(X_train[single].to_numpy(), y[train])
            out.loc[test, "p_single_value_lr"] = lr.predict_proba(X_test[single].to_numpy())[:, 1]
            absolute = _fit_absolute(X_train, rows[train], cfg, absolute_only_columns(list(X_train.columns)))
            out.loc[test, "p_absolute_xgb"] = absolute(X_test)
        if progress is not None:
            progress(1)
    return out
