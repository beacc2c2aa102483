"""What an opened data source is: its tables (`TableInfo`) held in a DuckDB connection (`DataSource`), the
connection's settings, and SQL quoting for identifiers and literals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from churn import readers
from churn.config import EngineConfig


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
    # Some customers' rows of the table (a Spark bucket): row numbers would be the bucket's, so problems
    # name the customer instead.
    in_bucket: bool = False

    @property
    def columnar(self) -> bool:
        """Parquet (a file or a folder of parts): columns read separately, with per-row-group statistics."""
        return not self.in_bucket and readers.is_parquet(self.path)


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

    def table_rows(self) -> list[tuple[str, str, int]]:
        """(table, file, rows) of every table, customers first (its file "(derived from activity)" when the
        source has none): what `churn validate` and `validation_report` list."""
        names = ["customers", *(t for t in self.tables if t != "customers")]
        return [(name, str(self.tables[name].path) if name in self.tables else "(derived from activity)",
                 int(self.con.execute(f"SELECT count(*) FROM {name}").fetchone()[0])) for name in names]

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
