"""scikit-learn transformer: landmark matrix → model-ready float64 features.

The fitted state (feature definition, category levels, feature order, the effective result
turnaround per analyte) is persisted as JSON and shipped inside the registered model, so training
and serving use one object and one availability rule.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.kinetics import (
    CORE_ANALYTES,
    DEFAULT_COVARIATE_ANALYTES,
    DEFAULT_CROSS_PAIRS,
    EVENT_TYPES,
    FeatureSpec,
    landmark_matrix,
)

ID_COLUMNS = ["patient_id", "landmark_hours", "eligible", "label", "outcome_status"]


class KineticFeatures(TransformerMixin, BaseEstimator):
    """Turns a landmark matrix (from :meth:`build`) into numeric model inputs.

    `build` computes the landmark matrix from canonical tables (labs, patients, optional events);
    `fit` learns the categorical levels; `transform` returns float64 columns in a fixed order.
    Categorical covariates are one-hot encoded; a level unseen in training (another product,
    another disease) becomes all-zero, never an error.

    Input is the landmark-matrix DataFrame, not a bare numeric array: identifiers and raw
    categorical covariates travel with it (see tests/test_transformer_checks.py for which
    scikit-learn estimator checks therefore apply).
    """

    def __init__(self, analytes: tuple[str, ...] = CORE_ANALYTES,
                 baseline_window_hours: tuple[float, float] = (-168.0, 0.0),
                 horizon_hours: float = 72.0,
                 categorical: tuple[str, ...] = ("therapy", "disease"),
                 numeric_covariates: tuple[str, ...] = ("age_years",),
                 trailing_window_hours: float = 48.0,
                 rise_fold: float = 4.0,
                 cross_analyte_pairs: tuple[tuple[str, str], ...] = DEFAULT_CROSS_PAIRS,
                 covariate_analytes: tuple[str, ...] = DEFAULT_COVARIATE_ANALYTES,
                 event_types: tuple[str, ...] = EVENT_TYPES,
                 chunk_patients: int = 10_000,
                 assume_turnaround_hours: dict[str, float] | None = None,
                 current_grade: bool = True) -> None:
        self.analytes = analytes
        self.baseline_window_hours = baseline_window_hours
        self.horizon_hours = horizon_hours
        self.categorical = categorical
        self.numeric_covariates = numeric_covariates
        self.trailing_window_hours = trailing_window_hours
        self.rise_fold = rise_fold
        self.cross_analyte_pairs = cross_analyte_pairs
        self.covariate_analytes = covariate_analytes
        self.event_types = event_types
        self.chunk_patients = chunk_patients
        # per-analyte override of the registry's default_turnaround_hours (hours from draw to result
        # assumed for lab rows without a result time); fitted as `turnaround_hours_` and shipped
        self.assume_turnaround_hours = assume_turnaround_hours
        self.current_grade = current_grade  # feature from the grades table (see FeatureSpec)

    # params.yaml `featurize` key -> constructor argument (the one mapping from configuration)
    PARAM_KEYS = {"analytes": "analytes", "baseline_window_hours": "baseline_window_hours",
                  "horizon_hours": "horizon_hours", "categorical_covariates": "categorical",
                  "numeric_covariates": "numeric_covariates", "trailing_window_hours": "trailing_window_hours",
                  "rise_fold": "rise_fold", "cross_analyte_pairs": "cross_analyte_pairs",
                  "covariate_analytes": "covariate_analytes", "event_types": "event_types",
                  "chunk_patients": "chunk_patients", "assume_turnaround_hours": "assume_turnaround_hours",
                  "current_grade": "current_grade"}

    @classmethod
    def from_params(cls, featurize: dict[str, Any]) -> KineticFeatures:
        """The transformer params.yaml's `featurize` section describes (keys it does not name keep
        the constructor defaults; keys that only configure the stage, e.g. landmarks, are ignored)."""
        kwargs: dict[str, Any] = {}
        for key, arg in cls.PARAM_KEYS.items():
            if key not in featurize:
                continue
            value = featurize[key]
            if arg == "cross_analyte_pairs":
                value = tuple(tuple(str(x) for x in pair) for pair in value)
            elif arg in ("horizon_hours", "trailing_window_hours", "rise_fold"):
                value = float(value)
            elif arg == "chunk_patients":
                value = int(value)
            elif arg == "baseline_window_hours":
                value = tuple(float(x) for x in value)
            elif arg == "assume_turnaround_hours":
                value = {str(k): float(v) for k, v in (value or {}).items()} or None
            elif arg == "current_grade":
                value = bool(value)
            else:
                value = tuple(str(x) for x in value)
            kwargs[arg] = value
        return cls(**kwargs)

    def spec(self) -> FeatureSpec:
        """The feature definition (validated) these parameters describe."""
        return FeatureSpec(analytes=tuple(self.analytes),
                           baseline_window_hours=(float(self.baseline_window_hours[0]),
                                                  float(self.baseline_window_hours[1])),
                           trailing_window_hours=float(self.trailing_window_hours),
                           rise_fold=float(self.rise_fold),
                           cross_analyte_pairs=tuple((str(a), str(b)) for a, b in self.cross_analyte_pairs),
                           covariate_analytes=tuple(self.covariate_analytes),
                           event_types=tuple(self.event_types),
                           turnaround_hours=tuple(self.turnaround_map().items()),
                           current_grade=bool(self.current_grade))

    def turnaround_map(self) -> dict[str, float]:
        """Hours from draw to result assumed per analyte for rows without a result time: the fitted
        (shipped) map once fitted, else the registry defaults with `assume_turnaround_hours` applied."""
        if hasattr(self, "turnaround_hours_"):
            return dict(self.turnaround_hours_)
        from features.kinetics import effective_turnaround

        codes = (*self.analytes, *self.covariate_analytes)
        return dict(effective_turnaround(codes, dict(self.assume_turnaround_hours or {})))

    # -- building the landmark matrix from canonical tables (the same code at train and serve time)
    def build(self, labs: pd.DataFrame, patients: pd.DataFrame, landmarks: list[float],
              events: pd.DataFrame | None = None, grades: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per patient × landmark: ids, eligibility, label, outcome status, covariates, features.

        `events=None` means no treatment record exists: treatment features are NaN (unknown),
        never a silent "not given". Pass the (possibly empty) events table when one exists.
        `grades` (patient_id, hours_since_infusion, grade): time-resolved CRS grades, if the cohort
        has them; `current_grade` is NaN without.
        """
        spec = self.spec()
        return landmark_matrix(labs, patients, landmarks, self.horizon_hours, list(spec.analytes),
                               spec.baseline_window_hours,
                               covariates=[*self.categorical, *self.numeric_covariates], events=events,
                               chunk_patients=int(self.chunk_patients), grades=grades,
                               trailing_window_hours=spec.trailing_window_hours, rise_fold=spec.rise_fold,
                               cross_analyte_pairs=spec.cross_analyte_pairs,
                               covariate_analytes=spec.covariate_analytes, event_types=spec.event_types,
                               turnaround_hours=spec.turnaround_hours, current_grade=spec.current_grade)

    def fit(self, X: pd.DataFrame, y: Any = None) -> KineticFeatures:
        X = self._check_frame(X)
        self.categories_ = {c: sorted(X[c].dropna().astype(str).unique().tolist()) if c in X else []
                            for c in self.categorical}
        self.turnaround_hours_ = self.turnaround_map()
        self.kinetic_columns_ = self.spec().feature_names()
        self.feature_names_out_ = np.array(
            ["landmark_hours", *self.numeric_covariates, *self.kinetic_columns_,
             *[f"{c}={v}" for c in self.categorical for v in self.categories_[c]]], dtype=object)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "feature_names_out_")
        X = self._check_frame(X)
        onehot = {f"{c}={v}": (c, v) for c in self.categorical for v in self.categories_[c]}
        as_text = {c: X[c].astype(str).to_numpy() for c in self.categorical if c in X}
        cols: dict[str, np.ndarray] = {}
        for name in self.feature_names_out_:
            if name in onehot:
                c, v = onehot[name]
                cols[name] = ((as_text[c] == v).astype("float64") if c in as_text
                              else np.zeros(len(X)))
            elif name in X:
                cols[name] = pd.to_numeric(X[name], errors="coerce").to_numpy("float64")
            else:  # a feature the input does not carry is unknown, not zero
                cols[name] = np.full(len(X), np.nan)
        return pd.DataFrame(cols, index=X.index)[list(self.feature_names_out_)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is data here: "not measured before L"
        return tags

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_out_")
        return self.feature_names_out_.copy()

    def _check_frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame) or "landmark_hours" not in X:
            raise ValueError("KineticFeatures expects the landmark matrix DataFrame from build() "
                             f"(with a 'landmark_hours' column); got {type(X).__name__}")
        return X

    # -- persistence (JSON, no pickle)
    def to_dict(self) -> dict[str, Any]:
        check_is_fitted(self, "feature_names_out_")
        return {"params": _jsonable(self.get_params()),
                "categories": self.categories_, "feature_names": list(self.feature_names_out_),
                "turnaround_hours": self.turnaround_map()}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> KineticFeatures:
        p = dict(spec["params"])
        # parameters absent from an older saved model keep their defaults
        tuples = ("analytes", "baseline_window_hours", "categorical", "numeric_covariates",
                  "covariate_analytes", "event_types")
        kwargs: dict[str, Any] = {k: tuple(p[k]) for k in tuples if k in p}
        if "cross_analyte_pairs" in p:
            kwargs["cross_analyte_pairs"] = tuple(tuple(pair) for pair in p["cross_analyte_pairs"])
        for k in ("horizon_hours", "trailing_window_hours", "rise_fold"):
            if k in p:
                kwargs[k] = float(p[k])
        if "chunk_patients" in p:
            kwargs["chunk_patients"] = int(p["chunk_patients"])
        # a model saved before the feature existed was trained without it
        kwargs["current_grade"] = bool(p.get("current_grade", False))
        if p.get("assume_turnaround_hours"):
            kwargs["assume_turnaround_hours"] = {str(k): float(v) for k, v in p["assume_turnaround_hours"].items()}
        obj = cls(**kwargs)
        # the availability rule the model was trained with; a model saved before result turnaround
        # existed was trained with "available at draw" for rows without a result time: keep that
        codes = (*obj.analytes, *obj.covariate_analytes)
        obj.turnaround_hours_ = ({str(k): float(v) for k, v in spec["turnaround_hours"].items()}
                                 if "turnaround_hours" in spec else dict.fromkeys(codes, 0.0))
        obj.categories_ = {k: list(v) for k, v in spec["categories"].items()}
        obj.feature_names_out_ = np.array(spec["feature_names"], dtype=object)
        onehots = {f"{c}={v}" for c, vs in obj.categories_.items() for v in vs}
        obj.kinetic_columns_ = [f for f in spec["feature_names"]
                                if f not in onehots and f not in ("landmark_hours", *obj.numeric_covariates)]
        obj.n_features_in_ = None
        return obj

    def save(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)

    @classmethod
    def load(cls, path: str) -> KineticFeatures:
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value
