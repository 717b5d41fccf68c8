"""Simulator, part 1: who the patient is, their biology, and the clinical course that follows it.

Host factors per patient (tumour burden, T-cell activation, endothelial susceptibility and a
clinical factor no laboratory value sees) set the severity latent, hence the maximum grade;
activation alone sets the cytokine cascade (:mod:`cohorts.sim_labs`), so grade is not a
threshold of any laboratory latent. Timing: activation starts, the cascade rises, and the clinic
follows with a patient-specific lag; stronger activation starts earlier and progresses faster.
Confounders (infection, HLH-like toxicity, prophylactic steroids) and treatments that avert
progression complete the course. Every draw comes from the ``biology`` stream of
:class:`cohorts.sim_random.PatientRandom`: nothing here depends on how the patient is measured.
Vectorised over patients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import norm

from cohorts.errors import CohortError
from cohorts.sim_random import PatientRandom
from cohorts.sim_world import World

# Columns of the per-patient uniform and normal draws, in a fixed order (part of the seed layout).
U_COLS = ("therapy", "world", "sex", "lee", "vaso", "toci_avert", "proph_given", "proph_avert", "toci_g1",
          "toci_delay", "toci_repeat", "steroid_delay", "g2frac", "infection", "hlh", "data_cut",
          "data_cut_time", "discharge_routine", "discharge_after")
Z_COLS = ("burden", "activation", "endothelium", "clinical", "onset", "lead", "rise", "lag3", "lag4", "lag5",
          "duration", "age", "weight", "temp_base", "fever", "infection_time", "infection_severity",
          "amp_common")


def latent_distribution(any_crs: float, severe: float, thresholds: list[float]) -> tuple[float, float]:
    """(mu, sigma) of a normal whose exceedance of grade-1 and grade-3 thresholds matches the rates."""
    if not 0 < severe < any_crs < 1:
        raise CohortError(f"Simulator rates must satisfy 0 < severe < any_crs < 1; got {severe}, {any_crs}")
    z_any, z_sev = norm.ppf(1 - any_crs), norm.ppf(1 - severe)
    sigma = (thresholds[2] - thresholds[0]) / (z_sev - z_any)
    return thresholds[0] - sigma * z_any, sigma


def conditional_median(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Median of X = r Z + sqrt(1 - r²) η given Z > c (Z, η independent standard normals), element-wise.

    Bisection on P(X <= m | Z > c), integrated over Z on a fine grid (trapezoid, 4,001 points to c + 9).
    """
    r, c = np.atleast_1d(np.asarray(r, float)), np.atleast_1d(np.asarray(c, float))
    s = np.sqrt(1.0 - r * r)
    z = c[:, None] + np.linspace(0.0, 9.0, 4001)[None, :]
    wz = ndtr_pdf(z)
    norm_ = np.trapezoid(wz, z, axis=1)
    lo, hi = np.full(r.shape, -8.0), np.full(r.shape, 8.0)
    for _ in range(50):
        m = 0.5 * (lo + hi)
        cdf = np.trapezoid(wz * ndtr((m[:, None] - r[:, None] * z) / s[:, None]), z, axis=1) / norm_
        below = cdf < 0.5
        lo, hi = np.where(below, m, lo), np.where(below, hi, m)
    return 0.5 * (lo + hi)


def ndtr_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def therapy_params(key: str, sp: dict[str, Any]) -> dict[str, Any]:
    t = dict(sp["therapies"][key])
    t.setdefault("therapy", key)
    return t


def prevention_factor(key: str, therapy: str, wp: dict[str, Any]) -> tuple[float, float]:
    """(share given prophylactic steroids, factor observed severe / untreated severe) for a product."""
    tx = wp["treatments"]
    proph = tx["prophylactic_steroids"]
    share = float(proph["share"].get(key, proph["share"].get(therapy, 0.0)))
    keep = (1.0 - tx["tocilizumab"]["averts_progression"]) * (1.0 - share * proph["averts_progression"])
    return share, keep


def calibration(keys: list[str], worlds: list[World]) -> dict[str, np.ndarray]:
    """Per (product, world): latent mu, sigma, onset median shift and prophylaxis share."""
    k, w = len(keys), len(worlds)
    out = {name: np.zeros((k, w)) for name in ("mu", "sigma", "r", "proph", "c1", "onset_h", "dur_h")}
    for j, world in enumerate(worlds):
        wp = world.params
        thresholds = wp["latent"]["grade_thresholds"]
        r = -wp["timing"]["onset_activation_correlation"] * np.sqrt(wp["latent"]["activation_share"])
        for i, key in enumerate(keys):
            t = therapy_params(key, wp)
            share, keep = prevention_factor(key, t["therapy"], wp)
            severe_untreated = t["severe"] / keep
            if severe_untreated >= t["any_crs"] - 0.01:
                raise CohortError(f"simulator world {world.id}: {key} needs an untreated grade >=3 rate "
                                  f"{severe_untreated:.3f} >= any-CRS rate {t['any_crs']}; narrow the "
                                  "treatment-effect ranges in simulator.yaml")
            mu, sigma = latent_distribution(t["any_crs"], severe_untreated, thresholds)
            c1 = (thresholds[0] - mu) / sigma
            out["mu"][i, j], out["sigma"][i, j], out["c1"][i, j] = mu, sigma, c1
            out["r"][i, j] = r
            out["proph"][i, j] = share
            out["onset_h"][i, j] = 24.0 * t["onset_median_days"]
            out["dur_h"][i, j] = 24.0 * t["duration_median_days"]
    out["m_x"] = conditional_median(out["r"].ravel(), out["c1"].ravel()).reshape(k, w)
    return out


class WorldTable:
    """Per-patient values of world parameters: ``get(fn)`` applies fn to each world's params."""

    def __init__(self, worlds: list[World], w_idx: np.ndarray) -> None:
        self.worlds, self.w_idx = worlds, w_idx

    def get(self, fn) -> np.ndarray:
        return np.asarray([fn(w.params) for w in self.worlds], dtype=float)[self.w_idx]


def _lognormal(median: np.ndarray, log_sd: np.ndarray, z: np.ndarray) -> np.ndarray:
    return median * np.exp(log_sd * z)


def _between(u: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Uniform in per-patient [lo, hi] (bounds shape (n, 2))."""
    return bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])


def simulate_course(first: int, n: int, seed: int, therapy_mix: dict[str, float], worlds: list[World],
                    cal: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-patient arrays: who, host factors, activation timing, true grade course, treatments, follow-up."""
    sp = worlds[0].params
    keys = list(therapy_mix)
    unknown = [k for k in keys if k not in sp["therapies"]]
    if unknown:
        raise CohortError(f"simulate.therapy_mix names therapies the simulator does not know: {unknown}; "
                          f"known: {sorted(sp['therapies'])}")
    rb = PatientRandom(seed, "biology", first, n)
    U = dict(zip(U_COLS, rb.uniform(len(U_COLS)).T, strict=True))
    Z = dict(zip(Z_COLS, rb.normal(len(Z_COLS)).T, strict=True))

    weights = np.array([therapy_mix[k] for k in keys], dtype=float)
    t_idx = np.minimum(np.searchsorted(np.cumsum(weights / weights.sum()), U["therapy"], side="right"), len(keys) - 1)
    w_idx = np.minimum((U["world"] * len(worlds)).astype(int), len(worlds) - 1)  # worlds equally likely
    W = WorldTable(worlds, w_idx)
    cal = cal if cal is not None else calibration(keys, worlds)

    def per(name: str) -> np.ndarray:
        return cal[name][t_idx, w_idx]

    th = [therapy_params(k, sp) for k in keys]
    therapy = np.array([t["therapy"] for t in th], dtype=object)[t_idx]
    disease = np.array([t["disease"] for t in th], dtype=object)[t_idx]
    population = np.array([t["population"] for t in th], dtype=object)[t_idx]
    continuous = np.array([bool(t.get("continuous_infusion", False)) for t in th])[t_idx]

    # ---- host factors and the severity latent
    a_share = W.get(lambda p: p["latent"]["activation_share"])
    e_share = W.get(lambda p: p["latent"]["endothelium_share"])
    rho_b = W.get(lambda p: p["latent"]["burden_activation_correlation"])
    burden = Z["burden"]
    z_act = rho_b * burden + np.sqrt(1 - rho_b**2) * Z["activation"]
    z_endo = Z["endothelium"]
    z_s = np.sqrt(a_share) * z_act + np.sqrt(e_share) * z_endo + np.sqrt(1 - a_share - e_share) * Z["clinical"]
    mu, sigma = per("mu"), per("sigma")
    s = mu + sigma * z_s
    # activation on the grade scale drives the cytokine cascade; responses saturate above the cap
    activation = np.minimum(mu + sigma * z_act, W.get(lambda p: p["latent"]["activation_cap"]))
    thresholds = np.asarray(sp["latent"]["grade_thresholds"])
    grade_untreated = np.digitize(s, thresholds)

    # ---- prophylaxis and treatments that avert progression (rates above are observed under them)
    proph = U["proph_given"] < per("proph")
    would_be_severe = grade_untreated >= 3
    averted = would_be_severe & (
        (U["toci_avert"] < W.get(lambda p: p["treatments"]["tocilizumab"]["averts_progression"]))
        | (proph & (U["proph_avert"] < W.get(lambda p: p["treatments"]["prophylactic_steroids"]["averts_progression"]))))
    grade = np.where(averted, 2, grade_untreated)

    # ---- timing: onset matched to the product median among CRS patients; activation earlier
    tm = lambda f: W.get(lambda p: f(p["timing"]))  # noqa: E731
    r_on = -tm(lambda t: t["onset_activation_correlation"])
    x = r_on * z_act + np.sqrt(1 - r_on**2) * Z["onset"]  # related to the severity latent through activation only
    lo_on, hi_on = sp["timing"]["onset_limits_hours"]
    onset = np.clip(per("onset_h") * np.exp(tm(lambda t: t["onset_log_sd"]) * (x - per("m_x"))), lo_on, hi_on)
    lead = _lognormal(tm(lambda t: t["lead_hours"]["median"]), tm(lambda t: t["lead_hours"]["log_sd"]), Z["lead"])
    act_start = np.maximum(onset - lead, 0.0)
    cont_factor = np.where(continuous, tm(lambda t: t["continuous_infusion_rise_factor"]), 1.0)
    rise = cont_factor * tm(lambda t: t["rise_hours"]["median"]) * np.exp(
        tm(lambda t: t["rise_hours"]["log_sd"]) * Z["rise"] - tm(lambda t: t["rise_hours"]["activation_effect"]) * z_act)
    lag3 = tm(lambda t: t["grade3_after_onset_hours"]["median"]) * np.exp(
        tm(lambda t: t["grade3_after_onset_hours"]["log_sd"]) * Z["lag3"]
        - tm(lambda t: t["grade3_after_onset_hours"]["activation_effect"]) * z_act)
    g2 = np.stack([tm(lambda t: t["grade2_fraction_of_lag"][0]), tm(lambda t: t["grade2_fraction_of_lag"][1])], axis=1)
    frac = _between(U["g2frac"], g2)
    t2 = onset + frac * lag3
    t3 = onset + lag3
    t4 = t3 + _lognormal(tm(lambda t: t["grade4_after_grade3_hours"]["median"]),
                         tm(lambda t: t["grade4_after_grade3_hours"]["log_sd"]), Z["lag4"])
    t5 = t4 + _lognormal(tm(lambda t: t["death_after_grade4_hours"]["median"]),
                         tm(lambda t: t["death_after_grade4_hours"]["log_sd"]), Z["lag5"])
    duration = per("dur_h") * np.exp(tm(lambda t: t["duration_log_sd"]) * Z["duration"])
    transitions = np.stack([onset, t2, t3, t4, t5], axis=1)        # time grade k+1 is reached
    transitions[np.arange(5)[None, :] >= grade[:, None]] = np.nan  # grades never reached
    last = np.nanmax(np.where(np.isnan(transitions), -np.inf, transitions), axis=1)
    resolved = np.where(grade >= 1, np.maximum(onset + duration, last + 24.0), np.nan)

    up = W.get(lambda p: p["lee2014_upgrade_probability"]["from_grade_1"])
    up2 = W.get(lambda p: p["lee2014_upgrade_probability"]["from_grade_2"])
    lee_upgrade = ((grade == 1) & (U["lee"] < up)) | ((grade == 2) & (U["lee"] < up2))

    # ---- treatments (guideline-like); tocilizumab at grade 2 comes before a would-be grade 3
    tx = lambda f: W.get(lambda p: f(p["treatments"]))  # noqa: E731
    delay = _between(U["toci_delay"], np.stack([tx(lambda t: t["tocilizumab"]["delay_hours"][0]),
                                                tx(lambda t: t["tocilizumab"]["delay_hours"][1])], axis=1))
    delay = np.minimum(delay, 0.5 * (t3 - t2))
    g1_toci = (grade == 1) & (U["toci_g1"] < tx(lambda t: t["tocilizumab"]["grade1_probability"]))
    g1_time = onset + tx(lambda t: t["tocilizumab"]["grade1_delay_hours"])
    toci_first = np.where(grade >= 2, t2 + delay, np.where(g1_toci & (g1_time < resolved), g1_time, np.nan))
    rep = np.stack([tx(lambda t: t["tocilizumab"]["repeat_at_grade3_delay_hours"][0]),
                    tx(lambda t: t["tocilizumab"]["repeat_at_grade3_delay_hours"][1])], axis=1)
    toci_second = np.where(grade >= 3, t3 + _between(U["toci_repeat"], rep), np.nan)
    sd_b = np.stack([tx(lambda t: t["corticosteroids"]["delay_hours"][0]),
                     tx(lambda t: t["corticosteroids"]["delay_hours"][1])], axis=1)
    steroid = np.where(grade >= 3, t3 + _between(U["steroid_delay"], sd_b), np.nan)
    vaso = np.where((grade >= 3) & (U["vaso"] < tx(lambda t: t["vasopressors"]["probability_at_grade3"])), t3, np.nan)
    proph_time = np.where(proph, float(sp["treatments"]["prophylactic_steroids"]["hours"]), np.nan)

    # ---- confounders
    cf = lambda f: W.get(lambda p: f(p["confounders"]))  # noqa: E731
    infected = U["infection"] < cf(lambda c: c["infection"]["probability"])
    inf_time = np.clip(cf(lambda c: c["infection"]["onset_median_hours"]) * np.exp(
        cf(lambda c: c["infection"]["onset_log_sd"]) * Z["infection_time"]), 12.0, 20 * 24.0)
    infection_onset = np.where(infected, inf_time, np.nan)
    infection_severity = np.exp(cf(lambda c: c["infection"]["severity_log_sd"]) * Z["infection_severity"])
    p_hlh = np.where(would_be_severe, cf(lambda c: c["hlh_like"]["probability_severe"]),
                     np.where(grade >= 1, cf(lambda c: c["hlh_like"]["probability_crs"]), 0.0))
    hlh = U["hlh"] < p_hlh

    # ---- follow-up (discharge, death, early data cut)
    fu = lambda f: W.get(lambda p: f(p["followup"]))  # noqa: E731
    pair = lambda f: np.stack([fu(lambda q: f(q)[0]), fu(lambda q: f(q)[1])], axis=1)  # noqa: E731
    routine = 24.0 * _between(U["discharge_routine"], pair(lambda q: q["discharge_days_non_severe"]))
    after = np.where((grade >= 3)[:, None], pair(lambda q: q["discharge_days_after_resolution_severe"]),
                     pair(lambda q: q["discharge_days_after_resolution"]))
    discharge = np.where(grade >= 1, np.maximum(routine, resolved + 24.0 * _between(U["discharge_after"], after)),
                         routine)
    discharge = np.where(grade == 5, t5, discharge)  # death ends follow-up
    cut = np.where(U["data_cut"] < fu(lambda q: q["data_cut_probability"]), U["data_cut_time"] * 14 * 24.0, np.inf)
    followup = np.minimum(np.minimum(discharge, cut), sp["measurement"]["max_days"] * 24.0)

    # ---- who: age and weight by population
    adult = population == "adult"
    pop = lambda f: np.where(adult, W.get(lambda p: f(p["populations"]["adult"])),  # noqa: E731
                             W.get(lambda p: f(p["populations"]["child"])))
    lim = np.where(adult[:, None], sp["populations"]["adult"]["age_limits"], sp["populations"]["child"]["age_limits"])
    age = np.clip(pop(lambda q: q["age_mean"]) + pop(lambda q: q["age_sd"]) * Z["age"], lim[:, 0], lim[:, 1]).round(0)
    adult_w = W.get(lambda p: p["populations"]["adult"]["weight_mean_kg"]) + \
        W.get(lambda p: p["populations"]["adult"]["weight_sd_kg"]) * Z["weight"]
    child_mean = np.minimum(4.0 + W.get(lambda p: p["populations"]["child"]["weight_per_year_kg"]) * age,
                            W.get(lambda p: p["populations"]["adult"]["weight_mean_kg"]))
    child_w = child_mean * (1 + W.get(lambda p: p["populations"]["child"]["weight_sd_fraction"]) * Z["weight"])
    weight = np.clip(np.where(adult, adult_w, child_w), 8.0, 160.0).round(1)

    index = np.arange(first, first + n)
    return {
        "patient_id": np.array([f"SIM-{seed}-{i:07d}" for i in index], dtype=object),
        "index": index, "indication": np.array(keys, dtype=object)[t_idx], "therapy": therapy,
        "disease": disease, "population": population, "continuous": continuous,
        "world_index": w_idx, "world": np.array([w.id for w in worlds], dtype=object)[w_idx],
        "world_kind": np.array([w.kind for w in worlds], dtype=object)[w_idx],
        "age_years": age, "weight_kg": weight, "sex": np.where(U["sex"] < 0.5, "F", "M"),
        "tumor_burden": burden, "z_act": z_act, "z_endo": z_endo, "activation": activation, "s": s,
        "grade_untreated": grade_untreated, "grade": grade, "averted": averted, "lee_upgrade": lee_upgrade,
        "onset": onset, "act_start": act_start, "rise": rise, "transitions": transitions, "resolved": resolved,
        "toci_first": toci_first, "toci_second": toci_second, "steroid": steroid, "vaso": vaso,
        "prophylaxis": proph_time, "infection_onset": infection_onset, "infection_severity": infection_severity,
        "hlh": hlh, "followup": followup, "normals": Z, "rb": rb, "W": W,
    }


def grade_at(course: dict[str, Any], times: np.ndarray) -> np.ndarray:
    """True ASTCT grade at each time (patients × times)."""
    trans = course["transitions"]
    reached = (trans[:, None, :] <= times[:, :, None]).sum(axis=2)  # NaN compares False
    return np.where(times < course["resolved"][:, None], reached, 0)


def observed_tables(course: dict[str, Any], sp: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(patients, events, grades) as recorded: nothing after the end of follow-up is seen."""
    n = len(course["patient_id"])
    fu = course["followup"]
    trans = course["transitions"]
    seen = trans <= fu[:, None]                       # NaN compares False
    levels = np.arange(1, 6)[None, :]
    max_astct = np.where(seen, levels, 0).max(axis=1) if n else np.zeros(0, int)
    lee_bonus = course["lee_upgrade"] & (max_astct == course["grade"]) & (max_astct >= 1)
    max_lee = max_astct + lee_bonus
    inf = course["infection_onset"]
    patients = pd.DataFrame({
        "patient_id": course["patient_id"], "therapy": course["therapy"], "disease": course["disease"],
        "age_years": course["age_years"], "weight_kg": course["weight_kg"], "sex": course["sex"],
        "tumor_burden": course["tumor_burden"].round(3), "site": course["site"],
        "crs_max_grade": max_astct.astype("float64"), "grading": "ASTCT",
        "crs_max_grade_lee2014": max_lee.astype("float64"),
        "crs_onset_hours": np.where(seen[:, 0], trans[:, 0], np.nan).round(1),
        "severe_onset_hours": np.where(seen[:, 2], trans[:, 2], np.nan).round(1),
        "followup_hours": fu.round(1),
        "indication": course["indication"], "world": course["world"], "world_kind": course["world_kind"],
        "infection_onset_hours": np.where(inf <= fu, inf, np.nan).round(1),
        "hlh_like": course["hlh"] & (course["onset"] <= fu) & (course["grade"] >= 1),
        "prophylactic_steroids": np.isfinite(course["prophylaxis"]),
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
    events = treatment_events(course, sp)
    return patients, events, grades.reset_index(drop=True)


def treatment_events(course: dict[str, Any], sp: dict[str, Any]) -> pd.DataFrame:
    """Tocilizumab, corticosteroids (prophylactic and therapeutic) and vasopressors, within follow-up."""
    n = len(course["patient_id"])
    fu = course["followup"]
    tx = sp["treatments"]
    toc = tx["tocilizumab"]
    w = course["weight_kg"]
    toci_dose = np.minimum(np.where(w < toc["child_weight_kg"], toc["child_dose_mg_per_kg"], toc["dose_mg_per_kg"]) * w,
                           toc["max_dose_mg"]).round(0)
    pd_dose = tx["prophylactic_steroids"]["dose_mg"]
    proph_dose = np.where(course["indication"] == "blinatumomab", float(pd_dose["blinatumomab"]),
                          float(pd_dose["default"]))
    parts = []
    for name, times, dose in (("corticosteroids", course["prophylaxis"], proph_dose),
                              ("tocilizumab", course["toci_first"], toci_dose),
                              ("tocilizumab", course["toci_second"], toci_dose),
                              ("corticosteroids", course["steroid"], np.full(n, float(tx["corticosteroids"]["dose_mg"]))),
                              ("vasopressors", course["vaso"], np.full(n, np.nan))):
        given = times <= fu
        parts.append(pd.DataFrame({"patient_id": course["patient_id"][given], "event": name,
                                   "hours_since_infusion": times[given].round(1), "dose": dose[given],
                                   "dose_unit": "mg" if name != "vasopressors" else ""}))
    events = pd.concat(parts, ignore_index=True).sort_values(["patient_id", "hours_since_infusion"], kind="mergesort")
    return events.reset_index(drop=True)
