"""Per-analyte kinetic features as of a landmark, as vectorised group operations.

Only results *available* at L count: drawn at or before L and, where a result time is
known, resulted at or before L. No per-patient Python loop: one sort, then groupby.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINETIC_FEATURES = ["baseline", "latest", "log2_fc", "max_log2_fc", "serial_log2_ratio_per24h",
                    "n_draws", "hours_since_last", "has_baseline", "latest_censored"]


def available_at(labs: pd.DataFrame, landmark_hours: float) -> pd.DataFrame:
    """Rows visible to a prediction made at `landmark_hours`."""
    resulted = labs["resulted_hours"]
    mask = (labs["hours_since_infusion"] <= landmark_hours) & (resulted.isna() | (resulted <= landmark_hours))
    return labs.loc[mask]


def _sorted(labs: pd.DataFrame) -> pd.DataFrame:
    # a total order (time, then value, then censor) so that shuffled input gives identical output
    return labs.sort_values(["patient_id", "analyte", "hours_since_infusion", "value", "censor"],
                            kind="mergesort")


def kinetic_features_at(labs: pd.DataFrame, landmark_hours: float, analytes: list[str],
                        baseline_window_hours: tuple[float, float]) -> pd.DataFrame:
    """Wide frame indexed by patient_id with columns `<ANALYTE>__<feature>` for one landmark."""
    lo, hi = baseline_window_hours
    avail = _sorted(available_at(labs[labs["analyte"].isin(analytes)], landmark_hours))
    keys = ["patient_id", "analyte"]
    log_v = np.log2(avail["value"].clip(lower=1e-9))
    avail = avail.assign(log2_value=log_v)
    g = avail.groupby(keys, sort=False, observed=True)
    out = pd.DataFrame({
        "latest": g["value"].last(),
        "latest_log2": g["log2_value"].last(),
        "latest_censored": g["censor"].last().ne("").astype("float64"),
        "n_draws": g.size().astype("float64"),
        "hours_since_last": landmark_hours - g["hours_since_infusion"].last(),
    })
    pre = avail[(avail["hours_since_infusion"] >= lo) & (avail["hours_since_infusion"] <= hi)]
    base = pre.groupby(keys, sort=False, observed=True)["log2_value"].last().rename("baseline_log2")
    out = out.join(base, how="left")
    out["has_baseline"] = out["baseline_log2"].notna().astype("float64")
    out["baseline"] = np.exp2(out["baseline_log2"])
    out["log2_fc"] = out["latest_log2"] - out["baseline_log2"]
    post = avail.join(base, on=keys, how="inner")
    post = post[post["hours_since_infusion"] > hi]
    out["max_log2_fc"] = (post["log2_value"] - post["baseline_log2"]).groupby(
        [post["patient_id"], post["analyte"]], sort=False, observed=True).max()
    # serial ratio of the last two draws, normalised per 24 h
    prev_t = g["hours_since_infusion"].shift(1)
    prev_v = g["log2_value"].shift(1)
    step = avail.assign(dt=avail["hours_since_infusion"] - prev_t, dv=avail["log2_value"] - prev_v)
    last_step = step.groupby(keys, sort=False, observed=True)[["dt", "dv"]].last()
    out["serial_log2_ratio_per24h"] = np.where(last_step["dt"] > 0,
                                               last_step["dv"] / last_step["dt"] * 24.0, np.nan)
    out = out[KINETIC_FEATURES]
    wide = out.unstack("analyte")
    wide.columns = [f"{a}__{f}" for f, a in wide.columns]
    columns = [f"{a}__{f}" for a in analytes for f in KINETIC_FEATURES]
    wide = wide.reindex(columns=columns)
    # an analyte never drawn: counts are 0 and indicators 0, not NaN
    for a in analytes:
        for f in ("n_draws", "has_baseline"):
            wide[f"{a}__{f}"] = wide[f"{a}__{f}"].fillna(0.0)
    return wide


def landmark_matrix(labs: pd.DataFrame, patients: pd.DataFrame, landmarks: list[float],
                    horizon_hours: float, analytes: list[str],
                    baseline_window_hours: tuple[float, float],
                    covariates: list[str] | None = None) -> pd.DataFrame:
    """patient_id, landmark_hours, eligible, label, covariates and kinetic features: one row per patient × landmark."""
    from features.landmarks import landmark_rows

    covariates = covariates if covariates is not None else ["therapy", "disease", "age_years"]
    rows = landmark_rows(patients, landmarks, horizon_hours)
    cov = patients.set_index("patient_id").reindex(columns=covariates)
    parts = []
    for L in landmarks:  # a handful of landmarks, each a vectorised pass
        wide = kinetic_features_at(labs, L, analytes, baseline_window_hours)
        block = rows[rows["landmark_hours"] == L].join(wide, on="patient_id")
        parts.append(block)
    matrix = pd.concat(parts, ignore_index=True).join(cov, on="patient_id")
    feature_cols = [c for c in matrix.columns if "__" in c]
    for a in analytes:
        for f in ("n_draws", "has_baseline"):
            matrix[f"{a}__{f}"] = matrix[f"{a}__{f}"].fillna(0.0)
    ordered = ["patient_id", "landmark_hours", "eligible", "label", *covariates, *feature_cols]
    return matrix[ordered].sort_values(["patient_id", "landmark_hours"], kind="mergesort").reset_index(drop=True)
