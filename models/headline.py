"""The headline of an evaluation: about twenty numbers that `dvc metrics show`, `dvc metrics diff` and
`dvc exp show` can print at a glance. The full table (every comparator, landmark, subgroup and count)
stays in the evaluate stage's `metrics_full.json`; this is a pure selection from it, never a new number.

Layout (DVC flattens nested keys with dots, e.g. `model.auroc`, `auroc_by_landmark.24h`):

- `model`: the primary model's pooled held-out AUROC with its 95% CI, AUPRC, Brier score, calibration
  slope, and sensitivity/specificity at the operating point;
- `auroc_by_landmark`: its AUROC at each landmark;
- `delta_auroc`: paired ΔAUROC against the single-value logistic baseline and m-EASIX at its published
  day +1, each with the lower CI bound (a gain only counts when the bound is above 0);
- `claim`: the central claim's pooled ΔAUROC M2 − M1 (baseline-relative over baseline-free serial
  features) with its CI, and M1 − M0 (serial over latest values);
- `cohort`: held-out patients and patients with an event.
"""

from __future__ import annotations

from typing import Any

from models.evaluate import hours_of_label

PRIMARY = "xgb_kinetics"
MODEL_KEYS = ("auroc", "auroc_ci_low", "auroc_ci_high", "auprc", "brier", "calibration_slope",
              "sensitivity_at_operating_point", "specificity_at_operating_point")
COMPARATORS = (("single_value", "lr_single_value"), ("m_easix_day_plus1", "m_easix_day_plus1"))
CLAIM_KEYS = (("M2_minus_M1", "delta_auroc.M2_minus_M1"), ("M2_minus_M1_ci_low", "delta_auroc.M2_minus_M1_ci_low"),
              ("M2_minus_M1_ci_high", "delta_auroc.M2_minus_M1_ci_high"), ("M1_minus_M0", "delta_auroc.M1_minus_M0"),
              ("M1_minus_M0_ci_low", "delta_auroc.M1_minus_M0_ci_low"))
COHORT_KEYS = (("patients", "n_patients"), ("event_patients", "n_event_patients"))
DIGITS = 4


def headline(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The headline numbers of a full metrics table (`models.evaluate.evaluate_predictions` plus the
    evaluate stage's `claim`), rounded to 4 decimals; a number the table lacks is left out, not invented."""
    pooled = metrics.get("pooled", {})
    by_landmark = {lm: t.get(f"{PRIMARY}.auroc")
                   for lm, t in sorted((metrics.get("by_landmark") or {}).items(), key=lambda kv: hours_of_label(kv[0]))}
    out: dict[str, dict[str, float]] = {
        "model": _pick(pooled, ((k, f"{PRIMARY}.{k}") for k in MODEL_KEYS)),
        "auroc_by_landmark": _pick(by_landmark, ((lm, lm) for lm in by_landmark)),
        "delta_auroc": _pick(pooled, (pair for name, comparator in COMPARATORS for pair in (
            (f"vs_{name}", f"delta_auroc.{PRIMARY}_minus_{comparator}"),
            (f"vs_{name}_ci_low", f"delta_auroc.{PRIMARY}_minus_{comparator}_ci_low")))),
        "claim": _pick((metrics.get("claim") or {}).get("pooled", {}), CLAIM_KEYS),
        "cohort": _pick(pooled, COHORT_KEYS),
    }
    return {section: values for section, values in out.items() if values}


def _pick(table: dict[str, Any], pairs) -> dict[str, float]:
    out = {}
    for name, key in pairs:
        value = table.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            out[name] = int(value) if isinstance(value, int) else round(float(value), DIGITS)
    return out

