"""Profile: tenure, plan and price (point in time when a fee history exists), and who the customer is."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churn.features.context import CUSTOMER_HASH, Ctx, epoch_us, list_per_customer, per_date_columns
from churn.features.registry import Feature
from churn.sources import _q
from churn.timeline import days_between_us

FAMILY = "profile"


def _categoricals(ctx: Ctx) -> list[str]:
    cols = set(ctx.ds.columns("customers"))
    return [c for c in ctx.config.features.profile.categoricals if c in cols]


def _has_fee_history(ctx: Ctx) -> bool:
    return ctx.ds.has("fee_changes") and "fee_changes" in ctx.ds.tables


def declare(ctx: Ctx) -> list[Feature]:
    """The profile features present in this data."""
    cols = set(ctx.ds.columns("customers"))
    f = [Feature("tenure_days", FAMILY, "days since the customer signed up",
                 reason="0: became a customer today || customer for only {value:.0f day|days}")]
    for c in _categoricals(ctx):
        f.append(Feature(c, FAMILY, f"customer {c.replace('_', ' ')}", kind="categorical", reason=f"{c}: {{value}}"))
    if _has_fee_history(ctx) or "monthly_fee" in cols:
        f.append(Feature("monthly_fee", FAMILY, "monthly fee", reason="pays {value:,.2f} a month"))
    if _has_fee_history(ctx):
        f += [
            Feature("fee_change_90d", FAMILY, "change of the monthly fee over the last 90 days", 90,
                    reason="price changed by {value:+,.2f} in the last 90 days"),
            Feature("fee_increases_365d", FAMILY, "price increases in the last 365 days", 365,
                    reason="{value:.0f price increase|price increases} in the last year"),
            Feature("days_since_fee_change", FAMILY, "days since the last price change",
                    reason="0: price changed today || price changed {value:.0f day|days} ago"),
        ]
    for c in ctx.config.features.profile.numerics:
        if c in cols:
            f.append(Feature(c, FAMILY, c.replace("_", " "), reason=f"{c.replace('_', ' ')}: {{value}}"))
    return f


def build(ctx: Ctx) -> None:
    """Read the customers' profile once and, with a price history, list each customer's fee changes once
    (DuckDB); declare the per-date columns (the history's from `profile_kernel`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # Here, not at the top: numba takes ~1 s to import and load; the engine starts that in the background.
    from churn.features import profile_kernel as pk

    cols = set(ctx.ds.columns("customers"))
    cats = _categoricals(ctx)
    nums = [c for c in ctx.config.features.profile.numerics if c in cols]
    sel = ["customer_id", f"{CUSTOMER_HASH} AS _h", "epoch_us(signup_date) AS _signup",
           *(f"CAST({_q(c)} AS VARCHAR) AS {_q(c)}" for c in cats),
           *(f"TRY_CAST({_q(c)} AS DOUBLE) AS {_q(c)}" for c in nums),
           "monthly_fee AS _fee" if "monthly_fee" in cols else "CAST(NULL AS DOUBLE) AS _fee"]
    # Who the customer is does not depend on as_of: read once, taken for each date's spine rows.
    cust = ctx.ds.con.execute(f"SELECT {', '.join(sel)} FROM customers").to_arrow_table()
    rows = ctx.spine_rows(cust.column("customer_id"), cust.column("_h").to_numpy())
    signup = cust.column("_signup")
    signup_known = pc.is_valid(signup).to_numpy(zero_copy_only=False)
    signup_us = pc.fill_null(signup, 0).to_numpy()
    history = _fee_history(ctx) if _has_fee_history(ctx) else None
    if history is not None:
        rows = np.stack([rows, history[0]], axis=1)  # each spine row's customer, and its list of changes

    def columns(when: pd.Timestamp, at: np.ndarray) -> dict[str, Any]:
        """One date's profile columns, for these (customer, change list) rows."""
        c_rows = at[:, 0] if history is not None else at
        take = pa.array(c_rows, mask=c_rows < 0)  # Arrow's take gives NULL for a null index
        as_of = epoch_us(when)
        known = (c_rows >= 0) & signup_known[c_rows]
        out: dict[str, Any] = {"tenure_days": np.where(
            known, days_between_us(as_of, signup_us[c_rows]), np.nan)}
        out |= {c: cust.column(c).take(take) for c in [*cats, *nums]}
        fee = cust.column("_fee").take(take)
        if history is None:
            if "monthly_fee" in cols:
                # Without a fee history the current fee is the best we know; docs warn it may be later than as_of.
                out["monthly_fee"] = fee
            return out
        _, offsets, changed, fees, plans, named = history
        got = pk.compute(offsets, changed, fees, named, as_of, at[:, 1])
        out["monthly_fee"] = np.where(got["_changes"] > 0, got["fee_now"], fee.to_numpy(zero_copy_only=False))
        out |= {k: got[k] for k in ("fee_change_90d", "fee_increases_365d", "days_since_fee_change")}
        if plans is not None and "plan" in out:
            at_plan = got["_plan_at"]
            out["plan"] = pc.coalesce(plans.take(pa.array(at_plan, mask=at_plan < 0)), out["plan"])
        return out

    per_date_columns(ctx, rows, columns)


def _fee_history(ctx: Ctx) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Any, np.ndarray]:
    """Each customer's fee changes listed once for every date, ordered as `profile_kernel` needs: (each spine
    row's list row, offsets, times in microseconds, fees, plans (Arrow text, None without a plan column),
    whether each change names a plan)."""
    import pyarrow.compute as pc

    from churn.features.profile_kernel import order_changes

    has_plan = "plan" in ctx.ds.tables["fee_changes"].mapping
    fields = {"t": "epoch_us(changed_at)", "fee": "monthly_fee"} | ({"plan": "plan"} if has_plan else {})
    rows, offsets, got = list_per_customer(ctx, "fee_changes", "changed_at", fields, typed=("fee", "plan"))
    changed, fees = got[0], got[1].to_numpy(zero_copy_only=False)
    plans = got[2] if has_plan else None
    if plans is not None:
        # The plans' rank in SQL's order (text by code point, missing last): changes at the same instant are
        # ordered by fee then plan (one order everywhere), never by the file's row order.
        encoded = pc.dictionary_encode(plans)
        names = encoded.dictionary.to_pylist()
        rank_of = np.empty(len(names) + 1, np.int64)
        rank_of[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
        rank_of[-1] = len(names)
        rank = rank_of[pc.fill_null(encoded.indices, -1).to_numpy()]
    else:
        rank = np.zeros(len(changed), np.int64)
    order = order_changes(offsets, changed, fees, rank)
    changed, fees = changed[order], fees[order]
    plans = plans.take(order) if plans is not None else None
    named = (pc.is_valid(plans).to_numpy(zero_copy_only=False) if plans is not None
             else np.zeros(len(fees), np.bool_))
    return rows, offsets, changed, fees, plans, named
