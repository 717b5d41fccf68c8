"""The central claim's measurement (models/claim.py): an explicit partition of every feature into
M0 ⊂ M1 ⊂ M2, and repeated cross-validation whose ΔAUROC finds a baseline effect where one exists
and not where it does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.kinetics import (
    COVARIATE_ANALYTE_FEATURES,
    EVENT_FEATURES,
    GRADE_FEATURES,
    KINETIC_FEATURES,
)
from models import claim as C


@pytest.fixture(scope="module")
def fitted(small_cohort):
    from features.transformer import KineticFeatures

    features = KineticFeatures()
    matrix = features.build(small_cohort.labs, small_cohort.patients, [24.0, 48.0], events=small_cohort.events)
    return features.fit(matrix), matrix


def test_every_feature_suffix_is_classified_and_no_entry_is_stale():
    """A feature added to features/kinetics.py fails here until it is put in M0, M1 or M2."""
    assert set(C.PER_ANALYTE) == set(KINETIC_FEATURES)
    assert set(C.COVARIATE_ANALYTE) == set(COVARIATE_ANALYTE_FEATURES)
    assert set(C.EVENT) == set(EVENT_FEATURES)
    assert set(C.PATIENT_STATE) == set(GRADE_FEATURES)
    for table in (C.PER_ANALYTE, C.COVARIATE_ANALYTE, C.EVENT, C.CROSS, C.PATIENT_STATE):
        assert set(table.values()) <= {"shared", "M0", "M1", "M2"}


def test_the_partition_covers_every_model_input_once_and_nests(fitted):
    features, _ = fitted
    tiers = C.feature_tiers(features)
    names = [str(n) for n in features.get_feature_names_out()]
    assert list(tiers) == names                                   # every column, exactly once
    sets = C.nested_sets(tiers)
    assert set(sets["M0"]) < set(sets["M1"]) < set(sets["M2"]) == set(names)
    shared = {n for n, t in tiers.items() if t == "shared"}
    assert {"landmark_hours", "age_years"} <= shared and any(n.startswith("therapy=") for n in shared)
    assert shared <= set(sets["M0"])                               # identical non-kinetic inputs
    m0 = set(sets["M0"]) - shared
    assert m0 and all(n.endswith(("__latest", "__latest_censored")) for n in m0)
    added_m2 = set(sets["M2"]) - set(sets["M1"])
    assert {"IL6__baseline", "IL6__log2_fc", "IL6__max_log2_fc", "IL6__auc_log2_fc_days",
            "IL6__hours_since_kfold_rise", "IL6__log2_fc_minus_IFNG", "CRP__rise_lag_vs_IL6_hours"} <= added_m2
    # nothing in M1 or M0 looks at the baseline or the reference
    below = set(sets["M1"])
    assert not [n for n in below if any(w in n for w in ("baseline", "fc", "kfold", "ref"))]
    assert "tocilizumab__given" in set(sets["M1"]) - set(sets["M0"])


def test_the_grade_course_is_a_shared_input_when_switched_on(small_cohort):
    from features.transformer import KineticFeatures

    features = KineticFeatures(current_grade=True)
    matrix = features.build(small_cohort.labs, small_cohort.patients, [24.0], events=small_cohort.events)
    tiers = C.feature_tiers(features.fit(matrix))
    assert tiers["current_grade"] == "shared"


def test_a_new_feature_name_is_refused_until_classified(fitted):
    features, _ = fitted
    import copy

    grown = copy.deepcopy(features)
    grown.feature_names_out_ = np.append(grown.feature_names_out_, "IL6__brand_new_feature")
    with pytest.raises(C.UnclassifiedFeature, match="IL6__brand_new_feature"):
        C.feature_tiers(grown)


def test_real_baseline_rows():
    X = pd.DataFrame({"IL6__n_draws": [2, 2, 0, 0, 3], "IL6__has_baseline": [1, 0, 0, 0, 1],
                      "CRP__n_draws": [1, 1, 1, 0, 2], "CRP__has_baseline": [1, 1, 1, 0, 0]})
    np.testing.assert_array_equal(C.real_baseline_rows(X, ["IL6", "CRP"]), [True, False, True, False, False])


# --- synthetic worlds where we decide whether the baseline matters --------------------------------

def _world(relative: bool, n_patients: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Two landmark rows per patient; one analyte whose latest value = baseline × fold change.
    `relative`: the outcome follows the fold change (the baseline matters); otherwise it follows the
    absolute latest value (the baseline is irrelevant beyond what the latest value already says)."""
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{i:05d}" for i in range(n_patients)], 2)
    n = pid.size
    log_base = np.repeat(rng.normal(0, 1.5, n_patients), 2)
    log_fold = rng.normal(1.0, 1.0, n)
    log_latest = log_base + log_fold
    driver = log_fold if relative else log_latest
    driver = (driver - driver.mean()) / driver.std()
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 1.6 * driver)))).astype(int)
    rows = pd.DataFrame({"patient_id": pid, "landmark_hours": np.tile([24.0, 48.0], n_patients), "label": y,
                         "therapy": np.repeat(rng.choice(["a", "b"], n_patients), 2)})
    X = pd.DataFrame({"landmark_hours": rows["landmark_hours"], "IL6__latest": np.exp(log_latest),
                      "IL6__slope_log2_per24h": rng.normal(0, 1, n),            # pure noise
                      "IL6__n_draws": 3.0, "IL6__has_baseline": np.repeat(rng.random(n_patients) < 0.7, 2) * 1.0,
                      "IL6__baseline": np.exp(log_base), "IL6__log2_fc": log_fold / np.log(2)})
    tiers = {"landmark_hours": "shared", "IL6__latest": "M0", "IL6__slope_log2_per24h": "M1",
             "IL6__n_draws": "M1", "IL6__has_baseline": "M2", "IL6__baseline": "M2", "IL6__log2_fc": "M2"}
    return rows, X, tiers


BOOSTER = {"max_depth": 3, "learning_rate": 0.15, "min_child_weight": 4, "max_bin": 64}
FAST = C.ClaimConfig(repeats=3, folds=3, seed=1, n_rounds=60, xgboost=BOOSTER, n_bootstrap=300, min_event_patients=10)


def test_the_claim_is_found_when_the_baseline_matters_and_not_when_it_does_not():
    found = C.evaluate_claim(*_world(relative=True), analytes=["IL6"], cfg=FAST)
    absent = C.evaluate_claim(*_world(relative=False), analytes=["IL6"], cfg=FAST)
    key = "delta_auroc.M2_minus_M1"
    assert found["claim_found"] is True and found["headline"][f"{key}_ci_low"] > 0
    assert absent["claim_found"] is False and absent["headline"][f"{key}_ci_low"] <= 0
    assert found["headline"][key] > absent["headline"][key] + 0.03
    # the serial noise feature adds nothing in either world
    for result in (found, absent):
        assert result["serial_adds_to_absolute"] is False
    # the same held-out scores are summarised per landmark, therapy and real-baseline rows
    subsets = found["subsets"]
    assert {"pooled", "landmark 24h", "landmark 48h", "therapy a", "therapy b", "with real baseline"} <= set(subsets)
    assert subsets["with real baseline"]["n_rows"] < subsets["pooled"]["n_rows"]
    e = subsets["pooled"]
    assert e[f"{key}_ci_low"] <= e[key] <= e[f"{key}_ci_high"]
    assert e[f"{key}_corrected_t_ci_low"] <= e[key] <= e[f"{key}_corrected_t_ci_high"]


def test_counts_are_by_patient_and_small_subsets_are_suppressed():
    rows, X, tiers = _world(relative=True, n_patients=300)
    event_patients = rows.loc[rows["label"] == 1].groupby("therapy")["patient_id"].nunique()
    floor = int(event_patients.max())  # every therapy subset falls below it, the pooled rows do not
    cfg = C.ClaimConfig(repeats=2, folds=3, seed=1, n_rounds=20, xgboost=BOOSTER, n_bootstrap=50,
                        min_event_patients=floor + 1)
    out = C.evaluate_claim(rows, X, tiers, ["IL6"], cfg)["subsets"]
    for name, e in out.items():
        mask = C.subsets_of(rows, C.real_baseline_rows(X, ["IL6"]))[name]
        sub = rows[mask]
        assert e["n_event_patients"] == sub.loc[sub["label"] == 1, "patient_id"].nunique()
        assert e["n_event_rows"] == int(sub["label"].sum()) >= e["n_event_patients"]
        small = min(e["n_event_patients"], sub.loc[sub["label"] == 0, "patient_id"].nunique()) <= floor
        assert ("suppressed" in e) == small
        assert ("suppressed" in e) != ("delta_auroc.M2_minus_M1" in e)
    assert "suppressed" in out["therapy a"] and "suppressed" not in out["pooled"]


def test_the_feature_set_is_the_only_difference_between_the_models():
    """Identical columns give identical held-out scores: same folds, same booster settings and seed."""
    rows, X, tiers = _world(relative=True, n_patients=200)
    cols = list(X.columns)
    cfg = C.ClaimConfig(repeats=2, folds=3, seed=1, n_rounds=10, xgboost=BOOSTER, n_bootstrap=10, min_event_patients=1)
    margins, folds = C.repeated_cv(X, rows["label"].to_numpy(), rows["patient_id"].to_numpy(),
                                   {"M0": cols, "M1": cols}, cfg)
    np.testing.assert_array_equal(margins[:, 0], margins[:, 1])
    assert not np.isnan(margins).any()
    for r in range(2):  # patient-grouped folds
        assert (pd.Series(folds[r]).groupby(rows["patient_id"].to_numpy()).nunique() == 1).all()
    assert (folds[0] != folds[1]).any()  # each repeat draws its own folds


def test_claim_plot_and_table_show_every_subset(tmp_path):
    from models.plots import write_claim

    rows, X, tiers = _world(relative=True, n_patients=300)
    cfg = C.ClaimConfig(repeats=2, folds=3, seed=1, n_rounds=20, xgboost=BOOSTER, n_bootstrap=50, min_event_patients=25)
    result = C.evaluate_claim(rows, X, tiers, ["IL6"], cfg)
    write_claim(result, tmp_path, "SYNTHETIC test")
    table = pd.read_csv(tmp_path / "claim.csv")
    assert set(table["subset"]) == set(result["subsets"])          # suppressed subsets are listed, not dropped
    assert set(table["contrast"]) == {"M1 - M0", "M2 - M1"}
    shown = table.dropna(subset=["delta_auroc"])
    assert (shown["ci_low"] <= shown["delta_auroc"]).all() and (shown["delta_auroc"] <= shown["ci_high"]).all()
    assert table.loc[table["suppressed"], "delta_auroc"].isna().all()
    assert (tmp_path / "claim.png").stat().st_size > 10_000
