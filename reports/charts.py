"""Pictures of one patient (matplotlib, Agg), returned as base64 PNG text to inline in HTML.

Time runs in days since infusion (day 0 = infusion) on every picture, so the kinetics and the
risk line up; treatments are vertical lines of one colour per treatment on all of them.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

BAND_COLOURS = {"low": "#2e7d32", "intermediate": "#e08a00", "high": "#c62828"}
BAND_FILL = {"low": "#e8f5e9", "intermediate": "#fff4e0", "high": "#fdecea"}
TREATMENT_COLOURS = {"tocilizumab": "#6a3d9a", "corticosteroids": "#a6561c", "siltuximab": "#1f78b4",
                     "anakinra": "#2a9d8f", "vasopressors": "#d81b60"}
OTHER_TREATMENT = "#546e7a"
SERIES = "#263238"
RESULT_LATE = "#78909c"
SEVERE = "#b71c1c"


def treatment_colour(name: str) -> str:
    return TREATMENT_COLOURS.get(str(name), OTHER_TREATMENT)


@dataclass(frozen=True)
class TimeAxis:
    """The shared time axis: limits in days, landmarks and the trained range in hours."""

    lo_days: float
    hi_days: float
    landmarks_hours: tuple[float, ...]
    trained_hours: tuple[float, float]


@dataclass(frozen=True)
class Reference:
    """The value fold changes are measured against: the pre-infusion baseline or the stated fallback."""

    hours: float
    value: float
    kind: str  # "baseline" | "fallback"


def plain(y: float) -> str:
    """An axis number as people write it: 12,000 not 1.2e+04, 0.75 not 7.5e-01."""
    return f"{y:,.0f}" if abs(y) >= 100 else f"{y:.3g}"


def pretty_unit(unit: str) -> str:
    return {"10^9/L": "×10⁹/L"}.get(unit, unit)


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    for side in ("top",):
        ax.spines[side].set_visible(False)
    return fig, ax


def png_base64(fig) -> str:
    """The figure as base64 PNG (no metadata that changes between runs); closes the figure."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _time_decorations(ax, axis: TimeAxis, treatments: pd.DataFrame | None, labels: bool) -> None:
    ax.axvline(0.0, color="black", lw=1.0, zorder=1)
    for hours in axis.landmarks_hours:
        ax.axvline(hours / 24.0, color="#b0bec5", lw=0.7, ls=":", zorder=0)
    if treatments is not None:
        for _, row in treatments.iterrows():
            ax.axvline(row["hours_since_infusion"] / 24.0, color=treatment_colour(row["event"]), lw=1.4,
                       alpha=0.85, zorder=1)
    ax.set_xlim(axis.lo_days, axis.hi_days)
    ax.set_xlabel("days since infusion (day 0 = infusion)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(axis="y", color="#eceff1", lw=0.6)


def kinetics_png(label: str, unit: str, draws: pd.DataFrame, axis: TimeAxis, *,
                 reference: Reference | None = None, fold_axis: bool = False,
                 treatments: pd.DataFrame | None = None) -> str:
    """One analyte over time: each result at its draw time (filled; ▼/▲ below/above the assay range),
    an open circle where a result became available later (send-out), the reference value dashed,
    and, for analytes the model reads relative to baseline, a right-hand fold-change axis."""
    fig, ax = _figure(5.4, 2.55)
    d = draws.sort_values("hours_since_infusion", kind="mergesort")
    t = d["hours_since_infusion"].to_numpy("float64") / 24.0
    v = d["value"].to_numpy("float64")
    censor = d["censor"].fillna("").astype(str).to_numpy() if "censor" in d else np.full(len(d), "")
    # when each result became available: `available_hours` (the model's rule, given by the caller) or the
    # reported result time; `availability_assumed` marks results without a reported time
    res = (d["available_hours"] if "available_hours" in d else
           d["resulted_hours"] if "resulted_hours" in d else pd.Series(np.nan, index=d.index)).to_numpy("float64") / 24.0
    assumed = (d["availability_assumed"].to_numpy(dtype=bool) if "availability_assumed" in d
               else np.zeros(len(d), dtype=bool))
    shown = v[(t >= axis.lo_days) & (t <= axis.hi_days)]
    # a log axis where the values span a wide range (cytokines, CRP, ferritin), else plain numbers
    log = bool(len(shown)) and bool((shown > 0).all()) and shown.max() / shown.min() > 8
    if log:
        ax.set_yscale("log")
    _time_decorations(ax, axis, treatments, labels=False)
    ax.plot(t, v, "-", color=SERIES, lw=1.1, zorder=2)
    exact = censor == ""
    ax.plot(t[exact], v[exact], "o", color=SERIES, ms=4.2, zorder=3)
    for mark, sign in (("v", "<"), ("^", ">")):
        sel = censor == sign
        if sel.any():
            ax.plot(t[sel], v[sel], mark, color=SERIES, ms=6.5, zorder=3)
    late = np.isfinite(res) & (res - t > 0.5 / 24.0)
    if late.any():
        for ti, ri, vi in zip(t[late], res[late], v[late], strict=True):
            ax.plot([ti, ri], [vi, vi], ":", color=RESULT_LATE, lw=1.0, zorder=2)
        known = late & ~assumed
        ax.plot(res[known], v[known], "o", mfc="white", mec=RESULT_LATE, ms=5, zorder=3)
        ax.plot(res[late & assumed], v[late & assumed], "s", mfc="white", mec=RESULT_LATE, ms=4.5, zorder=3)
    if reference is not None and np.isfinite(reference.value) and reference.value > 0:
        ax.axhline(reference.value, color="#455a64", lw=0.9, ls="--", zorder=1)
        ax.plot([reference.hours / 24.0], [reference.value], "D", color="#ffb300", mec=SERIES, ms=6.5, zorder=4)
        if fold_axis:
            ref = float(reference.value)
            sec = ax.secondary_yaxis("right", functions=(lambda y, r=ref: y / r, lambda f, r=ref: f * r))
            sec.set_ylabel("× baseline" if reference.kind == "baseline" else "× first result", fontsize=8)
            sec.tick_params(labelsize=8)
            from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

            if log:
                sec.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
                sec.yaxis.set_minor_formatter(NullFormatter())
            sec.yaxis.set_major_formatter(FuncFormatter(lambda f, _: f"×{f:.3g}"))
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if log:
        lo, hi = np.nanmin(shown), np.nanmax(shown)
        if reference is not None and reference.value > 0:
            lo, hi = min(lo, reference.value), max(hi, reference.value)
        ax.set_ylim(lo / 1.8, hi * 1.8)
        from matplotlib.ticker import LogLocator

        # few decades: label 1-2-5 steps, so a short log axis still has numbers to read
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if hi / lo < 300 else (1.0,)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: plain(y)))
    ax.set_title(f"{label} ({pretty_unit(unit)})" if unit else label, fontsize=10, loc="left", fontweight="bold")
    fig.tight_layout(pad=0.4)
    return png_base64(fig)


def risk_png(landmarks: pd.DataFrame, curve: pd.DataFrame, axis: TimeAxis, band_edges: list[float], *,
             treatments: pd.DataFrame | None = None, status_words: dict[str, str] | None = None,
             severe_onset_hours: float | None = None, horizon_hours: float = 72.0) -> str:
    """Predicted risk over time: a large dot per landmark coloured by its band (with the %), a thin line
    through the risk recomputed each time a result became available, band backgrounds, treatments,
    and the times outside the landmarks the model was trained on shaded."""
    fig, ax = _figure(10.6, 3.1)
    status_words = status_words or {}
    scored_curve = curve[curve["status"] == "scored"].sort_values("landmark_hours")
    scored = landmarks[landmarks["status"] == "scored"]
    top = max([0.4, *(1.25 * scored["probability"].to_numpy()), *(1.15 * scored_curve["probability"].to_numpy())])
    top = min(1.0, top) * 100
    edges = [0.0, *[100 * e for e in band_edges], 100.0]
    for (lo, hi), band in zip(zip(edges[:-1], edges[1:], strict=True), ("low", "intermediate", "high"), strict=False):
        ax.axhspan(lo, hi, color=BAND_FILL[band], zorder=0)
        if lo < top:
            ax.text(axis.hi_days, (lo + min(hi, top)) / 2, f" {band}", color=BAND_COLOURS[band], fontsize=8,
                    va="center", ha="left", fontweight="bold", clip_on=False)
    lo_t, hi_t = (h / 24.0 for h in axis.trained_hours)
    for a, b in ((axis.lo_days, lo_t), (hi_t, axis.hi_days)):
        if b > a:
            ax.axvspan(a, b, color="#eceff1", zorder=0.5, hatch="///", ec="#cfd8dc", lw=0)
    if hi_t < axis.hi_days:
        ax.text((hi_t + axis.hi_days) / 2, top * 0.03, "outside the times\nthe model was trained on", fontsize=7,
                ha="center", va="bottom", color="#607d8b")
    _time_decorations(ax, axis, treatments, labels=True)
    if severe_onset_hours is not None and np.isfinite(severe_onset_hours):
        x = severe_onset_hours / 24.0
        ax.axvline(x, color=SEVERE, lw=1.6, ls="--", zorder=2)
        ax.text(x, top * 0.80, " grade ≥3 CRS\n recorded", fontsize=7.5, color=SEVERE, va="top", ha="left",
                bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 1})
    if len(scored_curve):
        ax.plot(scored_curve["landmark_hours"] / 24.0, 100 * scored_curve["probability"], "-", color="#546e7a",
                lw=1.2, marker="o", ms=2.2, zorder=3, label="risk recomputed at each new result")
    for _, row in landmarks.iterrows():
        x = row["landmark_hours"] / 24.0
        if row["status"] == "scored":
            p = 100 * row["probability"]
            ax.scatter([x], [p], s=90, color=BAND_COLOURS.get(row["risk_band"], SERIES), edgecolor="black",
                       zorder=5, lw=0.8)
            ax.annotate(f"{p:.0f}%", (x, p), textcoords="offset points", xytext=(0, 9), ha="center",
                        fontsize=9, fontweight="bold", zorder=6)
        else:
            ax.scatter([x], [1.5], s=40, marker="x", color="#78909c", zorder=5)
            ax.annotate(status_words.get(row["status"], row["status"]), (x, 1.5), textcoords="offset points",
                        xytext=(0, 7), ha="center", fontsize=6.5, color="#546e7a")
    ax.scatter([], [], s=90, color="#9e9e9e", edgecolor="black", label="prediction at a landmark")
    ax.set_ylim(0, top)
    ax.set_ylabel(f"risk of grade ≥3 CRS\nin the next {horizon_hours:g} h (%)", fontsize=8)
    ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.tight_layout(pad=0.4)
    return png_base64(fig)
