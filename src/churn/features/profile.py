"""Profile: tenure, plan and price (point in time when a fee history exists), and who the customer is."""

from __future__ import annotations

from churn.features.context import Ctx, days_since, in_last, per_date, window
from churn.features.registry import Feature
from churn.sources import _q

FAMILY = "profile"


def _categoricals(ctx: Ctx) -> list[str]:
    cols = set(ctx.ds.columns("customers"))
    return [c for c in ctx.config.features.profile.categoricals if c in cols]


def _has_fee_history(ctx: Ctx) -> bool:
    return ctx.ds.has("fee_changes") and "fee_changes" in ctx.ds.tables


def declare(ctx: Ctx) -> list[Feature]:
    """The profile features present in this data."""
    cols = set(ctx.ds.columns("customers"))
    f = [Feature("tenure_days", FAMILY, "days since the customer signed up", reason="customer for only {value:.0f} days")]
    for c in _categoricals(ctx):
        f.append(Feature(c, FAMILY, f"customer {c.replace('_', ' ')}", kind="categorical", reason=f"{c}: {{value}}"))
    if _has_fee_history(ctx) or "monthly_fee" in cols:
        f.append(Feature("monthly_fee", FAMILY, "monthly fee", reason="pays {value:,.2f} a month"))
    if _has_fee_history(ctx):
        f += [
            Feature("fee_change_90d", FAMILY, "change of the monthly fee over the last 90 days", 90,
                    reason="price changed by {value:+,.2f} in the last 90 days"),
            Feature("fee_increases_365d", FAMILY, "price increases in the last 365 days", 365,
                    reason="{value:.0f} price increases in the last year"),
            Feature("days_since_fee_change", FAMILY, "days since the last price change",
                    reason="price changed {value:.0f} days ago"),
        ]
    for c in ctx.config.features.profile.numerics:
        if c in cols:
            f.append(Feature(c, FAMILY, c.replace("_", " "), reason=f"{c.replace('_', ' ')}: {{value}}"))
    return f


def build(ctx: Ctx) -> list[str]:
    """Create temp table `f_profile` over the snapshot spine; return its name."""
    cols = set(ctx.ds.columns("customers"))
    cats = _categoricals(ctx)
    sel = [f"{days_since('c.signup_date', 's.as_of')} AS tenure_days"]
    for c in ctx.config.features.profile.numerics:
        if c in cols:
            sel.append(f"TRY_CAST(c.{_q(c)} AS DOUBLE) AS {_q(c)}")
    if not _has_fee_history(ctx):
        sel += [f"CAST(c.{_q(c)} AS VARCHAR) AS {_q(c)}" for c in cats]
        if "monthly_fee" in cols:
            # Without a fee history the current fee is the best we know; docs warn it may be later than as_of.
            sel.append("c.monthly_fee")
        per_date(ctx, "f_profile", lambda as_of: f"SELECT s.customer_id, s.as_of, {', '.join(sel)} "
                 "FROM spine s JOIN customers c USING (customer_id)")
        return ["f_profile"]
    has_plan = "plan" in ctx.ds.tables["fee_changes"].mapping
    # Fee (and plan) in force at as_of: the latest change strictly before it. Changes at the same instant
    # are ordered by fee then plan (one order everywhere), never by the file's row order.
    order = "changed_at, monthly_fee, plan" if has_plan else "changed_at, monthly_fee"
    # Each change knows the fee it replaced (the previous change's; earlier, so no look-ahead) and its
    # place in the customer's history (`_seq`): the latest change before as_of is then an arg_max over an
    # integer, not over a (time, fee, plan) tuple (which cost ~1 us a row).
    ctx.create(
        "fee_seq", "SELECT customer_id, changed_at, monthly_fee, " + ("plan, " if has_plan else "")
        + "lag(monthly_fee) OVER w AS prev_fee, row_number() OVER w AS _seq FROM fee_changes "
        f"WINDOW w AS (PARTITION BY customer_id ORDER BY {order})",
    )
    plan_now = ", arg_max(t.plan, t._seq) AS plan_now" if has_plan else ""
    # One pass over the changes before each as_of (few rows per customer); the fee 90 days earlier is the
    # latest change at least 90 whole days before as_of.
    per_date(ctx, "fee_pit", lambda as_of: (
        f"SELECT t.customer_id, {as_of} AS as_of, arg_max(t.monthly_fee, t._seq) AS fee_now{plan_now}, "
        "arg_max(t.monthly_fee, t._seq) FILTER (WHERE t._d >= 90) AS fee_90d_ago, "
        f"{days_since('max(t.changed_at)', as_of)} AS days_since_fee_change, "
        f"count(*) FILTER (WHERE {in_last(365)} AND t.monthly_fee > t.prev_fee) AS fee_increases_365d "
        f"FROM {window('fee_seq', 'changed_at', None, as_of)} t GROUP BY t.customer_id"))
    for c in cats:
        if c == "plan" and has_plan:
            sel.append("coalesce(p.plan_now, CAST(c.plan AS VARCHAR)) AS plan")
        else:
            sel.append(f"CAST(c.{_q(c)} AS VARCHAR) AS {_q(c)}")
    fee_fallback = "c.monthly_fee" if "monthly_fee" in cols else "NULL"
    sel += [
        f"coalesce(p.fee_now, {fee_fallback}) AS monthly_fee",
        "coalesce(p.fee_now - p.fee_90d_ago, 0) AS fee_change_90d",
        "coalesce(p.fee_increases_365d, 0) AS fee_increases_365d",
        "p.days_since_fee_change",
    ]
    per_date(ctx, "f_profile", lambda as_of: (
        f"SELECT s.customer_id, s.as_of, {', '.join(sel)} FROM spine s JOIN customers c USING (customer_id) "
        "LEFT JOIN fee_pit p ON p.customer_id = s.customer_id AND p.as_of = s.as_of"))
    return ["f_profile"]
