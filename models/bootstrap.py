"""Patient-level bootstrap: all of a patient's landmark rows are resampled together.

Two forms of the same resamples (the same seed gives the same patients in both):

- :func:`patient_resamples` yields the row positions of each resample (a statistic is then
  called once per resample, in Python);
- :func:`weight_blocks` yields the resamples as row weights (how many times each row appears),
  a block of resamples at a time: measures written for weights (``models.metrics.*_weighted``)
  then evaluate every resample of a block in a few numpy calls, and one set of weights serves
  every model, landmark and subgroup (shared resample indices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

MAX_WEIGHT_CELLS = 4_000_000  # resamples × rows per weight block (32 MB of float64)


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


def weight_blocks(patient_id: pd.Series | np.ndarray, n_boot: int, seed: int,
                  max_cells: int = MAX_WEIGHT_CELLS) -> Iterator[np.ndarray]:
    """Yield (resamples × rows) float64 weights, `n_boot` resamples in all, in blocks of at most
    `max_cells` cells. Row weight = how many times the row's patient was drawn; the draws are
    those of :func:`patient_resamples` with the same seed."""
    codes, uniques = pd.factorize(np.asarray(patient_id))
    n_patients = len(uniques)
    rng = np.random.default_rng(seed)
    block = max(1, min(n_boot, max_cells // max(len(codes), 1)))
    done = 0
    while done < n_boot:
        b = min(block, n_boot - done)
        if n_patients == 0:
            yield np.zeros((b, len(codes)))
            done += b
            continue
        pick = rng.integers(0, n_patients, (b, n_patients))
        offsets = (np.arange(b) * n_patients)[:, None]
        counts = np.bincount((pick + offsets).ravel(), minlength=b * n_patients).reshape(b, n_patients)
        yield counts[:, codes].astype("float64")
        done += b


def bootstrap_draws(patient_id: pd.Series | np.ndarray, statistic: Callable[[np.ndarray], dict[str, np.ndarray]],
                    n_boot: int, seed: int, max_cells: int = MAX_WEIGHT_CELLS) -> dict[str, np.ndarray]:
    """`statistic(W)` (W: resamples × rows weights → name → one value per resample) over `n_boot`
    patient-level resamples; name → all `n_boot` values (NaN where a resample has no estimate)."""
    parts: dict[str, list[np.ndarray]] = {}
    for W in weight_blocks(patient_id, n_boot, seed, max_cells):
        for name, values in statistic(W).items():
            parts.setdefault(name, []).append(np.asarray(values, dtype="float64").reshape(len(W), -1))
    return {name: np.concatenate(v, axis=0).squeeze(axis=1) if v[0].shape[1] == 1 else np.concatenate(v, axis=0)
            for name, v in parts.items()}


def percentile_ci(draws: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap draws along `axis`, NaN draws skipped (all NaN → NaN)."""
    alpha = (1 - level) / 2 * 100
    draws = np.asarray(draws, dtype="float64")
    if draws.size == 0 or np.isnan(draws).all():
        shape = np.delete(np.array(draws.shape), axis) if draws.ndim > 1 else ()
        return np.full(shape, np.nan), np.full(shape, np.nan)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column with every draw NaN gives NaN
        return np.nanpercentile(draws, alpha, axis=axis), np.nanpercentile(draws, 100 - alpha, axis=axis)


def bootstrap_ci_weighted(patient_id: pd.Series | np.ndarray, statistic: Callable[[np.ndarray], dict[str, np.ndarray]],
                          n_boot: int, seed: int, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile CIs of scalar statistics written for weights (the fast form of :func:`bootstrap_ci`)."""
    out = {}
    for name, values in bootstrap_draws(patient_id, statistic, n_boot, seed).items():
        lo, hi = percentile_ci(values, level)
        out[name] = (float(lo), float(hi))
    return out


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
