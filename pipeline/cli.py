"""The `crs` command line. Exit codes: 0 success, 2 a problem with the user's input, 1 internal error."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipeline.paths import quiet_telemetry

STAGE_HELP = "DVC stage; reads params.yaml in the project folder and writes under data/"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="crs", description=(
        "crs-predict: predict severe (grade >=3) CRS from serial blood biomarkers. "
        "Research software on a SYNTHETIC default cohort; no clinical validity."))
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("simulate", help="write a synthetic cohort (labs, patients, events as Parquet)")
    s.add_argument("--patients", type=int, required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--chunk-size", type=int, default=None, help="patients per streamed chunk")

    i = sub.add_parser("ingest", help="read a real cohort (long CSV/Parquet, CDISC SDTM, OMOP CDM) into the "
                       "canonical tables + quarantine.parquet + validation.json")
    i.add_argument("--format", choices=["long", "sdtm", "omop"], default=None)
    i.add_argument("--input", type=Path, default=None, help="the cohort folder")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("--chunk-rows", type=int, default=None, help="lab rows per streamed chunk")

    f = sub.add_parser("featurize", help="canonical cohort folder -> landmark feature matrix (Parquet)")
    f.add_argument("--cohort", type=Path, required=True)
    f.add_argument("--landmarks", required=True, nargs="+", help="hours since infusion, e.g. 24,48,72")
    f.add_argument("--out", type=Path, required=True)

    d = sub.add_parser("describe", help="kinetics-by-grade plot and comparison with published reference numbers")
    d.add_argument("--cohort", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True, help="folder for kinetics_by_grade.png, reference_comparison.csv")

    sub.add_parser("train", help=f"nested patient-grouped CV of the model and its baselines ({STAGE_HELP})")
    ev = sub.add_parser("evaluate", help=f"held-out metrics, plots and model card ({STAGE_HELP}); with --model "
                                         "and --cohort: external validation of a trained model on another cohort")
    ev.add_argument("--model", default=None, help="model URI, e.g. models:/severe-crs@champion")
    ev.add_argument("--cohort", type=Path, default=None, help="cohort folder (canonical) or input path with --format")
    ev.add_argument("--format", choices=["long", "sdtm", "omop"], default=None)
    ev.add_argument("--landmarks", default=None, help="hours since infusion (default: the model's landmarks)")
    ev.add_argument("--out", type=Path, default=Path("external_validation"), help="folder for metrics and plots")
    for name, text in (("explain", "SHAP values, beeswarm plot, mean |SHAP| table"),
                       ("register", "log the run to MLflow and register the model")):
        sub.add_parser(name, help=f"{text} ({STAGE_HELP})")

    m = sub.add_parser("models", help="the model registry: list | show | promote | rollback")
    m.add_argument("action", choices=["list", "show", "promote", "rollback"])
    m.add_argument("--name", default=None, help="registered model name (default: register.model_name in params)")
    m.add_argument("--version", default=None, help="version for show/promote")
    m.add_argument("--alias", default=None, help="alias for show (default champion) / promote (default champion)")

    c = sub.add_parser("score", help="score a cohort with a registered model (streamed in patient chunks)")
    c.add_argument("--cohort", type=Path, required=True,
                   help="folder of canonical tables, or with --format any supported input")
    c.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="read through the ingest readers; quarantined rows go to <out>.quarantine.parquet")
    c.add_argument("--model", default="models:/severe-crs@champion", help="model URI (alias resolved at start)")
    when = c.add_mutually_exclusive_group()
    when.add_argument("--landmarks", default=None, help="hours since infusion, e.g. 24,48 (default 24,48)")
    when.add_argument("--as-of", choices=["latest"], default=None, dest="as_of",
                      help="score each patient once, at their latest available result (bedside use)")
    c.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv")
    c.add_argument("--reasons", default=None, help="whose top-3 drivers to compute: all | none | above:P "
                   "(default: above the first risk band edge; TreeSHAP costs ~0.25 ms per row)")
    c.add_argument("--chunk-patients", type=int, default=None, help="patients per chunk (params score.chunk_patients)")
    return ap


def run(args: argparse.Namespace) -> int:
    from pipeline import stages
    from pipeline.params import parse_landmarks

    started = time.time()
    if args.command == "simulate":
        counts = stages.simulate(args.patients, args.seed, args.out, args.chunk_size)
        print(f"SYNTHETIC cohort written to {args.out}: {counts}")
    elif args.command == "ingest":
        v = stages.ingest(args.format, args.input, args.out, args.chunk_rows)
        print(f"{v['rows_in']} lab rows in: {v['rows_out']} canonical, {v['rows_quarantined']} quarantined "
              f"{v['by_reason']} -> {args.out} (see validation.json, quarantine.parquet)")
    elif args.command == "featurize":
        counts = stages.featurize(args.cohort, parse_landmarks(",".join(args.landmarks)), args.out)
        print(f"{counts['rows']} patient x landmark rows from {counts['patients']} patients, "
              f"{counts['lab_rows']} lab rows -> {args.out}")
    elif args.command == "describe":
        from cohorts.describe import format_comparison

        table = stages.describe(args.cohort, args.out)
        print(format_comparison(table))
        print(f"{int(table['within_tolerance'].sum())}/{len(table)} reference statistics within tolerance -> {args.out}")
    elif args.command == "train":
        meta = stages.train()
        print(f"trained on {meta['n_patients']} patients, {meta['n_rows']} landmark rows, {meta['n_events']} events")
    elif args.command == "evaluate" and (args.model or args.cohort):
        if not (args.model and args.cohort):
            from cohorts.errors import CohortError

            raise CohortError("External validation needs both --model and --cohort")
        landmarks = parse_landmarks(args.landmarks) if args.landmarks else None
        m = stages.evaluate_external(args.model, args.cohort, args.format, args.out, landmarks)["pooled"]
        print(f"external AUROC {m['xgb_kinetics.auroc']:.3f} (95% CI {m['xgb_kinetics.auroc_ci_low']:.3f}-"
              f"{m['xgb_kinetics.auroc_ci_high']:.3f}), calibration slope {m['xgb_kinetics.calibration_slope']:.2f}, "
              f"{m['n_patients']} patients, {m['n_events']} events -> {args.out}")
    elif args.command == "evaluate":
        m = stages.evaluate()["pooled"]
        print(f"held-out AUROC {m['xgb_kinetics.auroc']:.3f} (95% CI {m['xgb_kinetics.auroc_ci_low']:.3f}-"
              f"{m['xgb_kinetics.auroc_ci_high']:.3f}), {m['n_patients']} patients, {m['n_rows']} landmark rows, "
              f"{m['n_events']} events")
    elif args.command == "explain":
        top = stages.explain().head(5)
        print("top drivers (mean |SHAP|):\n" + top[["label", "mean_abs_shap"]].to_string(index=False))
    elif args.command == "models":
        return models_command(args)
    elif args.command == "register":
        result = stages.register()
        gate = result["gate"]
        print(f"registered {result['model_name']} version {result['version']} as {', '.join(result['aliases'])}")
        print(f"promotion gate: {gate['decision'].upper()}")
        for reason in gate["reasons"]:
            print(f"  - {reason}")
        print(f"champion is version {result['champion_version']}; tracking URI {result['tracking_uri']}")
    elif args.command == "score":
        from models.scoring import format_summary

        as_of_latest = args.as_of == "latest"
        landmarks = None if as_of_latest else parse_landmarks(args.landmarks or "24,48")
        summary = stages.score(args.cohort, args.model, landmarks, args.out, fmt=args.format,
                               as_of_latest=as_of_latest, reasons=args.reasons, chunk_patients=args.chunk_patients)
        print(format_summary(summary) + f"\n{time.time() - started:.1f}s in all, model loading included")
    return 0


def models_command(args: argparse.Namespace) -> int:
    """`crs models ...`: thin over MlflowClient, on the project's tracking URI (MLFLOW_TRACKING_URI wins)."""
    import pandas as pd

    from cohorts.errors import CohortError
    from models.registry import alias_version, client_for, list_versions, rollback, set_champion
    from pipeline.params import load_params

    params = load_params().get("register", {}) if args.name is None else {}
    name = args.name or params.get("model_name", "severe-crs")
    champion_alias = params.get("champion_alias", "champion")
    client, uri = client_for()
    try:
        client.get_registered_model(name)
    except Exception as exc:  # RestException when the model does not exist
        raise CohortError(f"No registered model {name!r} at {uri}; run `make run` (dvc repro) first") from exc
    if args.action == "list":
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(list_versions(client, name).to_string(index=False))
    elif args.action == "show":
        version = args.version or alias_version(client, name, args.alias or champion_alias)
        if version is None:
            raise CohortError(f"Model {name!r} has no alias {args.alias or champion_alias!r}")
        mv = client.get_model_version(name, version)
        run = client.get_run(mv.run_id)
        print(f"{name} version {mv.version}  aliases: {', '.join(mv.aliases) or '-'}  source: {mv.source}")
        for key in sorted(run.data.tags):
            if not key.startswith("mlflow."):
                print(f"  tag    {key} = {run.data.tags[key]}")
        for key in sorted(k for k in run.data.metrics if k.startswith("pooled.xgb_kinetics.")):
            print(f"  metric {key} = {run.data.metrics[key]:.4f}")
    elif args.action == "promote":
        if not args.version:
            raise CohortError("promote needs --version (see `crs models list`)")
        client.get_model_version(name, args.version)
        set_champion(client, name, str(args.version), args.alias or champion_alias)
        print(f"{name}: alias {args.alias or champion_alias} -> version {args.version} (promoted by hand)")
    elif args.action == "rollback":
        version = rollback(client, name, args.alias or champion_alias)
        print(f"{name}: alias {args.alias or champion_alias} rolled back to version {version}")
    return 0


def main(argv: list[str] | None = None) -> int:
    quiet_telemetry()
    args = _parser().parse_args(argv)
    from cohorts.errors import CohortError

    try:
        return run(args)
    except CohortError as exc:
        print(f"crs: input problem: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"crs: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
