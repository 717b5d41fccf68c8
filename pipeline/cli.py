"""The `crs` command line. Exit codes: 0 success, 2 a problem with the user's input, 1 internal error.

Each verb is a module of this package (one per DVC stage, plus score and models) exposing HELP,
`configure(parser)` and `run(args)`; heavy libraries are imported inside `run`, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from crs_settings import InputProblem, quiet_telemetry

VERBS = {
    "simulate": "pipeline.simulate",
    "ingest": "pipeline.ingest",
    "describe": "pipeline.describe",
    "featurize": "pipeline.featurize",
    "pretrain": "pipeline.pretrain",
    "train": "pipeline.train",
    "claim": "pipeline.claim",
    "evaluate": "pipeline.evaluate",
    "explain": "pipeline.explain",
    "register": "pipeline.register",
    "score": "pipeline.score",
    "report": "pipeline.report",
    "recalibrate": "pipeline.recalibrate",
    "models": "pipeline.models_command",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help unless the help already says its default, the default
    is None (the help then says what happens without it) or the option is a flag or required."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required
                or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


def _parser(verbs: list[str] | None = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="crs", description=(
        "crs-predict: predict severe (grade >=3) CRS from serial blood biomarkers. "
        "Research software on a SYNTHETIC default cohort; no clinical validity."))
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in verbs or VERBS:
        module = importlib.import_module(VERBS[verb])
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP,
                           formatter_class=HelpFormatter)
        module.configure(p)
        p.set_defaults(run=module.run)
    return ap


def main(argv: list[str] | None = None, only: str | None = None) -> int:
    """`crs ...`; with `only`, the parser knows just that verb (a stage module run as
    `python -m pipeline.<verb>` then imports no other verb's module)."""
    quiet_telemetry()
    args = _parser([only] if only else None).parse_args(argv)
    try:
        return int(args.run(args))
    except InputProblem as exc:
        print(f"crs: input problem: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"crs: file not found: {exc.filename or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
