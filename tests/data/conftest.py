"""Helpers for data tests: write tiny hand-made sources (CSV or Parquet) and build features from them.

Tables are given as lists of row dicts with text timestamps ("2024-05-31T23:59:59", offsets allowed), so a
test reads like the data it describes. CSV files are written as text; Parquet files are written with the
contract's types (ids text, timestamps as instants, numbers float, flags bool), so the two formats feed the
loader genuinely different physical types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config import Config
from churn.contract import CONTRACT
from churn.features.engine import FeatureSet, build_features
from churn.sources import DataSource
from churn.validation import load_source

# Validation compares timestamps with "now"; a fixed now keeps the tests independent of the clock.
NOW = datetime(2025, 1, 1, tzinfo=UTC)

Rows = Sequence[Mapping[str, Any]] | pd.DataFrame


def _frame(rows: Rows, columns: Sequence[str] | None = None) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    df = pd.DataFrame(list(rows))
    if columns is not None:
        for c in columns:
            if c not in df.columns:
                df[c] = None
        df = df[list(columns)]
    return df


def _typed_for_parquet(table: str, df: pd.DataFrame, renamed: Mapping[str, str], naive: bool) -> pd.DataFrame:
    """Give each contract column its natural Parquet type (the user's column names may differ).

    Timestamps become UTC instants, or with `naive` plain (zone-less) UTC wall times.
    """
    spec = CONTRACT.get(table)
    if spec is None:
        return df
    theirs_to_ours = {v: k for k, v in renamed.items()}
    out = df.copy()
    for col in df.columns:
        c = spec.column(theirs_to_ours.get(col, col))
        if c is None:
            continue
        s = df[col]
        if c.type == "id":
            out[col] = s.map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
        elif c.type in ("timestamp", "date"):
            out[col] = pd.to_datetime(s, utc=True, format="ISO8601")
            if naive:
                out[col] = out[col].dt.tz_localize(None)
        elif c.type == "number":
            out[col] = pd.to_numeric(s).astype("float64")
        elif c.type == "bool":
            out[col] = s.astype("boolean")
    return out


def write_source(
    folder: Path,
    tables: Mapping[str, Rows],
    fmt: str = "csv",
    *,
    columns: Mapping[str, Sequence[str]] | None = None,
    rename: Mapping[str, Mapping[str, str]] | None = None,
) -> Path:
    """Write `tables` (name -> rows) into `folder` as `<name>.csv` or `<name>.parquet`; return the folder.

    `fmt`: "csv" (text), "parquet" (typed, timestamps with time zone) or "parquet-naive" (typed, zone-less
    UTC timestamps).
    `columns` fixes a table's column order (and adds empty columns); `rename` renames columns as the user's
    file would name them (table -> {ours: theirs}).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        df = _frame(rows, (columns or {}).get(name))
        ren = dict((rename or {}).get(name, {}))
        df = df.rename(columns=ren)
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        elif fmt in ("parquet", "parquet-naive"):
            typed = _typed_for_parquet(name, df, ren, naive=fmt == "parquet-naive")
            typed.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            raise ValueError(fmt)
    return folder


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def make_config(overrides: Mapping[str, Any] | None = None, *, btyd: bool = False) -> Config:
    """A test config: one DuckDB thread, small memory, BG/NBD off unless asked, plus nested overrides."""
    base: dict[str, Any] = {
        "engine": {"threads": 1, "memory_limit": "1GB"},
        "features": {"purchases": {"btyd": btyd}},
    }
    return Config.model_validate(_merge(base, overrides or {}))


def load(folder: Path, config: Config | None = None) -> DataSource:
    """Validate and register a written source."""
    return load_source(str(folder), config or make_config(), now=NOW)


def build(folder: Path, as_of: Sequence[str], config: Config | None = None, **kw: Any) -> FeatureSet:
    """Load a source and build its features at `as_of`."""
    config = config or make_config()
    return build_features(load(folder, config), [pd.Timestamp(d) for d in as_of], config, **kw)


def frame(folder: Path, as_of: Sequence[str], config: Config | None = None, **kw: Any) -> pd.DataFrame:
    """The feature frame of a source at `as_of`, indexed by (customer_id, as_of)."""
    fs = build(folder, as_of, config, **kw)
    try:
        return fs.to_pandas().set_index(["customer_id", "as_of"])
    finally:
        fs.ds.con.close()


def assert_frames_identical(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Exact equality, NaN equal to NaN, same columns in the same order, same rows."""
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_dtype=True)
