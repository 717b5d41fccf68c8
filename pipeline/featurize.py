"""Stage `featurize`: canonical cohort folder → landmark feature matrix (one row per patient × landmark).

The feature definition is params.yaml `featurize` (the project's, or the packaged defaults outside
a project). Streamed in patient chunks: memory is bounded whatever the cohort size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "canonical cohort folder -> landmark feature matrix (Parquet)"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True, help="canonical cohort folder (from simulate or ingest)")
    p.add_argument("--landmarks", nargs="+", default=None,
                   help="hours since infusion, e.g. 24,48,72 (default: params featurize.landmarks_hours)")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file")
    from pipeline.common import add_engine_options

    add_engine_options(p, "params featurize.chunk_patients")


def featurize(cohort_dir: Path, landmarks: list[float] | None, out: Path) -> dict[str, int]:
    from cohorts.errors import CohortError
    from features.chunks import featurize_folder
    from features.transformer import KineticFeatures
    from pipeline.common import configuration, parse_landmarks

    cohort_dir = Path(cohort_dir)
    if not cohort_dir.is_dir():
        raise CohortError(f"Cohort folder {cohort_dir} does not exist or is not a folder")
    for name in ("labs", "patients"):
        if not (cohort_dir / f"{name}.parquet").exists():
            raise CohortError(f"Cohort folder {cohort_dir} has no {name}.parquet (expected the canonical "
                              "tables written by `crs simulate` or `crs ingest`)", file=str(cohort_dir))
    f = configuration()["featurize"]
    landmarks = landmarks or parse_landmarks(f["landmarks_hours"])
    # no events.parquet = treatments not recorded: features say "unknown" (NaN), not "not given"
    from cohorts.canonical_folder import open_parquet
    from crs_settings.progress import Progress

    total = int(open_parquet(cohort_dir / "patients.parquet").metadata.num_rows)  # unreadable: one clear error
    with Progress(total, unit="patients", desc="crs featurize") as bar:
        return featurize_folder(cohort_dir, out, KineticFeatures.from_params(f), landmarks,
                                chunk_patients=int(f["read_chunk_patients"]), progress=bar.update)


def run(args: argparse.Namespace) -> int:
    from pipeline.common import parse_landmarks

    landmarks = parse_landmarks(",".join(args.landmarks)) if args.landmarks else None
    if getattr(args, "engine", "local") == "spark":
        counts = featurize_on_spark(args, landmarks)
        print(f"{counts['rows']} patient x landmark rows from {counts['patients']} patients (Spark) -> {args.out}")
        return 0
    counts: dict[str, Any] = featurize(args.cohort, landmarks, args.out)
    print(f"{counts['rows']} patient x landmark rows from {counts['patients']} patients, "
          f"{counts['lab_rows']} lab rows -> {args.out}")
    return 0


def featurize_on_spark(args: argparse.Namespace, landmarks: list[float] | None) -> dict[str, Any]:
    """`--engine spark`: scoring.spark.featurize_folder_spark, the same KineticFeatures from params."""
    from features.spark import featurize_folder_spark
    from features.transformer import KineticFeatures
    from pipeline.common import configuration, parse_landmarks

    f = configuration()["featurize"]
    partition_by = [c.strip() for c in args.partition_by.split(",") if c.strip()] if args.partition_by else None
    return featurize_folder_spark(args.cohort, args.out, KineticFeatures.from_params(f),
                                  landmarks or parse_landmarks(f["landmarks_hours"]),
                                  patients_per_group=args.patients_per_group or int(f["chunk_patients"]),
                                  master=args.spark_master, partition_by=partition_by)


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["featurize", *(sys.argv[1:] if argv is None else argv)], only="featurize")


if __name__ == "__main__":
    raise SystemExit(main())
