"""Honest comparators on the same folds as the kinetics model.

(a) logistic regression on single absolute values at L; (b) the same model family (XGBoost) on
absolute values only; (c) published scores computed as given, never refitted: m-EASIX and EASIX
from the latest values at L; (d) prevalence only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def single_value_columns(columns: list[str], analytes: list[str]) -> list[str]:
    """Latest absolute value of each analyte at L, plus the landmark time."""
    return ["landmark_hours", *[c for c in (f"{a}__latest" for a in analytes) if c in columns]]


def absolute_only_columns(columns: list[str]) -> list[str]:
    """Everything that is not baseline-relative or serial: covariates, latest values, censor flags."""
    keep_suffixes = ("__latest", "__latest_censored", "__max_since_infusion")
    return [c for c in columns if "__" not in c or c.endswith(keep_suffixes)]


def _log_positive(X: np.ndarray) -> np.ndarray:
    return np.log(np.clip(X, 1e-6, None))


def single_value_logistic() -> object:
    """Log-transformed latest values, median-imputed with missing indicators, standardised."""
    return make_pipeline(FunctionTransformer(_log_positive), SimpleImputer(strategy="median", add_indicator=True,
                                                                          keep_empty_features=True),
                         StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))


def m_easix(X: pd.DataFrame) -> np.ndarray:
    """m-EASIX = LDH (U/L) × CRP (mg/dL) / platelets (10⁹/L); CRP is stored in mg/L, hence / 10."""
    return _ratio(X, "LDH__latest", "CRP__latest", "PLT__latest", scale=0.1)


def easix(X: pd.DataFrame) -> np.ndarray:
    """EASIX = LDH (U/L) × creatinine (mg/dL) / platelets (10⁹/L)."""
    return _ratio(X, "LDH__latest", "CREAT__latest", "PLT__latest", scale=1.0)


def _ratio(X: pd.DataFrame, a: str, b: str, c: str, scale: float) -> np.ndarray:
    if not {a, b, c} <= set(X.columns):
        return np.full(len(X), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = X[a].to_numpy() * X[b].to_numpy() * scale / X[c].to_numpy()
    return np.where(np.isfinite(value), value, np.nan)


# m-EASIX at the times it was published for (Pennisi et al. 2021: AUROC for severe CRS from values on
# day -1 and day +1 of CAR-T infusion), not only at the landmark
PUBLISHED_M_EASIX_HOURS = {"m_easix_day_minus1": -24.0, "m_easix_day_plus1": 24.0}
M_EASIX_INPUTS = ("LDH", "CRP", "PLT")


def m_easix_at(labs: pd.DataFrame, patient_ids: pd.Series | np.ndarray, hours: float, **options) -> np.ndarray:
    """m-EASIX per patient from the latest LDH, CRP and platelets available at `hours` since infusion
    (the feature engine's availability rule: drawn and resulted by then); NaN without all three.
    `options`: further FeatureSpec fields (e.g. turnaround_hours)."""
    from features.kinetics import kinetic_features_at

    ids = pd.Series(np.asarray(patient_ids)).astype(str)
    use = labs[labs["analyte"].astype(str).isin(M_EASIX_INPUTS)]
    if use.empty:
        return np.full(len(ids), np.nan)
    X = kinetic_features_at(use, hours, analytes=(), baseline_window_hours=(-168.0, 0.0),
                            covariate_analytes=M_EASIX_INPUTS, cross_analyte_pairs=(), event_types=(), **options)
    return m_easix(X.reindex(ids.to_numpy()))


def published_m_easix(labs: pd.DataFrame, rows: pd.DataFrame, **options) -> pd.DataFrame:
    """Columns m_easix_day_minus1 / m_easix_day_plus1 for each row (patient_id, landmark_hours): the
    patient's score at that time, NaN where the time is after the row's landmark (not yet known)."""
    pids = rows["patient_id"].astype(str)
    unique = pd.unique(pids)
    out = {}
    for column, hours in PUBLISHED_M_EASIX_HOURS.items():
        per_patient = pd.Series(m_easix_at(labs, unique, hours, **options), index=unique)
        value = per_patient.reindex(pids.to_numpy()).to_numpy()
        out[column] = np.where(rows["landmark_hours"].to_numpy(dtype="float64") >= hours, value, np.nan)
    return pd.DataFrame(out, index=rows.index)


MIN_CELL_ROWS = 20  # a therapy x landmark cell with fewer training rows takes its landmark's rate


def case_mix_prevalence(rows: pd.DataFrame) -> np.ndarray:
    """Product case-mix alone: for each row, the outcome rate among *training-fold* rows of the same
    therapy at the same landmark (`rows`: label, fold, therapy, landmark_hours; fold < 0 = no
    training rows known, NaN). Cells with fewer than MIN_CELL_ROWS training rows fall back to the
    landmark's rate, then to the training rate."""
    out = np.full(len(rows), np.nan)
    fold = rows["fold"].to_numpy()
    frame = pd.DataFrame({"label": rows["label"].to_numpy(dtype="float64"),
                          "therapy": rows["therapy"].astype(str).to_numpy(),
                          "landmark_hours": rows["landmark_hours"].to_numpy(dtype="float64")})
    for k in np.unique(fold[fold >= 0]):
        train, test = frame[fold != k], frame[fold == k]
        cell = train.groupby(["therapy", "landmark_hours"])["label"].agg(["mean", "size"])
        cell = cell[cell["size"] >= MIN_CELL_ROWS]["mean"]
        by_landmark = train.groupby("landmark_hours")["label"].mean()
        idx = pd.MultiIndex.from_arrays([test["therapy"], test["landmark_hours"]])
        rate = cell.reindex(idx).to_numpy()
        rate = np.where(np.isnan(rate), by_landmark.reindex(test["landmark_hours"]).to_numpy(), rate)
        out[fold == k] = np.where(np.isnan(rate), train["label"].mean(), rate)
    return out
