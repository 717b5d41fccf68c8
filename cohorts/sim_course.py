"""Simulator, part 1: who the patient is and the course of their CRS (a mechanism, not label-then-noise).

A latent inflammation score ``s`` (therapy, tumour burden, chance) sets the maximum grade; onset,
grade transitions, guideline treatments and follow-up all follow from it. Vectorised over patients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from cohorts.errors import CohortError


def latent_distribution(any_crs: float, severe: float, thresholds: list[float]) -> tuple[float, float]:
    """(mu, sigma) of a normal whose exceedance of grade-1 and grade-3 thresholds matches the rates."""
    if not 0 < severe < any_crs < 1:
        raise CohortError(f"Simulator rates must satisfy 0 < severe < any_crs < 1; got {severe}, {any_crs}")
    z_any, z_sev = norm.ppf(1 - any_crs), norm.ppf(1 - severe)
    sigma = (thresholds[2] - thresholds[0]) / (z_sev - z_any)
    return thresholds[0] - sigma * z_any, sigma


def _gamma(rng: np.random.Generator, spec: dict[str, float], n: int) -> np.ndarray:
    return rng.gamma(spec["shape"], spec["scale"], n)


def _uniform(rng: np.random.Generator, bounds: list[float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def simulate_course(rng: np.random.Generator, n: int, first_index: int, therapy_mix: dict[str, float],
                    site_mix: dict[str, float], sp: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-patient arrays: demographics, latent score, true grade course, treatments, follow-up."""
    names = list(therapy_mix)
    unknown = [k for k in names if k not in sp["therapies"]]
    if unknown:
        raise CohortError(f"simulate.therapy_mix names therapies the simulator does not know: {unknown}; "
                          f"known: {sorted(sp['therapies'])}")
    weights = np.array([therapy_mix[k] for k in names], dtype=float)
    t_idx = rng.choice(len(names), size=n, p=weights / weights.sum())
    th = [sp["therapies"][k] for k in names]
    per = {key: np.array([t[key] for t in th])[t_idx] for key in
           ("disease", "onset_median_days", "duration_median_days", "age_mean")}
    site_names = list(site_mix)
    sw = np.array([site_mix[k] for k in site_names], dtype=float)
    site = np.array(site_names)[rng.choice(len(site_names), size=n, p=sw / sw.sum())]

    thresholds = sp["grade_thresholds"]
    mu_sigma = np.array([latent_distribution(t["any_crs"], t["severe"], thresholds) for t in th])
    mu, sigma = mu_sigma[t_idx, 0], mu_sigma[t_idx, 1]
    burden = rng.standard_normal(n)
    rho = sp["tumor_burden_correlation"]
    s = mu + sigma * (rho * burden + np.sqrt(1 - rho**2) * rng.standard_normal(n))
    grade = np.digitize(s, thresholds)  # true maximum ASTCT grade 0..5

    onset = np.clip(per["onset_median_days"] * 24.0 * np.exp(sp["onset_log_sd"] * rng.standard_normal(n)),
                    2.0, sp["onset_max_days"] * 24.0)
    lag = _gamma(rng, sp["severe_lag_hours"], n)
    t2 = onset + lag * _uniform(rng, sp["grade2_fraction_of_lag"], n)
    t3 = onset + lag
    t4 = t3 + _gamma(rng, sp["grade4_after_grade3_hours"], n)
    t5 = t4 + _gamma(rng, sp["death_after_grade4_hours"], n)
    duration = per["duration_median_days"] * 24.0 * np.exp(sp["duration_log_sd"] * rng.standard_normal(n))
    resolved = np.maximum(onset + duration, t3 + 24.0)
    transitions = np.stack([onset, t2, t3, t4, t5], axis=1)        # time grade k+1 is reached
    transitions[np.arange(5)[None, :] >= grade[:, None]] = np.nan  # grades never reached
    peak = np.where(grade >= 3, t3, onset + 0.5 * lag)

    up = sp["lee2014_upgrade_probability"]
    u = rng.random(n)
    lee_upgrade = ((grade == 1) & (u < up["from_grade_1"])) | ((grade == 2) & (u < up["from_grade_2"]))

    tx = sp["treatments"]
    toci_first = np.where(grade >= 2, t2, np.where((grade == 1) & (rng.random(n) < tx["tocilizumab"]["grade1_probability"]),
                                                   onset + 24.0, np.nan))
    toci_first = toci_first + _uniform(rng, tx["tocilizumab"]["delay_hours"], n)
    toci_second = np.where(grade >= 3, t3 + _uniform(rng, tx["tocilizumab"]["repeat_at_grade3_delay_hours"], n), np.nan)
    steroid = np.where(grade >= 3, t3 + _uniform(rng, tx["corticosteroids"]["delay_hours"], n), np.nan)
    vaso = np.where((grade >= 3) & (rng.random(n) < tx["vasopressors"]["probability_at_grade3"]), t3, np.nan)

    fu = sp["followup"]
    routine = 24.0 * _uniform(rng, fu["discharge_days_non_severe"], n)
    after_crs = resolved + 24.0 * _uniform(rng, fu["discharge_days_after_resolution"], n)
    discharge = np.where(grade >= 3, resolved + 24.0 * _uniform(rng, fu["discharge_days_after_resolution_severe"], n),
                         np.where(grade >= 1, np.maximum(routine, after_crs), routine))
    discharge = np.where(grade == 5, t5, discharge)  # death ends follow-up
    cut = np.where(rng.random(n) < fu["data_cut_probability"], rng.uniform(0, 14 * 24.0, n), np.inf)
    followup = np.minimum(np.minimum(discharge, cut), sp["measurement"]["max_days"] * 24.0)

    age = np.clip(rng.normal(per["age_mean"], sp["age_sd"], n), 18, 90).round(0)
    weight = np.clip(rng.normal(sp["weight_kg"]["mean"], sp["weight_kg"]["sd"], n), 35, 160).round(1)
    return {
        "patient_id": np.array([f"SIM-{i:07d}" for i in range(first_index, first_index + n)]),
        "therapy": np.array(names)[t_idx], "disease": per["disease"], "site": site,
        "age_years": age, "weight_kg": weight, "sex": np.where(rng.random(n) < 0.5, "F", "M"),
        "tumor_burden": burden.round(3), "s": s, "grade": grade, "lee_upgrade": lee_upgrade,
        "onset": onset, "peak": peak, "transitions": transitions, "resolved": resolved,
        "toci_first": toci_first, "toci_second": toci_second, "steroid": steroid, "vaso": vaso,
        "followup": followup,
    }


def observed_tables(course: dict[str, np.ndarray], sp: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(patients, events, grades) as recorded: nothing after the end of follow-up is seen."""
    n = len(course["patient_id"])
    fu = course["followup"]
    trans = course["transitions"]
    seen = trans <= fu[:, None]                       # NaN compares False
    levels = np.arange(1, 6)[None, :]
    max_astct = np.where(seen, levels, 0).max(axis=1) if n else np.zeros(0, int)
    lee_bonus = course["lee_upgrade"] & (max_astct == course["grade"]) & (max_astct >= 1)
    max_lee = max_astct + lee_bonus
    patients = pd.DataFrame({
        "patient_id": course["patient_id"], "therapy": course["therapy"], "disease": course["disease"],
        "age_years": course["age_years"], "weight_kg": course["weight_kg"], "sex": course["sex"],
        "tumor_burden": course["tumor_burden"], "site": course["site"],
        "crs_max_grade": max_astct.astype("float64"), "grading": "ASTCT",
        "crs_max_grade_lee2014": max_lee.astype("float64"),
        "crs_onset_hours": np.where(seen[:, 0], trans[:, 0], np.nan).round(1),
        "severe_onset_hours": np.where(seen[:, 2], trans[:, 2], np.nan).round(1),
        "followup_hours": fu.round(1),
    })
    # grade course: one row per transition seen, then resolution to grade 0
    pid = np.repeat(course["patient_id"], 5)
    t = trans.ravel()
    g = np.tile(np.arange(1, 6), n)
    keep = seen.ravel()
    lee = g + (np.repeat(course["lee_upgrade"], 5) & (g == np.repeat(course["grade"], 5)))
    res_seen = (course["grade"] >= 1) & (course["resolved"] <= fu) & (course["grade"] < 5)
    grades = pd.concat([
        pd.DataFrame({"patient_id": pid[keep], "hours_since_infusion": t[keep].round(1),
                      "grade_astct": g[keep], "grade_lee2014": lee[keep]}),
        pd.DataFrame({"patient_id": course["patient_id"][res_seen],
                      "hours_since_infusion": course["resolved"][res_seen].round(1),
                      "grade_astct": 0, "grade_lee2014": 0}),
    ], ignore_index=True).sort_values(["patient_id", "hours_since_infusion"], kind="mergesort")
    tx = sp["treatments"]
    toci_dose = np.minimum(np.where(course["weight_kg"] < 30, 12.0, tx["tocilizumab"]["dose_mg_per_kg"])
                           * course["weight_kg"], tx["tocilizumab"]["max_dose_mg"]).round(0)
    parts = []
    for name, times, dose in (("tocilizumab", course["toci_first"], toci_dose),
                              ("tocilizumab", course["toci_second"], toci_dose),
                              ("corticosteroids", course["steroid"], np.full(n, float(tx["corticosteroids"]["dose_mg"]))),
                              ("vasopressors", course["vaso"], np.full(n, np.nan))):
        given = times <= fu
        parts.append(pd.DataFrame({"patient_id": course["patient_id"][given], "event": name,
                                   "hours_since_infusion": times[given].round(1), "dose": dose[given],
                                   "dose_unit": "mg" if name != "vasopressors" else ""}))
    events = pd.concat(parts, ignore_index=True).sort_values(["patient_id", "hours_since_infusion"], kind="mergesort")
    return patients, events.reset_index(drop=True), grades.reset_index(drop=True)
