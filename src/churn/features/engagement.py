"""Engagement: how much and how recently a customer uses the product (events table)."""

from __future__ import annotations

from churn.errors import ChurnError
from churn.features.context import Ctx, cumulative, days_since, ident, in_last, per_date, window
from churn.features.registry import Feature

FAMILY = "engagement"


def discover_event_types(ctx: Ctx) -> list[str]:
    """Configured event types, else the most frequent ones (a schema choice, stored with the model)."""
    cfg = ctx.config.features.engagement
    if cfg.event_types is not None:
        return list(cfg.event_types)
    if not ctx.ds.has_column("events", "event_type"):
        return []
    rows = ctx.ds.con.execute(
        "SELECT event_type FROM events WHERE event_type IS NOT NULL GROUP BY 1 "
        f"ORDER BY count(*) DESC, event_type LIMIT {int(cfg.max_event_types)}"
    ).fetchall()
    return [r[0] for r in rows]


def declare(ctx: Ctx) -> list[Feature]:
    """The engagement features for this config and data."""
    cfg = ctx.config.features.engagement
    has_dur = ctx.ds.has_column("events", "duration_s")
    if ctx.event_types and not ctx.ds.has_column("events", "event_type"):
        raise ChurnError(
            f"{ctx.ds.tables['events'].path}: event types {ctx.event_types} are configured (or stored with the "
            "model) but the events table has no 'event_type' column; map it in "
            "sources.tables.events.columns or remove features.engagement.event_types"
        )
    f: list[Feature] = []
    for w in cfg.windows:
        f.append(Feature(f"events_{w}d", FAMILY, f"product events in the last {w} days", w,
                         reason=f"only {{value:.0f}} product events in the last {w} days"))
        f.append(Feature(f"active_days_{w}d", FAMILY, f"days with any product activity in the last {w} days", w,
                         reason=f"active on only {{value:.0f}} of the last {w} days"))
        if has_dur:
            f.append(Feature(f"duration_hours_{w}d", FAMILY, f"hours of use in the last {w} days", w,
                             reason=f"{{value:.1f}} hours of use in the last {w} days"))
        for t in ctx.event_types:
            f.append(Feature(f"events_{ident(t)}_{w}d", FAMILY, f"'{t}' events in the last {w} days", w,
                             reason=f"{{value:.0f}} '{t}' events in the last {w} days"))
    f += [
        Feature("days_since_last_event", FAMILY, "days since the last product activity",
                reason="no activity in {value:.0f} days (usually every {event_gap_typical_days:.0f})",
                reason_missing="no product activity on record"),
        Feature("event_gap_typical_days", FAMILY, "typical days between active days (last 90 days)", 90,
                reason="active only every {value:.0f} days"),
        Feature("events_trend_30d", FAMILY,
                "change in activity, last 30 days vs the 30 before (-1 = stopped, 0 = steady)", 60,
                reason="activity {value:+.0%} vs the month before"),
        Feature("events_30d_vs_90d", FAMILY,
                "last 30 days' activity relative to the 90-day average (1 = steady, below 1 = fading)", 90,
                reason="activity at {value:.0%} of its usual level"),
        Feature("weeks_active_share", FAMILY, f"share of the last {cfg.weeks_active} weeks with any activity",
                cfg.weeks_active * 7, reason="active in only {value:.0%} of recent weeks"),
    ]
    return f


def _distinct_weeks(weeks: int, where: str) -> str:
    """Aggregate counting distinct weeks (`_d // 7`) of rows matching `where`: one bit per week when they
    fit a BIGINT (a DISTINCT aggregate keeps a hash set per customer and was the costliest column here)."""
    if weeks <= 62:
        return f"coalesce(bit_count(bit_or(CAST(1 AS BIGINT) << CAST(t._d // 7 AS INTEGER)) FILTER (WHERE {where})), 0)"
    return f"count(DISTINCT t._d // 7) FILTER (WHERE {where})"


def _n_masks(days: int) -> int:
    """How many 63-day masks cover `days` days."""
    return (days + 62) // 63


def _day_masks(lookback: int) -> list[str]:
    """Aggregates `_m0, _m1, ...`: bit d % 63 of mask d // 63 set when the customer was active d whole days
    before as_of (d = 0 is the last day). Distinct active days then cost a popcount, not a DISTINCT."""
    return [f"coalesce(bit_or(CAST(1 AS BIGINT) << CAST(t._d % 63 AS INTEGER)) FILTER (WHERE t._d // 63 = {k}), 0) "
            f"AS _m{k}" for k in range(_n_masks(lookback))]


def _active_days(window: int) -> str:
    """Distinct active days in the last `window` days, from the `_day_masks` columns."""
    parts = []
    for k in range(_n_masks(window)):
        lo, hi = 63 * k, min(window, 63 * (k + 1))
        parts.append(f"bit_count(_m{k} & CAST({(1 << (hi - lo)) - 1} AS BIGINT))")
    return " + ".join(parts)


def build(ctx: Ctx) -> list[str]:
    """Create the engagement tables; return their names."""
    cfg = ctx.config.features.engagement
    has_dur = ctx.ds.has_column("events", "duration_s")
    has_type = ctx.ds.has_column("events", "event_type") and ctx.event_types
    lookback = max([*cfg.windows, 90, cfg.weeks_active * 7])
    # Straight from the events: a (customer, day) rollup first meant a high-cardinality aggregation
    # (8.6M groups for 10M events) that cost more than the windowed aggregates themselves.
    sel, outer = [], []
    for w in cfg.windows:
        win = in_last(w)
        # count_if rather than FILTER clauses: one pass of plain aggregates, ~20% faster on 10M events.
        sel.append(f"count_if({win}) AS events_{w}d")
        outer.append(f"{_active_days(w)} AS active_days_{w}d")
        ctx.zero_fill |= {f"events_{w}d", f"active_days_{w}d"}
        if has_dur:
            # Exact decimal sums: float sums depend on row order, and outputs must not.
            sel.append(f"coalesce(CAST(sum(CAST(t.duration_s AS DECIMAL(18, 3))) FILTER (WHERE {win}) AS DOUBLE) "
                       f"/ 3600.0, 0) AS duration_hours_{w}d")
            ctx.zero_fill.add(f"duration_hours_{w}d")
        for t in ctx.event_types if has_type else []:
            lit = t.replace(chr(39), chr(39) * 2)
            sel.append(f"count_if({win} AND t.event_type = '{lit}') AS events_{ident(t)}_{w}d")
            ctx.zero_fill.add(f"events_{ident(t)}_{w}d")
    e30, e_prev, e90 = (f"count_if({in_last(30)})", f"count_if({in_last(30, 30)})", f"count_if({in_last(90)})")
    weeks = int(cfg.weeks_active)
    sel += [
        *_day_masks(lookback),
        f"CAST({e30} + 1 AS DOUBLE) / CAST({e_prev} + 1 AS DOUBLE) - 1 AS events_trend_30d",
        f"CAST({e30} AS DOUBLE) * 3 / nullif(CAST({e90} AS DOUBLE), 0) AS events_30d_vs_90d",
        f"CAST({_distinct_weeks(weeks, in_last(weeks * 7))} AS DOUBLE) / {weeks} AS weeks_active_share",
    ]
    outer.append(f"90.0 / nullif({_active_days(90)}, 0) AS event_gap_typical_days")
    ctx.zero_fill |= {"events_trend_30d", "weeks_active_share"}
    masks = ", ".join(f"_m{k}" for k in range(_n_masks(lookback)))
    per_date(ctx, "f_engagement_w", lambda as_of: (
        f"SELECT * EXCLUDE ({masks}), {', '.join(outer)} FROM (SELECT t.customer_id, {as_of} AS as_of, "
        f"{', '.join(sel)} FROM {window('events', 'timestamp', lookback, as_of)} t GROUP BY t.customer_id)"))
    cumulative(ctx, "f_engagement_c", "events", "timestamp", {"last_ts": "max(t.timestamp)"},
               {"days_since_last_event": days_since("date_trunc('day', max(b.last_ts))")})
    return ["f_engagement_w", "f_engagement_c"]
