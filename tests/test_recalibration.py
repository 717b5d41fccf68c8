"""Site recalibration (models/recalibration.py): the map is recovered, the after-numbers are honest
(cross-fitted), the operating point keeps flagging the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import apply_calibration
from models.recalibration import (
    cross_fitted_probability,
    fit_recalibration,
    map_threshold,
    recalibrate,
)

IDENTITY_SIGMOID = {"method": "sigmoid", "slope": 1.0, "intercept": 0.0}


def _site(n_patients: int, true_slope: float, true_intercept: float, seed: int = 0):
    """Three landmark rows per patient; the truth is p = sigmoid(true_intercept + true_slope * margin)."""
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"S{i:05d}" for i in range(n_patients)], 3)
    margin = rng.normal(-2.0, 1.2, pid.size)
    y = (rng.random(pid.size) < 1 / (1 + np.exp(-(true_intercept + true_slope * margin)))).astype(int)
    return margin, y, pid


def test_logistic_recalibration_recovers_the_site_map():
    margin, y, _ = _site(8000, true_slope=0.5, true_intercept=-1.0)
    new = fit_recalibration(margin, y, IDENTITY_SIGMOID, "logistic")
    assert new["method"] == "sigmoid"
    assert abs(new["slope"] - 0.5) < 0.05 and abs(new["intercept"] + 1.0) < 0.12


def test_intercept_only_keeps_the_slope_and_moves_the_mean():
    current = {"method": "sigmoid", "slope": 0.9, "intercept": 0.2}
    margin, y, _ = _site(8000, true_slope=0.9, true_intercept=0.2 - 0.8)   # the site's risk is lower
    new = fit_recalibration(margin, y, current, "intercept")
    assert new["slope"] == 0.9 and abs(new["intercept"] - (0.2 - 0.8)) < 0.1
    assert abs(apply_calibration(margin, new).mean() - y.mean()) < 0.002
    with pytest.raises(ValueError, match="logistic"):
        fit_recalibration(margin, y, {"method": "isotonic", "x": [0.0, 1.0], "y": [0.1, 0.2]}, "intercept")
    assert fit_recalibration(margin, y, {"method": "isotonic", "x": [-5.0, 1.0], "y": [0.01, 0.3]},
                             "logistic")["method"] == "sigmoid"


def test_a_miscalibrated_model_is_fixed_and_the_after_numbers_are_cross_fitted():
    margin, y, pid = _site(1500, true_slope=0.5, true_intercept=-1.0, seed=1)
    out = recalibrate(margin, y, pid, IDENTITY_SIGMOID, folds=5, n_boot=300, seed=3, threshold=0.2)
    before, after, optimistic = (out["report"][k] for k in ("before", "after_cross_fitted", "after_in_sample"))
    # before: over-confident (slope ~0.5) and too high on average (intercept < 0); the CI excludes ideal
    assert before["calibration_slope"]["ci_high"] < 0.8 and before["calibration_intercept"]["ci_high"] < 0
    # after (cross-fitted): the CI covers the ideal values and the paired Brier change is negative
    assert after["calibration_slope"]["ci_low"] <= 1 <= after["calibration_slope"]["ci_high"]
    assert after["calibration_intercept"]["ci_low"] <= 0 <= after["calibration_intercept"]["ci_high"]
    assert after["change_in_brier"]["ci_high"] < 0
    # in-sample looks at least as good as cross-fitted: that is why it is not the reported estimate
    assert optimistic["brier"]["value"] <= after["brier"]["value"]
    assert "optimistic" in optimistic["note"]
    # cross-fitting: each patient's rows share a fold, and no row's probability comes from the all-rows map
    p_all = apply_calibration(margin, out["calibration"])
    assert not np.allclose(out["cross_fitted_probability"], p_all)
    for k in np.unique(out["fold"]):
        rows = out["fold"] == k
        assert not set(pid[rows]) & set(pid[~rows])
        refit = apply_calibration(margin[rows], fit_recalibration(margin[~rows], y[~rows], IDENTITY_SIGMOID))
        np.testing.assert_allclose(out["cross_fitted_probability"][rows], refit)
    c = out["counts"]
    assert c["n_patients"] == 1500 and c["n_event_patients"] == len(set(pid[y == 1])) <= c["n_event_rows"]


def test_a_well_calibrated_model_is_left_about_where_it_was():
    """Nothing to fix: before and after both look ideal, and no Brier improvement is claimed."""
    margin, y, pid = _site(1500, true_slope=1.0, true_intercept=0.0, seed=2)
    out = recalibrate(margin, y, pid, IDENTITY_SIGMOID, folds=5, n_boot=300, seed=4)
    for name in ("before", "after_cross_fitted"):
        block = out["report"][name]
        assert block["calibration_slope"]["ci_low"] <= 1 <= block["calibration_slope"]["ci_high"], name
        assert block["calibration_intercept"]["ci_low"] <= 0 <= block["calibration_intercept"]["ci_high"], name
    assert out["report"]["after_cross_fitted"]["change_in_brier"]["ci_high"] >= 0


def test_the_operating_point_flags_the_same_rows():
    margin, y, pid = _site(500, true_slope=0.6, true_intercept=-0.7, seed=5)
    old = {"method": "sigmoid", "slope": 1.1, "intercept": 0.3}
    new = fit_recalibration(margin, y, old)
    thr = 0.25
    mapped = map_threshold(thr, old, new)
    flagged_before = apply_calibration(margin, old) >= thr
    flagged_after = apply_calibration(margin, new) >= mapped
    assert (flagged_before != flagged_after).sum() <= 1   # the grid's resolution may move one boundary row
    assert map_threshold(float("nan"), old, new) != map_threshold(float("nan"), old, new)  # NaN stays NaN


def test_cross_fitted_probabilities_cover_every_row():
    margin, y, pid = _site(200, 1.0, 0.0, seed=6)
    p, fold = cross_fitted_probability(margin, y, pid, IDENTITY_SIGMOID, "logistic", folds=4, seed=0)
    assert np.isfinite(p).all() and set(np.unique(fold)) == {0, 1, 2, 3}
