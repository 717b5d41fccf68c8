"""Stage `describe`: is the cohort plausible? Kinetics by grade and published reference numbers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

HELP = "kinetics-by-grade plot, comparison with published reference numbers, early-signal realism report"


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cohort", type=Path, required=True, help="canonical cohort folder")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for kinetics_by_grade.png, reference_comparison.csv and realism.{csv,png}")


def describe(cohort_dir: Path, out_dir: Path) -> pd.DataFrame:
    """Writes kinetics_by_grade.png, reference_comparison.csv (targets with observed values) and the
    realism report realism.csv / realism.png (univariate AUROC of each analyte's latest value and fold
    change for grade >=3 in (L, L+72 h] at 24/48/72 h, per site world)."""
    from cohorts import sim_realism
    from cohorts.describe import (
        cohort_statistics,
        compare_with_targets,
        load_targets,
        plot_kinetics_by_grade,
    )
    from cohorts.io import read_cohort

    cohort = read_cohort(cohort_dir)
    grades = cohort.grades  # the grade course where the cohort records one (None otherwise)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = "SYNTHETIC cohort (simulator)" if cohort.provenance.get("synthetic") else f"cohort {cohort_dir.name}"
    plot_kinetics_by_grade(cohort.labs, cohort.patients, str(out_dir / "kinetics_by_grade.png"),
                           f"{label}: median and IQR per day, by maximum CRS grade")
    realism = sim_realism.realism_table(cohort.labs, cohort.patients)
    realism.to_csv(out_dir / "realism.csv", index=False, float_format="%.4f")
    sim_realism.plot_realism(realism, str(out_dir / "realism.png"),
                             f"{label}: univariate AUROC for grade >=3 CRS in (L, L+72 h]; bars = site pooled, "
                             "whiskers = range over site worlds")
    table = compare_with_targets(cohort_statistics(cohort.labs, cohort.patients, load_targets(), grades, realism))
    table.to_csv(out_dir / "reference_comparison.csv", index=False)
    return table


def run(args: argparse.Namespace) -> int:
    from cohorts.describe import format_comparison

    table = describe(args.cohort, args.out)
    print(format_comparison(table))
    print(f"{int(table['within_tolerance'].sum())}/{len(table)} reference statistics within tolerance -> {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["describe", *(sys.argv[1:] if argv is None else argv)], only="describe")


if __name__ == "__main__":
    raise SystemExit(main())
