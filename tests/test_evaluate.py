import numpy as np
import pandas as pd

from models.evaluate import decision_curve, evaluate_predictions, treatment_naive
from models.model_card import HEADINGS, render_model_card


def _oof(n_patients=300, seed=0):
    """Toy held-out table: 3 landmark rows per patient, a score with real signal, two comparators."""
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{i}" for i in range(n_patients)], 3)
    y = (rng.random(pid.size) < 0.15).astype(int)
    logit = -2 + 2.0 * y + rng.standard_normal(pid.size)
    p = 1 / (1 + np.exp(-logit))
    return pd.DataFrame({
        "patient_id": pid, "landmark_hours": np.tile([24.0, 48.0, 72.0], n_patients), "label": y,
        "fold": np.repeat(np.arange(n_patients) % 3, 3), "therapy": np.repeat(rng.choice(["a", "b", "c"], n_patients), 3),
        "disease": "LBCL", "margin": logit, "probability": p, "threshold": 0.1,
        "p_single_value_lr": 1 / (1 + np.exp(-(-2 + 0.8 * y + rng.standard_normal(pid.size)))),
        "p_absolute_xgb": np.nan, "m_easix": np.exp(rng.standard_normal(pid.size) + 0.5 * y), "easix": np.nan,
        "p_prevalence": 0.15,
    })


def test_metrics_structure_ci_and_paired_delta():
    metrics = evaluate_predictions(_oof(), n_boot=60, seed=1, min_subgroup_events=5)
    pooled = metrics["pooled"]
    for key in ("xgb_kinetics.auroc", "xgb_kinetics.auprc", "xgb_kinetics.brier", "xgb_kinetics.calibration_slope",
                "xgb_kinetics.sensitivity_at_operating_point", "delta_auroc.xgb_kinetics_minus_lr_single_value"):
        assert pooled[f"{key}_ci_low"] <= pooled[key] <= pooled[f"{key}_ci_high"], key
    assert pooled["delta_auroc.xgb_kinetics_minus_lr_single_value_ci_low"] > 0  # strong vs weak score
    assert "xgb_absolute.auroc" not in pooled           # an all-missing comparator is left out, not invented
    assert "m_easix.brier" not in pooled                # a published score is not a probability
    assert set(metrics["by_landmark"]) == {"24h", "48h", "72h"}
    assert set(metrics["subgroups"]["therapy"]) == {"a", "b", "c"}


def test_small_subgroups_are_suppressed():
    oof = _oof(60)
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=1000)
    for entry in metrics["subgroups"]["therapy"].values():
        assert "suppressed" in entry and "auroc" not in entry and entry["n_events"] >= 0


def test_decision_curve_reference_lines():
    oof = _oof()
    table = decision_curve(oof, np.array([0.05, 0.1, 0.2]))
    prevalence = oof["label"].mean()
    np.testing.assert_allclose(table["treat_all"], prevalence - (1 - prevalence) * table["threshold"] / (1 - table["threshold"]))
    assert (table["treat_none"] == 0).all() and "xgb_kinetics" in table


def test_model_card_has_every_heading_and_no_placeholder():
    oof = _oof()
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    params = {"featurize": {"landmarks_hours": "24,48,72", "horizon_hours": 72, "analytes": ["IL6", "CRP"]},
              "train": {"n_folds": 3, "inner_folds": 2, "search_space": {"max_depth": [3]}, "calibration": "sigmoid",
                        "target_sensitivity": 0.9},
              "evaluate": {"n_bootstrap": 20}}
    matrix = oof.assign(eligible=True, **{"IL6__n_draws": 1.0, "IL6__has_baseline": 0.0})
    card = render_model_card(params=params, metrics=metrics, provenance={"synthetic": True, "simulator_version": "0.2.0",
                                                                          "seed": 1, "patients": 300},
                             matrix=matrix, feature_names=["a", "b"], train_meta={"n_rounds": 10, "chosen_params": {}})
    for heading in HEADINGS:
        assert f"## {heading}\n" in card
    for placeholder in ("TODO", "TBD", "nan", "None", "{", "?"):
        assert placeholder not in card, placeholder
    assert "SYNTHETIC" in card


def test_treatment_naive_rows_are_reported_apart():
    oof = _oof()
    oof["treatment_naive"] = np.arange(len(oof)) % 2 == 0
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    naive = metrics["treatment_naive"]
    assert naive["n_rows"] == len(oof) // 2 and naive["pooled"]["n_rows"] == len(oof) // 2
    assert set(naive["by_landmark"]) == {"24h", "48h", "72h"} and "xgb_kinetics.auroc" in naive["pooled"]
    matrix = pd.DataFrame({"tocilizumab__given": [0.0, 1.0, 0.0, np.nan], "corticosteroids__given": [0.0, 0.0, 1.0, 0.0]})
    assert treatment_naive(matrix).tolist() == [True, False, False, False]  # unknown is not naive
    assert not treatment_naive(matrix.drop(columns="corticosteroids__given")).any()


def test_model_card_states_counts_result_times_and_usual_care():
    oof = _oof().assign(treatment_naive=True)
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    params = {"featurize": {"landmarks_hours": "24,48", "horizon_hours": 72, "analytes": ["IL6"],
                            "event_types": ["tocilizumab", "corticosteroids"]},
              "train": {"n_folds": 3}, "evaluate": {"n_bootstrap": 20}}
    matrix = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "landmark_hours": [24.0, 48.0, 24.0, 48.0],
                           "eligible": [True, True, True, False], "label": [0.0, np.nan, np.nan, np.nan],
                           "outcome_status": ["no_event", "censored", "onset_unknown", "not_observed"],
                           "therapy": "axi-cel", "IL6__n_draws": 1.0, "IL6__has_baseline": 1.0})
    result_times = {"IL6": {"rows": 10, "without_result_time": 4, "turnaround_hours": 72.0,
                            "assumed_later_than_draw": 4},
                    "CRP": {"rows": 5, "without_result_time": 5, "turnaround_hours": 0.0,
                            "assumed_later_than_draw": 0}}
    card = render_model_card(params=params, metrics=metrics, provenance={"synthetic": False, "path": "x"},
                             matrix=matrix, feature_names=["a"], train_meta={"n_rounds": 10, "chosen_params": {}},
                             result_times=result_times)
    assert "| 24h | 2 | 0 | 0 | 2 | 1 | 0 | 0 | 1 | 0 |" in card
    assert "| 48h | 2 | 0 | 1 | 1 | 0 | 0 | 1 | 0 | 0 |" in card
    assert "IL6: 4 of 10 rows had no result time; assumed available 72 h after the draw" in card
    assert "CRP: 5 of 5 rows had no result time; assumed available at the draw" in card
    assert "usual care" in card and "not the risk without treatment" in card and "Treatment-naive rows" in card
    assert "Vasopressors are not" in card and "2 eligible rows with an unknown outcome left out" in card
    for placeholder in ("TODO", "TBD", "nan", "None", "{", "?"):
        assert placeholder not in card, placeholder


def test_fast_bootstrap_gives_the_cis_of_resampling_rows():
    """block_metrics (weights) equals, to 1e-9, the per-resample computation it replaced."""
    from models.bootstrap import bootstrap_ci
    from models.evaluate import _present, block_metrics, point_metrics

    oof = _oof(150)
    oof.loc[oof.index % 7 == 0, "m_easix"] = np.nan               # a comparator missing on some rows
    y = oof["label"].to_numpy().astype(int)
    scores = {c: oof[c].to_numpy(dtype="float64") for c in _present(oof)}
    thr = oof["threshold"].to_numpy(dtype="float64")
    slow = bootstrap_ci(oof["patient_id"].to_numpy(),
                        lambda r: point_metrics(y[r], {c: s[r] for c, s in scores.items()}, thr[r]), 80, 3)
    fast = block_metrics(oof, 80, 3)
    assert slow
    for key, (lo, hi) in slow.items():
        np.testing.assert_allclose([fast[f"{key}_ci_low"], fast[f"{key}_ci_high"]], [lo, hi], rtol=1e-7, atol=1e-9,
                                   err_msg=key)


def test_events_are_counted_by_patient_and_subgroups_suppressed_by_event_patients():
    oof = _oof(300)
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    pooled = metrics["pooled"]
    assert pooled["n_event_patients"] == oof.loc[oof["label"] == 1, "patient_id"].nunique() <= pooled["n_events"]
    # one patient with many event rows is one patient: suppression counts patients, not rows
    few = _oof(60).assign(therapy="x")
    events, others = [f"P{i}" for i in range(3)], [f"P{i}" for i in range(3, 13)]
    few.loc[few["patient_id"].isin(events + others), "therapy"] = "y"
    few.loc[few["patient_id"].isin(events), "label"] = 1           # 9 event rows, but 3 event patients
    few.loc[few["patient_id"].isin(others), "label"] = 0           # 30 non-event rows, 10 patients
    groups = evaluate_predictions(few, n_boot=20, seed=1, min_subgroup_events=4)["subgroups"]["therapy"]
    assert groups["y"]["n_events"] == 9 and groups["y"]["n_event_patients"] == 3 and "suppressed" in groups["y"]


def test_case_mix_comparator_comes_from_training_folds_and_is_compared():
    oof = _oof(300)
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    pooled = metrics["pooled"]
    assert "case_mix_prevalence.auroc" in pooled and "delta_auroc.xgb_kinetics_minus_case_mix_prevalence" in pooled
    assert "case_mix_prevalence.calibration_slope" in pooled
    external = evaluate_predictions(oof.assign(fold=-1), n_boot=20, seed=1, min_subgroup_events=5)["pooled"]
    assert "case_mix_prevalence.auroc" not in external              # no training folds: no comparator invented


def test_decision_curves_by_landmark_have_bands():
    from models.evaluate import decision_curves_by_landmark

    table = decision_curves_by_landmark(_oof(), np.array([0.05, 0.1, 0.2]), 50, 1)
    assert set(table["scope"]) == {"pooled", "24h", "48h", "72h"}
    assert {"xgb_kinetics", "lr_single_value", "case_mix_prevalence", "treat_all", "treat_none"} <= set(table["model"])
    assert "prevalence_only" not in set(table["model"]) and "m_easix" not in set(table["model"])
    body = table[table["model"] == "xgb_kinetics"]
    assert (body["ci_low"] <= body["net_benefit"] + 1e-12).all() and (body["net_benefit"] <= body["ci_high"] + 1e-12).all()


def test_model_card_reports_the_claim_with_cis_and_its_verdict():
    oof = _oof()
    metrics = evaluate_predictions(oof, n_boot=20, seed=1, min_subgroup_events=5)
    block = {"delta_auroc.M1_minus_M0": 0.02, "delta_auroc.M1_minus_M0_ci_low": 0.01, "delta_auroc.M1_minus_M0_ci_high": 0.03,
             "delta_auroc.M2_minus_M1": 0.001, "delta_auroc.M2_minus_M1_ci_low": -0.005, "delta_auroc.M2_minus_M1_ci_high": 0.007}
    metrics["claim"] = {"claim_found": False, "serial_adds_to_absolute": True, "pooled": block, "24h": block,
                        "with_real_baseline": block}
    params = {"featurize": {"landmarks_hours": "24,48,72", "horizon_hours": 72, "analytes": ["IL6"]},
              "train": {"n_folds": 3}, "evaluate": {"n_bootstrap": 20, "subgroup_min_events": 5}}
    matrix = oof.assign(eligible=True, **{"IL6__n_draws": 1.0, "IL6__has_baseline": 0.0})
    card = render_model_card(params=params, metrics=metrics, provenance={"synthetic": True, "simulator_version": "1",
                                                                          "seed": 1, "patients": 300},
                             matrix=matrix, feature_names=["a"], train_meta={"n_rounds": 10, "chosen_params": {}})
    assert "| pooled | 0.020 (95% CI 0.010–0.030) | 0.001 (95% CI -0.005–0.007) |" in card
    assert "| with real baseline |" in card and "not found: the pooled CI does not lie above 0" in card
    assert card.index("| pooled |") < card.index("| 24h |") < card.index("| with real baseline |")
    assert "event patients (event rows)" in card and "decision_curves_by_landmark.png" in card
    for placeholder in ("TODO", "TBD", "nan", "None", "{", "?"):
        assert placeholder not in card, placeholder


def test_the_chosen_family_reaches_metrics_and_the_model_card():
    from models.model_card import selection_text
    from pipeline.evaluate import family_selection

    meta = {"family": "xgb_compact", "candidates": ["xgb_full", "xgb_compact"], "selection_rule": "highest inner AUROC",
            "candidates_inner_auroc": {"xgb_full": 0.71, "xgb_compact": 0.74},
            "outer_folds": [{"family": "xgb_compact", "candidates_inner_auroc": {"xgb_full": 0.7, "xgb_compact": 0.75}},
                            {"family": "xgb_full", "candidates_inner_auroc": {"xgb_full": 0.73, "xgb_compact": 0.72}}]}
    selection = family_selection(meta)
    assert selection["final_family"] == "xgb_compact"
    assert selection["family_per_outer_fold"] == ["xgb_compact", "xgb_full"]
    text = selection_text(selection)
    assert "fold 0: xgb_compact, fold 1: xgb_full" in text and "Final model: **xgb_compact**" in text
    assert "xgb_compact 0.740" in text and "{" not in text
    assert selection_text(None) == "" and selection_text(family_selection({})) == ""
