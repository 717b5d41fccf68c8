"""The candidate model families, and the rule that chooses among them on inner folds.

Every candidate is a gradient-boosted predictor (logistic regression stays a baseline, never a
candidate). Each is a small, named, pre-specified recipe:

- ``xgb_full``: XGBoost on the full kinetic feature set; depth from the small grid in
  ``train.search_space``, rounds by early stopping on the inner folds (the model before issue 14).
- ``xgb_compact``: XGBoost on the compact set (:mod:`models.compact`) with monotone constraints
  where the direction is known (``train.compact.monotone``) and the regularisation of
  :func:`regularisation`, scaled to the number of patients with an event.
- ``gblinear_compact``: XGBoost's gradient-boosted linear model on the compact set, standardised
  (:class:`models.compact.LinearScaling`), L2 penalty of :func:`linear_penalty`; its drivers are
  exact linear contributions (coefficient × standardised value).
- ``xgb_pretrained``: boosting continued on the local rows from the simulation-pretrained prior
  (:mod:`models.pretrained`) for a number of rounds chosen on the inner folds from
  ``train.pretrained_rounds`` (0 = the prior alone); new trees use :func:`regularisation`.

Selection rule (:func:`select_family`): the family with the highest inner out-of-fold AUROC;
families within ``train.selection_tolerance`` of the best are tied, and the simplest tied family
wins, in the order of :data:`SIMPLICITY`. A family that cannot be scored (AUROC undefined) never
wins. Every family sees the same inner folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import xgboost as xgb

from features.transformer import KineticFeatures
from models.bundle import dmatrix
from models.compact import CompactFeatures
from models.metrics import auroc
from models.pretrained import continue_boosting
from models.train_config import TrainConfig
from models.tuning import booster_params, early_stopped_margins, tune

# simplest first: ties in inner AUROC go to the family listed earliest
SIMPLICITY = ("gblinear_compact", "xgb_compact", "xgb_pretrained", "xgb_full")


def regularisation(n_event_patients: int) -> dict[str, Any]:
    """Tree settings scaled to E, the number of patients with an event in the training rows.

    ==================  =================================  ===========================
    setting             rule                               E = 20 / 50 / 150 / 500
    ==================  =================================  ===========================
    max_depth           1 if E < 30, 2 if E < 150, else 3  1 / 2 / 3 / 3
    min_child_weight    clip(E / 20, 1, 10)                1 / 2.5 / 7.5 / 10
    reg_lambda          clip(200 / E, 1, 20)               10 / 4 / 1.33 / 1
    learning_rate       0.05 if E < 150, else 0.1          0.05 / 0.05 / 0.1 / 0.1
    max_rounds          clip(10 E, 50, 400)                200 / 400 / 400 / 400
    ==================  =================================  ===========================

    Fewer events: shallower trees (stumps below 30: an additive model), larger leaves, stronger
    shrinkage, smaller steps; early stopping on the inner folds picks the rounds up to `max_rounds`.
    """
    e = max(int(n_event_patients), 1)
    return {"max_depth": 1 if e < 30 else 2 if e < 150 else 3,
            "min_child_weight": float(np.clip(e / 20, 1, 10)),
            "reg_lambda": float(np.clip(200 / e, 1, 20)),
            "learning_rate": 0.05 if e < 150 else 0.1,
            "max_rounds": int(np.clip(10 * e, 50, 400))}


def linear_penalty(n_event_patients: int) -> float:
    """L2 penalty of the linear family. XGBoost's gblinear scales `lambda` by the number of rows, so
    this is a per-row penalty: 1 / E (stronger with fewer events; 0.05 at E = 20, 0.002 at 500)."""
    return 1.0 / max(int(n_event_patients), 1)


def select_family(scores: dict[str, float], tolerance: float) -> str:
    """The rule stated in the module doc: best inner AUROC, ties (within `tolerance`) to the simplest."""
    valid = {f: s for f, s in scores.items() if s == s}
    if not valid:
        raise ValueError(f"no candidate family could be scored on the inner folds: {scores}")
    best = max(valid.values())
    tied = [f for f, s in valid.items() if s >= best - tolerance]
    return min(tied, key=lambda f: (SIMPLICITY.index(f) if f in SIMPLICITY else len(SIMPLICITY), f))


@dataclass
class TrainingPart:
    """One training part (an outer fold's training patients, or all patients for the final model)."""
    rows: pd.DataFrame           # landmark rows: ids, label, raw covariates, features
    kinetic: KineticFeatures     # fitted on `rows`
    X: pd.DataFrame              # kinetic.transform(rows)
    inner: np.ndarray            # inner fold of every row, shared by every family
    cfg: TrainConfig

    @property
    def y(self) -> np.ndarray:
        return self.rows["label"].to_numpy().astype(int)

    @property
    def n_event_patients(self) -> int:
        return int(self.rows.loc[self.rows["label"].to_numpy() == 1, "patient_id"].nunique())


@dataclass
class InnerResult:
    family: str
    inner_auroc: float
    inner_oof_margin: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class FamilyFit:
    family: str
    features: Any                # what turns a landmark matrix into the booster's input
    booster: xgb.Booster
    settings: dict[str, Any]


class Family(Protocol):
    name: str

    def inner(self, part: TrainingPart) -> InnerResult: ...

    def refit(self, part: TrainingPart, result: InnerResult) -> FamilyFit: ...


class XgbFull:
    name = "xgb_full"

    def inner(self, part: TrainingPart) -> InnerResult:
        cfg = part.cfg
        fit = tune(part.X, part.y, part.inner, cfg.xgboost, cfg.search_space, cfg.seed)
        return InnerResult(self.name, fit.inner_auroc, fit.inner_oof_margin,
                           {"params": fit.params, "config": fit.config, "n_rounds": fit.n_rounds})

    def refit(self, part: TrainingPart, result: InnerResult) -> FamilyFit:
        s = result.settings
        booster = xgb.train(s["params"], dmatrix(part.X, part.y), num_boost_round=s["n_rounds"])
        return FamilyFit(self.name, part.kinetic, booster, {"chosen_params": s["config"], "n_rounds": s["n_rounds"]})


def _classes() -> dict[str, str]:
    from models.compact import therapy_classes

    return therapy_classes()


class XgbCompact:
    name = "xgb_compact"

    def _features(self, part: TrainingPart) -> CompactFeatures:
        return CompactFeatures(part.kinetic, part.cfg.compact, _classes()).fit(part.rows)

    def _params(self, part: TrainingPart, features: CompactFeatures, columns: list[str]) -> tuple[dict, int]:
        reg = regularisation(part.n_event_patients)
        config = {k: v for k, v in reg.items() if k != "max_rounds"}
        params = booster_params(part.cfg.xgboost, config, part.cfg.seed)
        params["monotone_constraints"] = features.monotone_constraints(columns)
        return params, reg["max_rounds"]

    def inner(self, part: TrainingPart) -> InnerResult:
        features = self._features(part)
        Xc = features.transform(part.rows)
        params, max_rounds = self._params(part, features, list(Xc.columns))
        patience = int(part.cfg.xgboost.get("early_stopping_rounds", 30))
        margin, n_rounds = early_stopped_margins(Xc, part.y, part.inner, params, max_rounds, patience)
        return InnerResult(self.name, float(auroc(part.y, margin)), margin, {"params": params, "n_rounds": n_rounds})

    def refit(self, part: TrainingPart, result: InnerResult) -> FamilyFit:
        features = self._features(part)
        Xc = features.transform(part.rows)
        booster = xgb.train(result.settings["params"], dmatrix(Xc, part.y), num_boost_round=result.settings["n_rounds"])
        chosen = {k: result.settings["params"][k] for k in ("max_depth", "min_child_weight", "reg_lambda",
                                                             "learning_rate", "monotone_constraints")}
        return FamilyFit(self.name, features, booster, {"chosen_params": chosen, "n_rounds": result.settings["n_rounds"],
                                                        "n_event_patients": part.n_event_patients})


class GblinearCompact:
    name = "gblinear_compact"
    MAX_ROUNDS = 200  # coordinate descent converges in a few dozen rounds; early stopping picks them

    def _params(self, part: TrainingPart) -> dict[str, Any]:
        return {"booster": "gblinear", "objective": "binary:logistic", "eval_metric": "logloss",
                "updater": "coord_descent", "feature_selector": "cyclic", "eta": 0.5,
                "lambda": linear_penalty(part.n_event_patients), "alpha": 0.0, "seed": part.cfg.seed, "nthread": 1}

    def inner(self, part: TrainingPart) -> InnerResult:
        params = self._params(part)
        patience = int(part.cfg.xgboost.get("early_stopping_rounds", 30))
        y = part.y
        margin = np.full(len(y), np.nan)
        rounds = []
        for k in np.unique(part.inner):
            tr, va = part.inner != k, part.inner == k
            # standardisation fitted on the inner training rows only
            features = CompactFeatures(part.kinetic, part.cfg.compact, _classes(), linear=True).fit(part.rows[tr])
            dval = dmatrix(features.transform(part.rows[va]), y[va])
            model = xgb.train(params, dmatrix(features.transform(part.rows[tr]), y[tr]), num_boost_round=self.MAX_ROUNDS,
                              evals=[(dval, "inner_validation")], early_stopping_rounds=patience, verbose_eval=False)
            rounds.append(model.best_iteration + 1)
            margin[va] = model.predict(dval, output_margin=True, iteration_range=(0, model.best_iteration + 1))
        n_rounds = int(round(np.mean(rounds)))
        return InnerResult(self.name, float(auroc(y, margin)), margin, {"params": params, "n_rounds": n_rounds})

    def refit(self, part: TrainingPart, result: InnerResult) -> FamilyFit:
        features = CompactFeatures(part.kinetic, part.cfg.compact, _classes(), linear=True).fit(part.rows)
        booster = xgb.train(result.settings["params"], dmatrix(features.transform(part.rows), part.y),
                            num_boost_round=result.settings["n_rounds"])
        return FamilyFit(self.name, features, booster,
                         {"chosen_params": {"lambda": result.settings["params"]["lambda"]},
                          "n_rounds": result.settings["n_rounds"], "n_event_patients": part.n_event_patients})


class XgbPretrained:
    name = "xgb_pretrained"

    def _params(self, part: TrainingPart) -> dict[str, Any]:
        reg = regularisation(part.n_event_patients)
        config = {k: v for k, v in reg.items() if k != "max_rounds"}
        return booster_params(part.cfg.xgboost, config, part.cfg.seed)

    def inner(self, part: TrainingPart) -> InnerResult:
        prior = part.cfg.prior
        Xp = prior.features.transform(part.rows)
        y = part.y
        grid = sorted({int(r) for r in part.cfg.pretrained_rounds})
        params = self._params(part)
        margins = {r: np.full(len(y), np.nan) for r in grid}
        for k in np.unique(part.inner):
            tr, va = part.inner != k, part.inner == k
            model = continue_boosting(prior.booster, Xp[tr], y[tr], params, grid[-1])
            dval = dmatrix(Xp[va])
            for r in grid:
                margins[r][va] = model.predict(dval, output_margin=True, iteration_range=(0, prior.n_trees + r))
        scores = {r: float(auroc(y, margins[r])) for r in grid}
        best = grid[0]
        for r in grid:  # ascending: fewer local rounds win ties
            if scores[r] > scores[best]:
                best = r
        return InnerResult(self.name, scores[best], margins[best],
                           {"params": params, "local_rounds": best, "inner_auroc_by_rounds": scores})

    def refit(self, part: TrainingPart, result: InnerResult) -> FamilyFit:
        prior = part.cfg.prior
        s = result.settings
        booster = continue_boosting(prior.booster, prior.features.transform(part.rows), part.y, s["params"],
                                    s["local_rounds"])
        # the local trees' settings matter only when there are local trees
        chosen = {"local_rounds": s["local_rounds"],
                  **({k: s["params"][k] for k in ("max_depth", "min_child_weight", "reg_lambda", "learning_rate")}
                     if s["local_rounds"] else {})}
        return FamilyFit(self.name, prior.features, booster,
                         {"chosen_params": chosen, "n_rounds": prior.n_trees + s["local_rounds"],
                          "local_rounds": s["local_rounds"], "prior_trees": prior.n_trees,
                          "inner_auroc_by_local_rounds": {str(r): v for r, v in s["inner_auroc_by_rounds"].items()},
                          "n_event_patients": part.n_event_patients})


FAMILIES: dict[str, Family] = {f.name: f for f in (XgbFull(), XgbCompact(), GblinearCompact(), XgbPretrained())}


def unavailable(name: str, cfg: TrainConfig, features: KineticFeatures) -> str:
    """Why a requested family cannot compete ('' if it can). An unknown name is an error."""
    if name not in FAMILIES:
        raise ValueError(f"train.candidates names an unknown family {name!r} (known: {', '.join(FAMILIES)})")
    if name in ("xgb_compact", "gblinear_compact") and cfg.compact is None:
        raise ValueError(f"{name} needs the compact feature set (params.yaml train.compact)")
    if name == "xgb_pretrained":
        if cfg.prior is None:
            return "no pretrained prior was given (run the `pretrain` stage: dvc repro pretrain)"
        return cfg.prior.check_matches(features)
    return ""
