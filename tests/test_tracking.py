"""What a registration shows in MLflow (issue 17): a few headline metric keys instead of ~600 flat
ones, the model card's summary as description."""

from models.tracking import headline_metrics, metrics_table, model_card_summary


def _table(seed: float) -> dict[str, float]:
    out = {}
    for model in ("xgb_kinetics", "lr_single_value", "easix"):
        for name in ("auroc", "auprc", "brier", "calibration_slope", "calibration_intercept", "ppv_at_operating_point"):
            for suffix in ("", "_ci_low", "_ci_high"):
                out[f"{model}.{name}{suffix}"] = seed
    out["delta_auroc.xgb_kinetics_minus_easix"] = 0.1
    return out


METRICS = {"pooled": {**_table(0.8), "n_patients": 3000, "n_events": 717, "n_rows": 11725, "prevalence": 0.061},
           "by_landmark": {"96h": _table(0.7), "24h": _table(0.9), "48h": _table(0.85), "72h": _table(0.75)},
           "subgroups": {"therapy": {"axi-cel": {"auroc": 0.8}}}, "cohort": {"synthetic": True}}


def test_headline_metrics_are_the_primary_model_pooled_and_per_landmark_with_cis():
    keys = headline_metrics(METRICS)
    assert len(keys) == 5 * 4 * 3 + 4  # scopes x measures x (estimate, CI bounds) + cohort counts
    assert keys["pooled/auroc"] == 0.8 and keys["pooled/auroc_ci_low"] == 0.8 and keys["24h/calibration_slope_ci_high"] == 0.9
    assert keys["cohort/n_events"] == 717
    assert not any("lr_single_value" in k or "easix" in k or "ppv" in k for k in keys)
    assert [k.split("/")[0] for k in keys][:13] == ["pooled"] * 12 + ["24h"]  # landmarks in time order


def test_the_full_table_goes_to_an_artifact():
    table = metrics_table(METRICS)
    assert len(table) > 200 and "subgroups.therapy.axi-cel.auroc" in set(table["key"])


def test_model_card_summary_keeps_the_title_and_chosen_sections():
    card = ("# Model card: severe CRS\n\n## Intended use\n\nResearch only.\n\n## Missing data\n\nLong list.\n\n"
            "## Outcome\n\nGrade >=3 within 72 h.\n")
    summary = model_card_summary(card)
    assert summary.startswith("### Model card: severe CRS") and "#### Intended use" in summary
    assert "Research only." in summary
    assert "Grade >=3" in summary and "Long list" not in summary
