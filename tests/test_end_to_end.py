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
    p["pretrain"]["patients"] = 600          # the stage's output is not copied: a small prior is rebuilt here
    p["pretrain"]["xgboost"]["n_estimators"] = 60
    p["evaluate"]["n_bootstrap"] = 20
    p["claim"].update(repeats=2, folds=3, n_rounds=30, n_bootstrap=50)
    p["explain"]["max_rows"] = 200
    # a tiny cohort has wide CIs: loose absolute gates here; the negative-control test tightens them
    p["register"]["gates"] = {"min_auroc_ci_low": 0.0, "calibration_slope_range": [0.0, 10.0],
                              "max_auroc_drop_vs_champion": 0.05, "min_comparison_events": 5}
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
    metrics = json.loads((project / "data/metrics_full.json").read_text())
    head = json.loads((project / "data/metrics.json").read_text())
    assert head["model"]["auroc"] == round(metrics["pooled"]["xgb_kinetics.auroc"], 4)
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
    assert {"data/metrics.json", "data/metrics_full.json"} <= {o["path"] for o in first["evaluate"]["outs"]}


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
    # issue 17: an evaluation run in MLflow, linked to the model version it evaluated
    from mlflow import MlflowClient

    uri = f"sqlite:///{project}/mlflow.db"
    store = MlflowClient(uri, registry_uri=uri)
    champion = store.get_model_version_by_alias("severe-crs", "champion")
    runs = store.search_runs([store.get_experiment_by_name("crs-predict").experiment_id],
                             "tags.`crs.kind` = 'external_evaluation'")
    assert len(runs) == 1 and runs[0].data.tags["model.version"] == str(champion.version)
    assert abs(runs[0].data.metrics["pooled/auroc"] - pooled["xgb_kinetics.auroc"]) < 1e-12
    (evaluated,) = runs[0].inputs.dataset_inputs
    assert evaluated.dataset.name == "external: c" and {t.value for t in evaluated.tags} == {"evaluation"}
    linked = store.get_run(runs[0].info.run_id).inputs.model_inputs  # (search_runs leaves them out)
    assert [m.model_id for m in linked] == [champion.source.removeprefix("models:/")]
    logged = store.get_logged_model(linked[0].model_id)  # the model's own page shows the external metrics
    assert {m.run_id for m in logged.metrics if m.key == "pooled/auroc"} >= {runs[0].info.run_id}
    assert not any("predictions" in a.path for a in store.list_artifacts(runs[0].info.run_id))


def test_pyfunc_on_raw_labs_equals_the_training_pipeline(repro):
    """Same patients: the registered pyfunc fed canonical labs + events + the CRS grade course gives the
    probabilities the pipeline computes from its own feature matrix with the same model (current_grade
    on by default: the grades reach the pyfunc as grade rows), and the same already-severe rows."""
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
assert cohort.grades is not None and "current_grade" in bundle.features.get_feature_names_out()
out = model.predict(to_model_input(pick(cohort.labs), pick(cohort.patients), pick(cohort.events),
                                   grades=pick(cohort.grades)),
                    params={{"landmarks": "24,48,72,96"}})
matrix = pd.read_parquet("{project}/data/features/landmarks.parquet")
mine = matrix[matrix["patient_id"].isin(ids)]
assert mine["current_grade"].notna().all() and (mine["current_grade"] > 0).any()
severe = mine.loc[mine["outcome_status"] == "already_severe", ["patient_id", "landmark_hours"]]
assert len(severe) and (severe.merge(out, on=["patient_id", "landmark_hours"])["status"] == "already_severe").all()
rows = mine[mine["eligible"]]
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


def _store(project: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{project}/mlflow.db"
    return MlflowClient(uri, registry_uri=uri)


def test_the_mlflow_run_and_version_read_well(repro, tmp_path):
    """Issue 17: experiment kind, run name and description, datasets with DVC hashes, headline metric
    keys (not ~600), the version's description and tags; a committed project is not "dirty"."""
    project, _ = repro
    store = _store(project)
    experiment = store.get_experiment_by_name("crs-predict")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    mv = max(store.search_model_versions("name='severe-crs'"), key=lambda v: int(v.version))
    run = store.get_run(mv.run_id)
    registered = json.loads(Path(store.download_artifacts(run.info.run_id, "registration.json", str(tmp_path)))
                            .read_text())
    assert run.info.run_name.startswith("dvc repro · simulated 300 patients") and run.info.status == "FINISHED"
    assert "SYNTHETIC" in run.data.tags["mlflow.note.content"]
    metrics = run.data.metrics
    assert 40 <= len(metrics) <= 80 and {"pooled/auroc", "pooled/auroc_ci_low", "24h/calibration_slope"} <= set(metrics)
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    digests = {d.dataset.digest: {t.value for t in d.tags} for d in run.inputs.dataset_inputs}
    features_md5 = next(o["md5"] for o in lock["featurize"]["outs"])
    assert digests[features_md5] == {"training"} and len(digests) == 2
    assert run.data.tags["git_dirty"] == "false" and "cohort.path" not in run.data.tags
    artifacts = {a.path for a in store.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "metrics_table.csv", "gate_decision.json", "model_card.md"} <= artifacts
    assert mv.description.startswith("**Gate decision:") and "# Model card" in mv.description
    assert mv.tags["gate.decision"] == registered["gate"]["decision"] and mv.tags["cohort.synthetic"] == "true"
    assert mv.tags["git_commit"] == run.data.tags["git_commit"] and float(mv.tags["metric.auroc"]) > 0.5
    # the candidate family that won (issue 14): in metrics_full.json, the model card and the run and version tags
    meta = json.loads((project / "data/model/meta.json").read_text())
    selection = json.loads((project / "data/metrics_full.json").read_text())["selection"]
    assert selection["final_family"] == meta["family"] == run.data.tags["model.family"] == mv.tags["model.family"]
    assert len(selection["family_per_outer_fold"]) == meta["n_folds"]
    assert f"Final model: **{meta['family']}**" in (project / "data/model_card.md").read_text()
    assert mv.tags["dvc.cohort"].endswith(next(o["md5"] for o in lock["ingest"]["outs"]))
    assert "Model card" in store.get_registered_model("severe-crs").description


def _register(project: Path, env: dict[str, str], *faults: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.registry_faults", *faults, "--", "register"], cwd=project,
                          env=env, capture_output=True, text=True)


def _set_gates(project: Path, **gates) -> str:
    path = project / "params.yaml"
    original = path.read_text()
    p = yaml.safe_load(original)
    p["register"]["gates"].update(gates)
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return original


CLIENT = "mlflow.tracking.client:MlflowClient"


def test_a_transient_registry_error_never_promotes_a_refused_challenger(repro, tmp_path):
    """Issue 15.1: `get_model_version_by_alias` raising "database is locked" during register used to
    promote a challenger refused a moment earlier ("no current champion: nothing to compare against").
    Now register stops with one line, exit 2, and nothing changes."""
    project, env = repro
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**env, "MLFLOW_TRACKING_URI": uri}
    from mlflow import MlflowClient

    store = MlflowClient(uri, registry_uri=uri)
    assert "PROMOTED" in _register(project, env).stdout
    original = _set_gates(project, max_auroc_drop_vs_champion=-0.01)  # must beat the champion by 0.01
    try:
        refused = _register(project, env)
        assert "promotion gate: REFUSED" in refused.stdout, refused.stdout + refused.stderr[-2000:]
        runs = len(store.search_runs([store.get_experiment_by_name("crs-predict").experiment_id]))
        locked = "(sqlite3.OperationalError) database is locked"
        faulty = _register(project, env, "--raise", f"{CLIENT}.get_model_version_by_alias@*@INTERNAL_ERROR@{locked}",
                           "--raise", f"{CLIENT}.get_registered_model@*@INTERNAL_ERROR@{locked}")
    finally:
        (project / "params.yaml").write_text(original)
    assert faulty.returncode == 2 and "database is locked" in faulty.stderr, faulty.stdout + faulty.stderr[-3000:]
    assert "Traceback" not in faulty.stderr and "PROMOTED" not in faulty.stdout
    assert str(store.get_model_version_by_alias("severe-crs", "champion").version) == "1"
    assert len(store.search_model_versions("name='severe-crs'")) == 2
    assert len(store.search_runs([store.get_experiment_by_name("crs-predict").experiment_id])) == runs


def test_a_killed_registration_leaves_no_ungated_alias_and_no_running_run(repro, tmp_path):
    """Issue 15.3: the challenger alias was set before the gate ran, and a killed register left an
    ungated version and a run stuck RUNNING. Killed right after its first alias move, the version
    already carries its gate decision; the next registration marks the dead run FAILED."""
    project, env = repro
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**env, "MLFLOW_TRACKING_URI": uri}
    from mlflow import MlflowClient

    store = MlflowClient(uri, registry_uri=uri)
    killed = _register(project, env, "--kill-after", f"{CLIENT}.set_registered_model_alias@1")
    assert killed.returncode == -9, killed.stderr[-3000:]
    model = store.get_registered_model("severe-crs")
    assert model.aliases, "the kill came after an alias move"
    for version in model.aliases.values():
        assert store.get_model_version("severe-crs", str(version)).tags.get("gate.decision") in ("promoted", "refused")
    experiment = store.get_experiment_by_name("crs-predict").experiment_id
    (dead,) = store.search_runs([experiment], "attributes.status = 'RUNNING'")
    again = _register(project, env)
    assert again.returncode == 0 and "marked FAILED" in again.stdout, again.stdout + again.stderr[-3000:]
    assert not store.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert store.get_run(dead.info.run_id).info.status == "FAILED"


def test_dvc_exp_run_temp_registers_into_the_project_store(repro):
    """Issue 17: `dvc exp run --temp` ran register in DVC's temporary copy, whose mlflow.db was
    deleted with it. The experiment's run and version must land in the project's store."""
    project, env = repro
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    for cmd in (["git", "add", "-A"], [*git, "commit", "-qm", "pipeline outputs"]):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    store = _store(project)
    before = len(store.search_model_versions("name='severe-crs'"))
    dvc = str(Path(sys.executable).parent / "dvc")
    done = subprocess.run([dvc, "exp", "run", "--temp", "-n", "gate-003", "-S",
                           "register.gates.max_auroc_drop_vs_champion=0.03"], cwd=project, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    versions = store.search_model_versions("name='severe-crs'")
    assert len(versions) == before + 1
    newest = max(versions, key=lambda mv: int(mv.version))
    run = store.get_run(newest.run_id)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True).stdout.strip()
    assert run.data.tags["dvc.exp.name"] == "gate-003" and run.data.tags["dvc.exp.baseline_rev"] == head
    assert run.info.run_name.startswith("gate-003 · ") and newest.tags["dvc.exp.name"] == "gate-003"
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    files = mlflow.artifacts.list_artifacts(artifact_uri=f"models:/severe-crs/{newest.version}")
    assert "MLmodel" in {f.path for f in files}  # the model's files outlived DVC's temporary copy
    assert not list((project / ".dvc" / "tmp").rglob("mlflow.db"))


def test_a_site_mix_change_is_decided_on_the_absolute_gates(repro):
    """Issue 18: changing only simulate.site_mix re-measures the same simulated people. The old gate
    scored the champion on patients it was trained on and refused the challenger on that optimistic
    number; now those patients are excluded, no fair comparison remains, and the gates say so."""
    project, env = repro
    path = project / "params.yaml"
    p = yaml.safe_load(path.read_text())
    p["simulate"]["site_mix"] = {"research": 0.1, "send_out": 0.3, "community": 0.6}
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "no fair comparison possible" in run.stdout
    registered = json.loads((project / "data/registration.json").read_text())
    vs = registered["gate"]["checks"]["vs_champion"]
    import pandas as pd

    oof = pd.read_parquet(project / "data/oof/oof.parquet")
    assert vs["possible"] is False and vs["rows_used"] == 0 and vs["rows_excluded_overlap"] == len(oof)
    assert vs["patients_excluded_overlap"] == oof["patient_id"].nunique()
    mv = _store(project).get_model_version("severe-crs", registered["version"])
    assert mv.tags["gate.comparison"] == "no fair comparison possible"
    assert mv.tags["gate.rows_excluded_overlap"] == str(len(oof)) and mv.tags["gate.rows_used"] == "0"
    assert registered["gate"]["decision"] == "promoted"  # the (loose) absolute gates of this tiny project


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
                              "max_auroc_drop_vs_champion": 0.02, "min_comparison_events": 5}
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "promotion gate: REFUSED" in run.stdout
    after = json.loads((project / "data/registration.json").read_text())
    assert after["gate"]["decision"] == "refused" and after["champion_version"] == before
    assert after["version"] != before and after["aliases"] == ["challenger"]
    assert str(store.get_model_version_by_alias("severe-crs", "champion").version) == before
