"""The one place that resolves the project root, data paths and the MLflow tracking URI.

The project root is found from the current directory (not from where the package is
installed), so `dvc repro` in a copy of the repository writes into that copy.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKERS = ("params.yaml", "dvc.yaml")


def project_root(start: Path | None = None) -> Path:
    env = os.environ.get("CRS_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if all((candidate / m).exists() for m in MARKERS):
            return candidate
    return here


def data_dir(root: Path | None = None) -> Path:
    return (root or project_root()) / "data"


def reference_dir(root: Path | None = None) -> Path:
    """Reference tables (analyte registry, simulator parameters, vocabularies).

    The project's own `data/reference` first; else `CRS_REFERENCE_DIR` (the registered model points
    it at the copy it ships, for a scoring process outside any project); else beside the source tree.
    """
    local = data_dir(root) / "reference"
    if local.is_dir():
        return local
    shipped = os.environ.get("CRS_REFERENCE_DIR")
    if shipped and Path(shipped).is_dir():
        return Path(shipped)
    return Path(__file__).resolve().parent.parent / "data" / "reference"


def tracking_uri(root: Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` wins; else an absolute sqlite URI in the project folder.

    Relative sqlite URIs resolve against whoever's current directory, which is how runs
    "vanish" from the UI, so the default is always absolute.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(root or project_root()) / 'mlflow.db'}"


def artifact_root(root: Path | None = None) -> Path:
    return (root or project_root()) / "mlartifacts"


def quiet_telemetry() -> None:
    """The machines are offline: MLflow and DVC must not try to phone home."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
