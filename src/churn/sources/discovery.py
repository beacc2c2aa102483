"""Finding and opening a source's tables: which file holds each table, its raw relation in DuckDB (Parquet
as a view, UTF-8 CSV scanned by DuckDB, Excel and legacy encodings decoded by Python and held as temp
tables), which user column feeds which of ours, and DuckDB read errors as user errors naming file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

from churn import readers
from churn.config import Config, TableSource
from churn.contract import ACTIVITY, CONTRACT, TableSpec
from churn.errors import ChurnError
from churn.io import find_table_file
from churn.sources.base import DataSource, TableInfo, _lit, _q, _setting, connect
from churn.sources.layouts import _detect_layouts


def _register_raw(con: duckdb.DuckDBPyConnection, name: str, path: Path, src: TableSource) -> tuple[str, int]:
    """Make the raw relation `raw_<name>` with the user's columns as they are; return it and the line
    number of data row 1 (0 for Parquet, whose rows have no lines)."""
    raw_view = f"raw_{name}"
    if readers.is_parquet(path):
        readers.check_header(path, readers.parquet_columns(path))
        target = path / "*.parquet" if path.is_dir() else path
        con.execute(f"CREATE VIEW {raw_view} AS SELECT * FROM read_parquet({_lit(str(target))})")
        return raw_view, 0
    if readers.is_excel(path):
        frame = readers.read_excel(path, src.sheet)
        return _hold_frame(con, raw_view, frame), 1
    dialect = readers.detect_dialect(path, delimiter=src.csv_delimiter, quote=src.csv_quote, encoding=src.encoding,
                                     setting=_setting(name, "encoding"))
    if not dialect.utf8:
        # DuckDB reads UTF-8 (and latin-1) only; Python's codecs know every legacy code page.
        frame = readers.read_csv_frame(path, dialect, setting=_setting(name, "encoding"))
        return _hold_frame(con, raw_view, frame), 1
    # all_varchar: ids keep their leading zeros and we parse dates/numbers ourselves, with clear errors.
    q = dialect.quote
    con.execute(
        f"CREATE VIEW {raw_view} AS SELECT * FROM read_csv({_lit(str(path))}, all_varchar=true, header=true, "
        f"delim={_lit(dialect.delimiter)}, quote={_lit(q)}, escape={_lit(q)}, null_padding=true, "
        f"compression={_lit(dialect.compression or 'none')}, encoding='utf-8')"
    )
    return raw_view, 1


def _hold_frame(con: duckdb.DuckDBPyConnection, raw_view: str, frame: pd.DataFrame) -> str:
    """Copy a text frame into a DuckDB temp table (the frame can go; the table outlives this call)."""
    frame = frame.astype(object).where(frame.notna(), None)
    con.register("__frame", frame)
    try:
        cols = ", ".join(f"CAST({_q(str(c))} AS VARCHAR) AS {_q(str(c))}" for c in frame.columns)
        con.execute(f"CREATE TEMP TABLE {raw_view} AS SELECT {cols} FROM __frame")
    finally:
        con.unregister("__frame")
    return raw_view


def explain_duckdb_error(exc: duckdb.Error, tables: dict[str, TableInfo] | None = None) -> ChurnError:
    """A DuckDB failure while reading a file, as a user-facing error naming the file and line."""
    text = str(exc)
    file = re.search(r"file = (.+)", text)
    path = Path(file.group(1).strip()) if file else None
    if path is None and tables:
        path = next((i.path for i in tables.values() if str(i.path) in text), None)
    where = str(path) if path else "input data"
    if "Invalid unicode" in text and path is not None:
        found = readers.first_invalid_utf8(path)
        name = next((n for n, i in (tables or {}).items() if i.path == path), "<table>")
        if found is not None:
            return readers.encoding_error(path, found[0], found[1], _setting(name, "encoding"))
    line = re.search(r"CSV Error on Line: (\d+)", text)
    original = re.search(r"Original Line: (.*)", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    detail = []
    for ln in text.splitlines()[1:]:
        if ln.strip() and not ln.startswith(("Original Line", "Possible Solution", "LINE ", "  ")):
            detail.append(ln.strip())
            break
    msg = f"{where}: cannot read the file"
    if line:
        msg += f" at line {line.group(1)}"
    msg += f": {first}" + (f" - {detail[0]}" if detail else "")
    if original:
        msg += f"; the line: {original.group(1)[:200]!r}"
    return ChurnError(msg)


def _match_columns(spec: TableSpec, available: list[str], configured: dict[str, str]) -> dict[str, str]:
    """Map contract columns to the user's: explicit config first, then exact, then case-insensitive."""
    by_lower = {c.strip().lower(): c for c in available}
    mapping: dict[str, str] = {}
    for col in spec.columns:
        if col.name in configured:
            theirs = configured[col.name]
            if theirs in available:
                mapping[col.name] = theirs
            elif theirs.strip().lower() in by_lower:
                mapping[col.name] = by_lower[theirs.strip().lower()]
            else:
                mapping[col.name] = theirs  # missing: reported by validation
        elif col.name in available:
            mapping[col.name] = col.name
        elif col.name in by_lower:
            mapping[col.name] = by_lower[col.name]
    return mapping


def discover(folder: Path | None, config: Config) -> dict[str, Path]:
    """Find each table's file: configured paths first, then `<folder>/<table>.(parquet|csv)`."""
    found: dict[str, Path] = {}
    problems: list[str] = []
    for name in CONTRACT:
        src = config.sources.tables.get(name)
        if src and src.path:
            p = Path(src.path)
            if not p.is_absolute() and folder is not None and not p.exists():
                p = folder / p
            if not p.exists():
                problems.append(f"{p}: file for table '{name}' does not exist")
                continue
            found[name] = p
        elif folder is not None:
            p = find_table_file(folder, name)
            if p is not None:
                found[name] = p
    if problems:
        raise ChurnError("\n".join(problems))
    return found


def open_source(data: str | Path | None, config: Config) -> DataSource:
    """Register every table of the source in a fresh DuckDB connection (raw and typed); no validation."""
    folder = Path(data) if data is not None else (Path(config.sources.path) if config.sources.path else None)
    if folder is not None and not folder.is_dir() and not config.sources.tables:
        raise ChurnError(f"{folder}: data folder does not exist")
    files = discover(folder, config)
    if not any(t in files for t in ACTIVITY):
        where = folder if folder is not None else "the configured sources"
        raise ChurnError(
            f"{where}: no activity table found; need at least one of "
            + ", ".join(f"{t}.parquet/.csv" for t in ACTIVITY)
        )
    tz = config.sources.timezone
    con = connect(config.engine, tz)
    ds = DataSource(con=con, tables={}, timezone=tz, label=str(folder or "configured sources"))
    try:
        for name, path in files.items():
            _open_table(ds, name, path, config)
    except BaseException:
        con.close()
        raise
    # A missing activity table is said where it matters, once: by the feature build that skips its family.
    return ds


def _open_table(ds: DataSource, name: str, path: Path, config: Config) -> None:
    """Register one table's raw relation, map its columns and decide its text layouts."""
    spec = CONTRACT[name]
    src = config.sources.tables.get(name, TableSource())
    try:
        raw_view, offset = _register_raw(ds.con, name, path, src)
        described = ds.con.execute(f"DESCRIBE {raw_view}").fetchall()
    except duckdb.Error as exc:
        raise explain_duckdb_error(exc) from None
    raw_types = {r[0]: r[1] for r in described}
    readers.check_header(path, list(raw_types))
    mapping = _match_columns(spec, list(raw_types), src.columns)
    missing = [c for c in spec.required if c not in mapping or mapping[c] not in raw_types]
    info = TableInfo(name, path, raw_view, {k: v for k, v in mapping.items() if v in raw_types},
                     raw_types, missing, offset)
    delimiter = None
    if not readers.is_parquet(path) and not readers.is_excel(path):
        delimiter = src.csv_delimiter or readers.sniff_delimiter(path)
    try:
        _detect_layouts(ds.con, info, src, delimiter, ds.notices)
    except duckdb.Error as exc:
        raise explain_duckdb_error(exc, {name: info}) from None
    ds.tables[name] = info
