"""Export a canonical cohort to each input format (for round-trip tests): long, SDTM, OMOP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohorts.io import Cohort

INFUSION = pd.Timestamp("2024-01-10T08:00:00")
PRODUCT = {"axi-cel": "AXICABTAGENE CILOLEUCEL", "tisa-cel": "TISAGENLECLEUCEL",
           "liso-cel": "LISOCABTAGENE MARALEUCEL", "brexu-cel": "BREXUCABTAGENE AUTOLEUCEL",
           "ide-cel": "IDECABTAGENE VICLEUCEL", "cilta-cel": "CILTACABTAGENE AUTOLEUCEL",
           "blinatumomab": "BLINATUMOMAB"}
DRUG = {"tocilizumab": "TOCILIZUMAB", "corticosteroids": "DEXAMETHASONE", "siltuximab": "SILTUXIMAB",
        "anakinra": "ANAKINRA", "vasopressors": "NOREPINEPHRINE"}
# how a site might write each analyte: (name, unit, factor from canonical to that unit)
WRITTEN = {"IL6": ("IL-6", "ng/L", 1.0), "IFNG": ("IFN-γ", "pg/mL", 1.0),
           "CRP": ("C-reactive protein", "mg/dL", 0.1), "FERRITIN": ("Ferritin", "µg/L", 1.0),
           "ANG2": ("Ang-2", "ng/mL", 0.001), "PLT": ("Platelets", "x10^3/uL", 1.0),
           "LDH": ("LDH", "U/L", 1.0), "CREAT": ("Creatinine", "mg/dL", 1.0),
           "TEMP_MAX": ("Temperature", "°C", 1.0), "MCP1": ("MCP-1", "pg/mL", 1.0),
           "IL10": ("IL-10", "pg/mL", 1.0), "ANG1": ("Ang-1", "pg/mL", 1.0)}
LOINC = {"IL6": "26881-3", "IFNG": "27415-9", "CRP": "1988-5", "FERRITIN": "2276-4", "PLT": "777-3",
         "LDH": "2532-0", "CREAT": "2160-0", "TEMP_MAX": "8310-5", "IL10": "26848-2"}
TESTCD = {"IL6": "INTLK6", "IFNG": "IFNG", "CRP": "CRP", "FERRITIN": "FERRITIN", "ANG2": "ANGPT2",
          "PLT": "PLAT", "LDH": "LDH", "CREAT": "CREAT", "TEMP_MAX": "TEMP", "MCP1": "MCP1",
          "IL10": "INTLK10", "ANG1": "ANGPT1"}


def _when(hours: pd.Series) -> pd.Series:
    secs = np.round(hours.to_numpy(dtype=float) * 3600).astype("int64")
    return pd.Series((INFUSION + pd.to_timedelta(secs, unit="s")).strftime("%Y-%m-%dT%H:%M:%S"),
                     index=hours.index)


def _written(labs: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    name = labs["analyte"].map(lambda a: WRITTEN[a][0])
    unit = labs["analyte"].map(lambda a: WRITTEN[a][1])
    value = labs["value"] * labs["analyte"].map(lambda a: WRITTEN[a][2])
    text = labs["censor"].astype(str) + value.map(repr)
    return name, unit, text


def _save(frame: pd.DataFrame, path: Path, fmt: str, domain: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path.with_suffix(".csv"), index=False)
    elif fmt == "parquet":
        frame.to_parquet(path.with_suffix(".parquet"), index=False)
    else:
        from tests.xpt_writer import write_xpt

        write_xpt(frame, path.with_suffix(".xpt"), domain)


def to_long(cohort: Cohort, folder: Path, fmt: str = "csv") -> Path:
    labs = cohort.labs
    name, unit, text = _written(labs)
    out = pd.DataFrame({"patient_id": labs["patient_id"], "analyte": name, "datetime": _when(labs["hours_since_infusion"]),
                        "value": text, "unit": unit, "resulted_hours": labs["resulted_hours"]})
    patients = cohort.patients.assign(infusion_datetime=INFUSION.strftime("%Y-%m-%dT%H:%M:%S"))
    _save(out, folder / "labs", fmt)
    _save(patients, folder / "patients", fmt)
    return folder


def _crs_records(patients: pd.DataFrame) -> pd.DataFrame:
    """One record at CRS onset (grade up to 2), one at severe onset with the maximum grade."""
    p = patients
    onset = p[p["crs_max_grade"] >= 1]
    first = pd.DataFrame({"pid": onset["patient_id"], "grade": np.minimum(onset["crs_max_grade"], 2),
                          "hours": onset["crs_onset_hours"]})
    sev = p[p["crs_max_grade"] >= 3]
    second = pd.DataFrame({"pid": sev["patient_id"], "grade": sev["crs_max_grade"],
                           "hours": sev["severe_onset_hours"]})
    rec = pd.concat([first, second], ignore_index=True)
    rec = rec[rec["hours"].notna()].reset_index(drop=True)
    rec["grade"] = rec["grade"].astype(int).astype(str)
    return rec


def to_sdtm(cohort: Cohort, folder: Path, fmt: str = "csv") -> Path:
    p, labs = cohort.patients, cohort.labs
    _save(pd.DataFrame({"STUDYID": "SIM", "DOMAIN": "DM", "USUBJID": p["patient_id"],
                        "AGE": p["age_years"], "SEX": p["sex"], "DISEASE": p["disease"]}), folder / "dm", fmt, "DM")
    ex = pd.DataFrame({"USUBJID": p["patient_id"], "EXTRT": p["therapy"].map(PRODUCT),
                       "EXSTDTC": INFUSION.strftime("%Y-%m-%dT%H:%M:%S")})
    _save(ex, folder / "ex", fmt, "EX")
    order = np.arange(len(labs))
    testcd = labs["analyte"].map(TESTCD)
    value = labs["censor"].astype(str) + labs["value"].map(repr)
    num = labs["value"].where(labs["censor"] == "", np.nan)
    unit = labs["analyte"].map(lambda a: WRITTEN[a][1] if WRITTEN[a][2] == 1.0 else
                               {"CRP": "mg/L", "ANG2": "pg/mL"}[a])
    lb = pd.DataFrame({"STUDYID": "SIM", "DOMAIN": "LB", "USUBJID": labs["patient_id"],
                       "LBSEQ": (order + 1).astype(float), "LBTESTCD": testcd, "LBTEST": labs["analyte"],
                       "LBORRES": value, "LBORRESU": unit, "LBSTRESC": value, "LBSTRESN": num,
                       "LBSTRESU": unit, "LBDTC": _when(labs["hours_since_infusion"])})
    _save(lb, folder / "lb", fmt, "LB")
    rec = _crs_records(p)
    _save(pd.DataFrame({"USUBJID": rec["pid"], "AEDECOD": "Cytokine release syndrome",
                        "AETOXGR": rec["grade"], "AESTDTC": _when(rec["hours"])}), folder / "ae", fmt, "AE")
    ev = cohort.events
    _save(pd.DataFrame({"USUBJID": ev["patient_id"], "CMTRT": ev["event"].map(DRUG),
                        "CMSTDTC": _when(ev["hours_since_infusion"]),
                        "CMDOSE": ev["dose"].astype(float), "CMDOSU": ev["dose_unit"].astype(str)}),
          folder / "cm", fmt, "CM")
    return folder


def to_omop(cohort: Cohort, folder: Path, fmt: str = "csv") -> Path:
    p, labs = cohort.patients, cohort.labs
    ids = pd.Series(np.arange(1, len(p) + 1), index=p["patient_id"])
    _save(pd.DataFrame({"person_id": ids.to_numpy(), "year_of_birth": (2024 - p["age_years"]).astype(int),
                        "gender_concept_id": p["sex"].map({"M": 8507, "F": 8532})}), folder / "person", fmt)
    name, unit, text = _written(labs)
    source = labs["analyte"].map(lambda a: LOINC.get(a, WRITTEN[a][0]))
    numeric = (labs["value"] * labs["analyte"].map(lambda a: WRITTEN[a][2])).where(labs["censor"] == "")
    _save(pd.DataFrame({"measurement_id": np.arange(len(labs)) + 1,
                        "person_id": labs["patient_id"].map(ids).to_numpy(),
                        "measurement_concept_id": 0, "measurement_datetime": _when(labs["hours_since_infusion"]),
                        "value_as_number": numeric, "value_source_value": text,
                        "unit_source_value": unit, "measurement_source_value": source}), folder / "measurement", fmt)
    ev = cohort.events
    drugs = pd.concat([
        pd.DataFrame({"person_id": ids.to_numpy(), "drug_source_value": p["therapy"].map(PRODUCT).to_numpy(),
                      "drug_exposure_start_datetime": INFUSION.strftime("%Y-%m-%dT%H:%M:%S")}),
        pd.DataFrame({"person_id": ev["patient_id"].map(ids).to_numpy(),
                      "drug_source_value": ev["event"].map(DRUG).to_numpy(),
                      "drug_exposure_start_datetime": _when(ev["hours_since_infusion"]).to_numpy()})])
    _save(drugs, folder / "drug_exposure", fmt)
    rec = _crs_records(p)
    _save(pd.DataFrame({"person_id": rec["pid"].map(ids).to_numpy(), "observation_source_value": "CRS grade (ASTCT)",
                        "value_as_number": rec["grade"].astype(float),
                        "observation_datetime": _when(rec["hours"])}), folder / "observation", fmt)
    return folder
