"""Churn labels and the snapshot population, on the one time rule of `churn.timeline`.

- cancellation (contractual): the customer's `cancel_date` falls in `[as_of, as_of + horizon)`.
- inactivity (non-contractual): no activity of the configured kinds in `[as_of, as_of + horizon)`: orders
  and events by default, or the tickets and surveys of a business with neither (`activity_tables`).
The population rule, written once here and used by training and scoring alike. At an as_of, a known
customer is *current* when they signed up before as_of and had not cancelled before it, and, for inactivity
(a non-contractual business), had some activity of the label's kinds before it. A training snapshot, and
the scored list, holds the current customers who are *active*: for cancellation, all of them; for
inactivity, those with activity in the `active_within_days` (default: the horizon) before as_of. A current
customer who is not active is *lapsed*. `create_standing` gives every known customer's standing at each
as_of; `create_spine` the active ones only (the same rule, computed the cheap way for many dates).
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
    return kind_of(not ds.derived_customers and ds.has_column("customers", "cancel_date"), config)


def kind_of(has_cancel: bool, config: Config) -> LabelKind:
    """`label_kind` for data that has (or lacks) customers' cancel dates."""
    kind = config.label.kind
    if kind == "auto":
        return "cancellation" if has_cancel else "inactivity"
    if kind == "cancellation" and not has_cancel:
        raise ChurnError("label.kind is 'cancellation' but the customers table has no cancel_date column")
    return kind


# What counts as activity when `label.activity_tables` is not set: purchases and product use, when the data
# has them; a business with neither (a support desk, a survey panel) is active when it writes in.
DEFAULT_ACTIVITY = ("orders", "events")


def activity_tables(ds: DataSource, config: Config) -> list[str]:
    """The tables whose rows count as activity for the inactivity label: those of `label.activity_tables`
    the data has (unset: orders and events, else every activity table the data has); an error naming the
    setting when none is present."""
    configured = config.label.activity_tables
    wanted = list(configured) if configured is not None else [t for t in DEFAULT_ACTIVITY if t in ds.tables]
    if configured is None and not wanted:
        wanted = [t for t in ACTIVITY if t in ds.tables]
    present = [t for t in wanted if t in ds.tables]
    if not present:
        raise ChurnError(
            f"{ds.label}: label.activity_tables {configured} names no table present in the data "
            f"(it has: {', '.join(t for t in ACTIVITY if t in ds.tables)}); list one of those, or leave "
            "label.activity_tables unset to count them"
        )
    return present


def _activity_sql(ds: DataSource, config: Config) -> str:
    """Union of (customer_id, ts) of the rows that count as activity for the inactivity label."""
    parts = []
    for t in activity_tables(ds, config):
        ts = CONTRACT[t].time_column
        where = ""
        if t == "events" and config.label.event_types:
            where = " WHERE event_type IN (" + ", ".join(_lit(e) for e in config.label.event_types) + ")"
        parts.append(f"SELECT customer_id, {ts} AS ts FROM {t}{where}")
    return " UNION ALL ".join(parts)


def label_summary(ds: DataSource, config: Config) -> str:
    """The label in words, as `churn validate` says it: 'cancellation', or 'inactivity (no orders, events
    within 60 days)'; an error when the inactivity label has no activity table to read."""
    kind = label_kind(ds, config)
    if kind == "cancellation":
        return kind
    return f"{kind} (no {', '.join(activity_tables(ds, config))} within {config.label.horizon_days} days)"


# A known customer's standing at an as_of; the first that applies wins. 'active' and 'lapsed' are current.
STANDINGS = ("not_yet_customer", "cancelled", "no_history", "lapsed", "active")
CURRENT = ("active", "lapsed")


def window_days(config: Config) -> int:
    """Days before as_of in which an inactivity snapshot requires activity (`active_within_days`)."""
    return int(config.label.active_within_days or config.label.horizon_days)


def _known_sql(ds: DataSource) -> tuple[str, str, str]:
    """(FROM clause of known customers c x asof_dates a, signed-up condition, not-cancelled condition)."""
    has_cancel = ds.has_column("customers", "cancel_date") or ds.derived_customers
    not_cancelled = "(c.cancel_date IS NULL OR c.cancel_date >= a.as_of)" if has_cancel else "TRUE"
    frm = "customers c CROSS JOIN asof_dates a"
    return frm, "c.signup_date < a.as_of", not_cancelled


def create_spine(ds: DataSource, config: Config, kind: LabelKind) -> None:
    """Temp table `spine(customer_id, as_of)`: the active current customers at each as_of (needs table
    `asof_dates`); the rows `create_standing` marks 'active'."""
    con = ds.con
    frm, signed_up, not_cancelled = _known_sql(ds)
    # Not sorted here: the feature build reads it once, sorted (`Ctx.spine`); the labels join it.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE spine AS SELECT c.customer_id, a.as_of FROM {frm} "
        f"WHERE c.customer_id IS NOT NULL AND {signed_up} AND {not_cancelled}"
    )
    if kind == "inactivity":
        # Activity in the window implies activity before as_of, so the 'current' test is implied; one
        # window join serves every date (the last activity per date, as in `create_standing`, would need
        # a join of each activity row with every earlier date).
        con.execute(
            "CREATE OR REPLACE TEMP TABLE spine AS SELECT s.* FROM spine s SEMI JOIN (SELECT DISTINCT t.customer_id, "
            f"a.as_of FROM ({_activity_sql(ds, config)}) t JOIN asof_dates a ON t.ts < a.as_of "
            f"AND t.ts >= a.as_of - INTERVAL {window_days(config)} DAY) r "
            "ON r.customer_id = s.customer_id AND r.as_of = s.as_of"
        )


def create_standing(ds: DataSource, config: Config, kind: LabelKind) -> None:
    """Temp table `standing(customer_id, as_of, standing, last_activity)`: every known customer at each
    as_of (needs table `asof_dates`), with one of STANDINGS, and for inactivity the time of their last
    activity of the label's kinds before as_of (NULL for cancellation). Its 'active' rows are `spine`."""
    frm, signed_up, not_cancelled = _known_sql(ds)
    if kind == "inactivity":
        last = (f"LEFT JOIN (SELECT t.customer_id, a.as_of, max(t.ts) AS last_ts FROM ({_activity_sql(ds, config)}) t "
                "JOIN asof_dates a ON t.ts < a.as_of GROUP BY ALL) l ON l.customer_id = c.customer_id "
                "AND l.as_of = a.as_of")
        last_ts = "l.last_ts"
        activity = (f"WHEN l.last_ts IS NULL THEN 'no_history' "
                    f"WHEN l.last_ts < a.as_of - INTERVAL {window_days(config)} DAY THEN 'lapsed' ")
    else:
        last, last_ts, activity = "", "CAST(NULL AS TIMESTAMP)", ""
    ds.con.execute(
        f"CREATE OR REPLACE TEMP TABLE standing AS SELECT c.customer_id, a.as_of, CASE "
        f"WHEN NOT coalesce({signed_up}, FALSE) THEN 'not_yet_customer' "
        f"WHEN NOT {not_cancelled} THEN 'cancelled' {activity}ELSE 'active' END AS standing, "
        f"{last_ts} AS last_activity FROM {frm} {last} WHERE c.customer_id IS NOT NULL"
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
    return range_of(lo, hi, ds.label)


def range_of(lo: object, hi: object, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """`data_range` from the first and last activity time (None: no activity), `where` naming the data."""
    if lo is None:
        raise ChurnError(f"{where}: the activity tables hold no rows with a timestamp")
    return pd.Timestamp(lo), pd.Timestamp(hi).normalize() + pd.Timedelta(days=1)


def share_on_or_after(ds: DataSource, when: pd.Timestamp) -> float:
    """The share of activity rows (every activity table) at or after `when` (0 when there are none)."""
    parts = [f"SELECT count(*) AS n, count(*) FILTER (WHERE {CONTRACT[t].time_column} >= TIMESTAMP "
             f"{_lit(str(pd.Timestamp(when)))}) AS after FROM {t}" for t in ACTIVITY if t in ds.tables]
    n, after = ds.con.execute(f"SELECT sum(n), sum(after) FROM ({' UNION ALL '.join(parts)})").fetchone()
    return float(after or 0) / float(n) if n else 0.0
