"""Decision curves per landmark with bootstrap bands (models/decision_curves.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.decision_curves import decision_curves
from models.metrics import net_benefit


def _frame(n_patients: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pid = np.repeat([f"P{i}" for i in range(n_patients)], 2)
    y = (rng.random(pid.size) < 0.15).astype(int)
    good = 1 / (1 + np.exp(-(-2.2 + 2.0 * y + rng.standard_normal(pid.size))))
    return pd.DataFrame({"patient_id": pid, "landmark_hours": np.tile([24.0, 48.0], n_patients), "label": y,
                         "probability": good, "p_noise": rng.random(pid.size) * 0.3,
                         "p_missing": np.where(np.arange(pid.size) % 3 == 0, np.nan, good)})


def test_curves_per_scope_with_bands_around_the_point_estimate(tmp_path):
    frame = _frame()
    t = np.array([0.05, 0.1, 0.2, 0.3])
    table = decision_curves(frame, {"probability": "model", "p_noise": "noise", "p_missing": "partial"}, t, 200, 1)
    assert set(table["scope"]) == {"pooled", "24h", "48h"}
    assert set(table["model"]) == {"model", "noise", "partial", "treat_all", "treat_none"}
    at24 = frame[frame["landmark_hours"] == 24.0]
    got = table[(table["scope"] == "24h") & (table["model"] == "model")]["net_benefit"].to_numpy()
    np.testing.assert_allclose(got, net_benefit(at24["label"].to_numpy(), at24["probability"].to_numpy(), t))
    partial = frame[frame["p_missing"].notna()]   # a model is judged on the rows it scored
    got = table[(table["scope"] == "pooled") & (table["model"] == "partial")]["net_benefit"].to_numpy()
    np.testing.assert_allclose(got, net_benefit(partial["label"].to_numpy(), partial["p_missing"].to_numpy(), t))
    body = table[table["model"] != "treat_none"]
    assert (body["ci_low"] <= body["net_benefit"] + 1e-12).all() and (body["net_benefit"] <= body["ci_high"] + 1e-12).all()
    varies = body[body["model"].isin(["model", "treat_all"])]   # (noise flags nobody at 0.3: NB is 0 in every resample)
    assert (varies["ci_high"] > varies["ci_low"]).all()
    pooled = table[table["scope"] == "pooled"].set_index(["model", "threshold"])["net_benefit"]
    assert (pooled.loc["model"] > pooled.loc["noise"]).all()   # a real signal beats noise at every threshold

    from models.plots import plot_decision_curves

    plot_decision_curves(table, str(tmp_path / "dc.png"), "test")
    assert (tmp_path / "dc.png").stat().st_size > 10_000
