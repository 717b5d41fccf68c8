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


class _Encoded:
    """Labs as integer-coded numpy arrays sorted by (patient, analyte, time): one sort for every landmark."""

    def __init__(self, labs: pd.DataFrame, patient_ids: pd.Index) -> None:
        codes, uniques = pd.factorize(labs["patient_id"].astype(str))
        pid = pd.Index(uniques).get_indexer(patient_ids)          # patient position -> code
        code_to_patient = np.full(len(uniques), -1)
        code_to_patient[pid[pid >= 0]] = np.flatnonzero(pid >= 0)
        pid = code_to_patient[codes]
        keep = pid >= 0
        a_codes, a_uniques = pd.factorize(labs["analyte"].astype(str))
        self.analytes = np.array(sorted(a_uniques), dtype=object)
        ana = pd.Index(self.analytes).get_indexer(a_uniques)[a_codes]
        t = labs["hours_since_infusion"].to_numpy(dtype="float64")
        res = (labs["resulted_hours"].to_numpy(dtype="float64", na_value=np.nan) if "resulted_hours" in labs
               else np.full(len(labs), np.nan))
        v = labs["value"].to_numpy(dtype="float64")
        pid, ana, t, res, v = pid[keep], ana[keep], t[keep], res[keep], v[keep]
        # one integer sort key: (patient, analyte, time to 0.01 h); ties keep input order
        ticks = np.round((np.clip(t, -1e5, 1e5) + 1e5) * 100).astype(np.int64)
        key = (pid.astype(np.int64) * len(self.analytes) + ana) * np.int64(2 * 10**7 + 1) + ticks
        order = np.argsort(key, kind="stable")
        self.pid, self.ana, self.t, self.res, self.v = pid[order], ana[order], t[order], res[order], v[order]
        self.n_patients = len(patient_ids)

    def last(self, mask: np.ndarray) -> np.ndarray:
        """patients × analytes: value of the last row (by time) where mask holds; NaN if none."""
        out = np.full((self.n_patients, len(self.analytes)), np.nan)
        idx = np.flatnonzero(mask)
        if idx.size:
            key = self.pid[idx] * len(self.analytes) + self.ana[idx]
            last = idx[np.r_[key[1:] != key[:-1], True]]
            out[self.pid[last], self.ana[last]] = self.v[last]
        return out

    def at(self, landmark: float, baseline_window: tuple[float, float] = BASELINE_WINDOW) -> dict[str, np.ndarray]:
        seen = (self.t <= landmark) & (np.isnan(self.res) | (self.res <= landmark))
        latest = self.last(seen)
        baseline = self.last(seen & (self.t >= baseline_window[0]) & (self.t < baseline_window[1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            fold = np.log2(latest / baseline)
        return {"latest": latest, "baseline": baseline, "log_fold": fold}


def available_values(labs: pd.DataFrame, landmark: float,
                     baseline_window: tuple[float, float] = BASELINE_WINDOW) -> pd.DataFrame:
    """Per patient × analyte: the latest value available at L and the pre-infusion baseline available at L."""
    ids = pd.Index(pd.unique(labs["patient_id"].astype(str)))
    enc = _Encoded(labs, ids)
    vals = enc.at(landmark, baseline_window)
    p, a = np.nonzero(np.isfinite(vals["latest"]) | np.isfinite(vals["baseline"]))
    return pd.DataFrame({"patient_id": ids[p], "analyte": enc.analytes[a], "latest": vals["latest"][p, a],
                         "baseline": vals["baseline"][p, a], "log_fold": vals["log_fold"][p, a]})


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
    """Univariate AUROC of each analyte's latest available value and log2 fold change vs baseline,
    for grade >=3 first reached in (L, L + horizon], per site world and pooled per site (world 'all')."""
    ids = pd.Index(patients["patient_id"].astype(str))
    enc = _Encoded(labs, ids)
    sw = site_worlds(patients).to_numpy().astype(str)
    groups = [(g.split("/", 1)[0], g.split("/", 1)[1], sw == g) for g in sorted(set(sw))]
    groups += [(site, "all", np.char.startswith(sw, site + "/")) for site in sorted({g.split("/", 1)[0] for g in sw})]
    rows = []
    for L in landmarks:
        lab = landmark_labels(patients, L, horizon)
        label = np.full(len(ids), np.nan)
        label[ids.get_indexer(lab.index.astype(str))] = lab["label"].to_numpy()
        eligible = np.isfinite(label)
        vals = enc.at(L)
        for site, world, member in groups:
            m = member & eligible
            y_all = label[m] == 1
            for a, analyte in enumerate(enc.analytes):
                for feature in FEATURES:
                    x = vals[feature][m, a]
                    ok = np.isfinite(x)
                    ev = int(y_all[ok].sum())
                    if not ok.any():
                        continue
                    rows.append({"landmark_hours": L, "site": site, "world": world, "analyte": analyte,
                                 "feature": feature,
                                 "auroc": auroc(y_all[ok], x[ok]) if ev >= min_events else np.nan,
                                 "n": int(ok.sum()), "events": ev, "eligible": int(m.sum()),
                                 "eligible_events": int(y_all.sum()), "coverage": ok.sum() / max(int(m.sum()), 1)})
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
    fig, axes = plt.subplots(len(landmarks), 1, figsize=(16, 3.4 * len(landmarks)), squeeze=False)
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
        ax.set_ylim(0.2, 1.0)
        ax.set_xticks(np.arange(len(analytes)), analytes, fontsize=8)
        ax.set_ylabel(f"AUROC at L = {L:g} h")
    axes[0, 0].legend(fontsize=7, ncol=len(sites), loc="upper left")
    fig.text(0.01, 0.005, "below 0.5: lower values mean higher risk (e.g. platelets)", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
