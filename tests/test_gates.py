import json

import numpy as np
import pandas as pd

from models.gates import ChampionComparison, compare_with_champion, decide
from models.training_patients import TrainingPatients

GATES = {"min_auroc_ci_low": 0.65, "calibration_slope_range": [0.7, 1.3], "max_auroc_drop_vs_champion": 0.02,
         "min_comparison_events": 5}
GOOD = {"xgb_kinetics.auroc_ci_low": 0.78, "xgb_kinetics.calibration_slope": 1.02}


def _made(champion: float, challenger: float) -> ChampionComparison:
    return ChampionComparison(True, "test", champion, challenger, "1")


def test_good_first_model_is_promoted():
    d = decide(GOOD, GATES)
    assert d.promote and d.as_dict()["decision"] == "promoted"
    assert any("no current champion" in r for r in d.reasons)


def test_each_gate_can_refuse():
    assert not decide({**GOOD, "xgb_kinetics.auroc_ci_low": 0.5}, GATES).promote
    assert not decide({**GOOD, "xgb_kinetics.calibration_slope": 0.4}, GATES).promote
    assert not decide({**GOOD, "xgb_kinetics.calibration_slope": float("nan")}, GATES).promote
    worse = decide(GOOD, GATES, _made(0.82, 0.79))
    assert not worse.promote and worse.checks["vs_champion"]["passed"] is False
    within = decide(GOOD, GATES, _made(0.82, 0.81))
    assert within.promote


def _held_out(patients: list[str], events: set[str], rng: np.random.Generator) -> pd.DataFrame:
    """Two landmark rows per patient; an event patient's rows are labelled 1."""
    rows = [{"patient_id": pid, "landmark_hours": lm, "label": float(pid in events),
             "probability": float(np.clip(0.6 * (pid in events) + rng.normal(0.2, 0.15), 0, 1))}
            for pid in patients for lm in (24.0, 48.0)]
    return pd.DataFrame(rows)


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def test_champion_trained_on_a_and_b_is_compared_on_c_only():
    """Issue 18: a champion trained on A∪B, a challenger validated on B∪C: only C counts."""
    rng = np.random.default_rng(0)
    a, b, c = _ids("A", 40), _ids("B", 40), _ids("C", 60)
    events = set(b[:15]) | set(c[:12])
    record = TrainingPatients.build(a + b, cohort_hash="old")
    oof = _held_out(b + c, events, rng)
    saw = record.contains(oof["patient_id"])
    assert saw.sum() == 2 * len(b)
    # the champion is perfect on the patients it was trained on and useless on the others
    scores = oof.assign(probability=np.where(saw, oof["label"], rng.uniform(size=len(oof))))
    result = compare_with_champion(oof, False, champion_scores=scores, champion_saw=saw, min_event_patients=5,
                                   champion_version="3")
    assert result.possible
    assert result.rows_used == 2 * len(c) and result.patients_used == len(c) and result.event_patients_used == 12
    assert result.rows_excluded_overlap == 2 * len(b) and result.patients_excluded_overlap == len(b)
    assert result.event_patients_excluded_overlap == 15
    on_c = oof[~saw]
    from models.metrics import auroc

    assert result.challenger_auroc == auroc(on_c["label"].to_numpy(), on_c["probability"].to_numpy())
    assert result.champion_auroc < 0.8  # its perfect in-sample rows never entered the comparison
    decision = decide(GOOD, GATES, result)
    assert decision.promote and decision.checks["vs_champion"]["rows_excluded_overlap"] == 80


def test_large_overlap_means_no_fair_comparison_and_the_absolute_gates_decide():
    rng = np.random.default_rng(1)
    a, c = _ids("A", 200), _ids("C", 10)
    events = set(a[:40]) | set(c[:2])
    record = TrainingPatients.build(a, cohort_hash="old")
    oof = _held_out(a + c, events, rng)
    saw = record.contains(oof["patient_id"])
    result = compare_with_champion(oof, False, champion_scores=None, champion_saw=saw, min_event_patients=5,
                                   champion_version="3")
    assert not result.possible and result.event_patients_used == 2 and result.rows_excluded_overlap == 400
    decision = decide(GOOD, GATES, result)
    assert decision.promote  # refused only by the gates it can be judged on
    assert any("no fair comparison possible" in r and "decided on the absolute gates alone" in r
               for r in decision.reasons)
    assert decision.checks["vs_champion"]["passed"] is None
    assert not decide({**GOOD, "xgb_kinetics.auroc_ci_low": 0.5}, GATES, result).promote


def test_a_champion_without_a_record_of_its_patients_is_never_compared():
    oof = _held_out(_ids("C", 30), set(_ids("C", 10)), np.random.default_rng(2))
    result = compare_with_champion(oof, False, champion_saw=None, min_event_patients=5, champion_version="1")
    assert not result.possible and "does not record" in result.how


def test_same_cohort_compares_held_out_with_held_out():
    oof = _held_out(_ids("C", 30), set(_ids("C", 10)), np.random.default_rng(3))
    result = compare_with_champion(oof, True, champion_own_auroc=0.9, champion_version="1", min_event_patients=5)
    assert result.possible and result.champion_auroc == 0.9 and result.rows_excluded_overlap == 0


def test_the_patient_record_holds_no_identifier_and_matches_ids_as_strings():
    ids = ["SIM-20261127-0000001", "MRN 0042", "7"]
    record = TrainingPatients.build(ids, cohort_hash="abc.dir")
    data = record.to_dict()
    text = json.dumps(data)
    assert "SIM-20261127" not in text and "MRN" not in text and "0042" not in text
    assert not set(ids) & {*data["digests"], data["salt"], data["cohort_dvc_hash"]}
    assert record.contains(["7", 7, "MRN 0042", "SIM-20261127-0000002"]).tolist() == [True, True, True, False]
    again = TrainingPatients.build(ids)
    assert again.salt != record.salt and not (again.digests & record.digests)  # records cannot be joined


def test_the_patient_record_round_trips(tmp_path):
    record = TrainingPatients.build(_ids("P", 50), cohort_hash="abc.dir")
    back = TrainingPatients.read(record.write(tmp_path))
    assert back == record and back.n_patients == 50 and back.cohort_hash == "abc.dir"
