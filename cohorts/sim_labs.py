"""Simulator, part 2: analyte kinetics and how they are measured (schedule, sites, turnaround, limits).

Vectorised over patients × draws; the only loop is over the dozen analytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

LN10 = np.log(10.0)


def bump(t: np.ndarray, start: np.ndarray, peak: np.ndarray, decay: float) -> np.ndarray:
    """0 before start, smooth rise to 1 at peak, exponential decay after."""
    width = np.maximum(peak - start, 1.0)
    x = np.clip((t - start) / width, 0.0, 1.0)
    rise = x * x * (3 - 2 * x)  # smoothstep
    fall = np.exp(-np.maximum(t - peak, 0.0) / decay)
    return np.where(t <= peak, rise, fall)


def _after(t: np.ndarray, when: np.ndarray, efold: float) -> np.ndarray:
    """Multiplier 1 before `when` (or if never), decaying with e-folding time `efold` after it."""
    w = when[:, None]
    return np.where(np.isfinite(w) & (t > w), np.exp(-(t - np.nan_to_num(w)) / efold), 1.0)


def draw_times(rng: np.random.Generator, n: int, sp: dict[str, Any]) -> np.ndarray:
    """patients × (1 baseline + daily) draw times in hours since infusion."""
    m = sp["measurement"]
    base = m["baseline_draw_hours"]["mean"] + rng.uniform(-1, 1, n) * m["baseline_draw_hours"]["jitter"]
    days = np.arange(1, m["max_days"] + 1)[None, :]
    daily = 24.0 * days + rng.uniform(-1, 1, (n, m["max_days"])) * m["draw_jitter_hours"]
    return np.concatenate([base[:, None], daily], axis=1)


def true_log_values(code: str, ap: dict[str, Any], course: dict[str, np.ndarray], times: np.ndarray,
                    rng: np.random.Generator, sp: dict[str, Any]) -> np.ndarray:
    """Natural-log concentration (or °C for temperature) without assay noise."""
    n = len(course["s"])
    s, onset, peak = course["s"], course["onset"], course["peak"]
    tx = sp["treatments"]
    start = (onset + ap["start_hours"])[:, None]
    pk = np.maximum(peak + ap["peak_hours"], onset + ap["start_hours"] + 1.0)[:, None]
    shape = bump(times, start, pk, ap["decay_hours"])
    if code == "TEMP_MAX":
        return _temperature(ap, course, times, rng)
    b, pf = ap["baseline"], ap["peak_log10_fold"]
    log_base = np.log(b["median"]) + b["log_sd"] * rng.standard_normal(n) + b.get("burden_log_effect", 0.0) * course["tumor_burden"]
    fold = pf["intercept"] + pf["slope"] * np.maximum(s - pf["from"], 0.0) + pf["sd"] * rng.standard_normal(n)
    drive = np.maximum(fold, 0.0)[:, None] * shape * pf.get("direction", 1)
    if code == "CRP":  # hepatic CRP synthesis needs IL-6 signalling: it falls after tocilizumab
        t = tx["tocilizumab"]
        effect = np.maximum(course["toci_first"] + t["crp_response_delay_hours"],
                            pk[:, 0] - t["crp_peak_margin_hours"])
        drive = drive * _after(times, effect, t["crp_decay_hours"])
    if code in sp["cytokine_analytes"]:
        drive = drive * _after(times, course["steroid"], tx["corticosteroids"]["cytokine_decay_hours"])
    log_v = log_base[:, None] + LN10 * drive
    if code == "IL6":  # receptor blockade: serum IL-6 rises after tocilizumab (not worsening)
        t0 = course["toci_first"][:, None]
        given = np.isfinite(t0)
        rise = bump(times, np.nan_to_num(t0), np.nan_to_num(t0) + tx["tocilizumab"]["il6_rise_hours"],
                    tx["tocilizumab"]["il6_rise_decay_hours"])
        log_v = log_v + LN10 * tx["tocilizumab"]["il6_rise_log10"] * np.where(given, rise, 0.0)
    return log_v


def _temperature(ap: dict[str, Any], course: dict[str, np.ndarray], times: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """Daily maximum temperature (°C): fever from CRS onset, gone within hours of tocilizumab."""
    n = len(course["s"])
    b, f = ap["baseline"], ap["fever"]
    base = b["mean"] + b["sd"] * rng.standard_normal(n)
    amp = f["intercept"] + f["slope"] * np.maximum(course["s"] - f["from"], 0.0) + f["sd"] * rng.standard_normal(n)
    # grade >= 1 is defined by fever >= 38 °C; grade 0 stays below it
    amp = np.where(course["grade"] >= 1, np.maximum(amp, 38.2 - base), np.minimum(amp, 37.8 - base))
    start = (course["onset"] + ap["start_hours"])[:, None]
    peak = (course["onset"] + ap["peak_hours"])[:, None]
    daily_max = np.zeros(times.shape)
    for offset in ap["daily_max_offsets_hours"]:  # a handful of offsets, vectorised over patients × days
        t = times - offset
        fever = bump(t, start, peak, ap["decay_hours"]) * _after(t, course["toci_first"], ap["toci_defervescence_hours"])
        daily_max = np.maximum(daily_max, fever)
    return np.minimum(base[:, None] + np.maximum(amp, 0.0)[:, None] * daily_max, f["cap"])


def measured_mask(code: str, course: dict[str, np.ndarray], times: np.ndarray, rng: np.random.Generator,
                  sp: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(drawn?, resulted_hours) per patient × draw, from the site's panel, schedule and follow-up."""
    n, k = times.shape
    sites = sp["sites"]
    site = course["site"]
    missed = rng.random((n, k)) < sp["measurement"]["missed_draw_probability"]
    in_window = times <= course["followup"][:, None]
    resulted = np.full((n, k), np.nan)
    if code in sp["routine_analytes"]:
        return ~missed & in_window, resulted
    research = code in sp["research_analytes"]
    flag = "research_assays" if research else "cytokines"
    tat_key = "research_turnaround_hours" if research else "cytokine_turnaround_hours"

    site_idx = pd.Index(list(sites)).get_indexer(site)

    def per_site(key: str) -> np.ndarray:
        return np.array([sites[x][key] for x in sites])[site_idx]

    on_panel = per_site(flag).astype(bool)
    every = per_site("cytokine_every_days").astype(int)
    phase = rng.integers(0, 2, n)
    day = np.arange(k)[None, :]
    scheduled = ((day + phase[:, None]) % np.maximum(every, 1)[:, None]) == 0
    base_p = per_site("cytokine_baseline_probability") if not research else np.where(on_panel, 0.9, 0.0)
    scheduled[:, 0] = rng.random(n) < base_p
    drawn = on_panel[:, None] & scheduled & ~missed & in_window
    tat = per_site(tat_key).astype(float).reshape(n, 2)
    delay = tat[:, :1] + (tat[:, 1:] - tat[:, :1]) * rng.random((n, k))
    resulted = np.where(delay > 0, times + delay, np.nan)
    return drawn, resulted


def simulate_labs(rng: np.random.Generator, course: dict[str, np.ndarray], sp: dict[str, Any],
                  limits: pd.DataFrame) -> pd.DataFrame:
    """Canonical labs for the patients in `course`."""
    times = draw_times(rng, len(course["s"]), sp)
    m = sp["measurement"]
    frames = []
    for code, ap in sp["analytes"].items():
        log_v = true_log_values(code, ap, course, times, rng, sp)
        if code == "TEMP_MAX":
            value = log_v + m["temperature_sd"] * rng.standard_normal(times.shape)
        else:
            value = np.exp(log_v + m["assay_log_sd"] * rng.standard_normal(times.shape))
        censor = np.full(value.shape, "", dtype=object)
        lloq, uloq = limits.loc[code, "lloq"], limits.loc[code, "uloq"]
        if np.isfinite(lloq):
            low = value < lloq
            censor[low], value = "<", np.where(low, lloq, value)
        if np.isfinite(uloq):
            high = value > uloq
            censor[high], value = ">", np.where(high, uloq, value)
        drawn, resulted = measured_mask(code, course, times, rng, sp)
        keep = drawn.ravel()
        frames.append(pd.DataFrame({
            "patient_id": np.repeat(course["patient_id"], times.shape[1])[keep],
            "analyte": code,
            "hours_since_infusion": times.ravel()[keep].round(2),
            "value": value.ravel()[keep].round(4),
            "censor": censor.ravel()[keep],
            "resulted_hours": resulted.ravel()[keep].round(2),
        }))
    labs = pd.concat(frames, ignore_index=True)
    labs["source_row"] = np.arange(len(labs), dtype="int64")
    return labs
