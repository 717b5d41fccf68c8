"""A small cohort with one of each hard case (issue 12): censored follow-up, grade >= 3 without an
onset time, a vasopressor before the graded onset (ASTCT), a send-out cytokine without result times.
Eligibility and labels from the library, then the counts in metrics.json through featurize, train
and evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cohorts.io import Cohort, write_cohort
from features.landmarks import landmark_counts
from features.transformer import KineticFeatures
from tests.conftest import MIX, lab_rows

ROOT = Path(__file__).resolve().parent.parent
LANDMARKS = [24.0, 48.0, 72.0, 96.0]
HAND = ["H-CENSORED", "H-NOONSET", "H-VASO", "H-SENDOUT"]


def _hand_cohort(n_simulated: int = 0, seed: int = 5) -> Cohort:
    patients = pd.DataFrame({
        "patient_id": HAND, "therapy": "axi-cel", "disease": "LBCL", "age_years": 60.0, "grading": "ASTCT",
        "crs_max_grade": [0.0, 3.0, 3.0, 0.0], "crs_onset_hours": [np.nan, 30.0, 20.0, np.nan],
        "severe_onset_hours": [np.nan, np.nan, 80.0, np.nan],
        "followup_hours": [60.0, 300.0, 300.0, 300.0]})
    labs = pd.concat([lab_rows(p, "CRP", [(-24, 5), (20, 30), (44, 60)]) for p in HAND]
                     + [lab_rows("H-SENDOUT", "IL6", [(-24, 4)]),
                        lab_rows("H-SENDOUT", "IL6", [(20, 400), (40, 900)], resulted=None)],  # send-out
                     ignore_index=True)
    events = pd.DataFrame({"patient_id": ["H-VASO"], "event": ["vasopressors"], "hours_since_infusion": [40.0],
                           "dose": [np.nan], "dose_unit": [""]})
    grades = pd.DataFrame({"patient_id": ["H-VASO", "H-NOONSET"], "hours_since_infusion": [20.0, 30.0],
                           "grade": [1.0, 1.0]})
    if n_simulated:
        from cohorts.simulate import iter_chunks

        sim = next(iter_chunks(n_simulated, seed=seed, therapy_mix=MIX))
        sim_grades = sim.grades.rename(columns={"grade_astct": "grade"})[["patient_id", "hours_since_infusion",
                                                                          "grade"]]
        patients = pd.concat([sim.patients, patients], ignore_index=True)
        labs = pd.concat([sim.labs, labs.assign(source_row=np.arange(len(labs)) + len(sim.labs))],
                         ignore_index=True)
        events = pd.concat([sim.events, events], ignore_index=True)
        grades = pd.concat([sim_grades, grades], ignore_index=True)
    return Cohort(labs, patients, events, {"synthetic": True, "source": "test"}, grades)


EXPECTED = {  # (patient, landmark) -> outcome_status, label
    ("H-CENSORED", 24.0): ("censored", np.nan), ("H-CENSORED", 48.0): ("censored", np.nan),
    ("H-CENSORED", 72.0): ("not_observed", np.nan),
    ("H-NOONSET", 24.0): ("onset_unknown", np.nan), ("H-NOONSET", 96.0): ("onset_unknown", np.nan),
    ("H-VASO", 24.0): ("event", 1.0), ("H-VASO", 48.0): ("already_severe", np.nan),
    ("H-SENDOUT", 24.0): ("no_event", 0.0), ("H-SENDOUT", 96.0): ("no_event", 0.0),
}


def test_each_case_gets_its_eligibility_label_and_count():
    c = _hand_cohort()
    m = KineticFeatures(current_grade=True).build(c.labs, c.patients, LANDMARKS, events=c.events, grades=c.grades)
    rows = m.set_index(["patient_id", "landmark_hours"])
    for key, (status, label) in EXPECTED.items():
        assert rows.loc[key, "outcome_status"] == status, key
        assert np.isnan(label) and np.isnan(rows.loc[key, "label"]) or rows.loc[key, "label"] == label, key
    assert rows.loc[("H-CENSORED", 24.0), "eligible"] and not rows.loc[("H-CENSORED", 72.0), "eligible"]
    assert rows.loc[("H-NOONSET", 24.0), "eligible"] and not rows.loc[("H-VASO", 48.0), "eligible"]
    # the send-out IL-6 drawn at 20 h and 40 h has no result time: assumed back at 92 h and 112 h
    assert rows.loc[("H-SENDOUT", 48.0), "IL6__n_draws"] == 1 and rows.loc[("H-SENDOUT", 96.0), "IL6__n_draws"] == 2
    assert rows.loc[("H-SENDOUT", 96.0), "IL6__latest"] == 400
    assert rows.loc[("H-VASO", 24.0), "current_grade"] == 1 and "vasopressors__given" not in m
    counts = landmark_counts(m)
    assert counts["24h"] == {"rows": 4, "eligible": 4, "labelled": 2, "events": 1, "unknown_censored": 1,
                             "unknown_onset": 1, "unknown_outcome": 0, "not_labelled": 0, "already_severe": 0,
                             "not_observed": 0}
    assert counts["72h"]["not_observed"] == 1 and counts["72h"]["already_severe"] == 1
    assert counts["pooled"]["unknown_onset"] == 4 and counts["pooled"]["unknown_censored"] == 2


@pytest.mark.slow
def test_counts_reach_metrics_json_and_the_model_card(tmp_path, monkeypatch):
    """featurize -> train -> evaluate in a small project folder: metrics.json carries the per-landmark
    counts of the feature matrix and the assumed result times; the card states both."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    shutil.copytree(ROOT / "data" / "reference", project / "data" / "reference")
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["train"].update({"n_folds": 3, "inner_folds": 2, "search_space": {"max_depth": [3]}})
    p["train"]["xgboost"]["n_estimators"] = 40
    p["evaluate"]["n_bootstrap"] = 20
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    monkeypatch.setenv("CRS_PROJECT_ROOT", str(project))
    write_cohort(_hand_cohort(n_simulated=300), project / p["paths"]["cohort"])

    from pipeline.evaluate import evaluate
    from pipeline.featurize import featurize
    from pipeline.train import train

    featurize(project / p["paths"]["cohort"], None, project / p["paths"]["features"])
    train()
    metrics = evaluate()
    matrix = pd.read_parquet(project / p["paths"]["features"])
    saved = json.loads((project / p["paths"]["metrics_full"]).read_text())
    assert saved["landmark_rows"] == landmark_counts(matrix) == metrics["landmark_rows"]
    for key, block in saved["landmark_rows"].items():
        assert block["eligible"] == (block["labelled"] + block["unknown_censored"] + block["unknown_onset"]
                                     + block["unknown_outcome"] + block["not_labelled"]), key
    assert saved["landmark_rows"]["pooled"]["labelled"] == saved["pooled"]["n_rows"]  # unknowns left out
    assert saved["landmark_rows"]["pooled"]["unknown_onset"] >= 4
    statuses = matrix.set_index(["patient_id", "landmark_hours"])["outcome_status"]
    for key, (status, _) in EXPECTED.items():
        assert statuses[key] == status, key
    oof = pd.read_parquet(project / p["paths"]["oof"])
    assert not oof["patient_id"].isin(["H-NOONSET"]).any() and "treatment_naive" in oof
    assert saved["treatment_naive"]["n_rows"] == int(oof["treatment_naive"].sum()) > 0
    il6 = saved["result_times"]["IL6"]
    assert il6["without_result_time"] == 2 and il6["assumed_later_than_draw"] == 2 and il6["turnaround_hours"] == 72
    card = (project / p["paths"]["model_card"]).read_text()
    assert "unknown: censored" in card and "usual care" in card and "IL6: 2 of" in card
    assert "not the risk without treatment" in card and "vasopressor" in card
