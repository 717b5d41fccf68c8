from models.gates import decide

GATES = {"min_auroc_ci_low": 0.65, "calibration_slope_range": [0.7, 1.3], "max_auroc_drop_vs_champion": 0.02}
GOOD = {"xgb_kinetics.auroc_ci_low": 0.78, "xgb_kinetics.calibration_slope": 1.02}


def test_good_first_model_is_promoted():
    d = decide(GOOD, GATES)
    assert d.promote and d.as_dict()["decision"] == "promoted"
    assert any("no current champion" in r for r in d.reasons)


def test_each_gate_can_refuse():
    assert not decide({**GOOD, "xgb_kinetics.auroc_ci_low": 0.5}, GATES).promote
    assert not decide({**GOOD, "xgb_kinetics.calibration_slope": 0.4}, GATES).promote
    assert not decide({**GOOD, "xgb_kinetics.calibration_slope": float("nan")}, GATES).promote
    worse = decide(GOOD, GATES, champion_auroc_same_data=0.82, challenger_auroc_same_data=0.79)
    assert not worse.promote and worse.checks["vs_champion"]["passed"] is False
    within = decide(GOOD, GATES, champion_auroc_same_data=0.82, challenger_auroc_same_data=0.81)
    assert within.promote
