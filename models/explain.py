"""TreeSHAP explanations of the final model, and readable feature names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xgboost as xgb

FEATURE_WORDS = {
    "baseline": "baseline (pre-infusion)",
    "latest": "latest value",
    "log2_fc": "fold change vs baseline (log2)",
    "max_log2_fc": "max fold change vs baseline so far (log2)",
    "serial_log2_ratio_per24h": "day-over-day ratio of last two draws (log2 per 24 h)",
    "n_draws": "number of draws so far",
    "hours_since_last": "hours since last draw",
    "has_baseline": "baseline available (1/0)",
    "latest_censored": "latest value outside assay range (1/0)",
    "ref_is_fallback": "no baseline: first post-infusion value used as reference (1/0)",
    "reference_censored": "reference value outside assay range (1/0)",
    "any_above_uloq": "above assay upper limit so far (1/0)",
    "max_since_infusion": "highest since infusion",
    "slope_log2_per24h": "trend over trailing window (log2 per 24 h)",
    "hours_since_kfold_rise": "hours since first ≥k-fold rise vs baseline",
    "auc_log2_fc_days": "area under fold-change curve (log2 × days)",
    "given": "given before landmark (1/0)",
    "doses": "doses before landmark",
    "hours_since_first_dose": "hours since first dose",
    "hours_since_last_dose": "hours since last dose",
    # cross-analyte features name the second analyte in the suffix: two entries per analyte
    **{key: words
       for code, word in {"IL6": "IL-6", "IFNG": "IFN-γ", "CRP": "CRP", "FERRITIN": "ferritin",
                          "ANG2": "Ang-2", "ANG1": "Ang-1", "IL10": "IL-10", "MCP1": "MCP-1"}.items()
       for key, words in ((f"log2_fc_minus_{code}", f"fold change minus {word} fold change (log2)"),
                          (f"rise_lag_vs_{code}_hours", f"rise lag behind {word} (hours)"))},
}


def readable_name(feature: str) -> str:
    """'IL6__log2_fc' → 'IL-6 fold change vs baseline (log2)'."""
    from cohorts.registry import analyte_label

    if "__" in feature:
        analyte, kind = feature.split("__", 1)
        return f"{analyte_label(analyte)} {FEATURE_WORDS.get(kind, kind)}"
    if "=" in feature:
        col, value = feature.split("=", 1)
        return f"{col.replace('_', ' ')}: {value}"
    return {"landmark_hours": "hours since infusion (landmark)", "age_years": "age (years)"}.get(
        feature, feature.replace("_", " "))


def shap_values(booster: xgb.Booster, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """TreeSHAP contributions on the margin (log-odds) scale via XGBoost's own `pred_contribs`.

    Returns (values [n, p], expected value). Identical to shap.TreeExplainer (tested).
    """
    dm = xgb.DMatrix(X.to_numpy("float64"), feature_names=list(X.columns), missing=np.nan)
    contribs = booster.predict(dm, pred_contribs=True)
    return contribs[:, :-1], float(contribs[0, -1]) if len(contribs) else 0.0


def mean_abs_shap(values: np.ndarray, feature_names: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({"feature": feature_names, "label": [readable_name(f) for f in feature_names],
                          "mean_abs_shap": np.abs(values).mean(axis=0) if len(values) else 0.0})
    return table.sort_values("mean_abs_shap", ascending=False, kind="mergesort").reset_index(drop=True)


def plot_beeswarm(values: np.ndarray, X: pd.DataFrame, path: str, max_display: int = 15, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    # shap's beeswarm shuffles points with the global NumPy RNG: seed it so the PNG is reproducible
    np.random.seed(seed)
    explanation = shap.Explanation(values=values, data=X.to_numpy("float64"),
                                   feature_names=[readable_name(c) for c in X.columns])
    shap.plots.beeswarm(explanation, max_display=max_display, show=False)
    fig = plt.gcf()
    fig.axes[0].set_xlabel("SHAP value (impact on log-odds of grade ≥3 CRS)")
    fig.set_size_inches(10, 7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
