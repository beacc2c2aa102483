"""The one I/O module: reading user tables and writing every output atomically.

Every output goes to a temporary sibling path first and is renamed into place, so a crash or a bad input
never leaves a half-written file behind. Existing outputs are never replaced unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from churn.errors import ChurnError

TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".xlsx")


def find_table_file(folder: Path, name: str) -> Path | None:
    """The file (or folder of Parquet parts) holding table `name` in `folder`, if any."""
    for suffix in TABLE_SUFFIXES:
        p = folder / f"{name}{suffix}"
        if p.is_file():
            return p
    d = folder / name
    if d.is_dir() and any(d.glob("*.parquet")):
        return d
    return None


def sniff_delimiter(path: str | os.PathLike[str], default: str = ",") -> str:
    """The delimiter of a CSV export (`,` `;` tab or `|`); see `churn.readers` (one place for dialects)."""
    from churn.readers import sniff_delimiter as _sniff

    return _sniff(path, default)


def read_table(path: str | os.PathLike[str], columns: list[str] | None = None, **options: Any) -> pd.DataFrame:
    """Read a CSV (any common dialect, .csv.gz), Excel or Parquet table into pandas; ids and other text stay
    text (leading zeros survive). `options`: delimiter, quote, encoding, sheet (see `churn.readers`)."""
    from churn.readers import read_table as _read

    return _read(path, columns, **options)


def ensure_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse to replace an existing output unless asked; create the parent folder."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise ChurnError(f"{p} already exists; pass --overwrite to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it into place, on error remove it."""
    final = ensure_writable(path, overwrite)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success swap it into place, on error remove it."""
    final = ensure_writable(path, overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            # Move the old one aside first so there is never a moment with neither in place.
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a DataFrame as Parquet, atomically."""
    with atomic_path(path, overwrite) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a DataFrame as UTF-8 CSV (BOM so Excel shows non-Latin text right), atomically."""
    with atomic_path(path, overwrite) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8-sig")
    return Path(path)


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write CSV or Parquet by the file's suffix, atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return write_csv(df, path, overwrite)
    if suffix == ".parquet":
        return write_parquet(df, path, overwrite)
    raise ChurnError(f"{path}: output must end in .parquet or .csv")


def write_text(text: str, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write a text file (UTF-8), atomically."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj: Any, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write JSON (sorted keys, so identical inputs give identical files), atomically."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path, overwrite)
