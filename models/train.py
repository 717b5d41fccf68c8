"""Train the primary model and its comparators.

Held-out predictions come from nested patient-grouped cross-validation with the candidate family
chosen inside each outer fold (:mod:`models.crossval`); the final model then repeats the selection,
refit and calibration on all training patients.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import xgboost as xgb

from cohorts.errors import CohortError
from features.transformer import KineticFeatures
from models.bundle import ModelBundle
from models.candidates import SIMPLICITY
from models.crossval import TrainConfig, fit_selected, inner_score_column, outer_cross_validation

SELECTION_RULE = ("highest inner out-of-fold AUROC on the shared inner folds; families within "
                  "selection_tolerance of the best are tied and the simplest wins, in the order "
                  + " < ".join(SIMPLICITY))


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


def fold_selection(oof: pd.DataFrame) -> list[dict]:
    """Per outer fold: the family chosen there and every family's inner AUROC."""
    prefix = inner_score_column("")
    out = []
    for fold, part in oof.groupby("fold", sort=True):
        first = part.iloc[0]
        scores = {c.removeprefix(prefix): float(first[c]) for c in oof.columns
                  if c.startswith(prefix) and first[c] == first[c]}
        out.append({"fold": int(fold), "family": str(first["family"]), "candidates_inner_auroc": scores})
    return out


def train_model(matrix: pd.DataFrame, features: KineticFeatures, cfg: TrainConfig,
                progress: Callable[[int], None] | None = None) -> tuple[ModelBundle, pd.DataFrame]:
    """Return the final model bundle and held-out predictions (all models) for every eligible row.
    `progress` (optional) is called with 1 after each of the cfg.n_folds outer folds and the final fit."""
    rows = training_rows(matrix)
    oof = outer_cross_validation(rows, features, cfg, progress)
    final = fit_selected(rows, features, cfg)
    if progress is not None:
        progress(1)
    y = rows["label"].to_numpy().astype(int)
    meta = {"n_rows": int(len(rows)), "n_patients": int(rows["patient_id"].nunique()),
            "n_events": int(y.sum()), "n_folds": int(np.unique(oof["fold"]).size), "seed": cfg.seed,
            "family": final.family, "candidates": list(cfg.candidates),
            "candidates_inner_auroc": final.candidates_inner_auroc, "candidates_skipped": final.skipped,
            "selection_rule": SELECTION_RULE, "selection_tolerance": cfg.selection_tolerance,
            "outer_folds": fold_selection(oof),
            "chosen_params": final.settings.get("chosen_params", {}), "n_rounds": final.settings.get("n_rounds"),
            "family_settings": {k: v for k, v in final.settings.items() if k not in ("chosen_params", "n_rounds")},
            "inner_auroc": final.inner_auroc, "operating_threshold": final.threshold,
            "target_sensitivity": cfg.target_sensitivity, "xgboost_base_params": cfg.xgboost,
            "xgboost_version": xgb.__version__}
    if cfg.prior is not None and "xgb_pretrained" in cfg.candidates:
        meta["pretrained"] = {k: cfg.prior.meta.get(k) for k in ("booster_md5", "n_patients", "n_rows", "n_events",
                                                                 "n_trees", "seed", "simulator_version",
                                                                 "validation_auroc")}
    bundle = ModelBundle(final.booster, final.features, final.calibration, meta)
    return bundle, oof
