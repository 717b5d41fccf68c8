"""Open CSV, Parquet and SAS transport (.xpt) files as tables, with one clear error when that fails."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from cohorts.errors import CohortError

SUFFIXES = (".csv", ".parquet", ".xpt")
_MAGIC = {b"PAR1": "a Parquet file", b"PK\x03\x04": "a ZIP/Excel (.xlsx) file",
          b"\xd0\xcf\x11\xe0": "an old Excel (.xls) file", b"HEADER RECORD": "a SAS transport (.xpt) file",
          b"%PDF": "a PDF"}


def find_table(folder: Path, name: str, required: bool = True) -> Path | None:
    """folder/name.csv|parquet|xpt, any letter case; None (or an error) when absent."""
    found = [p for p in sorted(folder.iterdir()) if p.is_file()
             and p.stem.lower() == name.lower() and p.suffix.lower() in SUFFIXES] if folder.is_dir() else []
    if len(found) > 1:
        raise CohortError(f"Found {len(found)} files for the {name} table ({[p.name for p in found]}); "
                          "keep exactly one", file=str(folder))
    if found:
        return found[0]
    if required:
        raise CohortError(f"No {name} table in {folder}: expected {name}.csv, {name}.parquet or {name}.xpt",
                          file=str(folder))
    return None


def _what_is(head: bytes) -> str | None:
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    return "a binary file" if b"\x00" in head else None


def csv_header(path: Path) -> list[str]:
    """Check the file is comma-separated UTF-8 text with a header; return the column names."""
    with open(path, "rb") as fh:
        head = fh.read(65536)
    if not head.strip():
        raise CohortError("The file is empty (not even a header row)", file=str(path))
    what = _what_is(head)
    if what:
        raise CohortError(f"The file is {what}, not comma-separated text; save it as CSV (UTF-8) "
                          "or give it the right extension", file=str(path))
    try:  # incremental: a full 64 KiB read may have cut the last character in two
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=len(head) < 65536)
    except UnicodeDecodeError as exc:
        raise CohortError("The file is not UTF-8 text; save it as 'CSV UTF-8'", file=str(path)) from exc
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise CohortError("The file has no header row", file=str(path))
    first = lines[0]
    if "," not in first:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")):
            if sep in first:
                raise CohortError(f"The header row is separated by {name}, not commas; save the file "
                                  "as comma-separated CSV", file=str(path), row=0)
    return [c.strip() for c in next(csv.reader([first]))]


def columns_of(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return csv_header(path)
    if suffix == ".parquet":
        return list(_parquet(path).schema_arrow.names)
    return [str(c) for c in _xpt_reader(path, 1).columns]


def _parquet(path: Path):
    import pyarrow.parquet as pq

    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise CohortError("The file is empty", file=str(path))
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        what = _what_is(head) or "text or another format"
        raise CohortError(f"The file is not a Parquet file (it looks like {what}): {exc}",
                          file=str(path)) from exc


def _xpt_reader(path: Path, chunk_rows: int):
    with open(path, "rb") as fh:
        head = fh.read(80)
    if not head:
        raise CohortError("The file is empty", file=str(path))
    if not head.startswith(b"HEADER RECORD"):
        raise CohortError("The file is not a SAS transport (XPORT v5) file; export the dataset with "
                          "SAS XPORT, or save it as CSV", file=str(path))
    try:
        return pd.read_sas(path, format="xport", encoding="utf-8", chunksize=chunk_rows)
    except Exception as exc:  # pandas raises several types for a damaged transport file
        raise CohortError(f"Cannot read the SAS transport file: {exc}", file=str(path)) from exc


def iter_xpt(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Stream a SAS transport file in chunks (text decoded as UTF-8, else Latin-1)."""
    reader = _xpt_reader(path, chunk_rows)
    yielded = False
    try:
        for chunk in reader:
            chunk.columns = [str(c) for c in chunk.columns]
            yielded = True
            yield chunk
    except UnicodeDecodeError as exc:
        if yielded:
            raise CohortError("The SAS transport file mixes text encodings (not UTF-8 throughout)",
                              file=str(path)) from exc
        reader = pd.read_sas(path, format="xport", encoding="latin-1", chunksize=chunk_rows)
        for chunk in reader:
            chunk.columns = [str(c) for c in chunk.columns]
            yield chunk
    except CohortError:
        raise
    except Exception as exc:
        raise CohortError(f"Cannot read the SAS transport file: {exc}", file=str(path)) from exc


def read_xpt(path: Path) -> pd.DataFrame:
    chunks = list(iter_xpt(path, 1_000_000))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()


def text_column(frame: pd.DataFrame, *names: str) -> pd.Series:
    """The first of `names` present, as text with blanks as missing; all-missing if none is present."""
    for n in names:
        if n in frame:
            text = frame[n].astype("string")
            return text.mask(text.str.strip() == "")  # SAS transport pads blanks: blank = missing
    return pd.Series(pd.NA, index=frame.index, dtype="string")


def require(columns: list[str], required: list[str], path: Path, table: str) -> None:
    absent = [c for c in required if c not in columns]
    if absent:
        raise CohortError(f"The {table} table lacks required column(s) {absent}; it has {columns}",
                          file=str(path), column=absent[0])


def iter_chunks(path: Path, chunk_rows: int, dtype: dict[str, object] | None = None,
                rename: dict[str, str] | None = None) -> Iterator[pd.DataFrame]:
    """Stream a table in chunks of rows; text columns in `dtype` stay text (no number guessing)."""
    suffix = path.suffix.lower()
    rename = rename or {}
    if suffix == ".csv":
        header = csv_header(path)
        dtypes = {c: dtype[rename.get(c, c)] for c in header if dtype and rename.get(c, c) in dtype}
        try:
            reader = pd.read_csv(path, chunksize=chunk_rows, dtype=dtypes, keep_default_na=False,
                                 na_values=[""], skipinitialspace=True, encoding="utf-8-sig",
                                 low_memory=False)
            for chunk in reader:
                yield chunk.rename(columns=lambda c: rename.get(c.strip(), c.strip()))
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise CohortError(f"Cannot read the file as CSV: {exc}", file=str(path)) from exc
    elif suffix == ".parquet":
        pf = _parquet(path)
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas().rename(columns=lambda c: rename.get(c, c))
        except OSError as exc:
            raise CohortError(f"The Parquet file is damaged: {exc}", file=str(path)) from exc
    else:
        for chunk in iter_xpt(path, chunk_rows):
            yield chunk.rename(columns=lambda c: rename.get(c, c))


def read_all(path: Path, dtype: dict[str, object] | None = None,
             rename: dict[str, str] | None = None) -> pd.DataFrame:
    """A small table (patients, DM, EX, AE, ...) in one piece."""
    chunks = list(iter_chunks(path, 1_000_000, dtype, rename))
    table = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    if len(table) and ends_cut(path):
        raise CohortError("The file does not end with a line break, so its last row may have been cut short "
                          "(an interrupted copy or download); export it again, or end the file with a line "
                          "break if that row is complete", file=str(path), row=len(table) - 1)
    return table


def ends_cut(path: Path) -> bool:
    """A CSV file whose last byte is not a line break: its last row may be cut mid-value ('408.0' -> '40')."""
    if path.suffix.lower() != ".csv":
        return False
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) not in (b"\n", b"\r")


def estimate_rows(path: Path) -> int:
    """Data rows in a table, exact for Parquet and SAS transport, from the line length of the first
    MiB for CSV (sizes the streamed ingest's staging; never used as a count)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return int(_parquet(path).metadata.num_rows)
    if suffix == ".xpt":
        return int(getattr(_xpt_reader(path, 1), "nobs", 0) or path.stat().st_size // 80)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    lines = head.count(b"\n")
    if len(head) >= size:
        return max(0, lines - 1)
    return int(size * max(lines, 1) / max(len(head), 1))
