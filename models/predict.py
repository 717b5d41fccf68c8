"""The serving path: canonical tables → one row per patient × landmark with a status, a probability,
a risk band and the top drivers.

Used by the registered pyfunc and by `crs score` (chunk by chunk): the same transformer and
booster as training, so there is no training/serving skew.

Statuses, first match wins:
- ``already_severe``: a known current severe status (``severe_onset_hours``, a recorded grade >= 3
  or, ASTCT-graded, a vasopressor at or before the landmark) — the question "will it become
  severe?" no longer applies;
- ``invalid_input``: every lab row of the patient was quarantined by ingest (nothing usable);
- ``no_data_before_landmark``: no result of any analyte the model reads was available at the
  landmark (drawn and resulted by then);
- ``outside_trained_landmarks`` (``as_of_latest`` only): the patient's time lies outside the
  landmarks the model was trained on (``bundle.meta["landmarks_hours"]``) by more than the
  tolerance (params ``score.landmark_tolerance_hours``): the model never saw such a time, so no
  probability is given;
- ``no_baseline``: results exist, but none of the model's kinetic analytes (IL-6, IFN-γ, CRP,
  ferritin, Ang-2) has a pre-infusion baseline result available. The model's main signal is the
  rise over each patient's own baseline; rows like this were 0.3% of training rows, so the
  probability would be an extrapolation and is not given;
- ``scored``: probability, risk band and (per the reasons policy) drivers.

Values the model never saw (another product or disease, a panel without cytokines) are
missing/unknown features, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from models.bundle import ModelBundle
from models.drivers import (
    TOP_K,
    driver_columns,
    driver_frame,
    empty_drivers,
    parse_reasons,
)

STATUSES = ["scored", "already_severe", "invalid_input", "no_data_before_landmark", "outside_trained_landmarks",
            "no_baseline"]
OUTCOME_COLUMNS = ("crs_max_grade", "crs_onset_hours")  # never model input; severe_onset_hours = known status
BASE_COLUMNS = ["patient_id", "landmark_hours", "status", "probability", "risk_band"]


def output_columns(k: int = TOP_K) -> list[str]:
    return [*BASE_COLUMNS, *driver_columns(k)]


def risk_band(probability: np.ndarray, edges: list[float]) -> np.ndarray:
    """'low' / 'intermediate' / 'high' by the band edges (probabilities) in params."""
    names = np.array(["low", "intermediate", "high"])
    band = names[np.digitize(probability, edges)].astype(object)
    band[np.isnan(probability)] = ""
    return band


def band_edges_of(bundle: ModelBundle) -> list[float]:
    return list(bundle.meta.get("risk_band_edges") or [0.1, 0.3])


def landmark_tolerance(hours: float | None = None) -> float:
    """Hours a time may lie outside the trained landmarks and still be scored (params
    ``score.landmark_tolerance_hours``: the project's, or the packaged defaults)."""
    if hours is not None:
        return float(hours)
    from crs_settings import load_params

    return float(load_params()["score"]["landmark_tolerance_hours"])


def trained_range(bundle: ModelBundle, tolerance_hours: float | None = None) -> tuple[float, float] | None:
    """(first, last) time in hours the model may be asked about: its trained landmarks ± the tolerance;
    None for a model that does not record its landmarks."""
    hours = bundle.meta.get("landmarks_hours")
    if not hours:
        return None
    tol = landmark_tolerance(tolerance_hours)
    return min(float(x) for x in hours) - tol, max(float(x) for x in hours) + tol


def predict_cohort(bundle: ModelBundle, labs: pd.DataFrame, patients: pd.DataFrame,
                   landmarks: list[float] | None, band_edges: list[float] | None = None,
                   events: pd.DataFrame | None = None, *, reasons: str | None = None,
                   as_of_latest: bool = False, invalid_patients: Iterable[str] | None = None,
                   top_k: int = TOP_K, landmark_tolerance_hours: float | None = None,
                   grades: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every input patient × landmark appears in the output, with a status (see module doc).

    `events` (treatments given): None means not recorded, so treatment features are unknown (NaN).
    `grades` (patient_id, hours_since_infusion, grade: the CRS grade course recorded at the bedside):
    None means not recorded, so `current_grade` is unknown (NaN); a grade counts from its recorded
    time, and a grade >= 3 recorded by then makes the patient `already_severe`.
    `reasons`: 'all' | 'none' | 'above:P'; default above the first risk band edge.
    `as_of_latest`: score each patient once, at the time their latest result became available
    (landmark_hours = that time; NaN for a patient without any result the model reads).
    `invalid_patients`: ids whose every lab row was quarantined upstream.
    `landmark_tolerance_hours` (``as_of_latest``): see :func:`trained_range`; default from params.
    """
    band_edges = list(band_edges or band_edges_of(bundle))
    policy = parse_reasons(reasons, band_edges[0])
    serving = patients.drop(columns=[c for c in OUTCOME_COLUMNS if c in patients])
    outside = None
    if as_of_latest:
        matrix, unknown_time = latest_matrix(bundle, labs, serving, events, grades)
        span = trained_range(bundle, landmark_tolerance_hours)
        if span is not None:
            when = matrix["landmark_hours"].to_numpy("float64")
            outside = ~unknown_time & ((when < span[0]) | (when > span[1]))
    else:
        if not landmarks:
            from cohorts.errors import CohortError

            raise CohortError("Give landmarks (hours since infusion) or as_of_latest=True")
        matrix = bundle.features.build(labs, serving, landmarks, events=events, grades=grades)
        unknown_time = np.zeros(len(matrix), dtype=bool)
    return score_matrix(bundle, matrix, band_edges, policy, invalid_patients, unknown_time, top_k, outside)


def row_status(bundle: ModelBundle, matrix: pd.DataFrame, invalid_patients: Iterable[str] | None = None,
               outside: np.ndarray | None = None) -> np.ndarray:
    """Status per landmark-matrix row (first match wins; see module doc)."""
    kf = bundle.features
    n = len(matrix)
    draws = np.zeros(n)
    for code in (*kf.analytes, *kf.covariate_analytes):
        col = f"{code}__n_draws"
        if col in matrix:
            draws += np.nan_to_num(matrix[col].to_numpy("float64"))
    baseline = np.zeros(n, dtype=bool)
    for code in kf.analytes:
        col = f"{code}__has_baseline"
        if col in matrix:
            baseline |= np.nan_to_num(matrix[col].to_numpy("float64")) > 0
    invalid = (matrix["patient_id"].isin(pd.Index(list(invalid_patients))).to_numpy()
               if invalid_patients is not None else np.zeros(n, dtype=bool))
    eligible = matrix["eligible"].to_numpy(dtype=bool)
    outside = np.zeros(n, dtype=bool) if outside is None else np.asarray(outside, dtype=bool)
    return np.select([~eligible, invalid, draws == 0, outside, ~baseline],
                     ["already_severe", "invalid_input", "no_data_before_landmark", "outside_trained_landmarks",
                      "no_baseline"], default="scored").astype(object)


def sentence_context(bundle: ModelBundle) -> dict:
    """What driver sentences need to know of the model's features (k of the k-fold rise, trend window)."""
    kf = bundle.features
    return {"rise_fold": float(kf.rise_fold), "trailing_window_hours": float(kf.trailing_window_hours)}


def score_matrix(bundle: ModelBundle, matrix: pd.DataFrame, band_edges: list[float], policy,
                 invalid_patients: Iterable[str] | None = None, unknown_time: np.ndarray | None = None,
                 top_k: int = TOP_K, outside: np.ndarray | None = None) -> pd.DataFrame:
    """Landmark matrix → output rows (statuses, calibrated probability, risk band, drivers)."""
    status = row_status(bundle, matrix, invalid_patients, outside)
    n = len(matrix)
    probability = np.full(n, np.nan)
    drivers = empty_drivers(n, top_k)
    todo = np.flatnonzero(status == "scored")
    if todo.size:
        X = bundle.features.transform(matrix.iloc[todo])
        probability[todo] = bundle.probability(X)
        want = policy.wants(probability[todo])
        if want.any():
            rows = todo[want]
            sub = matrix.iloc[rows]
            values, bias, shown = bundle.explain(sub)
            # which reference each fold change used: the full kinetic features say (a compact input does not)
            references = None if bundle.kinetic is bundle.features else bundle.kinetic.transform(sub)
            explained = driver_frame(values, shown, list(shown.columns), top_k,
                                     margin=values.sum(axis=1) + bias, calibration=bundle.calibration,
                                     context=sentence_context(bundle), references=references)
            for col in explained.columns:  # positional scatter, one array per column
                target = drivers[col].to_numpy(copy=True)
                target[rows] = explained[col].to_numpy()
                drivers[col] = target
    landmark = matrix["landmark_hours"].to_numpy("float64", copy=True)
    if unknown_time is not None and unknown_time.any():
        landmark[unknown_time] = np.nan
    out = pd.DataFrame({"patient_id": matrix["patient_id"].astype(str).to_numpy(), "landmark_hours": landmark,
                        "status": status, "probability": probability,
                        "risk_band": risk_band(probability, band_edges)})
    return pd.concat([out, drivers], axis=1)[output_columns(top_k)]


def latest_times(labs: pd.DataFrame, codes: Iterable[str], turnaround: dict[str, float] | None = None) -> pd.Series:
    """Per patient: when their latest result of an analyte in `codes` became available, in hours
    (a row without a result time: draw + the model's assumed turnaround for that analyte)."""
    from features.kinetics import availability_hours, effective_turnaround

    codes = list(codes)
    turnaround = turnaround if turnaround is not None else dict(effective_turnaround(codes))
    rows = labs[labs["analyte"].isin(codes).to_numpy()]
    t = pd.to_numeric(rows["hours_since_infusion"], errors="coerce").to_numpy("float64")
    v = pd.to_numeric(rows["value"], errors="coerce").to_numpy("float64")
    avail = availability_hours(rows, turnaround)
    ok = np.isfinite(t) & np.isfinite(v) & np.isfinite(avail)
    avail = pd.Series(avail[ok], index=rows["patient_id"].astype(str).to_numpy()[ok])
    return avail.groupby(level=0, sort=False).max()


def latest_matrix(bundle: ModelBundle, labs: pd.DataFrame, patients: pd.DataFrame,
                  events: pd.DataFrame | None,
                  grades: pd.DataFrame | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Landmark matrix with each patient at their own latest-result time.

    The feature engine's own pieces (encode once, then one vectorised pass per run of patients
    sharing a time), assembled like `landmark_matrix` (tested equal to `build` at that time).
    Returns (matrix sorted by patient_id, mask of rows whose patient has no result at all).
    """
    from features.kinetics import (
        encode_events,
        encode_grades,
        encode_labs,
        features_for_chunk,
        patient_times,
    )
    from features.landmarks import known_severe_hours

    kf = bundle.features
    spec = kf.spec()
    ids = patients["patient_id"].astype(str).to_numpy()
    latest = latest_times(labs, spec.codes, dict(spec.turnaround_hours)).reindex(ids)
    none = latest.isna().to_numpy()
    when = np.where(none, 0.0, latest.to_numpy("float64"))  # no result: any time gives "no data"
    order = np.lexsort((ids, when))  # patients sharing a time are contiguous
    pats = patients.iloc[order].assign(patient_id=ids[order]).reset_index(drop=True)
    when, none = when[order], none[order]
    sl = encode_labs(labs, pats["patient_id"], spec.codes, spec.turnaround_of_codes())
    se = encode_events(events, pats["patient_id"], spec.event_types) if events is not None else None
    sg = encode_grades(grades, pats["patient_id"]) if grades is not None else None
    n = len(pats)
    feats = np.empty((len(spec.feature_names()), n))
    if n:
        starts = np.flatnonzero(np.r_[True, when[1:] != when[:-1]])
        for first, stop in zip(starts, np.r_[starts[1:], n], strict=True):
            feats[:, first:stop] = features_for_chunk(sl, se, int(first), int(stop), float(when[first]), spec, sg)
    # known severe status: graded onset, a recorded grade >= 3, or (ASTCT) a vasopressor (features/landmarks.py)
    severe = known_severe_hours(pats, patient_times(sl, events, sg, pats["patient_id"]))
    rows = pd.DataFrame({"patient_id": pats["patient_id"].to_numpy(), "landmark_hours": when,
                         "eligible": ~(severe <= when), "label": np.nan})
    cov = pats.reindex(columns=[*kf.categorical, *kf.numeric_covariates])
    matrix = pd.concat([rows, cov, pd.DataFrame(feats.T, columns=spec.feature_names(), copy=False)], axis=1)
    back = np.argsort(pats["patient_id"].to_numpy(), kind="stable")
    return matrix.iloc[back].reset_index(drop=True), none[back]
