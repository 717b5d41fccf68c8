"""Decision curves per landmark with patient-bootstrap bands.

Net benefit = TP/n − FP/n · pt/(1 − pt) at each threshold probability pt (Vickers & Elkin 2006),
for each model that outputs a probability, beside "treat all" and "treat none" (0). The band at each
threshold is the percentile interval over patient-level bootstrap resamples (all of a patient's
landmark rows together; the same resamples for every model and threshold of a scope). Pure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.bootstrap import bootstrap_draws, percentile_ci
from models.metrics import (
    net_benefit,
    net_benefit_treat_all,
    net_benefit_treat_all_weighted,
    net_benefit_weighted,
)

TREAT_ALL, TREAT_NONE = "treat_all", "treat_none"


def scope_curves(frame: pd.DataFrame, models: dict[str, str], thresholds: np.ndarray, n_boot: int, seed: int,
                 level: float = 0.95) -> pd.DataFrame:
    """Long table (model, threshold, net_benefit, ci_low, ci_high) for one set of rows.

    `models`: column of `frame` → model name; a model is judged on the rows where it has a score
    (its net benefit per patient-landmark row of that set)."""
    y = frame["label"].to_numpy().astype(int)
    pid = frame["patient_id"].to_numpy()
    thresholds = np.asarray(thresholds, dtype="float64")
    scores = {name: frame[col].to_numpy(dtype="float64") for col, name in models.items() if col in frame}
    scores = {name: s for name, s in scores.items() if (~np.isnan(s)).any()}
    point = {TREAT_ALL: net_benefit_treat_all(y, thresholds)}
    for name, s in scores.items():
        ok = ~np.isnan(s)
        point[name] = net_benefit(y[ok], s[ok], thresholds)

    def statistic(W: np.ndarray) -> dict[str, np.ndarray]:
        out = {TREAT_ALL: net_benefit_treat_all_weighted(y, thresholds, W)}
        for name, s in scores.items():
            ok = ~np.isnan(s)
            out[name] = net_benefit_weighted(y[ok], s[ok], thresholds, W if ok.all() else W[:, ok])
        return out

    draws = bootstrap_draws(pid, statistic, n_boot, seed) if n_boot > 0 else {}
    parts = []
    for name, values in point.items():
        if name in draws:
            lo, hi = percentile_ci(draws[name].reshape(n_boot, -1), level)
        else:
            lo = hi = np.full(thresholds.size, np.nan)
        parts.append(pd.DataFrame({"model": name, "threshold": thresholds, "net_benefit": values,
                                   "ci_low": lo, "ci_high": hi}))
    parts.append(pd.DataFrame({"model": TREAT_NONE, "threshold": thresholds, "net_benefit": 0.0,
                               "ci_low": 0.0, "ci_high": 0.0}))
    return pd.concat(parts, ignore_index=True)


def decision_curves(frame: pd.DataFrame, models: dict[str, str], thresholds: np.ndarray, n_boot: int, seed: int,
                    level: float = 0.95) -> pd.DataFrame:
    """:func:`scope_curves` pooled and per landmark, one long table with a `scope` column ("pooled", "24h", ...)."""
    scopes = [("pooled", frame)] + [(f"{L:g}h", g) for L, g in frame.groupby("landmark_hours", sort=True)]
    return pd.concat([scope_curves(g, models, thresholds, n_boot, seed, level).assign(scope=name)
                      for name, g in scopes], ignore_index=True)[
        ["scope", "model", "threshold", "net_benefit", "ci_low", "ci_high"]]
