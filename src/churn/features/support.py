"""Complaints and support: how often a customer needed help, how it went, and what is still open."""

from __future__ import annotations

from churn.features.context import Ctx, days_since, in_last, per_date, window
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
    """Create temp relation `f_support` (one pass over the tickets opened before each as_of); return its name."""
    windows = ctx.config.features.support.windows
    big = max(windows)
    complaint = "coalesce(t.is_complaint, FALSE)" if _has(ctx, "is_complaint") else "FALSE"

    def select(as_of: str) -> str:
        cols = []
        for w in windows:
            cols.append(f"count(*) FILTER (WHERE {in_last(w)}) AS tickets_{w}d")
            if _has(ctx, "is_complaint"):
                cols.append(f"count(*) FILTER (WHERE {in_last(w)} AND {complaint}) AS complaints_{w}d")
        if _has(ctx, "is_complaint"):
            cols += [f"CAST(count(*) FILTER (WHERE {in_last(90)} AND {complaint}) >= 2 AS INTEGER) AS repeat_complainer",
                     f"{days_since(f'max(t.opened_at) FILTER (WHERE {complaint})', as_of)} AS days_since_last_complaint"]
        cols.append(f"{days_since('max(t.opened_at)', as_of)} AS days_since_last_ticket")
        # A resolution (and the rating given with it) is only known once the ticket closed before as_of;
        # a ticket closed on/after as_of is still open at as_of.
        resolved = f"t.closed_at < {as_of}"
        if _has(ctx, "closed_at"):
            # Summed in whole microseconds: integer sums do not depend on row order, float sums do.
            res_us = "(epoch_us(t.closed_at) - epoch_us(t.opened_at))"
            recent = f"{in_last(big)} AND {resolved}"
            is_open = f"(t.closed_at IS NULL OR t.closed_at >= {as_of})"
            cols += [(f"CAST(sum({res_us}) FILTER (WHERE {recent}) AS DOUBLE) / 86400e6 / "
                      f"nullif(count(*) FILTER (WHERE {recent}), 0) AS resolution_days_mean_{big}d"),
                     f"CAST(max({res_us}) FILTER (WHERE {recent}) AS DOUBLE) / 86400e6 AS resolution_days_max_{big}d",
                     f"count(*) FILTER (WHERE {is_open}) AS open_tickets",
                     f"max({days_since('t.opened_at', as_of)}) FILTER (WHERE {is_open}) AS oldest_open_ticket_days"]
            if _has(ctx, "is_complaint"):
                cols.append(f"count(*) FILTER (WHERE {is_open} AND {complaint}) AS open_complaints")
        if _has(ctx, "satisfaction"):
            known = resolved if _has(ctx, "closed_at") else "TRUE"
            rated = "t.closed_at" if _has(ctx, "closed_at") else "t.opened_at"
            cols += [f"avg(t.satisfaction) FILTER (WHERE {in_last(big)} AND {known}) AS satisfaction_mean_{big}d",
                     # The last rating known at as_of; ratings known at the same instant are ordered by
                     # value, never by the file's row order.
                     (f"arg_max(t.satisfaction, ({rated}, t.satisfaction)) FILTER (WHERE {known} AND "
                      "t.satisfaction IS NOT NULL) AS satisfaction_last")]
        # All history, not a window: open tickets and the last contact can be old. Tickets are few
        # enough that one pass per date costs less than bucketing them (see `cumulative`).
        return (f"SELECT t.customer_id, {as_of} AS as_of, {', '.join(cols)} "
                f"FROM {window('tickets', 'opened_at', None, as_of)} t GROUP BY t.customer_id")

    per_date(ctx, "f_support", select)
    ctx.zero_fill |= {f"tickets_{w}d" for w in windows} | {f"complaints_{w}d" for w in windows}
    ctx.zero_fill |= {"repeat_complainer", "open_tickets", "open_complaints"}
    return ["f_support"]
