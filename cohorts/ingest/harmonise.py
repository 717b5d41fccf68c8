"""Raw lab rows (as read from any format) -> canonical lab rows + quarantine rows. Vectorised.

A reader hands over one chunk at a time with these columns:
  source_row, patient_id, analyte_in (name, code or LOINC as written), value_in, unit_in,
  time_in (the original time text, for the quarantine), hours (float), time_problem ('' if fine),
  resulted_hours (float, optional), censor_in (optional: '', '<', '>'), analyte (optional: a code
  the reader already resolved, e.g. from an OMOP concept id).
Each row gets the first reason that applies, in the order of `REASONS`, or becomes a lab row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cohorts.ingest.values import parse_values
from cohorts.ingest.vocab import map_analytes, unit_factors, unit_keys, vocab

REASONS = {
    "truncated_row": "the file does not end with a line break: its last row may have been cut short "
                     "(an interrupted copy or download)",
    "no_patient_id": "the patient id is blank",
    "unknown_patient": "the patient has lab rows but no record in the patients table",
    "unknown_analyte": "the analyte name/code is not in data/reference/analytes.csv (add a synonym there)",
    "missing_value": "the result is blank",
    "unparseable_value": "the result is not a number (or an ambiguous one such as '5,000')",
    "missing_unit": "the unit is blank; crs never guesses a unit",
    "unknown_unit": "the unit is not an accepted unit for this analyte in data/reference/analytes.csv",
    "missing_time": "the sample time is blank",
    "unparseable_time": "the sample time cannot be read",
    "imprecise_time": "the sample time has a date but no clock time",
    "no_infusion_time": "the patient has no infusion date-time to measure hours from",
    "time_out_of_window": "the sample time is outside the plausible window around infusion",
    "negative_value": "a concentration or count cannot be negative",
    "implausible_value": "the value (in the canonical unit) is outside the plausible range in analytes.csv",
    "result_before_draw": "the result time is before the sample time",
    "result_time_out_of_window": "the result time is not a number within the plausible window around infusion",
    "duplicate": "same patient, analyte and time as an earlier row with the same value (first kept)",
    "conflicting_duplicate": "same patient, analyte and time as an earlier row with a different value "
                             "(first row in input order kept)",
}
QUARANTINE_COLUMNS = ["file", "source_row", "patient_id", "analyte", "time", "value", "unit",
                      "analyte_code", "reason", "detail"]
DEFAULT_WINDOW_HOURS = (-720.0, 8760.0)  # 30 days before to one year after infusion


@dataclass
class Chunk:
    labs: pd.DataFrame        # canonical columns + unit_key (for the mixed-unit check)
    quarantine: pd.DataFrame
    counts_in: pd.Series      # input rows per analyte code ('(unrecognised)' for unknown names)


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("").astype(object)


def quarantine_frame(raw: pd.DataFrame, file: str, reason: pd.Series, code: pd.Series,
                     detail: pd.Series | None = None) -> pd.DataFrame:
    """Quarantine rows keep the original text of what was read, plus why."""
    n = len(raw)
    return pd.DataFrame({
        "file": file,
        "source_row": raw["source_row"].astype("int64").to_numpy(),
        "patient_id": _text(raw["patient_id"]).to_numpy(),
        "analyte": _text(raw["analyte_in"]).to_numpy(),
        "time": _text(raw["time_in"]).to_numpy(),
        "value": _text(raw["value_in"]).to_numpy(),
        "unit": _text(raw["unit_in"]).to_numpy(),
        "analyte_code": code.astype(object).where(code.notna(), "").astype(str).to_numpy(),
        "reason": reason.astype(str).to_numpy(),
        "detail": (detail.astype(str).to_numpy() if detail is not None
                   else reason.map(REASONS).fillna("").to_numpy()),
    }, index=range(n))


def empty_quarantine() -> pd.DataFrame:
    cols = {c: pd.Series(dtype=object) for c in QUARANTINE_COLUMNS}
    cols["source_row"] = pd.Series(dtype="int64")
    return pd.DataFrame(cols)


def harmonise_chunk(raw: pd.DataFrame, file: str, known_patients: pd.Index | None,
                    window: tuple[float, float] = DEFAULT_WINDOW_HOURS, offset: int = 0) -> Chunk:
    """Map names and units, parse values, check plausibility; quarantine what fails."""
    v = vocab()
    raw = raw.reset_index(drop=True)
    n = len(raw)
    reason = np.full(n, "", dtype=object)

    def flag(mask, name: str) -> None:
        m = np.asarray(mask, dtype=bool) & (reason == "")
        reason[m] = name

    if "truncated" in raw:  # set by the streamed ingest on the last row of a file cut short
        flag(raw["truncated"].to_numpy(dtype=bool), "truncated_row")
    pid = raw["patient_id"]
    if not pd.api.types.is_string_dtype(pid.dtype) or pid.dtype == object:
        pid = pid.astype("str")
    pid = pid.str.strip()
    flag((pid.isna() | (pid == "")).to_numpy(), "no_patient_id")
    if known_patients is not None:
        flag(~pid.isin(known_patients).fillna(False).to_numpy(), "unknown_patient")
    if "analyte" in raw:
        code = raw["analyte"].astype("str")
        missing = code.isna().to_numpy()
        if missing.any():
            code[missing] = map_analytes(raw.loc[missing, "analyte_in"])
    else:
        code = map_analytes(raw["analyte_in"])
    counts_in = code.fillna("(unrecognised)").value_counts()
    flag(code.isna().to_numpy(), "unknown_analyte")
    value, censor, vproblem = parse_values(raw["value_in"])
    for name in ("missing_value", "unparseable_value"):
        flag((vproblem == name).to_numpy(), name)
    ukey = unit_keys(raw["unit_in"])
    flag(ukey.isna().to_numpy(), "missing_unit")
    factor = unit_factors(code, ukey)
    flag(factor.isna().to_numpy(), "unknown_unit")
    tproblem = raw["time_problem"].astype(str).to_numpy()
    for name in ("missing_time", "unparseable_time", "imprecise_time", "no_infusion_time"):
        flag(tproblem == name, name)
    hours = raw["hours"].astype("float64")
    flag((~np.isfinite(hours.to_numpy())), "unparseable_time")
    flag(((hours < window[0]) | (hours > window[1])).to_numpy(), "time_out_of_window")
    canon = value * factor
    flag((canon < 0).to_numpy(), "negative_value")
    lo = code.map(v.plausible["plausible_min"]).astype(float)
    hi = code.map(v.plausible["plausible_max"]).astype(float)
    flag(((canon < lo) | (canon > hi)).to_numpy(), "implausible_value")
    resulted = (raw["resulted_hours"].astype("float64") if "resulted_hours" in raw
                else pd.Series(np.nan, index=raw.index))
    flag((resulted < hours).to_numpy(), "result_before_draw")
    flag((resulted.notna() & ~(resulted <= window[1])).to_numpy(), "result_time_out_of_window")
    if "censor_in" in raw:
        given = raw["censor_in"].astype("string").fillna("").str.strip()
        given = given.where(given.isin(["<", ">"]), "")
        censor = censor.where(censor != "", given.astype(object))

    ok = reason == ""
    censor_code = np.where(censor.to_numpy() == "<", 1, np.where(censor.to_numpy() == ">", 2, 0))[ok]
    labs = pd.DataFrame({
        "patient_id": pid[ok].reset_index(drop=True),
        "analyte": code[ok].reset_index(drop=True),
        "hours_since_infusion": hours[ok].to_numpy(dtype="float64"),
        "value": canon[ok].to_numpy(dtype="float64"),
        "censor": pd.array(["", "<", ">"], dtype="str").take(censor_code),
        "resulted_hours": resulted[ok].to_numpy(dtype="float64"),
        "source_row": raw["source_row"][ok].astype("int64").to_numpy(),
        "unit_key": ukey[ok].reset_index(drop=True),
        "_seq": np.flatnonzero(ok) + offset,  # position in the input, for the duplicate rule
    })
    bad = ~ok
    reasons = pd.Series(reason[bad])
    detail = reasons.map(REASONS)
    unit_bad = (reasons == "unknown_unit").to_numpy()
    if unit_bad.any():
        codes = code[bad][unit_bad].astype(object)
        accepted = codes.map(lambda c: ", ".join(v.units.get(c, [])))
        detail[unit_bad] = ("unit " + _text(raw["unit_in"][bad][unit_bad]).map(repr).to_numpy()
                            + " is not accepted for " + codes.astype(str).to_numpy()
                            + " (accepted: " + accepted.to_numpy() + ")")
    quarantine = quarantine_frame(raw[bad], file, reasons, code[bad].reset_index(drop=True), detail)
    return Chunk(labs, quarantine, counts_in)
