"""Across all chunks: duplicates, mixed units, missing baselines, and the validation report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cohorts.ingest.harmonise import QUARANTINE_COLUMNS, REASONS, empty_quarantine
from cohorts.registry import core_analytes, default_turnaround_hours
from cohorts.schema import LAB_COLUMNS, result_time_counts

DUPLICATE_RULE = ("rows with the same patient, analyte and hours_since_infusion: the first in input "
                  "order is kept; the others are quarantined as `duplicate` (same value) or "
                  "`conflicting_duplicate` (different value)")


def drop_duplicates(labs: pd.DataFrame, file: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first of each (patient, analyte, time) in input order; return (kept, quarantined)."""
    key = ["patient_id", "analyte", "hours_since_infusion"]
    if not labs["_seq"].is_monotonic_increasing:
        labs = labs.sort_values("_seq", kind="stable")
    in_group = labs.duplicated(key, keep=False).to_numpy()
    if not in_group.any():
        return labs, empty_quarantine()
    groups = labs[in_group]
    dup_in_group = groups.duplicated(key, keep="first").to_numpy()
    first_value = groups.groupby(key, sort=False, observed=True)["value"].transform("first")[dup_in_group]
    first_row = groups.groupby(key, sort=False, observed=True)["source_row"].transform("first")[dup_in_group]
    dup = np.zeros(len(labs), dtype=bool)
    dup[np.flatnonzero(in_group)[dup_in_group]] = True
    d = labs[dup]
    same = (d["value"].to_numpy() == first_value.to_numpy())
    reason = np.where(same, "duplicate", "conflicting_duplicate")
    detail = (pd.Series(reason).map(REASONS).to_numpy() + "; kept row "
              + first_row.astype(str).to_numpy() + " (values here in the canonical unit)")
    q = pd.DataFrame({
        "file": file, "source_row": d["source_row"].to_numpy(),
        "patient_id": d["patient_id"].astype(str).to_numpy(), "analyte": d["analyte"].astype(str).to_numpy(),
        "time": d["hours_since_infusion"].map("{:g} h".format).to_numpy(),
        "value": (d["censor"].astype(str) + d["value"].map("{:g}".format)).to_numpy(),
        "unit": d["analyte"].astype(str).to_numpy(), "analyte_code": d["analyte"].astype(str).to_numpy(),
        "reason": reason, "detail": detail})
    from cohorts.ingest.vocab import vocab

    q["unit"] = q["analyte_code"].map(vocab().canonical_unit)
    return labs[~dup], q[QUARANTINE_COLUMNS]


def mixed_units(unit_pairs: pd.DataFrame) -> dict[str, Any]:
    """Patients whose series for one analyte came in more than one unit (converted, but worth a look)."""
    pairs = unit_pairs.drop_duplicates()
    counts = pairs.groupby(["patient_id", "analyte"], observed=True).size()
    mixed = counts[counts > 1]
    examples = [{"patient_id": str(p), "analyte": str(a),
                 "units": sorted(pairs.loc[(pairs["patient_id"] == p) & (pairs["analyte"] == a),
                                           "unit_key"].astype(str))}
                for p, a in mixed.index[:10]]
    return {"patient_analyte_series": int(len(mixed)), "examples": examples}


def no_baseline(labs: pd.DataFrame, patients: pd.Series) -> dict[str, int]:
    """Per core analyte: patients with results for it but none at or before infusion (hour 0)."""
    core = labs[labs["analyte"].isin(core_analytes()).to_numpy()]
    first = core.groupby(["analyte", "patient_id"], observed=True, sort=False)["hours_since_infusion"].min()
    late = (first > 0).groupby(level=0, observed=True).sum()
    return {code: int(late[code]) for code in core_analytes() if code in late.index}


def extend_followup(patients: pd.DataFrame, labs: pd.DataFrame) -> pd.DataFrame:
    """followup_hours raised to each patient's last lab draw (a follow-up read from record dates)."""
    last = labs.groupby("patient_id", observed=True, sort=False)["hours_since_infusion"].max()
    drawn = patients["patient_id"].map(last).to_numpy(dtype="float64", na_value=np.nan)
    stated = (patients["followup_hours"].to_numpy(dtype="float64", na_value=np.nan) if "followup_hours" in patients
              else np.full(len(patients), np.nan))
    return patients.assign(followup_hours=np.fmax(stated, drawn))


def result_time_report(labs: pd.DataFrame, notes: list[str]) -> dict[str, Any]:
    """Per analyte: rows without a result time and how many the registry's default turnaround will
    place later than the draw (featurize.assume_turnaround_hours can override it per analyte)."""
    return result_time_note(result_time_counts(labs, default_turnaround_hours()), notes)


def result_time_note(counts: dict[str, dict[str, float]], notes: list[str]) -> dict[str, Any]:
    """The note for `counts` (cohorts.schema.result_time_counts, possibly added up chunk by chunk)."""
    delayed = {a: c["assumed_later_than_draw"] for a, c in counts.items() if c["assumed_later_than_draw"]}
    if delayed:
        notes.append("rows without a result time are assumed available at draw + the analyte's "
                     "default_turnaround_hours (data/reference/analytes.csv; override per analyte in params.yaml "
                     "featurize.assume_turnaround_hours): "
                     + ", ".join(f"{a} {n} row(s) +{counts[a]['turnaround_hours']:g} h" for a, n in delayed.items()))
    return counts


def outcome_report(patients: pd.DataFrame, notes: list[str]) -> dict[str, int]:
    """Outcome and follow-up completeness; a warning for grade >= 3 without an onset time."""

    def col(name: str) -> pd.Series:
        return (pd.to_numeric(patients[name], errors="coerce") if name in patients
                else pd.Series(np.nan, index=patients.index))

    grade, onset, followup = col("crs_max_grade"), col("severe_onset_hours"), col("followup_hours")
    no_onset = int(((grade >= 3) & onset.isna()).sum())
    if no_onset:
        notes.append(f"WARNING: {no_onset} patient(s) reached grade >= 3 with no onset time (severe_onset_hours): "
                     "their labels are unknown at every landmark (never 0) and they are left out of training "
                     "and evaluation")
    return {"patients": int(len(patients)), "outcome_recorded": int(grade.notna().sum()),
            "severe": int((grade >= 3).sum()), "severe_without_onset_time": no_onset,
            "followup_known": int(followup.notna().sum()), "followup_unknown": int(followup.isna().sum())}


def canonical_lab_table(labs: pd.DataFrame) -> pd.DataFrame:
    out = labs[LAB_COLUMNS].copy()
    for col in ("patient_id", "analyte", "censor"):
        if out[col].dtype != "str":
            out[col] = out[col].astype("str")
    return out.reset_index(drop=True)  # input order (the duplicate rule sorted by input position)


def validation_report(rows_in: int, labs: pd.DataFrame, quarantine: pd.DataFrame,
                      in_by_analyte: pd.Series, extra: dict[str, Any]) -> dict[str, Any]:
    by_reason = quarantine["reason"].value_counts().sort_index()
    out_by = labs["analyte"].value_counts()
    q_code = quarantine["analyte_code"].replace("", "(unrecognised)")
    q_by = q_code.value_counts()
    analytes = sorted(set(in_by_analyte.index) | set(out_by.index) | set(q_by.index))
    by_analyte = {a: {"in": int(in_by_analyte.get(a, 0)), "out": int(out_by.get(a, 0)),
                      "quarantined": int(q_by.get(a, 0))} for a in analytes}
    report = {
        "rows_in": int(rows_in), "rows_out": int(len(labs)), "rows_quarantined": int(len(quarantine)),
        "by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "by_analyte": by_analyte,
        "reasons_explained": {k: REASONS[k] for k in by_reason.index if k in REASONS},
        "duplicate_rule": DUPLICATE_RULE,
    } | extra
    if report["rows_in"] != report["rows_out"] + report["rows_quarantined"]:
        raise AssertionError(f"ingest lost rows: {report['rows_in']} in, {report['rows_out']} out, "
                             f"{report['rows_quarantined']} quarantined")
    return report
