"""`crs report`: one self-contained HTML page per patient, checked as text and in a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohorts.io import Cohort, write_cohort
from reports.patient import DISCLAIMER

ROOT = Path(__file__).resolve().parent.parent
XGB = {"n_estimators": 30, "early_stopping_rounds": 10, "learning_rate": 0.2, "max_depth": 3}
LANDMARKS = [24.0, 48.0, 72.0, 96.0]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, small_cohort):
    """A small model trained on the shared simulated cohort, saved as a model folder (no MLflow)."""
    from features.transformer import KineticFeatures
    from models.crossval import TrainConfig
    from models.train import train_model

    kf = KineticFeatures()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, LANDMARKS, events=small_cohort.events)
    cfg = TrainConfig(xgboost=XGB, search_space={"max_depth": [3]}, n_folds=2, inner_folds=2, seed=1)
    bundle, _ = train_model(matrix, kf, cfg)
    bundle.meta["risk_band_edges"] = [0.1, 0.3]
    bundle.meta["landmarks_hours"] = LANDMARKS
    folder = tmp_path_factory.mktemp("model")
    bundle.save(folder)
    return folder


def _pick(cohort: Cohort, n: int) -> list[str]:
    """Patients with many analytes and a treatment: the richest pages first."""
    per = cohort.labs.groupby("patient_id")["analyte"].nunique()
    treated = set(cohort.events["patient_id"])
    ranked = sorted(per.index, key=lambda p: (-(p in treated), -per[p], p))
    return ranked[:n]


@pytest.fixture(scope="module")
def cohort_folder(tmp_path_factory, small_cohort):
    ids = _pick(small_cohort, 4)
    keep = lambda t: t[t["patient_id"].isin(ids)].reset_index(drop=True)  # noqa: E731
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(Cohort(keep(small_cohort.labs), keep(small_cohort.patients), keep(small_cohort.events),
                        {"synthetic": True}), folder)
    return folder, ids


def _cli(*args: str) -> int:
    from pipeline.cli import main

    return main(["report", *args])


def test_report_is_one_self_contained_page_with_every_part(tmp_path, model_folder, cohort_folder):
    folder, ids = cohort_folder
    pid = ids[0]
    out = tmp_path / "r.html"
    assert _cli("--cohort", str(folder), "--patient", pid, "--model", str(model_folder), "--out", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    # self-contained: no address outside the page, every picture inline
    assert not re.search(r"https?://|//cdn|<script|<link", page, re.I)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    assert f"patient {pid}" in page and "SYNTHETIC DATA" in page
    assert DISCLAIMER in page and "not a medical device" in page and "usual care" in page
    # one picture per measured analyte, plus the risk over time
    labs = pd.read_parquet(folder / "labs.parquet")
    measured = set(labs.loc[labs["patient_id"] == pid, "analyte"])
    assert len(measured) >= 6
    assert set(re.findall(r'<figure class="analyte" data-analyte="([^"]+)"><img ', page)) == measured
    assert len(re.findall(r'<figure class="analyte"', page)) == len(measured)
    assert page.count('data-chart="risk"') == 1
    # every landmark: its probability (scored) or what happened instead
    from models.bundle import ModelBundle
    from models.predict import predict_cohort

    bundle = ModelBundle.load(model_folder)
    one = lambda t: t[t["patient_id"] == pid]  # noqa: E731
    rows = predict_cohort(bundle, one(labs), one(pd.read_parquet(folder / "patients.parquet")), LANDMARKS,
                          events=one(pd.read_parquet(folder / "events.parquet")), reasons="all")
    assert (rows["status"] == "scored").any()
    for r in rows.itertuples():
        cell = re.search(rf'<tr data-landmark="{r.landmark_hours:g}">(.*?)</tr>', page, re.S)
        assert cell, r.landmark_hours
        if r.status == "scored":
            assert f"<b>{100 * r.probability:.0f}%</b>" in cell.group(1) or r.probability < 0.01
            assert r.driver_1_text.split(":")[0] in cell.group(1)  # its drivers, in words
        else:
            assert "<b>" not in cell.group(1).split("</td>")[1]
    # drivers in plain words: no log-odds, percentage points
    assert "log-odds" not in page and "percentage point" in page
    # treatments on the page
    events = one(pd.read_parquet(folder / "events.parquet"))
    for name in set(events["event"]):
        assert name in page


def test_driver_bars_show_the_points_of_each_driver(tmp_path, model_folder, cohort_folder):
    from pipeline.report import _model, patient_data

    folder, ids = cohort_folder
    labs = pd.read_parquet(folder / "labs.parquet")
    pats = pd.read_parquet(folder / "patients.parquet")
    ev = pd.read_parquet(folder / "events.parquet")
    pid = ids[0]
    one = lambda t: t[t["patient_id"] == pid].reset_index(drop=True)  # noqa: E731
    data = patient_data(_model(str(model_folder)), one(labs), one(pats), one(ev), synthetic=True, generated_at="now")
    scored = data.landmarks[data.landmarks["status"] == "scored"]
    for i in (1, 2, 3):
        has = scored[f"driver_{i}_text"] != ""
        pts = scored.loc[has, f"driver_{i}_points"].to_numpy()
        assert np.isfinite(pts).all()
        # the sentence and the bar say the same number and the same direction
        for text, p in zip(scored.loc[has, f"driver_{i}_text"], pts, strict=True):
            m = re.search(r"(raises|lowers) risk (?:by (\d+\.\d)|slightly)", text)
            assert m and (m.group(1) == "raises") == (p > 0)
            if m.group(2):
                assert float(m.group(2)) == round(abs(p), 1)
    # the risk curve: only times inside the trained range, each a time a result became available
    lo, hi = LANDMARKS[0] - data.model.tolerance_hours, LANDMARKS[-1] + data.model.tolerance_hours
    assert data.curve["landmark_hours"].between(lo, hi).all() and len(data.curve) > 0


def test_all_writes_one_page_per_patient_and_an_index(tmp_path, model_folder, cohort_folder):
    folder, ids = cohort_folder
    out = tmp_path / "reports"
    assert _cli("--cohort", str(folder), "--all", "--model", str(model_folder), "--out", str(out)) == 0
    pages = sorted(p.name for p in out.glob("*.html") if p.name != "index.html")
    assert pages == sorted(f"{i}.html" for i in ids)
    index = (out / "index.html").read_text()
    assert all(f'href="{i}.html"' in index for i in ids) and "not a medical device" in index
    assert not [p for p in out.iterdir() if "partial" in p.name]


def test_unknown_patient_is_exit_2_with_one_clear_line(tmp_path, model_folder, cohort_folder, capsys):
    folder, _ = cohort_folder
    out = tmp_path / "r.html"
    code = _cli("--cohort", str(folder), "--patient", "NO-SUCH-PATIENT", "--model", str(model_folder),
                "--out", str(out))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "NO-SUCH-PATIENT" in err and "not in the cohort" in err and "Traceback" not in err
    assert not out.exists()


def test_patient_and_all_are_exclusive_and_one_is_required(tmp_path):
    for args in ([], ["--patient", "A", "--all"]):
        with pytest.raises(SystemExit) as exc:
            _cli("--cohort", str(tmp_path), "--out", str(tmp_path / "r.html"), *args)
        assert exc.value.code == 2


def test_the_page_renders_in_headless_chromium(tmp_path, model_folder, cohort_folder):
    """The documented screenshot script on a real page. CI machines without Debian's chromium skip
    this test (it says so); `apt-get install chromium` makes it run."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install chromium): the browser check cannot run here")
    from matplotlib.image import imread

    folder, ids = cohort_folder
    env_crs = str(Path(__import__("sys").executable).parent / "crs")
    done = subprocess.run([str(ROOT / "scripts" / "screenshot_report.sh"), str(folder), ids[0], str(tmp_path),
                           str(model_folder), "1200,2000"], capture_output=True, text=True,
                          env={**__import__("os").environ, "CRS": env_crs}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    png = imread(tmp_path / f"{ids[0]}.png")
    assert png.shape[:2] == (2000, 1200)
    rgb = png[..., :3]
    # not a blank page: many distinct colours (pictures, risk band colours) and dark text
    top = rgb[:900]
    assert len(np.unique((top * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 200
    assert (top.mean(axis=2) < 0.3).mean() > 0.005
    # the band colours of the risk chart are on screen (light red, amber and green fills)
    fills = {(253, 236, 234), (255, 244, 224), (232, 245, 233)}
    seen = {tuple(c) for c in np.unique((rgb * 255).round().astype(np.uint8).reshape(-1, 3), axis=0)}
    assert fills <= seen


def test_any_supported_format_through_ingest(tmp_path, model_folder, cohort_folder):
    """--format long: the same page from a long CSV export (read through the ingest readers)."""
    from cohorts.io import read_cohort
    from tests.exporters import to_long

    folder, ids = cohort_folder
    to_long(read_cohort(folder), tmp_path / "long")
    out = tmp_path / "r.html"
    assert _cli("--cohort", str(tmp_path / "long"), "--format", "long", "--patient", ids[1],
                "--model", str(model_folder), "--out", str(out)) == 0
    page = out.read_text(encoding="utf-8")
    labs = pd.read_parquet(folder / "labs.parquet")
    measured = set(labs.loc[labs["patient_id"] == ids[1], "analyte"])
    assert set(re.findall(r'data-analyte="([^"]+)"', page)) == measured and f"patient {ids[1]}" in page
