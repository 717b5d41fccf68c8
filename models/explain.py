"""Explanations of the final model (TreeSHAP for trees, exact linear contributions for gblinear):
global tables and plots (names from features.vocabulary)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

from features.vocabulary import readable_name
from models.drivers import contributions


def explain_rows(bundle, rows: pd.DataFrame) -> tuple[np.ndarray, float, pd.DataFrame]:
    """(contributions [n, p], expected value, X shown) of a model bundle for landmark-matrix rows,
    whichever family it is: TreeSHAP for trees, exact linear contributions for the linear family,
    with the columns in their own units (:meth:`models.bundle.ModelBundle.explain`)."""
    values, bias, shown = bundle.explain(rows)
    return values, float(bias[0]) if len(bias) else 0.0, shown.reset_index(drop=True)


def shap_values(booster: xgb.Booster, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """TreeSHAP contributions on the margin (log-odds) scale via XGBoost's own `pred_contribs`.

    Returns (values [n, p], expected value). Identical to shap.TreeExplainer (tested).
    """
    values, bias = contributions(booster, X)
    return values, float(bias[0]) if len(bias) else 0.0


def mean_abs_shap(values: np.ndarray, feature_names: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({"feature": feature_names, "label": [readable_name(f) for f in feature_names],
                          "mean_abs_shap": np.abs(values).mean(axis=0) if len(values) else 0.0})
    return table.sort_values("mean_abs_shap", ascending=False, kind="mergesort").reset_index(drop=True)


def plot_beeswarm(values: np.ndarray, X: pd.DataFrame, path: str, max_display: int = 15, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import shap

    # shap's beeswarm shuffles points with the global NumPy RNG: seed it so the PNG is reproducible
    np.random.seed(seed)
    shap.plots.beeswarm(_explanation(values, X), max_display=max_display, show=False)
    _save_current(path, "SHAP value (impact on log-odds of grade ≥3 CRS)", dpi=110)


def _explanation(values: np.ndarray, X: pd.DataFrame, base: float = 0.0):
    import shap

    return shap.Explanation(values=values, base_values=np.full(len(values), base), data=X.to_numpy("float64"),
                            feature_names=[readable_name(c) for c in X.columns])


def _save_current(path: str, xlabel: str | None = None, size: tuple[float, float] = (10, 7), dpi: int = 100) -> None:
    import matplotlib.pyplot as plt

    fig = plt.gcf()
    if xlabel:
        fig.axes[0].set_xlabel(xlabel)
    fig.set_size_inches(*size)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)


def plot_bar(values: np.ndarray, X: pd.DataFrame, path: str, max_display: int = 15) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import shap

    shap.plots.bar(_explanation(values, X), max_display=max_display, show=False)
    _save_current(path, "mean |SHAP value| (average impact on log-odds of grade ≥3 CRS)")


def plot_dependence(values: np.ndarray, X: pd.DataFrame, features: list[str], folder: str) -> list[str]:
    """One scatter per top feature: its value against its SHAP contribution. Returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for rank, feature in enumerate(features, start=1):
        j = list(X.columns).index(feature)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter(X.iloc[:, j], values[:, j], s=6, alpha=0.4)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(readable_name(feature))
        ax.set_ylabel("SHAP value (log-odds of grade ≥3 CRS)")
        ax.set_title(f"Dependence: {readable_name(feature)}", fontsize=10)
        fig.tight_layout()
        name = f"shap_dependence_{rank}.png"
        fig.savefig(f"{folder}/{name}", dpi=100, metadata={"Software": None})
        plt.close(fig)
        names.append(name)
    return names


def example_rows(margin: np.ndarray) -> dict[str, int]:
    """Positions of three example rows: highest, median and lowest predicted risk."""
    order = np.argsort(margin, kind="mergesort")
    return {"A (highest predicted risk)": int(order[-1]), "B (median predicted risk)": int(order[len(order) // 2]),
            "C (lowest predicted risk)": int(order[0])}


def plot_waterfalls(values: np.ndarray, X: pd.DataFrame, base: float, folder: str) -> list[str]:
    """Waterfall plots for example rows, labelled by letter: no patient identifier is written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    margin = values.sum(axis=1) + base
    names = []
    for label, i in example_rows(margin).items():
        shap.plots.waterfall(_explanation(values, X, base)[i], max_display=10, show=False)
        plt.gcf().suptitle(f"Example {label}, landmark {X['landmark_hours'].iloc[i]:g} h — log-odds scale",
                           fontsize=10)
        name = f"shap_waterfall_{label[0]}.png"
        _save_current(f"{folder}/{name}", size=(10, 6))
        names.append(name)
    return names
