"""Folders built once per test run and shared by every pytest-xdist worker (the demo workspace, the reliability
tests' trained folder): the first worker to need one builds it under a file lock, the others wait and read it.

`worker_copy` gives a worker its own copy of a shared folder whose tests write into it: the copy's tracking
store (the SQLite file) names the copy, not the original, wherever it recorded the original's path (artifact
locations, the registry's storage locations, logged parameters), so a copy's runs and tampering stay in the
copy. (Files in the copied artifacts may still mention the original's path as information, e.g. an MLmodel
file's `artifact_path`; nothing reads them to find files.)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from filelock import FileLock

DONE = ".built"  # marks a finished build (a folder without it is a build that failed half-way)


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder `name` in the run's shared temporary folder, built by `build(folder)` by whichever worker
    asks first; later callers (any worker) get the finished folder."""
    root = factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the base temp folder of the whole run, above each worker's own
    work = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (work / DONE).is_file():
            if work.exists():
                shutil.rmtree(work)
            work.mkdir()
            build(work)
            (work / DONE).touch()
    return work


def relocate_store(db: Path, old: Path, new: Path) -> None:
    """Rewrite every mention of `old` in the SQLite tracking store `db` as `new`, as a file URI
    (percent-encoded) and as a plain path, in every text column of every table (MLflow records absolute
    paths in several); AssertionError if a mention is left, so a copy never silently shares the original."""
    pairs = [(old.as_uri(), new.as_uri()), (str(old), str(new))]
    with closing(sqlite3.connect(db)) as con, con:
        columns = [(t, col) for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                   for _, col, kind, *_ in con.execute(f'PRAGMA table_info("{t}")').fetchall()
                   if kind.upper().startswith(("VARCHAR", "TEXT"))]
        for table, col in columns:
            for a, b in pairs:
                con.execute(f'UPDATE "{table}" SET "{col}" = REPLACE("{col}", ?, ?) WHERE instr("{col}", ?) > 0',
                            (a, b, a))
        left = [(t, c) for t, c in columns for a, _ in pairs
                if con.execute(f'SELECT count(*) FROM "{t}" WHERE instr("{c}", ?) > 0', (a,)).fetchone()[0]]
    assert not left, f"{db} still names {old} in {left}"


def worker_copy(shared: Path, dest: Path, store: str = "mlruns.db") -> Path:
    """A copy of `shared` at `dest` for one worker's tests to write into, its tracking store relocated."""
    shutil.copytree(shared, dest, dirs_exist_ok=True)
    if (dest / store).is_file():
        relocate_store(dest / store, shared, dest)
    return dest
