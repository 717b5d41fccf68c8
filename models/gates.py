"""Promotion gates: a new model version becomes `champion` only if it earns it. Pure functions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
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


@dataclass
class ChampionComparison:
    """The challenger against the champion on rows both can be judged on fairly, and how.

    `possible` is False when no fair comparison exists (too few events among patients the champion
    never saw, no record of the champion's training patients, ...): the decision then rests on
    the absolute gates alone and `how` says why. Counts state what was used and what was excluded
    because the champion was trained on those patients ("overlap")."""

    possible: bool
    how: str
    champion_auroc: float | None = None
    challenger_auroc: float | None = None
    champion_version: str = ""
    rows_used: int = 0
    patients_used: int = 0
    event_patients_used: int = 0
    rows_excluded_overlap: int = 0
    patients_excluded_overlap: int = 0
    event_patients_excluded_overlap: int = 0
    min_event_patients: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(challenger: dict[str, float], gates: dict[str, Any],
           comparison: ChampionComparison | None = None) -> GateDecision:
    """`challenger`: pooled metrics of the new version on held-out patients (flat names from metrics_full.json).

    `comparison`: None when there is no current champion; else :func:`compare_with_champion`'s
    result. A comparison that is not possible is stated and the absolute gates decide alone.
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
    if comparison is None:
        reasons.append("no current champion: nothing to compare against")
    elif not comparison.possible:
        checks["vs_champion"] = {**comparison.as_dict(), "passed": None}
        reasons.append(f"no fair comparison possible with champion version {comparison.champion_version}: "
                       f"{comparison.how}; decided on the absolute gates alone")
    else:
        margin = float(gates["max_auroc_drop_vs_champion"])
        drop = comparison.champion_auroc - comparison.challenger_auroc
        passed = drop <= margin
        checks["vs_champion"] = {**comparison.as_dict(), "max_drop": margin, "passed": passed}
        reasons.append(f"AUROC {comparison.challenger_auroc:.3f} vs champion version {comparison.champion_version} "
                       f"{comparison.champion_auroc:.3f} (allowed drop {margin:.3f}): {'ok' if passed else 'worse'}; "
                       f"{comparison.how}")
        ok &= passed
    return GateDecision(bool(ok), reasons, checks)


def _event_patients(rows: pd.DataFrame) -> int:
    return int(rows.loc[rows["label"].astype(float) > 0, "patient_id"].nunique())


def enough_events(rows: pd.DataFrame, min_event_patients: int) -> bool:
    """At least `min_event_patients` patients with an event and at least one patient without."""
    return (_event_patients(rows) >= min_event_patients
            and bool((rows["label"].astype(float) <= 0).any()))


def unseen_rows(oof: pd.DataFrame, champion_saw: np.ndarray) -> pd.DataFrame:
    """The held-out rows of patients the champion was not trained on."""
    return oof[~np.asarray(champion_saw, dtype=bool)]


def compare_with_champion(oof: pd.DataFrame, same_cohort: bool, champion_own_auroc: float | None = None,
                          champion_scores: pd.DataFrame | None = None, champion_saw: np.ndarray | None = None,
                          min_event_patients: int = 1, champion_version: str = "") -> ChampionComparison:
    """The comparison rule, a pure function of the challenger's held-out rows (`oof`: patient_id,
    landmark_hours, label, probability).

    - Same cohort (`same_cohort`: the champion's training cohort has this cohort's DVC hash): both
      models' numbers are held-out (cross-validated) on the same patients, so the champion's own
      held-out AUROC is compared with the challenger's.
    - Another cohort: `champion_saw` (one bool per `oof` row: the champion was trained on that row's
      patient) removes every row of a patient the champion saw; the champion's scores
      (`champion_scores`: patient_id, landmark_hours, probability) are compared with the
      challenger's on the remaining rows both scored. Fewer than `min_event_patients` patients with
      an event left (or no patient without one) means no fair comparison is possible. Without
      `champion_saw` nothing is known about the champion's training patients: no comparison.
    """
    version = str(champion_version)
    if same_cohort:
        if champion_own_auroc is None or champion_own_auroc != champion_own_auroc:
            return ChampionComparison(False, "the champion was trained on this same cohort but its own held-out "
                                      "AUROC is not recorded", champion_version=version,
                                      min_event_patients=min_event_patients)
        mine = auroc(oof["label"].to_numpy(), oof["probability"].to_numpy())
        return ChampionComparison(True, "both held-out (cross-validated) on the same cohort (same DVC hash): the "
                                  "champion's own held-out AUROC", float(champion_own_auroc), mine, version,
                                  rows_used=len(oof), patients_used=int(oof["patient_id"].nunique()),
                                  event_patients_used=_event_patients(oof), min_event_patients=min_event_patients)
    if champion_saw is None:
        return ChampionComparison(False, f"champion version {version} does not record which patients it was "
                                  "trained on, so overlap cannot be ruled out", champion_version=version,
                                  min_event_patients=min_event_patients)
    saw = np.asarray(champion_saw, dtype=bool)
    if saw.shape != (len(oof),):
        raise ValueError(f"champion_saw has {saw.shape} entries for {len(oof)} held-out rows")
    seen, unseen = oof[saw], unseen_rows(oof, saw)
    counts = {"rows_excluded_overlap": len(seen), "patients_excluded_overlap": int(seen["patient_id"].nunique()),
              "event_patients_excluded_overlap": _event_patients(seen), "min_event_patients": min_event_patients}
    if champion_scores is None:  # not scored (yet): counts say whether a comparison is possible at all
        both = unseen
    else:
        both = unseen.merge(champion_scores[["patient_id", "landmark_hours", "probability"]],
                            on=["patient_id", "landmark_hours"], suffixes=("", "_champion"))
    used = {"rows_used": len(both), "patients_used": int(both["patient_id"].nunique()),
            "event_patients_used": _event_patients(both)}
    events = used["event_patients_used"]
    if not enough_events(both, min_event_patients):
        non_events = int(both.loc[both["label"].astype(float) <= 0, "patient_id"].nunique())
        why = (f"{events} patient(s) with an event among {used['patients_used']} held-out patients the champion "
               f"never saw (at least {min_event_patients} needed"
               + (", and patients without one" if non_events == 0 else "") + "); "
               f"{counts['patients_excluded_overlap']} patients ({counts['rows_excluded_overlap']} rows, "
               f"{counts['event_patients_excluded_overlap']} with an event) excluded: the champion was trained on them")
        return ChampionComparison(False, why, champion_version=version, **used, **counts)
    if champion_scores is None:
        raise ValueError("a comparison on another cohort needs the champion's scores of the unseen rows")
    y = both["label"].to_numpy()
    how = (f"champion scored on {used['rows_used']} held-out rows of {used['patients_used']} patients it never saw "
           f"({events} with an event); {counts['patients_excluded_overlap']} patients "
           f"({counts['rows_excluded_overlap']} rows) excluded: the champion was trained on them")
    return ChampionComparison(True, how, auroc(y, both["probability_champion"].to_numpy()),
                              auroc(y, both["probability"].to_numpy()), version, **used, **counts)
