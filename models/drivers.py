"""Per-row drivers of a prediction: the top-k TreeSHAP contributions, as sentences a clinician reads.

Contributions are XGBoost's own TreeSHAP (`pred_contribs`) on the margin, i.e. log-odds of
grade >=3 CRS before calibration: for each row they add up, with the bias, to the margin.
Selection is vectorised (one argpartition over the contribution matrix); Python only formats
the final strings of the rows that get drivers.

TreeSHAP is the slow part of scoring (~4k rows/s on 2 threads against ~550k rows/s for
prediction), so the `reasons` policy chooses whose drivers are computed:
``all``, ``none`` or ``above:P`` (rows with probability >= P).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.vocabulary import readable_name

TOP_K = 3
# log2 fold-change features: the text also gives the plain multiple (×39 vs baseline)
_FOLD_KINDS = {"log2_fc": "vs baseline", "max_log2_fc": "vs baseline at peak"}
_VALUE_KINDS = ("baseline", "latest", "max_since_infusion")  # values in the analyte's canonical unit


def driver_columns(k: int = TOP_K) -> list[str]:
    return [f"driver_{i}_{part}" for i in range(1, k + 1) for part in ("feature", "contribution", "text")] + [
        "top_drivers"]


@dataclass(frozen=True)
class ReasonsPolicy:
    """Whose drivers to compute: `threshold` None = nobody, -inf = everyone, else probability >= P."""

    threshold: float | None

    def wants(self, probability: np.ndarray) -> np.ndarray:
        if self.threshold is None:
            return np.zeros(len(probability), dtype=bool)
        return np.nan_to_num(probability, nan=-np.inf) >= self.threshold


def parse_reasons(text: str | None, default_threshold: float) -> ReasonsPolicy:
    """'all' | 'none' | 'above:P' (0 <= P <= 1); None or '' = above the default threshold."""
    from cohorts.errors import CohortError

    text = (text or "").strip().lower()
    if not text:
        return ReasonsPolicy(float(default_threshold))
    if text == "all":
        return ReasonsPolicy(-np.inf)
    if text == "none":
        return ReasonsPolicy(None)
    if text.startswith("above:"):
        try:
            p = float(text.split(":", 1)[1])
        except ValueError:
            p = float("nan")
        if 0.0 <= p <= 1.0:
            return ReasonsPolicy(p)
    raise CohortError(f"--reasons must be all, none or above:P with P a probability in [0, 1]; got {text!r}")


def contributions(booster, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, p], bias [n]) on the log-odds scale, from XGBoost's `pred_contribs`."""
    from models.bundle import dmatrix

    if len(X) == 0:
        return np.empty((0, X.shape[1])), np.empty(0)
    contribs = booster.predict(dmatrix(X), pred_contribs=True)
    return contribs[:, :-1], contribs[:, -1]


def top_indices(values: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """[n, min(k, p)] column indices of the largest |contribution| per row, largest first."""
    n, p = values.shape
    k = min(k, p)
    if n == 0 or k == 0:
        return np.empty((n, k), dtype=np.int64)
    mag = np.abs(values)
    part = np.argpartition(-mag, k - 1, axis=1)[:, :k] if k < p else np.tile(np.arange(p), (n, 1))
    # order the k picks by |contribution| desc, ties by column position (deterministic)
    picked = np.take_along_axis(mag, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    return np.take_along_axis(part, order, axis=1)


def _number(v: float) -> str:
    if not np.isfinite(v):
        return "∞" if v > 0 else "-∞"
    if float(v).is_integer() and abs(v) < 1e6:
        return f"{int(v):,}"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _multiple(log2_value: float) -> str:
    m = 2.0 ** log2_value
    return f"{m:,.0f}" if m >= 10 else f"{m:.1f}" if m >= 1 else f"1/{1 / m:,.0f}" if m < 0.1 else f"{m:.2f}"


def unit_of(feature: str) -> str:
    """Canonical unit for features that are measured values ('IL6__latest' → 'pg/mL'), else ''."""
    if "__" not in feature or feature.split("__", 1)[1] not in _VALUE_KINDS:
        return ""
    try:
        from cohorts.registry import analyte_registry

        reg = analyte_registry()
        code = feature.split("__", 1)[0]
        return str(reg.loc[code, "canonical_unit"]) if code in reg.index else ""
    except Exception:  # no registry at hand: the number alone is still right
        return ""


def describe(feature: str, label: str, value: float, contribution: float, unit: str = "") -> str:
    """'IL-6 fold change vs baseline (log2) = 5.3 (×39 vs baseline): raises risk (+0.42 log-odds)'."""
    if contribution == 0 or not np.isfinite(contribution):
        return ""
    if "=" in feature and "__" not in feature:  # one-hot category: 'therapy: axi-cel'
        what = label if value == 1 else f"{label.split(': ', 1)[0]}: not {feature.split('=', 1)[1]}"
    elif np.isnan(value):
        what = f"{label}: not measured / not available at this time"
    else:
        what = f"{label} = {_number(value)}" + (f" {unit}" if unit else "")
        kind = feature.split("__", 1)[1] if "__" in feature else ""
        if kind in _FOLD_KINDS:
            what += f" (×{_multiple(value)} {_FOLD_KINDS[kind]})"
    effect = "raises risk" if contribution > 0 else "lowers risk"
    return f"{what}: {effect} ({contribution:+.2f} log-odds)"


def driver_frame(values: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str], k: int = TOP_K) -> pd.DataFrame:
    """One row per row of X: driver_i_feature / _contribution / _text (i = 1..k) and top_drivers."""
    n = len(X)
    idx = top_indices(values, k)
    kk = idx.shape[1]
    names = np.asarray(list(feature_names), dtype=object)
    labels = np.asarray([readable_name(str(f)) for f in names], dtype=object)
    units = np.asarray([unit_of(str(f)) for f in names], dtype=object)
    contrib = np.take_along_axis(values, idx, axis=1) if n else np.empty((0, kk))
    raw = np.take_along_axis(X.to_numpy("float64"), idx, axis=1) if n else np.empty((0, kk))
    out: dict[str, np.ndarray] = {}
    texts = []
    for j in range(k):
        if j < kk:
            f, c, v = names[idx[:, j]], contrib[:, j], raw[:, j]
            text = np.array([describe(*row) for row in zip(f, labels[idx[:, j]], v, c, units[idx[:, j]], strict=True)],
                            dtype=object)
            f = np.where(text == "", "", f).astype(object)
            c = np.where(text == "", np.nan, c)
        else:
            f, c, text = np.full(n, "", object), np.full(n, np.nan), np.full(n, "", object)
        out[f"driver_{j + 1}_feature"], out[f"driver_{j + 1}_contribution"] = f, c.astype("float64")
        out[f"driver_{j + 1}_text"] = text
        texts.append(text)
    out["top_drivers"] = np.array(["; ".join(t for t in row if t) for row in zip(*texts, strict=True)],
                                  dtype=object) if n else np.empty(0, object)
    return pd.DataFrame(out, columns=driver_columns(k))


def empty_drivers(n: int, k: int = TOP_K) -> pd.DataFrame:
    """Rows without drivers: empty strings and NaN contributions."""
    cols: dict[str, np.ndarray] = {}
    for name in driver_columns(k):
        cols[name] = np.full(n, np.nan) if name.endswith("_contribution") else np.full(n, "", dtype=object)
    return pd.DataFrame(cols, columns=driver_columns(k))
