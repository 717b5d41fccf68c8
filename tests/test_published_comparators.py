"""Comparators that say what they measure: m-EASIX at its published times (day -1, day +1) and the
product case-mix (therapy x landmark prevalence on training folds)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.baselines import case_mix_prevalence, m_easix_at, published_m_easix
from tests.conftest import lab_rows


def _labs() -> pd.DataFrame:
    parts = [lab_rows("A", "LDH", [(-30, 200.0), (-20, 400.0), (20, 300.0), (40, 900.0)]),
             lab_rows("A", "CRP", [(-30, 10.0), (22, 50.0), (30, 150.0)]),          # mg/L
             lab_rows("A", "PLT", [(-26, 100.0), (23, 80.0)]),
             lab_rows("B", "LDH", [(-25, 250.0)]), lab_rows("B", "CRP", [(-25, 20.0)])]  # B: no platelets
    labs = pd.concat(parts, ignore_index=True)
    labs["resulted_hours"] = labs["hours_since_infusion"]   # routine labs: resulted at the draw
    return labs


def test_m_easix_uses_the_latest_values_at_the_published_time():
    labs = _labs()
    # day -1 (-24 h): LDH 200 (-30 h; the -20 h draw is later), CRP 10 mg/L = 1 mg/dL, PLT 100
    np.testing.assert_allclose(m_easix_at(labs, ["A", "B", "C"], -24.0), [200 * 1.0 / 100, np.nan, np.nan])
    # day +1 (24 h): LDH 300 (20 h), CRP 50 mg/L (22 h), PLT 80 (23 h); the 30 h and 40 h draws are later
    np.testing.assert_allclose(m_easix_at(labs, ["A"], 24.0), [300 * 5.0 / 80])


def test_a_published_time_after_the_landmark_is_unknown_at_that_landmark():
    rows = pd.DataFrame({"patient_id": ["A", "A", "B"], "landmark_hours": [12.0, 48.0, 48.0]})
    out = published_m_easix(_labs(), rows)
    assert np.isnan(out["m_easix_day_plus1"].iloc[0])            # day +1 is after a 12 h landmark
    np.testing.assert_allclose(out["m_easix_day_minus1"], [2.0, 2.0, np.nan])
    np.testing.assert_allclose(out["m_easix_day_plus1"].iloc[1], 300 * 5.0 / 80)


def test_case_mix_uses_training_folds_only():
    rng = np.random.default_rng(0)
    n = 4000
    rows = pd.DataFrame({"therapy": rng.choice(["hi", "lo", "rare"], n, p=[0.5, 0.495, 0.005]),
                         "landmark_hours": rng.choice([24.0, 48.0], n), "fold": rng.integers(0, 4, n)})
    rate = np.where(rows["therapy"] == "hi", 0.3, 0.05)
    rows["label"] = (rng.random(n) < rate).astype(int)
    p = case_mix_prevalence(rows)
    for k in range(4):
        train, test = rows[rows["fold"] != k], (rows["fold"] == k).to_numpy()
        cell = (test & (rows["therapy"] == "hi").to_numpy() & (rows["landmark_hours"] == 24.0).to_numpy())
        want = train[(train["therapy"] == "hi") & (train["landmark_hours"] == 24.0)]["label"].mean()
        np.testing.assert_allclose(p[cell], want)                  # the training fold's cell rate, not the test's
        rare = test & (rows["therapy"] == "rare").to_numpy() & (rows["landmark_hours"] == 48.0).to_numpy()
        np.testing.assert_allclose(p[rare], train[train["landmark_hours"] == 48.0]["label"].mean())  # small cell
    assert np.isnan(case_mix_prevalence(rows.assign(fold=-1))).all()   # no training rows known: no estimate
