"""Run `crs ...` with faults injected, for the crash-consistency tests (a child process of the test).

    python -m tests.faults [--kill-before T@N] [--kill-after T@N] [--delay T@SECONDS] -- <crs arguments>

T names a function or method as `module:qualified.name` (e.g. `pandas:DataFrame.to_parquet`,
`cohorts.atomic:_exchange`). `--kill-before T@N` sends this process SIGKILL (what `kill -9` does:
no cleanup, no `finally`, no atexit) when T is called for the N-th time, before it runs;
`--kill-after T@N` right after the N-th call returns; `--delay T@S` sleeps S seconds before every
call (to make two racing processes overlap). Nothing of this exists outside the tests.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import signal
import sys
import time


def _target(spec: str):
    module, _, qualname = spec.partition(":")
    owner = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def _patch(spec: str, when: str) -> None:
    target, _, arg = spec.rpartition("@")
    owner, name = _target(target)
    real = getattr(owner, name)
    calls = {"n": 0}

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if when == "delay":
            time.sleep(float(arg))
        elif when == "before" and calls["n"] == int(arg):
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if when == "after" and calls["n"] == int(arg):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)


def inject(kill_before: list[str] = (), kill_after: list[str] = (), delay: list[str] = ()) -> None:
    """Patch the named targets in this process (see the module doc for the forms)."""
    for when, specs in (("before", kill_before), ("after", kill_after), ("delay", delay)):
        for spec in specs:
            _patch(spec, when)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.faults")
    ap.add_argument("--kill-before", action="append", default=[])
    ap.add_argument("--kill-after", action="append", default=[])
    ap.add_argument("--delay", action="append", default=[])
    ap.add_argument("crs", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    inject(args.kill_before, args.kill_after, args.delay)
    crs = args.crs[1:] if args.crs[:1] == ["--"] else args.crs
    from pipeline.cli import main as cli

    return cli(crs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
