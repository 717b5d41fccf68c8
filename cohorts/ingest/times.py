"""Clock times -> hours since infusion. Vectorised; imprecise or unparseable times are never guessed."""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = np.timedelta64(1, "h")


def num(series: pd.Series) -> pd.Series:
    """Numbers from any column (text, nullable ints) as plain float64; anything else NaN."""
    out = pd.to_numeric(series, errors="coerce")
    return pd.Series(np.asarray(out.to_numpy(dtype="float64", na_value=np.nan)), index=series.index)


def plausible_years(ts: pd.Series) -> pd.Series:
    """Dates outside 1900-2199 (e.g. '0.0' read as year 0) become NaT; the rest datetime64[ns]."""
    year = ts.dt.year
    ts = ts.mask((year < 1900) | (year > 2199))
    return ts.astype("datetime64[ns]")


def parse_datetimes(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """ISO 8601 text -> (naive datetime64, problem '' | missing_time | imprecise_time | unparseable_time).

    A date without a clock time ('2024-03-01') is `imprecise_time`: placing it at midnight could put a
    result before the landmark it was really drawn after. Offsets (+02:00, Z) are converted to UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        ts = raw.dt.tz_convert(None) if getattr(raw.dt, "tz", None) is not None else raw
        problem = pd.Series(np.where(ts.isna(), "missing_time", ""), index=raw.index, dtype=object)
        return ts.astype("datetime64[ns]"), problem
    text = raw.astype("string").str.strip()
    blank = (text.isna() | (text == "")).to_numpy()
    try:
        ts = pd.to_datetime(text, format="ISO8601", errors="coerce")
    except (ValueError, TypeError):  # a mix of offsets and naive times
        ts = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    ts = plausible_years(ts)
    problem = pd.Series("", index=raw.index, dtype=object)
    problem[(ts.isna().to_numpy()) & ~blank] = "unparseable_time"
    short = (text.str.len() < 16).fillna(False).to_numpy() & ~blank & ts.notna().to_numpy()
    problem[short] = "imprecise_time"
    ts[short] = pd.NaT
    problem[blank] = "missing_time"
    return ts, problem


def infusion_of(patient_ids: pd.Series, infusion: pd.Series) -> pd.Series:
    """Each row's infusion datetime (NaT where unknown), whatever `infusion` holds (empty included:
    pandas cannot map through an empty datetime Series)."""
    if not len(infusion):
        return pd.Series(pd.NaT, index=patient_ids.index, dtype="datetime64[ns]")
    if not infusion.index.is_unique:
        infusion = infusion[~infusion.index.duplicated()]
    ref = infusion.astype("datetime64[ns]").reindex(pd.Index(patient_ids.astype(str).to_numpy()))
    return pd.Series(ref.to_numpy(), index=patient_ids.index, dtype="datetime64[ns]")


def hours_from(ts: pd.Series, patient_ids: pd.Series, infusion: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Hours between each time and its patient's infusion (`infusion`: patient_id -> datetime)."""
    ref = infusion_of(patient_ids, infusion)
    hours = (ts - ref) / HOUR
    problem = pd.Series(np.where(ref.isna() & ts.notna(), "no_infusion_time", ""), index=ts.index, dtype=object)
    return hours.astype("float64"), problem


def parse_hours(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numeric hours since infusion (text accepted, decimal comma too); problem for blanks and text."""
    from cohorts.ingest.values import parse_values

    value, censor, problem = parse_values(raw)
    problem = problem.replace({"missing_value": "missing_time", "unparseable_value": "unparseable_time"})
    problem[(censor != "").to_numpy()] = "unparseable_time"
    value[problem.to_numpy() != ""] = np.nan
    return value, problem


def iso_duration_hours(raw: pd.Series) -> pd.Series:
    """ISO 8601 durations as in SDTM --ELTM ('PT2H', '-PT30M', 'P1DT4H') -> hours; NaN otherwise."""
    text = raw.astype("string").str.strip().str.upper()
    parts = text.str.extract(r"^(?P<sign>-)?P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
                             r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
    ok = parts[["d", "h", "m", "s"]].notna().any(axis=1)
    total = (parts["d"].astype(float).fillna(0) * 24 + parts["h"].astype(float).fillna(0)
             + parts["m"].astype(float).fillna(0) / 60 + parts["s"].astype(float).fillna(0) / 3600)
    total = total.where(parts["sign"].isna(), -total)
    return total.where(ok).astype("float64")
