"""Complaints and support: how often a customer needed help, how it went, and what is still open."""

from __future__ import annotations

from churn.features.context import Ctx, cumulative, days_since, in_last, per_date, window
from churn.features.registry import Feature

FAMILY = "support"


def _has(ctx: Ctx, col: str) -> bool:
    return ctx.ds.has_column("tickets", col)


def declare(ctx: Ctx) -> list[Feature]:
    """The support features for this config and data."""
    windows = ctx.config.features.support.windows
    big = max(windows)
    f: list[Feature] = []
    for w in windows:
        f.append(Feature(f"tickets_{w}d", FAMILY, f"support tickets opened in the last {w} days", w,
                         reason=f"{{value:.0f}} support tickets in the last {w} days"))
        if _has(ctx, "is_complaint"):
            f.append(Feature(f"complaints_{w}d", FAMILY, f"complaints in the last {w} days", w,
                             reason=f"{{value:.0f}} complaints in the last {w} days"))
    if _has(ctx, "closed_at"):
        f += [
            Feature("open_tickets", FAMILY, "support tickets still unresolved", None,
                    reason="{value:.0f} unresolved support tickets"),
            Feature("oldest_open_ticket_days", FAMILY, "days the oldest unresolved ticket has been open", None,
                    reason="a ticket unresolved for {value:.0f} days"),
            Feature(f"resolution_days_mean_{big}d", FAMILY, f"average days to resolve a ticket (last {big} days)",
                    big, reason="tickets took {value:.1f} days to resolve on average"),
            Feature(f"resolution_days_max_{big}d", FAMILY, f"longest time to resolve a ticket (last {big} days)",
                    big, reason="a ticket took {value:.0f} days to resolve"),
        ]
        if _has(ctx, "is_complaint"):
            f.append(Feature("open_complaints", FAMILY, "complaints still unresolved", None,
                             reason="{value:.0f} unresolved complaints"))
    if _has(ctx, "satisfaction"):
        f += [
            Feature("satisfaction_last", FAMILY, "satisfaction (1-5) given on the last resolved ticket", None,
                    reason="rated their last support contact {value:.0f} out of 5"),
            Feature(f"satisfaction_mean_{big}d", FAMILY, f"average support satisfaction (1-5, last {big} days)",
                    big, reason="average support rating {value:.1f} out of 5"),
        ]
    f.append(Feature("days_since_last_ticket", FAMILY, "days since the last support ticket",
                     reason="contacted support {value:.0f} days ago"))
    if _has(ctx, "is_complaint"):
        f += [
            Feature("days_since_last_complaint", FAMILY, "days since the last complaint",
                    reason="complained {value:.0f} days ago"),
            Feature("repeat_complainer", FAMILY, "1 if two or more complaints in the last 90 days", 90,
                    reason="complained repeatedly in the last 90 days"),
        ]
    return f


def build(ctx: Ctx) -> list[str]:
    """Create the support tables; return their names."""
    windows = ctx.config.features.support.windows
    big = max(windows)
    complaint = "coalesce(t.is_complaint, FALSE)" if _has(ctx, "is_complaint") else "FALSE"
    sel = []
    for w in windows:
        sel.append(f"count(*) FILTER (WHERE {in_last(w)}) AS tickets_{w}d")
        ctx.zero_fill.add(f"tickets_{w}d")
        if _has(ctx, "is_complaint"):
            sel.append(f"count(*) FILTER (WHERE {in_last(w)} AND {complaint}) AS complaints_{w}d")
            ctx.zero_fill.add(f"complaints_{w}d")
    if _has(ctx, "is_complaint"):
        sel.append(f"CAST(count(*) FILTER (WHERE {in_last(90)} AND {complaint}) >= 2 AS INTEGER) "
                   "AS repeat_complainer")
        ctx.zero_fill.add("repeat_complainer")

    def windowed(as_of: str) -> str:
        # A resolution (and the rating given with it) is only known once the ticket closed before as_of.
        resolved = f"t.closed_at < {as_of}"
        cols = list(sel)
        if _has(ctx, "closed_at"):
            # Summed in whole microseconds: integer sums do not depend on row order, float sums do.
            res_us = "(epoch_us(t.closed_at) - epoch_us(t.opened_at))"
            cols += [(f"CAST(sum({res_us}) FILTER (WHERE {resolved}) AS DOUBLE) / 86400e6 / "
                      f"nullif(count(*) FILTER (WHERE {resolved}), 0) AS resolution_days_mean_{big}d"),
                     f"CAST(max({res_us}) FILTER (WHERE {resolved}) AS DOUBLE) / 86400e6 AS resolution_days_max_{big}d"]
        if _has(ctx, "satisfaction"):
            known = resolved if _has(ctx, "closed_at") else "TRUE"
            cols.append(f"avg(t.satisfaction) FILTER (WHERE {known}) AS satisfaction_mean_{big}d")
        return (f"SELECT t.customer_id, {as_of} AS as_of, {', '.join(cols)} "
                f"FROM {window('tickets', 'opened_at', big, as_of)} t GROUP BY t.customer_id")

    per_date(ctx, "f_support_w", windowed)
    parts = ["f_support_w"]
    if _has(ctx, "closed_at"):
        # Open at as_of: opened before it and not closed before it (a later closing is not yet known).
        open_c = f", count(*) FILTER (WHERE {complaint}) AS open_complaints" if _has(ctx, "is_complaint") else ""
        per_date(ctx, "f_support_open", lambda as_of: (
            f"SELECT t.customer_id, {as_of} AS as_of, count(*) AS open_tickets, "
            f"max({days_since('t.opened_at', as_of)}) AS oldest_open_ticket_days{open_c} "
            f"FROM tickets t WHERE t.opened_at < {as_of} AND (t.closed_at IS NULL OR t.closed_at >= {as_of}) "
            "GROUP BY t.customer_id"))
        parts.append("f_support_open")
        ctx.zero_fill |= {"open_tickets", "open_complaints"}
    bucket = {"last_ticket": "max(t.opened_at)"}
    combine = {"days_since_last_ticket": days_since("max(b.last_ticket)")}
    if _has(ctx, "is_complaint"):
        bucket["last_complaint"] = f"max(t.opened_at) FILTER (WHERE {complaint})"
        combine["days_since_last_complaint"] = days_since("max(b.last_complaint)")
    if _has(ctx, "satisfaction"):
        rated = "t.closed_at" if _has(ctx, "closed_at") else "t.opened_at"
        # Bucket by when the rating became known, so a rating given at/after as_of stays unseen; ratings
        # known at the same instant are ordered by value, never by the file's row order.
        ctx.create("tk_rated", f"SELECT customer_id, {rated} AS rated_at, satisfaction FROM tickets t "
                   f"WHERE t.satisfaction IS NOT NULL AND {rated} IS NOT NULL", kind="VIEW")
        cumulative(ctx, "f_support_sat", "tk_rated", "rated_at",
                   {"last_rated": "max(t.rated_at)", "sat": "arg_max(t.satisfaction, (t.rated_at, t.satisfaction))"},
                   {"satisfaction_last": "arg_max(b.sat, (b.last_rated, b.sat))"})
        parts.append("f_support_sat")
    cumulative(ctx, "f_support_c", "tickets", "opened_at", bucket, combine)
    return ["f_support_c", *parts]
