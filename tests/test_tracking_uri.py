"""The project's MLflow store survives `dvc exp run --temp` / `--queue` (issue 17): those run the
pipeline in a copy under `.dvc/tmp/exps/` that is deleted afterwards, so a store resolved from the
working directory would be thrown away with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crs_settings import artifact_root, experiment_origin, tracking_uri


def test_a_project_logs_to_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # what plain `dvc repro` exports
    assert tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_an_experiment_workspace_logs_to_the_repository_it_came_from(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = tmp_path / "repo"
    workspace = repo / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    workspace.mkdir(parents=True)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    assert experiment_origin(workspace) == repo.resolve()
    assert tracking_uri(workspace) == f"sqlite:///{repo.resolve()}/mlflow.db"
    assert artifact_root(workspace) == repo.resolve() / "mlartifacts"
    monkeypatch.delenv("DVC_ROOT")  # the layout alone says the same (a command run by hand in the copy)
    assert tracking_uri(workspace) == f"sqlite:///{repo.resolve()}/mlflow.db"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "elsewhere"))  # a DVC_ROOT that does not contain it
    assert experiment_origin(workspace) == repo.resolve()


STAGE = """
import os, sys
from pathlib import Path
from crs_settings import project_root, tracking_uri
Path(os.environ["CRS_TEST_OUT"]).write_text(
    "\\n".join([str(project_root()), tracking_uri(), os.environ.get("DVC_EXP_NAME", ""),
               os.environ.get("DVC_EXP_BASELINE_REV", "")]))
Path("marker.txt").write_text("ran")
"""


def test_dvc_exp_run_temp_resolves_the_original_repository(tmp_path):
    """A real `dvc exp run --temp` (installed DVC) in a temporary git repository: the stage runs in
    DVC's temporary copy, and the tracking URI it resolves is the original repository's store."""
    repo = tmp_path / "repo"
    repo.mkdir()
    out = tmp_path / "resolved.txt"
    (repo / "params.yaml").write_text("register:\n  experiment: x\n")
    (repo / "stage.py").write_text(STAGE)
    (repo / "dvc.yaml").write_text(f"stages:\n  log:\n    cmd: {sys.executable} stage.py\n    deps: [stage.py]\n"
                                   "    params: [register]\n    outs: [marker.txt]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CRS_PROJECT_ROOT", "MLFLOW_TRACKING_URI", "DVC_ROOT")}
    env |= {"CRS_TEST_OUT": str(out), "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(sys.executable).parent / "dvc")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "config", "core.analytics", "false"],
                ["git", "add", "-A"], [*git, "commit", "-qm", "project"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    done = subprocess.run([dvc, "exp", "run", "--temp", "-n", "probe-exp"], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    root, uri, name, baseline = out.read_text().split("\n")
    assert f"{repo.resolve()}/.dvc/tmp/exps/" in root  # the stage really ran in DVC's temporary copy
    assert uri == f"sqlite:///{repo.resolve()}/mlflow.db"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert name == "probe-exp" and baseline == head
