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
                   help="lab rows per streamed chunk (default: the readers' own, 1,000,000)")


def ingest(fmt: str | None, input_path: Path | None, out: Path, chunk_rows: int | None = None) -> dict[str, Any]:
    from cohorts.errors import CohortError
    from cohorts.ingest import ingest as run_ingest
    from cohorts.ingest import write_ingested
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

    with Progress(None, unit="lab rows", desc="crs ingest") as bar:
        result = run_ingest(fmt, input_path, window, chunk_rows or CHUNK_ROWS, progress=bar.update)
    if root is not None:  # keep outputs free of machine-specific absolute paths inside the project
        result.validation["input"] = relative(result.validation["input"], root)
        result.cohort.provenance["ingest"]["input"] = result.validation["input"]
        result.validation["lab_file"] = relative(result.validation["lab_file"], root)
        for key in ("patients_file", "path"):
            if key in result.cohort.provenance:
                result.cohort.provenance[key] = relative(result.cohort.provenance[key], root)
        if len(result.quarantine):  # the quarantine names each row's file: the same, relative
            files = result.quarantine["file"].astype(str)
            result.quarantine["file"] = files.map({f: relative(f, root) for f in files.unique()})
    write_ingested(result, out)
    return result.validation


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
