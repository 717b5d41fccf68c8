"""The CRS grade course travels on every serving path: the pyfunc's grade rows, `crs score` on a
canonical folder (grades.parquet, read per patient chunk) and through `--format`, with the same
features and predictions as the training pipeline; without a grade course `current_grade` is unknown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohorts.errors import CohortError
from cohorts.io import Cohort, write_cohort
from cohorts.schema import canonical_grades
from features.transformer import KineticFeatures
from models.crossval import TrainConfig
from models.model_input import from_model_input, to_model_input
from models.predict import predict_cohort
from models.serving import SevereCrsModel
from models.train import train_model
from scoring.batch import LoadedModel, score_cohort

XGB = {"n_estimators": 40, "early_stopping_rounds": 10, "learning_rate": 0.2, "max_depth": 3}
CFG = TrainConfig(xgboost=XGB, search_space={"max_depth": [3]}, n_folds=2, inner_folds=2, seed=1)
LANDMARKS = [24.0, 48.0, 72.0]
KEYS = ["patient_id", "landmark_hours"]


@pytest.fixture(scope="module")
def graded_bundle():
    """A model trained with the grade course (current_grade on, as by default)."""
    from cohorts.simulate import iter_chunks
    from tests.conftest import MIX

    c = next(iter_chunks(800, seed=21, therapy_mix=MIX))
    kf = KineticFeatures(current_grade=True)
    matrix = kf.build(c.labs, c.patients, LANDMARKS, events=c.events, grades=canonical_grades(c.grades))
    b, _ = train_model(matrix, kf, CFG)
    b.meta["risk_band_edges"] = [0.1, 0.3]
    b.meta["landmarks_hours"] = LANDMARKS
    return b


@pytest.fixture(scope="module")
def cohort(small_cohort):
    keep = small_cohort.patients["patient_id"].head(60)
    pick = lambda t: t[t["patient_id"].isin(keep)].reset_index(drop=True)  # noqa: E731
    return Cohort(pick(small_cohort.labs), pick(small_cohort.patients), pick(small_cohort.events), {"synthetic": True},
                  canonical_grades(pick(small_cohort.grades)))


def _pyfunc(bundle) -> SevereCrsModel:
    model = SevereCrsModel()
    model.bundle = bundle
    return model


def _expected(bundle, cohort: Cohort, grades) -> pd.DataFrame:
    """What the training pipeline computes: its own landmark matrix, its own transform and booster."""
    matrix = bundle.features.build(cohort.labs, cohort.patients, LANDMARKS, events=cohort.events, grades=grades)
    rows = matrix[matrix["eligible"]]
    return rows[KEYS].assign(probability=bundle.probability(bundle.features.transform(rows)),
                             current_grade=rows["current_grade"].to_numpy())


def test_the_model_uses_current_grade(graded_bundle):
    assert "current_grade" in graded_bundle.booster.get_score(importance_type="gain")


def test_pyfunc_with_grade_rows_equals_the_training_pipeline(graded_bundle, cohort):
    out = _pyfunc(graded_bundle).predict(
        None, to_model_input(cohort.labs, cohort.patients, cohort.events, grades=cohort.grades),
        params={"landmarks": "24,48,72"})
    expected = _expected(graded_bundle, cohort, cohort.grades)
    assert expected["current_grade"].notna().all() and (expected["current_grade"] > 0).sum() >= 5
    merged = expected.merge(out, on=KEYS, suffixes=("", "_pyfunc"))
    scored = merged["status"] == "scored"
    assert scored.sum() >= 60
    np.testing.assert_allclose(merged.loc[scored, "probability_pyfunc"], merged.loc[scored, "probability"],
                               rtol=0, atol=1e-12)
    # a grade >= 3 recorded by L: already severe, as the training pipeline says (not eligible)
    matrix = graded_bundle.features.build(cohort.labs, cohort.patients, LANDMARKS, events=cohort.events,
                                          grades=cohort.grades)
    severe = matrix.loc[matrix["outcome_status"] == "already_severe", KEYS]
    assert len(severe) and (severe.merge(out, on=KEYS)["status"] == "already_severe").all()
    # the same patients without their grade course: current_grade unknown, so other probabilities
    blind = _pyfunc(graded_bundle).predict(None, to_model_input(cohort.labs, cohort.patients, cohort.events),
                                           params={"landmarks": "24,48,72"})
    both = out.merge(blind, on=KEYS, suffixes=("", "_blind"))
    both = both[(both["status"] == "scored") & (both["status_blind"] == "scored")]
    assert (np.abs(both["probability"] - both["probability_blind"]) > 1e-9).any()


def test_model_input_without_grade_rows_or_column_means_unknown(graded_bundle, cohort):
    frame = to_model_input(cohort.labs, cohort.patients, cohort.events, known_severe=True)
    assert "grade" in frame and frame["grade"].isna().all()
    assert from_model_input(frame).grades is None
    expected = predict_cohort(graded_bundle, cohort.labs, cohort.patients, LANDMARKS, events=cohort.events,
                              reasons="all")
    matrix = graded_bundle.features.build(cohort.labs, cohort.patients, LANDMARKS, events=cohort.events)
    assert matrix["current_grade"].isna().all()
    for sent in (frame, frame.drop(columns="grade")):  # an input from before grades travelled
        got = _pyfunc(graded_bundle).predict(None, sent, params={"landmarks": "24,48,72", "reasons": "all"})
        pd.testing.assert_frame_equal(got, expected)


def test_as_of_latest_reads_the_grade_course(graded_bundle, cohort):
    """`as_of latest` (its own feature path): a grade counts at its recorded time, like `build`."""
    got = predict_cohort(graded_bundle, cohort.labs, cohort.patients, None, events=cohort.events,
                         grades=cohort.grades, as_of_latest=True, landmark_tolerance_hours=1e6)
    for pid, when in got.dropna(subset=["landmark_hours"]).head(15)[KEYS].itertuples(index=False):
        one = lambda t, pid=pid: t[t["patient_id"] == pid]  # noqa: E731
        at = predict_cohort(graded_bundle, one(cohort.labs), one(cohort.patients), [when],
                            events=one(cohort.events), grades=one(cohort.grades))
        row = got[got["patient_id"] == pid].iloc[0]
        assert at["status"].iloc[0] == row["status"]
        np.testing.assert_allclose(at["probability"].iloc[0], row["probability"], rtol=0, atol=1e-12)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(landmark=st.sampled_from(LANDMARKS), shift=st.floats(0.01, 200), seed=st.integers(0, 2**16),
       added=st.lists(st.tuples(st.integers(0, 11), st.sampled_from([0.0, 1.0, 2.0, 3.0, 4.0])), max_size=8))
def test_pyfunc_output_at_l_ignores_grades_recorded_after_l(graded_bundle, cohort, landmark, shift, seed, added):
    """At serving too: adding, moving later, regrading or deleting grade rows recorded after L never
    changes a status, probability or driver at L."""
    ids = cohort.patients["patient_id"].head(12).tolist()
    pick = lambda t: t[t["patient_id"].isin(ids)].reset_index(drop=True)  # noqa: E731
    labs, patients, events, grades = (pick(cohort.labs), pick(cohort.patients), pick(cohort.events),
                                      pick(cohort.grades))
    rng = np.random.default_rng(seed)
    later = (grades["hours_since_infusion"] > landmark).to_numpy()
    changed = grades.copy()
    changed.loc[later, "hours_since_infusion"] += shift
    changed.loc[later, "grade"] = rng.integers(0, 5, int(later.sum())).astype(float)
    changed = changed[~(later & (rng.random(len(changed)) < 0.5))]
    new = pd.DataFrame({"patient_id": [ids[i] for i, _ in added], "hours_since_infusion": landmark + shift,
                        "grade": [g for _, g in added]})
    changed = pd.concat([changed, new], ignore_index=True)
    params = {"landmarks": f"{landmark:g}", "reasons": "all"}
    model = _pyfunc(graded_bundle)
    a = model.predict(None, to_model_input(labs, patients, events, grades=grades), params=params)
    b = model.predict(None, to_model_input(labs, patients, events, grades=changed), params=params)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def _score_folder(tmp_path, bundle, cohort: Cohort, name: str, **kw) -> pd.DataFrame:
    folder = tmp_path / f"{name}-cohort"
    write_cohort(cohort, folder)
    out = tmp_path / f"{name}.parquet"
    model = LoadedModel(bundle, "severe-crs", "1", "", "models:/severe-crs/1")
    score_cohort(folder, "", out, model=model, landmarks=LANDMARKS, progress=False, reasons="all", **kw)
    return pd.read_parquet(out).drop(columns=["scored_at", "model_name", "model_version", "model_alias"])


@pytest.mark.parametrize("with_grades", [True, False])
def test_scoring_a_folder_with_and_without_grades(tmp_path, graded_bundle, cohort, with_grades):
    grades = cohort.grades if with_grades else None
    data = Cohort(cohort.labs, cohort.patients, cohort.events, cohort.provenance, grades)
    whole = _score_folder(tmp_path, graded_bundle, data, "whole")
    chunked = _score_folder(tmp_path, graded_bundle, data, "chunked", chunk_patients=7)
    assert (tmp_path / "whole-cohort" / "grades.parquet").exists() == with_grades
    expected = predict_cohort(graded_bundle, cohort.labs, cohort.patients, LANDMARKS, events=cohort.events,
                              grades=grades, reasons="all")
    pd.testing.assert_frame_equal(whole, expected, check_dtype=False)
    pd.testing.assert_frame_equal(chunked, expected, check_dtype=False)
    pyfunc = _pyfunc(graded_bundle).predict(
        None, to_model_input(cohort.labs, cohort.patients, cohort.events, grades=grades, known_severe=True),
        params={"landmarks": "24,48,72", "reasons": "all"})
    pd.testing.assert_frame_equal(whole, pyfunc, check_dtype=False)


def test_long_format_scoring_reads_the_grade_course(tmp_path, graded_bundle, cohort):
    from tests.exporters import to_long

    folder = to_long(cohort, tmp_path / "long")
    model = LoadedModel(graded_bundle, "severe-crs", "1", "", "models:/severe-crs/1")
    runs = {}
    for name in ("without", "with"):
        if name == "with":
            cohort.grades.to_csv(folder / "grades.csv", index=False)
        out = tmp_path / f"{name}.parquet"
        score_cohort(folder, "", out, fmt="long", model=model, landmarks=LANDMARKS, progress=False)
        runs[name] = pd.read_parquet(out).set_index(KEYS).sort_index()
    expected = predict_cohort(graded_bundle, cohort.labs, cohort.patients, LANDMARKS, events=None,
                              grades=cohort.grades).set_index(KEYS).sort_index()
    assert (runs["with"]["status"] == expected["status"]).all()
    scored = expected["status"] == "scored"
    np.testing.assert_allclose(runs["with"].loc[scored, "probability"], expected.loc[scored, "probability"],
                               rtol=1e-9)
    assert not np.allclose(runs["without"].loc[scored, "probability"], expected.loc[scored, "probability"])


@pytest.mark.parametrize("bad", [7.0, 2.5, "severe"])
def test_a_bad_grade_in_grades_parquet_is_one_input_error_exit_2(tmp_path, monkeypatch, capsys, graded_bundle, cohort,
                                                                 bad):
    import scoring.batch
    from pipeline.cli import main

    grades = cohort.grades.astype({"grade": object})
    row = len(grades) - 3
    grades.loc[row, "grade"] = bad
    folder = tmp_path / "cohort"
    write_cohort(Cohort(cohort.labs, cohort.patients, cohort.events, {}, None), folder)
    grades.assign(grade=grades["grade"].astype(str)).to_parquet(folder / "grades.parquet", index=False)
    monkeypatch.setattr(scoring.batch, "load_model",
                        lambda uri: LoadedModel(graded_bundle, "severe-crs", "1", "", uri))
    code = main(["score", "--cohort", str(folder), "--model", "models:/severe-crs/1", "--landmarks", "24",
                 "--out", str(tmp_path / "s.csv"), "--chunk-patients", "9"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "grades.parquet" in err and f"row {row}" in err and "column 'grade'" in err and (f"found {bad!r}" if isinstance(bad, str) else f"found {bad:g}") in err, err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2, err
    assert not (tmp_path / "s.csv").exists()


def test_a_bad_grade_row_in_the_model_input_is_named(graded_bundle, cohort):
    frame = to_model_input(cohort.labs, cohort.patients, cohort.events, grades=cohort.grades)
    row = int(np.flatnonzero(frame["grade"].notna().to_numpy())[4])
    bad = frame.astype({"grade": object})
    bad.loc[row, "grade"] = "grade 3"
    with pytest.raises(CohortError, match="model input") as info:
        _pyfunc(graded_bundle).predict(None, bad, params={"landmarks": "24"})
    assert info.value.row == row and info.value.column == "grade"
    bad = frame.copy()
    bad.loc[row, "grade"] = 9.0
    with pytest.raises(CohortError, match="CRS grade must be a whole number 0-5") as info:
        _pyfunc(graded_bundle).predict(None, bad, params={"landmarks": "24"})
    assert info.value.row == row
    lab = int(np.flatnonzero((frame["analyte"] != "").to_numpy())[0])
    both = frame.copy()
    both.loc[lab, "grade"] = 1.0  # a grade on a lab row would be dropped silently: refused
    with pytest.raises(CohortError, match="both a grade and an analyte") as info:
        _pyfunc(graded_bundle).predict(None, both, params={"landmarks": "24"})
    assert info.value.row == lab


def test_external_evaluation_and_the_patient_report_read_the_grade_course(tmp_path, graded_bundle, cohort):
    """`crs evaluate --cohort` and `crs report` score with the grade course too (as `crs score`)."""
    from models.external import external_predictions
    from pipeline.report import _read, patient_data

    expected = _expected(graded_bundle, cohort, cohort.grades)
    ext = external_predictions(graded_bundle, cohort, LANDMARKS).merge(expected, on=KEYS, suffixes=("", "_train"))
    assert len(ext) > 60
    np.testing.assert_allclose(ext["probability"], ext["probability_train"], rtol=0, atol=1e-12)
    write_cohort(cohort, tmp_path / "c")
    pid = expected.loc[expected["current_grade"] > 0, "patient_id"].iloc[0]
    labs, patients, events, grades, _ = _read(tmp_path / "c", None, [pid])
    assert set(grades["patient_id"]) == {pid}
    model = LoadedModel(graded_bundle, "", "", "", "folder")
    data = patient_data(model, labs, patients, events, synthetic=True, generated_at="now", grades=grades)
    at = predict_cohort(graded_bundle, labs, patients, LANDMARKS, events=events, grades=grades, reasons="all")
    pd.testing.assert_frame_equal(data.landmarks[list(at.columns)], at)
    blind = predict_cohort(graded_bundle, labs, patients, LANDMARKS, events=events, reasons="all")
    assert not blind["probability"].equals(at["probability"])
