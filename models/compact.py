"""The compact, pre-specified feature set read by the compact candidate families.

Per core analyte: latest value, log2 fold change vs baseline, max log2 fold change so far and the
trend (slope) over the trailing window; the current CRS grade where the cohort records a grade
course (NaN otherwise); platelets (latest); the landmark time; and the therapy class (one-hot),
from the product through ``data/reference/therapy_classes.csv`` (an unlisted product is class
``other``). Which columns, and the known directions (monotone constraints), come from
params.yaml ``train.compact``.

:class:`CompactFeatures` wraps the fitted :class:`~features.transformer.KineticFeatures` (which
builds the landmark matrix, exactly as for the full model) and turns the landmark matrix into the
booster's input. For the linear family it also standardises: ``latest`` values on the log2 scale,
every numeric column centred and scaled on the training rows, a missing value set to 0 (the
training mean) with a 1/0 indicator column wherever the training rows had both missing and
observed values. The fitted state (class table, centres, scales) is JSON in the model folder,
so serving needs neither the reference table nor the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.transformer import KineticFeatures

THERAPY_CLASS_FILE = "therapy_classes.csv"
CLASS_PREFIX = "therapy_class="
OTHER_CLASS = "other"
MISSING_SUFFIX = "__missing"
_LOG_FLOOR = 1e-6  # values at or below 0 (never plausible for these analytes) are floored before log2


@dataclass(frozen=True)
class CompactSpec:
    """Which landmark-matrix columns the compact families read, and the known directions
    (params.yaml `train.compact`: the one place these are written)."""

    analytes: tuple[str, ...]
    per_analyte: tuple[str, ...]
    covariates: tuple[str, ...]
    monotone: dict[str, int]

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> CompactSpec:
        monotone = {str(k): int(v) for k, v in (section.get("monotone") or {}).items()}
        bad = {k: v for k, v in monotone.items() if v not in (-1, 1)}
        if bad:
            raise ValueError(f"train.compact.monotone values must be 1 or -1; got {bad}")
        return cls(analytes=tuple(str(a) for a in section["analytes"]),
                   per_analyte=tuple(str(k) for k in section["per_analyte"]),
                   covariates=tuple(str(c) for c in section["covariates"]), monotone=monotone)

    def numeric_columns(self) -> list[str]:
        return [*(f"{a}__{k}" for a in self.analytes for k in self.per_analyte), *self.covariates]

    def to_dict(self) -> dict[str, Any]:
        return {"analytes": list(self.analytes), "per_analyte": list(self.per_analyte),
                "covariates": list(self.covariates), "monotone": dict(self.monotone)}


def therapy_classes(reference: Path | None = None) -> dict[str, str]:
    """Product → therapy class, from the reference table (never code constants)."""
    from crs_settings import reference_dir

    table = pd.read_csv((reference or reference_dir()) / THERAPY_CLASS_FILE, dtype=str, keep_default_na=False)
    return dict(zip(table["therapy"].str.strip(), table["therapy_class"].str.strip(), strict=True))


def class_levels(mapping: dict[str, str]) -> list[str]:
    """Every class of the table, in table order, `other` last (fixed columns, whatever the cohort)."""
    levels = list(dict.fromkeys(mapping.values()))
    return [c for c in levels if c != OTHER_CLASS] + [OTHER_CLASS]


@dataclass
class LinearScaling:
    """Standardisation for the linear family, fitted on training rows only."""

    columns: list[str]
    log2: list[bool]
    center: list[float]
    scale: list[float]
    indicators: list[str]

    @classmethod
    def fit(cls, raw: pd.DataFrame, binary: set[str]) -> LinearScaling:
        cols, logs, centers, scales, indicators = [], [], [], [], []
        for c in raw.columns:
            is_log = c.endswith("__latest")
            v = _on_scale(raw[c].to_numpy("float64"), is_log)
            seen = np.isfinite(v)
            if c in binary or not seen.any():
                center, scale = 0.0, 1.0
            else:
                center = float(v[seen].mean())
                sd = float(v[seen].std())
                scale = sd if sd > 1e-12 else 1.0
            if 0 < seen.sum() < len(v):
                indicators.append(c)
            cols.append(c)
            logs.append(is_log)
            centers.append(center)
            scales.append(scale)
        return cls(cols, logs, centers, scales, indicators)

    def names(self) -> list[str]:
        return [*self.columns, *(f"{c}{MISSING_SUFFIX}" for c in self.indicators)]

    def apply(self, raw: pd.DataFrame) -> pd.DataFrame:
        out: dict[str, np.ndarray] = {}
        for c, is_log, center, scale in zip(self.columns, self.log2, self.center, self.scale, strict=True):
            v = (_on_scale(raw[c].to_numpy("float64"), is_log) - center) / scale
            out[c] = np.where(np.isfinite(v), v, 0.0)
        for c in self.indicators:
            out[f"{c}{MISSING_SUFFIX}"] = (~np.isfinite(raw[c].to_numpy("float64"))).astype("float64")
        return pd.DataFrame(out, index=raw.index)[self.names()]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "log2": self.log2, "center": self.center, "scale": self.scale,
                "indicators": self.indicators}


def _on_scale(v: np.ndarray, is_log: bool) -> np.ndarray:
    if not is_log:
        return v
    with np.errstate(invalid="ignore"):
        return np.log2(np.clip(v, _LOG_FLOOR, None))


class CompactFeatures:
    """Landmark matrix → compact model input, around a fitted KineticFeatures (see module doc)."""

    def __init__(self, kinetic: KineticFeatures, spec: CompactSpec, classes: dict[str, str],
                 linear: bool = False) -> None:
        self.kinetic = kinetic
        self.compact_spec = spec
        self.classes = dict(classes)
        self.levels = class_levels(self.classes)
        self.linear = linear
        self.scaling: LinearScaling | None = None

    # -- what the serving path reads from the transformer (the same landmark matrix as the full model)
    @property
    def analytes(self) -> tuple[str, ...]:
        return tuple(self.kinetic.analytes)

    @property
    def covariate_analytes(self) -> tuple[str, ...]:
        return tuple(self.kinetic.covariate_analytes)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(self.kinetic.categorical)

    @property
    def numeric_covariates(self) -> tuple[str, ...]:
        return tuple(self.kinetic.numeric_covariates)

    @property
    def horizon_hours(self) -> float:
        return float(self.kinetic.horizon_hours)

    def spec(self):
        return self.kinetic.spec()

    def __getattr__(self, name: str) -> Any:
        """Anything else the serving path asks of the feature transformer (its build settings) is
        the wrapped KineticFeatures': one landmark matrix for every family."""
        if name.startswith("_") or name == "kinetic":
            raise AttributeError(name)
        return getattr(self.kinetic, name)

    def build(self, labs: pd.DataFrame, patients: pd.DataFrame, landmarks: list[float],
              events: pd.DataFrame | None = None, **kwargs: Any) -> pd.DataFrame:
        return self.kinetic.build(labs, patients, landmarks, events=events, **kwargs)

    # -- compact columns
    def class_columns(self) -> list[str]:
        return [f"{CLASS_PREFIX}{c}" for c in self.levels]

    def therapy_class(self, therapy: pd.Series | None, n: int) -> np.ndarray:
        if therapy is None:
            return np.full(n, OTHER_CLASS, dtype=object)
        text = therapy.astype(str).str.strip()
        return text.map(self.classes).fillna(OTHER_CLASS).to_numpy(dtype=object)

    def raw(self, matrix: pd.DataFrame) -> pd.DataFrame:
        """The compact columns in their own units (what drivers and plots show)."""
        full = self.kinetic.transform(matrix)
        cols: dict[str, np.ndarray] = {}
        for c in self.compact_spec.numeric_columns():
            if c in full:
                cols[c] = full[c].to_numpy("float64")
            elif c in matrix:  # e.g. current_grade before the transformer carries it
                cols[c] = pd.to_numeric(matrix[c], errors="coerce").to_numpy("float64")
            else:  # not recorded in this cohort (no grade course, no platelets): unknown
                cols[c] = np.full(len(matrix), np.nan)
        klass = self.therapy_class(matrix["therapy"] if "therapy" in matrix else None, len(matrix))
        for level, name in zip(self.levels, self.class_columns(), strict=True):
            cols[name] = (klass == level).astype("float64")
        return pd.DataFrame(cols, index=matrix.index)

    def fit(self, matrix: pd.DataFrame, y: Any = None) -> CompactFeatures:
        if self.linear:
            self.scaling = LinearScaling.fit(self.raw(matrix), set(self.class_columns()))
        return self

    def transform(self, matrix: pd.DataFrame) -> pd.DataFrame:
        raw = self.raw(matrix)
        return self.scaling.apply(raw) if self.linear and self.scaling is not None else raw

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = (self.scaling.names() if self.linear and self.scaling is not None
                 else [*self.compact_spec.numeric_columns(), *self.class_columns()])
        return np.array(names, dtype=object)

    def monotone_constraints(self, columns: list[str]) -> str:
        """XGBoost's `monotone_constraints` for these columns, in their order."""
        return "(" + ",".join(str(self.compact_spec.monotone.get(c, 0)) for c in columns) + ")"

    # -- explanations in the compact columns' own units
    def display(self, matrix: pd.DataFrame) -> pd.DataFrame:
        return self.raw(matrix)

    def group(self, values: np.ndarray, columns: list[str]) -> np.ndarray:
        """Contributions per booster input → per displayed column: a missing indicator's share is
        added to its column (the sum, and so the margin, is unchanged)."""
        shown = list(self.raw_names())
        where = {c: i for i, c in enumerate(shown)}
        out = np.zeros((values.shape[0], len(shown)))
        for j, c in enumerate(columns):
            out[:, where[c.removesuffix(MISSING_SUFFIX)]] += values[:, j]
        return out

    def raw_names(self) -> list[str]:
        return [*self.compact_spec.numeric_columns(), *self.class_columns()]

    # -- persistence (JSON, no pickle)
    def to_dict(self) -> dict[str, Any]:
        state = self.kinetic.to_dict()
        return {**state, "feature_names": [str(x) for x in self.get_feature_names_out()],
                "kinetic_feature_names": state["feature_names"],
                "compact": {"spec": self.compact_spec.to_dict(), "classes": self.classes, "linear": self.linear,
                            "scaling": self.scaling.to_dict() if self.scaling is not None else None}}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> CompactFeatures:
        c = state["compact"]
        kinetic = KineticFeatures.from_dict({**state, "feature_names": state["kinetic_feature_names"]})
        spec = c["spec"]
        obj = cls(kinetic, CompactSpec(analytes=tuple(spec["analytes"]), per_analyte=tuple(spec["per_analyte"]),
                                       covariates=tuple(spec["covariates"]), monotone=dict(spec["monotone"])),
                  c["classes"], bool(c["linear"]))
        if c["scaling"] is not None:
            obj.scaling = LinearScaling(**c["scaling"])
        return obj

    def save(self, path: str) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)


def load_features(path: str | Path) -> KineticFeatures | CompactFeatures:
    """The model's feature state: compact (with its own JSON section) or the full kinetic set."""
    state = json.loads(Path(path).read_text())
    return CompactFeatures.from_dict(state) if "compact" in state else KineticFeatures.from_dict(state)
