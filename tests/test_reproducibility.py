"""A fresh clone reproduces the committed pipeline outputs byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_fresh_clone_dvc_repro_leaves_git_status_clean(tmp_path):
    """What `make run` does after installing (the install itself writes only .venv, which git ignores):
    `dvc repro` in a fresh clone of the committed tree. Every committed output (dvc.lock, metrics.json,
    plot data, the model card) must come out identical, so `git status` stays clean."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CRS_PROJECT_ROOT", "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro"], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True,
                            check=True).stdout
    diff = subprocess.run(["git", "diff"], cwd=clone, capture_output=True, text=True).stdout
    assert status == "", status + diff[:4000]
