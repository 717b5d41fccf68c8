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


def _map_uniques(series: pd.Series, fn) -> pd.Series:
    """Apply a Python function to the distinct values only (a handful), then broadcast: vectorised."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=series.index)


def map_analytes(names: pd.Series) -> pd.Series:
    """Canonical analyte code per row, or None when the name/code is not in the registry."""
    v = vocab()
    return _map_uniques(names.astype("string"), lambda u: v.names.get(norm_name(u)))


def unit_keys(units: pd.Series) -> pd.Series:
    return _map_uniques(units.astype("string"), lambda u: norm_unit(u) if str(u).strip() else None)


def unit_factors(analytes: pd.Series, unit_norm: pd.Series) -> pd.Series:
    """Factor to the canonical unit, NaN when the unit is not accepted for that analyte."""
    v = vocab()
    pair = analytes.astype("string").fillna("") + "\x00" + unit_norm.astype("string").fillna("")
    return _map_uniques(pair, lambda p: v.factors.get(tuple(p.split("\x00")), np.nan)).astype(float)
