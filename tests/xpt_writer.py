"""A minimal SAS transport (XPORT v5) writer, for test fixtures only: pandas reads .xpt but cannot
write it, and SDTM submissions arrive as .xpt. Numeric columns -> IBM doubles, the rest -> text."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pandas as pd

_STAMP = b"01JAN24:00:00:00"


def _header(kind: bytes, tail: bytes = b"0" * 30) -> bytes:
    return b"HEADER RECORD*******" + kind.ljust(8) + b"HEADER RECORD!!!!!!!" + tail + b"  "


def _ibm(value: float) -> bytes:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return b"." + b"\x00" * 7
    if value == 0:
        return b"\x00" * 8
    sign = 0x80 if value < 0 else 0
    m, e = math.frexp(abs(value))
    exp16 = -(-e // 4)
    mant = int(round(m * 2.0 ** (e - 4 * exp16) * 2**56))
    if mant >= 2**56:
        mant >>= 4
        exp16 += 1
    return bytes([sign | (exp16 + 64)]) + mant.to_bytes(7, "big")


def _pad(block: bytes) -> bytes:
    return block + b" " * (-len(block) % 80)


def write_xpt(frame: pd.DataFrame, path: Path, name: str) -> None:
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    text = {c: frame[c].astype("string").fillna("").astype(str) for c in frame.columns if not numeric[c]}
    width = {c: 8 if numeric[c] else max(1, int(text[c].map(lambda s: len(s.encode())).max() or 1))
             for c in frame.columns}
    out = [_header(b"LIBRARY"),
           b"SAS     SAS     SASLIB  9.4     X64_7PRO" + b" " * 24 + _STAMP, _STAMP + b" " * 64,
           _header(b"MEMBER", b"000000000000000001600000000140"), _header(b"DSCRPTR"),
           b"SAS     " + name.upper().encode().ljust(8) + b"SASDATA 9.4     X64_7PRO" + b" " * 24 + _STAMP,
           _STAMP + b" " * 16 + name.encode().ljust(40) + b" " * 8,
           _header(b"NAMESTR", b"000000" + f"{len(frame.columns):04d}".encode() + b"0" * 20)]
    names, pos = b"", 0
    for i, col in enumerate(frame.columns):
        names += struct.pack(">hhhh8s40s8shhh2s8shhl52s", 1 if numeric[col] else 2, 0, width[col], i + 1,
                             col.encode().ljust(8), col.encode().ljust(40), b" " * 8, 0, 0, 0, b"\x00\x00",
                             b" " * 8, 0, 0, pos, b"\x00" * 52)
        pos += width[col]
    out += [_pad(names), _header(b"OBS")]
    rows = []
    for i in range(len(frame)):
        row = b""
        for col in frame.columns:
            row += (_ibm(float(frame[col].iloc[i])) if numeric[col]
                    else text[col].iloc[i].encode().ljust(width[col]))
        rows.append(row)
    Path(path).write_bytes(b"".join(out) + _pad(b"".join(rows)))
