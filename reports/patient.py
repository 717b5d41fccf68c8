"""One patient's report: a self-contained HTML page (inline CSS, base64 PNG pictures, no links out).

What a clinician reads, top to bottom: who the patient is and the data's time; the research-use
statement; the latest predicted risk and its band; risk over time with treatments; the risk at each
landmark with its drivers in plain words; the drivers of the latest prediction as bars; the
kinetics of every measured analyte; and how to read it all (model, version, definitions).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reports.charts import (
    BAND_COLOURS,
    Reference,
    TimeAxis,
    kinetics_png,
    plain,
    pretty_unit,
    risk_png,
    treatment_colour,
)

DISCLAIMER = ("Research software, not a medical device. These predictions are not validated for clinical "
              "decisions and must not replace clinical judgement.")
USUAL_CARE = ("Predictions are made under usual care: the model learned from patients who were treated as "
              "usual (tocilizumab, corticosteroids and other treatments when clinicians decided), so a risk "
              "describes what tends to happen with that care, not what would happen without treatment.")
STATUS_WORDS = {
    "scored": "scored",
    "already_severe": "already grade ≥3",
    "invalid_input": "all lab rows rejected",
    "no_data_before_landmark": "no results yet",
    "no_baseline": "no baseline: not scored",
    "outside_trained_landmarks": "outside trained times",
}
STATUS_SENTENCES = {
    "already_severe": "grade ≥3 CRS was already recorded by then; no prediction is made.",
    "invalid_input": "every lab row of this patient was rejected at ingest (see the quarantine file).",
    "no_data_before_landmark": "no result of an analyte the model reads was available yet.",
    "no_baseline": ("no pre-infusion baseline of IL-6, IFN-γ, CRP, ferritin or Ang-2 was available; the model "
                    "reads rises over the patient's own baseline, so no probability is given."),
    "outside_trained_landmarks": "this time lies outside the landmarks the model was trained on; no probability.",
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    alias: str
    uri: str
    landmarks_hours: tuple[float, ...]
    horizon_hours: float
    band_edges: tuple[float, ...]
    tolerance_hours: float


@dataclass
class PatientData:
    """Everything the page shows of one patient; scored rows come from `models.predict.predict_cohort`.

    `landmarks`: one row per landmark (status, probability, risk_band, driver_i_text/_contribution) plus
    `driver_i_points` (percentage points, `models.drivers.percentage_points`). `curve`: the same at each
    time a new result became available (status, probability). `events` None = treatments not recorded.
    """

    patient_id: str
    patient: dict[str, Any]
    labs: pd.DataFrame
    events: pd.DataFrame | None
    landmarks: pd.DataFrame
    curve: pd.DataFrame
    analytes: pd.DataFrame            # registry rows indexed by code: label, canonical_unit
    baseline_relative: tuple[str, ...]
    baseline_window_hours: tuple[float, float]
    model: ModelInfo
    synthetic: bool | None = None
    generated_at: str = ""
    notes: list[str] = field(default_factory=list)


def reference_of(draws: pd.DataFrame, window: tuple[float, float]) -> Reference | None:
    """The baseline (last draw in the pre-infusion window) or, without one, the first draw after it."""
    t = draws["hours_since_infusion"].to_numpy("float64")
    v = draws["value"].to_numpy("float64")
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    inside = np.flatnonzero((t >= window[0]) & (t <= window[1]))
    if inside.size:
        i = inside[-1]
        return Reference(float(t[i]), float(v[i]), "baseline")
    after = np.flatnonzero(t > window[1])
    if after.size:
        i = after[0]
        return Reference(float(t[i]), float(v[i]), "fallback")
    return None


def _available(labs: pd.DataFrame) -> pd.Series:
    """When each result became available: `available_hours` (the model's rule) or the reported result time."""
    for col in ("available_hours", "resulted_hours"):
        if col in labs:
            return labs[col].astype("float64")
    return pd.Series(np.nan, index=labs.index)


def shown_until(data: PatientData) -> float:
    """The last hour drawn: the end of what the predictions speak about (the last landmark + the
    horizon), or the latest result if earlier; never before the end of the trained range."""
    m = data.model
    hours = data.labs["hours_since_infusion"].to_numpy("float64")
    res = _available(data.labs).to_numpy("float64")
    latest = max([*hours[np.isfinite(hours)], *res[np.isfinite(res)]], default=0.0)
    return max(min(latest, max(m.landmarks_hours) + m.horizon_hours), max(m.landmarks_hours) + m.tolerance_hours)


def time_axis(data: PatientData) -> TimeAxis:
    hours = data.labs["hours_since_infusion"].to_numpy("float64")
    known = [x for x in hours if np.isfinite(x)]
    lo = min([-12.0, *known]) / 24.0
    hi = shown_until(data) / 24.0
    pad = 0.03 * (hi - lo)
    lo_t = min(data.model.landmarks_hours) - data.model.tolerance_hours
    hi_t = max(data.model.landmarks_hours) + data.model.tolerance_hours
    return TimeAxis(lo - pad, hi + pad, tuple(data.model.landmarks_hours), (lo_t, hi_t))


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def when(hours: float) -> str:
    """'day 2 (48 h)', 'day 3.5 (83.1 h)': days since infusion as on the pictures' axes, and hours."""
    if not np.isfinite(hours):
        return "—"
    days = hours / 24.0
    d = f"{days:.0f}" if abs(days - round(days)) < 1e-9 else f"{days:.1f}"
    h = f"{hours:.0f}" if abs(hours - round(hours)) < 0.05 else f"{hours:.1f}"
    return f"day {d} ({h} h)"


def _pct(p: float) -> str:
    return "—" if not np.isfinite(p) else ("<1%" if p < 0.01 else f"{100 * p:.0f}%")


def _band_chip(band: str) -> str:
    if not band:
        return ""
    return f'<span class="chip" style="background:{BAND_COLOURS.get(band, "#607d8b")}">{_e(band)}</span>'


def _patient_line(data: PatientData) -> str:
    p = data.patient
    parts = []
    for key, fmt in (("therapy", "{}"), ("disease", "{}"), ("age_years", "{:.0f} years"), ("sex", "{}")):
        value = p.get(key)
        if value is None or (isinstance(value, float) and not np.isfinite(value)) or str(value) in ("", "nan"):
            continue
        parts.append(fmt.format(value))
    return " · ".join(_e(x) for x in parts) or "no clinical covariates recorded"


def _latest_scored(landmarks: pd.DataFrame) -> pd.Series | None:
    scored = landmarks[landmarks["status"] == "scored"].sort_values("landmark_hours")
    return scored.iloc[-1] if len(scored) else None


def _summary(data: PatientData) -> str:
    last = _latest_scored(data.landmarks)
    cards = []
    if last is None:
        words = "; ".join(f"{when(r.landmark_hours)}: {STATUS_WORDS.get(r.status, r.status)}"
                          for r in data.landmarks.itertuples())
        cards.append(f'<div class="card"><div class="k">Predicted risk</div><div class="v">none</div>'
                     f'<div class="s">{_e(words)}</div></div>')
    else:
        band = str(last["risk_band"])
        cards.append(
            f'<div class="card" style="border-color:{BAND_COLOURS.get(band, "#607d8b")}">'
            f'<div class="k">Latest predicted risk, {_e(when(last["landmark_hours"]))}</div>'
            f'<div class="v" style="color:{BAND_COLOURS.get(band, "#263238")}">{_pct(last["probability"])} '
            f'{_band_chip(band)}</div><div class="s">probability of grade ≥3 CRS within the next '
            f'{data.model.horizon_hours:g} h</div></div>')
        earlier = data.landmarks[(data.landmarks["status"] == "scored")
                                 & (data.landmarks["landmark_hours"] < last["landmark_hours"])]
        if len(earlier):
            prev = earlier.sort_values("landmark_hours").iloc[-1]
            diff = 100 * (last["probability"] - prev["probability"])
            arrow = "↑" if diff > 0.5 else "↓" if diff < -0.5 else "→"
            cards.append(f'<div class="card"><div class="k">Change since {_e(when(prev["landmark_hours"]))}</div>'
                         f'<div class="v">{arrow} {diff:+.0f} points</div><div class="s">from '
                         f'{_pct(prev["probability"])} to {_pct(last["probability"])}</div></div>')
    if data.events is None:
        treated = "not recorded"
        detail = "no treatment table was given: treatment features are unknown"
    elif len(data.events) == 0:
        treated, detail = "none recorded", ""
    else:
        ev = data.events.sort_values("hours_since_infusion")
        first = ev.groupby("event", sort=False)["hours_since_infusion"].agg(["min", "size"])
        treated = ", ".join(f"{name} ×{int(row['size'])}" for name, row in first.iterrows())
        detail = "; ".join(f"{name} first {when(row['min'])}" for name, row in first.iterrows())
    cards.append(f'<div class="card"><div class="k">Treatments given</div><div class="v small">{_e(treated)}</div>'
                 f'<div class="s">{_e(detail)}</div></div>')
    severe = data.patient.get("severe_onset_hours")
    if severe is not None and np.isfinite(float(severe)):
        cards.append(f'<div class="card" style="border-color:#b71c1c"><div class="k">Recorded outcome</div>'
                     f'<div class="v small" style="color:#b71c1c">grade ≥3 CRS at {_e(when(float(severe)))}</div>'
                     f'<div class="s">from the cohort table; not an input of the predictions before it</div></div>')
    return '<section class="cards">' + "".join(cards) + "</section>"


def _landmark_table(data: PatientData) -> str:
    rows = []
    for r in data.landmarks.sort_values("landmark_hours").itertuples():
        if r.status == "scored":
            risk = f'<b>{_pct(r.probability)}</b> {_band_chip(str(r.risk_band))}'
            drivers = [getattr(r, f"driver_{i}_text", "") for i in (1, 2, 3)]
            why = "<br>".join(_e(t) for t in drivers if isinstance(t, str) and t) or "—"
        else:
            risk = f'<span class="muted">{_e(STATUS_WORDS.get(r.status, r.status))}</span>'
            why = _e(STATUS_SENTENCES.get(r.status, ""))
        rows.append(f'<tr data-landmark="{r.landmark_hours:g}"><td>{_e(when(r.landmark_hours))}</td>'
                    f"<td>{risk}</td><td>{why}</td></tr>")
    return ('<table class="landmarks"><thead><tr><th>Prediction time</th><th>Risk (next '
            f'{data.model.horizon_hours:g} h)</th><th>Top drivers (what moved this prediction)</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _driver_bars(data: PatientData) -> str:
    last = _latest_scored(data.landmarks)
    if last is None:
        return ""
    items = []
    for i in (1, 2, 3):
        text = last.get(f"driver_{i}_text", "")
        if not isinstance(text, str) or not text:
            continue
        pts = float(last.get(f"driver_{i}_points", np.nan))
        items.append((text, pts))
    if not items:
        return ""
    scale = max([abs(p) for _, p in items if np.isfinite(p)] or [1.0])
    bars = []
    for text, pts in items:
        width = 0 if not np.isfinite(pts) else max(1.0, 48.0 * abs(pts) / scale)
        up = pts > 0
        colour = "#c62828" if up else "#1565c0"
        bar = (f'<div class="bar" style="width:{width:.1f}%;background:{colour};'
               f'{"left:50%" if up else f"left:{50 - width:.1f}%"}"></div>')
        label = f"{pts:+.1f} points" if np.isfinite(pts) else ""
        bars.append(f'<div class="driver"><div class="track">{bar}<div class="mid"></div></div>'
                    f'<div class="pts" style="color:{colour}">{_e(label)}</div>'
                    f'<div class="dtext">{_e(text)}</div></div>')
    return (f'<section><h2>What drives the prediction at {_e(when(last["landmark_hours"]))}</h2>'
            '<p class="help">Each bar is one driver: how many percentage points it adds to (red, right) or '
            'takes from (blue, left) the predicted probability, compared with the average patient the model '
            'was trained on. Drivers explain the model, not the patient\'s biology.</p>'
            f'<div class="drivers">{"".join(bars)}</div></section>')


def _kinetics(data: PatientData, axis: TimeAxis) -> str:
    figures = []
    labs = data.labs
    treatments = data.events if data.events is not None and len(data.events) else None
    order = [*data.baseline_relative, *[c for c in data.analytes.index if c not in data.baseline_relative]]
    for code in [c for c in order if c in set(labs["analyte"])] + sorted(set(labs["analyte"]) - set(order)):
        draws = labs[labs["analyte"] == code]
        reg = data.analytes.loc[code] if code in data.analytes.index else None
        label = str(reg["label"]) if reg is not None else code
        unit = str(reg["canonical_unit"]) if reg is not None else ""
        relative = code in data.baseline_relative
        ref = reference_of(draws, data.baseline_window_hours) if relative else None
        png = kinetics_png(label, unit, draws, axis, reference=ref, fold_axis=relative, treatments=treatments)
        caption = _kinetics_caption(label, pretty_unit(unit), draws, ref, relative, axis.hi_days * 24.0)
        figures.append(f'<figure class="analyte" data-analyte="{_e(code)}"><img alt="{_e(label)} over time since '
                       f'infusion" src="data:image/png;base64,{png}"><figcaption>{caption}</figcaption></figure>')
    if not figures:
        return '<section><h2>Kinetics</h2><p>No lab results for this patient.</p></section>'
    return ('<section><h2>Kinetics since infusion</h2><p class="help"><b>●</b> result, at the time the sample was '
            'drawn · <b>○</b> when that result became available, where that was later (send-out assays: the model '
            'uses a result only once it is available) · <b>□</b> no result time was reported: available after the '
            'analyte\'s assumed turnaround, as the model assumes · <b>▼ ▲</b> below / above the assay range · '
            '<b style="color:#ffb300">◆</b> and dashed line: the pre-infusion baseline (or, without one, the first '
            'result after infusion); the right-hand axis reads the fold change against it · vertical lines: '
            'infusion (black), landmarks (dotted), treatments:</p>'
            f'{_legend(data)}<div class="grid">{"".join(figures)}</div></section>')


def _kinetics_caption(label: str, unit: str, draws: pd.DataFrame, ref: Reference | None, relative: bool,
                      until_hours: float) -> str:
    d = draws.sort_values("hours_since_infusion")
    later = int((d["hours_since_infusion"] > until_hours).sum())
    d = d[d["hours_since_infusion"] <= until_hours]
    n = len(d)
    peak = d.loc[d["value"].idxmax()] if n else None
    text = f"{n} result{'s' if n != 1 else ''}"
    if peak is not None:
        text += f"; highest {plain(float(peak['value']))} {unit} at {when(float(peak['hours_since_infusion']))}"
    if relative:
        if ref is None:
            text += "; no reference value"
        else:
            word = "pre-infusion baseline" if ref.kind == "baseline" else "first result after infusion (no baseline)"
            text += f"; {word} {plain(ref.value)} {unit}"
            if peak is not None and ref.value > 0 and float(peak["hours_since_infusion"]) > ref.hours:
                text += f" → peak {peak['value'] / ref.value:,.3g}× that value"
    if later:
        text += f"; {later} later result{'s' if later != 1 else ''} not drawn (after {when(until_hours)})"
    return _e(text)


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif;color:#263238;
margin:0;background:#f5f7f8}
main{max-width:1120px;margin:0 auto;padding:18px 22px 40px;background:#fff}
header h1{font-size:22px;margin:0 0 4px}
header .who{font-size:14px;color:#455a64}
.meta{font-size:12px;color:#607d8b;margin-top:4px}
.synthetic{display:inline-block;background:#37474f;color:#fff;font-size:11px;padding:2px 7px;border-radius:3px;
margin-left:8px;vertical-align:middle;letter-spacing:.04em}
.disclaimer{border:1px solid #e0a800;background:#fff8e1;padding:9px 12px;margin:12px 0;font-size:13px;border-radius:4px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{flex:1 1 200px;border:1px solid #cfd8dc;border-left-width:5px;border-radius:4px;padding:8px 12px}
.card .k{font-size:12px;color:#607d8b}
.card .v{font-size:26px;font-weight:700;margin:2px 0}
.card .v.small{font-size:16px}
.card .s{font-size:12px;color:#546e7a}
.chip{color:#fff;font-size:12px;font-weight:700;padding:2px 8px;border-radius:10px;vertical-align:middle;
text-transform:uppercase;letter-spacing:.03em}
h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #eceff1;padding-bottom:3px}
.help{font-size:12px;color:#546e7a;margin:2px 0 8px}
img{max-width:100%}
table.landmarks{border-collapse:collapse;width:100%;font-size:13px}
table.landmarks th{text-align:left;background:#eceff1;padding:5px 8px}
table.landmarks td{border-top:1px solid #eceff1;padding:6px 8px;vertical-align:top}
.muted{color:#78909c}
.drivers .driver{display:flex;align-items:center;gap:12px;margin:4px 0}
.track{position:relative;width:260px;height:18px;flex:none;background:#f5f7f8}
.track .bar{position:absolute;top:3px;height:12px;border-radius:2px}
.track .mid{position:absolute;left:50%;top:0;width:1px;height:18px;background:#90a4ae}
.pts{width:86px;flex:none;font-size:13px;font-weight:700;text-align:right}
.dtext{font-size:13px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:8px 14px}
figure{margin:0}
figcaption{font-size:11.5px;color:#546e7a;margin:0 4px}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:14px;height:3px;vertical-align:middle;margin-right:4px}
footer{font-size:12px;color:#546e7a;margin-top:26px;border-top:1px solid #eceff1;padding-top:8px}
footer dt{font-weight:700;margin-top:6px}
footer dd{margin:0 0 0 0}
@media print{body{background:#fff}main{padding:0}}
"""


def _legend(data: PatientData) -> str:
    if data.events is None or not len(data.events):
        return ""
    names = list(dict.fromkeys(data.events.sort_values("hours_since_infusion")["event"].astype(str)))
    return '<div class="legend">' + "".join(f'<span><i style="background:{treatment_colour(n)}"></i>{_e(n)}</span>'
                                            for n in names) + "</div>"


def _model_words(m: ModelInfo) -> str:
    words = f"{m.name} version {m.version}" if m.name and m.version else (m.name or m.uri)
    return words + (f" (@{m.alias})" if m.alias else "")


def _footer(data: PatientData) -> str:
    m = data.model
    version = _model_words(m)
    edges = [f"{100 * e:g}%" for e in m.band_edges]
    bands = (f"low &lt; {edges[0]} ≤ intermediate &lt; {edges[1]} ≤ high" if len(edges) == 2
             else ", ".join(edges))
    lm = ", ".join(f"{h:g}" for h in m.landmarks_hours)
    notes = "".join(f"<dd>{_e(n)}</dd>" for n in data.notes)
    return (f"<footer><dl><dt>Model</dt><dd>{_e(version)}; trained at landmarks {lm} h after infusion "
            f"(times more than {m.tolerance_hours:g} h outside them are not scored); predicts grade ≥3 CRS "
            f"(ASTCT) first reached within {m.horizon_hours:g} h after the prediction time.</dd>"
            f"<dt>Risk bands</dt><dd>{bands}.</dd>"
            "<dt>Which data a prediction uses</dt><dd>At each prediction time the model uses only results that "
            "were drawn and available by then, and treatments given by then.</dd>"
            "<dt>Drivers</dt><dd>The three largest contributions (TreeSHAP) to the prediction, each as the "
            "change in percentage points of the probability when that one contribution is taken out.</dd>"
            f"<dt>Use</dt><dd>{_e(DISCLAIMER)} {_e(USUAL_CARE)}</dd>{notes}"
            f"<dt>Report</dt><dd>made {_e(data.generated_at)} by crs-predict.</dd></dl></footer>")


def render_patient_report(data: PatientData) -> str:
    """The whole page as one HTML string: inline CSS and pictures, no script, no link out."""
    axis = time_axis(data)
    treatments = data.events if data.events is not None and len(data.events) else None
    severe = data.patient.get("severe_onset_hours")
    risk = risk_png(data.landmarks, data.curve, axis, list(data.model.band_edges), treatments=treatments,
                    status_words=STATUS_WORDS, horizon_hours=data.model.horizon_hours,
                    severe_onset_hours=float(severe) if severe is not None else None)
    latest = pd.concat([data.labs["hours_since_infusion"], _available(data.labs)]).max()
    synthetic = '<span class="synthetic">SYNTHETIC DATA</span>' if data.synthetic else ""
    as_of = f"latest result available at {when(float(latest))}" if np.isfinite(latest) else "no lab results"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Severe CRS risk report: patient {_e(data.patient_id)}</title><style>{CSS}</style></head>
<body><main>
<header><h1>Severe CRS risk report: patient {_e(data.patient_id)}{synthetic}</h1>
<div class="who">{_patient_line(data)} · day 0 = infusion</div>
<div class="meta">Data: {_e(as_of)}. Model: {_e(_model_words(data.model))}. Report made {_e(data.generated_at)}.</div>
</header>
<div class="disclaimer" role="note"><b>{_e(DISCLAIMER)}</b> {_e(USUAL_CARE)}</div>
{_summary(data)}
<section><h2>Predicted risk over time</h2>
<p class="help">Large dots: predictions at the landmarks the model was trained on, coloured by risk band. Thin
line: the same model recomputed each time a new result became available. Shaded background: the risk bands.</p>
<img data-chart="risk" alt="Predicted risk of grade 3 or higher CRS over time" src="data:image/png;base64,{risk}">
{_legend(data)}
</section>
<section><h2>Risk at each landmark</h2>{_landmark_table(data)}</section>
{_driver_bars(data)}
{_kinetics(data, axis)}
{_footer(data)}
</main></body></html>
"""
