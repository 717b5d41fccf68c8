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

    from models.bootstrap import bootstrap_ci_weighted
    from models.metrics import auroc_weighted

    true_auc = norm.cdf(1.0 / np.sqrt(2))  # binormal, unit shift
    covered, trials = 0, 60
    for t in range(trials):
        rng = np.random.default_rng(100 + t)
        y = (rng.random(400) < 0.3).astype(int)
        score = rng.standard_normal(400) + y
        pid = np.arange(400)
        lo, hi = bootstrap_ci_weighted(pid, lambda W, y=y, s=score: {"auroc": auroc_weighted(y, s, W)}, 200,
                                       seed=t)["auroc"]  # the same resamples as bootstrap_ci (tested below)
        covered += lo <= true_auc <= hi
    assert 0.85 <= covered / trials <= 1.0


def test_weighted_measures_equal_the_measures_of_the_resampled_rows():
    """Each resample as row weights gives, to 1e-9, what the measure gives on the resampled rows
    (ties, several rows per patient, a per-row threshold, a resample may lose a class)."""
    from models.bootstrap import weight_blocks
    from models.metrics import (
        auprc_weighted,
        auroc_weighted,
        brier_weighted,
        calibration_slope_intercept_weighted,
        confusion_at_weighted,
        net_benefit_treat_all_weighted,
        net_benefit_weighted,
    )

    rng = np.random.default_rng(4)
    pid = np.repeat(np.arange(40), rng.integers(1, 4, 40))
    n = pid.size
    y = (rng.random(n) < 0.2).astype(int)
    p = np.round(1 / (1 + np.exp(-(-1.5 + 1.2 * y + rng.standard_normal(n)))), 2)  # ties
    thr = np.where(rng.random(n) < 0.5, 0.2, 0.3)
    grid = np.array([0.05, 0.1, 0.3])
    W = np.concatenate(list(weight_blocks(pid, 50, seed=9, max_cells=7 * n)))  # several blocks
    got = {"auroc": auroc_weighted(y, p, W), "auprc": auprc_weighted(y, p, W), "brier": brier_weighted(y, p, W)}
    got["slope"], got["intercept"] = calibration_slope_intercept_weighted(y, p, W)
    conf = confusion_at_weighted(y, p, thr, W)
    nb, nb_all = net_benefit_weighted(y, p, grid, W), net_benefit_treat_all_weighted(y, grid, W)
    for b, rows in enumerate(patient_resamples(pid, 50, seed=9)):
        yy, pp = y[rows], p[rows]
        np.testing.assert_array_equal(np.bincount(rows, minlength=n), W[b])  # the same resample
        want = {"auroc": auroc(yy, pp), "auprc": auprc(yy, pp), "brier": brier(yy, pp)}
        want["slope"], want["intercept"] = calibration_slope_intercept(yy, pp)
        for k, v in want.items():
            np.testing.assert_allclose(got[k][b], v, rtol=1e-7, atol=1e-9, err_msg=k)
        for k, v in confusion_at(yy, pp, thr[rows]).items():
            np.testing.assert_allclose(conf[k][b], v, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(nb[b], net_benefit(yy, pp, grid), atol=1e-12)
        np.testing.assert_allclose(nb_all[b], net_benefit_treat_all(yy, grid), atol=1e-12)
    lost = W @ y == 0  # resamples without an event have no AUROC, AUPRC or calibration
    assert np.isnan(got["auroc"][lost]).all() and np.isnan(got["slope"][lost]).all()


def test_weighted_bootstrap_ci_equals_the_resampling_one():
    from models.bootstrap import bootstrap_ci_weighted
    from models.metrics import auroc_weighted

    rng = np.random.default_rng(2)
    pid = np.repeat(np.arange(150), 2)
    y = (rng.random(pid.size) < 0.3).astype(int)
    s = rng.standard_normal(pid.size) + y
    slow = bootstrap_ci(pid, lambda r: {"a": auroc(y[r], s[r])}, 300, seed=5)["a"]
    fast = bootstrap_ci_weighted(pid, lambda W: {"a": auroc_weighted(y, s, W)}, 300, seed=5)["a"]
    np.testing.assert_allclose(fast, slow, atol=1e-12)
