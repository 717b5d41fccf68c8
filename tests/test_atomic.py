"""cohorts.atomic: unique temporaries, whole-or-nothing files and folders, stale temporaries cleaned."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys

import pytest

from cohorts import atomic
from cohorts.errors import CohortError
from tests.conftest import ROOT


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_temporary_names_are_unique_hidden_siblings(tmp_path):
    names = {atomic.temporary_name(tmp_path / "x.csv") for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.parent == tmp_path and n.name.startswith(f".x.csv.tmp-{os.getpid()}-") for n in names)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "x.txt"
    atomic.write_text(out, "old")
    with pytest.raises(RuntimeError), atomic.atomic_file(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert out.read_text() == "old" and _siblings(out) == []
    atomic.write_text(out, "new")
    assert out.read_text() == "new" and _siblings(out) == []


def test_stale_temporaries_are_cleaned_but_a_live_writers_are_kept(tmp_path):
    out = tmp_path / "x.parquet"
    dead = tmp_path / f".x.parquet.tmp-{os.getpid()}-deadbeef0000"  # same pid as ours: pid says nothing
    dead.write_text("rows of a killed run")
    legacy = [tmp_path / f".x.parquet.partial-{os.getpid()}", tmp_path / "x.parquet.partial"]
    for p in legacy:
        p.write_text("rows of a killed run, earlier naming")
    other = tmp_path / ".y.parquet.tmp-1-000000000000"  # another output's: not ours to touch
    other.write_text("y")
    live = atomic.AtomicFile(out)  # a writer in progress holds the lock on its temporary
    try:
        with atomic.atomic_file(out) as tmp:
            tmp.write_text("done")
        assert out.read_text() == "done"
        assert not dead.exists() and not any(p.exists() for p in legacy) and other.exists()
        assert live.tmp.exists()
    finally:
        live.discard()
    assert _siblings(out) == []


def test_a_folder_is_swapped_whole(tmp_path):
    out = tmp_path / "cohort"
    with atomic.atomic_folder(out) as tmp:
        (tmp / "labs.parquet").write_text("old labs")
        (tmp / "events.parquet").write_text("old events")
    with pytest.raises(RuntimeError), atomic.atomic_folder(out) as tmp:
        (tmp / "labs.parquet").write_text("new labs")
        raise RuntimeError("killed half-way")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"labs.parquet": "old labs",
                                                              "events.parquet": "old events"}
    with atomic.atomic_folder(out) as tmp:
        (tmp / "labs.parquet").write_text("new labs")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"labs.parquet": "new labs"}
    assert _siblings(out) == []
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_folder_of_other_files_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "sub").mkdir()
    with pytest.raises(CohortError, match="not cohort tables"), atomic.atomic_folder(tmp_path):
        pass
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "sub").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CohortError, match="not a folder"), atomic.atomic_folder(tmp_path / "file"):
        pass


def test_without_an_atomic_exchange_a_swap_killed_half_way_gives_the_old_folder_back(tmp_path):
    """Where renameat2(RENAME_EXCHANGE) is unsupported, the swap is two renames; SIGKILL between
    them leaves no folder under the final name, and the next writer restores the old one first."""
    out = tmp_path / "cohort"
    with atomic.atomic_folder(out) as tmp:
        (tmp / "labs.parquet").write_text("old")
    child = f"""
from cohorts import atomic
from tests.faults import inject
atomic._exchange = lambda a, b: False
inject(kill_after=["os:rename@1"])  # the old folder set aside, the new one not yet in place
with atomic.atomic_folder({str(out)!r}) as tmp:
    (tmp / "labs.parquet").write_text("new")
"""
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists() and len(_siblings(out)) == 2  # the old folder aside, the new one unfinished
    atomic.clean_stale(out)
    assert (out / "labs.parquet").read_text() == "old" and _siblings(out) == []


def test_two_rename_swap_replaces_an_existing_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "cohort"
    for text in ("old", "new"):
        with atomic.atomic_folder(out) as tmp:
            (tmp / "labs.parquet").write_text(text)
    assert (out / "labs.parquet").read_text() == "new" and _siblings(out) == []


def test_the_lock_not_the_pid_tells_a_live_writer(tmp_path):
    out = tmp_path / "x.csv"
    live = atomic.AtomicFile(out)
    try:
        fd = os.open(live.tmp, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        assert atomic.clean_stale(out) == [] and live.tmp.exists()
    finally:
        live.discard()
