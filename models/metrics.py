"""Performance measures for a risk score on held-out patients. Pure functions of (y, p)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

EPS = 1e-6


def _two_classes(y: np.ndarray) -> bool:
    return np.unique(y).size == 2


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann–Whitney form (average ranks for ties): equals roc_auc_score, several times faster."""
    y = np.asarray(y).astype(bool)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under the precision–recall curve)."""
    return float(average_precision_score(y, p)) if _two_classes(y) else float("nan")


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2)) if len(y) else float("nan")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _logistic_fit(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50) -> np.ndarray:
    """Unpenalised logistic regression by Newton–Raphson (small, fast, no solver tolerances to tune)."""
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        mu = 1 / (1 + np.exp(-np.clip(X @ beta + offset, -35, 35)))
        grad = X.T @ (y - mu)
        hess = X.T @ (X * (mu * (1 - mu))[:, None]) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Slope: logistic regression of y on logit(p). Intercept: calibration-in-the-large, the
    intercept of that regression with logit(p) as an offset (slope fixed at 1). Ideal: 1 and 0."""
    y = np.asarray(y, dtype="float64")
    if not _two_classes(y):
        return float("nan"), float("nan")
    lp = logit(p)
    ones = np.ones((len(y), 1))
    slope = _logistic_fit(np.column_stack([ones, lp]), y, np.zeros(len(y)))[1]
    intercept = _logistic_fit(ones, y, lp)[0]
    return float(slope), float(intercept)


def threshold_for_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """Highest threshold whose sensitivity (p >= threshold) is at least `target`."""
    pos = np.sort(np.asarray(p)[np.asarray(y) == 1])[::-1]
    if not len(pos):
        return float("nan")
    k = int(np.ceil(target * len(pos))) - 1
    return float(pos[min(max(k, 0), len(pos) - 1)])


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    y = np.asarray(y).astype(bool)
    flag = np.asarray(p) >= threshold
    tp, fp = np.sum(flag & y), np.sum(flag & ~y)
    fn, tn = np.sum(~flag & y), np.sum(~flag & ~y)

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b else float("nan")

    return {"sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn), "flagged_fraction": ratio(tp + fp, len(y))}


def net_benefit(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Decision-curve net benefit: TP/n − FP/n · pt/(1 − pt) for each threshold pt."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p)
    n = len(y)
    flag = p[None, :] >= thresholds[:, None]
    tp = (flag & y[None, :]).sum(axis=1)
    fp = (flag & ~y[None, :]).sum(axis=1)
    return tp / n - fp / n * thresholds / (1 - thresholds)


def net_benefit_treat_all(y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    prevalence = float(np.mean(y))
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed event rate per quantile bin of predicted risk: (mean predicted, observed, count)."""
    order = np.argsort(p, kind="mergesort")
    groups = np.array_split(order, min(bins, max(len(p), 1)))
    groups = [g for g in groups if len(g)]
    return (np.array([np.mean(np.asarray(p)[g]) for g in groups]),
            np.array([np.mean(np.asarray(y)[g]) for g in groups]),
            np.array([len(g) for g in groups]))


# ----------------------------------------------------------------------------- weighted, over resamples
# A patient-level bootstrap resample is the cohort with each patient's rows repeated `count` times.
# Every measure of a resample therefore equals the same measure with integer row weights, so one
# sort of the scores serves all resamples: W is (resamples × rows), one row of weights per resample,
# and each function returns one value per resample (NaN where the resample lacks a class).

CACHE_CELLS = 250_000  # resamples × rows per Newton pass (2 MB arrays: measured fastest on this machine)


def _weights(W: np.ndarray, n: int) -> np.ndarray:
    W = np.atleast_2d(np.asarray(W, dtype="float64"))
    if W.shape[1] != n:
        raise ValueError(f"weights have {W.shape[1]} columns for {n} rows")
    return W


def auroc_weighted(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted Mann–Whitney AUROC for each row of W (ties count one half): equals :func:`auroc` on
    the rows repeated by their weights.

    One sort serves every row of W: each event's score is located among the sorted non-event scores
    (searchsorted), and one cumulative sum of the non-events' weights per resample gives the weight
    below and tied with it. Three passes over (resamples × rows), whatever the number of ties."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, dtype="float64")
    W = _weights(W, y.size)
    if y.size == 0:
        return np.full(len(W), np.nan)
    neg_rows, pos_rows = np.flatnonzero(~y), np.flatnonzero(y)
    neg_order = neg_rows[np.argsort(p[neg_rows], kind="mergesort")]
    neg_scores = p[neg_order]
    below = np.searchsorted(neg_scores, p[pos_rows], side="left")
    upto = np.searchsorted(neg_scores, p[pos_rows], side="right")
    cum = np.zeros((len(W), neg_order.size + 1))
    np.cumsum(W[:, neg_order], axis=1, out=cum[:, 1:])
    Wp = W[:, pos_rows]
    n1, n0 = Wp.sum(axis=1), cum[:, -1]
    ok = (n1 > 0) & (n0 > 0)
    num = (Wp * (0.5 * (cum[:, below] + cum[:, upto]))).sum(axis=1)
    return np.where(ok, num / np.where(ok, n1 * n0, 1.0), np.nan)


def auprc_weighted(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Weighted average precision for each row of W: equals :func:`auprc` on the repeated rows.

    AP = Σ over events i of w_i · precision at s_i / Σ w_i, where precision at s counts every row
    scored ≥ s (tied rows share one threshold, as in scikit-learn). Event and non-event weights at or
    above each event's score come from cumulative sums over the sorted scores (searchsorted), three
    passes over (resamples × rows)."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, dtype="float64")
    W = _weights(W, y.size)
    if y.size == 0:
        return np.full(len(W), np.nan)
    neg_rows, pos_rows = np.flatnonzero(~y), np.flatnonzero(y)
    neg_order = neg_rows[np.argsort(p[neg_rows], kind="mergesort")]
    pos_order = pos_rows[np.argsort(p[pos_rows], kind="mergesort")]
    pos_scores = p[pos_order]
    pos_below = np.searchsorted(pos_scores, pos_scores, side="left")        # events scored below each event
    neg_below = np.searchsorted(p[neg_order], pos_scores, side="left")      # non-events scored below it
    cum_pos = np.zeros((len(W), pos_order.size + 1))
    cum_neg = np.zeros((len(W), neg_order.size + 1))
    Wp = W[:, pos_order]
    np.cumsum(Wp, axis=1, out=cum_pos[:, 1:])
    np.cumsum(W[:, neg_order], axis=1, out=cum_neg[:, 1:])
    n1, n0 = cum_pos[:, -1], cum_neg[:, -1]
    tp = n1[:, None] - cum_pos[:, pos_below]
    fp = n0[:, None] - cum_neg[:, neg_below]
    flagged = tp + fp
    precision = np.where(flagged > 0, tp / np.where(flagged > 0, flagged, 1.0), 0.0)
    ok = (n1 > 0) & (n0 > 0)
    return np.where(ok, (Wp * precision).sum(axis=1) / np.where(ok, n1, 1.0), np.nan)


def brier_weighted(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> np.ndarray:
    y, p = np.asarray(y, dtype="float64"), np.asarray(p, dtype="float64")
    W = _weights(W, y.size)
    total = W.sum(axis=1)
    return np.where(total > 0, W @ (p - y) ** 2 / np.where(total > 0, total, 1.0), np.nan)


def _logistic_fit_weighted(x: np.ndarray | None, y: np.ndarray, offset: np.ndarray, W: np.ndarray,
                           start: np.ndarray, iters: int = 50) -> np.ndarray:
    """Weighted unpenalised logistic regression of y on [1, x] (or [1] when x is None) with an
    offset, by Newton–Raphson, one fit per row of W: (B × 1 or 2). Same ridge (1e-9) and clipping
    as :func:`_logistic_fit`; started from `start` (the fit on all rows), so a resample needs a
    handful of steps. The 2 × 2 systems are solved in closed form; every (B × n) step is in place
    or a matrix–vector product."""
    k = 1 if x is None else 2
    beta = np.tile(np.asarray(start, dtype="float64"), (len(W), 1))
    Wy = W @ y
    Wyx = None if x is None else W @ (y * x)
    xx = None if x is None else x * x
    mu = np.empty_like(W)
    Wmu = np.empty_like(W)
    for _ in range(iters):
        if x is None:
            np.add(beta[:, :1], offset[None, :], out=mu)
        else:
            np.multiply(beta[:, 1:2], x[None, :], out=mu)
            mu += beta[:, :1]
            mu += offset[None, :]
        np.clip(mu, -35, 35, out=mu)
        np.negative(mu, out=mu)
        np.exp(mu, out=mu)
        mu += 1
        np.reciprocal(mu, out=mu)                 # mu = sigmoid(eta)
        np.multiply(W, mu, out=Wmu)               # W mu
        s_wmu = Wmu.sum(axis=1)
        g0 = Wy - s_wmu
        mu *= Wmu                                 # W mu^2 (mu no longer needed this step)
        v0 = s_wmu - mu.sum(axis=1)               # sum W mu (1 - mu)
        h00 = v0 + 1e-9
        if x is None:
            step = (g0 / h00)[:, None]
        else:
            Wmu_x, Wmu2_x = Wmu @ x, mu @ x
            g1 = Wyx - Wmu_x
            h01 = Wmu_x - Wmu2_x
            h11 = Wmu @ xx - mu @ xx + 1e-9
            det = h00 * h11 - h01 * h01
            step = np.column_stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det])
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:, :k]


def calibration_slope_intercept_weighted(y: np.ndarray, p: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`calibration_slope_intercept` for each row of W (NaN where a resample lacks a class)."""
    y = np.asarray(y, dtype="float64")
    W = _weights(W, y.size)
    n1, n0 = W @ y, W @ (1 - y)
    ok = (n1 > 0) & (n0 > 0)
    nan = np.full(len(W), np.nan)
    if not ok.any() or not _two_classes(y):
        return nan, nan.copy()
    lp = logit(p)
    ones = np.ones((len(y), 1))
    zero = np.zeros(len(y))
    slope_start = _logistic_fit(np.column_stack([ones, lp]), y, zero)
    intercept_start = _logistic_fit(ones, y, lp)
    Wok = W[ok]
    step = max(1, CACHE_CELLS // len(y))  # resamples per pass: arrays that stay in cache are ~3x faster
    slope = np.concatenate([_logistic_fit_weighted(lp, y, zero, Wok[i:i + step], slope_start)[:, 1]
                            for i in range(0, len(Wok), step)])
    intercept = np.concatenate([_logistic_fit_weighted(None, y, lp, Wok[i:i + step], intercept_start)[:, 0]
                                for i in range(0, len(Wok), step)])
    s, i = nan.copy(), nan.copy()
    s[ok], i[ok] = slope, intercept
    return s, i


def confusion_at_weighted(y: np.ndarray, p: np.ndarray, threshold: float | np.ndarray,
                          W: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`confusion_at` for each row of W."""
    y = np.asarray(y).astype(bool)
    W = _weights(W, y.size)
    flag = np.asarray(p) >= threshold
    tp, fp = W @ (flag & y), W @ (flag & ~y)
    fn, tn = W @ (~flag & y), W @ (~flag & ~y)

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)

    return {"sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
            "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn), "flagged_fraction": ratio(tp + fp, W.sum(axis=1))}


def net_benefit_weighted(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, W: np.ndarray) -> np.ndarray:
    """:func:`net_benefit` for each row of W: (B × thresholds). One sort; the weight of events and of
    non-events at or above each threshold comes from cumulative sums read at searchsorted positions."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, dtype="float64")
    W = _weights(W, y.size)
    thresholds = np.asarray(thresholds, dtype="float64")
    order = np.argsort(p, kind="mergesort")
    first = np.searchsorted(p[order], thresholds, side="left")     # rows from `first` on are flagged
    Ws, ys = W[:, order], y[order]
    pos = np.zeros((len(W), y.size + 1))
    neg = np.zeros((len(W), y.size + 1))
    np.cumsum(Ws * ys, axis=1, out=pos[:, 1:])
    np.cumsum(Ws * ~ys, axis=1, out=neg[:, 1:])
    tp = pos[:, -1:] - pos[:, first]
    fp = neg[:, -1:] - neg[:, first]
    n = (pos[:, -1] + neg[:, -1])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (tp - fp * (thresholds / (1 - thresholds))[None, :]) / n


def net_benefit_treat_all_weighted(y: np.ndarray, thresholds: np.ndarray, W: np.ndarray) -> np.ndarray:
    """:func:`net_benefit_treat_all` for each row of W: (B × thresholds)."""
    y = np.asarray(y, dtype="float64")
    W = _weights(W, y.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        prevalence = (W @ y / W.sum(axis=1))[:, None]
    thresholds = np.asarray(thresholds, dtype="float64")[None, :]
    return prevalence - (1 - prevalence) * thresholds / (1 - thresholds)
