"""The headline metrics.json: a small selection of the full table, never a new number."""

from __future__ import annotations

import json
from pathlib import Path

from models.headline import headline

ROOT = Path(__file__).resolve().parent.parent


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_committed_headline_is_the_full_tables_numbers_and_about_twenty_of_them():
    full = json.loads((ROOT / "data/metrics_full.json").read_text())
    head = json.loads((ROOT / "data/metrics.json").read_text())
    assert head == headline(full)
    flat = _flat(head)
    assert 15 <= len(flat) <= 25, sorted(flat)
    assert len(json.dumps(head)) < 2000 < len(json.dumps(full))
    pooled = full["pooled"]
    assert flat["model.auroc"] == round(pooled["xgb_kinetics.auroc"], 4)
    assert flat["model.auroc_ci_low"] <= flat["model.auroc"] <= flat["model.auroc_ci_high"]
    for lm, table in full["by_landmark"].items():
        assert flat[f"auroc_by_landmark.{lm}"] == round(table["xgb_kinetics.auroc"], 4)
    assert flat["delta_auroc.vs_single_value"] == round(pooled["delta_auroc.xgb_kinetics_minus_lr_single_value"], 4)
    assert flat["claim.M2_minus_M1"] == round(full["claim"]["pooled"]["delta_auroc.M2_minus_M1"], 4)
    assert flat["cohort.patients"] == pooled["n_patients"]


def test_a_number_the_full_table_lacks_is_left_out_not_invented():
    full = {"pooled": {"xgb_kinetics.auroc": 0.71, "xgb_kinetics.brier": float("nan"), "n_patients": 10},
            "by_landmark": {"48h": {"xgb_kinetics.auroc": 0.7}, "24h": {}}}
    assert headline(full) == {"model": {"auroc": 0.71}, "auroc_by_landmark": {"48h": 0.7},
                              "cohort": {"patients": 10}}
