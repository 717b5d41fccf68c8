"""Model card in Markdown, following the TRIPOD+AI (BMJ 2024) headings. Every value comes from
the run (params, metrics, cohort provenance); nothing is typed in by hand."""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.evaluate import hours_of_label

HEADINGS = [
    "Intended use", "Source of data", "Eligibility", "Treatments received", "Outcome",
    "Predictors and their timing", "Sample size and events", "Missing data", "Model and tuning",
    "Class imbalance", "Performance", "Calibration", "Clinical utility", "Fairness by subgroup",
    "Limitations",
]


def _ci(block: dict[str, Any], key: str, digits: int = 3) -> str:
    value = block.get(key)
    if value is None or value != value:
        return "not estimable"
    lo, hi = block.get(f"{key}_ci_low"), block.get(f"{key}_ci_high")
    if lo is None or lo != lo:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} (95% CI {lo:.{digits}f}–{hi:.{digits}f})"


def _words(settings: dict[str, Any]) -> str:
    """{'max_depth': [3, 5]} -> 'max_depth 3 or 5' (no braces in the card)."""
    if not settings:
        return "the fixed settings only"
    parts = []
    for key, value in settings.items():
        value = " or ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        parts.append(f"{key} {value}")
    return ", ".join(parts)


def performance_table(metrics: dict[str, Any]) -> str:
    rows = ["| rows | model | AUROC | AUPRC | Brier |", "|---|---|---|---|---|"]
    blocks = {"pooled": metrics["pooled"], **{f"landmark {k}": v for k, v in metrics["by_landmark"].items()}}
    for label, block in blocks.items():
        for name in metrics.get("models", {}):
            if f"{name}.auroc" not in block:
                continue
            brier = _ci(block, f"{name}.brier") if f"{name}.brier" in block else "n/a (not a probability)"
            rows.append(f"| {label} | {name} | {_ci(block, f'{name}.auroc')} | {_ci(block, f'{name}.auprc')} | {brier} |")
    return "\n".join(rows)


COUNT_COLUMNS = [("rows", "rows"), ("already_severe", "already severe"), ("not_observed", "not observed at L"),
                 ("eligible", "eligible"), ("labelled", "labelled"), ("events", "events"),
                 ("unknown_censored", "unknown: censored"), ("unknown_onset", "unknown: onset time"),
                 ("unknown_outcome", "unknown: no outcome")]


def label_count_table(counts: dict[str, dict[str, int]]) -> str:
    """Per landmark and pooled: who was eligible, labelled, and why the others were not."""
    rows = ["| landmark | " + " | ".join(label for _, label in COUNT_COLUMNS) + " |",
            "|---" * (len(COUNT_COLUMNS) + 1) + "|"]
    for name, block in counts.items():
        rows.append(f"| {name} | " + " | ".join(str(int(block.get(key, 0))) for key, _ in COUNT_COLUMNS) + " |")
    return "\n".join(rows)


def result_time_lines(result_times: dict[str, dict[str, float]]) -> str:
    """One line per analyte: rows without a result time and the turnaround assumed for them."""
    lines = []
    for code, c in result_times.items():
        hours = float(c["turnaround_hours"])
        rule = (f"assumed available {hours:g} h after the draw" if hours > 0
                else "assumed available at the draw (a same-day lab)")
        lines.append(f"- {code}: {int(c['without_result_time'])} of {int(c['rows'])} rows had no result time; "
                     f"{rule}.")
    return "\n".join(lines)


def _treatment_naive_text(metrics: dict[str, Any]) -> str:
    block = metrics.get("treatment_naive")
    if not block:
        return ""
    text = (f" Treatment-naive rows ({block['definition']}): {block['n_rows']} held-out rows "
            f"({block['share_of_rows']:.0%})")
    if "pooled" in block:
        naive = block["pooled"]
        return (text + f", {naive['n_events']} with the outcome; AUROC {_ci(naive, 'xgb_kinetics.auroc')}, "
                f"calibration slope {_ci(naive, 'xgb_kinetics.calibration_slope')} (metrics_full.json treatment_naive).")
    return text + "; too few to estimate performance."


def selection_text(selection: dict[str, Any] | None) -> str:
    """The candidate family chosen in each outer fold and for the final model, with the inner AUROCs."""
    if not selection or not selection.get("final_family"):
        return ""
    inner = ", ".join(f"{k} {v:.3f}" for k, v in sorted((selection.get("final_inner_auroc") or {}).items()))
    folds = ", ".join(f"fold {i}: {f}" for i, f in enumerate(selection.get("family_per_outer_fold") or []))
    return (f"\n\nCandidate families ({', '.join(selection.get('candidates') or [])}) compete inside each outer fold on "
            f"its inner folds only ({selection.get('rule', '')}). Chosen per outer fold: {folds or 'not recorded'}. "
            f"Final model: **{selection['final_family']}** (inner AUROC {inner}).")


def claim_text(claim: dict[str, Any] | None) -> str:
    """The central claim (claim stage): ΔAUROC of nested feature sets from repeated CV, with CIs."""
    if not claim:
        return "Central claim: not measured in this run."
    lines = ["Central claim, measured so it can fail (nested feature sets with the same non-kinetic inputs, "
             "one fixed XGBoost, repeated patient-grouped CV; 95% CI from a patient bootstrap within repeats; "
             "data/claim.json, claim.png): M0 latest values; M1 + baseline-free serial features and treatments; "
             "M2 + baseline-relative features.", "", "| rows | M1 − M0 | M2 − M1 (the claim) |", "|---|---|---|"]
    scopes = [k for k, v in claim.items() if isinstance(v, dict)]
    order = sorted(scopes, key=lambda k: (k != "pooled", k.startswith("with"), hours_of_label(k)))
    for scope in order:
        block = claim[scope]
        cells = [_ci(block, f"delta_auroc.{a}_minus_{b}") for a, b in (("M1", "M0"), ("M2", "M1"))]
        lines.append(f"| {scope.replace('_', ' ')} | {cells[0]} | {cells[1]} |")
    found = claim.get("claim_found")
    verdict = ("not estimable (too few patients with an event)" if found is None else
               "found: the pooled CI lies above 0" if found else "not found: the pooled CI does not lie above 0")
    return "\n".join(lines) + f"\n\nBaseline-relative kinetics add to baseline-free serial features: {verdict}."


def render_model_card(*, params: dict[str, Any], metrics: dict[str, Any], provenance: dict[str, Any],
                      matrix: pd.DataFrame, feature_names: list[str], train_meta: dict[str, Any],
                      result_times: dict[str, dict[str, float]] | None = None) -> str:
    """`result_times`: per analyte the rows without a result time and the turnaround assumed for
    them (cohorts.schema.result_time_counts with the model's turnaround map)."""
    from features.landmarks import landmark_counts

    f, t = params["featurize"], params["train"]
    pooled = metrics["pooled"]
    synthetic = bool(provenance.get("synthetic"))
    source = (f"SYNTHETIC cohort from the crs-predict simulator version {provenance.get('simulator_version')} "
              f"(seed {provenance.get('seed')}, {provenance.get('patients')} patients). It is not patient data; "
              "no clinical validity is claimed." if synthetic else
              f"Real cohort read from {provenance.get('path', 'an unnamed source')} "
              f"(format {provenance.get('format', 'canonical tables')}).")
    eligible = matrix[matrix["eligible"]]
    analytes = list(f["analytes"]) + list(f.get("covariate_analytes", []))
    missing_lines = []
    for a in analytes:
        col = f"{a}__n_draws"
        if col in eligible:
            share = float((eligible[col] == 0).mean())
            base = f"{a}__has_baseline"
            no_base = f", no pre-infusion baseline in {float((eligible[base] == 0).mean()):.0%}" if base in eligible else ""
            missing_lines.append(f"- {a}: no result available at the landmark in {share:.0%} of eligible rows{no_base}.")
    op = {k.split(".", 1)[1]: v for k, v in pooled.items() if k.startswith("xgb_kinetics.") and "operating_point" in k
          and not k.endswith(("_ci_low", "_ci_high"))}
    op_text = ", ".join(f"{k.replace('_at_operating_point', '')} {_ci(pooled, 'xgb_kinetics.' + k)}" for k in op)
    deltas = [k for k in pooled if k.startswith("delta_auroc.") and not k.endswith(("_ci_low", "_ci_high"))]
    delta_text = "\n".join(f"- {k.removeprefix('delta_auroc.').replace('_', ' ')}: {_ci(pooled, k)}" for k in deltas)
    subgroup_lines = []
    for column, groups in metrics.get("subgroups", {}).items():
        for value, g in groups.items():
            est = g.get("suppressed") or (f"AUROC {g['auroc']:.3f} (95% CI {g['auroc_ci_low']:.3f}–{g['auroc_ci_high']:.3f}),"
                                          f" observed {g['observed_rate']:.3f} vs mean predicted {g['mean_predicted']:.3f}")
            subgroup_lines.append(f"| {column} | {value} | {g['n_patients']} | "
                                  f"{g.get('n_event_patients', 'n/a')} ({g['n_events']}) | {est} |")
    counts = (metrics.get("landmark_rows") or
              (landmark_counts(matrix) if "outcome_status" in matrix else None))
    count_text = ("\n\n" + label_count_table(counts)) if counts else ""
    pooled_counts = (counts or {}).get("pooled", {})
    unknown = sum(int(pooled_counts.get(k, 0)) for k in ("unknown_censored", "unknown_onset", "unknown_outcome"))
    timing_text = ("\n\nResult times: a lab row without one is never taken as known at its draw: it counts from "
                   "the draw plus the analyte's assumed turnaround (data/reference/analytes.csv "
                   "default_turnaround_hours, params featurize.assume_turnaround_hours).\n"
                   + result_time_lines(result_times)) if result_times else ""
    scale = "ASTCT 2019 scale in the simulated cohort" if synthetic else "on the cohort's grading scale"
    sections = {
        "Intended use": "Research and methods development: ranking patients by risk of severe (grade ≥3) cytokine "
                        "release syndrome after CAR T-cell or bispecific therapy, at fixed landmark times, from "
                        "serial blood biomarkers. Not a medical device; not for treatment decisions.",
        "Source of data": source,
        "Eligibility": f"Patient × landmark rows at landmarks {f['landmarks_hours']} hours after infusion. A row "
                       "is eligible when grade ≥3 CRS is not known by the landmark and the patient was still "
                       "observed at it (followup_hours ≥ L; where follow-up is unknown, the patient's last record "
                       "is a lower bound and nothing later is assumed). For ASTCT-graded patients grade ≥3 is "
                       "known from the earlier of the graded onset and the first vasopressor (ASTCT 2019: "
                       "hypotension that needs a vasopressor is grade 3)." + count_text,
        "Treatments received": "Therapies in the cohort: "
                               + ", ".join(sorted(matrix["therapy"].dropna().astype(str).unique()))
                               + ". Treatments given at or before a landmark ("
                               + ", ".join(f.get("event_types", [])) + ") are predictors (tocilizumab raises "
                                 "serum IL-6). Vasopressors are not: under ASTCT they are the outcome itself. "
                                 "Predictions are made under usual care (treatment given on clinical grounds) "
                                 "and are not the risk without treatment." + _treatment_naive_text(metrics),
        "Outcome": f"Grade ≥3 CRS ({scale}) first reached within {f['horizon_hours']} hours after the landmark: "
                   f"(L, L + {f['horizon_hours']} h]. The label is 0 only when the patient was observed to "
                   f"L + {f['horizon_hours']} h without it; otherwise it is unknown (follow-up ended first, or "
                   "grade ≥3 was recorded without an onset time) and the row is left out of training and "
                   "evaluation, counted under Eligibility.",
        "Predictors and their timing": f"{len(feature_names)} features, using only results drawn and resulted "
                                       "at or before the landmark: per analyte baseline, latest value, fold change "
                                       "vs baseline, serial ratios, slopes, time since rise, counts; clinical "
                                       "covariates; treatments before the landmark"
                                       + ("; the highest CRS grade recorded by the landmark (grade course)"
                                          if "current_grade" in feature_names else "")
                                       + ". Analytes: " + ", ".join(analytes) + "." + timing_text,
        "Sample size and events": f"{pooled['n_patients']} patients, {pooled['n_rows']} eligible landmark rows with "
                                  f"a known outcome, {pooled['n_events']} rows with the outcome in "
                                  f"{pooled.get('n_event_patients', 'an unknown number of')} patients (row prevalence "
                                  f"{pooled['prevalence']:.3f})"
                                  + (f"; {unknown} eligible rows with an unknown outcome left out." if counts else "."),
        "Missing data": "Absent analytes stay missing (XGBoost routes them natively) with explicit indicators; no "
                        "value is imputed for the primary model.\n" + "\n".join(missing_lines),
        "Model and tuning": f"XGBoost (hist), {t['n_folds']} outer patient-grouped stratified folds; hyperparameters "
                            f"from the grid ({_words(t.get('search_space', {}))}) chosen on {t.get('inner_folds', 3)} inner folds "
                            f"with early stopping on inner validation patients only; {t.get('calibration', 'sigmoid')} "
                            f"calibration on inner out-of-fold margins. Final model: {train_meta.get('n_rounds')} "
                            f"rounds, chosen {_words(train_meta.get('chosen_params', {}))}."
                            + selection_text(metrics.get("selection")),
        "Class imbalance": "No resampling or class weights (they distort calibration); the operating point is "
                           f"chosen on training folds for sensitivity ≥ {t.get('target_sensitivity', 0.9)}.",
        "Performance": "Held-out (outer-fold) patients, patient-level bootstrap 95% CIs "
                       f"({params['evaluate']['n_bootstrap']} resamples).\n\n" + performance_table(metrics)
                       + "\n\nKinetics vs comparators (paired bootstrap ΔAUROC, one split):\n" + (delta_text or "- not computed")
                       + "\n\n" + claim_text(metrics.get("claim")),
        "Calibration": f"Calibration slope {_ci(pooled, 'xgb_kinetics.calibration_slope')}, intercept "
                       f"{_ci(pooled, 'xgb_kinetics.calibration_intercept')} (ideal 1 and 0). See calibration.png.",
        "Clinical utility": f"At the operating point: {op_text or 'not computed'}. Decision curves: "
                            "decision_curve.png (pooled) and decision_curves_by_landmark.png (pooled and per "
                            "landmark, with 95% patient-bootstrap bands).",
        "Fairness by subgroup": f"Estimates suppressed below {params['evaluate'].get('subgroup_min_events', 10)} "
                                "patients with (or without) an event.\n\n"
                                "| by | group | patients | event patients (event rows) | estimate |\n|---|---|---|---|---|\n"
                                + "\n".join(subgroup_lines),
        "Limitations": ("Trained and evaluated on SIMULATED data whose kinetics are assumptions grounded in "
                        "published summaries; performance on real cohorts is unknown and expected to be lower "
                        "(external validation typically loses about 10 points). " if synthetic else "")
                       + "Grading scales differ between trials; send-out cytokines are often unavailable at the "
                         "landmark, and where a cohort gives no result times the assumed turnaround may be too "
                         "short or too long for a site; rows with an unknown outcome are left out, which biases "
                         "the estimates if follow-up ends for reasons related to risk; internal validation only "
                         "unless run with `crs evaluate --model --cohort`.",
    }
    body = [f"# Model card: severe CRS (grade ≥3) risk — {'SYNTHETIC data' if synthetic else 'real cohort'}", ""]
    for heading in HEADINGS:
        body += [f"## {heading}", "", sections[heading], ""]
    return "\n".join(body)
