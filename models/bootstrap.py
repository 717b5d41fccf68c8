"""Patient-level bootstrap: all of a patient's landmark rows are resampled together."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd


def expand_ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate ranges [start, start + size) without a Python loop."""
    total = int(sizes.sum())
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - offsets)


def patient_resamples(patient_id: pd.Series | np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Yield row positions (into the original order) of `n_boot` patient-level bootstrap samples."""
    codes, uniques = pd.factorize(np.asarray(patient_id))
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=len(uniques))
    starts = np.cumsum(sizes) - sizes
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniques), len(uniques))
        yield order[expand_ranges(starts[pick], sizes[pick])]


def bootstrap_ci(patient_id: pd.Series | np.ndarray, statistic: Callable[[np.ndarray], dict[str, float]],
                 n_boot: int, seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile CIs for every value `statistic(rows)` returns; resamples that give NaN are skipped."""
    draws: dict[str, list[float]] = {}
    for rows in patient_resamples(patient_id, n_boot, seed):
        for name, value in statistic(rows).items():
            if value == value:  # not NaN
                draws.setdefault(name, []).append(value)
    alpha = (1 - level) / 2 * 100
    return {name: (float(np.percentile(v, alpha)), float(np.percentile(v, 100 - alpha)))
            for name, v in draws.items()}
