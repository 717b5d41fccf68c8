"""Candidate families and their selection inside the nested CV (issue 14, part A)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import models.candidates as candidates
from crs_settings import load_params
from features.transformer import KineticFeatures
from models.bundle import ModelBundle, contributions, dmatrix
from models.candidates import FamilyFit, InnerResult, regularisation, select_family
from models.compact import MISSING_SUFFIX, CompactSpec
from models.crossval import TrainConfig, competing, fit_each, fit_selected, outer_cross_validation
from models.pretrained import PretrainedPrior, continue_boosting, pretrain
from models.train import train_model, training_rows

ROOT = Path(__file__).resolve().parent.parent
LANDMARKS = [24.0, 48.0, 72.0]
XGB = {"n_estimators": 60, "early_stopping_rounds": 10, "learning_rate": 0.2, "subsample": 0.8,
       "colsample_bytree": 0.8, "nthread": 1}


def _cfg(names: list[str], **kw) -> TrainConfig:
    t = load_params(ROOT)["train"]
    base = dict(xgboost=XGB, search_space={"max_depth": [2]}, n_folds=3, inner_folds=2, seed=1,
                candidates=tuple(names), selection_tolerance=float(t["selection_tolerance"]),
                compact=CompactSpec.from_params(t["compact"]), pretrained_rounds=(0, 10))
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def matrix(small_cohort):
    return KineticFeatures().build(small_cohort.labs, small_cohort.patients, LANDMARKS, events=small_cohort.events)


@pytest.fixture(scope="module")
def rows(matrix):
    return training_rows(matrix)


@pytest.fixture(scope="module")
def prior(rows):
    """A small prior fitted on the test cohort itself (the real one comes from the pretrain stage)."""
    return pretrain(rows, KineticFeatures(), {**XGB, "max_depth": 3, "validation_fraction": 0.25}, seed=5)


# ----------------------------------------------------------------------------- selection rule


def test_selection_rule_best_inner_auroc_ties_to_the_simplest():
    assert select_family({"xgb_full": 0.80, "xgb_compact": 0.78}, 0.005) == "xgb_full"
    assert select_family({"xgb_full": 0.800, "gblinear_compact": 0.797}, 0.005) == "gblinear_compact"
    assert select_family({"xgb_full": 0.800, "gblinear_compact": 0.797}, 0.001) == "xgb_full"
    assert select_family({"xgb_pretrained": 0.7, "xgb_full": 0.7}, 0.0) == "xgb_pretrained"
    assert select_family({"xgb_full": float("nan"), "xgb_compact": 0.6}, 0.0) == "xgb_compact"
    with pytest.raises(ValueError):
        select_family({"xgb_full": float("nan")}, 0.0)


def test_regularisation_rule_scales_with_events():
    """The rule written in models.candidates.regularisation, pinned, and never looser with fewer events."""
    assert regularisation(20) == {"max_depth": 1, "min_child_weight": 1.0, "reg_lambda": 10.0,
                                  "learning_rate": 0.05, "max_rounds": 200}
    assert regularisation(50) == {"max_depth": 2, "min_child_weight": 2.5, "reg_lambda": 4.0,
                                  "learning_rate": 0.05, "max_rounds": 400}
    assert regularisation(500)["max_depth"] == 3 and regularisation(500)["reg_lambda"] == 1.0
    rules = [regularisation(e) for e in range(1, 2000, 7)]
    for fewer, more in zip(rules, rules[1:], strict=False):
        assert fewer["max_depth"] <= more["max_depth"] and fewer["reg_lambda"] >= more["reg_lambda"]
        assert fewer["learning_rate"] <= more["learning_rate"] and fewer["max_rounds"] <= more["max_rounds"]
    assert candidates.linear_penalty(20) > candidates.linear_penalty(500)


# ----------------------------------------------------------------------------- selection inside the CV


class _Recorder:
    """Wraps a family and records the patient ids of every call."""

    def __init__(self, family, log: list):
        self.name, self.family, self.log = family.name, family, log

    def inner(self, part):
        self.log.append(("inner", self.name, set(part.rows["patient_id"])))
        return self.family.inner(part)

    def refit(self, part, result):
        self.log.append(("refit", self.name, set(part.rows["patient_id"])))
        return self.family.refit(part, result)


class _Spy:
    """A fake family: perfect (or useless) inner score; a one-tree booster on the full features."""

    name = "spy"

    def __init__(self, score: float, log: list):
        self.score, self.log = score, log

    def inner(self, part):
        self.log.append(("inner", self.name, set(part.rows["patient_id"])))
        assert len(np.unique(part.inner)) == part.cfg.inner_folds  # it is handed the inner folds
        return InnerResult(self.name, self.score, np.where(part.y == 1, 1.0, -1.0), {})

    def refit(self, part, result):
        self.log.append(("refit", self.name, set(part.rows["patient_id"])))
        booster = xgb.train({"objective": "binary:logistic", "nthread": 1, "max_depth": 1}, dmatrix(part.X, part.y), 1)
        return FamilyFit(self.name, part.kinetic, booster, {})


@pytest.mark.parametrize("spy_score", [1.0, 0.0])
def test_selection_uses_inner_folds_only_and_outer_test_rows_reach_no_fit(rows, monkeypatch, spy_score):
    log: list = []
    families = {n: _Recorder(candidates.FAMILIES[n], log) for n in ("xgb_compact", "gblinear_compact")}
    families["spy"] = _Spy(spy_score, log)
    monkeypatch.setattr(candidates, "FAMILIES", families)
    cfg = _cfg(["xgb_compact", "gblinear_compact", "spy"], baselines=False)
    oof = outer_cross_validation(rows, KineticFeatures(), cfg)
    folds = sorted(oof["fold"].unique())
    per_fold = len(families) + 1  # every family scored on inner folds, then the chosen one refitted
    assert len(log) == per_fold * len(folds)
    for k in folds:
        test_ids = set(oof.loc[oof["fold"] == k, "patient_id"])
        train_ids = set(oof.loc[oof["fold"] != k, "patient_id"])
        for kind, name, seen in log[k * per_fold:(k + 1) * per_fold]:
            assert not seen & test_ids, (k, kind, name)  # no fit ever saw an outer test patient
            assert seen == train_ids, (k, kind, name)    # ... and each saw the whole training part
        chosen = [name for kind, name, _ in log[k * per_fold:(k + 1) * per_fold] if kind == "refit"]
        assert chosen == [oof.loc[oof["fold"] == k, "family"].iloc[0]]
    if spy_score == 1.0:
        assert (oof["family"] == "spy").all() and (oof["inner_auroc__spy"] == 1.0).all()
    else:
        assert not (oof["family"] == "spy").any()
        fold_scores = oof.groupby("fold")[["inner_auroc__xgb_compact", "inner_auroc__gblinear_compact"]].first()
        best = fold_scores.idxmax(axis=1).str.removeprefix("inner_auroc__")
        tol = cfg.selection_tolerance
        for k, row in fold_scores.iterrows():
            expected = select_family({n: row[f"inner_auroc__{n}"] for n in ("xgb_compact", "gblinear_compact")}, tol)
            assert oof.loc[oof["fold"] == k, "family"].iloc[0] == expected
        assert set(best) <= {"xgb_compact", "gblinear_compact"}


def test_chosen_family_reaches_meta_oof_and_the_saved_bundle(tmp_path, matrix, small_cohort):
    from models.predict import predict_cohort
    from scoring.batch import check_schema

    bundle, oof = train_model(matrix, KineticFeatures(), _cfg(["xgb_compact", "gblinear_compact"], baselines=False))
    assert set(oof["family"]) <= {"xgb_compact", "gblinear_compact"} and (oof["family"] != "").all()
    meta = bundle.meta
    assert meta["family"] in ("xgb_compact", "gblinear_compact") and bundle.family == meta["family"]
    assert set(meta["candidates_inner_auroc"]) == {"xgb_compact", "gblinear_compact"}
    assert meta["family"] == select_family(meta["candidates_inner_auroc"], meta["selection_tolerance"])
    by_fold = oof.groupby("fold")["family"].first().to_dict()
    assert {f["fold"]: f["family"] for f in meta["outer_folds"]} == by_fold
    bundle.save(tmp_path / "m")
    back = ModelBundle.load(tmp_path / "m")
    assert back.family == bundle.family and type(back.features) is type(bundle.features)
    check_schema(back)
    a = predict_cohort(bundle, small_cohort.labs, small_cohort.patients, [48.0], reasons="all")
    b = predict_cohort(back, small_cohort.labs, small_cohort.patients, [48.0], reasons="all")
    pd.testing.assert_frame_equal(a, b)
    assert (a.loc[a["status"] == "scored", "top_drivers"].str.len() > 0).mean() > 0.9


# ----------------------------------------------------------------------------- monotone constraints


def _against(rows: pd.DataFrame, column: str, direction: int) -> pd.DataFrame:
    """Labels that go against the known direction of `column` over part of its range (a hump for a
    rising-risk column, a rise for a falling-risk one): what the constraints must overrule."""
    v = rows[column].to_numpy("float64")
    lo, mid, hi = np.nanpercentile(v, [30, 55, 85])
    p = (np.where((v > lo) & (v < hi), 0.85, 0.03) if direction == 1
         else np.where(v > mid, 0.7, 0.05))
    rng = np.random.default_rng(0)
    return rows.assign(label=(rng.random(len(rows)) < np.where(np.isnan(v), 0.1, p)).astype(float))


def _sweep(fitted, rows: pd.DataFrame, column: str) -> np.ndarray:
    """Predicted margin [row, grid point] with `column` set to each grid value, all else fixed."""
    grid = np.nanpercentile(rows[column], np.linspace(1, 99, 25))
    base = rows.head(60)
    return np.column_stack([fitted.margin(base.assign(**{column: g})) for g in grid])


@pytest.mark.parametrize(("column", "direction"), [("IL6__latest", 1), ("PLT__latest", -1)])
def test_monotone_constraints_hold_on_a_fitted_compact_model(rows, column, direction):
    data = _against(rows, column, direction)
    spec = CompactSpec.from_params(load_params(ROOT)["train"]["compact"])
    assert spec.monotone[column] == direction
    constrained = fit_selected(data, KineticFeatures(), _cfg(["xgb_compact"]))
    steps = direction * np.diff(_sweep(constrained, data, column), axis=1)
    assert (steps >= -1e-6).all()   # IL-6 up: risk never falls; platelets up: risk never rises
    # the same data without constraints: the wrong-way shape is learned, so the check above can fail
    free = fit_selected(data, KineticFeatures(), _cfg(["xgb_compact"], compact=CompactSpec(
        spec.analytes, spec.per_analyte, spec.covariates, {})))
    assert (direction * np.diff(_sweep(free, data, column), axis=1) < -1e-3).any()


# ----------------------------------------------------------------------------- gblinear


def test_gblinear_contributions_are_exact_linear_terms(rows):
    fitted = fit_selected(rows, KineticFeatures(), _cfg(["gblinear_compact"]))
    assert fitted.family == "gblinear_compact"
    X = fitted.features.transform(rows)
    values, bias = contributions(fitted.booster, X)
    margin = fitted.booster.predict(dmatrix(X), output_margin=True)
    np.testing.assert_allclose(values.sum(axis=1) + bias, margin, atol=1e-5)
    model = json.loads(fitted.booster.save_raw("json"))["learner"]["gradient_booster"]["model"]
    weights = np.asarray(model["weights"], dtype="float64")[: X.shape[1]]
    np.testing.assert_allclose(values, X.to_numpy() * weights, atol=1e-6)   # coefficient × value
    numeric = fitted.features.compact_spec.numeric_columns()
    np.testing.assert_allclose(X[numeric].to_numpy().mean(axis=0), 0.0, atol=1e-9)   # standardised on these rows
    # drivers: the indicator's share is added to its column, values shown in their own units
    bundle = ModelBundle(fitted.booster, fitted.features, fitted.calibration, {"family": fitted.family})
    shown_values, shown_bias, shown = bundle.explain(rows)
    np.testing.assert_allclose(shown_values.sum(axis=1) + shown_bias, margin, atol=1e-5)
    assert list(shown.columns) == fitted.features.raw_names()
    np.testing.assert_array_equal(shown["IL6__latest"].to_numpy(), rows["IL6__latest"].to_numpy())
    missing = rows["IL6__latest"].isna().to_numpy()
    if missing.any() and "IL6__latest" + MISSING_SUFFIX in X:
        j = list(X.columns).index("IL6__latest" + MISSING_SUFFIX)
        np.testing.assert_allclose(shown_values[missing, 0], weights[j], atol=1e-6)  # z = 0, indicator = 1


# ----------------------------------------------------------------------------- pretrained prior


def _frame(rng, n, shift: bool) -> tuple[pd.DataFrame, np.ndarray]:
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    z = 2.0 * X["b"] if shift else 2.0 * X["a"]
    return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)


def test_continued_boosting_reproduces_the_prior_at_zero_rounds_and_moves_toward_local_data():
    from models.metrics import auroc

    rng = np.random.default_rng(3)
    Xs, ys = _frame(rng, 4000, shift=False)
    prior = xgb.train({"objective": "binary:logistic", "max_depth": 2, "nthread": 1, "seed": 0}, dmatrix(Xs, ys), 40)
    X_local, y_local = _frame(rng, 1500, shift=True)      # the relationship moved from a to b
    X_test, y_test = _frame(rng, 3000, shift=True)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.1, "nthread": 1, "seed": 0}
    zero = continue_boosting(prior, X_local, y_local, params, 0)
    np.testing.assert_array_equal(zero.predict(dmatrix(X_test), output_margin=True),
                                  prior.predict(dmatrix(X_test), output_margin=True))
    more = continue_boosting(prior, X_local, y_local, params, 60)
    assert more.num_boosted_rounds() == 100 and prior.num_boosted_rounds() == 40   # the prior is untouched
    first = more.predict(dmatrix(X_test), output_margin=True, iteration_range=(0, 40))
    np.testing.assert_array_equal(first, prior.predict(dmatrix(X_test), output_margin=True))
    before = auroc(y_test, prior.predict(dmatrix(X_test), output_margin=True))
    after = auroc(y_test, more.predict(dmatrix(X_test), output_margin=True))
    assert before < 0.6 < 0.75 < after


def test_pretrained_family_with_zero_local_rounds_is_the_prior(rows, matrix, prior):
    fitted = fit_selected(rows, KineticFeatures(), _cfg(["xgb_pretrained"], prior=prior, pretrained_rounds=(0,)))
    assert fitted.family == "xgb_pretrained" and fitted.settings["local_rounds"] == 0
    eligible = matrix[matrix["eligible"]]
    np.testing.assert_array_equal(fitted.margin(eligible),
                                  prior.booster.predict(dmatrix(prior.features.transform(eligible)), output_margin=True))
    more = fit_selected(rows, KineticFeatures(), _cfg(["xgb_pretrained"], prior=prior, pretrained_rounds=(10,)))
    assert more.booster.num_boosted_rounds() == prior.n_trees + 10
    # another feature definition: the prior answers another question and is left out, saying why
    other = KineticFeatures(horizon_hours=48.0)
    assert "horizon_hours" in prior.check_matches(other)
    names, skipped = competing(other, _cfg(["xgb_pretrained", "xgb_compact"], prior=prior))
    assert names == ["xgb_compact"] and "horizon_hours" in skipped["xgb_pretrained"]


def test_pretrain_stage_output_loads_and_matches_its_feature_spec():
    """The committed output of the `pretrain` DVC stage: loads, its booster reads exactly its feature
    state's columns, and it was built with this project's featurize settings and pretrain params."""
    params = load_params(ROOT)
    prior = PretrainedPrior.load(ROOT / params["paths"]["pretrained"])
    assert list(prior.booster.feature_names) == [str(c) for c in prior.features.get_feature_names_out()]
    assert prior.check_matches(KineticFeatures.from_params(params["featurize"])) == ""
    assert prior.meta["seed"] == params["pretrain"]["seed"] != params["simulate"]["seed"]
    assert prior.meta["synthetic"] is True
    assert 0.9 * params["pretrain"]["patients"] <= prior.meta["n_patients"] <= params["pretrain"]["patients"]
    assert 0 < prior.n_trees <= params["pretrain"]["xgboost"]["n_estimators"]


def test_each_family_alone_uses_the_selection_folds(rows):
    """fit_each (benchmarks score every candidate alone with it) selects what fit_selected selects,
    and its entry for that family is the same model."""
    cfg = _cfg(["xgb_compact", "gblinear_compact"])
    selected, fits = fit_each(rows, KineticFeatures(), cfg)
    alone = fit_selected(rows, KineticFeatures(), cfg)
    assert selected == alone.family and set(fits) == {"xgb_compact", "gblinear_compact"}
    np.testing.assert_array_equal(fits[selected].margin(rows), alone.margin(rows))
    assert fits[selected].calibration == alone.calibration


def test_every_family_saves_loads_scores_and_explains(tmp_path, rows, matrix, small_cohort, prior):
    """Whichever family wins, the bundle round-trips, passes the serving schema check, scores the
    canonical tables with drivers that add up to the margin, and external validation computes the
    published scores from the full kinetic features (not from a compact or standardised input)."""
    from cohorts.io import Cohort
    from models.baselines import m_easix
    from models.external import external_predictions
    from models.predict import predict_cohort
    from scoring.batch import check_schema

    _, fits = fit_each(rows, KineticFeatures(), _cfg(list(candidates.SIMPLICITY), prior=prior))
    assert set(fits) == set(candidates.SIMPLICITY)
    eligible = matrix[matrix["eligible"]].head(300)
    cohort = Cohort(labs=small_cohort.labs, patients=small_cohort.patients, events=small_cohort.events)
    for name, fit in fits.items():
        meta = {"family": name, "landmarks_hours": LANDMARKS, "n_events": 1, "n_rows": 10,
                "operating_threshold": fit.threshold}
        bundle = ModelBundle(fit.booster, fit.features, fit.calibration, meta)
        bundle.save(tmp_path / name)
        back = ModelBundle.load(tmp_path / name)
        check_schema(back)
        assert back.family == name
        np.testing.assert_array_equal(back.margin(back.features.transform(eligible)), fit.margin(eligible))
        values, bias, shown = back.explain(eligible)
        np.testing.assert_allclose(values.sum(axis=1) + bias, fit.margin(eligible), atol=1e-4)
        assert shown.shape == values.shape and not any(c.endswith(MISSING_SUFFIX) for c in shown.columns)
        out = predict_cohort(back, small_cohort.labs, small_cohort.patients, [48.0], events=small_cohort.events,
                             reasons="all")
        scored = out[out["status"] == "scored"]
        assert len(scored) > 50 and scored["probability"].between(0, 1).all()
        assert (scored["driver_1_text"].str.len() > 0).mean() > 0.9, name
        ext = external_predictions(back, cohort, [48.0])
        full = KineticFeatures().fit(rows)
        expected = m_easix(full.transform(matrix[matrix["eligible"] & matrix["label"].notna()
                                                 & (matrix["landmark_hours"] == 48.0)]))
        np.testing.assert_allclose(ext["m_easix"].to_numpy(), expected, equal_nan=True)
