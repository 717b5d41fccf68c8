"""Random numbers that name a simulated person: every draw is a function of (seed, stream, patient index).

Patients are grouped in fixed blocks of :data:`BLOCK` consecutive indices; each (seed, stream,
block) has its own PCG64 generator. A chunk of any size and position draws each block's numbers
in full and keeps its own rows, so patient *i* gets the same numbers whatever the chunk size, and
the streams are independent of each other: the ``biology`` stream never sees a measurement
setting, so changing the site mix, panels or turnaround re-measures the same people.
"""

from __future__ import annotations

import zlib

import numpy as np

BLOCK = 1000  # patients per generator block: part of the seed layout (changing it changes every person)


def stream_key(name: str) -> int:
    """A stable integer for a stream name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode())


class PatientRandom:
    """Draws for patients ``first .. first + n - 1`` of one named stream.

    Every call returns an array whose first axis is the patients; calls must happen in the same
    order for the same stream (the code of the simulator fixes that order), never depending on
    settings of another stream.
    """

    def __init__(self, seed: int, stream: str, first: int, n: int) -> None:
        self.n, self.first = n, first
        b0, b1 = first // BLOCK, (first + n - 1) // BLOCK if n else first // BLOCK - 1
        self._gens = [np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [int(seed) & 0xFFFFFFFF, int(seed) >> 32, stream_key(stream), b]))) for b in range(b0, b1 + 1)]
        self._lo = first - b0 * BLOCK

    def _draw(self, method: str, tail: tuple[int, ...]) -> np.ndarray:
        if not self._gens:
            return np.zeros((0, *tail))
        parts = [getattr(g, method)((BLOCK, *tail)) for g in self._gens]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        return out[self._lo:self._lo + self.n]

    def uniform(self, *tail: int) -> np.ndarray:
        """U(0, 1), shape (n, *tail)."""
        return self._draw("random", tail)

    def normal(self, *tail: int) -> np.ndarray:
        """N(0, 1), shape (n, *tail)."""
        return self._draw("standard_normal", tail)
