"""Read `params.yaml` (the single source of configuration for every stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.paths import project_root


def load_params(path: Path | None = None) -> dict[str, Any]:
    path = path or project_root() / "params.yaml"
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


def parse_landmarks(text: str) -> list[float]:
    """'24,48,72' -> [24.0, 48.0, 72.0]."""
    from cohorts.errors import CohortError

    try:
        values = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError as exc:
        raise CohortError(f"--landmarks must be hours separated by commas, e.g. 24,48,72; got {text!r}") from exc
    if not values:
        raise CohortError("--landmarks is empty; give hours since infusion, e.g. 24,48,72")
    return values
