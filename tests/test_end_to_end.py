"""`dvc repro` on a tiny simulated cohort in a copy of the repository, then the registered
champion loaded in a fresh Python process and used to score."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CRS_PROJECT_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("data/") or rel.startswith("data/reference/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _small_params(project: Path) -> None:
    path = project / "params.yaml"
    p = yaml.safe_load(path.read_text())
    p["simulate"]["patients"] = 300
    p["train"]["n_folds"] = 3
    p["train"]["inner_folds"] = 2
    p["train"]["xgboost"]["n_estimators"] = 60
    p["train"]["search_space"] = {"max_depth": [3]}
    p["evaluate"]["n_bootstrap"] = 20
    p["claim"].update(repeats=2, folds=3, n_rounds=30, n_bootstrap=50)
    p["explain"]["max_rows"] = 200
    # a tiny cohort has wide CIs: loose absolute gates here; the negative-control test tightens them
    p["register"]["gates"] = {"min_auroc_ci_low": 0.0, "calibration_slope_range": [0.0, 10.0],
                              "max_auroc_drop_vs_champion": 0.05}
    path.write_text(yaml.safe_dump(p, sort_keys=False))


@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    project = tmp_path_factory.mktemp("crs") / "repo"
    project.mkdir()
    _copy_repo(project)
    _small_params(project)
    env = _env(project)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=project, env=env, check=True)
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return project, env


def test_repro_writes_metrics_plots_and_lock(repro):
    project, _ = repro
    metrics = json.loads((project / "data/metrics.json").read_text())
    pooled = metrics["pooled"]
    auroc = pooled["xgb_kinetics.auroc"]
    assert 0.5 < auroc <= 1.0 and pooled["xgb_kinetics.auroc_ci_low"] <= auroc <= pooled["xgb_kinetics.auroc_ci_high"]
    assert "delta_auroc.xgb_kinetics_minus_lr_single_value" in pooled
    assert metrics["cohort"]["synthetic"] is True
    for png in ("roc", "pr", "calibration", "decision_curve", "cohort/kinetics_by_grade"):
        assert (project / f"data/plots/{png}.png").stat().st_size > 1000, png
    card = (project / "data/model_card.md").read_text()
    assert "## Performance" in card and "SYNTHETIC" in card
    claim = json.loads((project / "data/claim.json").read_text())
    assert set(claim["feature_sets"]) >= {"M0", "M1", "M2"} and "pooled" in claim["subsets"]
    assert metrics["claim"]["claim_found"] == claim["claim_found"]
    assert (project / "data/explain/shap_beeswarm.png").stat().st_size > 1000
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert {"simulate", "featurize", "train", "evaluate", "explain", "register"} <= set(lock["stages"])


def test_noop_repro_registers_nothing_and_edits_mark_their_stages(repro):
    """Runs before any test that rewrites a stage output by hand. After `dvc repro`: a second repro does nothing (no new model version); editing a file of a
    library package makes `dvc status` name exactly the stages whose deps hold that package."""
    project, env = repro
    dvc = str(Path(sys.executable).parent / "dvc")
    from mlflow import MlflowClient

    store = MlflowClient(f"sqlite:///{project}/mlflow.db")
    versions = len(store.search_model_versions("name='severe-crs'"))
    again = subprocess.run([dvc, "repro"], cwd=project, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Stage 'register' didn't change" in again.stdout
    assert len(store.search_model_versions("name='severe-crs'")) == versions

    def status() -> set[str]:
        done = subprocess.run([dvc, "status", "--json"], cwd=project, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return set(json.loads(done.stdout or "{}"))

    assert status() == set()
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    for edited in ("crs_settings/__init__.py", "cohorts/schema.py", "features/kinetics.py", "models/gates.py",
                   "scoring/batch.py", "pipeline/common.py", "data/reference/analytes.csv"):
        path = project / edited
        original = path.read_bytes()
        path.write_bytes(original + (b"\n# edited\n" if edited.endswith(".py") else b"\n"))
        try:
            expected = {name for name, st in stages.items()
                        if any(edited == d or edited.startswith(f"{d}/") for d in st["deps"])}
            assert expected and status() == expected, edited
        finally:
            path.write_bytes(original)
    assert status() == set()


def test_same_params_and_seed_reproduce_every_output(repro):
    """`dvc repro -f` rebuilds cohort, features, model, metrics and plots bit for bit."""
    project, env = repro
    first = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "-f"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    second = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    def outs(lock: dict, stage: str) -> dict[str, str]:
        return {o["path"]: o["md5"] for o in lock[stage].get("outs", [])}

    for stage in ("simulate", "featurize", "train", "evaluate", "explain"):
        assert outs(first, stage) == outs(second, stage), stage
    assert "data/metrics.json" in {o["path"] for o in first["evaluate"]["outs"]}


def test_champion_loads_and_scores_in_a_fresh_process(repro):
    project, env = repro
    script = f"""
import json, mlflow, pandas as pd
from mlflow import MlflowClient
from cohorts.simulate import iter_chunks
from models.model_input import to_model_input
uri = "sqlite:///{project}/mlflow.db"
mlflow.set_tracking_uri(uri)
mv = MlflowClient(uri).get_model_version_by_alias("severe-crs", "champion")
run = MlflowClient(uri).get_run(mv.run_id)
model = mlflow.pyfunc.load_model("models:/severe-crs@champion")
cohort = next(iter_chunks(5, seed=123, therapy_mix={{"axi-cel": 1.0}}))
out = model.predict(to_model_input(cohort.labs, cohort.patients), params={{"landmarks": "24,48"}})
print(json.dumps({{"version": mv.version, "rows": len(out), "patients": out.patient_id.nunique(),
                  "p": out.probability.dropna().tolist(), "tags": run.data.tags,
                  "has_signature": model.metadata.signature is not None}}))
"""
    # run from an unrelated folder so nothing but the model's own files can serve it
    done = subprocess.run([sys.executable, "-c", script], cwd=project.parent, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    registered = json.loads((project / "data/registration.json").read_text())
    assert str(result["version"]) == registered["version"] and result["rows"] == 10 and result["patients"] == 5
    assert result["has_signature"]
    assert result["p"] and all(0.0 <= p <= 1.0 for p in result["p"])
    tags = result["tags"]
    assert len(tags["git_commit"]) == 40 and tags["cohort.synthetic"] == "true"
    assert any(k.startswith("dvc.simulate.") for k in tags)


def test_crs_score_cli_on_registered_model(repro, tmp_path):
    project, env = repro
    crs = str(Path(sys.executable).parent / "crs")
    subprocess.run([crs, "simulate", "--patients", "7", "--seed", "5", "--out", str(tmp_path / "c")],
                   cwd=project, env=env, check=True, capture_output=True)
    done = subprocess.run([crs, "score", "--cohort", str(tmp_path / "c"), "--landmarks", "24,48",
                           "--out", str(tmp_path / "s.csv")], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    import pandas as pd

    scores = pd.read_csv(tmp_path / "s.csv")
    assert len(scores) == 14 and scores["patient_id"].nunique() == 7


def test_external_validation_on_another_simulated_cohort(repro, tmp_path):
    project, env = repro
    crs = str(Path(sys.executable).parent / "crs")
    subprocess.run([crs, "simulate", "--patients", "400", "--seed", "99", "--out", str(tmp_path / "c")],
                   cwd=project, env=env, check=True, capture_output=True)
    done = subprocess.run([crs, "evaluate", "--model", "models:/severe-crs@champion", "--cohort", str(tmp_path / "c"),
                           "--out", str(tmp_path / "ext")], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "ext" / "metrics.json").read_text())
    pooled = metrics["pooled"]
    assert pooled["n_patients"] <= 400 and 0.0 <= pooled["xgb_kinetics.auroc"] <= 1.0
    assert (tmp_path / "ext" / "calibration.png").exists() and metrics["cohort"]["synthetic"] is True
    bad = subprocess.run([crs, "evaluate", "--model", "models:/no-such-model@champion", "--cohort",
                          str(tmp_path / "c"), "--out", str(tmp_path / "bad")], cwd=project, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Cannot load model" in bad.stderr and "Traceback" not in bad.stderr


def test_pyfunc_on_raw_labs_equals_the_training_pipeline(repro):
    """Same patients: the registered pyfunc fed canonical labs + events gives the probabilities the
    pipeline computes from its own feature matrix with the same model."""
    project, env = repro
    script = f"""
import json, mlflow, numpy as np, pandas as pd
from cohorts.io import read_cohort
from models.model_input import to_model_input
mlflow.set_tracking_uri("sqlite:///{project}/mlflow.db")
model = mlflow.pyfunc.load_model("models:/severe-crs@champion")
bundle = model.unwrap_python_model().bundle
cohort = read_cohort("{project}/data/cohort")
ids = cohort.patients["patient_id"].iloc[:40]
pick = lambda t: t[t["patient_id"].isin(ids)]
out = model.predict(to_model_input(pick(cohort.labs), pick(cohort.patients), pick(cohort.events)),
                    params={{"landmarks": "24,48,72,96"}})
matrix = pd.read_parquet("{project}/data/features/landmarks.parquet")
rows = matrix[matrix["patient_id"].isin(ids) & matrix["eligible"]]
expected = pd.Series(bundle.probability(bundle.features.transform(rows)),
                     index=pd.MultiIndex.from_frame(rows[["patient_id", "landmark_hours"]]))
got = out[out["status"] == "scored"].set_index(["patient_id", "landmark_hours"])["probability"]
common = expected.index.intersection(got.index)
print(json.dumps({{"n": len(common), "max_diff": float(np.max(np.abs(expected[common] - got[common])))}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=project.parent, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] >= 40 and result["max_diff"] < 1e-9


def test_no_patient_identifier_in_any_logged_artifact(repro):
    project, _ = repro
    import pandas as pd

    ids = set(pd.read_parquet(project / "data/cohort/patients.parquet")["patient_id"])
    checked = 0
    for path in (project / "mlartifacts").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".csv", ".md", ".txt", ".yaml", ".yml", ""}:
            text = path.read_text(errors="ignore")
            checked += 1
            assert not any(pid in text for pid in ids), path
    assert checked > 10
    example = next((project / "mlartifacts").rglob("serving_input_example.json")).read_text()
    assert "EXAMPLE-1" in example


def test_register_against_a_real_mlflow_server(repro, mlflow_server):
    """register stage → a tracking server on 127.0.0.1; a separate process loads @champion and scores."""
    project, env = repro
    server_env = {**env, "MLFLOW_TRACKING_URI": mlflow_server}
    done = subprocess.run([sys.executable, "-m", "pipeline.register"], cwd=project, env=server_env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "PROMOTED" in done.stdout  # the first version on an empty server becomes champion
    # load first, import after: the project packages then resolve to the model's own code copy,
    # which must still find its reference tables (shipped with the model)
    script = """
import json, mlflow
model = mlflow.pyfunc.load_model("models:/severe-crs@champion")
from cohorts.simulate import iter_chunks
from models.model_input import to_model_input
cohort = next(iter_chunks(6, seed=8, therapy_mix={"tisa-cel": 1.0}))
out = model.predict(to_model_input(cohort.labs, cohort.patients, cohort.events),
                    params={"landmarks": "48", "reasons": "all"})
scored = out[out["status"] == "scored"]
print(json.dumps({"rows": len(out), "statuses": sorted(set(out["status"])),
                  "drivers": int((scored["top_drivers"].str.len() > 0).sum()), "scored": len(scored)}))
"""
    scored = subprocess.run([sys.executable, "-c", script], cwd=project.parent, env=server_env,
                            capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr[-3000:]
    result = json.loads(scored.stdout.strip().splitlines()[-1])
    assert result["rows"] == 6 and result["drivers"] == result["scored"]


def test_gate_refuses_a_deliberately_worse_model_and_keeps_the_champion(repro):
    """Negative control (labels permuted) with real gates: refused, champion unchanged. Runs last: it
    changes the project's params."""
    project, env = repro
    from mlflow import MlflowClient

    store = MlflowClient(f"sqlite:///{project}/mlflow.db")
    before = str(store.get_model_version_by_alias("severe-crs", "champion").version)
    path = project / "params.yaml"
    p = yaml.safe_load(path.read_text())
    p["train"]["negative_control"] = True
    p["register"]["gates"] = {"min_auroc_ci_low": 0.55, "calibration_slope_range": [0.7, 1.3],
                              "max_auroc_drop_vs_champion": 0.02}
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "promotion gate: REFUSED" in run.stdout
    after = json.loads((project / "data/registration.json").read_text())
    assert after["gate"]["decision"] == "refused" and after["champion_version"] == before
    assert after["version"] != before and after["aliases"] == ["challenger"]
    assert str(store.get_model_version_by_alias("severe-crs", "champion").version) == before
