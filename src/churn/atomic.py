"""Low-level pieces of safe output writing, used by `churn.io`'s writers.

Temporary names carry the writer's pid so a later run can tell a dead writer's leftovers (SIGKILL leaves them
behind: no `finally` runs) from a live writer's work in progress, and sweep only the former. Renames into
place happen under an exclusive flock, with renameat2's NOREPLACE / EXCHANGE where the system has them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

TEMP_MARK = ".churn-tmp-"
OUTPUT_FILE_MODE = 0o600  # outputs may hold customer data: readable by the owner only
OUTPUT_DIR_MODE = 0o700
RENAME_NOREPLACE = 1  # linux/fs.h
RENAME_EXCHANGE = 2


def checkpoint(name: str) -> None:
    """A named point in a write, for crash tests: `CHURN_KILL_AT=name` SIGKILLs the process here;
    `CHURN_PAUSE_AT=name` with `CHURN_PAUSE_FILE=path` creates `path.reached` and waits (up to 5 minutes)
    until `path` exists. Unset (always, outside tests) it does nothing."""
    if name in os.environ.get("CHURN_KILL_AT", "").split(","):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if name in os.environ.get("CHURN_PAUSE_AT", "").split(",") and os.environ.get("CHURN_PAUSE_FILE"):
        import time

        go = Path(os.environ["CHURN_PAUSE_FILE"])
        Path(f"{go}.reached").write_text(name)
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(folder: Path) -> list[Path]:
    """Remove temporary files and folders that dead churn writers left in `folder` (killed mid-write);
    a live writer's temporaries are left alone. Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for e in entries:
        if TEMP_MARK not in e.name:
            continue
        try:
            pid = int(e.name.split(TEMP_MARK, 1)[1].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or pid_alive(pid):
            continue
        if e.is_dir() and not e.is_symlink():
            shutil.rmtree(e, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                e.unlink()
        removed.append(e)
    return removed


def temp_prefix(final: Path) -> str:
    """The prefix of this process's temporaries for output `final`."""
    return f".{final.name}{TEMP_MARK}{os.getpid()}-"


@contextlib.contextmanager
def output_lock(final: Path) -> Iterator[None]:
    """Hold an exclusive lock on output `final` (flock on `.<name>.lock` beside it) for a check-and-rename.

    flock is released by the kernel when the holder dies, so a SIGKILLed run never blocks the next one.
    The lock file is removed on release; a waiter that then gets the lock on the removed file notices
    (its inode is no longer the path's) and locks the new file instead.
    """
    import fcntl

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
