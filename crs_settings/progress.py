"""Progress of a long step: a tqdm bar on a terminal, plain log lines otherwise (CI, DVC, files).

Libraries never print: they take an optional ``progress`` callback, called with the number of
units just done. Command-line code makes a :class:`Progress` and passes its :meth:`update`.
Imports nothing of the project (so every stage may use it); tqdm is imported only for a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

ProgressCallback = Callable[[int], None]


class Progress:
    """tqdm on a terminal; otherwise a plain line at most every `every_seconds` (default 5 s, so a
    short step prints nothing but its final line) and always when a known `total` is reached.
    `total` None = unknown (counts only)."""

    def __init__(self, total: int | None, *, unit: str = "items", desc: str = "crs", enabled: bool | None = None,
                 stream=None, every_seconds: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.total, self.unit, self.desc = total, unit, desc
        self.done, self.t0, self.every = 0, time.perf_counter(), float(every_seconds)
        self._last = self.t0
        tty = enabled if enabled is not None else getattr(self.stream, "isatty", lambda: False)()
        self.bar = None
        if tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, unit_scale=True, file=self.stream, desc=desc)

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        if now - self._last < self.every and not finished:
            return
        self._last = now
        if self.total:
            pct = 100.0 * self.done / self.total
            what = f"{self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)"
        else:
            what = f"{self.done:,} {self.unit}"
        print(f"{self.desc}: {what} in {now - self.t0:.1f}s", file=self.stream, flush=True)

    __call__ = update

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
