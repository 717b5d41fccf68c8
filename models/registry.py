"""The model registry (MLflow aliases, not stages): connecting, reading and changing aliases safely.

Rules every command follows (`register`, `crs models`, `crs score`/`evaluate` loading a model):

- Only MLflow's RESOURCE_DOES_NOT_EXIST means "absent"; a missing alias is read from the registered
  model's alias table, never inferred from an error. Any other failure (store locked, server down,
  permission, ...) stops with one line (:class:`RegistryError`, exit code 2) before anything changes.
- An unreachable store is told apart from a missing model (:class:`StoreUnreachable` names the URI);
  HTTP stores get a short timeout and few retries (params `register.store_timeout_seconds`,
  `register.store_max_retries`; MLflow's own MLFLOW_HTTP_REQUEST_* variables win when set).
- Alias moves are journaled: the intended change (from, to, the new history) is written as a
  registered-model tag before the alias moves and cleared after the history is written, so a crash
  at any point is detected and repaired on the next read (:meth:`Registry.state`), and the history
  always ends at the alias.
- Changes are serialised. Guarantee: with a sqlite store an OS file lock beside the database
  (`<db>.crs-lock`, flock) serialises every change made through this module on that machine; with
  a tracking server a lease tag on the registered model (written, then re-read after a settle
  time) serialises writers unless one stalls longer than the settle time between reading and
  writing the lease, and every change is re-read and verified after it is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from crs_settings import InputProblem

PACKAGES = ["crs_settings", "cohorts", "features", "models"]  # what the pyfunc imports
REQUIREMENTS = ["mlflow", "xgboost-cpu", "pandas", "numpy", "scikit-learn", "pyarrow", "pyyaml", "scipy"]
ABSENT = "RESOURCE_DOES_NOT_EXIST"
LOCK_TAG = "crs.registry_lock"
LEASE_SECONDS = 60.0
SETTLE_SECONDS = 0.5
PROCESS_TAGS = ("crs.host", "crs.pid", "crs.pid_start")


class RegistryError(InputProblem):
    """The registry cannot do what was asked; one line, exit code 2."""


class StoreUnreachable(RegistryError):
    """The tracking store does not answer (server down, wrong URI, unreadable database)."""


class NotInRegistry(RegistryError):
    """The store answers, and the model, version or alias asked for does not exist."""


def pinned_requirements() -> list[str]:
    """Exact versions of what the pyfunc imports (explicit, so MLflow does not infer `xgboost`)."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


# ----------------------------------------------------------------------------- errors

def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def is_absent(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == ABSENT


def is_unreachable(exc: BaseException) -> bool:
    """Connection-level failures anywhere in the exception chain (never a server's answer)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        text = str(exc)
        if name in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "MaxRetryError",
                    "NewConnectionError", "ConnectionRefusedError", "TimeoutError"):
            return True
        if any(s in text for s in ("Max retries exceeded", "Failed to establish a new connection",
                                   "Connection refused", "Read timed out", "unable to open database file")):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _caught() -> tuple[type[BaseException], ...]:
    import requests
    from mlflow.exceptions import MlflowException

    return (MlflowException, OSError, requests.exceptions.RequestException)


@contextlib.contextmanager
def registry_errors(uri: str, what: str) -> Iterator[None]:
    """Registry failures as one line: unreachable store, absent thing, or any other error."""
    try:
        yield
    except RegistryError:
        raise
    except _caught() as exc:
        if is_unreachable(exc):
            raise StoreUnreachable(f"MLflow tracking store unreachable at {uri} while {what}: {first_line(exc)}") from exc
        if is_absent(exc):
            raise NotInRegistry(f"{what}: not found in the MLflow store {uri} ({first_line(exc)})") from exc
        raise RegistryError(f"registry error at {uri} while {what}: {first_line(exc)}") from exc


# ----------------------------------------------------------------------------- connecting

def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def configure_http(settings: dict[str, Any] | None = None) -> tuple[float, int]:
    """Short timeout and few retries for HTTP stores unless the user set MLflow's own variables.
    `settings`: the `register` section of params.yaml. Returns (timeout s, retries) in force."""
    from crs_settings import load_params

    settings = settings if settings is not None else load_params().get("register", {})
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.get("store_timeout_seconds", 10))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(int(settings.get("store_max_retries", 1))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    return float(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]), int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])


def check_reachable(uri: str, timeout: float, must_exist: bool) -> None:
    """Fail fast, naming the URI: an HTTP store must answer (any HTTP status counts as an answer);
    a sqlite store's folder must exist, and its file too when `must_exist` (reading commands never
    create an empty store in passing)."""
    import urllib.error
    import urllib.request

    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout).close()  # noqa: S310
        except urllib.error.HTTPError:
            return  # it answered
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StoreUnreachable(f"MLflow tracking store unreachable at {uri}: {reason} (timeout {timeout:g} s; "
                                   "check the server or MLFLOW_TRACKING_URI)") from exc
        return
    path = sqlite_path(uri)
    if path is None:
        return
    if not path.parent.is_dir():
        raise StoreUnreachable(f"MLflow tracking store unreachable at {uri}: folder {path.parent} does not exist "
                               "(check MLFLOW_TRACKING_URI)")
    if must_exist and not path.is_file():
        raise NotInRegistry(f"No MLflow store at {uri} yet (no {path.name}): run `make run` (dvc repro) first, "
                            "or set MLFLOW_TRACKING_URI to the store that holds the model")


@dataclass
class AliasState:
    """An alias, the history of the versions it pointed at (last = current), and what was repaired."""

    alias: str
    version: str | None
    history: list[str] = field(default_factory=list)
    repaired: str = ""


def _history_tag(alias: str) -> str:
    return f"{alias}_history"


def _pending_tag(alias: str) -> str:
    return f"{alias}_pending"


def _parse_history(text: str | None) -> list[str]:
    return [v for v in (text or "").split(",") if v]


def _pid_start(pid: int) -> str:
    """Start time of a process (clock ticks since boot), to tell a live pid from a reused one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_tags() -> dict[str, str]:
    """Who runs this registration: a later one marks the run FAILED if this process died."""
    pid = os.getpid()
    return {"crs.host": socket.gethostname(), "crs.pid": str(pid), "crs.pid_start": _pid_start(pid)}


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _pid_start(pid) in ("", start)


@dataclass
class Registry:
    """One registered model in one store."""

    client: Any
    uri: str
    name: str
    _held: int = field(default=0, repr=False)

    @classmethod
    def open(cls, name: str, root: Path | None = None, settings: dict[str, Any] | None = None,
             must_exist: bool = False) -> Registry:
        import mlflow
        from mlflow import MlflowClient

        from crs_settings import require_tracking_uri

        uri = require_tracking_uri(root)
        timeout, _ = configure_http(settings)
        check_reachable(uri, timeout, must_exist)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        return cls(MlflowClient(uri, registry_uri=uri), uri, name)

    def call(self, what: str, fn: Callable, *args, **kwargs):
        with registry_errors(self.uri, what):
            return fn(*args, **kwargs)

    # ------------------------------------------------------------------ reading

    def model(self):
        """The registered model, or None when it does not exist (and only then)."""
        from mlflow.exceptions import MlflowException

        try:
            with registry_errors(self.uri, f"reading registered model {self.name!r}"):
                return self.client.get_registered_model(self.name)
        except NotInRegistry as exc:
            if isinstance(exc.__cause__, MlflowException) and is_absent(exc.__cause__):
                return None
            raise

    def require_model(self):
        model = self.model()
        if model is None:
            raise NotInRegistry(f"No registered model {self.name!r} in the MLflow store {self.uri}; "
                                "run `make run` (dvc repro) first, or check --name and MLFLOW_TRACKING_URI")
        return model

    def versions(self) -> list:
        return self.call(f"listing versions of {self.name!r}", self.client.search_model_versions,
                         f"name='{self.name}'")

    def version(self, version: str | int):
        """A model version; a clear line when it does not exist."""
        self.require_model()
        try:
            return self.call(f"reading version {version} of {self.name!r}", self.client.get_model_version,
                             self.name, str(version))
        except NotInRegistry:
            known = sorted(int(v.version) for v in self.versions())
            listed = f"versions: {', '.join(map(str, known))}" if known else "no versions"
            raise NotInRegistry(f"Model {self.name!r} has no version {version} ({listed}) in {self.uri}") from None

    def alias(self, alias: str) -> str | None:
        model = self.require_model()
        value = (model.aliases or {}).get(alias)
        return str(value) if value is not None else None

    def require_alias(self, alias: str) -> str:
        version = self.alias(alias)
        if version is None:
            known = ", ".join(sorted(self.require_model().aliases or {})) or "none"
            raise NotInRegistry(f"Model {self.name!r} has no alias {alias!r} (aliases: {known}) in {self.uri}")
        return version

    def state(self, alias: str, repair: bool = True) -> AliasState:
        """The alias and its history, checked against each other. An interrupted change (pending
        tag) is completed if the alias moved, discarded if it did not; a history that does not end
        at the alias gets the alias appended. With `repair`, the fix is written (under the lock)."""
        model = self.model()
        if model is None:
            return AliasState(alias, None)
        version = (model.aliases or {}).get(alias)
        version = str(version) if version is not None else None
        history = _parse_history(model.tags.get(_history_tag(alias)))
        pending_text = model.tags.get(_pending_tag(alias))
        notes = []
        if pending_text:
            try:
                pending = json.loads(pending_text)
            except ValueError:
                pending = {}
            if version is not None and version == str(pending.get("to")):
                history = [str(v) for v in pending.get("history", history)]
                notes.append(f"completed an interrupted change of {alias!r} to version {version}")
            else:
                notes.append(f"discarded an interrupted change of {alias!r} (the alias never moved)")
        if version is not None and (not history or history[-1] != version):
            history.append(version)
            notes.append(f"history of {alias!r} did not end at version {version}: appended")
        state = AliasState(alias, version, history, "; ".join(notes))
        if notes and repair:
            with self.lock():
                state = self.state(alias, repair=False)
                self._commit_repair(state)
        return state

    def _commit_repair(self, state: AliasState) -> None:
        """Write a repaired history and clear the journal (call with the lock held)."""
        if not state.repaired:
            return
        self._write_history(state.alias, state.history)
        if _pending_tag(state.alias) in self.require_model().tags:
            self.call("clearing the journal", self.client.delete_registered_model_tag, self.name,
                      _pending_tag(state.alias))

    def artifacts_present(self, version: str | int) -> bool:
        import mlflow

        try:
            files = self.call(f"listing the files of version {version}", mlflow.artifacts.list_artifacts,
                              artifact_uri=f"models:/{self.name}/{version}")
        except NotInRegistry:
            return False
        return any(Path(f.path).name == "MLmodel" for f in files or [])

    def require_artifacts(self, version: str | int) -> None:
        if not self.artifacts_present(version):
            mv = self.version(version)
            raise RegistryError(f"Model {self.name!r} version {version}: its model files are missing from the "
                                f"artifact store (source {mv.source}); it cannot be loaded or promoted")

    # ------------------------------------------------------------------ changing

    @contextlib.contextmanager
    def lock(self, timeout: float = 120.0) -> Iterator[None]:
        """Serialise registry changes (see the module docstring for the guarantee). Re-entrant."""
        if self._held:
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1
            return
        with self._acquire(timeout):
            self._held = 1
            try:
                yield
            finally:
                self._held = 0

    @contextlib.contextmanager
    def _acquire(self, timeout: float) -> Iterator[None]:
        db = sqlite_path(self.uri)
        if db is not None:
            import fcntl

            lock_path = db.with_name(db.name + ".crs-lock")
            with open(lock_path, "a+") as fh:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise RegistryError(f"registry busy: another crs process has held {lock_path} for "
                                                f"{timeout:g} s") from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return
        token = uuid.uuid4().hex
        self.ensure_model()
        deadline = time.monotonic() + timeout
        while True:
            held = self.require_model().tags.get(LOCK_TAG, "")
            owner, _, expires = held.partition(" ")
            if not owner or float(expires or 0) < time.time():
                self.call("taking the registry lease", self.client.set_registered_model_tag, self.name, LOCK_TAG,
                          f"{token} {time.time() + LEASE_SECONDS:.3f}")
                time.sleep(SETTLE_SECONDS)
                if self.require_model().tags.get(LOCK_TAG, "").startswith(token):
                    break
            if time.monotonic() > deadline:
                raise RegistryError(f"registry busy: the lease tag {LOCK_TAG!r} of {self.name!r} has been held by "
                                    f"another writer for {timeout:g} s")
            time.sleep(0.1 + (uuid.uuid4().int % 100) / 500)
        try:
            yield
        finally:
            with contextlib.suppress(RegistryError):
                if self.require_model().tags.get(LOCK_TAG, "").startswith(token):
                    self.call("releasing the registry lease", self.client.delete_registered_model_tag,
                              self.name, LOCK_TAG)

    def ensure_model(self, description: str | None = None):
        """The registered model, created if absent (another writer creating it first is fine)."""
        model = self.model()
        if model is None:
            from mlflow.exceptions import MlflowException

            try:
                self.client.create_registered_model(self.name, description=description)
            except MlflowException as exc:
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    with registry_errors(self.uri, f"creating registered model {self.name!r}"):
                        raise
            model = self.require_model()
        return model

    def _write_history(self, alias: str, history: list[str]) -> None:
        self.call("writing the alias history", self.client.set_registered_model_tag, self.name,
                  _history_tag(alias), ",".join(history))

    def move_alias(self, alias: str, version: str, history: list[str], before: AliasState) -> AliasState:
        """Journaled alias move; call with the lock held, `before` read under it."""
        version = str(version)
        self.call("journaling the alias change", self.client.set_registered_model_tag, self.name, _pending_tag(alias),
                  json.dumps({"from": before.version, "to": version, "history": history}))
        self.call(f"moving alias {alias!r} to version {version}", self.client.set_registered_model_alias,
                  self.name, alias, version)
        self._write_history(alias, history)
        self.call("clearing the journal", self.client.delete_registered_model_tag, self.name, _pending_tag(alias))
        after = self.state(alias, repair=False)
        if after.version != version or after.history != history or after.repaired:
            raise RegistryError(f"concurrent registry change detected on {self.name!r}: alias {alias!r} is at "
                                f"version {after.version}, history {after.history}; expected version {version}, "
                                f"history {history}. Check with `crs models list` and repeat")
        return after

    def promote(self, version: str | int, alias: str, expected: str | None | object = ...) -> AliasState:
        """Point `alias` at `version` (its files must exist) and record it in the history.
        `expected`: the alias's version the caller decided against; if it moved meanwhile, refuse."""
        version = str(version)
        self.version(version)
        self.require_artifacts(version)
        with self.lock():
            before = self.state(alias, repair=False)
            self._commit_repair(before)
            if expected is not ... and before.version != expected:
                raise RegistryError(f"alias {alias!r} of {self.name!r} moved from version {expected} to "
                                    f"{before.version} while this decision was made; not promoted")
            if before.version == version:
                return before
            return self.move_alias(alias, version, [*before.history, version], before)

    def rollback(self, alias: str) -> str:
        """Move `alias` back to the previous version in its history; returns that version."""
        with self.lock():
            before = self.state(alias, repair=False)
            self._commit_repair(before)
            history = before.history
            if len(history) < 2:
                raise RegistryError(f"Model {self.name!r} has no earlier {alias} to roll back to "
                                    f"(history: {','.join(history) or 'empty'})")
            target = history[-2]
            self.require_artifacts(target)
            self.move_alias(alias, target, history[:-1], before)
            return target

    def set_alias(self, alias: str, version: str) -> None:
        """A plain alias without history (e.g. `challenger`)."""
        self.call(f"setting alias {alias!r}", self.client.set_registered_model_alias, self.name, alias, str(version))

    # ------------------------------------------------------------------ runs

    def experiment(self, name: str, artifact_location: str | None) -> str:
        found = self.call(f"reading experiment {name!r}", self.client.get_experiment_by_name, name)
        if found is not None:
            return found.experiment_id
        from mlflow.exceptions import MlflowException

        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created by a concurrent writer
            return self.call(f"reading experiment {name!r}", self.client.get_experiment_by_name, name).experiment_id

    def fail_dead_runs(self, experiment_id: str) -> list[str]:
        """Runs of this host left RUNNING by a process that no longer exists (killed mid-registration)
        are marked FAILED; returns their ids."""
        host = socket.gethostname()
        runs = self.call("looking for abandoned runs", self.client.search_runs, [experiment_id],
                         f"attributes.status = 'RUNNING' and tags.`crs.host` = '{host}'")
        failed = []
        for run in runs:
            tags = run.data.tags
            try:
                pid = int(tags.get("crs.pid", ""))
            except ValueError:
                continue
            if _alive(pid, tags.get("crs.pid_start", "")):
                continue
            self.call("marking an abandoned run FAILED", self.client.set_tag, run.info.run_id, "crs.failure",
                      f"process {pid} on {host} ended without finishing this run; marked FAILED later")
            self.call("marking an abandoned run FAILED", self.client.set_terminated, run.info.run_id, "FAILED")
            failed.append(run.info.run_id)
        return failed

    # ------------------------------------------------------------------ listing

    def table(self, champion_alias: str = "champion") -> pd.DataFrame:
        model = self.require_model()
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        rows = []
        for mv in self.versions():
            tags = mv.tags or {}
            metrics: dict[str, float] = {}
            if "metric.auroc" not in tags and mv.run_id:  # versions registered before version tags
                with contextlib.suppress(NotInRegistry):
                    run = self.call("reading a run", self.client.get_run, mv.run_id)
                    metrics, tags = run.data.metrics, {**run.data.tags, **tags}

            rows.append({"version": int(mv.version), "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                         **{key: _metric(tags, metrics, key) for key in ("auroc", "auroc_ci_low", "calibration_slope")},
                         "gate": tags.get("gate.decision", ""), "synthetic": tags.get("cohort.synthetic", ""),
                         "git_commit": tags.get("git_commit", "")[:10], "run_id": mv.run_id})
        return pd.DataFrame(rows).sort_values("version", ascending=False) if rows else pd.DataFrame(rows)


def _metric(tags: dict[str, str], metrics: dict[str, float], key: str) -> float | None:
    """A headline metric from the version's tags, or from its run's metrics (older versions)."""
    raw = tags.get(f"metric.{key}", metrics.get(f"pooled/{key}", metrics.get(f"pooled.xgb_kinetics.{key}")))
    return float(raw) if raw not in (None, "") else None


def signature(example: pd.DataFrame, landmarks: str):
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inferred = infer_signature(example)
    required = {"patient_id", "analyte", "hours_since_infusion", "value"}
    inputs = Schema([ColSpec(c.type, c.name, required=c.name in required) for c in inferred.inputs.inputs])
    drivers = [ColSpec(t, f"driver_{k}_{part}") for k in (1, 2, 3)
               for part, t in (("feature", "string"), ("contribution", "double"), ("text", "string"))]
    outputs = Schema([ColSpec("string", "patient_id"), ColSpec("double", "landmark_hours"),
                      ColSpec("string", "status"), ColSpec("double", "probability"),
                      ColSpec("string", "risk_band"), *drivers, ColSpec("string", "top_drivers")])
    return ModelSignature(inputs=inputs, outputs=outputs,
                          params=ParamSchema([ParamSpec("landmarks", "string", landmarks),
                                              ParamSpec("as_of", "string", ""),
                                              ParamSpec("reasons", "string", "")]))
