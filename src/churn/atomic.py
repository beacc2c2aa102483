"""Low-level pieces of safe output writing, used by `churn.io`'s writers.

Every temporary is paired with a lock file, `.<name>.churn-tmp-<random>.lock` beside
`.<name>.churn-tmp-<random>.tmp`, and its writer holds an exclusive flock on that lock file for the
temporary's whole life. A later run tells a dead writer's leftovers (SIGKILL leaves them behind: no `finally`
runs) from a live writer's work by trying that lock: the kernel releases a dead process's flock, so a lock
that can be taken belongs to nobody, and only then are the temporary and its lock removed (with
`tmp_<temporary>`, the file DuckDB writes first and renames over a file it is asked to write). This needs no
process ids, which mean nothing across hosts or containers sharing a file system. Renames into place
happen under an exclusive flock on the output, with renameat2's NOREPLACE / EXCHANGE where the system has
them. The named steps of a write (`checkpoint`) are hooks for crash tests, no-ops in production
(`churn.crashpoints`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from churn.crashpoints import checkpoint  # noqa: F401 - re-exported: the writers' named steps

TEMP_MARK = ".churn-tmp-"
TEMP_SUFFIX = ".tmp"
LOCK_SUFFIX = ".lock"
OUTPUT_FILE_MODE = 0o600  # outputs may hold customer data: readable by the owner only
OUTPUT_DIR_MODE = 0o700
RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2


def renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Linux renameat2(2): True when done, False when the system or file system lacks it (the caller falls
    back); raises OSError for real failures (EEXIST with NOREPLACE, ENOENT, ...)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), ctypes.c_uint(flags))
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _same_file(path: Path, fd: int) -> bool:
    """Whether `path` still names the file open as `fd` (not removed or replaced meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


# A temporary's or its lock file's name: `.<output>.churn-tmp-<random>[.tmp|.lock]`; DuckDB, asked to write
# a file that exists, writes `tmp_<name>` first and renames it over the file, so a writer's temporary may have
# that companion while it is written.
DUCKDB_PREFIX = "tmp_"
_TEMP_NAME = re.compile(f"(?:{re.escape(DUCKDB_PREFIX)})?(\\..*{re.escape(TEMP_MARK)}[^./]+)"
                        f"(?:{re.escape(TEMP_SUFFIX)}|{re.escape(LOCK_SUFFIX)})?", re.DOTALL)


def _stem(name: str) -> str | None:
    """The shared part of a temporary's, its lock file's and DuckDB's companion's names, or None for other
    files (another program's file that merely contains the mark is not judged)."""
    m = _TEMP_NAME.fullmatch(name)
    return m.group(1) if m else None


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporaries that dead churn writers left in `folder` (killed mid-write), with their lock
    files; a temporary whose lock is held (a live writer, on any host) is left alone. Returns what was
    removed."""
    removed: list[Path] = []
    try:
        stems = sorted({s for e in folder.iterdir() if (s := _stem(e.name)) is not None})
    except OSError:
        return removed
    for stem in stems:
        lock = folder / f"{stem}{LOCK_SUFFIX}"
        try:
            fd: int | None = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            fd = None  # writers create the lock first and remove it last: a temporary without one is dead
        except OSError:
            continue  # not ours to judge (another user's, unreadable)
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # held: a live writer
                if not _same_file(lock, fd):
                    continue  # another sweeper removed it meanwhile
            for p in (folder / f"{stem}{TEMP_SUFFIX}", folder / stem, folder / f"{DUCKDB_PREFIX}{stem}{TEMP_SUFFIX}"):
                if p.exists() or p.is_symlink():
                    _remove(p)
                    removed.append(p)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.unlink(lock)
                removed.append(lock)
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def temp_prefix(final: Path) -> str:
    """The prefix of every temporary (and temporary's lock file) for output `final`."""
    return f".{final.name}{TEMP_MARK}"


@contextlib.contextmanager
def live_temporary(final: Path, *, folder: bool) -> Iterator[Path]:
    """Create a temporary file (or folder, 0700) beside output `final` and hold the flock that marks it as
    being written for the whole block (see the module's docstring); on the way out, remove whatever is left
    at the temporary's path, then its lock file."""
    while True:
        fd, lock_name = tempfile.mkstemp(prefix=temp_prefix(final), suffix=LOCK_SUFFIX, dir=final.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        lock = Path(lock_name)
        # A sweeper may have taken this lock between mkstemp and flock (it was free) and removed the file:
        # then this lock protects nothing; start again under a new name.
        if _same_file(lock, fd):
            break
        os.close(fd)
    tmp = lock.with_name(lock.name[: -len(LOCK_SUFFIX)] + TEMP_SUFFIX)
    try:
        if folder:
            os.mkdir(tmp, OUTPUT_DIR_MODE)
        else:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OUTPUT_FILE_MODE))
        yield tmp
    finally:
        try:
            if tmp.exists() or tmp.is_symlink():
                _remove(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold an exclusive lock on output `final` (flock on `.<name>.lock` beside it) for a check-and-rename.

    flock is released by the kernel when the holder dies, so a SIGKILLed run never blocks the next one.
    The lock file is removed on release; a waiter that then gets the lock on the removed file notices
    (its inode is no longer the path's) and locks the new file instead.
    """
    lock = final.with_name(f".{final.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
