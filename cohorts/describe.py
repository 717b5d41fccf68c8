"""Describe a cohort: statistics to compare with published numbers, kinetics by grade, realism report.

Works for any canonical cohort; for the simulator it is the realism check against
``data/reference/simulator_targets.csv``. A target's ``group`` selects patients: ``all``; a grade
group (``grade 0-1``, ``grade <3``, ``grade >=3``); products/indications joined by ``+``
(``axi-cel+tisa-cel``; the ``indication`` column when present, else ``therapy``); or both,
``<products>; <grade group>``. A statistic the cohort cannot support (no such analyte, products
or columns) is NaN and reported as not within tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cohorts import sim_realism
from crs_settings import reference_dir

GRADE_GROUPS = {"grade 0": (0, 0), "grade 0-1": (0, 1), "grade 1-2": (1, 2), "grade <3": (0, 2), "grade >=3": (3, 5)}
LYMPHOMA_WINDOW_DAYS = 14


def load_targets(path: Path | None = None) -> pd.DataFrame:
    return pd.read_csv(path or reference_dir() / "simulator_targets.csv", keep_default_na=False)


def select(patients: pd.DataFrame, group: str) -> pd.Series:
    """Boolean mask of the patients a target's group names."""
    p = patients
    mask = pd.Series(True, index=p.index)
    for part in (x.strip() for x in str(group).split(";")):
        if part in ("", "all"):
            continue
        if part in GRADE_GROUPS:
            lo, hi = GRADE_GROUPS[part]
            mask &= p["crs_max_grade"].between(lo, hi)
        else:
            col = p["indication"] if "indication" in p else p.get("therapy", pd.Series("", index=p.index))
            mask &= col.astype(str).isin(part.split("+"))
    return mask


def per_patient_kinetics(labs: pd.DataFrame) -> pd.DataFrame:
    """Baseline (last pre-infusion value) and peak (max within 14 days after infusion) per patient × analyte."""
    pre = labs[labs["hours_since_infusion"] < 0].sort_values("hours_since_infusion", kind="mergesort")
    post = labs[(labs["hours_since_infusion"] > 0) & (labs["hours_since_infusion"] <= 14 * 24)]
    base = pre.groupby(["patient_id", "analyte"], observed=True)["value"].last().rename("baseline")
    peak = post.groupby(["patient_id", "analyte"], observed=True)["value"].max().rename("peak")
    return pd.concat([base, peak], axis=1).reset_index()


def m_easix(labs: pd.DataFrame, window: tuple[float, float] = (-np.inf, 0.0), first: bool = False) -> pd.Series:
    """m-EASIX = LDH (U/L) × CRP (mg/dL) / platelets (10⁹/L) from the draw in `window` (hours; the last one,
    or the first with first=True); CRP is stored in mg/L. Default: the last pre-infusion draw."""
    t = labs["hours_since_infusion"]
    d = labs[(t >= window[0]) & (t < window[1]) & labs["analyte"].isin(["LDH", "CRP", "PLT"])]
    d = d.sort_values("hours_since_infusion", kind="mergesort")
    g = d.groupby(["patient_id", "analyte"], observed=True)["value"]
    wide = (g.first() if first else g.last()).unstack()
    if not {"LDH", "CRP", "PLT"} <= set(wide.columns):
        return pd.Series(dtype="float64")
    return (wide["LDH"] * (wide["CRP"] / 10.0) / wide["PLT"]).dropna()


def _auroc_severe(score: pd.Series, grade: pd.Series) -> float:
    y = grade.reindex(score.index) >= 3
    return sim_realism.auroc(y.to_numpy(), score.to_numpy()) if len(score) else np.nan


def _first_fever(labs: pd.DataFrame) -> pd.Series:
    t = labs[(labs["analyte"] == "TEMP_MAX") & (labs["value"] >= 38.0) & (labs["hours_since_infusion"] > 0)
             & (labs["hours_since_infusion"] <= LYMPHOMA_WINDOW_DAYS * 24)]
    return t.groupby("patient_id")["hours_since_infusion"].min()


def _value_near(labs: pd.DataFrame, analyte: str, times: pd.Series, within: float) -> pd.Series:
    """Per patient: the first value of `analyte` drawn in [time, time + within] hours."""
    d = labs[labs["analyte"] == analyte].join(times.rename("t0"), on="patient_id", how="inner")
    d = d[(d["hours_since_infusion"] >= d["t0"]) & (d["hours_since_infusion"] <= d["t0"] + within)]
    return d.sort_values("hours_since_infusion", kind="mergesort").groupby("patient_id")["value"].first()


def statistic(row, labs: pd.DataFrame, p: pd.DataFrame, kin: pd.DataFrame, realism: dict[float, pd.DataFrame]) -> float:
    """One observed value for one target row (p is patients indexed by patient_id)."""
    stat, analyte = row.statistic, row.analyte
    sel = select(p, row.group)
    ps = p[sel]
    grade = ps["crs_max_grade"]
    if stat in ("severe_rate", "any_crs_rate"):
        return float((grade >= (3 if stat == "severe_rate" else 1)).mean()) if len(ps) else np.nan
    if stat == "onset_median_days":
        return ps["crs_onset_hours"].median() / 24.0
    if stat == "onset_ratio_severe_vs_low":
        sev = ps.loc[grade >= 3, "crs_onset_hours"].median()
        low = ps.loc[grade.between(1, 2), "crs_onset_hours"].median()
        return sev / low
    if stat == "onset_to_grade4_median_days":
        if "grades" not in p.attrs:
            return np.nan
        g = p.attrs["grades"]
        col = "grade" if "grade" in g else "grade_astct"
        g4 = g[g[col] >= 4].groupby("patient_id")["hours_since_infusion"].min()
        g4 = g4[g4.index.isin(ps.index)]
        return float((g4 - ps["crs_onset_hours"].reindex(g4.index)).median() / 24.0)
    k = kin[kin["patient_id"].isin(ps.index)] if analyte else kin
    if analyte:
        k = k[k["analyte"] == analyte]
    if stat == "baseline_median":
        return k["baseline"].median()
    if stat in ("peak_median", "peak_fold_median"):
        return (k["peak"] if stat == "peak_median" else k["peak"] / k["baseline"]).median()
    if stat == "peak_iqr_ratio":
        return k["peak"].quantile(0.75) / k["peak"].quantile(0.25)
    if stat == "peak_auroc_severe":
        s = k.set_index("patient_id")["peak"].dropna()
        return _auroc_severe(s, p["crs_max_grade"])
    if stat == "peak_median_hlh_like":
        if "hlh_like" not in ps:
            return np.nan
        return k[k["patient_id"].isin(ps.index[ps["hlh_like"].astype(bool)])]["peak"].median()
    if stat == "value_median_24_48h":
        d = labs[(labs["analyte"] == analyte) & labs["hours_since_infusion"].between(24, 48) & labs["patient_id"].isin(ps.index)]
        return d["value"].median()
    if stat == "value_median_at_crs_onset":
        return _value_near(labs, analyte, ps["crs_onset_hours"].dropna(), 24.0).median()
    if stat.startswith("auroc_m_easix"):
        lab = labs[labs["patient_id"].isin(ps.index)]
        window, first = {"auroc_m_easix_baseline": ((-np.inf, 0.0), False),
                         "auroc_m_easix_lymphodepletion": ((-8 * 24.0, -48.0), False),
                         "auroc_m_easix_day_minus1": ((-48.0, 0.0), False),
                         "auroc_m_easix_day_plus1": ((12.0, 36.0), True)}[stat]
        return _auroc_severe(m_easix(lab, window, first), p["crs_max_grade"])
    if stat == "first_fever_not_crs_share":
        ff = _first_fever(labs[labs["patient_id"].isin(ps.index)])
        onset = ps["crs_onset_hours"].reindex(ff.index)
        return float((onset.isna() | (onset > ff)).mean()) if len(ff) else np.nan
    if stat == "grade0_febrile_share":
        g0 = ps.index[grade == 0]
        return float(pd.Index(g0).isin(_first_fever(labs).index).mean()) if len(g0) else np.nan
    if stat.startswith("early_ordering_ifng_L"):
        L = float(stat.rsplit("L", 1)[1])
        eo = sim_realism.early_ordering(realism[L], L)
        return eo["difference"].min() if len(eo) else np.nan
    if stat.startswith("auroc_best_cytokine_research_L"):
        L = float(stat.rsplit("L", 1)[1])
        t = realism[L]
        t = t[(t["site"] == "research") & (t["world"] == "all") & t["analyte"].isin(["IL6", "IFNG"])]
        return t["auroc"].max() if len(t) else np.nan
    return np.nan


def cohort_statistics(labs: pd.DataFrame, patients: pd.DataFrame, targets: pd.DataFrame,
                      grades: pd.DataFrame | None = None, realism: pd.DataFrame | None = None) -> pd.DataFrame:
    """One simulated/observed value per target row."""
    p = patients.set_index("patient_id", drop=False)
    if grades is not None:
        p.attrs["grades"] = grades
    kin = per_patient_kinetics(labs)
    needs = [float(s.rsplit("L", 1)[1]) for s in targets["statistic"] if "_L" in s]
    if needs and realism is None:
        realism = sim_realism.realism_table(labs, patients, tuple(sorted(set(needs))))
    by_l = {L: realism[realism["landmark_hours"] == L] for L in set(needs)} if needs else {}
    values = [float(statistic(row, labs, p, kin, by_l)) for row in targets.itertuples(index=False)]
    return targets.assign(observed=values)


def compare_with_targets(stats: pd.DataFrame) -> pd.DataFrame:
    obs, tgt, tol = stats["observed"], stats["target"].astype(float), pd.to_numeric(stats["tolerance"], errors="coerce")
    kind = stats["tolerance_kind"]
    ok = np.select([kind == "abs", kind == "ratio", kind == "min", kind == "max"],
                   [(obs - tgt).abs() <= tol, (obs / tgt <= tol) & (tgt / obs <= tol), obs >= tgt, obs <= tgt], False)
    return stats.assign(within_tolerance=ok & obs.notna())


def format_comparison(table: pd.DataFrame) -> str:
    cols = ["statistic", "analyte", "group", "target", "observed", "tolerance", "tolerance_kind", "within_tolerance"]
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}")


def plot_kinetics_by_grade(labs: pd.DataFrame, patients: pd.DataFrame, path: str, title: str) -> None:
    """Median and IQR of each analyte per study day, one line per maximum CRS grade group, and the
    grade 0 patients with an infection (fever, CRP, IL-6, ferritin without CRS) where recorded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cohorts.registry import analyte_registry

    reg = analyte_registry()
    p = patients.set_index("patient_id")
    grade = p["crs_max_grade"]
    infected = p["infection_onset_hours"].notna() if "infection_onset_hours" in p else pd.Series(False, index=p.index)
    group = pd.Series(np.select([grade >= 3, grade >= 1, infected, grade == 0],
                                ["grade ≥3", "grade 1-2", "grade 0, infection", "grade 0"], ""), index=p.index)
    groups = ["grade 0", "grade 0, infection", "grade 1-2", "grade ≥3"]
    colors = {"grade 0": "tab:green", "grade 0, infection": "tab:purple", "grade 1-2": "tab:orange", "grade ≥3": "tab:red"}
    data = labs.assign(day=np.round(labs["hours_since_infusion"] / 24.0).astype(int),
                       group=group.reindex(labs["patient_id"]).to_numpy())
    data = data[data["day"].between(-7, 14)]
    analytes = [a for a in reg.index if a in set(data["analyte"].unique())]
    ncol = 4
    nrow = max(1, -(-len(analytes) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, code in zip(axes.ravel(), analytes, strict=False):
        d = data[data["analyte"] == code]
        for name in groups:
            g = d[d["group"] == name].groupby("day")["value"]
            q = g.quantile([0.25, 0.5, 0.75]).unstack()
            if q.empty or g.size().max() < 5:
                continue
            ax.plot(q.index, q[0.5], color=colors[name], label=name)
            ax.fill_between(q.index, q[0.25], q[0.75], color=colors[name], alpha=0.15)
        if code != "TEMP_MAX":
            ax.set_yscale("log")
        ax.set_title(str(reg.loc[code, "label"]))
        ax.set_xlabel("days since infusion")
        ax.set_ylabel(str(reg.loc[code, "canonical_unit"]))
    for ax in axes.ravel()[len(analytes):]:
        ax.axis("off")
    axes.ravel()[0].legend(title="max CRS grade", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
