"""Open a data source: find its tables, map the user's column names to ours, and type every column.

Tables become DuckDB views (Parquet) or temp tables (CSV, parsed once) in the contract's canonical
schema: `customer_id` is text, every timestamp is naive UTC, numbers are DOUBLE, flags are BOOLEAN.
Typing is lenient here (unparseable values become NULL) because `churn.validation` compares the typed
columns to the raw ones and reports every problem before anything downstream runs.

Real exports: the CSV dialect and encoding come from `churn.readers` (the one place both readers use);
UTF-8 CSVs (plain or .gz) are scanned by DuckDB, Excel sheets and legacy encodings are decoded by Python
and held as temp tables. Numbers written as text may use a decimal comma and thousands grouping, and text
dates may be day-first (31.12.2024, 31/12/2024): both are decided per column from a sample of its values,
unless the table's config fixes them (`decimal_separator`, `thousands_separator`, `day_first`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import re

import duckdb
import pandas as pd

from churn import readers
from churn.config import Config, EngineConfig, TableSource
from churn.contract import ACTIVITY, CONTRACT, Column, TableSpec
from churn.errors import ChurnError
from churn.io import find_table_file
from churn.yesno import FALSE_WORDS, TRUE_WORDS



@dataclass
class TableInfo:
    """One table found in the source: where it is and which user column feeds which of ours."""

    name: str
    path: Path
    raw_view: str  # relation with the user's columns, untouched (for error examples)
    mapping: dict[str, str]  # our column -> user's column (present columns only)
    raw_types: dict[str, str]  # user's column -> DuckDB type
    missing_required: list[str] = field(default_factory=list)
    line_offset: int = 1  # CSV: data row 1 is line 2
    # Validation found every id already normalised text (no blanks, no surrounding spaces): the typed
    # relation can use it as it is (trimming 50M ids cost 1.5 s per scan).
    clean_ids: bool = False
    # Per user column, how its text is read (decided from the data unless configured):
    number_styles: dict[str, tuple[str, str]] = field(default_factory=dict)  # (decimal, thousands chars)
    date_formats: dict[str, tuple[str, ...]] = field(default_factory=dict)  # strptime formats after ISO

    @property
    def columnar(self) -> bool:
        """Parquet (a file or a folder of parts): columns read separately, with per-row-group statistics."""
        return readers.is_parquet(self.path)


@dataclass
class DataSource:
    """A validated, typed data source held in a DuckDB connection."""

    con: duckdb.DuckDBPyConnection
    tables: dict[str, TableInfo]
    timezone: str
    derived_customers: bool = False
    notices: list[str] = field(default_factory=list)
    label: str = ""

    def has(self, table: str) -> bool:
        """Whether the source provides `table` (customers always exist, maybe derived)."""
        return table == "customers" or table in self.tables

    def has_column(self, table: str, column: str) -> bool:
        """Whether `table` has the contract column `column` (mapped from the user's data)."""
        info = self.tables.get(table)
        return info is not None and column in info.mapping

    def columns(self, table: str) -> list[str]:
        """Canonical columns of the typed view `table`."""
        return [r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()]


def connect(engine: EngineConfig, timezone: str = "UTC") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with explicit threads and memory (two cores must not be oversubscribed)."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(engine.threads)}")
    con.execute(f"SET memory_limit = '{engine.memory_limit}'")
    if engine.temp_directory:
        con.execute(f"SET temp_directory = '{engine.temp_directory}'")
    con.execute(f"SET TimeZone = '{timezone}'")
    # Order-dependent results (examples, first rows) must be reproducible.
    con.execute("SET preserve_insertion_order = true")
    return con


def _q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """Quote a string literal for DuckDB."""
    return "'" + text.replace("'", "''") + "'"


def _setting(table: str, key: str) -> str:
    return f"sources.tables.{table}.{key}"


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


_GROUPING = r"[+-]?\d{{1,3}}(?:[{t}]\d{{3}})+(?:[{d}]\d*)?"
_COMMA_EVIDENCE = (r"[+-]?\d*,(?:\d{1,2}|\d{4,})", r"[+-]?\d{1,3}(?:[. \x{00a0}']\d{3})+,\d+",
                   r"[+-]?\d{1,3}(?:\.\d{3}){2,}")
_DOT_EVIDENCE = (r"[+-]?\d*\.(?:\d{1,2}|\d{4,})(?:[eE][+-]?\d+)?", r"[+-]?\d{1,3}(?:[, \x{00a0}']\d{3})+\.\d+",
                 r"[+-]?\d{1,3}(?:,\d{3}){2,}")
_AMBIGUOUS_COMMA = r"[+-]?\d{1,3}(?:,\d{3})+"
_GROUP_CHARS = r"\d[, '\x{00a0}\x{202f}]\d"  # a digit group separator between digits
_SLASHED = r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}(?:[ T].*)?"
_DATE_PARTS = r"^(\d{1,2})[/-](\d{1,2})[/-]"
_TIMES = ("", " %H:%M", " %H:%M:%S", "T%H:%M:%S", " %H:%M:%S.%f")
SAMPLE_ROWS = 10_000  # values per column that decide its number and date layout


def _date_formats(day_first: bool) -> tuple[str, ...]:
    """strptime layouts tried after ISO 8601 (dotted dates are always day first: 31.12.2024)."""
    d = ["%d.%m.%Y", "%d.%m.%y"]
    for sep in ("/", "-"):
        d += [f"%d{sep}%m{sep}%Y"] if day_first else [f"%m{sep}%d{sep}%Y"]
    return tuple(f + t for f in d for t in _TIMES)


def _thousands_class(decimal: str, configured: str | None) -> str:
    if configured is not None:
        return configured  # one of , . space ' (or none): literal inside a character class
    return ("," if decimal == "." else ".") + " \u00a0\u202f'"


def _detect_layouts(con: duckdb.DuckDBPyConnection, info: TableInfo, src: TableSource, delimiter: str | None,
                    notices: list[str]) -> None:
    """Decide, per text number and date column, the decimal separator and day-first order from a sample."""
    spec = CONTRACT[info.name]
    aggs: list[str] = []
    plan: list[tuple[str, str, str]] = []  # (kind, our column, their column)
    for col in spec.columns:
        theirs = info.mapping.get(col.name)
        if theirs is None or theirs not in info.raw_types or native_type(col, info.raw_types[theirs]):
            continue
        t = f"TRIM(CAST({_q(theirs)} AS VARCHAR))"
        if col.type == "number" and src.decimal_separator is None:
            comma = " OR ".join(f"regexp_full_match({t}, {_lit(r)})" for r in _COMMA_EVIDENCE)
            dot = " OR ".join(f"regexp_full_match({t}, {_lit(r)})" for r in _DOT_EVIDENCE)
            amb = f"regexp_full_match({t}, {_lit(_AMBIGUOUS_COMMA)})"
            grouped = f"regexp_matches({t}, {_lit(_GROUP_CHARS)})"
            aggs += [f"count(*) FILTER (WHERE {comma})", f"count(*) FILTER (WHERE {dot})",
                     f"count(*) FILTER (WHERE {amb})", f"count(*) FILTER (WHERE {grouped})"]
            plan.append(("number", col.name, theirs))
        elif col.type in ("timestamp", "date") and not src.date_format and src.day_first is None:
            slashed = f"regexp_full_match({t}, {_lit(_SLASHED)})"
            def part(k: int, t: str = t) -> str:
                return f"TRY_CAST(regexp_extract({t}, {_lit(_DATE_PARTS)}, {k}) AS INTEGER)"

            aggs += [f"count(*) FILTER (WHERE {slashed})",
                     f"count(*) FILTER (WHERE {slashed} AND {part(1)} > 12)",
                     f"count(*) FILTER (WHERE {slashed} AND {part(2)} > 12)", "0"]
            plan.append(("date", col.name, theirs))
    found: tuple = ()
    if aggs:
        found = con.execute(f"SELECT {', '.join(aggs)} FROM (SELECT * FROM {info.raw_view} LIMIT {SAMPLE_ROWS})"
                            ).fetchone() or ()
    for i, (kind, ours, theirs) in enumerate(plan):
        a, b, c, g = found[4 * i: 4 * i + 4]
        if kind == "number":
            # A decimal comma shows as a comma not followed by exactly three digits (12,5) or as dot groups
            # before a comma (1.234,5); "1,234" alone could be either: semicolon exports are European.
            decimal = "," if (a and not b) or (c and not a and not b and delimiter == ";") else "."
            thousands = _thousands_class(decimal, src.thousands_separator)
            if decimal == "." and not g and src.thousands_separator is None:
                # Plain numbers in the sample: a straight cast, no per-value pattern match (50M-row exports).
                # A grouped value further down then shows up as "not a number" with its line.
                thousands = ""
            info.number_styles[theirs] = (decimal, thousands)
        else:
            if b and not c:
                day_first = True
            elif c and not b:
                day_first = False
            else:
                day_first = True
                if a and not b:
                    notices.append(f"{info.path}, column '{theirs}': dates like 03/04/2024 are read day first; set "
                                   f"{_setting(info.name, 'day_first')}: false if they are month first")
            info.date_formats[theirs] = _date_formats(day_first)


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


def native_type(col: Column, raw_type: str) -> bool:
    """Whether the file already stores the column in its contract type (so it needs no parsing)."""
    t = raw_type.upper()
    if col.type in ("timestamp", "date"):
        return t.startswith("TIMESTAMP") or t == "DATE"
    if col.type == "number":
        return any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC"))
    if col.type == "bool":
        return t == "BOOLEAN"
    return t == "VARCHAR" and col.type == "text"


def typed_expr(col: Column, raw: str, raw_type: str, src: TableSource, timezone: str, clean_id: bool = False,
               info: TableInfo | None = None) -> str:
    """SQL turning the user's column `raw` into the contract type (NULL where it cannot be parsed).

    `info` carries the layouts decided for the table's text columns (decimal comma, day-first dates); the
    config's explicit settings win over them."""
    r = _q(raw)
    t = raw_type.upper()
    if col.type == "id" and clean_id and t == "VARCHAR":
        return r
    if col.type == "id":
        # Numeric ids from Parquet lose nothing by becoming text; text ids keep leading zeros.
        return f"NULLIF(TRIM(CAST({r} AS VARCHAR)), '')"
    if col.type in ("timestamp", "date"):
        if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
            return f"timezone('UTC', {r})"
        if native_type(col, raw_type):
            ts = f"CAST({r} AS TIMESTAMP)"
            return ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        text = f"NULLIF(TRIM(CAST({r} AS VARCHAR)), '')"
        if src.date_format:
            ts = f"try_strptime({text}, {_lit(src.date_format)})"
            return ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        # TIMESTAMPTZ honours offsets in the text and reads naive text in the session time zone.
        iso = f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"
        formats = (info.date_formats.get(raw) if info else None) or _date_formats(
            True if src.day_first is None else src.day_first)
        # Other layouts (31.12.2024, 12/31/2024 10:00) only where ISO does not parse: a column may mix them.
        ts = f"try_strptime({text}, [{', '.join(_lit(f) for f in formats)}])"
        local = ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        return f"coalesce({iso}, {local})"
    if col.type == "number":
        if native_type(col, raw_type):
            return f"CAST({r} AS DOUBLE)"
        text = f"NULLIF(TRIM(CAST({r} AS VARCHAR)), '')"
        decimal, thousands = (info.number_styles.get(raw) if info else None) or (
            src.decimal_separator or ".", _thousands_class(src.decimal_separator or ".", src.thousands_separator))
        if not thousands and decimal == ".":
            return f"TRY_CAST({text} AS DOUBLE)"
        # Grouped digits (1.234.567,5 or 1,234.5 or 1 234,5) lose their grouping; the decimal becomes a dot.
        grouped = _GROUPING.format(t=thousands, d=re.escape(decimal)) if thousands else None
        plain = text if not grouped else (
            f"CASE WHEN regexp_full_match({text}, {_lit(grouped)}) "
            f"THEN regexp_replace({text}, {_lit('[' + thousands + ']')}, '', 'g') ELSE {text} END")
        if decimal == ",":
            # A comma decimal (12,5); a plain dot decimal (12.5) in the same column is still unambiguous.
            plain = f"replace({plain}, ',', '.')"
        return f"TRY_CAST({plain} AS DOUBLE)"
    if col.type == "bool":
        if native_type(col, raw_type):
            return r
        low = f"LOWER(TRIM(CAST({r} AS VARCHAR)))"
        trues = ", ".join(_lit(w) for w in sorted(TRUE_WORDS))
        falses = ", ".join(_lit(w) for w in sorted(FALSE_WORDS))
        return f"CASE WHEN {low} IN ({trues}) THEN TRUE WHEN {low} IN ({falses}) THEN FALSE ELSE NULL END"
    return f"NULLIF(CAST({r} AS VARCHAR), '')"


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
    for name in ACTIVITY:
        if name not in files:
            ds.notices.append(f"no '{name}' table: its feature family is skipped")
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


def register_typed(ds: DataSource, config: Config) -> None:
    """Create the canonical typed relations (`customers`, `events`, ...) once validation has passed."""
    con = ds.con
    for name, info in ds.tables.items():
        spec = CONTRACT[name]
        src = config.sources.tables.get(name, TableSource())
        select = []
        for col in spec.columns:
            if col.name in info.mapping:
                theirs = info.mapping[col.name]
                expr = typed_expr(col, theirs, info.raw_types[theirs], src, ds.timezone, clean_id=info.clean_ids,
                                  info=info)
                select.append(f"{expr} AS {_q(col.name)}")
        if spec.extra_columns:
            used = set(info.mapping.values())
            for theirs in info.raw_types:
                if theirs not in used and theirs.lower() not in {c.name for c in spec.columns}:
                    select.append(f"{_q(theirs)} AS {_q(theirs)}")
        # No row filter: validation has rejected every empty or unparseable required value, time columns
        # included. (A `WHERE timestamp IS NOT NULL` here once filtered on a raw column that happened to
        # have our name instead of the mapped one, and made every scan of events read its timestamps.)
        body = f"SELECT {', '.join(select)} FROM {info.raw_view}"
        # CSVs are parsed once into a table; Parquet stays a view (columnar scans are cheap).
        kind = "VIEW" if info.columnar else "TEMP TABLE"
        con.execute(f"CREATE {kind} {name} AS {body}")
    if "customers" not in ds.tables:
        _derive_customers(ds)


def _derive_customers(ds: DataSource) -> None:
    """A bare activity log has no customer table: signup is the first activity of each customer."""
    parts = []
    for name in ACTIVITY:
        if name in ds.tables:
            parts.append(f"SELECT customer_id, {_q(CONTRACT[name].time_column or '')} AS ts FROM {name}")
    union = " UNION ALL ".join(parts)
    ds.con.execute(
        "CREATE TEMP TABLE customers AS SELECT customer_id, MIN(ts) AS signup_date, "
        f"CAST(NULL AS TIMESTAMP) AS cancel_date FROM ({union}) GROUP BY customer_id"
    )
    ds.derived_customers = True
    ds.notices.append("no 'customers' table: customers derived from activity (signup = first activity)")
