"""The `ingest` DVC stage: simulated by default, or a real cohort chosen in params.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_end_to_end import _copy_repo, _env

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).parent / "fixtures"


def _repro(project: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", *targets], cwd=project,
                          env=_env(project), capture_output=True, text=True)


@pytest.fixture()
def project(tmp_path):
    project = tmp_path / "repo"
    project.mkdir()
    _copy_repo(project)
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["simulate"]["patients"] = 50
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = _env(project)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=project, env=env, check=True)
    return project


def test_ingest_stage_defaults_to_the_simulated_cohort(project):
    run = _repro(project, "ingest")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    v = json.loads((project / "data/cohort/validation.json").read_text())
    assert v["rows_in"] == v["rows_out"] + v["rows_quarantined"] and v["rows_in"] > 0
    prov = json.loads((project / "data/cohort/provenance.json").read_text())
    assert prov["synthetic"] is True and prov["ingest"]["input"] == "data/simulated"
    assert (project / "data/cohort/quarantine.parquet").exists()


def test_ingest_stage_reads_a_real_cohort_from_params(project):
    p = yaml.safe_load((project / "params.yaml").read_text())
    p["ingest"].update({"source": "path", "path": str(FIXTURES / "sdtm"), "format": "sdtm"})
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    run = _repro(project, "ingest")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    prov = json.loads((project / "data/cohort/provenance.json").read_text())
    assert prov["synthetic"] is False and prov["source"] == "sdtm" and prov["path"].endswith("sdtm")
    v = json.loads((project / "data/cohort/validation.json").read_text())
    assert (v["rows_in"], v["rows_out"]) == (13, 7)
