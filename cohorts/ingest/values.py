"""Numbers as laboratories write them: '12.5', '2,5', '<2.5', '>5000', '≤1', blanks. Vectorised.

Rules (stated, never guessed):
- a decimal comma is accepted when it cannot be a thousands separator ('2,5', '0,75');
  a comma followed by exactly three digits ('5,000') is ambiguous (5 or 5000) and quarantined;
- '<x' / '<=x' / '≤x' is below the assay's limit (value x, censor '<'); '>x' / '>=x' / '≥x' above it;
- blank or missing -> `missing_value`; anything else -> `unparseable_value`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_PATTERN = r"^(?P<op><=|>=|<|>|≤|≥)?\s*(?P<num>[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?)$"


def parse_values(raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Return (value float, censor '', '<' or '>', problem '' | missing_value | unparseable_value)."""
    idx = raw.index
    censor = pd.Series("", index=idx, dtype=object)
    problem = pd.Series("", index=idx, dtype=object)
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        value = raw.astype("float64")
        problem[value.isna().to_numpy()] = "missing_value"
        problem[np.isinf(value.to_numpy())] = "unparseable_value"
        return value, censor, problem
    value = pd.to_numeric(raw, errors="coerce").astype("float64")  # fast path: plain numbers
    todo = value.isna().to_numpy()
    blank = np.zeros(len(raw), dtype=bool)
    if todo.any():
        text = raw[todo].astype("string").str.strip()
        sub_blank = (text.isna() | (text == "")).to_numpy()
        blank[todo] = sub_blank
        rest = np.flatnonzero(todo)[~sub_blank]
        if len(rest):
            parts = text[~sub_blank].str.extract(_PATTERN)
            num = parts["num"]
            ambiguous = num.str.contains(r",\d{3}$", regex=True, na=False)
            parsed = pd.to_numeric(num.str.replace(",", ".", regex=False), errors="coerce")
            parsed[ambiguous.to_numpy()] = np.nan
            value.iloc[rest] = parsed.to_numpy(dtype="float64", na_value=np.nan)
            op = parts["op"].fillna("")
            censor.iloc[rest] = np.where(op.isin(["<", "<=", "≤"]), "<",
                                         np.where(op.isin([">", ">=", "≥"]), ">", ""))
    blank = pd.Series(blank, index=idx)
    problem[blank.to_numpy()] = "missing_value"
    bad = (value.isna() | np.isinf(value)).to_numpy() & ~blank.to_numpy()
    problem[bad] = "unparseable_value"
    censor[problem.to_numpy() != ""] = ""
    return value, censor, problem
