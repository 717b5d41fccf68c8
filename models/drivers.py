"""Per-row drivers of a prediction: the top-k contributions, as sentences a clinician reads.

Contributions are XGBoost's own `pred_contribs` on the margin, i.e. log-odds of grade >=3 CRS
before calibration (:meth:`models.bundle.ModelBundle.explain`): TreeSHAP for tree families, exact
coefficient × standardised value for the linear family. For each row they add up, with the bias,
to the margin. They stay on that scale in the `driver_i_contribution` columns (for machines). The
sentences carry no log-odds: the measured fact in the analyte's unit or as a multiple of the
patient's own reference value, then "raises risk" / "lowers risk" by so many percentage points of
the calibrated probability (:func:`percentage_points`), e.g. "IL-6 39× its pre-infusion value:
raises risk by 8.2 percentage points". A driver compares this patient with the average training
patient, so a rise can "lower risk" when typical patients at that time had larger rises.
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
from models.bundle import contributions  # noqa: F401  (drivers are these contributions)

TOP_K = 3
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
    """A log2 ratio as a plain multiple: 5.3 → '39×', 1.2 → '2.3×', -1 → '0.50×', -4 → '1/16 of'."""
    m = 2.0 ** log2_value
    if m >= 10:
        return f"{m:,.0f}×"
    if m >= 1:
        return f"{m:.1f}×"
    if m >= 0.1:
        return f"{m:.2f}×"
    return f"1/{1 / m:,.0f} of"


def _hours(h: float) -> str:
    return f"{h:.0f} h" if abs(h) >= 1 else f"{h * 60:.0f} min"


def _pretty_unit(unit: str) -> str:
    return {"10^9/L": "×10⁹/L"}.get(unit, unit)


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


def percentage_points(margin: np.ndarray, contribution: np.ndarray, calibration: dict) -> np.ndarray:
    """What one driver does to this row's probability, in percentage points.

    Defined as 100 × (P(m) − P(m − c)): the row's calibrated probability at its margin m (log-odds,
    before calibration) minus the calibrated probability with this one contribution c taken out,
    every other contribution kept. Positive = the feature raises the risk. The points of several
    drivers do not add up exactly to the probability (the calibration is not linear).
    """
    from models.calibration import apply_calibration

    m = np.asarray(margin, dtype="float64")
    c = np.asarray(contribution, dtype="float64")
    return 100.0 * (apply_calibration(m, calibration) - apply_calibration(m - c, calibration))


def _analyte(code: str) -> str:
    from cohorts.registry import analyte_label

    try:
        return analyte_label(code)
    except Exception:  # no registry at hand: the code is still a name
        return code


def _flag(value: float, yes: str, no: str) -> str:
    return yes if value >= 0.5 else no


def _phrase(feature: str, label: str, value: float, unit: str, context: dict) -> str:
    """The measured fact behind a driver, in words, without the effect ('IL-6 39× its pre-infusion value')."""
    if "=" in feature and "__" not in feature:  # one-hot category: 'therapy=axi-cel'
        column, level = feature.split("=", 1)
        column = column.replace("_", " ")
        return f"{column} {level}" if value == 1 else f"{column} other than {level}"
    if "__" not in feature:
        if feature == "landmark_hours":
            return f"{_hours(value)} since infusion" if np.isfinite(value) else "time since infusion unknown"
        if feature == "age_years":
            return f"age {value:.0f}" if np.isfinite(value) else "age not recorded"
        return f"{label} {_number(value)}" if np.isfinite(value) else f"{label} not recorded"
    code, kind = feature.split("__", 1)
    a = _analyte(code)
    ref = context.get("reference", {}).get(code, "its pre-infusion value")
    unit = f" {_pretty_unit(unit)}" if unit else ""
    k = context.get("rise_fold", 4)
    k = f"{k:g}"
    if kind in ("given", "doses", "hours_since_first_dose", "hours_since_last_dose"):  # treatments (events)
        if not np.isfinite(value):
            return f"{code} not recorded"
        return {"given": _flag(value, f"{code} given", f"{code} not given"),
                "doses": f"{code} {value:.0f} dose{'s' if value != 1 else ''}",
                "hours_since_first_dose": f"{code} first given {_hours(value)} ago",
                "hours_since_last_dose": f"{code} last given {_hours(value)} ago"}[kind]
    if kind.startswith("log2_fc_minus_"):
        other = _analyte(kind.removeprefix("log2_fc_minus_"))
        if not np.isfinite(value):
            return f"{a} rise vs {other} rise not available yet"
        return f"{a} rise {_multiple(value)} the {other} rise"
    if kind.startswith("rise_lag_vs_"):
        other = _analyte(kind.removeprefix("rise_lag_vs_").removesuffix("_hours"))
        if not np.isfinite(value):
            return f"no {k}-fold rise of both {a} and {other} yet"
        return (f"{a} rose {k}-fold {_hours(abs(value))} {'after' if value >= 0 else 'before'} {other}")
    flags = {"has_baseline": (f"{a} pre-infusion baseline available", f"no {a} pre-infusion baseline"),
             "ref_is_fallback": (f"no {a} baseline (first result after infusion used instead)",
                                 f"{a} compared with its pre-infusion baseline"),
             "reference_censored": (f"{a} reference value outside the assay range",
                                    f"{a} reference value within the assay range"),
             "latest_censored": (f"{a} latest value outside the assay range",
                                 f"{a} latest value within the assay range"),
             "any_above_uloq": (f"{a} above the assay's upper limit so far",
                                f"{a} never above the assay's upper limit so far")}
    if kind in flags:
        return _flag(value, *flags[kind]) if np.isfinite(value) else f"{a} reference not available yet"
    if kind == "n_draws":
        return f"{a} {value:.0f} result{'s' if value != 1 else ''} so far" if np.isfinite(value) else f"no {a} result"
    if not np.isfinite(value):
        return {"latest": f"no {a} result yet", "baseline": f"no {a} pre-infusion value",
                "max_since_infusion": f"no {a} result since infusion",
                "hours_since_kfold_rise": f"no {k}-fold {a} rise yet",
                "hours_since_last": f"no {a} result yet"}.get(kind, f"{a} {FEATURE_WORDS_SHORT.get(kind, kind)} not available yet")
    if kind == "log2_fc":
        return f"{a} {_multiple(value)} {ref}"
    if kind == "max_log2_fc":
        return f"{a} peak so far {_multiple(value)} {ref}"
    if kind == "latest":
        return f"{a} {_number(value)}{unit} (latest)"
    if kind == "baseline":
        return f"{a} {_number(value)}{unit} before infusion"
    if kind == "max_since_infusion":
        return f"{a} up to {_number(value)}{unit} since infusion"
    if kind == "serial_log2_ratio_per24h":
        return f"{a} changing {_multiple(value)} per 24 h between the last two results"
    if kind == "slope_log2_per24h":
        window = context.get("trailing_window_hours", 48)
        return f"{a} trend {_multiple(value)} per 24 h over the last {window:g} h"
    if kind == "hours_since_last":
        return f"last {a} result drawn {_hours(value)} ago"
    if kind == "hours_since_kfold_rise":
        return f"{a} first rose {k}-fold {_hours(value)} ago"
    if kind == "auc_log2_fc_days":
        return f"{a} cumulative rise {value:.1f} (log2 fold change × days)"
    return f"{label} {_number(value)}{unit}"


# short words for the rare kinds without a sentence of their own
FEATURE_WORDS_SHORT = {"log2_fc": "fold change", "max_log2_fc": "peak fold change",
                       "serial_log2_ratio_per24h": "day-over-day change", "slope_log2_per24h": "trend",
                       "auc_log2_fc_days": "cumulative rise"}


def _effect(contribution: float, points: float | None) -> str:
    word = "raises risk" if contribution > 0 else "lowers risk"
    if points is None or not np.isfinite(points):
        return word
    size = abs(points)
    if size < 0.05:
        return f"{word} slightly (<0.1 percentage points)"
    return f"{word} by {size:.1f} percentage point{'s' if f'{size:.1f}' != '1.0' else ''}"


def describe(feature: str, label: str, value: float, contribution: float, unit: str = "", *,
             points: float | None = None, context: dict | None = None) -> str:
    """'IL-6 39× its pre-infusion value: raises risk by 8.2 percentage points'.

    One colon, no log-odds: the measured fact (with its unit, or as a multiple of the patient's own
    reference value), then the direction and, given `points` (:func:`percentage_points`), its size.
    `context`: `reference` {analyte code: 'its pre-infusion value' | 'its first value after
    infusion'}, `rise_fold` and `trailing_window_hours` of the model's features.
    """
    if contribution == 0 or not np.isfinite(contribution):
        return ""
    what = _phrase(feature, label, float(value), unit, context or {})
    return f"{what}: {_effect(contribution, points)}"


def _references(X: pd.DataFrame, codes: set[str]) -> list[dict[str, str]]:
    """Per row: which reference each analyte's fold changes use (baseline, or the stated fallback)."""
    out: list[dict[str, str]] = [{} for _ in range(len(X))]
    for code in codes:
        col = f"{code}__ref_is_fallback"
        if col in X:
            fallback = np.nan_to_num(X[col].to_numpy("float64")) > 0.5
            for i in np.flatnonzero(fallback):
                out[i][code] = "its first value after infusion"
    return out


def driver_frame(values: np.ndarray, X: pd.DataFrame, feature_names: Sequence[str], k: int = TOP_K, *,
                 margin: np.ndarray | None = None, calibration: dict | None = None,
                 context: dict | None = None, references: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per row of X: driver_i_feature / _contribution / _text (i = 1..k) and top_drivers.

    `_contribution` stays on the log-odds scale (for machines); the text gives the effect in
    percentage points of the probability when the rows' `margin` and the model's `calibration`
    are given (:func:`percentage_points`), else only its direction. `references`: rows (same order)
    carrying the `<analyte>__ref_is_fallback` flags when X does not (a compact model's input).
    """
    n = len(X)
    idx = top_indices(values, k)
    kk = idx.shape[1]
    names = np.asarray(list(feature_names), dtype=object)
    labels = np.asarray([readable_name(str(f)) for f in names], dtype=object)
    units = np.asarray([unit_of(str(f)) for f in names], dtype=object)
    contrib = np.take_along_axis(values, idx, axis=1) if n else np.empty((0, kk))
    raw = np.take_along_axis(X.to_numpy("float64"), idx, axis=1) if n else np.empty((0, kk))
    codes = {str(f).split("__", 1)[0] for f in names if "__" in str(f)}
    refs = _references(X if references is None else references.reset_index(drop=True), codes)
    base = dict(context or {})
    out: dict[str, np.ndarray] = {}
    texts = []
    for j in range(k):
        if j < kk:
            f, c, v = names[idx[:, j]], contrib[:, j], raw[:, j]
            pts = (percentage_points(margin, c, calibration) if margin is not None and calibration is not None
                   else np.full(n, np.nan))
            text = np.array([describe(fi, li, vi, ci, ui, points=pi, context={**base, "reference": ri})
                             for fi, li, vi, ci, ui, pi, ri in zip(f, labels[idx[:, j]], v, c, units[idx[:, j]],
                                                                   pts, refs, strict=True)], dtype=object)
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
