"""Training settings (params.yaml `train`, plus the pretrained prior when one is given)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.compact import CompactSpec
from models.pretrained import PretrainedPrior


@dataclass
class TrainConfig:
    xgboost: dict[str, Any]
    search_space: dict[str, list[Any]] = field(default_factory=dict)
    n_folds: int = 5
    inner_folds: int = 3
    seed: int = 7
    calibration: str = "sigmoid"
    target_sensitivity: float = 0.9
    baselines: bool = True
    candidates: tuple[str, ...] = ("xgb_full",)   # programmatic default: the full model alone
    selection_tolerance: float = 0.0
    compact: CompactSpec | None = None
    pretrained_rounds: tuple[int, ...] = (0,)
    prior: PretrainedPrior | None = None

    @classmethod
    def from_params(cls, t: dict[str, Any], prior: PretrainedPrior | None = None) -> TrainConfig:
        return cls(xgboost=dict(t["xgboost"]), search_space=dict(t.get("search_space") or {}),
                   n_folds=int(t["n_folds"]), inner_folds=int(t.get("inner_folds", 3)), seed=int(t["seed"]),
                   calibration=str(t.get("calibration", "sigmoid")),
                   target_sensitivity=float(t.get("target_sensitivity", 0.9)),
                   baselines=bool(t.get("baselines", True)),
                   candidates=tuple(str(c) for c in t.get("candidates") or ("xgb_full",)),
                   selection_tolerance=float(t.get("selection_tolerance", 0.0)),
                   compact=CompactSpec.from_params(t["compact"]) if t.get("compact") else None,
                   pretrained_rounds=tuple(int(r) for r in t.get("pretrained_rounds") or (0,)), prior=prior)
