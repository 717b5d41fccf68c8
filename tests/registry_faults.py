"""Run `crs ...` with registry faults injected (a child process of the registry tests).

    python -m tests.registry_faults [--kill-before T@N] [--kill-after T@N] [--raise T@N@CODE@MESSAGE]
                                    [--delay T@SECONDS] [--barrier T@DIR@K] -- <crs arguments>

T names a function or method as `module:qualified.name`, e.g.
`mlflow.tracking.client:MlflowClient.set_registered_model_alias`. N is the call number (1 = first
call; `*` = every call).

- `--kill-before T@N` / `--kill-after T@N`: SIGKILL this process (what `kill -9` does: no cleanup,
  no `finally`, no atexit) when T is called for the N-th time, before it runs / after it returns;
- `--raise T@N@CODE@MESSAGE`: raise `MlflowException(MESSAGE, error_code=CODE)` instead of the N-th
  call (a transient store error such as "database is locked");
- `--delay T@S`: sleep S seconds before every call (widens a race window);
- `--barrier T@DIR@K`: at the first call of T, wait until K processes reached it (files in DIR),
  so two racing processes enter the critical section together.

Nothing of this exists outside the tests.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import time
from pathlib import Path

from tests.faults import _target


def _due(n: str, calls: int) -> bool:
    return n == "*" or calls == int(n)


def _patch(target: str, action) -> None:
    owner, name = _target(target)
    real = getattr(owner, name)
    calls = {"n": 0}

    @functools.wraps(real)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return action(calls["n"], real, args, kwargs)

    setattr(owner, name, wrapper)


def inject(kill_before=(), kill_after=(), raise_=(), delay=(), barrier=()) -> None:
    """Patch the named targets in this process (see the module doc for the forms)."""
    def kill() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    for spec in kill_before:
        target, n = spec.rsplit("@", 1)

        def before(i, real, args, kwargs, n=n):
            if _due(n, i):
                kill()
            return real(*args, **kwargs)

        _patch(target, before)
    for spec in kill_after:
        target, n = spec.rsplit("@", 1)

        def after(i, real, args, kwargs, n=n):
            result = real(*args, **kwargs)
            if _due(n, i):
                kill()
            return result

        _patch(target, after)
    for spec in raise_:
        target, n, code, message = spec.split("@", 3)

        def fail(i, real, args, kwargs, n=n, code=code, message=message):
            if _due(n, i):
                from mlflow.exceptions import MlflowException

                raise MlflowException(message, error_code=code)
            return real(*args, **kwargs)

        _patch(target, fail)
    for spec in delay:
        target, seconds = spec.rsplit("@", 1)

        def slow(i, real, args, kwargs, seconds=float(seconds)):
            time.sleep(seconds)
            return real(*args, **kwargs)

        _patch(target, slow)
    for spec in barrier:
        target, folder, k = spec.rsplit("@", 2)

        def meet(i, real, args, kwargs, folder=Path(folder), k=int(k)):
            if i == 1:
                folder.mkdir(parents=True, exist_ok=True)
                (folder / str(os.getpid())).touch()
                deadline = time.monotonic() + 120
                while len(list(folder.iterdir())) < k and time.monotonic() < deadline:
                    time.sleep(0.01)
            return real(*args, **kwargs)

        _patch(target, meet)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.registry_faults")
    ap.add_argument("--kill-before", action="append", default=[])
    ap.add_argument("--kill-after", action="append", default=[])
    ap.add_argument("--raise", dest="raise_", action="append", default=[])
    ap.add_argument("--delay", action="append", default=[])
    ap.add_argument("--barrier", action="append", default=[])
    ap.add_argument("crs", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    inject(args.kill_before, args.kill_after, args.raise_, args.delay, args.barrier)
    crs = args.crs[1:] if args.crs[:1] == ["--"] else args.crs
    from pipeline.cli import main as cli

    return cli(crs)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
