"""`crs recalibrate` end to end: a model trained on one simulated programme (high-risk products) is
registered, then recalibrated on another programme's labelled cohort (lower-risk products), through
the real MLflow registry in a temporary project."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TRAIN_MIX = {"axi-cel": 0.5, "tisa-cel": 0.5}
SITE_MIX = {"ide-cel": 0.5, "brexu-cel": 0.3, "liso-cel": 0.2}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder (params.yaml, reference tables, its own sqlite store) with version 1 registered."""
    import yaml

    from cohorts.io import write_cohort
    from cohorts.simulate import iter_chunks
    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.model_input import synthetic_example
    from models.tracking import Registration, log_and_register
    from models.train import train_model
    from models.training_patients import TrainingPatients

    folder = tmp_path_factory.mktemp("recal") / "project"
    (folder / "data").mkdir(parents=True)
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["evaluate"]["n_bootstrap"] = 200
    (folder / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    shutil.copytree(ROOT / "data" / "reference", folder / "data" / "reference")
    # in-process, mlflow.set_tracking_uri / set_registry_uri (the registry code) export MLFLOW_TRACKING_URI /
    # MLFLOW_REGISTRY_URI, and loading the pyfunc exports CRS_REFERENCE_DIR (a temporary download):
    # restore them afterwards, or later tests' subprocesses would read this temporary store and folder
    old = {k: os.environ.get(k) for k in ("CRS_PROJECT_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
                                          "CRS_REFERENCE_DIR")}
    os.environ["CRS_PROJECT_ROOT"] = str(folder)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        home = next(iter_chunks(1200, seed=31, therapy_mix=TRAIN_MIX))
        features = KineticFeatures()
        matrix = features.build(home.labs, home.patients, [24.0, 48.0, 72.0], events=home.events)
        cfg = TrainConfig(xgboost={"n_estimators": 80, "early_stopping_rounds": 15, "learning_rate": 0.15,
                                   "max_depth": 3}, search_space={}, n_folds=2, inner_folds=2, seed=1)
        bundle, _ = train_model(matrix, features, cfg)
        bundle.meta["risk_band_edges"] = [0.1, 0.3]
        bundle.meta["landmarks_hours"] = [24.0, 48.0, 72.0]
        bundle.save(folder / "model")
        log_and_register(Registration(
            model_name="severe-crs", experiment="crs-predict", bundle_dir=folder / "model",
            reference_dir=folder / "data" / "reference", params={}, metrics={},
            training_patients=TrainingPatients.build(home.patients["patient_id"]),
            input_example=synthetic_example({"axi-cel": 1.0}, 2, 1), gates=p["register"]["gates"],
            run_name="version 1", run_description="", model_description="", settings=p["register"]), folder)
        site = next(iter_chunks(1500, seed=32, therapy_mix=SITE_MIX))
        write_cohort(site, folder / "site")
        yield folder
    finally:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_recalibrate_reports_before_after_and_registers_a_challenger(project, capsys):
    from models.calibration import apply_calibration
    from pipeline.cli import main
    from scoring.batch import load_model

    out = project / "recal-out"
    code = main(["recalibrate", "--model", "models:/severe-crs/1", "--cohort", str(project / "site"),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "before" in printed and "cross-fitted" in printed and "registered severe-crs version 2" in printed
    s = json.loads((out / "recalibration.json").read_text())
    before, after = s["report"]["before"], s["report"]["after_cross_fitted"]
    # trained on higher-risk products, the model over-predicts at this site; recalibrated, it does not
    assert before["calibration_intercept"]["ci_high"] < 0
    assert after["calibration_intercept"]["ci_low"] <= 0 <= after["calibration_intercept"]["ci_high"]
    assert after["change_in_brier"]["value"] < 0
    assert s["registration"]["version"] == "2" and "challenger" in s["registration"]["aliases"]
    assert (out / "calibration_before_after.png").stat().st_size > 10_000
    # the registered version 2 is the same booster with the new map; ranking unchanged
    v1, v2 = load_model("models:/severe-crs/1").bundle, load_model("models:/severe-crs/2").bundle
    assert v2.calibration == s["calibration"] and v2.meta["recalibration"]["model_version"] == "1"
    pred = pd.read_parquet(out / "predictions.parquet")
    from cohorts.io import read_cohort
    from models.external import external_predictions

    site = read_cohort(project / "site")
    t1 = external_predictions(v1, site, [24.0, 48.0, 72.0])
    t2 = external_predictions(v2, site, [24.0, 48.0, 72.0])
    np.testing.assert_allclose(t2["margin"], t1["margin"])
    np.testing.assert_allclose(t2["probability"], apply_calibration(t1["margin"].to_numpy(), s["calibration"]))
    np.testing.assert_allclose(pred["probability_before"], t1["probability"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recalibration"]["method"] == "logistic" and "xgb_kinetics.auroc" in metrics["pooled"]
    # version 2 records the booster's training patients (version 1's) and the calibration's (the site's)
    import mlflow

    from models.training_patients import FILE_NAME, TrainingPatients

    records = {v: TrainingPatients.read(Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/severe-crs/{v}/artifacts/{FILE_NAME}", dst_path=str(project / f"tp{v}"))))
        for v in ("1", "2")}
    assert records["2"].salt == records["1"].salt and records["1"].digests < records["2"].digests
    assert records["2"].contains(site.patients["patient_id"]).all()
    assert records["2"].n_patients == records["1"].n_patients + site.patients["patient_id"].nunique()


def test_recalibrate_without_outcomes_is_an_input_problem(project, tmp_path, capsys):
    from cohorts.io import read_cohort, write_cohort
    from pipeline.cli import main

    site = read_cohort(project / "site")
    site.patients = site.patients.drop(columns=["severe_onset_hours"])
    write_cohort(site, tmp_path / "unlabelled")
    code = main(["recalibrate", "--model", "models:/severe-crs/1", "--cohort", str(tmp_path / "unlabelled"),
                 "--no-register", "--out", str(tmp_path / "o")])
    assert code == 2 and "outcome" in capsys.readouterr().err
