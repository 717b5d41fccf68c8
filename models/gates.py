"""Promotion gates: a new model version becomes `champion` only if it earns it. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from models.metrics import auroc


@dataclass
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"decision": "promoted" if self.promote else "refused", "reasons": self.reasons,
                "checks": self.checks}


def decide(challenger: dict[str, float], gates: dict[str, Any],
           champion_auroc_same_data: float | None = None, challenger_auroc_same_data: float | None = None) -> GateDecision:
    """`challenger`: pooled metrics of the new version on held-out patients (flat names from metrics.json).

    Champion comparison uses both models' AUROC on the *same* validation rows, when a champion exists.
    """
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    ok = True
    ci_low = challenger.get("xgb_kinetics.auroc_ci_low", float("nan"))
    need = float(gates["min_auroc_ci_low"])
    passed = ci_low == ci_low and ci_low >= need
    checks["auroc_ci_low"] = {"value": ci_low, "required_at_least": need, "passed": passed}
    reasons.append(f"AUROC 95% CI lower bound {ci_low:.3f} {'>=' if passed else '<'} {need:.3f}")
    ok &= passed
    slope = challenger.get("xgb_kinetics.calibration_slope", float("nan"))
    lo, hi = (float(x) for x in gates["calibration_slope_range"])
    passed = slope == slope and lo <= slope <= hi
    checks["calibration_slope"] = {"value": slope, "range": [lo, hi], "passed": passed}
    reasons.append(f"calibration slope {slope:.2f} {'within' if passed else 'outside'} [{lo}, {hi}]")
    ok &= passed
    if champion_auroc_same_data is not None and challenger_auroc_same_data is not None:
        margin = float(gates["max_auroc_drop_vs_champion"])
        drop = champion_auroc_same_data - challenger_auroc_same_data
        passed = drop <= margin
        checks["vs_champion"] = {"challenger_auroc": challenger_auroc_same_data,
                                 "champion_auroc": champion_auroc_same_data, "max_drop": margin, "passed": passed}
        reasons.append(f"AUROC on the same validation rows {challenger_auroc_same_data:.3f} vs champion "
                       f"{champion_auroc_same_data:.3f} (allowed drop {margin:.3f}): {'ok' if passed else 'worse'}")
        ok &= passed
    else:
        reasons.append("no current champion: nothing to compare against")
    return GateDecision(bool(ok), reasons, checks)


@dataclass
class ChampionComparison:
    """Both AUROCs on the same validation data, and how they were obtained (logged with the decision)."""

    champion_auroc: float
    challenger_auroc: float
    how: str


def compare_with_champion(oof: pd.DataFrame, same_cohort: bool, champion_own_auroc: float | None = None,
                          champion_scores: pd.DataFrame | None = None) -> ChampionComparison:
    """The comparison rule, a pure function of the challenger's held-out rows (`oof`: patient_id,
    landmark_hours, label, probability).

    If the champion was trained on this very cohort (`same_cohort`: same DVC hash), its own
    held-out AUROC is the fair number (scoring it here would be in-sample). Otherwise the champion
    is scored on the challenger's held-out rows (`champion_scores`: patient_id, landmark_hours,
    probability) and both AUROCs are computed on the rows both scored.
    """
    mine = auroc(oof["label"].to_numpy(), oof["probability"].to_numpy())
    if same_cohort:
        if champion_own_auroc is None:
            raise ValueError("same_cohort comparison needs the champion's own held-out AUROC")
        return ChampionComparison(float(champion_own_auroc), mine, "champion compared by its own held-out AUROC "
                                  "on the same cohort (same DVC hash)")
    if champion_scores is None:
        raise ValueError("comparison on another cohort needs the champion's scores of the challenger's rows")
    both = oof.merge(champion_scores[["patient_id", "landmark_hours", "probability"]],
                     on=["patient_id", "landmark_hours"], suffixes=("", "_champion"))
    y = both["label"].to_numpy()
    return ChampionComparison(auroc(y, both["probability_champion"].to_numpy()), auroc(y, both["probability"].to_numpy()),
                              "champion scored on the challenger's held-out rows (another cohort: optimistic for "
                              "the champion if it was trained on some of these patients)")
