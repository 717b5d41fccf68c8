"""`crs recalibrate`: a registered model's calibration refitted on a site's own labelled cohort.

The booster and the feature state stay as they are; the map from the booster's margin to a
probability is refitted (:mod:`models.recalibration`). Calibration before and after is reported
with patient-bootstrap CIs, the after-numbers cross-fitted (K patient-grouped folds), and the
result is registered as a new version of the model (alias `challenger`; the usual promotion gates,
judged on the cross-fitted numbers, decide `champion`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HELP = ("site recalibration: refit a registered model's calibration (intercept and slope) on a local "
        "labelled cohort; report before/after with CIs; register the result as a new version (challenger)")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model URI, e.g. models:/severe-crs@champion or models:/severe-crs/3")
    p.add_argument("--cohort", type=Path, required=True,
                   help="the site's labelled cohort: a canonical folder, or an input path with --format")
    p.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="read --cohort through the ingest readers (default: --cohort is a canonical folder)")
    p.add_argument("--landmarks", default=None, help="hours since infusion (default: the model's own landmarks)")
    p.add_argument("--method", choices=["logistic", "intercept"], default=None,
                   help="logistic: intercept and slope; intercept: recalibration in the large (few events) "
                        "(default: params recalibrate.method)")
    p.add_argument("--folds", type=int, default=None,
                   help="patient-grouped folds for the cross-fitted after-numbers (default: params recalibrate.folds)")
    p.add_argument("--out", type=Path, default=Path("recalibration"),
                   help="folder for recalibration.json, metrics.json, predictions and the calibration plot")
    p.add_argument("--no-register", action="store_true", help="report only; register nothing")


def read_site_cohort(path: Path, fmt: str | None):
    from cohorts.io import read_cohort

    if fmt is None:
        return read_cohort(path)
    from cohorts.ingest import ingest as run_ingest

    return run_ingest(fmt, path).cohort


def recalibrate_model(model_uri: str, cohort_path: Path, out_dir: Path, *, fmt: str | None = None,
                      landmarks: list[float] | None = None, method: str | None = None, folds: int | None = None,
                      register: bool = True) -> dict[str, Any]:
    from cohorts.errors import CohortError
    from models.bundle import ModelBundle
    from models.evaluate import evaluate_predictions
    from models.external import external_predictions
    from models.plots import write_recalibration
    from models.recalibration import recalibrate
    from pipeline.common import configuration
    from scoring.batch import load_model

    params = configuration()
    r, e = params["recalibrate"], params["evaluate"]
    method = method or str(r["method"])
    folds = int(folds or r["folds"])
    cohort = read_site_cohort(cohort_path, fmt)
    loaded = load_model(model_uri)
    bundle = loaded.bundle
    landmarks = landmarks or [float(x) for x in bundle.meta["landmarks_hours"]]
    table = external_predictions(bundle, cohort, landmarks)
    if bundle.calibration.get("method") == "isotonic" and method == "intercept":
        raise CohortError("This model is calibrated by isotonic regression, which has no slope to keep: "
                          "use --method logistic")
    result = recalibrate(table["margin"].to_numpy(), table["label"].to_numpy(), table["patient_id"].to_numpy(),
                         bundle.calibration, method=method, folds=folds, n_boot=int(e["n_bootstrap"]),
                         seed=int(r["seed"]), threshold=float(bundle.meta.get("operating_threshold", float("nan"))))
    crossed = table.assign(probability=result["cross_fitted_probability"], threshold=result["threshold"],
                           fold=result["fold"])
    metrics = evaluate_predictions(crossed, int(e["n_bootstrap"]), int(e["seed"]), int(e["subgroup_min_events"]))
    synthetic = bool(cohort.provenance.get("synthetic", False))
    source = {"model_uri": model_uri, "model_name": loaded.name, "model_version": loaded.version}
    summary = {"source": source, "method": result["method"], "scale": result["scale"],
               "calibration": result["calibration"], "previous_calibration": result["previous_calibration"],
               "operating_threshold": {"before": bundle.meta.get("operating_threshold"), "after": result["threshold"]},
               "folds": result["folds"], "n_bootstrap": result["n_bootstrap"], "counts": result["counts"],
               "cohort": {"path": str(cohort_path), "format": fmt or "canonical", "synthetic": synthetic},
               "report": result["report"]}
    metrics["model_uri"] = model_uri
    metrics["cohort"] = summary["cohort"]
    metrics["recalibration"] = {k: summary[k] for k in ("method", "calibration", "counts")}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "recalibration.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    crossed.assign(probability_before=table["probability"]).to_parquet(out_dir / "predictions.parquet", index=False)
    label = f"site cohort {cohort_path.name}" + (" (SYNTHETIC)" if synthetic else "")
    write_recalibration(table["label"].to_numpy(), {"before": table["probability"].to_numpy(),
                                                    "after (cross-fitted)": crossed["probability"].to_numpy()},
                        out_dir, label)
    if register:
        meta = {**bundle.meta, "operating_threshold": result["threshold"],
                "recalibration": {**source, "method": result["method"], "previous_calibration": bundle.calibration,
                                  "cohort_patients": result["counts"]["n_patients"],
                                  "cohort_event_patients": result["counts"]["n_event_patients"]}}
        recalibrated = ModelBundle(bundle.booster, bundle.features, result["calibration"], meta)
        summary["registration"] = register_recalibrated(recalibrated, loaded, cohort, crossed, landmarks, metrics,
                                                        params, out_dir, summary)
        (out_dir / "recalibration.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def register_recalibrated(bundle, loaded, cohort, crossed, landmarks, metrics, params, out_dir: Path,
                          summary: dict[str, Any]) -> dict[str, Any]:
    """A new version of the registered model through the registry's one entry point (gates as usual).

    Its record of training patients is the source version's (the booster's) plus this cohort's
    (the calibration's), under the source record's salt, so a later gate never compares on either.
    The comparison with the champion uses only this cohort's patients the champion never saw."""
    from crs_settings import project_root, reference_dir
    from models.external import external_predictions
    from models.gates import ChampionComparison
    from models.model_input import synthetic_example
    from models.registry import Registry
    from models.tracking import Registration, log_and_register
    from models.training_patients import TrainingPatients
    from pipeline.register import champion_training_patients, compare_on_unseen_patients
    from scoring.batch import load_model

    g = params["register"]
    root = project_root()
    minimum = int(g["gates"]["min_comparison_events"])
    name = loaded.name or g["model_name"]
    patient_ids = cohort.patients["patient_id"].astype(str)
    source_record = None
    if loaded.name and loaded.version:
        registry = Registry.open(name, root, g)
        source_record = champion_training_patients(registry, registry.version(str(loaded.version)))
    if source_record is not None:
        local = TrainingPatients.build(patient_ids, salt=source_record.salt)
        record = TrainingPatients(source_record.salt, source_record.digests | local.digests, "")
    else:
        record = TrainingPatients.build(patient_ids)
    example_settings = g["input_example"]
    example = synthetic_example(dict(example_settings["therapy_mix"]), int(example_settings["patients"]),
                                int(example_settings["seed"]))

    def compare(registry, champion) -> ChampionComparison:
        version = str(champion.version)
        champion_record = champion_training_patients(registry, champion)
        result = compare_on_unseen_patients(
            crossed, champion_record, version, minimum,
            lambda unseen: external_predictions(load_model(f"models:/{champion.name}/{version}").bundle, cohort,
                                                landmarks))
        if champion_record is not None:
            result.how = result.how + " (challenger: cross-fitted)"
        return result

    tags = {"crs.kind": "recalibration", "recalibrated_from": f"{loaded.name}/{loaded.version}".strip("/"),
            "source_model_uri": loaded.uri, "recalibration.method": summary["method"],
            "cohort.synthetic": str(summary["cohort"]["synthetic"]).lower(),
            "patients": str(summary["counts"]["n_patients"]), "events": str(summary["counts"]["n_event_rows"]),
            "prevalence": f"{crossed['label'].mean():.4f}",
            "training_patients.source_record": str(source_record is not None).lower()}
    with tempfile.TemporaryDirectory(prefix="crs-recalibrated-") as tmp:
        bundle_dir = Path(tmp) / "model"
        bundle.save(bundle_dir)
        registration = Registration(
            model_name=name, experiment=g["experiment"], bundle_dir=bundle_dir, reference_dir=reference_dir(root),
            params={"recalibrate": {k: summary[k] for k in ("method", "folds", "n_bootstrap")},
                    "source": summary["source"], "cohort": {k: v for k, v in summary["cohort"].items() if k != "path"}},
            metrics={k: v for k, v in metrics.items() if k in ("pooled", "by_landmark", "subgroups")},
            training_patients=record, input_example=example, gates=g["gates"],
            run_name=f"recalibrate {tags['recalibrated_from']} on {Path(summary['cohort']['path']).name}",
            run_description=(f"Site recalibration ({summary['method']}) of {loaded.uri} on "
                             f"{summary['counts']['n_patients']} patients; metrics cross-fitted on that cohort."),
            model_description=f"Recalibrated from {loaded.uri} ({summary['method']}).",
            tags=tags, version_tags={k: tags[k] for k in ("crs.kind", "recalibrated_from", "recalibration.method")},
            artifacts=[out_dir / "recalibration.json", out_dir / "metrics.json",
                       out_dir / "calibration_before_after.png"],
            compare=compare, challenger_alias=g["challenger_alias"], champion_alias=g["champion_alias"], settings=g)
        return log_and_register(registration, root)


def _line(block: dict[str, Any], key: str, digits: int = 3) -> str:
    m = block[key]
    return f"{m['value']:.{digits}f} ({m['ci_low']:.{digits}f} to {m['ci_high']:.{digits}f})"


def run(args: argparse.Namespace) -> int:
    from pipeline.common import parse_landmarks

    landmarks = parse_landmarks(args.landmarks) if args.landmarks else None
    s = recalibrate_model(args.model, args.cohort, args.out, fmt=args.format, landmarks=landmarks,
                          method=args.method, folds=args.folds, register=not args.no_register)
    rep, c = s["report"], s["counts"]
    print(f"recalibrated {args.model} ({s['method']}) on {c['n_patients']} patients, {c['n_rows']} landmark rows, "
          f"{c['n_event_patients']} patients with grade >=3 CRS; 95% CIs from {s['n_bootstrap']} patient resamples")
    print(f"{'':31}{'intercept':>26}{'slope':>26}{'Brier':>28}")
    for name, text in (("before", "before"), ("after_cross_fitted", f"after ({s['folds']}-fold cross-fitted)"),
                       ("after_in_sample", "after (in-sample, optimistic)")):
        b = rep[name]
        print(f"{text:31}{_line(b, 'calibration_intercept'):>26}{_line(b, 'calibration_slope'):>26}"
              f"{_line(b, 'brier', 4):>28}")
    if c["n_event_patients"] < 50 and s["method"] == "logistic":
        print("note: fewer than 50 patients with the outcome; a slope fitted on so few is unstable "
              "(--method intercept refits only the intercept)")
    reg = s.get("registration")
    if reg:
        print(f"registered {reg['model_name']} version {reg['version']} as {', '.join(reg['aliases'])}; "
              f"gate {reg['gate']['decision'].upper()}: " + "; ".join(reg["gate"]["reasons"]))
    print(f"report: {args.out / 'recalibration.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["recalibrate", *(sys.argv[1:] if argv is None else argv)], only="recalibrate")


if __name__ == "__main__":
    raise SystemExit(main())
