"""Open a data source: find its tables, map the user's column names to ours, and type every column.

Tables become DuckDB views (Parquet) or temp tables (CSV, parsed once) in the contract's canonical
schema: `customer_id` is text, every timestamp is naive UTC, numbers are DOUBLE, flags are BOOLEAN.
Typing is lenient here (unparseable values become NULL) because `churn.validation` compares the typed
columns to the raw ones and reports every problem before anything downstream runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from churn.config import Config, EngineConfig, TableSource
from churn.contract import ACTIVITY, CONTRACT, Column, TableSpec
from churn.errors import ChurnError
from churn.io import find_table_file

TRUE_WORDS = ("true", "t", "yes", "y", "1", "1.0")
FALSE_WORDS = ("false", "f", "no", "n", "0", "0.0")


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

    @property
    def columnar(self) -> bool:
        """Parquet (a file or a folder of parts): columns read separately, with per-row-group statistics."""
        return self.path.is_dir() or self.path.suffix == ".parquet"


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


def _scan(path: Path, src: TableSource) -> tuple[str, int]:
    """DuckDB table function reading the raw file(s), and the line number of data row 1."""
    if path.is_dir():
        return f"read_parquet({_lit(str(path / '*.parquet'))})", 0
    if path.suffix == ".parquet":
        return f"read_parquet({_lit(str(path))})", 0
    delim = src.csv_delimiter or ("\t" if path.suffix == ".tsv" else ",")
    # all_varchar: ids keep their leading zeros and we parse dates/numbers ourselves, with clear errors.
    return (
        f"read_csv({_lit(str(path))}, all_varchar=true, header=true, delim={_lit(delim)}, "
        f"quote='\"', null_padding=true)",
        1,
    )


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


def typed_expr(col: Column, raw: str, raw_type: str, src: TableSource, timezone: str, clean_id: bool = False) -> str:
    """SQL turning the user's column `raw` into the contract type (NULL where it cannot be parsed)."""
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
        return f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"
    if col.type == "number":
        if native_type(col, raw_type):
            return f"CAST({r} AS DOUBLE)"
        return f"TRY_CAST(NULLIF(TRIM(CAST({r} AS VARCHAR)), '') AS DOUBLE)"
    if col.type == "bool":
        if native_type(col, raw_type):
            return r
        low = f"LOWER(TRIM(CAST({r} AS VARCHAR)))"
        trues = ", ".join(_lit(w) for w in TRUE_WORDS)
        falses = ", ".join(_lit(w) for w in FALSE_WORDS)
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
    for name, path in files.items():
        spec = CONTRACT[name]
        src = config.sources.tables.get(name, TableSource())
        scan, offset = _scan(path, src)
        raw_view = f"raw_{name}"
        try:
            con.execute(f"CREATE VIEW {raw_view} AS SELECT * FROM {scan}")
            described = con.execute(f"DESCRIBE {raw_view}").fetchall()
        except duckdb.Error as exc:
            raise ChurnError(f"{path}: cannot read table '{name}': {str(exc).splitlines()[0]}") from None
        raw_types = {r[0]: r[1] for r in described}
        mapping = _match_columns(spec, list(raw_types), src.columns)
        missing = [c for c in spec.required if c not in mapping or mapping[c] not in raw_types]
        ds.tables[name] = TableInfo(name, path, raw_view, {k: v for k, v in mapping.items() if v in raw_types},
                                    raw_types, missing, offset)
    for name in ACTIVITY:
        if name not in files:
            ds.notices.append(f"no '{name}' table: its feature family is skipped")
    return ds


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
                expr = typed_expr(col, theirs, info.raw_types[theirs], src, ds.timezone, clean_id=info.clean_ids)
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
