"""What a family builder needs: the connection, the config, and shared SQL building blocks.

Every builder reads the typed tables and the `asof_dates` table (one row per as_of date) and writes one temp
table keyed by (customer_id, as_of). Two patterns:
- windowed aggregates join each row to the as_of dates whose window covers it (`window_join`), so their
  work grows with how many dates' windows hold a row;
- "all history" facts (last activity, lifetime counts) first aggregate each row into the single bucket
  `[previous as_of, as_of)` it falls in, then accumulate buckets up to each as_of (`cumulative`): linear
  in the data however many as_of dates there are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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

    def run(self, sql: str) -> None:
        """Execute one statement."""
        self.ds.con.execute(sql)


def ident(text: str) -> str:
    """A safe lower-case identifier fragment for a data value (e.g. an event type)."""
    s = re.sub(r"[^0-9a-zA-Z]+", "_", str(text).strip().lower()).strip("_")
    return s or "blank"


def days_since(earlier: str, as_of: str = "a.as_of") -> str:
    """Fractional days from `earlier` to as_of."""
    return days_between_sql(earlier, as_of)


def window_join(table: str, ts: str, lookback_days: int | None, dates: list[pd.Timestamp], alias: str = "t") -> str:
    """FROM-clause joining `table` rows to the as_of dates whose lookback window contains them.

    Each joined row carries `_ago`, its age in days at that as_of (in (0, lookback]), computed once so
    the many per-window filters compare one number instead of redoing timestamp arithmetic. Rows outside
    every window are dropped by a constant filter first: it runs inside the scan, where the range join
    would otherwise see all 50M events (8.6 s against 3.4 s).
    """
    cond = f"x.{ts} < a.as_of"
    span = f"x.{ts} < {_ts(max(dates))}"
    if lookback_days is not None:
        cond += f" AND x.{ts} >= a.as_of - INTERVAL {int(lookback_days)} DAY"
        span += f" AND x.{ts} >= {_ts(min(dates) - pd.Timedelta(days=int(lookback_days)))}"
    ago = days_between_sql(f"x.{ts}", "a.as_of")
    return (f"FROM (SELECT x.*, a.as_of AS _as_of, {ago} AS _ago FROM (SELECT * FROM {table} x WHERE {span}) x "
            f"JOIN asof_dates a ON {cond}) {alias} JOIN asof_dates a ON a.as_of = {alias}._as_of")


def _ts(when: pd.Timestamp) -> str:
    """A timestamp literal."""
    return f"TIMESTAMP '{pd.Timestamp(when).isoformat(sep=' ')}'"


def in_last(ts: str, days: int, offset_days: int = 0) -> str:
    """Condition for a row of `window_join`: ts in [as_of - offset - days, as_of - offset)."""
    alias = ts.split(".")[0]
    cond = f"{alias}._ago <= {float(days + offset_days)}"
    if offset_days:
        cond += f" AND {alias}._ago > {float(offset_days)}"
    return cond


def cumulative(ctx: Ctx, name: str, source: str, ts: str, bucket_aggs: dict[str, str],
               combine: dict[str, str], shift_days: int = 0) -> None:
    """Create temp table `name` (customer_id, as_of, ...) of all-history aggregates strictly before as_of
    (or before as_of - `shift_days`, e.g. "the fee in force 90 days earlier").

    `bucket_aggs` aggregate rows of `source` within one bucket (alias `t`); `combine` aggregates those
    bucket values (alias `b`) over all buckets before each as_of, e.g. {"last_ts": "max(b.last_ts)"}.
    """
    inner = ", ".join(f"{expr} AS {col}" for col, expr in bucket_aggs.items())
    outer = ", ".join(f"{expr} AS {col}" for col, expr in combine.items())
    # Each row's bucket is the first (shifted) as_of after it, labelled by that as_of; a CASE over the
    # (few) dates finds it without a range join, which on 50M events cost 3 s against 0.6 s for the
    # aggregation itself.
    dates = sorted(ctx.dates)
    shift = pd.Timedelta(days=int(shift_days))
    whens = " ".join(f"WHEN t.{ts} < {_ts(d - shift)} THEN {_ts(d)}" for d in dates)
    ctx.run(
        f"CREATE OR REPLACE TEMP TABLE {name} AS "
        f"WITH bucketed AS (SELECT t.customer_id, CASE {whens} END AS bucket, {inner} "
        f"FROM {source} t WHERE t.{ts} < {_ts(dates[-1] - shift)} GROUP BY 1, 2) "
        f"SELECT b.customer_id, a.as_of, {outer} FROM bucketed b JOIN asof_dates a ON b.bucket <= a.as_of "
        "GROUP BY b.customer_id, a.as_of"
    )
