"""`crs score`: stream a cohort through a registered model (batch serving I/O lives in :mod:`scoring`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HELP = "score a cohort with a registered model (streamed in patient chunks, one row per patient x landmark)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True,
                   help="folder of canonical tables, or with --format any supported input")
    p.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="read through the ingest readers; quarantined rows go to <out>.quarantine.parquet "
                        "(default: --cohort is a canonical folder)")
    p.add_argument("--model", default="models:/severe-crs@champion",
                   help="model URI; an alias is resolved to its version once, at the start")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--landmarks", default=None,
                      help="hours since infusion, e.g. 24,48 (default: the landmarks the model was trained on)")
    when.add_argument("--as-of", choices=["latest"], default=None, dest="as_of",
                      help="score each patient once, at their latest available result (bedside use; default: at --landmarks)")
    p.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv (written atomically)")
    p.add_argument("--reasons", default=None,
                   help="whose top-3 drivers to compute: all | none | above:P (default: above the first risk "
                        "band edge; TreeSHAP costs ~0.25 ms per row)")
    p.add_argument("--chunk-patients", type=int, default=None,
                   help="patients per chunk (default: params score.chunk_patients); bounds memory")
    from pipeline.common import add_engine_options

    add_engine_options(p, "--chunk-patients, else params score.chunk_patients")



def score(cohort_dir: Path, model_uri: str, landmarks: list[float] | None, out: Path, *, fmt: str | None = None,
          as_of_latest: bool = False, reasons: str | None = None, chunk_patients: int | None = None,
          progress: bool | None = None) -> dict[str, Any]:
    """Chunk size: `--chunk-patients`, else params `score.chunk_patients`."""
    from pipeline.common import configuration
    from scoring.batch import score_cohort

    chunk = chunk_patients or int(configuration()["score"]["chunk_patients"])
    return score_cohort(Path(cohort_dir), model_uri, Path(out), fmt=fmt, landmarks=landmarks,
                        as_of_latest=as_of_latest, reasons=reasons, chunk_patients=chunk, progress=progress)


def score_on_spark(args: argparse.Namespace, landmarks: list[float] | None, as_of_latest: bool) -> dict[str, Any]:
    """`--engine spark`: scoring.spark (PySpark imported only here)."""
    from pipeline.common import configuration
    from scoring.spark import score_cohort_spark

    per_group = args.patients_per_group or args.chunk_patients or int(configuration()["score"]["chunk_patients"])
    partition_by = [c.strip() for c in args.partition_by.split(",") if c.strip()] if args.partition_by else None
    return score_cohort_spark(args.cohort, args.model, args.out, fmt=args.format, landmarks=landmarks,
                              as_of_latest=as_of_latest, reasons=args.reasons, patients_per_group=per_group,
                              partition_by=partition_by, master=args.spark_master)


def run(args: argparse.Namespace) -> int:
    from pipeline.common import parse_landmarks
    from scoring.batch import format_summary

    started = time.time()
    as_of_latest = args.as_of == "latest"
    landmarks = parse_landmarks(args.landmarks) if args.landmarks else None
    if getattr(args, "engine", "local") == "spark":
        summary = score_on_spark(args, landmarks, as_of_latest)
    else:
        summary = score(args.cohort, args.model, landmarks, args.out, fmt=args.format, as_of_latest=as_of_latest,
                        reasons=args.reasons, chunk_patients=args.chunk_patients)
    print(format_summary(summary) + f"\n{time.time() - started:.1f}s in all, model loading included")
    for line in summary.get("warnings", []):
        print(f"crs score: warning: {line}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["score", *(sys.argv[1:] if argv is None else argv)], only="score")


if __name__ == "__main__":
    raise SystemExit(main())
