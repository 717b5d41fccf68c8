"""Per-analyte kinetic features as of a landmark, as numpy reductions over sorted segments.

Leakage rule: only results *available* at L count: drawn at or before L and resulted at or
before L (send-out cytokines arrive days later). A row without a result time is available at
draw + the analyte's assumed turnaround (`default_turnaround_hours` in data/reference/analytes.csv,
overridable per analyte), never "at the draw" by silence. Events and recorded grades count when
at or before L. Nothing after L can reach a feature (property-tested).

Speed design (no per-patient Python loop): the labs are encoded once to integer keys
(patient code × analyte code), sorted once by (key, time), and every feature is a numpy
reduction over the contiguous segment of one key (``np.*.reduceat`` over segment starts).
The only Python loops are over patient chunks, landmarks and feature blocks.

Every function here is pure: it returns new arrays/frames and never mutates its inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from features.landmarks import PatientTimes

CORE_ANALYTES = ("IL6", "IFNG", "CRP", "FERRITIN", "ANG2")
# Treatments that are predictors by default. Vasopressors are not: under ASTCT 2019 a vasopressor for
# CRS hypotension *is* grade 3, i.e. the outcome (features/landmarks.py uses it as the onset instead).
EVENT_TYPES = ("tocilizumab", "corticosteroids", "siltuximab", "anakinra")
DEFAULT_CROSS_PAIRS = (("IL6", "IFNG"), ("CRP", "IL6"))
DEFAULT_COVARIATE_ANALYTES = ("TEMP_MAX", "LDH", "PLT", "CREAT")  # absolute values only (m-EASIX, EASIX inputs)

# Per analyte, as of L (see features/README.md for meaning and unit of each).
# The first nine keep the names and meaning of the walking skeleton's features.
KINETIC_FEATURES = [
    "baseline", "latest", "log2_fc", "max_log2_fc", "serial_log2_ratio_per24h", "n_draws",
    "hours_since_last", "has_baseline", "latest_censored",
    "ref_is_fallback", "reference_censored", "any_above_uloq", "max_since_infusion",
    "slope_log2_per24h", "hours_since_kfold_rise", "auc_log2_fc_days",
]
# Covariate analytes (e.g. TEMP_MAX): absolute values only; a fold change of a temperature means nothing.
COVARIATE_ANALYTE_FEATURES = ["latest", "max_since_infusion", "n_draws"]
EVENT_FEATURES = ["given", "doses", "hours_since_first_dose", "hours_since_last_dose"]
# Highest CRS grade recorded at or before L (optional `grades` table; NaN when the cohort has none).
GRADE_FEATURES = ["current_grade"]
# Features that count or flag: 0 (not NaN) when nothing was drawn/given.
ZERO_WHEN_ABSENT = {"n_draws", "has_baseline", "ref_is_fallback", "any_above_uloq", "given", "doses"}

_F = {name: i for i, name in enumerate(KINETIC_FEATURES)}
_RISE_TOLERANCE_LOG2 = 1e-9  # a ratio that equals k up to rounding counts as a k-fold rise
_SAME_TIME_HOURS = 1e-6  # two draws closer than this are simultaneous: no rate between them (not ±inf)


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that defines the feature set (all of it comes from params.yaml `featurize`)."""

    analytes: tuple[str, ...] = CORE_ANALYTES
    baseline_window_hours: tuple[float, float] = (-168.0, 0.0)
    trailing_window_hours: float = 48.0
    rise_fold: float = 4.0
    cross_analyte_pairs: tuple[tuple[str, str], ...] = DEFAULT_CROSS_PAIRS
    covariate_analytes: tuple[str, ...] = DEFAULT_COVARIATE_ANALYTES
    event_types: tuple[str, ...] = EVENT_TYPES
    # (analyte, hours) assumed from draw to result for rows without a result time. Analytes not
    # listed take `default_turnaround_hours` from the analyte registry; after construction every
    # code of the spec is listed (the effective map, sorted by code).
    turnaround_hours: tuple[tuple[str, float], ...] = ()
    # `current_grade` (highest CRS grade recorded by L, from the optional grades table; NaN where the
    # cohort records no grade course). The serving input (models/model_input.py grade rows, `crs score`
    # grades.parquet, Spark) carries grades as training does: no training/serving skew.
    current_grade: bool = True

    def __post_init__(self) -> None:
        lo, hi = self.baseline_window_hours
        if not lo <= hi:
            raise ValueError(f"baseline_window_hours must be [low, high] with low <= high; got {[lo, hi]}")
        if not self.trailing_window_hours > 0:
            raise ValueError(f"trailing_window_hours must be > 0; got {self.trailing_window_hours}")
        if not self.rise_fold > 1:
            raise ValueError(f"rise_fold (k of the first >=k-fold rise) must be > 1; got {self.rise_fold}")
        both = set(self.analytes) & set(self.covariate_analytes)
        if both:
            raise ValueError(f"{sorted(both)} listed both as kinetic and as covariate analytes")
        object.__setattr__(self, "turnaround_hours", effective_turnaround(self.codes, dict(self.turnaround_hours)))

    def turnaround_of_codes(self) -> np.ndarray:
        """Assumed turnaround (hours) per code, in key order (`codes`)."""
        given = dict(self.turnaround_hours)
        return np.array([given[c] for c in self.codes], dtype="float64")

    @property
    def codes(self) -> tuple[str, ...]:
        """Analyte codes in key order: kinetic analytes, then covariate analytes."""
        return (*self.analytes, *self.covariate_analytes)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        # a pair naming an analyte that is not featurized has nothing to compare: left out
        return [(a, b) for a, b in self.cross_analyte_pairs if a in self.analytes and b in self.analytes]

    def analyte_columns(self) -> list[str]:
        return ([f"{a}__{f}" for a in self.analytes for f in KINETIC_FEATURES]
                + [f"{a}__{f}" for a in self.covariate_analytes for f in COVARIATE_ANALYTE_FEATURES])

    def cross_columns(self) -> list[str]:
        return [c for a, b in self.pairs for c in (f"{a}__log2_fc_minus_{b}", f"{a}__rise_lag_vs_{b}_hours")]

    def event_columns(self) -> list[str]:
        return [f"{e}__{f}" for e in self.event_types for f in EVENT_FEATURES]

    def feature_names(self) -> list[str]:
        return [*self.analyte_columns(), *self.cross_columns(), *self.event_columns(),
                *(GRADE_FEATURES if self.current_grade else [])]


def effective_turnaround(codes: Sequence[str], overrides: dict[str, float] | None = None) -> tuple[tuple[str, float], ...]:
    """(code, hours) for each of `codes`: the override where given, else the registry default.

    Overrides must name registry analytes and be >= 0 hours (a typo never silently falls back).
    """
    from cohorts.registry import default_turnaround_hours

    defaults = default_turnaround_hours()
    overrides = {str(k): v for k, v in (overrides or {}).items()}
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"assume_turnaround_hours names unknown analyte code(s) {unknown}; "
                         f"codes are {sorted(defaults)}")
    out = {}
    for code in codes:
        hours = float(overrides.get(code, defaults.get(code, np.nan)))
        if not hours >= 0:
            raise ValueError(f"turnaround hours for {code} must be a number >= 0; got {hours} "
                             "(add the analyte to data/reference/analytes.csv or give it in assume_turnaround_hours)")
        out[code] = hours
    return tuple(sorted(out.items()))


def availability_hours(labs: pd.DataFrame, turnaround: dict[str, float]) -> np.ndarray:
    """When each lab row became available: its result time, else draw + the analyte's assumed turnaround.

    Analytes absent from `turnaround` get NaN (unknown availability: never counted as available).
    """
    t = labs["hours_since_infusion"].to_numpy(dtype="float64", na_value=np.nan)
    res = (labs["resulted_hours"].to_numpy(dtype="float64", na_value=np.nan) if "resulted_hours" in labs
           else np.full(t.size, np.nan))
    codes = list(turnaround)
    a = _index_in(labs["analyte"], codes) if len(labs) and codes else np.full(t.size, -1)
    hours = np.append(np.array([turnaround[c] for c in codes], dtype="float64"), np.nan)
    return np.where(np.isnan(res), t + hours[a], np.fmax(t, res))


def available_at(labs: pd.DataFrame, landmark_hours: float, turnaround: dict[str, float] | None = None) -> pd.DataFrame:
    """Rows visible to a prediction made at `landmark_hours` (`turnaround`: registry defaults if None)."""
    if turnaround is None:
        codes = labs["analyte"].astype(str).unique().tolist() if len(labs) else []
        turnaround = dict(effective_turnaround(codes))
    mask = (labs["hours_since_infusion"].to_numpy() <= landmark_hours) & (
        availability_hours(labs, turnaround) <= landmark_hours)
    return labs.loc[mask]


# ----------------------------------------------------------------------------- encoding (once)

def _strings(column: pd.Series | np.ndarray | Sequence[str]):
    """The column as an Arrow string array (zero-copy for pandas' Arrow-backed `str` dtype)."""
    import pyarrow as pa

    arr = pa.array(column, from_pandas=True)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = arr.cast(pa.string())
    return arr


def _index_in(column, values, mask: np.ndarray | None = None) -> np.ndarray:
    """Position of each entry of `column` (rows where `mask`) in `values`: int64, -1 where absent.

    Hashing runs in Arrow (~10x faster than pandas on 10M strings).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = _strings(column)
        if mask is not None:
            arr = arr.filter(pa.array(mask))
        return np.asarray(pc.index_in(arr, value_set=_strings(values)).fill_null(-1), dtype=np.int64)
    except (pa.ArrowException, TypeError, ValueError):  # exotic input: slower, same answer
        col = pd.Series(column).astype(str)
        col = col[mask] if mask is not None else col
        return pd.Index(pd.Series(values).astype(str)).get_indexer(col).astype(np.int64)


@dataclass(frozen=True)
class SortedLabs:
    """Labs as parallel numpy arrays sorted by (key, time, value, censor); key = patient × n_codes + analyte."""

    key: np.ndarray        # int64
    t: np.ndarray          # hours since infusion
    value: np.ndarray      # canonical unit
    log2v: np.ndarray      # log2(value), values clipped at 1e-9 so a reported 0 stays finite
    censor: np.ndarray     # int8: 0 exact, 1 "<" (below LLOQ), 2 ">" (above ULOQ)
    avail: np.ndarray      # when the result became known: max(draw time, resulted time)
    n_codes: int

    def rows_of_patients(self, first: int, stop: int) -> slice:
        """Row range of patients [first, stop) (keys are sorted, so it is one slice)."""
        lo, hi = np.searchsorted(self.key, [first * self.n_codes, stop * self.n_codes])
        return slice(int(lo), int(hi))


def encode_labs(labs: pd.DataFrame, patient_ids: pd.Series | np.ndarray, codes: Sequence[str],
                turnaround: Sequence[float] | np.ndarray | None = None) -> SortedLabs:
    """Encode and sort once. Rows of other analytes/patients, or without time or value, drop out.

    `turnaround`: hours assumed from draw to result per code (aligned with `codes`) for rows with no
    result time; None = the registry defaults (:func:`effective_turnaround`).
    """
    n_codes = len(codes)
    if turnaround is None:
        effective = dict(effective_turnaround(codes))
        turnaround = [effective[c] for c in codes]
    assumed = np.asarray(turnaround, dtype="float64")
    if labs.empty:
        empty = np.empty(0)
        return SortedLabs(np.empty(0, np.int64), empty, empty, empty, np.empty(0, np.int8), empty, n_codes)
    a = _index_in(labs["analyte"], list(codes))
    keep = a >= 0  # drop other analytes first: the patient hashing then sees only the rows we use
    p = _index_in(labs["patient_id"], patient_ids, keep)
    rows = np.flatnonzero(keep)  # one index array + take: cheaper than a boolean mask per column
    a = a.take(rows)
    t = labs["hours_since_infusion"].to_numpy(dtype="float64", na_value=np.nan).take(rows)
    v = labs["value"].to_numpy(dtype="float64", na_value=np.nan).take(rows)
    if "resulted_hours" in labs:
        res = labs["resulted_hours"].to_numpy(dtype="float64", na_value=np.nan).take(rows)
    else:
        res = np.full(t.size, np.nan)
    if "censor" in labs:
        c = _index_in(labs["censor"], ["", "<", ">"], keep)
        c = np.where(c < 0, 0, c).astype(np.int8)  # missing censor = exact
    else:
        c = np.zeros(t.size, np.int8)
    keep = (p >= 0) & np.isfinite(t) & np.isfinite(v)
    if not keep.all():
        a, p, t, v, res, c = a[keep], p[keep], t[keep], v[keep], res[keep], c[keep]
    # no result time: available at draw + the analyte's assumed turnaround (never "at draw" by silence)
    res = np.where(np.isnan(res), t + assumed.take(a), res)
    key = p * n_codes + a
    # One sort. Real tables usually arrive grouped by patient and time, so a stable sort on the
    # key alone is nearly free; only if that leaves time out of order or tied within a key do we
    # pay for the full total order (ties broken by value, then censor: shuffled input → same output).
    order = np.argsort(key, kind="stable")
    ks, ts = key[order], t[order]
    same = ks[1:] == ks[:-1]
    if (same & (ts[1:] <= ts[:-1])).any():
        order = np.lexsort((c, v, t, key))
        ks, ts = key[order], t[order]
    v, c, res = v[order], c[order], res[order]
    avail = np.fmax(ts, res)
    return SortedLabs(ks, ts, v, np.log2(np.maximum(v, 1e-9)), c, avail, n_codes)


@dataclass(frozen=True)
class SortedEvents:
    key: np.ndarray  # patient × n_types + event type
    t: np.ndarray
    n_types: int

    def rows_of_patients(self, first: int, stop: int) -> slice:
        lo, hi = np.searchsorted(self.key, [first * self.n_types, stop * self.n_types])
        return slice(int(lo), int(hi))


def encode_events(events: pd.DataFrame, patient_ids: pd.Series | np.ndarray, types: Sequence[str]) -> SortedEvents:
    n_types = len(types)
    if events is None or events.empty:
        return SortedEvents(np.empty(0, np.int64), np.empty(0), n_types)
    e = _index_in(events["event"], list(types))
    p = _index_in(events["patient_id"], patient_ids)
    t = events["hours_since_infusion"].to_numpy(dtype="float64", na_value=np.nan)
    keep = (e >= 0) & (p >= 0) & np.isfinite(t)
    key, t = p[keep] * n_types + e[keep], t[keep]
    order = np.lexsort((t, key))  # events are few: the full sort costs nothing
    return SortedEvents(key[order], t[order], n_types)


@dataclass(frozen=True)
class SortedGrades:
    """Recorded CRS grades over time (optional `grades` table), sorted by (patient, time)."""

    key: np.ndarray    # patient index
    t: np.ndarray
    grade: np.ndarray

    def rows_of_patients(self, first: int, stop: int) -> slice:
        lo, hi = np.searchsorted(self.key, [first, stop])
        return slice(int(lo), int(hi))


def encode_grades(grades: pd.DataFrame | None, patient_ids: pd.Series | np.ndarray) -> SortedGrades:
    """Rows with a patient, a time and a grade; others drop out (an ungraded record says nothing)."""
    if grades is None or grades.empty:
        return SortedGrades(np.empty(0, np.int64), np.empty(0), np.empty(0))
    p = _index_in(grades["patient_id"], patient_ids)
    t = pd.to_numeric(grades["hours_since_infusion"], errors="coerce").to_numpy("float64", na_value=np.nan)
    g = pd.to_numeric(grades["grade"], errors="coerce").to_numpy("float64", na_value=np.nan)
    keep = (p >= 0) & np.isfinite(t) & np.isfinite(g)
    p, t, g = p[keep], t[keep], g[keep]
    order = np.lexsort((g, t, p))
    return SortedGrades(p[order], t[order], g[order])


def _per_patient(p: np.ndarray, values: np.ndarray, n: int, ufunc: np.ufunc) -> np.ndarray:
    """`ufunc` (np.fmax / np.fmin) of `values` per patient index `p`; NaN for patients without any."""
    out = np.full(n, np.nan)
    ok = (p >= 0) & ~np.isnan(values)
    if ok.any():
        ufunc.at(out, p[ok], values[ok])
    return out


def patient_times(labs: SortedLabs, events: pd.DataFrame | None, grades: SortedGrades | None,
                  patient_ids: pd.Series | np.ndarray) -> PatientTimes:
    """Per patient (in `patient_ids` order): last record, first vasopressor, first recorded grade >= 3.

    The last record counts lab draws of the analytes in use (the streamed build reads only those),
    every treatment event and every recorded grade; it is a lower bound of follow-up
    (features/landmarks.py).
    """
    from features.landmarks import PROXY_EVENT, SEVERE_GRADE, PatientTimes

    n = len(patient_ids)
    last = np.full(n, np.nan)
    if labs.key.size:
        starts, _ = _segments(labs.key // labs.n_codes)
        last[labs.key[starts] // labs.n_codes] = np.maximum.reduceat(labs.t, starts)
    vaso = np.full(n, np.nan)
    if events is not None and len(events):
        p = _index_in(events["patient_id"], patient_ids)
        t = pd.to_numeric(events["hours_since_infusion"], errors="coerce").to_numpy("float64", na_value=np.nan)
        last = np.fmax(last, _per_patient(p, t, n, np.fmax))
        is_vaso = events["event"].astype(str).to_numpy() == PROXY_EVENT
        vaso = _per_patient(np.where(is_vaso, p, -1), t, n, np.fmin)
    severe = np.full(n, np.nan)
    if grades is not None and grades.key.size:
        last = np.fmax(last, _per_patient(grades.key, grades.t, n, np.fmax))
        severe = _per_patient(np.where(grades.grade >= SEVERE_GRADE, grades.key, -1), grades.t, n, np.fmin)
    return PatientTimes(last, vaso, severe)


def patient_chunks(n_patients: int, chunk_patients: int) -> Iterator[tuple[int, int]]:
    """[first, stop) patient ranges; bounds the per-landmark temporaries for big cohorts."""
    if chunk_patients < 1:
        raise ValueError(f"chunk_patients must be >= 1; got {chunk_patients}")
    for first in range(0, n_patients, chunk_patients):
        yield first, min(first + chunk_patients, n_patients)


# ----------------------------------------------------------------------------- per-landmark blocks

def _segments(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal keys (keys sorted, non-empty)."""
    starts = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    return starts, np.diff(np.append(starts, key.size))


def analyte_block(labs: SortedLabs, rows: slice, first_patient: int, n_patients: int,
                  landmark_hours: float, spec: FeatureSpec) -> np.ndarray:
    """Float64 array [n_codes, len(KINETIC_FEATURES), n_patients] for patients [first, first + n) at L.

    Laid out so that one analyte's features are consecutive rows of the chunk's output: no
    transpose afterwards, and each feature is one scatter into the flat array.
    """
    L = float(landmark_hours)
    lo, hi = spec.baseline_window_hours
    n_codes, nf = labs.n_codes, len(KINETIC_FEATURES)
    out = np.full((n_codes, nf, n_patients), np.nan)
    for name in ZERO_WHEN_ABSENT & set(KINETIC_FEATURES):
        out[:, _F[name], :] = 0.0
    # rows available at L, in sorted order; one index array + take is ~3x faster than 5 masks
    keep = np.flatnonzero(labs.avail[rows] <= L)
    n = keep.size
    if n == 0:
        return out
    key, t, y = labs.key[rows].take(keep), labs.t[rows].take(keep), labs.log2v[rows].take(keep)
    v, c = labs.value[rows].take(keep), labs.censor[rows].take(keep)
    starts, cnt = _segments(key)
    last = starts + cnt - 1
    idx = np.arange(n)

    # reference: the last draw in the baseline window, else (stated fallback) the first draw after it
    in_window = (t >= lo) & (t <= hi)
    post = t > hi
    b_idx = np.maximum.reduceat(np.where(in_window, idx, -1), starts)
    f_idx = np.minimum.reduceat(np.where(post, idx, n), starts)
    has_b = b_idx >= 0
    has_f = f_idx < n
    ref = np.where(has_b, b_idx, np.where(has_f, f_idx, -1))
    has_ref = ref >= 0
    ref_safe = np.maximum(ref, 0)
    ref_y = np.where(has_ref, y[ref_safe], np.nan)
    ref_row = np.repeat(ref, cnt)
    # comparison draws: after the reference in time order (all post-infusion). A fold change needs
    # one: a value compared with itself says nothing, so it stays NaN rather than a made-up 0.
    after_ref = (idx > ref_row) & (ref_row >= 0)
    fc = y - np.repeat(ref_y, cnt)
    n_after = np.add.reduceat(after_ref.astype(np.int64), starts)

    max_fc = np.maximum.reduceat(np.where(after_ref, fc, -np.inf), starts)
    max_fc[n_after == 0] = np.nan
    rise = after_ref & (fc >= np.log2(spec.rise_fold) - _RISE_TOLERANCE_LOG2)
    r_idx = np.minimum.reduceat(np.where(rise, idx, n), starts)
    rose = r_idx < n
    hours_since_rise = np.where(rose, L - t[np.minimum(r_idx, n - 1)], np.nan)
    # trapezoid from the reference draw through the comparison draws, in log2-fold × days
    seg = np.zeros(n)
    seg[1:] = 0.5 * (fc[1:] + fc[:-1]) * (t[1:] - t[:-1])
    auc = np.add.reduceat(np.where(after_ref, seg, 0.0), starts) / 24.0
    auc[n_after == 0] = np.nan

    # serial ratio of the last two draws, per 24 h (log2)
    prev = np.maximum(last - 1, 0)
    dt = t[last] - t[prev]
    ok = (cnt >= 2) & (dt > _SAME_TIME_HOURS)
    serial = np.where(ok, (y[last] - y[prev]) / np.where(ok, dt, 1.0) * 24.0, np.nan)

    # least-squares slope of log2 value over the trailing window [L - W, L], per 24 h. Centring
    # time on L and log values on the latest draw keeps it exact under rescaling of the values.
    w = t >= L - spec.trailing_window_hours
    tc = np.where(w, t - L, 0.0)
    yc = np.where(w, y - np.repeat(y[last], cnt), 0.0)
    nw = np.add.reduceat(w.astype(np.float64), starts)
    st, sy = np.add.reduceat(tc, starts), np.add.reduceat(yc, starts)
    stt, sty = np.add.reduceat(tc * tc, starts), np.add.reduceat(tc * yc, starts)
    den = nw * stt - st * st
    ok = (nw >= 2) & (den > 1e-9 * nw * stt)
    slope = np.where(ok, (nw * sty - st * sy) / np.where(ok, den, 1.0) * 24.0, np.nan)

    max_post = np.maximum.reduceat(np.where(post, v, -np.inf), starts)
    max_post[~np.isfinite(max_post)] = np.nan
    above = np.maximum.reduceat((c == 2).astype(np.int8), starts).astype(np.float64)

    cols = {
        "baseline": np.where(has_b, v[np.maximum(b_idx, 0)], np.nan),
        "latest": v[last],
        "log2_fc": np.where(n_after > 0, y[last] - ref_y, np.nan),
        "max_log2_fc": max_fc,
        "serial_log2_ratio_per24h": serial,
        "n_draws": cnt.astype(np.float64),
        "hours_since_last": L - t[last],
        "has_baseline": has_b.astype(np.float64),
        "latest_censored": (c[last] != 0).astype(np.float64),
        "ref_is_fallback": (~has_b & has_f).astype(np.float64),
        "reference_censored": np.where(has_ref, (c[ref_safe] != 0).astype(np.float64), np.nan),
        "any_above_uloq": above,
        "max_since_infusion": max_post,
        "slope_log2_per24h": slope,
        "hours_since_kfold_rise": hours_since_rise,
        "auc_log2_fc_days": auc,
    }
    g = key[starts] - first_patient * n_codes
    base = (g % n_codes) * (nf * n_patients) + g // n_codes  # flat position of feature 0
    flat = out.reshape(-1)
    for j, f in enumerate(KINETIC_FEATURES):
        flat[base + j * n_patients] = cols[f]
    return out


def event_block(events: SortedEvents, rows: slice, first_patient: int, n_patients: int,
                landmark_hours: float) -> np.ndarray:
    """[n_types, len(EVENT_FEATURES), n_patients] for patients [first, first + n) at L."""
    n_types, nf = events.n_types, len(EVENT_FEATURES)
    out = np.full((n_types, nf, n_patients), np.nan)
    out[:, 0:2, :] = 0.0  # an events table was supplied: no record = not given
    key, t = events.key[rows], events.t[rows]
    m = t <= landmark_hours  # given at or before L; anything later never counts
    key, t = key[m], t[m]
    if key.size:
        starts, cnt = _segments(key)
        g = key[starts] - first_patient * n_types
        e, p = g % n_types, g // n_types
        out[e, 0, p] = 1.0
        out[e, 1, p] = cnt
        out[e, 2, p] = landmark_hours - t[starts]
        out[e, 3, p] = landmark_hours - t[starts + cnt - 1]
    return out


def grade_block(grades: SortedGrades, rows: slice, first_patient: int, n_patients: int,
                landmark_hours: float) -> np.ndarray:
    """[1, n_patients]: highest grade recorded at or before L (0 when none yet: a grades table exists)."""
    out = np.zeros((1, n_patients))
    key, t, g = grades.key[rows], grades.t[rows], grades.grade[rows]
    m = t <= landmark_hours  # recorded at or before L; a later record never counts
    key, g = key[m], g[m]
    if key.size:
        starts, _ = _segments(key)
        out[0, key[starts] - first_patient] = np.maximum.reduceat(g, starts)
    return out


def features_for_chunk(labs: SortedLabs, events: SortedEvents | None, first: int, stop: int,
                       landmark_hours: float, spec: FeatureSpec, grades: SortedGrades | None = None) -> np.ndarray:
    """[len(spec.feature_names()), stop - first] float64 for one patient chunk at one landmark.

    `events=None`: no events table was supplied, so treatment features are unknown (NaN).
    `grades=None`: no time-resolved grades, so `current_grade` is unknown (NaN).
    """
    n = stop - first
    blk = analyte_block(labs, labs.rows_of_patients(first, stop), first, n, landmark_hours, spec)
    na = len(spec.analytes)
    parts = [blk[:na].reshape(-1, n)]
    cov_idx = [_F[f] for f in COVARIATE_ANALYTE_FEATURES]
    parts.append(blk[na:][:, cov_idx, :].reshape(-1, n))
    pos = {a: i for i, a in enumerate(spec.analytes)}
    fc, rise = _F["log2_fc"], _F["hours_since_kfold_rise"]
    for a, b in spec.pairs:
        parts.append(np.stack([blk[pos[a], fc] - blk[pos[b], fc],
                               blk[pos[b], rise] - blk[pos[a], rise]]))  # t_rise(a) - t_rise(b)
    if spec.event_types:
        if events is None:
            parts.append(np.full((len(spec.event_columns()), n), np.nan))
        else:
            ev = event_block(events, events.rows_of_patients(first, stop), first, n, landmark_hours)
            parts.append(ev.reshape(-1, n))
    if spec.current_grade:
        if grades is None:
            parts.append(np.full((len(GRADE_FEATURES), n), np.nan))
        else:
            parts.append(grade_block(grades, grades.rows_of_patients(first, stop), first, n, landmark_hours))
    return np.concatenate(parts, axis=0)


# ----------------------------------------------------------------------------- public frames

def _spec(analytes: Sequence[str], baseline_window_hours: tuple[float, float], **options) -> FeatureSpec:
    pairs = options.pop("cross_analyte_pairs", DEFAULT_CROSS_PAIRS)
    return FeatureSpec(analytes=tuple(analytes),
                       baseline_window_hours=(float(baseline_window_hours[0]), float(baseline_window_hours[1])),
                       cross_analyte_pairs=tuple((str(a), str(b)) for a, b in pairs),
                       **{k: _option(v) for k, v in options.items()})


def _option(value):
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple(value) if isinstance(value, list) else value


def _encoded_array(sl: SortedLabs, se: SortedEvents | None, sg: SortedGrades | None, n: int,
                   landmarks: Sequence[float], spec: FeatureSpec, chunk_patients: int) -> np.ndarray:
    out = np.empty((len(spec.feature_names()), n, len(landmarks)))
    for first, stop in patient_chunks(n, chunk_patients):
        for j, L in enumerate(landmarks):  # a handful of landmarks, each a vectorised pass
            out[:, first:stop, j] = features_for_chunk(sl, se, first, stop, L, spec, sg)
    return out


def feature_array(labs: pd.DataFrame, patient_ids: pd.Series, landmarks: Sequence[float], spec: FeatureSpec,
                  events: pd.DataFrame | None = None, chunk_patients: int = 10_000,
                  grades: pd.DataFrame | None = None) -> np.ndarray:
    """[n_features, n_patients, n_landmarks] for `patient_ids` in the given order."""
    sl = encode_labs(labs, patient_ids, spec.codes, spec.turnaround_of_codes())
    se = encode_events(events, patient_ids, spec.event_types) if events is not None else None
    sg = encode_grades(grades, patient_ids) if grades is not None else None
    return _encoded_array(sl, se, sg, len(patient_ids), landmarks, spec, chunk_patients)


def kinetic_features_at(labs: pd.DataFrame, landmark_hours: float, analytes: Sequence[str],
                        baseline_window_hours: tuple[float, float], events: pd.DataFrame | None = None,
                        grades: pd.DataFrame | None = None, **options) -> pd.DataFrame:
    """Wide frame indexed by patient_id (patients with any lab row) with columns `<CODE>__<feature>`."""
    spec = _spec(analytes, baseline_window_hours, **options)
    ids = pd.Series(np.sort(labs["patient_id"].astype(str).unique()), dtype=object)
    arr = feature_array(labs, ids, [landmark_hours], spec, events, grades=grades)[:, :, 0]
    return pd.DataFrame(arr.T, index=pd.Index(ids, name="patient_id"), columns=spec.feature_names())


def landmark_matrix(labs: pd.DataFrame, patients: pd.DataFrame, landmarks: Sequence[float],
                    horizon_hours: float, analytes: Sequence[str],
                    baseline_window_hours: tuple[float, float],
                    covariates: list[str] | None = None, events: pd.DataFrame | None = None,
                    chunk_patients: int = 10_000, grades: pd.DataFrame | None = None, **options) -> pd.DataFrame:
    """patient_id, landmark_hours, eligible, label, outcome_status, covariates and features: one row
    per patient × landmark (eligibility, labels and statuses: features/landmarks.py).

    Rows are sorted by (patient_id, landmark_hours). `options` are the other FeatureSpec fields
    (trailing_window_hours, rise_fold, cross_analyte_pairs, covariate_analytes, event_types,
    turnaround_hours). `events=None` means "not recorded": event features are NaN, not "not given";
    `grades=None` means no time-resolved grades: `current_grade` is NaN.
    """
    from features.landmarks import landmark_rows

    spec = _spec(analytes, baseline_window_hours, **options)
    covariates = covariates if covariates is not None else ["therapy", "disease", "age_years"]
    landmarks = sorted({float(x) for x in landmarks})
    pats = patients.assign(patient_id=patients["patient_id"].astype(str))
    pats = pats.sort_values("patient_id", kind="mergesort").reset_index(drop=True)
    ids = pats["patient_id"]
    sl = encode_labs(labs, ids, spec.codes, spec.turnaround_of_codes())
    se = encode_events(events, ids, spec.event_types) if events is not None else None
    sg = encode_grades(grades, ids) if grades is not None else None
    rows = landmark_rows(pats, landmarks, horizon_hours, patient_times(sl, events, sg, ids))  # patient-major
    arr = _encoded_array(sl, se, sg, len(pats), landmarks, spec, chunk_patients)
    # the [features, rows] block is what pandas stores: wrap it, don't copy it
    feats = pd.DataFrame(arr.reshape(arr.shape[0], -1).T, columns=spec.feature_names(), copy=False)
    cov = pats.reindex(columns=covariates).iloc[np.repeat(np.arange(len(pats)), len(landmarks))]
    matrix = pd.concat([rows.reset_index(drop=True), cov.reset_index(drop=True), feats], axis=1)
    return matrix
