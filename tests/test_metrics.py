import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.bootstrap import bootstrap_ci, expand_ranges, patient_resamples
from models.metrics import (
    auprc,
    auroc,
    brier,
    calibration_slope_intercept,
    confusion_at,
    net_benefit,
    net_benefit_treat_all,
    threshold_for_sensitivity,
)


def test_against_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    assert np.isclose(auroc(y, p), roc_auc_score(y, p))
    ties = np.round(p, 1)
    assert np.isclose(auroc(y, ties), roc_auc_score(y, ties))
    assert auprc(y, p) == average_precision_score(y, p)
    assert np.isclose(brier(y, p), brier_score_loss(y, p))


def test_hand_computed_confusion_and_net_benefit():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    c = confusion_at(y, p, 0.5)
    assert c == {"sensitivity": 0.5, "specificity": 2 / 3, "ppv": 0.5, "npv": 2 / 3, "flagged_fraction": 0.4}
    # at pt = 0.5: TP/n - FP/n * 1 = 1/5 - 1/5 = 0 ; at pt = 0.3: TP=2, FP=1 → 2/5 - 1/5 * 3/7
    nb = net_benefit(y, p, np.array([0.5, 0.3]))
    np.testing.assert_allclose(nb, [0.0, 0.4 - 0.2 * 3 / 7])
    np.testing.assert_allclose(net_benefit_treat_all(y, np.array([0.25])), [0.4 - 0.6 / 3])
    assert threshold_for_sensitivity(y, p, 0.9) == 0.4 and threshold_for_sensitivity(y, p, 0.5) == 0.9


def test_calibration_of_a_perfectly_calibrated_score_is_ideal():
    rng = np.random.default_rng(1)
    p = rng.beta(1, 6, 40_000)
    y = (rng.random(p.size) < p).astype(int)
    slope, intercept = calibration_slope_intercept(y, p)
    assert abs(slope - 1) < 0.05 and abs(intercept) < 0.05
    # an over-confident score (logits doubled) has slope ≈ 0.5
    z = np.log(p / (1 - p)) * 2
    slope2, _ = calibration_slope_intercept(y, 1 / (1 + np.exp(-z)))
    assert abs(slope2 - 0.5) < 0.05


def test_resamples_keep_patients_whole():
    np.testing.assert_array_equal(expand_ranges(np.array([5, 0]), np.array([2, 3])), [5, 6, 0, 1, 2])
    pid = np.array(["b", "a", "b", "c", "a", "b"])
    for rows in patient_resamples(pid, 20, seed=3):
        counts = pd.Series(pid[rows]).value_counts()
        full = pd.Series(pid).value_counts()
        assert all(counts[k] % full[k] == 0 for k in counts.index)


def test_bootstrap_ci_covers_true_auroc_at_about_nominal_rate():
    """A score with known population AUROC: the 95% CI covers it in roughly 95% of cohorts."""
    from scipy.stats import norm

    true_auc = norm.cdf(1.0 / np.sqrt(2))  # binormal, unit shift
    covered, trials = 0, 60
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        y = (rng.random(400) < 0.3).astype(int)
        score = rng.standard_normal(400) + y
        pid = np.arange(400)
        lo, hi = bootstrap_ci(pid, lambda r, y=y, s=score: {"auroc": auroc(y[r], s[r])}, 200, seed=t)["auroc"]
        covered += lo <= true_auc <= hi
    assert 0.85 <= covered / trials <= 1.0
