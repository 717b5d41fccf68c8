"""Fault injection (issue 15, items 2 and 4): `crs ingest`, `crs simulate` and `crs featurize` killed
with SIGKILL at exact points, or racing each other, leave the old output or the new one, whole.

Each run happens in a child process (`python -m tests.faults`) that SIGKILLs itself at the N-th
call of a named function: no `finally`, no cleanup, exactly what `kill -9` or an OOM kill does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import MIX, ROOT

pytestmark = pytest.mark.slow  # child processes killed and raced (~2 min); tests/test_atomic.py has the fast ones

WRITE_TABLE = "pyarrow.parquet:ParquetWriter.write_table"  # every Parquet table written (pandas too)


def crs(*args: str, kill_before: str | None = None, kill_after: str | None = None, delay: str | None = None,
        env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "tests.faults"]
    for flag, spec in (("--kill-before", kill_before), ("--kill-after", kill_after), ("--delay", delay)):
        if spec:
            cmd += [flag, spec]
    proc = subprocess.Popen([*cmd, "--", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file of a folder by its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory):
    """Two different canonical cohorts (the `long` reader takes a canonical folder) and their ingests."""
    from cohorts.simulate import write_simulated_cohort
    from pipeline.cli import main

    base = tmp_path_factory.mktemp("inputs")
    refs = {}
    for name, seed, n in (("a", 1, 40), ("b", 2, 60)):
        write_simulated_cohort(base / name, n, seed, MIX)
        assert main(["ingest", "--format", "long", "--input", str(base / name), "--out", str(base / f"ref-{name}")]) == 0
        refs[name] = fingerprint(base / f"ref-{name}")
    return base, refs


@pytest.mark.parametrize("kill", [f"before:{WRITE_TABLE}@1", f"before:{WRITE_TABLE}@2",
                                  f"before:{WRITE_TABLE}@4", "after:cohorts.atomic:_exchange@1",
                                  "before:cohorts.atomic:_exchange@1"])
def test_killed_ingest_while_overwriting_leaves_the_old_cohort_or_the_new_one(tmp_path, two_inputs, kill):
    from pipeline.cli import main

    base, refs = two_inputs
    out = tmp_path / "cohort"
    shutil.copytree(base / "ref-a", out)  # cohort a, as `crs ingest` wrote it
    when, _, target = kill.partition(":")
    code, _, err = crs("ingest", "--format", "long", "--input", str(base / "b"), "--out", str(out),
                       **{f"kill_{when}": target})
    assert code == -9, err  # killed where asked (the function exists and was reached)
    assert fingerprint(out) in (refs["a"], refs["b"]), "a mixture of two cohorts"
    assert main(["ingest", "--format", "long", "--input", str(base / "b"), "--out", str(out)]) == 0
    assert fingerprint(out) == refs["b"]
    assert leftovers(out) == [], "stale temporaries of the killed run were not cleaned"


@pytest.fixture(scope="module")
def simulated_refs(tmp_path_factory):
    from pipeline.cli import main

    base = tmp_path_factory.mktemp("sim-refs")
    refs = {}
    for seed in (1, 2):
        assert main(["simulate", "--patients", "50", "--seed", str(seed), "--out", str(base / str(seed))]) == 0
        refs[seed] = fingerprint(base / str(seed))
    return base, refs


@pytest.mark.parametrize("kill", [f"before:{WRITE_TABLE}@2", f"before:{WRITE_TABLE}@4",
                                  "after:cohorts.atomic:_exchange@1"])
def test_killed_simulate_while_overwriting_leaves_the_old_cohort_or_the_new_one(tmp_path, simulated_refs, kill):
    from pipeline.cli import main

    base, refs = simulated_refs
    out = tmp_path / "sim"
    shutil.copytree(base / "1", out)  # the seed-1 cohort, as `crs simulate` wrote it
    when, _, target = kill.partition(":")
    code, _, err = crs("simulate", "--patients", "50", "--seed", "2", "--out", str(out), **{f"kill_{when}": target})
    assert code == -9, err
    assert fingerprint(out) in (refs[1], refs[2]), "a mixture of two cohorts"
    assert main(["simulate", "--patients", "50", "--seed", "2", "--out", str(out)]) == 0
    assert fingerprint(out) == refs[2]
    assert leftovers(out) == []


def _project(tmp_path: Path, read_chunk_patients: int) -> Path:
    """A project folder whose params read the cohort in small chunks (many writes per run)."""
    project = tmp_path / "project"
    project.mkdir()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["featurize"]["read_chunk_patients"] = read_chunk_patients
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    return project


def test_two_concurrent_featurize_runs_never_leave_an_unreadable_file(tmp_path, small_cohort, monkeypatch):
    from cohorts.io import Cohort, write_cohort
    from pipeline.cli import main

    keep = small_cohort.patients["patient_id"].head(100)
    cohort = Cohort(small_cohort.labs[small_cohort.labs["patient_id"].isin(keep)],
                    small_cohort.patients[small_cohort.patients["patient_id"].isin(keep)],
                    small_cohort.events[small_cohort.events["patient_id"].isin(keep)], {})
    write_cohort(cohort, tmp_path / "cohort")
    env = {"CRS_PROJECT_ROOT": str(_project(tmp_path, 20))}
    args = ("featurize", "--cohort", str(tmp_path / "cohort"), "--landmarks", "24,48", "--out")
    monkeypatch.setenv("CRS_PROJECT_ROOT", env["CRS_PROJECT_ROOT"])
    assert main([*args, str(tmp_path / "reference.parquet")]) == 0
    reference = pd.read_parquet(tmp_path / "reference.parquet")
    out = tmp_path / "features.parquet"
    runs = [crs(*args, str(out), env=env, delay="features.transformer:KineticFeatures.build@0.1", wait=False)
            for _ in range(2)]
    results = [(p.communicate(timeout=300)[1], p.returncode)[::-1] for p in runs]
    assert [code for code, _ in results] == [0, 0], results
    pd.testing.assert_frame_equal(pd.read_parquet(out), reference)
    assert leftovers(out) == []


def test_two_concurrent_ingests_leave_one_whole_cohort(tmp_path, two_inputs):
    base, refs = two_inputs
    out = tmp_path / "cohort"
    delay = "cohorts.ingest.stream:harmonise_chunk@0.5"
    runs = [crs("ingest", "--format", "long", "--input", str(base / name), "--out", str(out), "--chunk-rows", "500",
                delay=delay, wait=False) for name in ("a", "b")]
    results = [(p.communicate(timeout=300)[1], p.returncode)[::-1] for p in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert same_content(out, base / "ref-a") or same_content(out, base / "ref-b")  # chunk size: other row groups
    assert leftovers(out) == []


def same_content(a: Path, b: Path) -> bool:
    """The same files holding the same tables and text (not necessarily the same bytes)."""
    names = sorted(p.name for p in a.iterdir())
    if names != sorted(p.name for p in b.iterdir()):
        return False
    return all(pd.read_parquet(a / n).equals(pd.read_parquet(b / n)) if n.endswith(".parquet")
               else (a / n).read_text() == (b / n).read_text() for n in names)
