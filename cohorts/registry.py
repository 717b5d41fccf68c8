"""The analyte registry: canonical codes, units, codes and assay limits, from a reference table."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from crs_settings import reference_dir


@lru_cache(maxsize=4)
def _load(path: str) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"loinc": str, "loinc_other": str, "sdtm_lbtestcd": str}, keep_default_na=False)
    table["core"] = table["core"].astype(str).str.lower() == "true"
    for col in ("plausible_min", "plausible_max", "lloq", "uloq", "default_turnaround_hours"):
        if col in table:
            table[col] = pd.to_numeric(table[col], errors="coerce")
    return table.set_index("analyte", drop=False)


def analyte_registry(path: Path | None = None) -> pd.DataFrame:
    """One row per canonical analyte code (IL6, IFNG, CRP, FERRITIN, ANG2, ...)."""
    return _load(str(path or registry_path())).copy()


def registry_path() -> Path:
    return reference_dir() / "analytes.csv"


def analyte_codes(path: Path | None = None) -> list[str]:
    return analyte_registry(path)["analyte"].tolist()


def core_analytes(path: Path | None = None) -> list[str]:
    reg = analyte_registry(path)
    return reg.loc[reg["core"], "analyte"].tolist()


def analyte_label(code: str) -> str:
    reg = analyte_registry()
    return str(reg.loc[code, "label"]) if code in reg.index else code


def default_turnaround_hours(path: Path | None = None) -> dict[str, float]:
    """Analyte code -> hours from draw to result assumed for a lab row with no result time.

    Every analyte must state one (0 for routine same-day labs): a missing result time is never
    silently "known at the draw".
    """
    reg = analyte_registry(path)
    where = path or registry_path()
    if "default_turnaround_hours" not in reg:
        raise ValueError(f"{where}: the analyte registry needs a default_turnaround_hours column (hours from "
                         "draw to result, used for lab rows without a result time)")
    hours = reg["default_turnaround_hours"]
    bad = hours.isna() | (hours < 0)
    if bad.any():
        raise ValueError(f"{where}: default_turnaround_hours must be a number >= 0 for every analyte; "
                         f"check {reg.loc[bad, 'analyte'].tolist()}")
    return {str(k): float(v) for k, v in hours.items()}
