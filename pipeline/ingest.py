"""Stage `ingest`: a cohort in any supported format → the canonical tables, quarantine.parquet and
validation.json. With --format and --input, those; with neither (the DVC stage), params `ingest`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = ("read a cohort (long CSV/Parquet, CDISC SDTM, OMOP CDM) into the canonical tables "
        "+ quarantine.parquet + validation.json")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["long", "sdtm", "omop"], default=None,
                   help="input format, with --input (default: neither, and params.yaml `ingest` decides)")
    p.add_argument("--input", type=Path, default=None, help="the cohort folder (or file) to read, with --format (default: params.yaml `ingest`)")
    p.add_argument("--out", type=Path, required=True, help="output folder for the canonical tables")
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="lab rows per streamed chunk (default: the readers' own, 250,000); bounds memory")


def ingest(fmt: str | None, input_path: Path | None, out: Path, chunk_rows: int | None = None) -> dict[str, Any]:
    from cohorts.atomic import atomic_folder
    from cohorts.errors import CohortError
    from cohorts.ingest.api import ingest_to_folder
    from cohorts.ingest.source import CHUNK_ROWS
    from crs_settings import project_root
    from pipeline.common import configuration, relative

    section = configuration()["ingest"]
    root = project_root()
    if (fmt is None) != (input_path is None):
        raise CohortError("Give both --format and --input (or neither, to read the `ingest` section of params.yaml)")
    if fmt is None:
        if root is None:
            raise CohortError("Without --format and --input, `crs ingest` reads params.yaml `ingest` of a project "
                              "folder; none was found. Give --format and --input")
        source = str(section["source"])
        if source == "simulated":
            fmt, input_path = "long", root / configuration(announce=False)["paths"]["simulated"]
        elif source == "path":
            fmt, input_path = str(section["format"]), Path(str(section["path"]))
            if not input_path.is_absolute():
                input_path = root / input_path
        else:
            raise CohortError(f"params.yaml ingest.source must be 'simulated' or 'path'; got {source!r}")
    window = tuple(float(x) for x in section["time_window_hours"])
    from crs_settings.progress import Progress

    def name_file(path: str) -> str:  # keep outputs free of machine-specific absolute paths inside the project
        return relative(path, root) if root is not None else path

    # the old cohort or the new one, never a mixture (even under kill -9)
    with Progress(None, unit="lab rows", desc="crs ingest") as bar, atomic_folder(out) as tmp:
        return ingest_to_folder(fmt, input_path, tmp, window, CHUNK_ROWS if chunk_rows is None else chunk_rows,
                                name_file, progress=bar.update)


def run(args: argparse.Namespace) -> int:
    v = ingest(args.format, args.input, args.out, args.chunk_rows)
    print(f"{v['rows_in']} lab rows in: {v['rows_out']} canonical, {v['rows_quarantined']} quarantined "
          f"{v['by_reason']} -> {args.out} (see validation.json, quarantine.parquet)")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import main as cli

    return cli(["ingest", *(sys.argv[1:] if argv is None else argv)], only="ingest")


if __name__ == "__main__":
    raise SystemExit(main())
