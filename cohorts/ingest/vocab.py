"""Analyte names, codes and units as people write them -> canonical codes and conversion factors.

Everything comes from the registry table `data/reference/analytes.csv`; nothing is hard-coded here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from cohorts.registry import analyte_registry, registry_path

_GREEK = {"γ": "gamma", "α": "alpha", "β": "beta"}
_SUPERSCRIPT = str.maketrans({"⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "⁵": "5",
                              "⁶": "6", "⁷": "7", "⁸": "8", "⁹": "9"})


def norm_name(text: str) -> str:
    """'IL-6', 'IL 6', 'il6' -> 'il6'; 'IFN-γ' -> 'ifngamma'; LOINC '26881-3' -> '268813'."""
    t = str(text).strip().lower()
    for g, word in _GREEK.items():
        t = t.replace(g, word)
    return re.sub(r"[^0-9a-z]", "", t)


def norm_unit(text: str) -> str:
    """'x10^3/µL', '10³/uL', '10*3/uL', '10E3/uL' -> '10^3/ul'; 'pg/mL' -> 'pg/ml'."""
    t = str(text).strip().translate(_SUPERSCRIPT).lower()
    t = t.replace("µ", "u").replace("μ", "u").replace("×", "x").replace(" ", "")
    t = re.sub(r"10(?:\*\*|\*|e|\^)?([0-9])(?=/)", r"10^\1", t)  # 10*9/L, 10E9/L, 10^9/L, 109/L
    t = re.sub(r"^[x*]", "", t)
    return t


@dataclass(frozen=True)
class Vocab:
    names: dict[str, str]                 # normalised name/code/LOINC -> analyte code
    factors: dict[tuple[str, str], float]  # (analyte, normalised unit) -> factor to canonical unit
    units: dict[str, list[str]]            # analyte -> accepted units as written in the registry
    canonical_unit: dict[str, str]
    plausible: pd.DataFrame                # index analyte: plausible_min, plausible_max


@lru_cache(maxsize=4)
def _vocab(path: str) -> Vocab:
    reg = analyte_registry()
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    factors: dict[tuple[str, str], float] = {}
    units: dict[str, list[str]] = {}
    for row in reg.itertuples(index=False):  # a dozen registry rows, not data rows
        code = row.analyte
        aliases = [code, row.label, row.sdtm_lbtestcd, row.loinc,
                   *str(row.synonyms).split("|"), *str(getattr(row, "loinc_other", "")).split("|")]
        for alias in filter(None, (str(a).strip() for a in aliases)):
            key = norm_name(alias)
            if key in owner and owner[key] != code:
                raise ValueError(f"analytes.csv: synonym {alias!r} maps to both {owner[key]} and {code}")
            owner[key] = code
            names[key] = code
        units[code] = []
        for item in filter(None, str(row.unit_conversions).split("|")):
            unit, _, factor = item.rpartition("=")
            factors[(code, norm_unit(unit))] = float(factor)
            units[code].append(unit)
        factors[(code, norm_unit(row.canonical_unit))] = 1.0
    plausible = reg[["plausible_min", "plausible_max"]].astype(float)
    return Vocab(names, factors, units, dict(zip(reg["analyte"], reg["canonical_unit"], strict=True)),
                 plausible)


def vocab() -> Vocab:
    return _vocab(str(registry_path()))


def _map_uniques(series: pd.Series, fn, dtype: str = "object") -> pd.Series:
    """Apply a Python function to the distinct values only (a handful), then broadcast: vectorised.

    dtype 'str' gives an Arrow string column, 'float' a float64 column (NaN for None), else object.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = [fn(u) for u in uniques]
    if dtype == "str":
        arr = pd.array([None if m is None else str(m) for m in mapped] or [None], dtype="str")
        return pd.Series(arr.take(codes, allow_fill=True), index=series.index)
    if dtype == "float":
        table = np.array([np.nan if m is None else float(m) for m in mapped] + [np.nan], dtype="float64")
        return pd.Series(table[codes], index=series.index)
    table = np.array(mapped + [None], dtype=object)
    return pd.Series(table[codes], index=series.index)


def map_analytes(names: pd.Series) -> pd.Series:
    """Canonical analyte code per row (Arrow string), or missing when the name/code is not in the registry."""
    v = vocab()
    return _map_uniques(names, lambda u: v.names.get(norm_name(u)), "str")


def unit_keys(units: pd.Series) -> pd.Series:
    return _map_uniques(units, lambda u: norm_unit(u) if str(u).strip() else None, "str")


def unit_factors(analytes: pd.Series, unit_norm: pd.Series) -> pd.Series:
    """Factor to the canonical unit, NaN when the unit is not accepted for that analyte."""
    v = vocab()
    a_codes, a_uniq = pd.factorize(analytes, use_na_sentinel=True)
    u_codes, u_uniq = pd.factorize(unit_norm, use_na_sentinel=True)
    width = len(u_uniq) + 1
    pair = (a_codes + 1) * width + (u_codes + 1)  # 0 encodes a missing side
    a_names = [None, *map(str, a_uniq)]
    u_names = [None, *map(str, u_uniq)]
    pair_codes, pair_uniq = pd.factorize(pair)
    table = np.array([v.factors.get((a_names[p // width], u_names[p % width]), np.nan) for p in pair_uniq]
                     + [np.nan], dtype="float64")
    return pd.Series(table[pair_codes], index=analytes.index)
