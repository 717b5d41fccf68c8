"""The registry under faults (issue 15 items 1, 3, 7): transient store errors, crashes between the
alias move and the history tag, two racing `crs models promote`, an unreachable store, unknown
versions and aliases, missing model files. A real sqlite MLflow store per test (copied from one
template: creating the schema costs ~10 s), model versions whose "model" is a folder with an
MLmodel file (the registry only needs the files to exist)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
NAME = "severe-crs"  # params register.model_name
CLIENT = "mlflow.tracking.client:MlflowClient"


def _version_folder(base: Path, version: int) -> Path:
    folder = base / "models" / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    return folder


@pytest.fixture(scope="session")
def store_template(tmp_path_factory) -> Path:
    from mlflow import MlflowClient

    base = tmp_path_factory.mktemp("registry-template")
    uri = f"sqlite:///{base}/mlflow.db"
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model(NAME)
    for version in (1, 2, 3):
        client.create_model_version(NAME, source=_version_folder(base, version).as_uri())
    return base


@pytest.fixture
def store(store_template, tmp_path, monkeypatch):
    """A store with versions 1-3 and no alias; MLFLOW_TRACKING_URI points at it."""
    from mlflow import MlflowClient

    shutil.copy(store_template / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri, MlflowClient(uri, registry_uri=uri)  # explicit: MlflowClient(uri) reuses a global registry URI


def _champion(client) -> str | None:
    version = (client.get_registered_model(NAME).aliases or {}).get("champion")
    return str(version) if version is not None else None


def _history(client) -> list[str]:
    return [v for v in client.get_registered_model(NAME).tags.get("champion_history", "").split(",") if v]


def _crs(*args: str, env: dict[str, str], timeout: float = 120, faults: tuple[str, ...] = ()):
    cmd = [sys.executable, "-m", "tests.registry_faults", *faults, "--", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _env(uri: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": uri, "CRS_PROJECT_ROOT": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}


def _one_clear_line(err: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("crs:")]
    assert "Traceback" not in err and len(lines) == 1, err


# ----------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("method", ["get_model_version_by_alias", "get_registered_model"])
def test_a_transient_store_error_is_never_read_as_no_champion(store, monkeypatch, capsys, method):
    """Issue 15.1: a "database is locked" while reading the champion used to read as "no alias" /
    "no model" (and let `register` promote without comparison). It must stop with that error."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    _, client = store
    assert main(["models", "promote", "--version", "1"]) == 0
    capsys.readouterr()

    def locked(*args, **kwargs):
        raise MlflowException("(sqlite3.OperationalError) database is locked", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(MlflowClient, method, locked)
    code = main(["models", "show"])
    out, err = capsys.readouterr()
    assert "has no alias" not in err and "No registered model" not in err
    if code == 0:  # the failing call is not needed to read the champion: the right answer
        assert f"{NAME} version 1 " in out
    else:
        assert code == 2 and "database is locked" in err, err
        _one_clear_line(err)


# ----------------------------------------------------------------------------- item 3


class Crash(BaseException):
    """Stands for the process dying at this exact point (nothing after it runs in the registry)."""


def _crash_at(monkeypatch, method: str, n: int, after: bool = False) -> None:
    from mlflow import MlflowClient

    real = getattr(MlflowClient, method)
    calls = {"n": 0}

    def wrapper(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n and not after:
            raise Crash(method)
        result = real(self, *args, **kwargs)
        if calls["n"] == n and after:
            raise Crash(method)
        return result

    monkeypatch.setattr(MlflowClient, method, wrapper)


@pytest.mark.parametrize(("method", "n", "after"), [
    ("set_registered_model_alias", 1, False),   # before the alias moves
    ("set_registered_model_alias", 1, True),    # right after the alias moved
    ("set_registered_model_tag", 1, False),     # before the first tag write
    ("set_registered_model_tag", 1, True),
    ("set_registered_model_tag", 2, False),
    ("delete_registered_model_tag", 1, False),  # history written, journal not yet cleared
])
def test_a_crash_during_promote_leaves_history_and_alias_agreeing(store, capsys, method, n, after):
    """Issue 15.3: a crash between the alias move and the history tag used to leave them
    disagreeing; `rollback` then went to the wrong version. Whatever point the crash hits, the
    next command sees the champion the alias shows, and rollback returns to the one before it."""
    _, client = store
    for version in ("1", "2"):
        assert main(["models", "promote", "--version", version]) == 0
    with pytest.MonkeyPatch.context() as mp:
        _crash_at(mp, method, n, after)
        with pytest.raises(Crash):
            main(["models", "promote", "--version", "3"])
    visible = _champion(client)
    assert visible in ("2", "3")
    assert main(["models", "list"]) == 0  # every read checks the history against the alias
    assert _history(client)[-1] == visible
    assert main(["models", "rollback"]) == 0
    assert _champion(client) == {"3": "2", "2": "1"}[visible]
    assert _history(client)[-1] == _champion(client)
    capsys.readouterr()


def test_a_hard_kill_between_alias_move_and_history_is_repaired(store):
    """Issue 15.3 with a real kill -9 (no cleanup at all) right after the alias moved."""
    uri, client = store
    for version in ("1", "2"):
        assert main(["models", "promote", "--version", version]) == 0
    killed = _crs("models", "promote", "--version", "3", env=_env(uri),
                  faults=("--kill-after", f"{CLIENT}.set_registered_model_alias@1"))
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _champion(client) == "3"
    assert main(["models", "list"]) == 0
    assert _history(client) == ["1", "2", "3"]
    assert main(["models", "rollback"]) == 0 and _champion(client) == "2"


def test_two_racing_promotes_are_serialised(store, tmp_path):
    """Issue 15.3: two `crs models promote` at once used to leave alias and history disagreeing.
    Both processes meet at their first registry read, then one is slowed before the alias move and
    the other before the history write: without serialisation the history ends at the version the
    alias does not point to."""
    uri, client = store
    env = _env(uri)
    assert main(["models", "promote", "--version", "1"]) == 0
    barrier = f"{CLIENT}.get_registered_model@{tmp_path / 'barrier'}@2"
    procs = [
        subprocess.Popen([sys.executable, "-m", "tests.registry_faults", "--barrier", barrier,
                          "--delay", f"{CLIENT}.set_registered_model_tag@1.5", "--", "models", "promote",
                          "--version", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True),
        subprocess.Popen([sys.executable, "-m", "tests.registry_faults", "--barrier", barrier,
                          "--delay", f"{CLIENT}.set_registered_model_alias@0.7", "--", "models", "promote",
                          "--version", "3"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True),
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    history = _history(client)
    assert history[-1] == _champion(client), (history, _champion(client))
    assert sorted(history[1:]) == ["2", "3"] and history[0] == "1"


# ----------------------------------------------------------------------------- item 7 and CLI


def test_unknown_version_and_alias_are_one_line_exit_2(store, capsys):
    """Issue 17 CLI / 15.7: `crs models promote --version 99` printed a traceback."""
    _, client = store
    assert main(["models", "promote", "--version", "99"]) == 2
    err = capsys.readouterr().err
    assert "no version 99" in err
    _one_clear_line(err)
    assert main(["models", "show", "--alias", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no alias 'nope'" in err
    _one_clear_line(err)
    assert main(["models", "list", "--name", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "No registered model 'no-such-model'" in err and "unreachable" not in err
    _one_clear_line(err)
    assert _champion(client) is None


def test_promote_refuses_a_version_whose_files_are_missing(store, tmp_path, capsys):
    """Issue 15.7: promoting onto a version whose artifacts were deleted was accepted."""
    _, client = store
    assert main(["models", "promote", "--version", "1"]) == 0
    gone = _version_folder(tmp_path, 4)
    client.create_model_version(NAME, source=gone.as_uri())
    shutil.rmtree(gone)
    capsys.readouterr()
    assert main(["models", "promote", "--version", "4"]) == 2
    err = capsys.readouterr().err
    assert "files are missing" in err
    _one_clear_line(err)
    assert _champion(client) == "1"


def test_loading_a_champion_whose_files_were_deleted_says_so(store, tmp_path):
    """Issue 15.7: the error was "No such artifact: ''"."""
    from scoring.batch import ScoringError, load_model

    _, client = store
    gone = _version_folder(tmp_path, 4)
    client.create_model_version(NAME, source=gone.as_uri())
    client.set_registered_model_alias(NAME, "champion", "4")
    shutil.rmtree(gone)
    with pytest.raises(ScoringError, match="files are missing"):
        load_model(f"models:/{NAME}@champion")
    with pytest.raises(ScoringError, match="no alias 'nope'"):
        load_model(f"models:/{NAME}@nope")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_store_fails_fast_with_one_line_naming_it(tmp_path):
    """Issue 15.7: with the store down, `crs models list` said "No registered model ... run make run
    first" after ~250 s of retries, and `crs score` was silent as long."""
    uri = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in _env(uri).items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    start = time.monotonic()
    listed = _crs("models", "list", env=env, timeout=90)
    assert listed.returncode == 2, listed.stderr[-2000:]
    assert "unreachable" in listed.stderr and uri in listed.stderr and "No registered model" not in listed.stderr
    _one_clear_line(listed.stderr)
    assert main(["simulate", "--patients", "3", "--seed", "1", "--out", str(tmp_path / "c")]) == 0
    scored = _crs("score", "--cohort", str(tmp_path / "c"), "--model", f"models:/{NAME}@champion", "--landmarks",
                  "24", "--out", str(tmp_path / "s.csv"), env=env, timeout=90)
    assert scored.returncode == 2 and "unreachable" in scored.stderr and uri in scored.stderr, scored.stderr[-2000:]
    _one_clear_line(scored.stderr)
    assert time.monotonic() - start < 80  # each process fails within seconds (was ~250 s each)


def test_register_with_the_store_down_fails_fast_before_any_work(tmp_path, monkeypatch, capsys):
    """Issue 15.7: `dvc repro` register printed five chained tracebacks after ~256 s."""
    root = _project(tmp_path, {"synthetic": True, "source": "simulated"})  # no stage outputs at all
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("CRS_PROJECT_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    start = time.monotonic()
    assert main(["register"]) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and uri in err and time.monotonic() - start < 30
    _one_clear_line(err)


def test_a_missing_sqlite_store_is_not_created_by_reading_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/nowhere/mlflow.db")
    assert main(["models", "list"]) == 2
    assert "unreachable" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    assert main(["models", "list"]) == 2
    assert "No MLflow store" in capsys.readouterr().err and not (tmp_path / "mlflow.db").exists()


# ----------------------------------------------------------------------------- item 9, lineage


def _project(tmp_path: Path, provenance: dict) -> Path:
    root = tmp_path / "project"
    (root / "data" / "cohort").mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, root / name)
    (root / "data" / "cohort" / "provenance.json").write_text(json.dumps(provenance))
    return root


def test_lineage_tags_carry_no_machine_path(tmp_path):
    """Issue 15.9: the `cohort.path` tag recorded the folder path of the training cohort."""
    from crs_settings import load_params
    from pipeline.register import lineage_tags

    root = _project(tmp_path, {"synthetic": False, "source": "long", "path": "/secret/site/cohort",
                               "patients_file": "/secret/site/cohort/patients.csv"})
    tags = lineage_tags(root, load_params(root))
    assert tags["cohort.source"] == "long"
    assert not any("/secret" in str(v) for v in tags.values()), tags


def test_git_dirty_ignores_what_the_pipeline_writes(tmp_path):
    """Issue 17: `git_dirty: true` on every run of a fresh clone (dvc.lock, metrics, plots rewritten)."""
    from crs_settings import load_params
    from pipeline.register import lineage_tags

    root = _project(tmp_path, {"synthetic": True, "source": "simulated"})
    (root / "dvc.lock").write_text("schema: '2.0'\n")
    (root / "data" / "metrics.json").write_text("{}\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "data" / "metrics.json").write_text('{"pooled": {}}\n')
    (root / "data" / "plots").mkdir()
    (root / "data" / "plots" / "roc.csv").write_text("fpr,tpr\n")
    assert lineage_tags(root, load_params(root))["git_dirty"] == "false"
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\n# edited\n")
    assert lineage_tags(root, load_params(root))["git_dirty"] == "true"


def test_the_logged_input_example_is_simulated_whatever_the_cohort():
    """Issue 15.9: the example held the first two training patients' full series, age, therapy."""
    from crs_settings import load_params
    from models.model_input import COLUMNS, synthetic_example

    settings = load_params()["register"]["input_example"]
    example = synthetic_example(dict(settings["therapy_mix"]), int(settings["patients"]), int(settings["seed"]))
    again = synthetic_example(dict(settings["therapy_mix"]), int(settings["patients"]), int(settings["seed"]))
    assert example.equals(again) and list(example.columns) == COLUMNS
    assert sorted(set(example["patient_id"])) == ["EXAMPLE-1", "EXAMPLE-2"]
    assert (example["analyte"] != "").sum() > 10
    assert set(example["therapy"]) <= set(settings["therapy_mix"])
