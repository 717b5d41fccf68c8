"""What every stage module shares: the project's configuration and a few command-line helpers.

Configuration comes from :mod:`crs_settings` (the project's params.yaml, or the packaged defaults
outside a project); nothing here holds a default of its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cohorts.errors import CohortError
from crs_settings import load_params, params_source, project_root, require_project_root


def parse_landmarks(text: str) -> list[float]:
    """'24,48,72' -> [24.0, 48.0, 72.0]."""
    try:
        values = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise CohortError(f"--landmarks must be hours separated by commas, e.g. 24,48,72; got {text!r}") from exc
    if not values:
        raise CohortError("--landmarks is empty; give hours since infusion, e.g. 24,48,72")
    return values


def configuration(announce: bool = True) -> dict[str, Any]:
    """params.yaml of the project (or the packaged defaults), saying on stderr which one is used
    when it is not the project's own."""
    if announce and project_root() is None:
        print(f"crs: using {params_source()}", file=sys.stderr)
    return load_params()


def stage_context(stage: str) -> tuple[Path, dict[str, Any]]:
    """(project folder, params) for a DVC stage, which only runs inside a project."""
    root = require_project_root(f"`crs {stage}` (a DVC stage)")
    return root, load_params(root)


def path_of(root: Path, params: dict[str, Any], key: str) -> Path:
    value = Path(str(params["paths"][key]))
    return value if value.is_absolute() else root / value


def relative(path: str | Path, root: Path) -> str:
    """`path` relative to `root` where it lies inside it, else as given (no machine paths in outputs)."""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def cohort_provenance(root: Path, params: dict[str, Any]) -> dict[str, Any]:
    path = path_of(root, params, "cohort") / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else {}


def add_engine_options(p: argparse.ArgumentParser, group_default: str) -> None:
    """--engine local|spark and the Spark options (shared with `crs featurize`)."""
    p.add_argument("--engine", choices=["local", "spark"], default="local",
                   help="local: this machine, streamed in chunks; spark: the same code per group of whole "
                        "patients on Apache Spark (needs the spark extra; --out is then a Parquet folder of part "
                        "files; default: local)")
    p.add_argument("--spark-master", default=None,
                   help="Spark master URL, e.g. local[2] or spark://host:7077 (default: the active session's, "
                        "or spark-submit's, else local[*])")
    p.add_argument("--patients-per-group", type=int, default=None,
                   help=f"--engine spark: patients per pandas call (default: {group_default}; 1 groups by "
                        "patient_id itself)")
    p.add_argument("--partition-by", default=None,
                   help="--engine spark: comma-separated output columns to partition the Parquet folder by "
                        "(e.g. status; default: none, one part file per task)")
