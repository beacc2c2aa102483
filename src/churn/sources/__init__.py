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

The package, in the order a source is opened: `base` (`DataSource`, `TableInfo`, the connection),
`discovery` (find the files, register the raw relations, map the columns), `layouts` (how each text column
reads) and `typed` (the typed relations). Everything is importable from `churn.sources`.
"""

from __future__ import annotations

from churn.sources.base import DataSource, TableInfo, _lit, _q, connect
from churn.sources.discovery import discover, explain_duckdb_error, open_source
from churn.sources.layouts import SAMPLE_ROWS, native_type
from churn.sources.typed import register_typed, typed_expr

__all__ = [
    "SAMPLE_ROWS",
    "DataSource",
    "TableInfo",
    "_lit",
    "_q",
    "connect",
    "discover",
    "explain_duckdb_error",
    "native_type",
    "open_source",
    "register_typed",
    "typed_expr",
]
