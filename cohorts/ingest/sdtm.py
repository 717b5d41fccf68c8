"""CDISC SDTM: a folder of datasets as SAS transport (.xpt) or CSV, one file per domain.

DM (required): USUBJID, AGE, SEX [, ARM/ACTARM, RFXSTDTC, RFPENDTC, DTHDTC]
LB (required): USUBJID, LBTESTCD or LBTEST, a result (LBSTRESN/LBSTRESC with LBSTRESU, else
    LBORRES with LBORRESU), a time (LBDTC with a clock time, or LBDY with LBELTM) [, LBSEQ, VISIT]
EX (for day 0): USUBJID, EXTRT, EXSTDTC. Day 0 = first CAR-T/bispecific administration. Without EX,
    day 0 is unknown: only LB rows timed by LBDY+LBELTM are used, the rest are quarantined.
AE (outcomes, optional): USUBJID, AEDECOD or AETERM 'Cytokine release syndrome', AETOXGR, AESTDTC.
CM (treatments, optional): USUBJID, CMTRT or CMDECOD, CMSTDTC [, CMDOSE, CMDOSU]. Without CM the
    treatments are unknown (no events table: treatment features are NaN, never "not given").
DS, SV (optional): only their dates, for follow-up.
Standardised results (LBSTRES*) are used where present, else the original ones (LBORRES*).
followup_hours = the latest of DM RFPENDTC/DTHDTC, DS DSSTDTC, SV SVSTDTC/SVENDTC, AE AESTDTC/AEENDTC
and the LB draws, whichever exist (clinical.py states the date rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from cohorts.errors import CohortError
from cohorts.ingest.clinical import (
    CRS_PATTERN,
    events_from,
    grade_course,
    infusion_from,
    last_seen_hours,
    outcomes_from,
)
from cohorts.ingest.source import Source
from cohorts.ingest.tables import columns_of, find_table, iter_chunks, read_all, require
from cohorts.ingest.tables import text_column as _col
from cohorts.ingest.times import hours_from, iso_duration_hours, num, parse_datetimes
from cohorts.ingest.vocab import map_analytes

TEXT = {c: "string" for c in ("USUBJID", "LBTESTCD", "LBTEST", "LBORRES", "LBORRESU", "LBSTRESC",
                               "LBSTRESU", "LBDTC", "LBELTM", "EXTRT", "EXSTDTC", "AEDECOD", "AETERM",
                               "AETOXGR", "AESTDTC", "CMTRT", "CMDECOD", "CMSTDTC", "CMDOSU", "SEX",
                               "ARM", "ACTARM", "RFXSTDTC", "VISIT", "RFPENDTC", "DTHDTC", "DSSTDTC",
                               "SVSTDTC", "SVENDTC", "AEENDTC")}


def _upper(path: Path) -> dict[str, str]:
    return {c.strip(): c.strip().upper() for c in columns_of(path)}


def _domain(folder: Path, name: str, required: list[str], needed: bool) -> tuple[pd.DataFrame | None, Path | None]:
    path = find_table(folder, name, required=needed)
    if path is None:
        return None, None
    frame = read_all(path, TEXT, _upper(path))
    require(list(frame.columns), required, path, name.upper())
    frame["USUBJID"] = frame["USUBJID"].astype("string").str.strip()
    return frame, path


def open_sdtm(folder: Path, chunk_rows: int) -> Source:
    if not folder.is_dir():
        raise CohortError("--format sdtm expects a folder with dm, lb (and ex, ae, cm) datasets as .xpt "
                          "or .csv", file=str(folder))
    dm, dm_path = _domain(folder, "dm", ["USUBJID"], True)
    if dm.empty:
        raise CohortError("The DM dataset has no rows", file=str(dm_path))
    notes: list[str] = []
    patients = pd.DataFrame({"patient_id": dm["USUBJID"].astype(str)})
    if "AGE" in dm:
        patients["age_years"] = num(dm["AGE"]).to_numpy()
    if "SEX" in dm:
        patients["sex"] = dm["SEX"].astype("string").fillna("").astype(str).to_numpy()
    ex, ex_path = _domain(folder, "ex", ["USUBJID", "EXTRT", "EXSTDTC"], False)
    infusion = pd.Series(dtype="datetime64[ns]")
    therapy = pd.Series(dtype=object)
    drug_records = []
    if ex is not None:
        rec = pd.DataFrame({"patient_id": ex["USUBJID"].astype(str), "name": ex["EXTRT"],
                            "start": ex["EXSTDTC"], "dose": _col(ex, "EXDOSE"), "dose_unit": _col(ex, "EXDOSU")})
        infusion, therapy, n_date = infusion_from(rec)
        drug_records.append(rec)
        if n_date:
            notes.append(f"{n_date} patient(s) have a CAR-T/bispecific EXSTDTC without a clock time: their "
                         "day 0 is unknown, so their date-time lab rows are quarantined (no_infusion_time)")
            infusion = infusion[infusion.notna()]
    else:
        notes.append("no EX dataset: day 0 unknown, so only LB rows timed by LBDY+LBELTM can be used")
    patients["therapy"] = patients["patient_id"].map(therapy).astype(object).fillna("other").to_numpy()
    patients["disease"] = (dm["DISEASE"].astype(str).to_numpy() if "DISEASE" in dm else "unknown")
    cm, _ = _domain(folder, "cm", ["USUBJID", "CMSTDTC"], False)
    events = None
    if cm is not None:
        drug_records.append(pd.DataFrame({"patient_id": cm["USUBJID"].astype(str),
                                          "name": _col(cm, "CMDECOD").fillna(_col(cm, "CMTRT")),
                                          "start": cm["CMSTDTC"], "dose": _col(cm, "CMDOSE"),
                                          "dose_unit": _col(cm, "CMDOSU")}))
        events, n_date = events_from(pd.concat(drug_records, ignore_index=True), infusion)
        if n_date:
            notes.append(f"{n_date} treatment time(s) had a date only: placed at 23:59 of that day")
    else:
        notes.append("no CM dataset: treatments (tocilizumab, corticosteroids, ...) unknown, so no events table "
                     "is written and treatment features are unknown (NaN), not 'not given'")
    ae, ae_path = _domain(folder, "ae", ["USUBJID", "AETOXGR", "AESTDTC"], False)
    grades = None
    seen = []  # (patient_id, date text) of every dated record: follow-up
    if ae is not None:
        term = _col(ae, "AEDECOD").fillna(_col(ae, "AETERM"))
        crs = ae[term.str.contains(CRS_PATTERN, case=False, regex=True, na=False).to_numpy()]
        records = pd.DataFrame({"patient_id": crs["USUBJID"].astype(str), "grade": crs["AETOXGR"],
                                "start": crs["AESTDTC"]})
        outcomes, n_date = outcomes_from(records, patients["patient_id"], infusion)
        patients = patients.merge(outcomes, on="patient_id", how="left")
        patients["grading"] = "unknown"
        if n_date:
            notes.append(f"{n_date} CRS onset(s) had a date only (AESTDTC): placed at 00:00 of that day")
        grades, note = grade_course(records, infusion)
        notes.append(f"AE: {note}")
        seen += [(ae["USUBJID"], _col(ae, "AESTDTC")), (ae["USUBJID"], _col(ae, "AEENDTC"))]
    else:
        notes.append("no AE dataset: CRS outcomes absent (a cohort to be scored, not trained on)")
    seen += [(dm["USUBJID"], _col(dm, "RFPENDTC")), (dm["USUBJID"], _col(dm, "DTHDTC"))]
    for name, cols in (("ds", ["DSSTDTC"]), ("sv", ["SVSTDTC", "SVENDTC"])):
        frame, _ = _domain(folder, name, ["USUBJID"], False)
        if frame is not None:
            seen += [(frame["USUBJID"], _col(frame, c)) for c in cols]
    dated = pd.concat([pd.DataFrame({"patient_id": pid.astype(str).to_numpy(), "when": when.to_numpy()})
                       for pid, when in seen], ignore_index=True)
    dated = dated[dated["when"].notna()]
    patients["followup_hours"] = last_seen_hours(dated, patients["patient_id"], infusion).to_numpy()
    notes.append("followup_hours: the latest of DM RFPENDTC/DTHDTC, DS, SV and AE dates (date-only at 00:00) "
                 "and LB draws; unknown for patients without any")
    lb_path = find_table(folder, "lb")
    cols = _upper(lb_path)
    names = list(cols.values())
    require(names, ["USUBJID"], lb_path, "LB")
    if "LBTESTCD" not in names and "LBTEST" not in names:
        raise CohortError("The LB dataset needs LBTESTCD or LBTEST", file=str(lb_path), column="LBTESTCD")
    if not {"LBORRES", "LBSTRESC", "LBSTRESN"} & set(names):
        raise CohortError("The LB dataset needs a result column (LBSTRESN, LBSTRESC or LBORRES)",
                          file=str(lb_path), column="LBORRES")
    if "LBDTC" not in names and "LBDY" not in names:
        raise CohortError("The LB dataset needs a time (LBDTC, or LBDY with LBELTM)", file=str(lb_path),
                          column="LBDTC")

    def chunks() -> Iterator[pd.DataFrame]:
        offset = 0
        for chunk in iter_chunks(lb_path, chunk_rows, TEXT, cols):
            yield _raw_lb(chunk.reset_index(drop=True), offset, infusion)
            offset += len(chunk)

    provenance = {"synthetic": False, "source": "sdtm", "path": str(folder), "patients_file": str(dm_path)}
    return Source(patients, events, str(lb_path), chunks, provenance, notes, grades=grades,
                  followup_from_records=True)


def _raw_lb(lb: pd.DataFrame, offset: int, infusion: pd.Series) -> pd.DataFrame:
    testcd, test = _col(lb, "LBTESTCD"), _col(lb, "LBTEST")
    code = map_analytes(testcd)
    code = code.where(code.notna(), map_analytes(test))
    stres = _col(lb, "LBSTRESN")
    stres = stres.where(stres.notna() & (stres.str.strip() != ""), _col(lb, "LBSTRESC"))
    stres_u = _col(lb, "LBSTRESU")
    use_std = (stres.notna() & (stres.str.strip() != "") & stres_u.notna() & (stres_u.str.strip() != "")).to_numpy()
    value = pd.Series(np.where(use_std, stres, _col(lb, "LBORRES")), index=lb.index)
    unit = pd.Series(np.where(use_std, stres_u, _col(lb, "LBORRESU")), index=lb.index)
    pid = lb["USUBJID"].astype("string").str.strip()
    dtc = _col(lb, "LBDTC")
    ts, problem = parse_datetimes(dtc)
    hours, p2 = hours_from(ts, pid, infusion)
    problem = problem.where(problem != "", p2)
    lbdy = num(_col(lb, "LBDY"))
    eltm = iso_duration_hours(_col(lb, "LBELTM"))
    by_day = (problem.isin(["missing_time", "imprecise_time", "no_infusion_time"]) & lbdy.notna()
              & eltm.notna()).to_numpy()
    day_hours = np.where(lbdy > 0, lbdy - 1, lbdy) * 24.0 + eltm  # SDTM has no day 0: day 1 = day of dosing
    hours = hours.where(~by_day, day_hours)
    problem[by_day] = ""
    time_in = dtc.fillna("LBDY=" + _col(lb, "LBDY").fillna("") + " LBELTM=" + _col(lb, "LBELTM").fillna(""))
    return pd.DataFrame({
        "source_row": np.arange(offset, offset + len(lb), dtype="int64"), "patient_id": pid.to_numpy(),
        "analyte_in": testcd.fillna(test).to_numpy(), "analyte": code.to_numpy(),
        "value_in": value.to_numpy(), "unit_in": unit.to_numpy(), "time_in": time_in.to_numpy(),
        "hours": hours.to_numpy(), "time_problem": problem.to_numpy()})
