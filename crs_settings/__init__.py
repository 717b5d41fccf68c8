"""The one neutral place that resolves the project folder, its paths, the configuration and the
MLflow tracking URI. It imports nothing from the project, so every layer may import it.

Project folder: `CRS_PROJECT_ROOT` if set; else the nearest folder, from the current directory
upward, that holds both `params.yaml` and `dvc.yaml`; else *no project* (never the current
directory by accident). Outside a project the packaged defaults serve: the same `params.yaml`
and `data/reference/` tables, shipped inside the installed package (copied by the wheel build,
see setup.py) or, in a source checkout, read from the checkout itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

MARKERS = ("params.yaml", "dvc.yaml")
PACKAGED = Path(__file__).resolve().parent / "defaults"   # filled by the wheel build (setup.py)
CHECKOUT = Path(__file__).resolve().parent.parent          # the source tree, for editable installs


class InputProblem(Exception):
    """Base of the project's one exception family for problems with what the user gave
    (data, paths, options, configuration): the command line answers it with exit code 2."""


def project_root(start: Path | None = None) -> Path | None:
    """The project folder, or None when the current directory is not inside one."""
    env = os.environ.get("CRS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if all((candidate / m).is_file() for m in MARKERS):
            return candidate
    return None


def require_project_root(what: str) -> Path:
    """The project folder, or one clear error saying why `what` needs one."""
    root = project_root()
    if root is None:
        raise InputProblem(f"{what} runs inside a crs-predict project folder (one with params.yaml and "
                           f"dvc.yaml); none was found from {Path.cwd()} upward. cd into the project, "
                           "or set CRS_PROJECT_ROOT")
    return root


def defaults_dir() -> Path:
    """Where the packaged defaults live: the installed copy, else the source checkout."""
    if (PACKAGED / "params.yaml").is_file():
        return PACKAGED
    return CHECKOUT


def params_path(root: Path | None = None) -> Path:
    """The project's params.yaml, or the packaged default one outside a project."""
    root = root or project_root()
    if root is not None and (root / "params.yaml").is_file():
        return root / "params.yaml"
    return defaults_dir() / "params.yaml"


def params_source(root: Path | None = None) -> str:
    """A phrase naming the configuration in use, for the command line to say which it used."""
    root = root or project_root()
    if root is not None and (root / "params.yaml").is_file():
        return f"project params {root / 'params.yaml'}"
    return f"packaged default params (no project folder found from {Path.cwd()})"


def load_params(root: Path | None = None) -> dict[str, Any]:
    path = params_path(root)
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise InputProblem(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise InputProblem(f"{path} must be a YAML mapping of sections (simulate:, featurize:, ...)")
    return params


def data_path(key: str, root: Path | None = None) -> Path:
    """Absolute path of `paths.<key>` in params.yaml (relative paths resolve against the project)."""
    root = root or require_project_root(f"the `{key}` output")
    value = Path(str(load_params(root)["paths"][key]))
    return value if value.is_absolute() else root / value


def reference_dir(root: Path | None = None) -> Path:
    """Reference tables (analyte registry, simulator parameters, vocabularies).

    The project's own `data/reference` first; else `CRS_REFERENCE_DIR` (the registered model points
    it at the copy it ships, for a scoring process outside any project); else the packaged copy.
    """
    root = root or project_root()
    if root is not None and (root / "data" / "reference").is_dir():
        return root / "data" / "reference"
    shipped = os.environ.get("CRS_REFERENCE_DIR")
    if shipped and Path(shipped).is_dir():
        return Path(shipped)
    return defaults_dir() / "data" / "reference"


EXPERIMENT_WORKSPACES = (".dvc", "tmp", "exps")  # where `dvc exp run --temp` / `--queue` copy the repository


def experiment_origin(root: Path) -> Path | None:
    """The original repository when `root` is a DVC experiment workspace, else None.

    `dvc exp run --temp` and queued experiments run the pipeline in a throwaway copy under
    `<repository>/.dvc/tmp/exps/`, deleted afterwards. DVC (3.x) exports `DVC_ROOT` = the original
    repository to every stage of such a run; the copy's own path layout says the same when
    `DVC_ROOT` is absent (a command run by hand inside the copy).
    """
    root = Path(root).resolve()
    env = os.environ.get("DVC_ROOT")
    if env:
        origin = Path(env).resolve()
        if origin != root and root.is_relative_to(origin.joinpath(*EXPERIMENT_WORKSPACES)):
            return origin
    parts = root.parts
    n = len(EXPERIMENT_WORKSPACES)
    for i in range(len(parts) - n, 0, -1):
        if parts[i:i + n] == EXPERIMENT_WORKSPACES:
            return Path(*parts[:i])
    return None


def store_root(root: Path | None = None) -> Path | None:
    """The folder that holds the project's MLflow store (mlflow.db, mlartifacts/): the project,
    or the original repository of a DVC experiment workspace (whose own copy is deleted)."""
    root = root or project_root()
    if root is None:
        return None
    return experiment_origin(root) or Path(root)


def tracking_uri(root: Path | None = None) -> str | None:
    """`MLFLOW_TRACKING_URI` wins; else an absolute sqlite URI in the project's store folder
    (:func:`store_root`); else None.

    Relative sqlite URIs resolve against whoever's current directory, which is how runs
    "vanish" from the UI, so the default is always absolute; and a DVC experiment run in a
    temporary copy logs to the repository it came from, not to the copy. Outside a project there
    is no default store: nothing creates a stray mlflow.db in whatever folder the user is in.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    folder = store_root(root)
    return f"sqlite:///{folder / 'mlflow.db'}" if folder is not None else None


def require_tracking_uri(root: Path | None = None) -> str:
    uri = tracking_uri(root)
    if uri is None:
        raise InputProblem("No model registry: set MLFLOW_TRACKING_URI (e.g. sqlite:////path/to/project/mlflow.db "
                           "or http://host:5000), or run inside the crs-predict project folder whose mlflow.db "
                           "holds the model")
    return uri


def artifact_root(root: Path | None = None) -> Path:
    """Artifact folder of the project's default (sqlite) store, beside its mlflow.db."""
    folder = store_root(root) or require_project_root("the MLflow artifact store")
    return folder / "mlartifacts"


def quiet_telemetry() -> None:
    """The machines are offline: MLflow and DVC must not try to phone home."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
