"""Describe a cohort: statistics to compare with published numbers, and kinetics by grade.

Works for any canonical cohort; for the simulator it is the realism check against
``data/reference/simulator_targets.csv``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from crs_settings import reference_dir


def load_targets(path: Path | None = None) -> pd.DataFrame:
    return pd.read_csv(path or reference_dir() / "simulator_targets.csv", keep_default_na=False)


def _grade_group(grade: pd.Series, group: str) -> pd.Series:
    return {"grade 0-1": grade <= 1, "grade <3": grade < 3, "grade >=3": grade >= 3}.get(
        group, pd.Series(True, index=grade.index))


def per_patient_kinetics(labs: pd.DataFrame) -> pd.DataFrame:
    """Baseline (last pre-infusion value) and peak (max within 14 days after infusion) per patient × analyte."""
    pre = labs[labs["hours_since_infusion"] < 0].sort_values("hours_since_infusion", kind="mergesort")
    post = labs[(labs["hours_since_infusion"] > 0) & (labs["hours_since_infusion"] <= 14 * 24)]
    base = pre.groupby(["patient_id", "analyte"], observed=True)["value"].last().rename("baseline")
    peak = post.groupby(["patient_id", "analyte"], observed=True)["value"].max().rename("peak")
    return pd.concat([base, peak], axis=1).reset_index()


def m_easix(labs: pd.DataFrame) -> pd.Series:
    """m-EASIX = LDH (U/L) × CRP (mg/dL) / platelets (10⁹/L) at the pre-infusion draw; CRP is stored in mg/L."""
    pre = labs[labs["hours_since_infusion"] < 0].sort_values("hours_since_infusion", kind="mergesort")
    wide = pre.groupby(["patient_id", "analyte"], observed=True)["value"].last().unstack()
    need = {"LDH", "CRP", "PLT"}
    if not need <= set(wide.columns):
        return pd.Series(dtype="float64")
    return (wide["LDH"] * (wide["CRP"] / 10.0) / wide["PLT"]).dropna()


def cohort_statistics(labs: pd.DataFrame, patients: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """One simulated/observed value per target row."""
    from sklearn.metrics import roc_auc_score

    p = patients.set_index("patient_id")
    grade = p["crs_max_grade"]
    kin = per_patient_kinetics(labs).join(grade, on="patient_id")
    values = []
    for row in targets.itertuples(index=False):  # a few dozen target rows, each a vectorised statistic
        if row.statistic in ("severe_rate", "any_crs_rate"):
            sel = grade[p["therapy"] == row.group]
            v = (sel >= (3 if row.statistic == "severe_rate" else 1)).mean() if len(sel) else np.nan
        elif row.statistic == "onset_median_days":
            v = p.loc[p["therapy"] == row.group, "crs_onset_hours"].median() / 24.0
        elif row.statistic == "baseline_median":
            v = kin.loc[kin["analyte"] == row.analyte, "baseline"].median()
        elif row.statistic in ("peak_median", "peak_fold_median"):
            k = kin[(kin["analyte"] == row.analyte) & _grade_group(kin["crs_max_grade"], row.group)]
            v = (k["peak"] if row.statistic == "peak_median" else k["peak"] / k["baseline"]).median()
        elif row.statistic == "auroc_m_easix_baseline":
            score = m_easix(labs)
            y = (grade.reindex(score.index) >= 3).astype(int)
            v = roc_auc_score(y, score) if y.nunique() == 2 else np.nan
        else:
            v = np.nan
        values.append(float(v))
    return targets.assign(observed=values)


def compare_with_targets(stats: pd.DataFrame) -> pd.DataFrame:
    obs, tgt, tol = stats["observed"], stats["target"].astype(float), stats["tolerance"].astype(float)
    kind = stats["tolerance_kind"]
    ok = np.select([kind == "abs", kind == "ratio", kind == "min"],
                   [(obs - tgt).abs() <= tol, (obs / tgt <= tol) & (tgt / obs <= tol), obs >= tgt], False)
    return stats.assign(within_tolerance=ok & obs.notna())


def format_comparison(table: pd.DataFrame) -> str:
    cols = ["statistic", "analyte", "group", "target", "observed", "tolerance", "tolerance_kind", "within_tolerance"]
    return table[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}")


def plot_kinetics_by_grade(labs: pd.DataFrame, patients: pd.DataFrame, path: str, title: str) -> None:
    """Median and IQR of each analyte per study day, one line per maximum CRS grade group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cohorts.registry import analyte_registry

    reg = analyte_registry()
    grade = patients.set_index("patient_id")["crs_max_grade"]
    groups = {"grade 0": (0, 0), "grade 1-2": (1, 2), "grade ≥3": (3, 5)}
    data = labs.assign(day=np.round(labs["hours_since_infusion"] / 24.0).astype(int),
                       grade=grade.reindex(labs["patient_id"]).to_numpy())
    data = data[data["day"].between(-1, 14)]
    analytes = [a for a in reg.index if a in set(data["analyte"].unique())]
    ncol = 4
    nrow = max(1, -(-len(analytes) // ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    colors = {"grade 0": "tab:green", "grade 1-2": "tab:orange", "grade ≥3": "tab:red"}
    for ax, code in zip(axes.ravel(), analytes, strict=False):
        d = data[data["analyte"] == code]
        for name, (lo, hi) in groups.items():
            g = d[d["grade"].between(lo, hi)].groupby("day")["value"]
            q = g.quantile([0.25, 0.5, 0.75]).unstack()
            if q.empty:
                continue
            ax.plot(q.index, q[0.5], color=colors[name], label=name)
            ax.fill_between(q.index, q[0.25], q[0.75], color=colors[name], alpha=0.2)
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
