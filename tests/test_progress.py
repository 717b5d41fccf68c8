"""Every long step shows progress: libraries call an optional callback, the CLI shows a bar on a
terminal and plain log lines otherwise."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from crs_settings.progress import Progress


def test_plain_lines_without_a_terminal_and_a_bar_on_one():
    plain = io.StringIO()
    with Progress(None, unit="lab rows", desc="crs ingest", enabled=False, stream=plain, every_seconds=0) as bar:
        bar.update(1_000_000)
        bar(500)  # the object itself is a callback
    lines = plain.getvalue().splitlines()
    assert lines[0].startswith("crs ingest: 1,000,000 lab rows in ") and lines[1].startswith("crs ingest: 1,000,500")
    tty = io.StringIO()
    with Progress(10, unit="patients", desc="crs featurize", enabled=True, stream=tty) as bar:
        bar.update(10)
    assert "crs featurize: 100%|" in tty.getvalue()


def test_log_lines_are_throttled_but_the_last_always_prints():
    plain = io.StringIO()
    bar = Progress(100, unit="patients", desc="x", enabled=False, stream=plain, every_seconds=3600)
    for _ in range(100):
        bar.update(1)
    lines = plain.getvalue().splitlines()
    assert lines == [lines[-1]] and "100/100 patients (100%)" in lines[-1]
    quiet = io.StringIO()  # a short step of unknown size says nothing (default: a line per 5 s at most)
    bar = Progress(None, unit="lab rows", desc="x", enabled=False, stream=quiet)
    bar.update(10)
    assert quiet.getvalue() == ""


def test_each_long_library_step_reports_through_its_callback(tmp_path, small_cohort):
    from cohorts.ingest import ingest
    from cohorts.simulate import write_simulated_cohort
    from features.chunks import featurize_folder
    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.evaluate import evaluate_predictions, evaluation_steps
    from models.train import train_model
    from tests.conftest import MIX

    calls: list[int] = []
    counts = write_simulated_cohort(tmp_path / "c", 250, 4, MIX, chunk_size=100, progress=calls.append)
    assert calls == [100, 100, 50] and counts["patients"] == 250
    calls.clear()
    result = ingest("long", tmp_path / "c", chunk_rows=5_000, progress=calls.append)
    assert sum(calls) == result.validation["rows_in"] and len(calls) > 2
    calls.clear()
    kf = KineticFeatures()
    featurize_folder(tmp_path / "c", tmp_path / "f.parquet", kf, [24.0, 48.0], chunk_patients=60,
                     progress=calls.append)
    assert sum(calls) == 250 and len(calls) == 5
    calls.clear()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0], events=small_cohort.events)
    cfg = TrainConfig(xgboost={"n_estimators": 10, "early_stopping_rounds": 5, "learning_rate": 0.3},
                      search_space={"max_depth": [2]}, n_folds=3, inner_folds=2, seed=1, baselines=False)
    _, oof = train_model(matrix, kf, cfg, progress=calls.append)
    assert calls == [1, 1, 1, 1]  # three outer folds, then the final model
    calls.clear()
    evaluate_predictions(oof, 5, 1, progress=calls.append)
    assert sum(calls) == evaluation_steps(oof) >= 1 + 2 + 2  # pooled, 2 landmarks, therapy, disease(, naive)


@pytest.mark.parametrize("verb", ["simulate"])
def test_the_command_line_prints_log_lines_when_not_on_a_terminal(tmp_path, verb):
    done = subprocess.run([sys.executable, "-m", "pipeline", "simulate", "--patients", "30", "--seed", "1",
                           "--out", str(Path(tmp_path) / "c")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "crs simulate: 30/30 patients (100%)" in done.stderr
