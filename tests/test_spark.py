"""Spark scale-out (scoring/spark.py, scoring/spark_ingest.py): the same rows as one machine.

Every test runs on the session fixture `spark` (local[2]) on tiny data: the point is equality with
the single-machine path row for row, with patients spread over many partitions and files.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cohorts.io import Cohort, write_cohort
from models.drivers import driver_columns
from scoring.batch import LoadedModel, score_cohort

pytest.importorskip("pyspark", reason="the Spark extra is not installed")
pytestmark = [pytest.mark.spark, pytest.mark.slow]

LANDMARKS = [24.0, 48.0]
KEYS = ["patient_id", "landmark_hours"]


@pytest.fixture(scope="module")
def model():
    from cohorts.schema import canonical_grades
    from cohorts.simulate import iter_chunks
    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.train import train_model
    from tests.conftest import MIX

    c = next(iter_chunks(600, seed=21, therapy_mix=MIX))
    kf = KineticFeatures(current_grade=True)  # the grade course travels: Spark must group it with the patient
    matrix = kf.build(c.labs, c.patients, [24.0, 48.0, 72.0], events=c.events, grades=canonical_grades(c.grades))
    cfg = TrainConfig(xgboost={"n_estimators": 30, "early_stopping_rounds": 10, "learning_rate": 0.2,
                               "max_depth": 3}, search_space={"max_depth": [3]}, n_folds=2, inner_folds=2, seed=1)
    bundle, _ = train_model(matrix, kf, cfg)
    bundle.meta["risk_band_edges"] = [0.1, 0.3]
    assert "current_grade" in bundle.booster.get_score(importance_type="gain")
    return LoadedModel(bundle, "severe-crs", "3", "champion", "models:/severe-crs@champion")


@pytest.fixture(scope="module")
def cohort(small_cohort):
    """60 simulated patients with their CRS grade course and every status: one already severe, one with
    post-infusion labs only, one without labs, one whose every lab row was quarantined."""
    from cohorts.schema import canonical_grades

    keep = small_cohort.patients["patient_id"].head(60)
    patients = small_cohort.patients[small_cohort.patients["patient_id"].isin(keep)].copy()
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(keep)].copy()
    events = small_cohort.events[small_cohort.events["patient_id"].isin(keep)].copy()
    grades = canonical_grades(small_cohort.grades[small_cohort.grades["patient_id"].isin(keep)])
    first, late = patients["patient_id"].iloc[0], patients["patient_id"].iloc[1]
    patients["severe_onset_hours"] = np.where(patients["patient_id"] == first, 10.0, np.nan)
    labs = labs[(labs["patient_id"] != late) | (labs["hours_since_infusion"] > 0)]
    extra = pd.DataFrame({"patient_id": ["NO-LABS", "ALL-QUARANTINED"], "therapy": ["axi-cel", "tisa-cel"],
                          "disease": ["LBCL", "LBCL"], "age_years": [60.0, 50.0]})
    patients = pd.concat([patients, extra], ignore_index=True)
    return Cohort(labs.reset_index(drop=True), patients, events.reset_index(drop=True), {"synthetic": True},
                  grades.reset_index(drop=True))


def split_folder(tmp_path, cohort: Cohort, n_files: int = 4):
    """A canonical folder whose labs.parquet is a folder of `n_files` part files with the rows
    shuffled: every patient's rows are spread over several files."""
    folder = tmp_path / "cohort"
    write_cohort(cohort, folder)
    (folder / "labs.parquet").unlink()
    (folder / "labs.parquet").mkdir()
    shuffled = cohort.labs.sample(frac=1.0, random_state=7).reset_index(drop=True)
    for k, part in enumerate(np.array_split(np.arange(len(shuffled)), n_files)):
        shuffled.iloc[part].to_parquet(folder / "labs.parquet" / f"part-{k}.parquet", index=False)
    pd.DataFrame({"patient_id": ["ALL-QUARANTINED"], "reason": ["unknown_unit"]}).to_parquet(
        folder / "quarantine.parquet", index=False)
    write_cohort(cohort, whole(folder))  # the same cohort, one file per table, for one machine
    shutil.copy(folder / "quarantine.parquet", whole(folder) / "quarantine.parquet")
    return folder


def whole(folder):
    """The one-machine copy of a split folder: one machine reads one Parquet file per table (a folder
    of part files is an input error there, tests/test_validation.py)."""
    return folder.parent / "whole"


def compare(one: pd.DataFrame, spark_rows: pd.DataFrame) -> dict:
    """Row for row: same keys, statuses, risk bands and drivers; probabilities and contributions to 1e-9."""
    a = one.sort_values(KEYS, kind="mergesort").reset_index(drop=True)
    b = spark_rows.sort_values(KEYS, kind="mergesort").reset_index(drop=True)[list(a.columns)]
    assert len(a) == len(b)
    assert (a["patient_id"].to_numpy() == b["patient_id"].to_numpy()).all()
    np.testing.assert_array_equal(a["landmark_hours"].to_numpy(), b["landmark_hours"].to_numpy())
    assert (a["status"].to_numpy() == b["status"].to_numpy()).all()
    both = a["probability"].notna().to_numpy()
    assert (both == b["probability"].notna().to_numpy()).all()
    dp = float(np.max(np.abs(a["probability"].to_numpy()[both] - b["probability"].to_numpy()[both]), initial=0.0))
    assert dp <= 1e-9
    drivers = driver_columns()
    for col in ["risk_band", *drivers]:
        if col.endswith("_contribution"):
            np.testing.assert_allclose(a[col].to_numpy("float64"), b[col].to_numpy("float64"), atol=1e-9, rtol=0)
        else:
            assert (a[col].fillna("").astype(str).to_numpy() == b[col].fillna("").astype(str).to_numpy()).all(), col
    return {"rows": len(a), "max_abs_dp": dp, "scored": int(both.sum()),
            "with_drivers": int((a["driver_1_feature"].fillna("") != "").sum())}


def test_spark_scores_equal_one_machine_row_for_row(tmp_path, spark, model, cohort):
    """Patients spread over 4 input files and 8 random partitions, ~5 patients per group."""
    from scoring.spark import read_canonical, score_spark

    folder = split_folder(tmp_path, cohort)
    files = {p.name: set(pd.read_parquet(p)["patient_id"]) for p in (folder / "labs.parquet").iterdir()}
    spread = {pid for pid in cohort.patients["patient_id"] if sum(pid in ids for ids in files.values()) > 1}
    assert len(spread) > 40  # most patients' rows lie in more than one file
    score_cohort(whole(folder), "", tmp_path / "one.parquet", model=model, landmarks=LANDMARKS, reasons="all",
                 progress=False)
    one = pd.read_parquet(tmp_path / "one.parquet")
    t = read_canonical(spark, folder)
    labs = t["labs"].repartition(8)
    rows = score_spark(labs, t["patients"].repartition(8), model, LANDMARKS, events=t["events"].repartition(8),
                       grades=t["grades"].repartition(8), invalid_patients=t["invalid"], reasons="all",
                       patients_per_group=5).toPandas()
    result = compare(one, rows)
    (whole(folder) / "grades.parquet").unlink()  # the grade course changes scores: it reached every group
    score_cohort(whole(folder), "", tmp_path / "blind.parquet", model=model, landmarks=LANDMARKS, progress=False)
    blind = pd.read_parquet(tmp_path / "blind.parquet").sort_values(KEYS).reset_index(drop=True)
    ours = one.sort_values(KEYS).reset_index(drop=True)
    assert ((blind["status"] != ours["status"]) | (np.abs(blind["probability"] - ours["probability"]) > 1e-9)).any()
    assert result["scored"] > 30 and result["with_drivers"] == result["scored"]
    assert set(rows["status"]) >= {"scored", "already_severe", "invalid_input", "no_data_before_landmark",
                                   "no_baseline"}
    assert rows.groupby(KEYS).size().eq(1).all() and len(rows) == len(cohort.patients) * len(LANDMARKS)
    assert (rows["model_version"] == "3").all() and rows["scored_at"].nunique() == 1
    print("canonical, split over files and partitions:", result)


def test_spark_as_of_latest_equals_one_machine(tmp_path, spark, model, cohort):
    from scoring.spark import read_canonical, score_spark

    folder = split_folder(tmp_path, cohort)
    score_cohort(whole(folder), "", tmp_path / "one.parquet", model=model, as_of_latest=True, progress=False)
    t = read_canonical(spark, folder)
    rows = score_spark(t["labs"].repartition(8), t["patients"], model, as_of_latest=True, events=t["events"],
                       grades=t["grades"], invalid_patients=t["invalid"], patients_per_group=7).toPandas()
    compare(pd.read_parquet(tmp_path / "one.parquet"), rows)


def test_patient_split_over_files_is_scored_once_by_the_cli_worker(tmp_path, spark, model, cohort):
    """`crs score --engine spark` worker: a Parquet folder, one row per patient × landmark, the same
    rows as one machine, even grouped by patient_id itself (patients_per_group=1)."""
    from scoring.spark import score_cohort_spark

    folder = split_folder(tmp_path, cohort, n_files=6)
    out = tmp_path / "scores.parquet"
    summary = score_cohort_spark(folder, "", out, model=model, landmarks=LANDMARKS, spark=spark,
                                 patients_per_group=1, partition_by=["status"])
    rows = pd.read_parquet(out)
    rows["status"] = rows["status"].astype(str)
    assert out.is_dir() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    assert rows.groupby(KEYS).size().eq(1).all() and len(rows) == summary["rows_written"] == 2 * len(cohort.patients)
    assert summary["patients_read"] == len(cohort.patients)
    assert summary["by_status"] == rows["status"].value_counts().to_dict()
    score_cohort(whole(folder), "", tmp_path / "one.parquet", model=model, landmarks=LANDMARKS, progress=False)
    compare(pd.read_parquet(tmp_path / "one.parquet"), rows)


def _omop_with_problems(tmp_path, cohort: Cohort, fmt: str):
    """The cohort as OMOP tables, plus rows ingest must quarantine: an unknown unit, a duplicate, a
    conflicting duplicate, an unknown person, and every row of one patient unusable."""
    from tests.exporters import to_omop

    base = Cohort(cohort.labs, cohort.patients[cohort.patients["patient_id"] != "ALL-QUARANTINED"], cohort.events, {})
    folder = to_omop(base, tmp_path / "omop", fmt)
    path = folder / f"measurement.{fmt}"
    m = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    person = pd.read_parquet(folder / f"person.{fmt}") if fmt == "parquet" else pd.read_csv(folder / "person.csv")
    bad_person = int(person["person_id"].max()) + 1
    person = pd.concat([person, person.tail(1).assign(person_id=bad_person)], ignore_index=True)
    drugs = pd.read_parquet(folder / f"drug_exposure.{fmt}") if fmt == "parquet" else pd.read_csv(
        folder / "drug_exposure.csv")
    drugs = pd.concat([drugs, drugs.head(1).assign(person_id=bad_person)], ignore_index=True)
    extra = [m.iloc[[3]].assign(unit_source_value="furlongs"), m.iloc[[5]],
             m.iloc[[8]].assign(value_as_number=m["value_as_number"].iloc[8] + 1,
                                value_source_value=str(m["value_as_number"].iloc[8] + 1)),
             m.iloc[[9]].assign(person_id=99999),
             m.iloc[10:14].assign(person_id=bad_person, unit_source_value="furlongs")]
    m = pd.concat([m, *extra], ignore_index=True)
    m["measurement_id"] = np.arange(len(m)) + 1
    for name, frame in (("measurement", m), ("person", person), ("drug_exposure", drugs)):
        if fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder, str(bad_person)


def _same_ingest(tmp_path, spark, model, folder, fmt: str) -> dict:
    from scoring.spark import score_cohort_spark

    one_out, spark_out = tmp_path / "one.parquet", tmp_path / "spark.parquet"
    one_summary = score_cohort(folder, "", one_out, fmt=fmt, model=model, landmarks=LANDMARKS, reasons="all",
                               progress=False)
    summary = score_cohort_spark(folder, "", spark_out, fmt=fmt, model=model, landmarks=LANDMARKS, reasons="all",
                                 spark=spark, patients_per_group=3)
    result = compare(pd.read_parquet(one_out), pd.read_parquet(spark_out))
    v_one = json.loads((tmp_path / "one.validation.json").read_text())
    v_spark = json.loads((tmp_path / "spark.validation.json").read_text())
    assert v_spark == v_one
    q_one = pd.read_parquet(tmp_path / "one.quarantine.parquet")
    q_spark = pd.read_parquet(tmp_path / "spark.quarantine.parquet")[list(q_one.columns)]
    order = ["source_row", "reason"]
    pd.testing.assert_frame_equal(q_one.sort_values(order).reset_index(drop=True).astype(str),
                                  q_spark.sort_values(order).reset_index(drop=True).astype(str))
    assert summary["quarantine"]["rows"] == one_summary["quarantine"]["rows"] == len(q_one)
    assert summary["quarantine"]["patients_invalid_input"] == one_summary["quarantine"]["patients_invalid_input"]
    return result | {"quarantined": len(q_one), "rows_in": v_one["rows_in"], "by_reason": v_one["by_reason"]}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_omop_through_spark_equals_omop_on_one_machine(tmp_path, spark, model, cohort, fmt):
    """Scores, quarantine rows and validation.json of an OMOP folder: Spark == one machine."""
    folder, bad = _omop_with_problems(tmp_path, cohort, fmt)
    result = _same_ingest(tmp_path, spark, model, folder, "omop")
    assert {"unknown_unit", "duplicate", "conflicting_duplicate", "unknown_patient"} <= set(result["by_reason"])
    rows = pd.read_parquet(tmp_path / "spark.parquet")
    assert (rows.loc[rows["patient_id"] == bad, "status"] == "invalid_input").all()
    print(f"OMOP {fmt}:", result)


def test_omop_fixture_and_long_through_spark_equal_one_machine(tmp_path, spark, model, cohort):
    """The hand-made OMOP fixture (concept ids, text values, date-only times) and a long CSV folder."""
    import shutil

    from tests.conftest import ROOT
    from tests.exporters import to_long

    fixture = tmp_path / "fixture"
    shutil.copytree(ROOT / "tests" / "fixtures" / "omop", fixture)
    (tmp_path / "a").mkdir()
    _same_ingest(tmp_path / "a", spark, model, fixture, "omop")
    base = Cohort(cohort.labs, cohort.patients[cohort.patients["patient_id"] != "ALL-QUARANTINED"], cohort.events, {})
    long = to_long(base, tmp_path / "long")
    labs = pd.read_csv(long / "labs.csv")
    labs = pd.concat([labs, labs.iloc[[4]], labs.iloc[[6]].assign(unit="furlongs")], ignore_index=True)
    labs.to_csv(long / "labs.csv", index=False)
    (tmp_path / "b").mkdir()
    print("long:", _same_ingest(tmp_path / "b", spark, model, long, "long"))


def test_omop_from_a_spark_database_equals_the_folder(tmp_path, spark, model, cohort):
    """OMOP tables given as Spark tables (here global temporary views) score as the same folder does."""
    from scoring.spark import score_cohort_spark

    folder, _ = _omop_with_problems(tmp_path, cohort, "parquet")
    for path in folder.glob("*.parquet"):
        spark.read.parquet(str(path)).createOrReplaceGlobalTempView(path.stem)
    score_cohort_spark(folder, "", tmp_path / "folder.parquet", fmt="omop", model=model, landmarks=LANDMARKS,
                       spark=spark)
    score_cohort_spark("global_temp", "", tmp_path / "db.parquet", fmt="omop", model=model, landmarks=LANDMARKS,
                       spark=spark)
    compare(pd.read_parquet(tmp_path / "folder.parquet"), pd.read_parquet(tmp_path / "db.parquet"))
    a = json.loads((tmp_path / "folder.validation.json").read_text())
    b = json.loads((tmp_path / "db.validation.json").read_text())
    assert a["rows_in"] == b["rows_in"] and a["by_reason"] == b["by_reason"] and a["by_analyte"] == b["by_analyte"]


def test_featurize_on_spark_equals_featurize_folder(tmp_path, spark, cohort):
    from features.chunks import featurize_folder
    from features.spark import featurize_folder_spark
    from features.transformer import KineticFeatures

    folder = split_folder(tmp_path, cohort)
    kf = KineticFeatures()
    featurize_folder(whole(folder), tmp_path / "one.parquet", kf, [24.0, 48.0, 72.0])
    counts = featurize_folder_spark(folder, tmp_path / "spark.parquet", kf, [24.0, 48.0, 72.0], spark=spark,
                                    patients_per_group=4)
    one = pd.read_parquet(tmp_path / "one.parquet").sort_values(KEYS).reset_index(drop=True)
    two = pd.read_parquet(tmp_path / "spark.parquet")[list(one.columns)].sort_values(KEYS).reset_index(drop=True)
    assert counts == {"patients": len(cohort.patients), "rows": len(one)}
    pd.testing.assert_frame_equal(one, two, check_dtype=False, rtol=0, atol=1e-12)


def test_a_bad_canonical_table_is_one_input_error(tmp_path, spark, model, cohort):
    from cohorts.errors import CohortError
    from scoring.spark import score_cohort_spark

    folder = split_folder(tmp_path, cohort, n_files=2)
    bad = pd.read_parquet(folder / "labs.parquet" / "part-0.parquet")
    bad.loc[0, "value"] = np.inf
    bad.to_parquet(folder / "labs.parquet" / "part-0.parquet", index=False)
    with pytest.raises(CohortError, match="must be a finite number"):
        score_cohort_spark(folder, "", tmp_path / "s.parquet", model=model, landmarks=LANDMARKS, spark=spark)
    assert not (tmp_path / "s.parquet").exists()


@pytest.mark.parametrize("table", ["labs", "events", "grades"])
def test_rows_of_a_patient_not_in_the_patients_table_are_one_input_error(tmp_path, spark, model, cohort, table):
    """As on one machine (cohorts.schema.known_patients): not rows the grouping would silently drop."""
    from cohorts.errors import CohortError
    from features.spark import featurize_folder_spark
    from scoring.spark import score_cohort_spark

    folder = tmp_path / "cohort"
    write_cohort(cohort, folder)
    path = folder / f"{table}.parquet"
    rows = pd.read_parquet(path)
    rows.loc[len(rows) // 2, "patient_id"] = "NOT-LISTED"
    rows.to_parquet(path, index=False)
    with pytest.raises(CohortError, match="NOT-LISTED.*not in patients.parquet") as err:
        score_cohort_spark(folder, "", tmp_path / "s.parquet", model=model, landmarks=LANDMARKS, spark=spark)
    assert err.value.file == str(path) and not (tmp_path / "s.parquet").exists()
    with pytest.raises(CohortError, match="NOT-LISTED"):
        featurize_folder_spark(folder, tmp_path / "f.parquet", model.bundle.features, [24.0], spark=spark)
    with pytest.raises(CohortError, match="NOT-LISTED"):  # the same cohort on one machine: the same refusal
        score_cohort(folder, "", tmp_path / "one.parquet", model=model, landmarks=LANDMARKS, progress=False)


def test_cli_score_and_featurize_with_engine_spark(tmp_path, spark, model, cohort, monkeypatch, capsys):
    """`crs score --engine spark` (the alias resolved once, by the driver) and `crs featurize --engine spark`."""
    import scoring.spark
    from pipeline.cli import main

    asked = []
    monkeypatch.setattr(scoring.spark, "resolve_model",
                        lambda uri: uri if isinstance(uri, LoadedModel) else asked.append(uri) or model)
    folder = split_folder(tmp_path, cohort)
    code = main(["score", "--engine", "spark", "--cohort", str(folder), "--model", "models:/severe-crs@champion",
                 "--landmarks", "24,48", "--out", str(tmp_path / "scores.parquet"), "--patients-per-group", "9"])
    assert code == 0 and asked == ["models:/severe-crs@champion"]
    assert "124 rows written" in capsys.readouterr().out
    score_cohort(whole(folder), "", tmp_path / "one.parquet", model=model, landmarks=LANDMARKS, progress=False)
    compare(pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "scores.parquet"))
    code = main(["featurize", "--engine", "spark", "--cohort", str(folder), "--landmarks", "24,48",
                 "--out", str(tmp_path / "features.parquet")])
    assert code == 0 and len(pd.read_parquet(tmp_path / "features.parquet")) == 2 * len(cohort.patients)
    code = main(["score", "--engine", "spark", "--cohort", str(folder), "--landmarks", "24",
                 "--out", str(tmp_path / "scores.csv")])
    assert code == 2 and "writes Parquet" in capsys.readouterr().err


def test_a_bad_grade_is_one_input_error_on_spark(tmp_path, spark, model, cohort):
    from cohorts.errors import CohortError
    from scoring.spark import score_cohort_spark

    folder = split_folder(tmp_path, cohort, n_files=2)
    grades = pd.read_parquet(folder / "grades.parquet")
    grades.loc[3, "grade"] = 7.0
    grades.to_parquet(folder / "grades.parquet", index=False)
    with pytest.raises(CohortError, match="CRS grade must be a whole number 0-5"):
        score_cohort_spark(folder, "", tmp_path / "s.parquet", model=model, landmarks=LANDMARKS, spark=spark)
    assert not (tmp_path / "s.parquet").exists()
