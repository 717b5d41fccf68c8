"""Words for feature names: what a data scientist or clinician reads in plots, drivers and cards.

Shared by explanations (models/explain.py) and per-row drivers (models/drivers.py).
"""

from __future__ import annotations

from cohorts.registry import analyte_label

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
    if "__" in feature:
        analyte, kind = feature.split("__", 1)
        return f"{analyte_label(analyte)} {FEATURE_WORDS.get(kind, kind)}"
    if "=" in feature:
        col, value = feature.split("=", 1)
        return f"{col.replace('_', ' ')}: {value}"
    return {"landmark_hours": "hours since infusion (landmark)", "age_years": "age (years)",
            "current_grade": "highest CRS grade recorded so far"}.get(
        feature, feature.replace("_", " "))
