"""The command line as a user meets it: from any folder, and installed from a wheel (not the checkout)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _outside_env() -> dict[str, str]:
    """A user's shell: no project pointers, the venv's commands on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRS_PROJECT_ROOT", "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_simulate_and_featurize_from_another_folder_use_the_packaged_params(tmp_path):
    import yaml

    env = _outside_env()
    done = subprocess.run([str(BIN / "crs"), "simulate", "--patients", "400", "--seed", "11", "--out", "cohort"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "packaged default params" in done.stderr  # it says which configuration it used
    mix = yaml.safe_load((ROOT / "params.yaml").read_text())["simulate"]["therapy_mix"]
    therapies = pd.read_parquet(tmp_path / "cohort" / "patients.parquet")["indication"].value_counts(normalize=True)
    assert set(therapies.index) == {k for k, v in mix.items() if v > 0}
    for name, share in mix.items():
        assert abs(therapies.get(name, 0.0) - share) < 0.08, (name, therapies.to_dict())
    done = subprocess.run([str(BIN / "crs"), "featurize", "--cohort", "cohort", "--out", "f.parquet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    landmarks = yaml.safe_load((ROOT / "params.yaml").read_text())["featurize"]["landmarks_hours"]
    matrix = pd.read_parquet(tmp_path / "f.parquet")
    assert sorted(matrix["landmark_hours"].unique()) == [float(x) for x in landmarks.split(",")]
    assert not (tmp_path / "mlflow.db").exists()


def test_registry_commands_outside_a_project_say_what_is_missing(tmp_path):
    done = subprocess.run([str(BIN / "crs"), "models", "list"], cwd=tmp_path, env=_outside_env(),
                          capture_output=True, text=True)
    assert done.returncode == 2 and "MLFLOW_TRACKING_URI" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "mlflow.db").exists()


def _source_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if (ROOT / rel).is_file() and (not rel.startswith("data/") or rel.startswith("data/reference/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_runs_simulate_and_ingest(tmp_path):
    """Build the wheel, install it (no deps) into a fresh venv, run the CLI from a folder that is not
    a project: every subpackage and the packaged defaults must be inside the wheel."""
    src = tmp_path / "src"
    _source_copy(src)
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(wheels.glob("crs_predict-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _outside_env()
    # third-party dependencies from this test's environment; the project's code only from the wheel
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    crs = str(venv / "bin" / "crs")

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
        return done

    where = run(str(venv / "bin" / "python"), "-c",
                "import cohorts.ingest.sdtm, scoring.batch, crs_settings as s; "
                "print(cohorts.ingest.sdtm.__file__); print(s.defaults_dir())").stdout.split()
    assert all(str(venv) in w for w in where), where
    assert "simulate" in run(crs, "--help").stdout
    run(crs, "simulate", "--patients", "40", "--seed", "2", "--out", "cohort")
    assert pd.read_parquet(work / "cohort" / "patients.parquet")["therapy"].nunique() > 1
    run(crs, "ingest", "--format", "long", "--input", "cohort", "--out", "ingested")
    assert len(pd.read_parquet(work / "ingested" / "patients.parquet")) == 40
    assert (work / "ingested" / "validation.json").exists()
    assert sorted(p.name for p in work.iterdir()) == ["cohort", "ingested"]  # no stray mlflow.db
