"""Driver sentences: plain words, one colon, no log-odds, the effect in percentage points of the probability."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.calibration import apply_calibration
from models.drivers import describe, driver_frame, percentage_points

SIGMOID = {"method": "sigmoid", "slope": 0.8, "intercept": -0.4}
ISOTONIC = {"method": "isotonic", "x": [-3.0, -1.0, 0.0, 1.0, 3.0], "y": [0.01, 0.05, 0.2, 0.5, 0.9]}


def test_percentage_points_is_probability_with_minus_without_the_contribution():
    rng = np.random.default_rng(0)
    margin, c = rng.normal(0, 2, 200), rng.normal(0, 1, 200)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected = 100 * (sig(0.8 * margin - 0.4) - sig(0.8 * (margin - c) - 0.4))
    np.testing.assert_allclose(percentage_points(margin, c, SIGMOID), expected, rtol=1e-12)
    # a monotone calibration never flips the direction; zero contribution is zero points
    for cal in (SIGMOID, ISOTONIC):
        pts = percentage_points(margin, c, cal)
        assert (np.sign(pts[np.abs(pts) > 1e-12]) == np.sign(c[np.abs(pts) > 1e-12])).all()
        assert percentage_points(margin, np.zeros(200), cal).max() == 0
    # worked example: margin 1.0, contribution 0.5, sigmoid slope 1 → σ(1) − σ(0.5) = 73.1% − 62.2% = 10.9 points
    one = percentage_points(np.array([1.0]), np.array([0.5]), {"method": "sigmoid", "slope": 1.0, "intercept": 0.0})
    assert one[0] == pytest.approx(100 * (1 / (1 + np.exp(-1)) - 1 / (1 + np.exp(-0.5))))
    assert round(one[0], 1) == 10.9


def test_driver_text_carries_the_points_of_its_row():
    X = pd.DataFrame({"IL6__log2_fc": [5.3, 1.0, np.nan], "IL6__ref_is_fallback": [0.0, 1.0, 0.0],
                      "therapy=brexu-cel": [1.0, 0.0, 1.0], "CRP__latest": [120.0, 8.0, 30.0]})
    values = np.array([[1.2, 0.0, 0.3, -0.2], [0.4, 0.01, -0.5, 0.1], [0.2, 0.0, 0.1, -0.9]])
    margin = values.sum(axis=1) - 1.5
    out = driver_frame(values, X, list(X.columns), 3, margin=margin, calibration=SIGMOID)
    for i in range(3):
        for j in (1, 2, 3):
            text, feature = out.loc[i, f"driver_{j}_text"], out.loc[i, f"driver_{j}_feature"]
            if not text:
                continue
            c = out.loc[i, f"driver_{j}_contribution"]
            assert c == values[i, list(X.columns).index(feature)]  # the machine column stays log-odds
            pts = percentage_points(margin[i:i + 1], np.array([c]), SIGMOID)[0]
            m = re.search(r"(raises|lowers) risk (?:by (\d+\.\d) percentage points?|slightly)", text)
            assert m and (m.group(1) == "raises") == (c > 0), text
            if m.group(2):
                assert float(m.group(2)) == round(abs(pts), 1), (text, pts)
    assert out.loc[0, "driver_1_text"].startswith("IL-6 39× its pre-infusion value: raises risk by ")
    assert out.loc[1, "driver_2_text"].startswith("IL-6 2.0× its first value after infusion: raises risk")
    assert out.loc[0, "driver_2_text"].startswith("therapy brexu-cel: raises risk")
    assert out.loc[2, "driver_1_text"].startswith("CRP 30 mg/L (latest): lowers risk")
    # without margin and calibration: the direction alone, still no log-odds
    bare = driver_frame(values, X, list(X.columns), 3)
    assert bare.loc[0, "driver_1_text"] == "IL-6 39× its pre-infusion value: raises risk"


def test_every_feature_of_the_model_reads_as_one_plain_sentence(small_cohort):
    """Every feature the default transformer makes, at values of every kind (NaN, 0, 1, typical,
    negative): one colon, no log-odds, no code names, no 'nan'."""
    from features.transformer import KineticFeatures

    kf = KineticFeatures()
    matrix = kf.build(small_cohort.labs, small_cohort.patients, [48.0], events=small_cohort.events)
    names = [str(f) for f in kf.fit(matrix).get_feature_names_out()]
    assert len(names) > 100
    bad = []
    for f in names:
        for v in (np.nan, 0.0, 1.0, 5.3, -2.0, 37.5):
            for c, pts in ((0.4, 8.2), (-0.2, -0.04)):
                text = describe(f, f, v, c, points=pts, context={"rise_fold": 4.0, "trailing_window_hours": 48.0})
                if (text.count(":") != 1 or "log-odds" in text or "__" in text or "nan" in text.lower()
                        or "=" in text or not re.search(r": (raises|lowers) risk", text)):
                    bad.append((f, v, text))
    assert not bad, bad[:10]


@pytest.mark.parametrize(("feature", "value", "unit", "expected"), [
    ("IL6__log2_fc", 5.3, "", "IL-6 39× its pre-infusion value"),
    ("CRP__max_log2_fc", 4.52, "", "CRP peak so far 23× its pre-infusion value"),
    ("FERRITIN__log2_fc", -1.0, "", "Ferritin 0.50× its pre-infusion value"),
    ("IL6__latest", 1234.0, "pg/mL", "IL-6 1,234 pg/mL (latest)"),
    ("PLT__latest", 85.0, "10^9/L", "Platelets 85 ×10⁹/L (latest)"),
    ("tocilizumab__given", 1.0, "", "tocilizumab given"),
    ("tocilizumab__hours_since_last_dose", 6.0, "", "tocilizumab last given 6 h ago"),
    ("therapy=brexu-cel", 1.0, "", "therapy brexu-cel"),
    ("landmark_hours", 48.0, "", "48 h since infusion"),
])
def test_phrases(feature, value, unit, expected):
    assert describe(feature, feature, value, 0.3, unit, points=1.0) == f"{expected}: raises risk by 1.0 percentage point"


def test_calibration_helper_is_the_models_own():
    m = np.linspace(-3, 3, 7)
    assert percentage_points(m, m, ISOTONIC)[-1] == pytest.approx(
        100 * (apply_calibration(np.array([3.0]), ISOTONIC)[0] - apply_calibration(np.array([0.0]), ISOTONIC)[0]))
