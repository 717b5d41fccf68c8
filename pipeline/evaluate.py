"""Stage `evaluate`: held-out metrics with patient-level bootstrap CIs, ROC/PR/calibration/decision
curves and the TRIPOD+AI model card. With --model and --cohort: external validation of a trained
model on another cohort (same metrics and plots, nothing refitted)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = ("held-out metrics, plots and model card (DVC stage); with --model and --cohort: external "
        "validation of a trained model on another cohort")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model URI for external validation, e.g. models:/severe-crs@champion "
                                                "(default: none, the held-out DVC evaluation)")
    p.add_argument("--cohort", type=Path, default=None,
                   help="external cohort: a canonical folder, or an input path with --format (default: none)")
    p.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="read --cohort through the ingest readers (default: --cohort is a canonical folder)")
    p.add_argument("--landmarks", default=None, help="hours since infusion (default: the model's own landmarks)")
    p.add_argument("--out", type=Path, default=Path("external_validation"),
                   help="folder for the external metrics.json, predictions and plots")


def evaluate() -> dict[str, Any]:
    import pandas as pd

    from crs_settings.progress import Progress
    from features.chunks import folder_result_time_counts
    from features.landmarks import landmark_counts
    from features.transformer import KineticFeatures
    from models.baselines import published_m_easix
    from models.evaluate import evaluate_predictions, evaluation_steps
    from models.headline import headline
    from models.model_card import render_model_card
    from models.plots import write_curves
    from pipeline.common import cohort_provenance, path_of, stage_context

    root, p = stage_context("evaluate")
    e = p["evaluate"]
    model_dir = path_of(root, p, "model")
    features = json.loads((model_dir / "features.json").read_text())
    turnaround = KineticFeatures.from_dict(features).turnaround_map()
    oof = pd.read_parquet(path_of(root, p, "oof"))
    oof = oof.join(published_m_easix(read_m_easix_labs(path_of(root, p, "cohort") / "labs.parquet"), oof,
                                     turnaround_hours=_turnaround_of_inputs(turnaround)))
    with Progress(evaluation_steps(oof), unit="blocks", desc="crs evaluate (pooled, landmarks, subgroups)") as bar:
        metrics = evaluate_predictions(oof, int(e["n_bootstrap"]), int(e["seed"]), int(e["subgroup_min_events"]),
                                       progress=bar.update)
    claim_path = path_of(root, p, "claim")
    if claim_path.exists():  # the central claim (claim stage): repeated-CV ΔAUROC of nested feature sets
        metrics["claim"] = claim_headline(json.loads(claim_path.read_text()))
    prov = cohort_provenance(root, p)
    metrics["cohort"] = {"synthetic": bool(prov.get("synthetic", False)), "source": prov.get("source", "")}
    matrix = pd.read_parquet(path_of(root, p, "features"))
    # every landmark row: eligible, labelled, and the unknown ones left out (censored, onset unknown)
    metrics["landmark_rows"] = landmark_counts(matrix)
    # lab rows whose availability the feature build assumed (no result time), with the model's rule
    metrics["result_times"] = folder_result_time_counts(path_of(root, p, "cohort"), turnaround)
    label = "SYNTHETIC cohort" if prov.get("synthetic") else "held-out patients"
    write_curves(oof, metrics, path_of(root, p, "plots"), label, e["decision_thresholds"],
                 bands=(int(e["n_bootstrap"]), int(e["seed"])))
    meta = json.loads((model_dir / "meta.json").read_text())
    metrics["selection"] = family_selection(meta)  # the candidate family chosen per outer fold and finally
    path_of(root, p, "metrics_full").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    path_of(root, p, "metrics").write_text(json.dumps(headline(metrics), indent=2, sort_keys=True) + "\n")
    card = render_model_card(params=p, metrics=metrics, provenance=prov, matrix=matrix,
                             feature_names=features["feature_names"], train_meta=meta,
                             result_times=metrics["result_times"])
    path_of(root, p, "model_card").write_text(card)
    return metrics


def family_selection(meta: dict[str, Any]) -> dict[str, Any]:
    """What metrics_full.json says of the candidate selection (from the model's meta.json)."""
    folds = meta.get("outer_folds") or []
    return {"final_family": meta.get("family"), "candidates": list(meta.get("candidates") or []),
            "final_inner_auroc": meta.get("candidates_inner_auroc") or {},
            "family_per_outer_fold": [f.get("family") for f in folds],
            "inner_auroc_per_outer_fold": [f.get("candidates_inner_auroc") for f in folds],
            "rule": meta.get("selection_rule", "")}


def read_m_easix_labs(path: Path):
    """Only the LDH, CRP and platelet rows of a canonical labs.parquet (the m-EASIX inputs)."""
    import pandas as pd

    from models.baselines import M_EASIX_INPUTS

    columns = ["patient_id", "analyte", "hours_since_infusion", "value", "censor", "resulted_hours"]
    labs = pd.read_parquet(path, columns=columns, filters=[("analyte", "in", list(M_EASIX_INPUTS))])
    return labs.assign(analyte=labs["analyte"].astype(str), patient_id=labs["patient_id"].astype(str))


def _turnaround_of_inputs(turnaround: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """The model's availability rule for the m-EASIX inputs it knows (others: the registry default)."""
    from models.baselines import M_EASIX_INPUTS

    return tuple(sorted((code, float(h)) for code, h in turnaround.items() if code in M_EASIX_INPUTS))


def claim_headline(claim: dict[str, Any]) -> dict[str, Any]:
    """What metrics_full.json carries of claim.json: the deltas with CIs pooled, per landmark and on rows
    with a real baseline, and whether the claim was found."""
    out: dict[str, Any] = {"claim_found": claim["claim_found"], "serial_adds_to_absolute": claim["serial_adds_to_absolute"]}
    for subset, entry in claim["subsets"].items():
        if subset == "pooled" or subset.startswith("landmark ") or subset == "with real baseline":
            key = subset.replace("landmark ", "").replace(" ", "_")
            out[key] = {k: v for k, v in entry.items() if k.startswith("delta_auroc.") and "_corrected_t_" not in k
                        and not k.endswith("_repeat_sd") and "M2_minus_M0" not in k}
    return out


def evaluate_external(model_uri: str, cohort_path: Path, fmt: str | None, out_dir: Path,
                      landmarks: list[float] | None = None) -> dict[str, Any]:
    """`crs evaluate --model URI --cohort PATH`: the same metrics and plots on another cohort."""
    from cohorts.io import read_cohort
    from models.baselines import M_EASIX_INPUTS, published_m_easix
    from models.evaluate import evaluate_predictions
    from models.external import external_predictions
    from models.plots import write_curves
    from pipeline.common import configuration
    from scoring.batch import load_model

    e = configuration()["evaluate"]
    if fmt is None:
        cohort = read_cohort(cohort_path)
    else:
        from cohorts.ingest import ingest as run_ingest

        cohort = run_ingest(fmt, cohort_path).cohort
    loaded = load_model(model_uri)
    bundle = loaded.bundle
    landmarks = landmarks or list(bundle.meta["landmarks_hours"])
    table = external_predictions(bundle, cohort, landmarks)
    inputs = cohort.labs[cohort.labs["analyte"].astype(str).isin(M_EASIX_INPUTS)]
    table = table.join(published_m_easix(inputs, table,
                                         turnaround_hours=_turnaround_of_inputs(bundle.features.turnaround_map())))
    metrics = evaluate_predictions(table, int(e["n_bootstrap"]), int(e["seed"]), int(e["subgroup_min_events"]))
    metrics["model_uri"] = model_uri
    metrics["cohort"] = {"path": str(cohort_path), "format": fmt or "canonical",
                         "synthetic": bool(cohort.provenance.get("synthetic", False))}
    label = f"external: {cohort_path.name}" + (" (SYNTHETIC)" if metrics["cohort"]["synthetic"] else "")
    write_curves(table, metrics, out_dir, label, e["decision_thresholds"], bands=(int(e["n_bootstrap"]), int(e["seed"])))
    table.to_parquet(out_dir / "predictions.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    if loaded.name:  # a registered model: an MLflow evaluation run linked to the version evaluated
        from models.tracking import folder_digest, log_external_evaluation

        r = configuration(announce=False)["register"]
        metrics["mlflow_run_id"] = log_external_evaluation(
            experiment=r["experiment"], model_name=loaded.name, model_version=loaded.version, model_uri=model_uri,
            metrics=metrics, cohort_label=cohort_path.name, cohort_digest=folder_digest(cohort_path), cohort_rows=table,
            out_dir=out_dir, synthetic=metrics["cohort"]["synthetic"], settings=r)
    return metrics


def run(args: argparse.Namespace) -> int:
    from cohorts.errors import CohortError
    from pipeline.common import parse_landmarks

    if args.model or args.cohort:
        if not (args.model and args.cohort):
            raise CohortError("External validation needs both --model and --cohort")
        landmarks = parse_landmarks(args.landmarks) if args.landmarks else None
        result = evaluate_external(args.model, args.cohort, args.format, args.out, landmarks)
        m = result["pooled"]
        print(f"external AUROC {m['xgb_kinetics.auroc']:.3f} (95% CI {m['xgb_kinetics.auroc_ci_low']:.3f}-"
              f"{m['xgb_kinetics.auroc_ci_high']:.3f}), calibration slope {m['xgb_kinetics.calibration_slope']:.2f}, "
              f"{m['n_patients']} patients, {m['n_events']} events -> {args.out}")
        if run_id := result.get("mlflow_run_id"):
            print(f"MLflow evaluation run {run_id} (linked to the model version evaluated)")
        return 0
    m = evaluate()["pooled"]
    print(f"held-out AUROC {m['xgb_kinetics.auroc']:.3f} (95% CI {m['xgb_kinetics.auroc_ci_low']:.3f}-"
          f"{m['xgb_kinetics.auroc_ci_high']:.3f}), {m['n_patients']} patients, {m['n_rows']} landmark rows, "
          f"{m['n_events']} events")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["evaluate", *(sys.argv[1:] if argv is None else argv)], only="evaluate")


if __name__ == "__main__":
    raise SystemExit(main())
