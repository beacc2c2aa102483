"""What a family builder needs: the connection, the config, and shared SQL building blocks.

Every builder reads the typed tables and the `asof_dates` table (one row per as_of date) and gives its
columns for each date's spine rows in one of two ways:
- compiled passes (`per_date_columns`): the family's rows listed once per customer for all dates, and a
  function giving one date's values for given list rows (engagement, support, purchases, feedback);
- SQL relations keyed by (customer_id, as_of): per-date templates (`per_date`) with as_of a constant,
  windowed with `window` and `in_last`, which may read tables built once for all dates (`Ctx.create`;
  profile's fee history)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from churn.config import Config
from churn.sources import DataSource
from churn.timeline import days_between_sql


@dataclass
class Ctx:
    """Inputs shared by the family builders for one build."""

    ds: DataSource
    config: Config
    horizon_days: int
    event_types: list[str] = field(default_factory=list)
    zero_fill: set[str] = field(default_factory=set)  # counts: no rows means 0, not unknown
    dates: list[pd.Timestamp] = field(default_factory=list)  # the as_of dates being built
    # Per-date relations: name -> SQL for one as_of literal, instantiated inside each date's final query.
    templates: dict[str, Callable[[str], str]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)  # things the user should know (e.g. a model not fitted)
    # Per-date columns of compiled passes: (each spine row's position in the family's ids, the columns).
    compiled: list[tuple[np.ndarray, Callable[[pd.Timestamp, np.ndarray], dict[str, np.ndarray]]]] = field(
        default_factory=list)
    _spine: tuple[np.ndarray, Any, np.ndarray] | None = None
    # Each spine row's customer code, the distinct customers (Arrow), and their 64-bit hashes (None after
    # a hash collision: then customers are matched by id alone).
    _customers: tuple[np.ndarray, Any, np.ndarray | None] | None = None

    def spine(self) -> tuple[np.ndarray, Any, np.ndarray]:
        """The spine's rows ordered by (as_of, customer_id), read once: as_of in epoch microseconds, customer
        ids (an Arrow array) and their DuckDB hashes. Each date's rows are a slice, already in the order of
        the output."""
        if self._spine is None:
            import pyarrow.compute as pc

            t = self.ds.con.execute(
                f"SELECT epoch_us(as_of) AS t, customer_id, {CUSTOMER_HASH} AS h FROM spine "
                "ORDER BY as_of, customer_id").to_arrow_table()
            ids = t.column("customer_id").combine_chunks()
            self._spine = (t.column("t").to_numpy(), ids, t.column("h").to_numpy())
            # Distinct customers by their DuckDB hash (hashing the ids again in Arrow cost ~1 s at six
            # dates), checked against the ids themselves: a collision falls back to the ids.
            codes, hashes = pd.factorize(self._spine[2])
            some_row = np.empty(len(hashes), np.int64)
            some_row[codes] = np.arange(len(codes))
            customers = ids.take(some_row)
            if pc.all(pc.equal(ids, customers.take(codes))).as_py() is False:
                encoded = pc.dictionary_encode(ids)
                codes, customers, hashes = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary, None
            self._customers = (np.asarray(codes, np.int64), customers, hashes)
        return self._spine

    def date_slice(self, when: pd.Timestamp) -> slice:
        """The spine rows (in `spine()` order) of one as_of date."""
        t = self.spine()[0]
        us = epoch_us(when)
        return slice(*np.searchsorted(t, [us, us + 1]))

    def spine_rows(self, ids: Any, hashes: np.ndarray) -> np.ndarray:
        """For each spine row (in `spine()` order), its customer's position in `ids` (whose DuckDB hashes
        are `hashes`), -1 if absent. Looked up once per distinct customer (a DuckDB join of the spine's
        rows cost ~0.8 s a family at six dates)."""
        self.spine()
        codes, customers, spine_hashes = self._customers
        return positions(customers, spine_hashes, ids, hashes)[codes]

    def create(self, name: str, select: str, kind: str | None = None) -> None:
        """Create temp relation `name` as `select`: by default a view when one as_of date is built, a table
        when several are.

        One date's relations are each read once, by the final write, so a view streams them into it;
        materialising costs DuckDB ~35 ns a value (4 s for the 663k x 78 feature table alone). Several dates
        are read date by date, and a view would recompute everything for each. `kind="TABLE"` forces a
        table for a relation read more than once.
        """
        replace_relation(self.ds.con, name, kind or ("VIEW" if len(self.dates) == 1 else "TABLE"), select)


def replace_relation(con: duckdb.DuckDBPyConnection, name: str, kind: str, select: str) -> None:
    """CREATE OR REPLACE TEMP `kind` (VIEW or TABLE) `name` AS `select`, whatever kind `name` was before
    (DuckDB refuses to replace a view by a table and vice versa, e.g. after an earlier build's other kind)."""
    other = "TABLE" if kind == "VIEW" else "VIEW"
    if con.execute(f"SELECT count(*) FROM duckdb_{other.lower()}s() WHERE {other.lower()}_name = ? AND temporary",
                   [name]).fetchone()[0]:
        con.execute(f"DROP {other} {name}")
    con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {select}")


def ident(text: str) -> str:
    """A safe lower-case identifier fragment for a data value (e.g. an event type)."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", str(text).strip().lower()).strip("_")
    return s or "blank"


def days_since(earlier: str, as_of: str = "a.as_of") -> str:
    """Fractional days from `earlier` to as_of."""
    return days_between_sql(earlier, as_of)


def ts_lit(when: pd.Timestamp) -> str:
    """A timestamp literal."""
    return f"TIMESTAMP '{pd.Timestamp(when).isoformat(sep=' ')}'"


def window(table: str, ts: str, lookback_days: int | None, as_of: str) -> str:
    """Subquery: the rows of `table` with `ts` in [as_of - lookback, as_of) (all before as_of without a
    lookback), each with `_d`, the whole days before as_of it happened (0 = the last day before as_of).

    `as_of` is a literal (one query per date): the bounds become constant filters that run inside the scan,
    and `_d` is exact integer arithmetic on microseconds; a range join to the as_of dates and fractional
    day ages cost twice as much on 10M events.
    """
    cond = f"{ts} < {as_of}"
    if lookback_days is not None:
        cond += f" AND {ts} >= {as_of} - INTERVAL {int(lookback_days)} DAY"
    return f"(SELECT *, (epoch_us({as_of}) - epoch_us({ts}) - 1) // {_DAY_US} AS _d FROM {table} WHERE {cond})"


_DAY_US = 86_400_000_000


def in_last(days: int, offset_days: int = 0) -> str:
    """Condition for a row `t` of `window`: it happened in [as_of - offset - days, as_of - offset)."""
    cond = f"t._d < {int(days + offset_days)}"
    if offset_days:
        cond += f" AND t._d >= {int(offset_days)}"
    return cond


def per_date(ctx: Ctx, name: str, select: Callable[[str], str]) -> None:
    """Declare per-date relation `name`: `select(as_of literal)` gives its rows at that date.

    Nothing runs here: each date's assembly runs it with CTEs (`spine` there holds only that date's rows),
    so every date gets constant bounds and nothing is stored (materialising cost DuckDB ~35 ns a value).
    It may refer to `spine`, to relations created so far and to per-date relations declared before it.
    Its cost grows with the number of dates, which is why the activity tables are listed once per
    customer for compiled passes instead (`per_date_columns`).
    """
    ctx.templates[name] = select



def per_date_columns(ctx: Ctx, rows: np.ndarray,
                     columns: Callable[[pd.Timestamp, np.ndarray], dict[str, np.ndarray]]) -> None:
    """Declare per-date columns computed outside SQL (a compiled pass) over the family's own list of
    customers: `rows` (`Ctx.spine_rows`) places each spine row's customer in that list, and
    `columns(as_of, list rows)` gives that date's values for those rows (-1: a customer not in the list,
    who gets what the features say of no activity).

    They reach the date's query without a join: the pass writes them in the date's spine order
    (`engine._date_table`).
    """
    ctx.compiled.append((rows, columns))


# A customer id's 64-bit DuckDB hash: how listed rows and SQL relations find their spine rows (`positions`).
CUSTOMER_HASH = "hash(CAST(customer_id AS VARCHAR))"


def scaled_int(expr: str, digits: int) -> str:
    """SQL: `expr` as an exact integer of 1/10**digits units (via DECIMAL(18, digits)), so sums of it do not
    depend on row order as float sums do."""
    return f"CAST(CAST({expr} AS DECIMAL(18, {int(digits)})) * {10 ** int(digits)} AS BIGINT)"


def list_per_customer(ctx: Ctx, table: str, time_col: str, fields: dict[str, str]
                      ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Each customer's rows of `table` before the last as_of, listed once for every date (one DuckDB
    aggregation): (each spine row's list row, as `Ctx.spine_rows`; the lists' offsets; one int64 array
    per field of `fields`, name -> SQL expression, in list order)."""
    struct = ", ".join(f"'{name}': CAST({expr} AS BIGINT)" for name, expr in fields.items())
    lists = ctx.ds.con.execute(
        f"SELECT customer_id, {CUSTOMER_HASH} AS h, list({{{struct}}}) AS l FROM {table} "
        f"WHERE {time_col} < {ts_lit(max(ctx.dates))} GROUP BY customer_id"
    ).to_arrow_table()
    col = lists.column("l").combine_chunks()
    rows = ctx.spine_rows(lists.column("customer_id"), lists.column("h").to_numpy())
    # flatten: the struct's children with the struct's own offset applied.
    return rows, col.offsets.to_numpy(), [f.to_numpy() for f in col.values.flatten()]


def positions(targets: Any, target_hashes: np.ndarray | None, ids: Any, hashes: np.ndarray) -> np.ndarray:
    """Each of `targets`' position in `ids` (Arrow arrays of customer ids), -1 if absent: a hash lookup on
    their DuckDB hashes, checked against the ids themselves; Arrow's index_in on the ids (slower: it
    hashes the text again) when the hashes cannot be trusted (a collision, or no hashes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from churn.features.lookup import find

    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if target_hashes is not None:
        pos = find(np.asarray(hashes, np.uint64), np.asarray(target_hashes, np.uint64))  # None: a shared hash
        if pos is not None:
            found = pos >= 0
            if pc.all(pc.equal(targets.filter(found), ids.take(pos[found]).cast(targets.type))).as_py() is not False:
                return pos.astype(np.int64)
    pos = pc.index_in(targets, value_set=ids.cast(targets.type))
    return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def epoch_us(when: pd.Timestamp) -> int:
    """Microseconds since 1970-01-01 of a naive timestamp (DuckDB's epoch_us)."""
    return int((pd.Timestamp(when) - pd.Timestamp("1970-01-01")) // pd.Timedelta(microseconds=1))
