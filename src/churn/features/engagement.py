"""Engagement: how much and how recently a customer uses the product (events table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.config import Config, TableSource
from churn.contract import CONTRACT
from churn.errors import ChurnError
from churn.features.context import CUSTOMER_HASH, Ctx, ident, per_date_columns, ts_lit
from churn.features.registry import Feature
from churn.sources import _lit, _q, typed_expr

FAMILY = "engagement"


# Distinct raw event types read to find the most frequent ones (each spelling of a type counts towards it).
_SPELLINGS_READ = 10_000


def discover_event_types(ctx: Ctx) -> list[str]:
    """Configured event types, else the most frequent ones (a schema choice, stored with the model): every
    spelling of the `max_event_types` most frequent types (spellings of one type, `type_groups`, counted
    together), most frequent type first and each type's spellings together, most frequent first."""
    cfg = ctx.config.features.engagement
    if cfg.event_types is not None:
        return list(cfg.event_types)
    if not ctx.ds.has_column("events", "event_type"):
        return []
    info = ctx.ds.tables["events"]
    source, count = "events", "count(*)"
    if info.columnar and "event_type" in info.mapping:
        # A view over the file: count the raw values first, so each distinct type is normalised once
        # rather than each of (say) 50M events.
        raw = info.mapping["event_type"]
        typed = typed_expr(CONTRACT["events"].column("event_type"), raw, info.raw_types[raw],
                           ctx.config.sources.tables.get("events", TableSource()), ctx.ds.timezone)
        source = f"(SELECT {typed} AS event_type, _n FROM (SELECT {_q(raw)}, count(*) AS _n FROM {info.raw_view} GROUP BY 1))"
        count = "sum(_n)"
    rows = ctx.ds.con.execute(
        f"SELECT event_type, {count} FROM {source} WHERE event_type IS NOT NULL GROUP BY 1 "
        f"ORDER BY 2 DESC, event_type LIMIT {_SPELLINGS_READ}"
    ).fetchall()
    return choose_event_types(rows, ctx.config)


def choose_event_types(rows: list[tuple[str, int]], config: Config) -> list[str]:
    """`discover_event_types` from (event type as written, rows) ordered by rows (most first), then by the
    value: the same choice whether the counts come from DuckDB or were summed over Spark partitions."""
    cfg = config.features.engagement
    if cfg.event_types is not None:
        return list(cfg.event_types)
    spellings: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for value, n in rows[:_SPELLINGS_READ]:  # most frequent spelling first
        name = ident(value)
        spellings.setdefault(name, []).append(value)
        totals[name] = totals.get(name, 0) + int(n)
    chosen = sorted(totals, key=lambda k: (-totals[k], spellings[k][0]))[: int(cfg.max_event_types)]
    return [v for name in chosen for v in spellings[name]]


def type_groups(event_types: list[str]) -> list[tuple[str, list[str]]]:
    """(name in feature names, spellings) per event type, in the order of `event_types`: values whose names
    fold to one (`ident`: 'page_view', 'Page View'; 'événement', 'evenement') are one type, counted
    together and described by their first spelling."""
    groups: dict[str, list[str]] = {}
    for t in dict.fromkeys(event_types):
        groups.setdefault(ident(t), []).append(t)
    return list(groups.items())


def merged_types_notice(event_types: list[str]) -> list[str]:
    """A notice per event type written several ways, saying its spellings are counted as one."""
    return [f"event types {', '.join(repr(t) for t in spelled)} are counted as one type (features "
            f"events_{name}_*)" for name, spelled in type_groups(event_types) if len(spelled) > 1]


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
    ctx.notices.extend(merged_types_notice(ctx.event_types))
    f: list[Feature] = []
    for w in cfg.windows:
        f.append(Feature(f"events_{w}d", FAMILY, f"product events in the last {w} days", w,
                         reason=f"0: no product events in the last {w} days || "
                                f"only {{value:.0f product event|product events}} in the last {w} days"))
        f.append(Feature(f"active_days_{w}d", FAMILY, f"days with any product activity in the last {w} days", w,
                         reason=f"0: not active on any of the last {w} days || "
                                f"active on only {{value:.0f}} of the last {w} days"))
        if has_dur:
            f.append(Feature(f"duration_hours_{w}d", FAMILY, f"hours of use in the last {w} days", w,
                             reason=f"0: no use in the last {w} days || "
                                    f"only {{value:.1f hour|hours}} of use in the last {w} days"))
        for name, (t, *_) in type_groups(ctx.event_types):
            f.append(Feature(f"events_{name}_{w}d", FAMILY, f"'{t}' events in the last {w} days", w,
                             reason=f"0: no '{t}' events in the last {w} days || "
                                    f"{{value:.0f '{t}' event|'{t}' events}} in the last {w} days"))
    f += [
        Feature("days_since_last_event", FAMILY, "days since the last product activity",
                reason="0: active in the last day || no activity in {value:.0f day|days}"
                       " (usually active every {event_gap_typical_days:.0f day|days})",
                reason_missing="no product activity on record"),
        Feature("event_gap_typical_days", FAMILY, "typical days between active days (last 90 days)", 90,
                reason="0: active every day || 1: active every day || active only every {value:.0f} days"),
        Feature("events_trend_30d", FAMILY,
                "change in activity, last 30 days vs the 30 before (-1 = stopped, 0 = steady)", 60,
                reason="activity {value:+.0%} vs the month before"),
        Feature("events_30d_vs_90d", FAMILY,
                "last 30 days' activity relative to the 90-day average (1 = steady, below 1 = fading)", 90,
                reason="0: no activity in the last 30 days, after an active quarter || "
                       "activity at {value:.0%} of its usual level",
                reason_missing="no activity in the last 90 days"),
        Feature("weeks_active_share", FAMILY, f"share of the last {cfg.weeks_active} weeks with any activity",
                cfg.weeks_active * 7, reason="0: not active in any recent week || "
                                             "active in only {value:.0%} of recent weeks"),
    ]
    return f


def build(ctx: Ctx) -> None:
    """Group the events once per customer (DuckDB) and declare the per-date columns of the compiled pass
    over them (`engagement_kernel`)."""
    # Here, not at the top: numba takes ~1 s to import and load; the engine starts that in the background.
    from churn.features import engagement_kernel

    cfg = ctx.config.features.engagement
    has_dur = ctx.ds.has_column("events", "duration_s")
    groups = type_groups(list(ctx.event_types)) if ctx.ds.has_column("events", "event_type") else []
    names = [name for name, _ in groups]
    lookback = max([*cfg.windows, 90, cfg.weeks_active * 7])
    # Events from the first day any date's window reaches (`first`) up to the last as_of are listed per
    # customer; only the day of the last event before `first` is needed for days since the last event.
    first = (min(ctx.dates) - pd.Timedelta(days=lookback)).date()
    end = max(ctx.dates)
    lay = engagement_kernel.layout(len(groups), (end.date() - first).days, cfg.windows, lookback, cfg.weeks_active)
    first_day = f"DATE '{first.isoformat()}'"
    day = f"(CAST(timestamp AS DATE) - {first_day})"
    # Every spelling of a type gets its type's code.
    code = "CASE event_type " + " ".join(f"WHEN {_lit(t)} THEN {i}" for i, (_, spelled) in enumerate(groups)
                                         for t in spelled) + f" ELSE {len(groups)} END" if groups else "0"
    # Whole milliseconds, as exact as the DECIMAL sums they replace; a duration beyond what the code holds
    # (`max_duration_ms`, decades) is not a session and is held at that.
    ms = (f"least(coalesce(CAST(CAST(duration_s AS DECIMAL(18, 3)) * 1000 AS BIGINT), 0), {lay.max_duration_ms})"
          if has_dur else "0")
    packed = f"(CAST({ms} AS BIGINT) << {lay.type_bits + lay.day_bits}) | (CAST({day} AS BIGINT) << {lay.type_bits}) | {code}"
    # The CASE as well as the FILTER: DuckDB computes an aggregate's argument for every row, and rows before
    # `first` would shift a negative day.
    lists = ctx.ds.con.execute(
        f"SELECT customer_id, {CUSTOMER_HASH} AS h, coalesce(list(CASE WHEN timestamp >= {ts_lit(first)} THEN {packed} END) "
        f"FILTER (WHERE timestamp >= {ts_lit(first)}), []) AS ev, coalesce(CAST(CAST(max(timestamp) "
        f"FILTER (WHERE timestamp < {ts_lit(first)}) AS DATE) - {first_day} AS INTEGER), "
        f"{engagement_kernel.NO_DAY}) AS before FROM events WHERE timestamp < {ts_lit(end)} GROUP BY customer_id"
    ).to_arrow_table()
    ev = lists.column("ev").combine_chunks()
    offsets, codes = ev.offsets.to_numpy(), ev.values.to_numpy()
    before = lists.column("before").to_numpy()

    def columns(when: pd.Timestamp, rows: np.ndarray) -> dict[str, np.ndarray]:
        """One date's columns from the pass, for these list rows."""
        return engagement_kernel.compute(offsets, codes, before, (when.date() - first).days, lay,
                                         names, has_dur, rows)

    for w in cfg.windows:
        ctx.zero_fill |= {f"events_{w}d", f"active_days_{w}d"}
        if has_dur:
            ctx.zero_fill.add(f"duration_hours_{w}d")
        ctx.zero_fill |= {f"events_{name}_{w}d" for name in names}
    ctx.zero_fill |= {"events_trend_30d", "weeks_active_share"}
    per_date_columns(ctx, ctx.spine_rows(lists.column("customer_id"), lists.column("h").to_numpy()), columns)
