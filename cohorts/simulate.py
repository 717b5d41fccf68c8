"""Literature-grounded synthetic cohort simulator (mechanism first: latent inflammation → grade and labs).

Each patient gets a latent inflammation score ``s`` driven by therapy, tumour burden and chance;
the CRS grade, its onset and the analyte kinetics all follow from ``s``. The output is
SYNTHETIC and labelled so in its provenance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm

from cohorts.errors import CohortError
from cohorts.io import Cohort
from cohorts.registry import analyte_registry
from cohorts.schema import canonical_events
from pipeline.paths import reference_dir


def load_simulator_params(path: Path | None = None) -> dict[str, Any]:
    with open(path or reference_dir() / "simulator.yaml") as fh:
        return yaml.safe_load(fh)


def latent_distribution(any_crs: float, severe: float, thresholds: list[float]) -> tuple[float, float]:
    """(mu, sigma) of a normal whose exceedance of grade-1 and grade-3 thresholds matches the rates."""
    if not 0 < severe < any_crs < 1:
        raise CohortError(f"Simulator rates must satisfy 0 < severe < any_crs < 1; got {severe}, {any_crs}")
    z_any, z_sev = norm.ppf(1 - any_crs), norm.ppf(1 - severe)
    sigma = (thresholds[2] - thresholds[0]) / (z_sev - z_any)
    return thresholds[0] - sigma * z_any, sigma


def _bump(t: np.ndarray, start: np.ndarray, peak: np.ndarray, decay: float) -> np.ndarray:
    """0 before start, smooth rise to 1 at peak, exponential decay after."""
    width = np.maximum(peak - start, 1.0)
    x = np.clip((t - start) / width, 0.0, 1.0)
    rise = x * x * (3 - 2 * x)  # smoothstep
    fall = np.exp(-np.maximum(t - peak, 0.0) / decay)
    return np.where(t <= peak, rise, fall)


def simulate_patients(rng: np.random.Generator, n: int, first_index: int,
                      therapy_mix: dict[str, float], sp: dict[str, Any]) -> pd.DataFrame:
    names = list(therapy_mix)
    weights = np.array([therapy_mix[k] for k in names], dtype=float)
    unknown = [k for k in names if k not in sp["therapies"]]
    if unknown:
        raise CohortError(f"simulate.therapy_mix names therapies the simulator does not know: {unknown}")
    therapy_idx = rng.choice(len(names), size=n, p=weights / weights.sum())
    therapy = np.array(names)[therapy_idx]
    th = [sp["therapies"][k] for k in names]
    thresholds = sp["grade_thresholds"]
    mu_sigma = np.array([latent_distribution(t["any_crs"], t["severe"], thresholds) for t in th])
    mu, sigma = mu_sigma[therapy_idx, 0], mu_sigma[therapy_idx, 1]
    burden = rng.standard_normal(n)
    rho = sp["tumor_burden_correlation"]
    s = mu + sigma * (rho * burden + np.sqrt(1 - rho**2) * rng.standard_normal(n))
    grade = np.digitize(s, thresholds)
    onset_med = np.array([t["onset_median_days"] for t in th])[therapy_idx] * 24.0
    onset = np.clip(onset_med * np.exp(sp["onset_log_sd"] * rng.standard_normal(n)), 4.0, 14 * 24.0)
    lag = rng.gamma(sp["severe_lag_hours"]["shape"], sp["severe_lag_hours"]["scale"], n)
    severe_onset = np.where(grade >= 3, onset + lag, np.nan)
    return pd.DataFrame({
        "patient_id": [f"SIM-{i:07d}" for i in range(first_index, first_index + n)],
        "therapy": therapy,
        "disease": np.array([t["disease"] for t in th])[therapy_idx],
        "age_years": np.clip(rng.normal(60, 12, n), 18, 85).round(0),
        "weight_kg": np.clip(rng.normal(76, 15, n), 40, 150).round(1),
        "sex": np.where(rng.random(n) < 0.5, "F", "M"),
        "tumor_burden": burden.round(3),
        "crs_max_grade": grade.astype("float64"),
        "grading": "ASTCT",
        "crs_onset_hours": np.where(grade >= 1, onset.round(1), np.nan),
        "severe_onset_hours": severe_onset.round(1),
        "_latent_s": s,
        "_onset": onset,
        "_peak": np.where(grade >= 3, onset + lag, onset + 0.5 * lag),
    })


def simulate_labs(rng: np.random.Generator, patients: pd.DataFrame, sp: dict[str, Any]) -> pd.DataFrame:
    n = len(patients)
    meas = sp["measurement"]
    days = meas["daily_draw_days"]
    # draw times: one pre-infusion baseline + daily draws (patients x draws)
    base_t = meas["baseline_draw_hours"]["mean"] + rng.uniform(-1, 1, n) * meas["baseline_draw_hours"]["jitter"]
    daily = 24.0 * np.arange(1, days + 1)[None, :] + rng.uniform(-1, 1, (n, days)) * meas["draw_jitter_hours"]
    times = np.concatenate([base_t[:, None], daily], axis=1)
    n_draws = times.shape[1]
    s = patients["_latent_s"].to_numpy()
    onset = patients["_onset"].to_numpy()
    peak = patients["_peak"].to_numpy()
    burden = patients["tumor_burden"].to_numpy()
    reg = analyte_registry()
    frames = []
    for code, ap in sp["analytes"].items():  # loop over 5 analytes, vectorised over patients
        b = ap["baseline"]
        log_base = (np.log(b["median"]) + b["log_sd"] * rng.standard_normal(n)
                    + b.get("burden_log_effect", 0.0) * burden)
        pf = ap["peak_log10_fold"]
        log10_fold = (pf["intercept"] + pf["slope"] * np.maximum(s - pf["from"], 0.0)
                      + pf["sd"] * rng.standard_normal(n))
        start = (onset + ap["start_hours"])[:, None]
        pk = np.maximum(peak + ap["peak_hours"], onset + ap["start_hours"] + 1.0)[:, None]
        shape = _bump(times, start, pk, ap["decay_hours"])
        log_true = log_base[:, None] + np.log(10) * np.maximum(log10_fold, 0.0)[:, None] * shape
        value = np.exp(log_true + meas["assay_log_sd"] * rng.standard_normal((n, n_draws)))
        lloq, uloq = reg.loc[code, "lloq"], reg.loc[code, "uloq"]
        censor = np.full(value.shape, "", dtype=object)
        if np.isfinite(lloq):
            censor[value < lloq] = "<"
            value = np.where(value < lloq, lloq, value)
        if np.isfinite(uloq):
            censor[value > uloq] = ">"
            value = np.where(value > uloq, uloq, value)
        kept = rng.random((n, n_draws)) >= meas["missed_draw_probability"]
        kept[:, 0] = kept[:, 0] | (rng.random(n) < 0.5)  # baselines are missed less often
        frames.append(pd.DataFrame({
            "patient_id": np.repeat(patients["patient_id"].to_numpy(), n_draws)[kept.ravel()],
            "analyte": code,
            "hours_since_infusion": times.ravel()[kept.ravel()].round(2),
            "value": value.ravel()[kept.ravel()].round(4),
            "censor": censor.ravel()[kept.ravel()],
        }))
    labs = pd.concat(frames, ignore_index=True)
    labs["resulted_hours"] = np.nan  # same-day results in this first simulator
    return labs


def iter_chunks(n_patients: int, seed: int, therapy_mix: dict[str, float], chunk_size: int = 50_000,
                sp: dict[str, Any] | None = None) -> Iterator[Cohort]:
    """Yield the cohort in patient chunks; chunk k is seeded from (seed, k) so output is deterministic."""
    if n_patients < 0:
        raise CohortError(f"--patients must be >= 0; got {n_patients}")
    sp = sp or load_simulator_params()
    n_chunks = max(1, -(-n_patients // chunk_size))
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    for k in range(n_chunks):
        first = k * chunk_size
        n = min(chunk_size, n_patients - first)
        if n <= 0 and k > 0:
            break
        rng = np.random.default_rng(seeds[k])
        patients = simulate_patients(rng, max(n, 0), first, therapy_mix, sp)
        labs = simulate_labs(rng, patients, sp)
        hidden = [c for c in patients.columns if c.startswith("_")]
        yield Cohort(labs=labs, patients=patients.drop(columns=hidden),
                     events=canonical_events(None))


def provenance(n_patients: int, seed: int, therapy_mix: dict[str, float]) -> dict[str, Any]:
    sp = load_simulator_params()
    return {"synthetic": True, "source": "simulated", "simulator_version": sp["version"],
            "seed": seed, "patients": n_patients, "therapy_mix": therapy_mix,
            "notice": "SYNTHETIC cohort from crs-predict's simulator; no clinical validity."}


def write_simulated_cohort(out: Path | str, n_patients: int, seed: int, therapy_mix: dict[str, float],
                           chunk_size: int = 50_000) -> dict[str, int]:
    """Stream the simulated cohort to Parquet in chunks; return row counts."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    counts = {"patients": 0, "labs": 0, "events": 0}
    try:
        for chunk in iter_chunks(n_patients, seed, therapy_mix, chunk_size):
            for name in ("labs", "patients", "events"):
                frame = getattr(chunk, name)
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if name not in writers:
                    writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                writers[name].write_table(table.cast(writers[name].schema))
                counts[name] += len(frame)
    finally:
        for w in writers.values():
            w.close()
    prov = provenance(n_patients, seed, therapy_mix) | {"rows": counts}
    (out / "provenance.json").write_text(json.dumps(prov, indent=2, sort_keys=True))
    return counts
