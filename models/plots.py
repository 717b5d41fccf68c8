"""PNG figures people look at: ROC, precision–recall, calibration, decision curve. Axis labels with units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.evaluate import MODELS, PRIMARY, curve_tables, decision_curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)


def plot_roc_pr(oof: pd.DataFrame, roc_path: str, pr_path: str, cohort_label: str) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    from models.metrics import auprc, auroc

    plt = _pyplot()
    y = oof["label"].to_numpy().astype(int)
    fig_roc, ax_roc = plt.subplots(figsize=(6, 5.5))
    fig_pr, ax_pr = plt.subplots(figsize=(6, 5.5))
    for col, (_, label, _) in MODELS.items():
        if col not in oof or oof[col].isna().all() or col == "p_prevalence":
            continue
        ok = oof[col].notna().to_numpy()
        s = oof.loc[ok, col].to_numpy()
        fpr, tpr, _ = roc_curve(y[ok], s)
        precision, recall, _ = precision_recall_curve(y[ok], s)
        width = 2.2 if col == PRIMARY else 1.2
        ax_roc.plot(fpr, tpr, lw=width, label=f"{label} ({auroc(y[ok], s):.2f})")
        ax_pr.plot(recall, precision, lw=width, label=f"{label} ({auprc(y[ok], s):.2f})")
    ax_roc.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="chance")
    ax_roc.set_xlabel("1 − specificity (false-positive rate)")
    ax_roc.set_ylabel("sensitivity (true-positive rate)")
    ax_roc.set_title(f"ROC, held-out patients — {cohort_label}", fontsize=10)
    ax_roc.legend(fontsize=7, loc="lower right", title="model (AUROC)")
    ax_pr.axhline(y.mean(), ls="--", color="grey", lw=1, label=f"prevalence {y.mean():.3f}")
    ax_pr.set_xlabel("recall (sensitivity)")
    ax_pr.set_ylabel("precision (PPV)")
    ax_pr.set_title(f"Precision–recall, held-out patients — {cohort_label}", fontsize=10)
    ax_pr.legend(fontsize=7, loc="upper right", title="model (AUPRC)")
    _save(fig_roc, roc_path)
    _save(fig_pr, pr_path)


def plot_calibration(calibration: pd.DataFrame, path: str, cohort_label: str, slope: float, intercept: float) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = float(max(calibration["mean_predicted"].max(), calibration["observed"].max(), 0.05)) * 1.1
    ax.plot([0, top], [0, top], "--", color="grey", lw=1, label="ideal")
    ax.plot(calibration["mean_predicted"], calibration["observed"], "o-",
            label=f"XGBoost kinetics (slope {slope:.2f}, intercept {intercept:.2f})")
    ax.set_xlabel("predicted probability of grade ≥3 CRS within horizon")
    ax.set_ylabel("observed proportion with grade ≥3 CRS")
    ax.set_title(f"Calibration by decile of predicted risk — {cohort_label}", fontsize=10)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_decision_curve(table: pd.DataFrame, path: str, cohort_label: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    names = {v[0]: v[1] for v in MODELS.values()}
    for col in table.columns[1:]:
        style = {"treat_all": dict(color="grey", ls="--"), "treat_none": dict(color="black", lw=0.8)}.get(col, {})
        ax.plot(table["threshold"], table[col], label=names.get(col, col.replace("_", " ")), **style)
    floor = float(np.nanmax(table.drop(columns="threshold").to_numpy()))
    ax.set_ylim(-0.02, max(floor * 1.15, 0.02))
    ax.set_xlabel("threshold probability (risk at which one would act)")
    ax.set_ylabel("net benefit (true positives per patient, harm-adjusted)")
    ax.set_title(f"Decision curve — {cohort_label}", fontsize=10)
    ax.legend(fontsize=7)
    _save(fig, path)


def write_curves(table: pd.DataFrame, metrics: dict, folder: Path, label: str,
                 decision_thresholds: list[float], bands: tuple[int, int] | None = None) -> None:
    """Plot data (CSV, for `dvc plots diff`) and PNGs: ROC, PR, calibration, decision curve; with
    `bands` = (resamples, seed) also decision curves per landmark with patient-bootstrap bands:
    decision_curves_by_landmark.png, decision_curve_bands.csv (long: scope, model, threshold, net
    benefit, CI) and decision_curves_by_landmark.csv (wide, one column per scope and model)."""
    folder.mkdir(parents=True, exist_ok=True)
    curves = curve_tables(table)
    for name, frame in curves.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    lo, hi, step = decision_thresholds
    dc = decision_curve(table, np.round(np.arange(lo, hi + step / 2, step), 6))
    dc.to_csv(folder / "decision_curve.csv", index=False)
    plot_roc_pr(table, str(folder / "roc.png"), str(folder / "pr.png"), label)
    pooled = metrics["pooled"]
    plot_calibration(curves["calibration"], str(folder / "calibration.png"), label,
                     pooled.get("xgb_kinetics.calibration_slope", float("nan")),
                     pooled.get("xgb_kinetics.calibration_intercept", float("nan")))
    plot_decision_curve(dc, str(folder / "decision_curve.png"), label)
    if bands is not None:
        from models.evaluate import decision_curves_by_landmark

        grid = np.round(np.arange(lo, hi + step / 2, step), 6)
        long = decision_curves_by_landmark(table, grid, *bands)
        long.to_csv(folder / "decision_curve_bands.csv", index=False)
        wide = long.assign(column=long["scope"] + " " + long["model"]).pivot(index="threshold", columns="column",
                                                                            values="net_benefit")
        wide.reset_index().to_csv(folder / "decision_curves_by_landmark.csv", index=False)
        names = {v[0]: v[1] for v in MODELS.values()}
        plot_decision_curves(long, str(folder / "decision_curves_by_landmark.png"), label, names)


def claim_table(claim: dict) -> pd.DataFrame:
    """One row per subset × contrast: ΔAUROC, its bootstrap and corrected-t CIs, event patients."""
    rows = []
    for subset, e in claim["subsets"].items():
        for a, b in (("M1", "M0"), ("M2", "M1")):
            key = f"delta_auroc.{a}_minus_{b}"
            nan = float("nan")
            rows.append({"subset": subset, "contrast": f"{a} - {b}", "delta_auroc": e.get(key, nan),
                         "ci_low": e.get(f"{key}_ci_low", nan), "ci_high": e.get(f"{key}_ci_high", nan),
                         "corrected_t_ci_low": e.get(f"{key}_corrected_t_ci_low", nan),
                         "corrected_t_ci_high": e.get(f"{key}_corrected_t_ci_high", nan),
                         "n_event_patients": e["n_event_patients"], "n_patients": e["n_patients"],
                         "suppressed": "suppressed" in e})
    return pd.DataFrame(rows)


def plot_claim(table: pd.DataFrame, path: str, cohort_label: str, design: str) -> None:
    """Forest plot: ΔAUROC with 95% CI per subset, one panel per contrast, a line at 0."""
    plt = _pyplot()
    contrasts = [("M1 - M0", "serial features + treatments\nover latest values (M1 − M0)"),
                 ("M2 - M1", "baseline-relative features\nover serial ones (M2 − M1): the claim")]
    subsets = list(dict.fromkeys(table["subset"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.42 * len(subsets) + 1.8), sharey=True)
    for ax, (contrast, title) in zip(axes, contrasts, strict=True):
        t = table[table["contrast"] == contrast].set_index("subset").reindex(subsets)
        ypos = np.arange(len(subsets))[::-1]
        ok = t["delta_auroc"].notna().to_numpy()
        ax.errorbar(t["delta_auroc"][ok], ypos[ok],
                    xerr=[(t["delta_auroc"] - t["ci_low"])[ok], (t["ci_high"] - t["delta_auroc"])[ok]],
                    fmt="o", color="tab:blue", ecolor="tab:blue", capsize=3)
        ax.axvline(0, color="grey", ls="--", lw=1)
        ax.set_yticks(ypos, [f"{s} ({int(n)} event patients{', suppressed' if sup else ''})"
                             for s, n, sup in zip(subsets, t["n_event_patients"], t["suppressed"], strict=True)])
        ax.set_xlabel("ΔAUROC, held-out (95% CI)")
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"Nested feature sets — {cohort_label}\n{design}", fontsize=9)
    _save(fig, path)


def write_claim(claim: dict, folder: Path, label: str) -> None:
    """claim.csv (for `dvc plots diff`) and claim.png."""
    folder.mkdir(parents=True, exist_ok=True)
    table = claim_table(claim)
    table.to_csv(folder / "claim.csv", index=False)
    design = claim["design"]
    plot_claim(table, str(folder / "claim.png"), label, f"{design['cross_validation']}; CI: patient bootstrap "
                                                        "within repeats")


def write_recalibration(y: np.ndarray, probabilities: dict[str, np.ndarray], folder: Path, cohort_label: str,
                        bins: int = 10) -> None:
    """calibration_before_after.csv and .png: observed vs predicted by decile, one curve per map."""
    from models.metrics import calibration_curve, calibration_slope_intercept

    folder.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 5.5))
    rows, top = [], 0.05
    for name, p in probabilities.items():
        mean_p, observed, count = calibration_curve(y, p, bins)
        slope, intercept = calibration_slope_intercept(y, p)
        rows.append(pd.DataFrame({"map": name, "mean_predicted": mean_p, "observed": observed, "n": count}))
        ax.plot(mean_p, observed, "o-", label=f"{name} (slope {slope:.2f}, intercept {intercept:.2f})")
        top = max(top, float(np.max(mean_p)), float(np.max(observed)))
    top *= 1.1
    ax.plot([0, top], [0, top], "--", color="grey", lw=1, label="ideal")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted probability of grade ≥3 CRS within horizon")
    ax.set_ylabel("observed proportion with grade ≥3 CRS")
    ax.set_title(f"Calibration before and after site recalibration — {cohort_label}", fontsize=9)
    ax.legend(fontsize=8)
    _save(fig, str(folder / "calibration_before_after.png"))
    pd.concat(rows, ignore_index=True).to_csv(folder / "calibration_before_after.csv", index=False)


def plot_decision_curves(table: pd.DataFrame, path: str, cohort_label: str, names: dict[str, str] | None = None) -> None:
    """One panel per scope (pooled, each landmark): net benefit of each model with its bootstrap band,
    treat all and treat none."""
    plt = _pyplot()
    names = names or {}
    scopes = list(dict.fromkeys(table["scope"]))
    cols = min(3, len(scopes))
    rows = -(-len(scopes) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
    for ax, scope in zip(axes.ravel(), scopes, strict=False):
        t = table[table["scope"] == scope]
        for model, g in t.groupby("model", sort=False):
            if model == "treat_none":
                ax.plot(g["threshold"], g["net_benefit"], color="black", lw=0.8, label="treat none")
                continue
            style = {"color": "grey", "ls": "--"} if model == "treat_all" else {}
            line, = ax.plot(g["threshold"], g["net_benefit"], label=names.get(model, model.replace("_", " ")),
                            **style)
            ax.fill_between(g["threshold"], g["ci_low"], g["ci_high"], color=line.get_color(), alpha=0.15, lw=0)
        top = float(np.nanmax(t["ci_high"].to_numpy())) if t["ci_high"].notna().any() else 0.02
        ax.set_ylim(-0.02, max(top * 1.1, 0.02))
        ax.set_xlabel("threshold probability (risk at which one would act)")
        ax.set_ylabel("net benefit (true positives per row, harm-adjusted)")
        ax.set_title(f"{scope} — {cohort_label}", fontsize=9)
    for ax in axes.ravel()[len(scopes):]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=6, loc="upper right")
    fig.suptitle("Decision curves with 95% patient-bootstrap bands", fontsize=10)
    _save(fig, path)
