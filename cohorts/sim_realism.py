"""Realism report: how much each analyte says, early, about later grade >=3 CRS, per site world.

Landmark design as in ../shared/design.md, implemented here (no import of pipeline or features):
at landmark L a patient is eligible if not yet severe at L and still observed at L; the label is
grade >=3 first reached in (L, L + horizon]; a patient whose follow-up ends before L + horizon
without an event has an unknown label and is excluded. Only results available at L count
(drawn at or before L and resulted by L). Works for any canonical cohort; a real cohort without
``site``/``world`` columns is one site world.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LANDMARKS = (24.0, 48.0, 72.0)
HORIZON = 72.0
BASELINE_WINDOW = (-168.0, 0.0)
FEATURES = ("latest", "log_fold")


def landmark_labels(patients: pd.DataFrame, landmark: float, horizon: float = HORIZON) -> pd.DataFrame:
    """Eligible patients at L with a known label (1 = grade >=3 first reached in (L, L + horizon])."""
    p = patients.set_index("patient_id")
    severe = pd.to_numeric(p.get("severe_onset_hours"), errors="coerce")
    fu = pd.to_numeric(p.get("followup_hours", pd.Series(np.inf, index=p.index)), errors="coerce").fillna(np.inf)
    known_grade = pd.to_numeric(p.get("crs_max_grade"), errors="coerce").notna()
    not_yet = ~(severe <= landmark)
    observed = fu >= landmark
    event = (severe > landmark) & (severe <= landmark + horizon)
    known = event | (fu >= landmark + horizon)
    keep = not_yet & observed & known & known_grade
    return pd.DataFrame({"label": event[keep].astype(int)})


def available_values(labs: pd.DataFrame, landmark: float,
                     baseline_window: tuple[float, float] = BASELINE_WINDOW) -> pd.DataFrame:
    """Per patient × analyte: the latest value available at L and the pre-infusion baseline available at L."""
    t = labs["hours_since_infusion"]
    res = labs["resulted_hours"] if "resulted_hours" in labs else pd.Series(np.nan, index=labs.index)
    seen = labs[(t <= landmark) & (res.isna() | (res <= landmark))].sort_values("hours_since_infusion", kind="mergesort")
    keys = ["patient_id", "analyte"]
    latest = seen.groupby(keys, observed=True)["value"].last().rename("latest")
    pre = seen[(seen["hours_since_infusion"] >= baseline_window[0]) & (seen["hours_since_infusion"] < baseline_window[1])]
    base = pre.groupby(keys, observed=True)["value"].last().rename("baseline")
    out = pd.concat([latest, base], axis=1)
    out["log_fold"] = np.log2(out["latest"] / out["baseline"])
    return out.reset_index()


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUROC (ties count half); NaN without both classes."""
    from scipy.stats import rankdata

    y = np.asarray(y, dtype=bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(score)
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def site_worlds(patients: pd.DataFrame) -> pd.Series:
    """'<site>/<world>' per patient ('all/all' for a cohort without those columns)."""
    p = patients.set_index("patient_id")
    site = p["site"].astype(str) if "site" in p else pd.Series("all", index=p.index)
    world = p["world"].astype(str) if "world" in p else pd.Series("all", index=p.index)
    return site + "/" + world


def realism_table(labs: pd.DataFrame, patients: pd.DataFrame, landmarks: tuple[float, ...] = LANDMARKS,
                  horizon: float = HORIZON, min_events: int = 5) -> pd.DataFrame:
    """Univariate AUROC of each analyte's latest available value and log fold change vs baseline,
    for grade >=3 first reached in (L, L + horizon], per site world and pooled per site (world 'all')."""
    sw = site_worlds(patients)
    rows = []
    for L in landmarks:
        lab = landmark_labels(patients, L, horizon)
        vals = available_values(labs[labs["patient_id"].isin(lab.index)], L)
        vals = vals.join(lab, on="patient_id").join(sw.rename("site_world"), on="patient_id")
        n_eligible = lab.join(sw.rename("site_world")).groupby("site_world")["label"].agg(["size", "sum"])
        vals["site"] = vals["site_world"].str.split("/").str[0]
        for level, key in (("site_world", "site_world"), ("site", "site")):
            for (group, analyte), d in vals.groupby([key, "analyte"], observed=True):
                if level == "site":
                    elig = n_eligible[n_eligible.index.str.split("/").str[0] == group].sum()
                    site, world = group, "all"
                else:
                    elig = n_eligible.loc[group]
                    site, world = group.split("/", 1)
                for feature in FEATURES:
                    x = d[["label", feature]].dropna()
                    ev = int(x["label"].sum())
                    a = auroc(x["label"].to_numpy(), x[feature].to_numpy()) if ev >= min_events else np.nan
                    rows.append({"landmark_hours": L, "site": site, "world": world, "analyte": analyte,
                                 "feature": feature, "auroc": a, "n": len(x), "events": ev,
                                 "eligible": int(elig["size"]), "eligible_events": int(elig["sum"]),
                                 "coverage": len(x) / max(int(elig["size"]), 1)})
    return pd.DataFrame(rows)


def early_ordering(table: pd.DataFrame, landmark: float, lead: str = "IFNG", others: tuple[str, ...] = ("CRP", "FERRITIN"),
                   min_coverage: float = 0.5, min_events: int = 20) -> pd.DataFrame:
    """Per site world that measures `lead` at L (coverage >= min_coverage, >= min_events events):
    best AUROC of `lead` (latest or fold change) minus the best of `others`."""
    t = table[(table["landmark_hours"] == landmark) & (table["world"] != "all")]
    out = []
    for (site, world), d in t.groupby(["site", "world"]):
        a = d[d["analyte"] == lead]
        if a.empty or a["coverage"].max() < min_coverage or a["events"].max() < min_events:
            continue
        b = d[d["analyte"].isin(others)]
        out.append({"site": site, "world": world, "lead_auroc": a["auroc"].max(), "other_auroc": b["auroc"].max(),
                    "difference": a["auroc"].max() - b["auroc"].max()})
    return pd.DataFrame(out, columns=["site", "world", "lead_auroc", "other_auroc", "difference"])


def plot_realism(table: pd.DataFrame, path: str, title: str) -> None:
    """Per landmark: AUROC of each analyte (latest, fold change) pooled per site; whiskers = range over worlds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    landmarks = sorted(table["landmark_hours"].unique())
    sites = [s for s in ("research", "send_out", "community") if s in set(table["site"])] or sorted(table["site"].unique())
    analytes = sorted(table["analyte"].unique())
    fig, axes = plt.subplots(len(landmarks), 1, figsize=(max(8, 0.9 * len(analytes) * len(sites)), 3.2 * len(landmarks)),
                             squeeze=False)
    width = 0.8 / (2 * len(sites))
    colors = plt.get_cmap("tab10")
    for ax, L in zip(axes[:, 0], landmarks, strict=True):
        d = table[table["landmark_hours"] == L]
        for i, site in enumerate(sites):
            for j, feature in enumerate(FEATURES):
                pooled = d[(d["site"] == site) & (d["world"] == "all") & (d["feature"] == feature)].set_index("analyte")
                per_world = d[(d["site"] == site) & (d["world"] != "all") & (d["feature"] == feature)]
                lo = per_world.groupby("analyte")["auroc"].min().reindex(analytes)
                hi = per_world.groupby("analyte")["auroc"].max().reindex(analytes)
                y = pooled["auroc"].reindex(analytes).to_numpy()
                x = np.arange(len(analytes)) + (2 * i + j - len(sites)) * width + width / 2
                err = np.vstack([np.clip(y - lo.to_numpy(), 0, None), np.clip(hi.to_numpy() - y, 0, None)])
                ax.bar(x, y - 0.5, width, bottom=0.5, color=colors(i), alpha=1.0 if j == 0 else 0.5,
                       yerr=np.nan_to_num(err), capsize=2, label=f"{site}: {'latest' if j == 0 else 'fold change'}")
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.set_ylim(0.35, 1.0)
        ax.set_xticks(np.arange(len(analytes)), analytes, fontsize=8)
        ax.set_ylabel(f"AUROC at L = {L:g} h")
    axes[0, 0].legend(fontsize=7, ncol=len(sites), loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
