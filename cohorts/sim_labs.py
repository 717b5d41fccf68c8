"""Simulator, part 2: analyte kinetics (biology) and how a programme measures them.

Biology: each analyte follows the activation cascade of :mod:`cohorts.sim_course` (IFN-γ first,
IL-6 and IL-10, CRP about a day later, ferritin slowly, Ang-2 with endothelial activation), with
a per-patient peak-time jitter, treatment effects, infection and HLH-like confounders, and
autocorrelated log-scale day-to-day variability correlated across analytes. The biological
values are a function of the ``biology`` stream only.

Measurement (``measurement`` stream): morning draws (lymphodepletion, pre-infusion, daily), the
site profile's panels, cytokines ordered more when the patient is febrile or sick (missing not at
random), turnaround, the site world's assay-platform offset, analytical noise and assay limits.

Vectorised over patients × draws; the loops are over the dozen analytes and the day grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cohorts.sim_course import grade_at
from cohorts.sim_random import PatientRandom
from cohorts.sim_world import World

LN10 = np.log(10.0)
GRID_DAYS = (-8, 22)  # biological day grid of the within-patient variability (fixed: part of the seed layout)
DAILY_MAX_OFFSETS = (0.0, 6.0, 12.0, 18.0)  # hours before a draw whose maximum is the recorded daily maximum


def bump(t: np.ndarray, start: np.ndarray, peak: np.ndarray, decay: np.ndarray | float,
         plateau: np.ndarray | float = 0.0) -> np.ndarray:
    """0 before start, smooth rise to 1 at peak, exponential decay (towards `plateau`) after."""
    width = np.maximum(peak - start, 1.0)
    x = np.clip((t - start) / width, 0.0, 1.0)
    rise = x * x * (3 - 2 * x)  # smoothstep
    fall = plateau + (1 - plateau) * np.exp(-np.maximum(t - peak, 0.0) / decay)
    return np.where(t <= peak, rise, fall)


def _after(t: np.ndarray, when: np.ndarray, efold: np.ndarray | float) -> np.ndarray:
    """Multiplier 1 before `when` (or if never), decaying with e-folding time `efold` after it."""
    w = when[:, None]
    return np.where(np.isfinite(w) & (t > w), np.exp(-(t - np.nan_to_num(w)) / efold), 1.0)


def _col(x: np.ndarray | float) -> np.ndarray | float:
    return x[:, None] if isinstance(x, np.ndarray) else x


# ----------------------------------------------------------------------------- who measures

def assign_sites(rm: PatientRandom, site_mix: dict[str, float]) -> np.ndarray:
    names = list(site_mix)
    w = np.array([site_mix[k] for k in names], dtype=float)
    idx = np.minimum(np.searchsorted(np.cumsum(w / w.sum()), rm.uniform(), side="right"), len(names) - 1)
    return np.array(names, dtype=object)[idx]


def draw_times(rm: PatientRandom, course: dict[str, Any], sp: dict[str, Any]) -> np.ndarray:
    """patients × (lymphodepletion, pre-infusion, day 1..max_days) morning draw times (hours since infusion)."""
    m = sp["measurement"]
    W = course["W"]
    n = len(course["index"])
    lo = W.get(lambda p: p["measurement"]["infusion_hour_of_day"][0])
    hi = W.get(lambda p: p["measurement"]["infusion_hour_of_day"][1])
    infusion_hour = lo + rm.uniform() * (hi - lo)
    offset = infusion_hour - m["morning_draw_hour"]           # hours from the morning draw to infusion
    jitter = W.get(lambda p: p["measurement"]["draw_jitter_hours"])[:, None] * (2 * rm.uniform(m["max_days"] + 2) - 1)
    ld_day = np.round(W.get(lambda p: p["measurement"]["lymphodepletion_day"]))
    days = np.concatenate([ld_day[:, None], np.zeros((n, 1)), np.tile(np.arange(1, m["max_days"] + 1), (n, 1))], axis=1)
    t = 24.0 * days - offset[:, None] + jitter
    t[:, :2] = np.minimum(t[:, :2], -0.5)                     # pre-infusion draws stay before infusion
    return t


# ----------------------------------------------------------------------------- biology

class Variability:
    """Autocorrelated log-scale day-to-day variability: a common factor and one per analyte."""

    def __init__(self, course: dict[str, Any]) -> None:
        W = course["W"]
        self.rb: PatientRandom = course["rb"]
        self.phi = np.exp(-24.0 / W.get(lambda p: p["variability"]["autocorrelation_hours"]))
        self.share = W.get(lambda p: p["variability"]["cross_analyte_share"])
        self.grid = 24.0 * np.arange(GRID_DAYS[0], GRID_DAYS[1] + 1)
        self.common = self._ar(self.rb.normal(len(self.grid)))

    def _ar(self, e: np.ndarray) -> np.ndarray:
        """Stationary unit-variance AR(1) along the grid: y_k = phi y_(k-1) + sqrt(1 - phi²) e_k, y_0 = e_0."""
        z = np.ascontiguousarray(e.T)                  # grid points as contiguous rows
        c = np.sqrt(1 - self.phi**2)
        for k in range(1, z.shape[0]):
            z[k] = self.phi * z[k - 1] + c * z[k]
        return z.T

    def at(self, times: np.ndarray) -> np.ndarray:
        """Unit-variance noise at `times` for the next analyte (draws its own factor)."""
        own = self._ar(self.rb.normal(len(self.grid)))
        g = np.sqrt(self.share)[:, None] * self.common + np.sqrt(1 - self.share)[:, None] * own
        pos = np.clip((times - self.grid[0]) / 24.0, 0, len(self.grid) - 1.000001)
        i = pos.astype(int)
        w = pos - i
        return (1 - w) * np.take_along_axis(g, i, axis=1) + w * np.take_along_axis(g, i + 1, axis=1)


def _analyte_params(W, code: str):
    return lambda f: W.get(lambda p: f(p["analytes"][code]))


def baseline_median(code: str, course: dict[str, Any], sp: dict[str, Any]) -> np.ndarray:
    """Population/disease median of the baseline (no patient-specific factor)."""
    W = course["W"]
    log_shift = np.zeros(len(course["index"]))
    for disease in sp["diseases"]:
        shift = W.get(lambda p, d=disease: p["diseases"][d].get(code, 0.0))
        log_shift = np.where(course["disease"] == disease, shift, log_shift)
    if code == "CREAT":
        child = W.get(lambda p: np.log(p["populations"]["child"]["creatinine_factor"]))
        log_shift = log_shift + np.where(course["population"] == "child", child, 0.0)
    return sp["analytes"][code]["baseline"]["median"] * np.exp(log_shift)


def burden_multiplier(course: dict[str, Any], sp: dict[str, Any]) -> np.ndarray:
    """Per patient: how strongly tumour burden shows in the baselines of the patient's disease."""
    W = course["W"]
    out = np.ones(len(course["index"]))
    for disease, shifts in sp["diseases"].items():
        if "burden_multiplier" in shifts:
            out = np.where(course["disease"] == disease, W.get(lambda p, d=disease: p["diseases"][d]["burden_multiplier"]), out)
    return out


def true_values(code: str, course: dict[str, Any], times: np.ndarray, var: Variability,
                sp: dict[str, Any]) -> np.ndarray:
    """Biological value (canonical unit; °C for temperature) at each draw time, before measurement."""
    rb: PatientRandom = course["rb"]
    eps = rb.normal(7)  # baseline, own peak deviation, peak jitter, pre-infusion (additive world) x3, LD change
    noise = var.at(times)
    if code == "TEMP_MAX":
        return _temperature(course, times, noise, eps, sp)
    W = course["W"]
    A = _analyte_params(W, code)
    ap = sp["analytes"][code]
    median = baseline_median(code, course, sp)
    log_base = (np.log(median) + A(lambda a: a["baseline"]["log_sd"]) * eps[:, 0]
                + A(lambda a: a["baseline"].get("burden_effect", 0.0)) * course["tumor_burden"] * burden_multiplier(course, sp)
                + A(lambda a: a["baseline"].get("endothelium_effect", 0.0)) * course["z_endo"])
    pf = lambda f: A(lambda a: f(a["peak_log10_fold"]))  # noqa: E731
    direction = float(ap["peak_log10_fold"].get("direction", 1))
    rho = W.get(lambda p: p["analyte_correlation"])
    dev = np.sqrt(rho) * course["normals"]["amp_common"] + np.sqrt(1 - rho) * eps[:, 1]
    peak_fold = (pf(lambda q: q["intercept"]) + pf(lambda q: q["slope"]) * np.maximum(course["activation"] - pf(lambda q: q["from"]), 0.0)
                 + pf(lambda q: q["sd"]) * dev + pf(lambda q: q.get("endothelium_slope", 0.0)) * course["z_endo"])
    proph = np.isfinite(course["prophylaxis"])
    if code in (*sp["cytokine_analytes"], "CRP", "FERRITIN", "ANG2"):
        peak_fold = peak_fold - np.where(proph, W.get(lambda p: p["treatments"]["prophylactic_steroids"]["drive_reduction_log10"]), 0.0)
    peak_fold = direction * np.maximum(peak_fold, 0.0)

    start = course["act_start"] + A(lambda a: a["start_hours"])
    peak = (course["act_start"] + A(lambda a: a["peak_fraction"]) * course["rise"] + A(lambda a: a["peak_after_hours"])
            + A(lambda a: a["peak_jitter_hours"]) * eps[:, 2])
    peak = np.maximum(peak, start + 1.0)
    plateau = np.where(course["continuous"], W.get(lambda p: p["timing"]["continuous_infusion_plateau"]), 0.0)
    drive = peak_fold[:, None] * bump(times, start[:, None], peak[:, None], _col(A(lambda a: a["decay_hours"])), _col(plateau))
    tx = lambda f: W.get(lambda p: f(p["treatments"]))  # noqa: E731
    if code == "CRP":  # hepatic CRP synthesis needs IL-6 signalling: it falls after tocilizumab
        effect = np.maximum(course["toci_first"] + tx(lambda t: t["tocilizumab"]["crp_response_delay_hours"]),
                            peak - tx(lambda t: t["tocilizumab"]["crp_peak_margin_hours"]))
        drive = drive * _after(times, effect, _col(tx(lambda t: t["tocilizumab"]["crp_decay_hours"])))
    if code in sp["cytokine_analytes"]:
        drive = drive * _after(times, course["steroid"], _col(tx(lambda t: t["corticosteroids"]["cytokine_decay_hours"])))
    drive = drive + _confounders(code, course, times)
    if code == "IL6":  # receptor blockade: serum IL-6 rises after tocilizumab (not worsening)
        t0 = course["toci_first"]
        given = np.isfinite(t0)[:, None]
        t0 = np.nan_to_num(t0)
        rise = bump(times, t0[:, None], (t0 + tx(lambda t: t["tocilizumab"]["il6_rise_hours"]))[:, None],
                    _col(tx(lambda t: t["tocilizumab"]["il6_rise_decay_hours"])))
        drive = drive + _col(tx(lambda t: t["tocilizumab"]["il6_rise_log10"])) * np.where(given, rise, 0.0)
    if "lymphodepletion_log_change" in ap:  # chemotherapy changes the value from LD to infusion, patient-specifically
        change = A(lambda a: a["lymphodepletion_log_change"]["mean"]) + A(lambda a: a["lymphodepletion_log_change"]["sd"]) * eps[:, 6]
        t_ld = 24.0 * W.get(lambda p: p["measurement"]["lymphodepletion_day"])
        ramp = np.clip((times - t_ld[:, None]) / -t_ld[:, None], 0.0, 1.0)
        recovery = ap["lymphodepletion_log_change"].get("recovery_hours")
        if recovery is not None:
            ramp = ramp * np.exp(-np.maximum(times, 0.0) / _col(A(lambda a: a["lymphodepletion_log_change"]["recovery_hours"])))
        drive = drive + change[:, None] * ramp / LN10
    within_sd = _col(A(lambda a: a["within_sd"]))
    within = within_sd * noise
    value = np.exp(log_base[:, None] + LN10 * drive + within)
    additive = course["world_kind"] == "additive"
    if additive.any():
        alt = _additive(times, median, log_base, drive, direction, within, eps, within_sd,
                        A(lambda a: a["baseline"]["log_sd"]))
        value = np.where(additive[:, None], alt, value)
    return value


def _additive(times: np.ndarray, median: np.ndarray, log_base: np.ndarray, drive: np.ndarray,
              direction: float, within: np.ndarray, eps: np.ndarray, within_sd, base_sd: np.ndarray) -> np.ndarray:
    """Additive world: pre-infusion values are independent of everything after; production adds absolutely."""
    setpoint = np.exp(log_base)[:, None]
    if direction > 0:
        post = setpoint + median[:, None] * np.maximum(np.power(10.0, drive) - 1.0, -0.99)
    else:
        post = setpoint * np.power(10.0, drive)
    post = post * np.exp(within)
    pre_noise = within_sd * eps[:, 3:5]                        # independent draws at the two pre-infusion times
    pre = (median * np.exp(base_sd * eps[:, 5]))[:, None] * np.exp(pre_noise)
    out = post.copy()
    out[:, :2] = np.where(times[:, :2] < 0, pre, post[:, :2])
    return out


def _confounders(code: str, course: dict[str, Any], times: np.ndarray) -> np.ndarray:
    """log10 drive from infection (fever, CRP, IL-6, ferritin rise without CRS) and the HLH-like ferritin tail."""
    W = course["W"]
    cf = lambda f: W.get(lambda p: f(p["confounders"]))  # noqa: E731
    out = 0.0
    fold = cf(lambda c: c["infection"]["log10_fold"].get(code, 0.0))
    inf = course["infection_onset"]
    if np.any(fold) and np.isfinite(inf).any():
        t0 = np.nan_to_num(inf, nan=1e9)
        shape = bump(times, t0[:, None], (t0 + cf(lambda c: c["infection"]["peak_after_hours"]))[:, None],
                     _col(cf(lambda c: c["infection"]["decay_hours"])))
        out = out + (fold * course["infection_severity"])[:, None] * np.where(np.isfinite(inf)[:, None], shape, 0.0)
    if code == "FERRITIN" and course["hlh"].any():
        on = course["onset"]
        shape = bump(times, on[:, None], (on + cf(lambda c: c["hlh_like"]["peak_after_onset_hours"]))[:, None],
                     _col(cf(lambda c: c["hlh_like"]["decay_hours"])))
        out = out + np.where(course["hlh"], cf(lambda c: c["hlh_like"]["ferritin_log10_fold"]), 0.0)[:, None] * shape
    return out


def _temperature(course: dict[str, Any], times: np.ndarray, noise: np.ndarray, eps: np.ndarray,
                 sp: dict[str, Any]) -> np.ndarray:
    """Daily maximum temperature (°C): CRS fever from onset (ASTCT grade >= 1 needs >= 38 °C), gone within
    hours of tocilizumab; infection fever whatever the grade."""
    W = course["W"]
    A = _analyte_params(W, "TEMP_MAX")
    Z = course["normals"]
    base = A(lambda a: a["baseline"]["mean"]) + A(lambda a: a["baseline"]["sd"]) * Z["temp_base"]
    f = lambda g: A(lambda a: g(a["fever"]))  # noqa: E731
    amp = f(lambda q: q["intercept"]) + f(lambda q: q["slope"]) * np.maximum(course["activation"] - f(lambda q: q["from"]), 0.0) \
        + f(lambda q: q["sd"]) * Z["fever"]
    fever_c = sp["measurement"]["fever_c"]
    amp = np.where(course["grade"] >= 1, np.maximum(amp, fever_c + 0.3 - base), np.minimum(amp, fever_c - 0.2 - base))
    onset = course["onset"]
    start = (onset + A(lambda a: a["start_hours"]))[:, None]
    peak = (onset + A(lambda a: a["peak_hours"]))[:, None]
    decay = _col(A(lambda a: a["decay_hours"]))
    defervescence = _col(A(lambda a: a["toci_defervescence_hours"]))
    inf = course["infection_onset"]
    has_inf = np.isfinite(inf)[:, None]
    t_inf = np.nan_to_num(inf, nan=1e9)[:, None]
    cf = lambda g: W.get(lambda p: g(p["confounders"]["infection"]))  # noqa: E731
    inf_amp = (cf(lambda c: c["fever_c"]) * np.sqrt(course["infection_severity"]))[:, None]
    inf_peak = t_inf + _col(cf(lambda c: c["peak_after_hours"]))
    inf_decay = _col(cf(lambda c: c["decay_hours"]))
    daily_max = np.zeros(times.shape)
    for offset in DAILY_MAX_OFFSETS:  # a handful of offsets, vectorised over patients × days
        t = times - offset
        crs = bump(t, start, peak, decay) * _after(t, course["toci_first"], defervescence)
        infection = np.where(has_inf, bump(t, t_inf, inf_peak, inf_decay), 0.0)
        daily_max = np.maximum(daily_max, np.maximum(np.maximum(amp, 0.0)[:, None] * crs, inf_amp * infection))
    within = _col(A(lambda a: a["within_sd"])) * noise
    return np.minimum(base[:, None] + daily_max + within, A(lambda a: a["fever"]["cap"])[:, None])


# ----------------------------------------------------------------------------- measurement

def _profile(course: dict[str, Any], worlds: list[World], fn) -> np.ndarray:
    """Per-patient value of a site-profile parameter in the patient's world: fn(world params, site)."""
    sites = list(worlds[0].params["sites"])
    table = np.array([[float(fn(w.params["sites"][s])) for s in sites] for w in worlds])
    s_idx = pd.Index(sites).get_indexer(course["site"])
    return table[course["world_index"], s_idx]


def measurement_masks(course: dict[str, Any], times: np.ndarray, temp: np.ndarray, worlds: list[World],
                      rm: PatientRandom, sp: dict[str, Any]) -> dict[str, Any]:
    """Which draws exist per panel, and when cytokine/research results become available."""
    n, k = times.shape
    W = course["W"]
    in_window = times <= course["followup"][:, None]
    m = sp["measurement"]
    u = rm.uniform(k, 6)
    ld_ok = u[:, 0, 0] < W.get(lambda p: p["measurement"]["lymphodepletion_labs_probability"])
    routine = u[:, :, 1] >= W.get(lambda p: p["measurement"]["routine_missed_probability"])[:, None]
    routine[:, 0] &= ld_ok
    routine &= in_window
    temperature = in_window.copy()
    temperature[:, 0] = False                                           # no temperature at the LD visit
    sick = (temp >= m["fever_c"]) | (grade_at(course, times) >= 2)
    well_p = _profile(course, worlds, lambda s: s.get("cytokine_order_probability", {}).get("well", 0.0))
    sick_p = _profile(course, worlds, lambda s: s.get("cytokine_order_probability", {}).get("sick", 0.0))
    base_p = _profile(course, worlds, lambda s: s.get("cytokine_baseline_probability", 0.0))
    p = np.where(sick, sick_p[:, None], well_p[:, None])
    p[:, 1] = base_p
    p[:, 0] = 0.0
    cytokine = (u[:, :, 2] < p) & in_window
    tat = [_profile(course, worlds, lambda s, j=j: (s.get("cytokine_turnaround_hours") or [0, 0])[j]) for j in (0, 1)]
    cyto_res = times + tat[0][:, None] + u[:, :, 3] * (tat[1] - tat[0])[:, None]
    days = np.arange(k) - 1                                             # study day of each column (LD column: -1)
    research_days = np.array([[d in s.get("research_days", []) for d in days] for s in sp["sites"].values()])
    s_idx = pd.Index(list(sp["sites"])).get_indexer(course["site"])
    rp = _profile(course, worlds, lambda s: s.get("research_probability", 0.0))
    research = research_days[s_idx] & (u[:, :, 4] < rp[:, None]) & in_window
    rt = [_profile(course, worlds, lambda s, j=j: (s.get("research_turnaround_hours") or [0, 0])[j]) for j in (0, 1)]
    research_res = times + rt[0][:, None] + u[:, :, 5] * (rt[1] - rt[0])[:, None]
    panels = {name: [s.get(f"{name}_panel", []) for s in sp["sites"].values()] for name in ("cytokine", "research")}
    return {"routine": routine, "temperature": temperature, "cytokine": cytokine, "cytokine_resulted": cyto_res,
            "research": research, "research_resulted": research_res, "panels": panels, "s_idx": s_idx}


def simulate_labs(course: dict[str, Any], worlds: list[World], rm: PatientRandom, sp: dict[str, Any],
                  limits: pd.DataFrame, first_row: int = 0) -> pa.Table:
    """Canonical labs for the patients in `course` (site already assigned), as an Arrow table whose
    source_row starts at `first_row`."""
    times = draw_times(rm, course, sp)
    var = Variability(course)
    truth = {code: true_values(code, course, times, var, sp) for code in sp["analytes"]}
    W = course["W"]
    temp_noise = W.get(lambda p: p["measurement"]["temperature_sd"])[:, None] * rm.normal(times.shape[1])
    recorded_temp = truth["TEMP_MAX"] + temp_noise
    masks = measurement_masks(course, times, recorded_temp, worlds, rm, sp)
    sites = list(sp["sites"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("patient", "analyte", "time", "value", "censor", "resulted")}
    codes = list(sp["analytes"])
    for a, code in enumerate(codes):
        noise = rm.normal(times.shape[1])
        resulted = np.full(times.shape, np.nan)
        if code == "TEMP_MAX":
            value, drawn = recorded_temp, masks["temperature"]
        else:
            group = ("cytokine" if code in sp["cytokine_analytes"] else
                     "research" if code in sp["research_analytes"] else "routine")
            offsets = np.array([[w.platform_offset(s, code) for s in sites] for w in worlds])
            offset = offsets[course["world_index"], masks["s_idx"]]
            sd = W.get(lambda p, g=group: p["measurement"]["assay_log_sd"][g])
            value = truth[code] * np.exp(offset[:, None] + sd[:, None] * noise)
            if group == "routine":
                drawn = masks["routine"]
            else:
                on_panel = np.array([code in panel for panel in masks["panels"][group]])[masks["s_idx"]]
                drawn = masks[group] & on_panel[:, None]
                resulted = masks[f"{group}_resulted"]
        value = np.clip(value, limits.loc[code, "plausible_min"], limits.loc[code, "plausible_max"])  # physical bounds
        censor = np.zeros(value.shape, dtype=np.int8)          # 0 exact, 1 '<', 2 '>'
        lloq, uloq = limits.loc[code, "lloq"], limits.loc[code, "uloq"]
        if np.isfinite(lloq):
            low = value < lloq
            censor[low], value = 1, np.where(low, lloq, value)
        if np.isfinite(uloq):
            high = value > uloq
            censor[high], value = 2, np.where(high, uloq, value)
        keep = np.flatnonzero(drawn.ravel())
        parts["patient"].append((keep // times.shape[1]).astype(np.int32))
        parts["analyte"].append(np.full(keep.size, a, dtype=np.int32))
        parts["time"].append(times.ravel()[keep].round(2))
        parts["value"].append(value.ravel()[keep].round(4))
        parts["censor"].append(censor.ravel()[keep])
        parts["resulted"].append(resulted.ravel()[keep].round(2))
    return _labs_table({k: np.concatenate(v) for k, v in parts.items()}, course["patient_id"], codes, first_row)


def _labs_table(cols: dict[str, np.ndarray], patient_ids: np.ndarray, codes: list[str], first_row: int) -> pa.Table:
    """Canonical labs built in Arrow (strings decoded from integer codes in C++)."""

    def text(index: np.ndarray, values: list[str] | np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(index, type=pa.int32()),
                                              pa.array(list(values), type=pa.string())).dictionary_decode()

    return pa.table({
        "patient_id": text(cols["patient"], patient_ids),
        "analyte": text(cols["analyte"], codes),
        "hours_since_infusion": cols["time"],
        "value": cols["value"],
        "censor": text(cols["censor"].astype(np.int32), ["", "<", ">"]),
        "resulted_hours": pa.array(cols["resulted"], from_pandas=True),
        "source_row": np.arange(first_row, first_row + len(cols["time"]), dtype="int64"),
    })
