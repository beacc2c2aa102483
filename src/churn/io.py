"""The one I/O module: reading user tables and writing every output atomically.

Every output goes to a temporary sibling path first (its writer holds a lock on it while alive) and is
renamed into place under an exclusive lock, so a crash or a bad input never leaves a half-written output
behind, a killed run's temporaries are swept by the next run, and two runs writing the same output cannot
both succeed: the second fails clearly instead of silently replacing the first. Existing outputs are never
replaced unless `overwrite=True`. Outputs are created readable by the owner only (files 0600, folders 0700).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from churn.atomic import (  # noqa: F401 - re-exported: the writers' building blocks
    OUTPUT_DIR_MODE,
    OUTPUT_FILE_MODE,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    TEMP_MARK,
    checkpoint,
    live_temporary,
    output_lock,
    renameat2,
    sweep_stale,
    temp_prefix,
)
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
    """Refuse to replace an existing output unless asked; create the parent folder and sweep the
    temporaries a killed earlier run left there. (An early check: the final rename checks again under a
    lock, so a run that started at the same time still cannot replace this one's output.)"""
    p = Path(path)
    if p.parent.is_dir():
        sweep_stale(p.parent)
        _recover_old(p)  # first: a restored output must count as existing
    if p.exists() and not overwrite:
        raise ChurnError(f"{p} already exists; pass --overwrite to replace it")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _exists_error(final: Path) -> ChurnError:
    return ChurnError(f"{final} already exists (written by another run meanwhile?); nothing was replaced. "
                      "Pass --overwrite to replace it, or write to another place")


def _recover_old(final: Path) -> None:
    """The fallback swap (no renameat2) moves the old output to `.<name>.old` first: if a run was killed in
    that window, the old output is the only copy, so put it back rather than delete it."""
    old = final.with_name(f".{final.name}.old")
    if not old.exists():
        return
    with output_lock(final):
        if old.exists() and not final.exists():
            os.rename(old, final)
        elif old.exists():
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()


def _install(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move the finished temporary `tmp` to `final` under the output lock: refuse when `final` exists and
    `overwrite` is false; otherwise swap atomically, so `final` is never missing and never half-written."""
    with output_lock(final):
        checkpoint("install", final)
        if not overwrite or not final.exists():
            try:
                if not renameat2(tmp, final, RENAME_NOREPLACE):
                    if final.exists():  # safe here: every churn writer renames under this lock
                        raise _exists_error(final)
                    os.rename(tmp, final)
            except FileExistsError:
                raise _exists_error(final) from None
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise _exists_error(final) from None
                raise
            return
        if tmp.is_dir() != final.is_dir():
            raise ChurnError(f"{final} exists and is a {'folder' if final.is_dir() else 'file'}; not replaced")
        if tmp.is_file():
            os.replace(tmp, final)  # atomic for files
            return
        # Folders: exchange the two in one step; `tmp` then holds the old output and is removed by the caller.
        if renameat2(tmp, final, RENAME_EXCHANGE):
            checkpoint("swapped", final)
            return
        old = final.with_name(f".{final.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.rename(final, old)
        checkpoint("old-window", final)  # killed here, `_recover_old` restores `old` at the next start
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it into place (refusing to replace an
    existing file unless `overwrite`, also when another run wrote it meanwhile), on error remove it.
    The file is made readable by the owner only."""
    final = ensure_writable(path, overwrite)
    with live_temporary(final, folder=False) as tmp:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, OUTPUT_FILE_MODE)  # some writers (DuckDB) replace the file created for them
        checkpoint("file-written", final)
        _install(tmp, final, overwrite)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success move it into place (refusing to replace an
    existing folder unless `overwrite`, also when another run wrote it meanwhile), on error remove it.

    The folder is made 0700 and its files 0600 (outputs hold customer data). With `overwrite`, the old
    folder is exchanged with the new one in one step (renameat2), so there is never a moment without it.
    """
    final = ensure_writable(path, overwrite)
    # After an exchange, the temporary holds the old folder: leaving the block removes it.
    with live_temporary(final, folder=True) as tmp:
        yield tmp
        for d, _, names in os.walk(tmp):
            os.chmod(d, OUTPUT_DIR_MODE)
            for n in names:
                os.chmod(os.path.join(d, n), OUTPUT_FILE_MODE)
        checkpoint("dir-written", final)
        _install(tmp, final, overwrite)


PSEUDONYM_KEY_ENV = "CHURN_PSEUDONYM_KEY"


def pseudonym_key() -> bytes | None:
    """The key for pseudonymising customer ids (`CHURN_PSEUDONYM_KEY`), or None when unset or empty."""
    key = os.environ.get(PSEUDONYM_KEY_ENV, "")
    return key.encode() if key else None


def pseudonymise(ids: Any, key: bytes) -> pd.Series:
    """Keyed pseudonyms of customer ids: "p" + 24 hex digits of HMAC-SHA256(key, id as text). The same id
    and key always give the same pseudonym (outputs of different runs still join); without the key, an id
    cannot be recovered or checked against a guess."""
    import hashlib
    import hmac

    values = pd.Series(ids).astype(str)
    return values.map(lambda v: "p" + hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:24])


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
