"""Evaluation on held-out (out-of-fold) patients, with patient-level bootstrap confidence intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else float("nan")


def _expand(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate ranges [start, start + size) without a Python loop."""
    total = int(sizes.sum())
    offsets = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.repeat(starts, sizes) + (np.arange(total) - offsets)


def bootstrap_auroc(oof: pd.DataFrame, n_boot: int, seed: int) -> tuple[float, float]:
    """95% CI resampling patients (all of a patient's landmark rows travel together)."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(oof["patient_id"])
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques)))
    sizes = np.bincount(codes, minlength=len(uniques))
    y, p = oof["label"].to_numpy()[order], oof["probability"].to_numpy()[order]
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniques), len(uniques))
        idx = _expand(starts[pick], sizes[pick])
        value = _auroc(y[idx], p[idx])
        if not np.isnan(value):
            stats.append(value)
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def evaluate_oof(oof: pd.DataFrame, n_boot: int, seed: int) -> dict[str, Any]:
    """Pooled and per-landmark AUROC with CIs, counts and prevalence."""
    def block(frame: pd.DataFrame) -> dict[str, Any]:
        y, p = frame["label"].to_numpy(), frame["probability"].to_numpy()
        lo, hi = bootstrap_auroc(frame, n_boot, seed)
        return {"auroc": _auroc(y, p), "auroc_ci_low": lo, "auroc_ci_high": hi,
                "n_rows": int(len(frame)), "n_patients": int(frame["patient_id"].nunique()),
                "n_events": int(y.sum()), "prevalence": float(y.mean()) if len(y) else float("nan")}

    metrics: dict[str, Any] = {"pooled": block(oof), "by_landmark": {}}
    for L, frame in oof.groupby("landmark_hours"):
        metrics["by_landmark"][f"{L:g}h"] = block(frame)
    return metrics


def roc_points(oof: pd.DataFrame) -> pd.DataFrame:
    fpr, tpr, thr = roc_curve(oof["label"], oof["probability"])
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": np.clip(thr, 0, 1)})


def plot_roc(points: pd.DataFrame, auroc: float, path: str, cohort_label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(points["fpr"], points["tpr"], label=f"XGBoost kinetics (AUROC {auroc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.set_title(f"Grade ≥3 CRS within horizon, out-of-fold ({cohort_label})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
