"""One validation for canonical tables at every entry point (issue 15, item 6).

A canonical cohort folder (what `crs simulate` / `crs ingest` write, or a user's own Parquet) is
checked the same way by `crs score`, `crs featurize`, `crs evaluate --cohort` and the registered
pyfunc: each problem stops the run with one line naming the file, the row and the column (exit
code 2), never a traceback and never a silently wrong answer. The same problems in a long-format
input are quarantined by `crs ingest` with a reason.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.io import Cohort, write_cohort
from features.transformer import KineticFeatures
from models.crossval import TrainConfig
from models.train import train_model
from scoring.batch import LoadedModel, score_cohort

XGB = {"n_estimators": 20, "early_stopping_rounds": 5, "learning_rate": 0.3, "max_depth": 3}


@pytest.fixture(scope="module")
def loaded(small_cohort):
    kf = KineticFeatures()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0], events=small_cohort.events)
    cfg = TrainConfig(xgboost=XGB, search_space={"max_depth": [3]}, n_folds=2, inner_folds=2, seed=1)
    bundle, _ = train_model(matrix, kf, cfg)
    return LoadedModel(bundle, "severe-crs", "1", "champion", "models:/severe-crs@champion")


@pytest.fixture(scope="module")
def cohort(small_cohort):
    keep = small_cohort.patients["patient_id"].head(40)
    return Cohort(small_cohort.labs[small_cohort.labs["patient_id"].isin(keep)].reset_index(drop=True),
                  small_cohort.patients[small_cohort.patients["patient_id"].isin(keep)].reset_index(drop=True),
                  small_cohort.events[small_cohort.events["patient_id"].isin(keep)].reset_index(drop=True), {})


def _labs_row(cohort: Cohort, analyte: str = "IL6") -> int:
    """The second `analyte` row of the first patient from the 26th on who has two (not the first
    patient read; simulator v1 leaves some panels unmeasured, so not every patient has one)."""
    labs = cohort.labs
    for pid in cohort.patients["patient_id"].iloc[25:]:
        rows = np.flatnonzero(((labs["patient_id"] == pid) & (labs["analyte"] == analyte)).to_numpy())
        if len(rows) >= 2:
            return int(rows[1])
    raise AssertionError(f"no patient in the test cohort has two {analyte} rows")


def _set(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    if value is None:
        frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    return frame


# (name, table, column, value, what the message says)
CORRUPTIONS = [
    ("resulted_inf", "labs", "resulted_hours", np.inf, "resulted_hours"),
    ("time_far_future", "labs", "hours_since_infusion", 1e7, "window"),
    ("time_far_past", "labs", "hours_since_infusion", -1e7, "window"),
    ("resulted_far_future", "labs", "resulted_hours", 1e7, "window"),
    ("negative_value", "labs", "value", -3.0, "negative"),
    ("null_lab_patient", "labs", "patient_id", None, "patient_id"),
    ("unknown_lab_patient", "labs", "patient_id", "NOT-A-PATIENT", "not in patients.parquet"),
    ("unknown_lab_patient_first", "labs", "patient_id", "AAA-BEFORE-EVERYONE", "not in patients.parquet"),
    ("null_patient", "patients", "patient_id", None, "patient_id"),
    ("severe_onset_inf", "patients", "severe_onset_hours", np.inf, "severe_onset_hours"),
    ("event_time_inf", "events", "hours_since_infusion", np.inf, "hours_since_infusion"),
    ("event_unknown_patient", "events", "patient_id", "NOT-A-PATIENT", "not in patients.parquet"),
]


# The pyfunc's one input table makes every patient of a lab row a patient (no separate patients table
# to be unknown to), so the unknown-patient cases do not arise there.
PYFUNC_CASES = [c for c in CORRUPTIONS if "unknown" not in c[0]]


def _corrupt(cohort: Cohort, table: str, column: str, value) -> tuple[Cohort, int]:
    labs, patients, events = cohort.labs, cohort.patients, cohort.events
    if table == "labs":
        row = _labs_row(cohort)
        labs = _set(labs, row, column, value)
    elif table == "patients":
        row = 25
        patients = _set(patients, row, column, value)
    else:
        row = len(events) // 2
        events = _set(events, row, column, value)
    return Cohort(labs, patients, events, {}), row


def _check_message(text: str, table: str, column: str, needle: str, row: int) -> None:
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
    assert f"{table}.parquet" in text and f"column '{column}'" in text and needle in text, text
    assert f"row {row}" in text, text


@pytest.mark.parametrize("name,table,column,value,needle", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_every_entry_point_refuses_a_bad_canonical_table_with_one_line(
        tmp_path, cohort, loaded, monkeypatch, capsys, name, table, column, value, needle):
    import scoring.batch
    from pipeline.cli import main

    bad, row = _corrupt(cohort, table, column, value)
    folder = tmp_path / "cohort"
    write_cohort(bad, folder)
    monkeypatch.setattr(scoring.batch, "load_model", lambda uri: loaded)
    for argv in (["score", "--cohort", str(folder), "--model", "m", "--as-of", "latest", "--out",
                  str(tmp_path / "s.csv")],
                 ["score", "--cohort", str(folder), "--model", "m", "--landmarks", "24,48", "--out",
                  str(tmp_path / "s.parquet")],
                 ["featurize", "--cohort", str(folder), "--landmarks", "24,48", "--out", str(tmp_path / "f.parquet")],
                 ["evaluate", "--model", "m", "--cohort", str(folder), "--out", str(tmp_path / "ext")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv[0], err)
        _check_message(err.removeprefix("crs: input problem: "), table, column, needle, row)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("s.", "f.")) or p.name == "ext"]


@pytest.mark.parametrize("name,table,column,value,needle",
                         PYFUNC_CASES,
                         ids=[c[0] for c in PYFUNC_CASES])
def test_the_pyfunc_refuses_the_same_rows(cohort, loaded, name, table, column, value, needle):
    from models.model_input import to_model_input
    from models.serving import SevereCrsModel

    bad, _ = _corrupt(cohort, table, column, value)
    frame = to_model_input(bad.labs, bad.patients, bad.events, known_severe=True)
    pyfunc = SevereCrsModel()
    pyfunc.bundle = loaded.bundle
    with pytest.raises(CohortError) as err:
        pyfunc.predict(None, frame, params={"landmarks": "24,48"})
    assert "model input" in str(err.value) and "row " in str(err.value), str(err.value)
    assert pyfunc.predict(None, to_model_input(cohort.labs, cohort.patients, cohort.events),
                          params={"landmarks": "24,48"})["status"].notna().all()


def test_a_clean_cohort_scores_the_same_as_before(tmp_path, cohort, loaded):
    write_cohort(cohort, tmp_path / "c")
    summary = score_cohort(tmp_path / "c", "", tmp_path / "s.parquet", model=loaded, landmarks=[24.0, 48.0],
                           progress=False, chunk_patients=7)
    assert summary["patients_read"] == len(cohort.patients) and summary["lab_rows_read"] > 0


@pytest.mark.parametrize("target", ["labs", "patients", "events"])
def test_a_truncated_parquet_file_is_one_clear_error_everywhere(tmp_path, cohort, loaded, monkeypatch, capsys,
                                                               target):
    import scoring.batch
    from pipeline.cli import main

    folder = tmp_path / "cohort"
    write_cohort(cohort, folder)
    path = folder / f"{target}.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # an interrupted copy
    monkeypatch.setattr(scoring.batch, "load_model", lambda uri: loaded)
    for argv in (["score", "--cohort", str(folder), "--model", "m", "--landmarks", "24", "--out",
                  str(tmp_path / "s.csv")],
                 ["featurize", "--cohort", str(folder), "--landmarks", "24", "--out", str(tmp_path / "f.parquet")],
                 ["evaluate", "--model", "m", "--cohort", str(folder), "--out", str(tmp_path / "ext")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and str(path) in err, (argv[0], err)
        assert len(err.strip().splitlines()) == 1, err


def test_a_folder_of_part_files_is_one_clear_error_on_one_machine(tmp_path, cohort, loaded, monkeypatch, capsys):
    """labs.parquet written by Spark as a folder of part files: one machine says so (and names the way
    out) instead of a pyarrow traceback; `--engine spark` reads such folders (tests/test_spark.py)."""
    import scoring.batch
    from pipeline.cli import main

    folder = tmp_path / "cohort"
    write_cohort(cohort, folder)
    (folder / "labs.parquet").unlink()
    (folder / "labs.parquet").mkdir()
    cohort.labs.to_parquet(folder / "labs.parquet" / "part-0.parquet", index=False)
    monkeypatch.setattr(scoring.batch, "load_model", lambda uri: loaded)
    for argv in (["score", "--cohort", str(folder), "--model", "m", "--landmarks", "24", "--out",
                  str(tmp_path / "s.csv")],
                 ["featurize", "--cohort", str(folder), "--landmarks", "24", "--out", str(tmp_path / "f.parquet")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and "--engine spark" in err, (argv[0], err)
        assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "f.parquet").exists()


def test_a_labs_column_of_nulls_only_is_a_clear_error(tmp_path, cohort, capsys):
    from pipeline.cli import main

    folder = tmp_path / "cohort"
    write_cohort(Cohort(cohort.labs.assign(patient_id=None), cohort.patients, cohort.events, {}), folder)
    code = main(["featurize", "--cohort", str(folder), "--landmarks", "24", "--out", str(tmp_path / "f.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "patient_id" in err and "Traceback" not in err, err


# ----------------------------------------------------------------------------- ingest quarantines the same

def test_ingest_quarantines_what_a_canonical_folder_refuses(tmp_path):
    from tests.ingest_helpers import ingest_and_check, write_long

    rows = [("P1", "IL-6", -10.0, "5", "pg/mL", ""), ("P1", "IL-6", 24.0, "50", "pg/mL", "inf"),
            ("P1", "IL-6", 30.0, "50", "pg/mL", "1e7"), ("P1", "IL-6", 1e7, "50", "pg/mL", ""),
            ("P1", "IL-6", -1e7, "50", "pg/mL", ""), ("P1", "CRP", 24.0, "-4", "mg/L", ""),
            ("P9", "CRP", 24.0, "4", "mg/L", ""), ("", "CRP", 24.0, "4", "mg/L", "")]
    labs = pd.DataFrame(rows, columns=["patient_id", "analyte", "hours_since_infusion", "value", "unit",
                                       "resulted_hours"])
    folder = write_long(tmp_path / "in", labs, pd.DataFrame({"patient_id": ["P1"], "therapy": ["axi-cel"]}))
    v = ingest_and_check("long", folder, tmp_path / "out")
    q = pd.read_parquet(tmp_path / "out" / "quarantine.parquet").set_index("source_row")["reason"]
    assert q.to_dict() == {1: "result_time_out_of_window", 2: "result_time_out_of_window",
                           3: "time_out_of_window", 4: "time_out_of_window", 5: "negative_value",
                           6: "unknown_patient", 7: "no_patient_id"}
    assert v["rows_out"] == 1


def test_a_csv_cut_mid_row_quarantines_its_last_row(tmp_path):
    """A labs.csv that does not end with a line break was cut (an interrupted copy): its last row
    ('408.0' cut to '40') must not become a valid 40 h result."""
    from tests.ingest_helpers import write_long

    labs = pd.DataFrame({"patient_id": ["P1"] * 3, "analyte": "IL-6", "value": ["5", "50", "70"],
                         "unit": "pg/mL", "hours_since_infusion": [-10.0, 24.0, 408.0]})
    folder = write_long(tmp_path / "in", labs, pd.DataFrame({"patient_id": ["P1"], "therapy": ["axi-cel"]}))
    text = (folder / "labs.csv").read_text()
    assert text.endswith("408.0\n")
    (folder / "labs.csv").write_text(text[: -len("8.0\n")])  # ... ,40
    from cohorts.ingest import ingest

    result = ingest("long", folder)
    q = result.quarantine.set_index("source_row")
    assert q.loc[2, "reason"] == "truncated_row" and 40.0 not in set(result.cohort.labs["hours_since_infusion"])
    assert result.validation["rows_in"] == 3 and result.validation["rows_out"] == 2


def test_a_patients_csv_cut_mid_row_is_one_clear_error(tmp_path):
    from cohorts.ingest import ingest
    from tests.ingest_helpers import write_long

    labs = pd.DataFrame({"patient_id": ["P1", "P2"], "analyte": "IL-6", "value": ["5", "50"],
                         "unit": "pg/mL", "hours_since_infusion": [-10.0, 24.0]})
    folder = write_long(tmp_path / "in", labs, pd.DataFrame({"patient_id": ["P1", "P2"], "age_years": [61, 45]}))
    text = (folder / "patients.csv").read_text()
    (folder / "patients.csv").write_text(text[:-2])  # P2,4
    with pytest.raises(CohortError, match=r"line break.*row 1"):
        ingest("long", folder)
