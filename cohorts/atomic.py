"""Outputs appear whole or not at all, even under kill -9: atomic files and folders.

Every output is written to a temporary sibling with a unique name,
``.<name>.tmp-<pid>-<random token>`` (never reused, never appended to), flushed to disk (fsync)
and only then moved over the final name: ``os.replace`` for a file; for a folder, an atomic
exchange of the new folder with the old one (Linux ``renameat2(RENAME_EXCHANGE)``), after which
the old one is deleted. A reader sees the old output or the new one, never a mixture, never a
half-written file.

Where the exchange is not supported (another OS, some network file systems) a folder is swapped
by two renames: the old folder to ``.<name>.old-<pid>-<token>``, then the new one into place. A
run killed between the two leaves no folder under the final name; the next writer puts the old
folder back before it starts (the old cohort, never a mixture).

A writer holds an advisory lock (``flock``) on its temporary while it writes. A temporary that no
live process holds a lock on was left by a killed run: readers never look at it (its name is
hidden and never read) and the next writer of the same output removes it. The lock, not the pid,
tells a live writer from a dead one, so this holds in a container where every run is PID 1 and
when two processes write the same output at once (the last one to finish wins, whole).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from cohorts.errors import CohortError

FOLDER_SUFFIXES = (".parquet", ".json")  # what a cohort folder may hold for it to be replaced whole
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def temporary_name(path: Path, kind: str = "tmp") -> Path:
    """A fresh hidden sibling of `path`: `.<name>.<kind>-<pid>-<token>`."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(6)}")


def _is_temporary_of(entry: str, name: str) -> bool:
    """Ours (`.name.tmp-*`, `.name.old-*`) and the names earlier versions used (`.name.partial-*`, `name.partial`)."""
    return (entry.startswith((f".{name}.tmp-", f".{name}.old-", f".{name}.partial-"))
            or entry == f"{name}.partial")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _lock(path: Path) -> int:
    """An open descriptor of `path` (a file or a folder) holding an exclusive lock on it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def clean_stale(path: Path | str) -> list[Path]:
    """Remove the temporaries of `path` that no live writer holds; put back an old folder that a
    killed two-rename swap left aside (when `path` itself is missing). Returns what was removed."""
    path = Path(path)
    parent = path.parent
    if not parent.is_dir():
        return []
    removed: list[Path] = []
    entries = sorted((e.name for e in os.scandir(parent) if _is_temporary_of(e.name, path.name)),
                     key=lambda n: _mtime(parent / n), reverse=True)  # the newest old folder first
    for entry in entries:
        candidate = parent / entry
        try:
            fd = os.open(candidate, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if not _try_lock(fd):
                continue  # a live writer's temporary
            if ".old-" in entry and not path.exists():
                os.rename(candidate, path)  # a swap killed half-way: the old folder comes back
                continue
            _remove(candidate)
            removed.append(candidate)
        finally:
            os.close(fd)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


class AtomicFile:
    """A file written under a temporary name and renamed into place by `commit` (or removed by
    `discard`): for writers that stream chunk after chunk. `tmp` is the path to write to."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(self.path)
        self.tmp = temporary_name(self.path)
        self._fd: int | None = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        """Sync the temporary's data and rename it over `path` (the only moment `path` changes)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: already committed or discarded")
        try:
            os.fsync(self._fd)  # the file's data, whichever descriptor wrote it
            os.replace(self.tmp, self.path)
            _fsync(self.path.parent)
        except BaseException:
            self.discard()
            raise
        os.close(self._fd)
        self._fd = None

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write `path` to; on success it is synced and renamed into place,
    on any error it is removed and `path` is left as it was."""
    target = AtomicFile(path)
    try:
        yield target.tmp
    except BaseException:
        target.discard()
        raise
    target.commit()


def write_text(path: Path | str, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _check_replaceable(path: Path) -> None:
    """Only a folder of tables (or an empty one) is ever replaced whole: never a user's other files."""
    if path.is_symlink() or not path.exists():
        return
    if not path.is_dir():
        raise CohortError(f"The output {path} exists and is not a folder; give a folder name", file=str(path))
    other = sorted(e.name for e in os.scandir(path)  # hidden files (.DS_Store, ...) go with the folder
                   if e.is_dir() or not (e.name.endswith(FOLDER_SUFFIXES) or e.name.startswith(".")))
    if other:
        raise CohortError(f"The output folder {path} holds {other[:3]}{' ...' if len(other) > 3 else ''}, which are "
                          "not cohort tables; it is replaced whole, so give a new folder (or empty this one)",
                          file=str(path))


def _swap_into_place(tmp: Path, path: Path) -> None:
    if not path.exists():
        try:
            os.rename(tmp, path)
            return
        except OSError as exc:  # another writer got there first: swap with theirs
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if _exchange(tmp, path):
        _fsync(path.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the old folder
        return
    old = temporary_name(path, "old")
    fd = _lock(path)  # the old folder stays locked (not "stale") while it is set aside
    try:
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)  # the old folder back under its name
            raise
        _fsync(path.parent)
    finally:
        os.close(fd)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: Path | str) -> Iterator[Path]:
    """Yield a new temporary sibling folder to write `path`'s files into; on success every file is
    synced and the folder swapped in for `path` whole; on any error it is removed and `path` is
    left as it was. An existing `path` holding anything but tables (.parquet, .json) and hidden
    files (or any subfolder) is refused: it would be replaced whole."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    _check_replaceable(path)
    tmp = temporary_name(path)
    os.mkdir(tmp)
    fd = _lock(tmp)
    try:
        yield tmp
        _fsync_tree(tmp)
        _swap_into_place(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_folder(beside: Path | str) -> Iterator[Path]:
    """A locked temporary folder beside `beside` (same disk as the output, not /tmp), removed at the
    end; one left by a killed run is removed by the next writer of `beside`, like any temporary."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(beside)
    os.mkdir(tmp)
    fd = _lock(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)
