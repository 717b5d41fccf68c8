"""The simulation-pretrained prior: a booster trained on a large simulated cohort, and boosting
continued from it on a local cohort.

Design: the prior's own fitted KineticFeatures is the feature space (categories from the simulated
cohort; a level it never saw is an all-zero one-hot, as for any model). Local boosting continues
from the prior (`xgb.train(..., xgb_model=prior)`): the result is ONE booster whose first trees are
the prior's, so prediction, calibration, TreeSHAP drivers and serving are those of any tree model.
With 0 local rounds the model is the prior itself, prediction for prediction.

The prior is the output of the `pretrain` DVC stage (folder ``paths.pretrained``: booster.ubj,
features.json, meta.json); it is committed to git so a fresh clone does not have to rebuild it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from features.transformer import KineticFeatures
from models.bundle import dmatrix
from models.folds import patient_folds
from models.metrics import auroc

BOOSTER = "booster.ubj"
FEATURES = "features.json"
META = "meta.json"


@dataclass
class PretrainedPrior:
    features: KineticFeatures   # fitted on the simulated cohort: THE feature space of this family
    booster: xgb.Booster
    meta: dict[str, Any]

    @property
    def n_trees(self) -> int:
        return int(self.booster.num_boosted_rounds())

    def save(self, folder: Path | str) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / BOOSTER)
        self.features.save(str(folder / FEATURES))
        (folder / META).write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: Path | str) -> PretrainedPrior:
        folder = Path(folder)
        booster = xgb.Booster()
        booster.load_model(folder / BOOSTER)
        booster.set_param({"nthread": 1})
        meta = json.loads((folder / META).read_text())
        meta["booster_md5"] = hashlib.md5((folder / BOOSTER).read_bytes()).hexdigest()
        return cls(KineticFeatures.load(str(folder / FEATURES)), booster, meta)

    def check_matches(self, features: KineticFeatures) -> str:
        """'' when the prior answers the same question on the same features as `features`
        (params.yaml `featurize`); else why not (the family is then left out, and says so)."""
        ours = {k: v for k, v in self.features.get_params().items() if k != "chunk_patients"}
        theirs = {k: v for k, v in features.get_params().items() if k != "chunk_patients"}
        differ = sorted(k for k in ours if _norm(ours[k]) != _norm(theirs.get(k)))
        return ("" if not differ else
                f"the pretrained prior was built with other feature settings ({', '.join(differ)}): "
                "rerun `dvc repro pretrain`")


def _norm(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_norm(v) for v in value]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def pretrain(rows: pd.DataFrame, features: KineticFeatures, settings: dict[str, Any], seed: int) -> PretrainedPrior:
    """Fit the feature transformer and the prior booster on simulated landmark rows.

    A `validation_fraction` of the simulated patients stops the boosting early (patience
    `early_stopping_rounds`); the booster keeps the trees up to the best iteration.
    """
    fitted = KineticFeatures(**features.get_params()).fit(rows)
    X = fitted.transform(rows)
    y = rows["label"].to_numpy().astype(int)
    n_splits = max(2, round(1 / float(settings["validation_fraction"])))
    valid = patient_folds(rows["patient_id"], rows["label"], n_splits, seed) == 0
    skip = {"n_estimators", "early_stopping_rounds", "validation_fraction"}
    params = {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "logloss", "seed": seed,
              "nthread": 1, **{k: v for k, v in settings.items() if k not in skip}}
    dval = dmatrix(X[valid], y[valid])
    model = xgb.train(params, dmatrix(X[~valid], y[~valid]), num_boost_round=int(settings["n_estimators"]),
                      evals=[(dval, "validation")], early_stopping_rounds=int(settings["early_stopping_rounds"]),
                      verbose_eval=False)
    booster = model[: model.best_iteration + 1]
    val_auroc = auroc(y[valid], booster.predict(dval, output_margin=True))
    meta = {"n_rows": int(len(rows)), "n_patients": int(rows["patient_id"].nunique()), "n_events": int(y.sum()),
            "n_trees": int(booster.num_boosted_rounds()), "validation_auroc": float(val_auroc),
            "validation_patients": int(rows.loc[valid, "patient_id"].nunique()), "params": params,
            "xgboost_version": xgb.__version__}
    return PretrainedPrior(fitted, booster, meta)


def continue_boosting(prior: xgb.Booster, X: pd.DataFrame, y: np.ndarray, params: dict[str, Any],
                      rounds: int) -> xgb.Booster:
    """`rounds` more trees fitted to the local rows, starting from the prior's margins (0 → a copy
    of the prior)."""
    if rounds <= 0:
        return prior.copy()
    return xgb.train(params, dmatrix(X, y), num_boost_round=int(rounds), xgb_model=prior)
