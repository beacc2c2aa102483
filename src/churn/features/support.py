"""Complaints and support: how often a customer needed help, how it went, and what is still open."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.features.context import Ctx, epoch_us, list_per_customer, per_date_columns, scaled_int
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
                         reason=f"0: no support tickets in the last {w} days || "
                                f"{{value:.0f support ticket|support tickets}} in the last {w} days"))
        if _has(ctx, "is_complaint"):
            f.append(Feature(f"complaints_{w}d", FAMILY, f"complaints in the last {w} days", w,
                             reason=f"0: no complaints in the last {w} days || "
                                    f"{{value:.0f complaint|complaints}} in the last {w} days"))
    if _has(ctx, "closed_at"):
        f += [
            Feature("open_tickets", FAMILY, "support tickets still unresolved", None,
                    reason="0: no unresolved support tickets || "
                           "{value:.0f unresolved support ticket|unresolved support tickets}"),
            Feature("oldest_open_ticket_days", FAMILY, "days the oldest unresolved ticket has been open", None,
                    reason="0: a ticket opened today is unresolved || "
                           "a ticket unresolved for {value:.0f day|days}"),
            Feature(f"resolution_days_mean_{big}d", FAMILY, f"average days to resolve a ticket (last {big} days)",
                    big, reason="0: tickets were resolved the same day || "
                                "tickets took {value:.1f} days to resolve on average"),
            Feature(f"resolution_days_max_{big}d", FAMILY, f"longest time to resolve a ticket (last {big} days)",
                    big, reason="0: a ticket was resolved the same day || "
                                "a ticket took {value:.0f day|days} to resolve"),
        ]
        if _has(ctx, "is_complaint"):
            f.append(Feature("open_complaints", FAMILY, "complaints still unresolved", None,
                             reason="0: no unresolved complaints || "
                                    "{value:.0f unresolved complaint|unresolved complaints}"))
    if _has(ctx, "satisfaction"):
        f += [
            Feature("satisfaction_last", FAMILY, "satisfaction (1-5) given on the last resolved ticket", None,
                    reason="rated their last support contact {value:.0f} out of 5"),
            Feature(f"satisfaction_mean_{big}d", FAMILY, f"average support satisfaction (1-5, last {big} days)",
                    big, reason="average support rating {value:.1f} out of 5"),
        ]
    f.append(Feature("days_since_last_ticket", FAMILY, "days since the last support ticket",
                     reason="0: contacted support today || contacted support {value:.0f day|days} ago"))
    if _has(ctx, "is_complaint"):
        f += [
            Feature("days_since_last_complaint", FAMILY, "days since the last complaint",
                    reason="0: complained today || complained {value:.0f day|days} ago"),
            Feature("repeat_complainer", FAMILY, "1 if two or more complaints in the last 90 days", 90,
                    reason="complained repeatedly in the last 90 days"),
        ]
    return f


def build(ctx: Ctx) -> None:
    """List each customer's tickets once (DuckDB) and declare the per-date columns of the compiled pass over
    them (`support_kernel`)."""
    # Here, not at the top: numba takes ~1 s to import and load; the engine starts that in the background.
    from churn.features import support_kernel as sk

    windows = ctx.config.features.support.windows
    has_closed, has_complaint, has_rating = (_has(ctx, c) for c in ("closed_at", "is_complaint", "satisfaction"))
    # All history, not a window: open tickets and the last contact can be old.
    rows, offsets, (opened, closed_us, complaint_flag, rated) = list_per_customer(ctx, "tickets", "opened_at", {
        "o": "epoch_us(opened_at)",
        "c": f"coalesce(epoch_us(closed_at), {sk.NEVER})" if has_closed else str(sk.NEVER),
        "k": "coalesce(is_complaint, FALSE)" if has_complaint else "0",
        "s": f"coalesce({scaled_int('satisfaction', sk.RATING_DIGITS)}, {sk.NO_RATING})" if has_rating
        else str(sk.NO_RATING),
    })

    def columns(when: pd.Timestamp, rows: np.ndarray) -> dict[str, np.ndarray]:
        """One date's columns from the pass, for these list rows."""
        return sk.compute(offsets, opened, closed_us, complaint_flag, rated, epoch_us(when), windows, rows,
                          has_closed=has_closed, has_complaint=has_complaint, has_rating=has_rating)

    per_date_columns(ctx, rows, columns)
    ctx.zero_fill |= {f"tickets_{w}d" for w in windows} | {f"complaints_{w}d" for w in windows}
    ctx.zero_fill |= {"repeat_complainer", "open_tickets", "open_complaints"}
