import numpy as np
import pandas as pd
import pytest

from features.transformer import KineticFeatures
from features.vocabulary import readable_name
from models.bundle import ModelBundle
from models.crossval import TrainConfig
from models.evaluate import evaluate_predictions
from models.explain import shap_values
from models.folds import patient_folds
from models.model_input import from_model_input, to_model_input
from models.predict import predict_cohort
from models.train import train_model

XGB = {"n_estimators": 60, "early_stopping_rounds": 10, "learning_rate": 0.2, "max_depth": 3}
CFG = TrainConfig(xgboost=XGB, search_space={"max_depth": [2, 3]}, n_folds=3, inner_folds=2, seed=1)


@pytest.fixture(scope="module")
def training_cohort():
    from cohorts.simulate import iter_chunks
    from tests.conftest import MIX

    return next(iter_chunks(1500, seed=21, therapy_mix=MIX))


@pytest.fixture(scope="module")
def trained(training_cohort):
    kf = KineticFeatures()
    matrix = kf.build(training_cohort.labs, training_cohort.patients, [24.0, 48.0, 72.0],
                      events=training_cohort.events)
    bundle, oof = train_model(matrix, kf, CFG)
    return matrix, bundle, oof


def test_patients_never_split_across_folds():
    rng = np.random.default_rng(0)
    pid = pd.Series(np.repeat([f"p{i}" for i in range(60)], 3))
    label = pd.Series((rng.random(180) < 0.2).astype(float))
    folds = patient_folds(pid, label, n_splits=5, seed=3)
    assert (pd.Series(folds).groupby(pid).nunique() == 1).all()
    assert set(folds) == set(range(5))


def test_oof_predictions_are_out_of_fold_and_informative(trained):
    matrix, bundle, oof = trained
    assert oof["probability"].between(0, 1).all() and oof["margin"].notna().all()
    assert (oof.groupby("patient_id")["fold"].nunique() == 1).all()
    metrics = evaluate_predictions(oof, n_boot=50, seed=0)
    pooled = metrics["pooled"]
    assert pooled["xgb_kinetics.auroc_ci_low"] <= pooled["xgb_kinetics.auroc"] <= pooled["xgb_kinetics.auroc_ci_high"]
    assert pooled["xgb_kinetics.auroc"] > 0.6  # the simulator puts real signal in the kinetics
    assert pooled["n_events"] == int(oof["label"].sum())


def test_training_is_deterministic(small_cohort, trained):
    matrix, bundle, oof = trained
    _, oof2 = train_model(matrix, KineticFeatures(), CFG)
    pd.testing.assert_frame_equal(oof, oof2)


def test_bundle_roundtrip_gives_identical_probabilities(tmp_path, trained, small_cohort):
    _, bundle, _ = trained
    bundle.save(tmp_path / "m")
    back = ModelBundle.load(tmp_path / "m")
    a = predict_cohort(bundle, small_cohort.labs, small_cohort.patients, [24.0])
    b = predict_cohort(back, small_cohort.labs, small_cohort.patients, [24.0])
    pd.testing.assert_frame_equal(a, b)


def test_every_patient_gets_a_row_and_a_status(trained, small_cohort):
    _, bundle, _ = trained
    patients = pd.concat([small_cohort.patients.head(5),
                          pd.DataFrame({"patient_id": ["NO-LABS"], "therapy": ["axi-cel"]})])
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(patients["patient_id"])]
    out = predict_cohort(bundle, labs, patients.assign(severe_onset_hours=[np.nan] * 4 + [10.0, np.nan]),
                         [24.0, 48.0])
    assert len(out) == 2 * len(patients)
    assert set(out["patient_id"]) == set(patients["patient_id"])
    status = out.set_index(["patient_id", "landmark_hours"])["status"]
    assert status[("NO-LABS", 24.0)] == "no_data_before_landmark"
    assert status[(patients["patient_id"].iloc[4], 24.0)] == "already_severe"
    scored = out["status"] == "scored"
    assert out.loc[scored, "probability"].between(0, 1).all() and out.loc[~scored, "probability"].isna().all()


def test_model_input_roundtrip(small_cohort):
    patients = pd.concat([small_cohort.patients.head(3), pd.DataFrame({"patient_id": ["NO-LABS"]})])
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(patients["patient_id"])]
    events = small_cohort.events[small_cohort.events["patient_id"].isin(patients["patient_id"])]
    grades = small_cohort.grades[small_cohort.grades["patient_id"].isin(patients["patient_id"])]
    frame = to_model_input(labs, patients, events, grades=grades)
    labs2, patients2, events2, grades2 = from_model_input(frame)
    assert set(patients2["patient_id"]) == set(patients["patient_id"])
    assert len(labs2) == len(labs) and len(events2) == len(events) and len(grades2) == len(grades) > 0
    assert grades2["grade"].tolist() == grades["grade_astct"].astype(float).tolist()  # the simulator's scale
    assert from_model_input(to_model_input(labs, patients))[2] is None  # no events sent: treatments unknown
    assert from_model_input(to_model_input(labs, patients)).grades is None  # no grade course: unknown
    assert patients2["severe_onset_hours"].isna().all()  # outcomes never travel as model input


def test_pred_contribs_match_shap_tree_explainer_and_add_up(trained):
    import shap
    import xgboost as xgb

    matrix, bundle, _ = trained
    X = bundle.features.transform(matrix[matrix["eligible"]].head(200))
    values, base = shap_values(bundle.booster, X)
    explainer = shap.TreeExplainer(bundle.booster)
    reference = explainer.shap_values(X.to_numpy("float64"))
    np.testing.assert_allclose(values, reference, atol=1e-5)
    margin = bundle.booster.predict(xgb.DMatrix(X.to_numpy("float64"), feature_names=list(X.columns)),
                                    output_margin=True)
    np.testing.assert_allclose(values.sum(axis=1) + base, margin, atol=1e-4)


def test_readable_names():
    assert readable_name("IL6__log2_fc") == "IL-6 fold change vs baseline (log2)"
    assert readable_name("therapy=axi-cel") == "therapy: axi-cel"


def test_baselines_share_the_folds_and_are_honest(trained):
    _, _, oof = trained
    for col in ("p_single_value_lr", "p_absolute_xgb", "p_prevalence"):
        assert oof[col].between(0, 1).all(), col
    # prevalence-only is a constant per outer fold: the training part's event rate
    assert (oof.groupby("fold")["p_prevalence"].nunique() == 1).all()
    assert oof["threshold"].notna().all() and (oof.groupby("fold")["threshold"].nunique() == 1).all()
