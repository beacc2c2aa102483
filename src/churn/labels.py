"""Churn labels and the snapshot population, on the one time rule of `churn.timeline`.

- cancellation (contractual): the customer's `cancel_date` falls in `[as_of, as_of + horizon)`.
- inactivity (non-contractual): no order/event of the configured kinds in `[as_of, as_of + horizon)`.
A snapshot holds customers who signed up before as_of and had not churned before it: for cancellation,
no cancel_date before as_of; for inactivity, some activity in the `active_within_days` before as_of.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from churn.config import Config
from churn.contract import ACTIVITY, CONTRACT
from churn.errors import ChurnError
from churn.sources import DataSource, _lit
from churn.timeline import label_window_sql

LabelKind = Literal["cancellation", "inactivity"]


def label_kind(ds: DataSource, config: Config) -> LabelKind:
    """The configured label, or for `auto`: cancellation when the data has cancel dates."""
    has_cancel = not ds.derived_customers and ds.has_column("customers", "cancel_date")
    kind = config.label.kind
    if kind == "auto":
        return "cancellation" if has_cancel else "inactivity"
    if kind == "cancellation" and not has_cancel:
        raise ChurnError("label.kind is 'cancellation' but the customers table has no cancel_date column")
    return kind


def _activity_sql(ds: DataSource, config: Config) -> str:
    """Union of (customer_id, ts) of the rows that count as activity for the inactivity label."""
    parts = []
    for t in config.label.activity_tables:
        if t not in ds.tables:
            continue
        ts = CONTRACT[t].time_column
        where = ""
        if t == "events" and config.label.event_types:
            where = " WHERE event_type IN (" + ", ".join(_lit(e) for e in config.label.event_types) + ")"
        parts.append(f"SELECT customer_id, {ts} AS ts FROM {t}{where}")
    if not parts:
        raise ChurnError(
            f"label.activity_tables {config.label.activity_tables} names no table present in the data; "
            f"present: {sorted(ds.tables)}"
        )
    return " UNION ALL ".join(parts)


def create_spine(ds: DataSource, config: Config, kind: LabelKind) -> None:
    """Temp table `spine(customer_id, as_of)`: who is a customer at each as_of (needs table `asof_dates`)."""
    con = ds.con
    cancel = "(c.cancel_date IS NULL OR c.cancel_date >= a.as_of)" if ds.has_column("customers", "cancel_date") \
        or ds.derived_customers else "TRUE"
    # Not sorted here: the feature build reads it once, sorted (`Ctx.spine`); the labels join it.
    inactivity = kind == "inactivity"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE spine AS SELECT c.customer_id, a.as_of FROM customers c CROSS JOIN asof_dates a "
        f"WHERE c.customer_id IS NOT NULL AND c.signup_date < a.as_of AND {cancel}"
    )
    if inactivity:
        days = config.label.active_within_days or config.label.horizon_days
        con.execute(
            "CREATE OR REPLACE TEMP TABLE spine AS SELECT s.* FROM spine s SEMI JOIN (SELECT DISTINCT t.customer_id, "
            f"a.as_of FROM ({_activity_sql(ds, config)}) t JOIN asof_dates a ON t.ts < a.as_of "
            f"AND t.ts >= a.as_of - INTERVAL {int(days)} DAY) r ON r.customer_id = s.customer_id AND r.as_of = s.as_of"
        )


def create_labels(ds: DataSource, config: Config, kind: LabelKind) -> None:
    """Temp table `labels(customer_id, as_of, churned)` over the spine."""
    h = config.label.horizon_days
    if kind == "cancellation":
        cond = label_window_sql("c.cancel_date", "s.as_of", h)
        ds.con.execute(
            f"CREATE OR REPLACE TEMP TABLE labels AS SELECT s.customer_id, s.as_of, "
            f"CAST(coalesce({cond}, FALSE) AS INTEGER) AS churned FROM spine s JOIN customers c USING (customer_id)"
        )
        return
    ds.con.execute(
        "CREATE OR REPLACE TEMP TABLE labels AS SELECT s.customer_id, s.as_of, "
        "CAST(r.customer_id IS NULL AS INTEGER) AS churned FROM spine s LEFT JOIN (SELECT DISTINCT t.customer_id, "
        f"a.as_of FROM ({_activity_sql(ds, config)}) t JOIN asof_dates a ON {label_window_sql('t.ts', 'a.as_of', h)}) r "
        "ON r.customer_id = s.customer_id AND r.as_of = s.as_of"
    )


def data_range(ds: DataSource) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first activity, exclusive end of observation = day after the last activity) of the source."""
    parts = [f"SELECT min({CONTRACT[t].time_column}) AS lo, max({CONTRACT[t].time_column}) AS hi FROM {t}"
             for t in ACTIVITY if t in ds.tables]
    lo, hi = ds.con.execute(f"SELECT min(lo), max(hi) FROM ({' UNION ALL '.join(parts)})").fetchone()
    if lo is None:
        raise ChurnError(f"{ds.label}: the activity tables hold no rows with a timestamp")
    return pd.Timestamp(lo), pd.Timestamp(hi).normalize() + pd.Timedelta(days=1)
