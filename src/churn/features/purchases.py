"""Purchase frequency: how often and how much a customer buys, and whether the next order is overdue.

Also buy-till-you-die features from a BG/NBD model: at training fitted per as_of date on purchases before it
only; when scoring raw data with a model (`churn score --data`, `churn.score`) predicted with the
parameters of the newest training date's fit, stored in the model (no step across customers then, so a
customer's score does not depend on who else is in the data or bucket). A feature build without a model
(`churn features`, `churn.build_features`) fits per date, as training does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn.features.context import Ctx, list_per_customer, per_date_columns, scaled_int
from churn.features.registry import Feature

FAMILY = "purchases"


def declare(ctx: Ctx) -> list[Feature]:
    """The purchase features for this config and data."""
    cfg = ctx.config.features.purchases
    big = max(cfg.windows)
    has_disc = ctx.ds.has_column("orders", "discount")
    f: list[Feature] = []
    for w in cfg.windows:
        f.append(Feature(f"orders_{w}d", FAMILY, f"orders in the last {w} days", w,
                         reason=f"0: no orders in the last {w} days || "
                                f"only {{value:.0f order|orders}} in the last {w} days"))
        f.append(Feature(f"spend_{w}d", FAMILY, f"amount spent in the last {w} days", w,
                         reason=f"0: spent nothing in the last {w} days || "
                                f"spent {{value:,.0f}} in the last {w} days"))
    f += [
        Feature(f"avg_order_value_{big}d", FAMILY, f"average order value (last {big} days)", big,
                reason="average order of {value:,.0f}"),
        Feature("spend_trend_90d", FAMILY, "change in spend, last 90 days vs the 90 before (-1 = stopped)", 180,
                reason="spending {value:+.0%} vs the quarter before"),
        Feature("days_since_last_order", FAMILY, "days since the last order",
                reason="0: ordered in the last day || no order in {value:.0f day|days}"
                       " (usually one every {order_gap_mean_days:.0f day|days})",
                reason_missing="has never ordered"),
        Feature("orders_lifetime", FAMILY, "days with an order, over the whole history",
                reason="0: no orders yet || {value:.0f order|orders} in total"),
        Feature("order_gap_mean_days", FAMILY, "average days between orders",
                reason="0: orders almost every day || orders only every {value:.0f day|days}"),
        Feature("order_gap_std_days", FAMILY, "variability of the days between orders",
                reason="0: ordering gaps vary by less than a day || "
                       "irregular ordering (gaps vary by {value:.0f day|days})"),
        Feature("order_overdue_ratio", FAMILY, "days since the last order divided by the usual gap (above 1 = overdue)",
                reason="next order overdue: {value:.1f}x the usual gap"),
    ]
    if has_disc:
        f.append(Feature(f"discount_share_{big}d", FAMILY, f"share of order value given as discount (last {big} days)",
                         big, reason="{value:.0%} of spend was discounted"))
    if cfg.btyd:
        h = ctx.horizon_days
        f += [
            Feature("btyd_expected_orders", FAMILY, f"orders expected in the next {h} days (BG/NBD model)", None,
                    reason=f"0: expected to place no orders in the next {h} days || "
                           f"expected to place only {{value:.1f}} orders in the next {h} days"),
            Feature("btyd_p_no_order", FAMILY, f"probability of no order in the next {h} days (BG/NBD model)", None,
                    reason=f"{{value:.0%}} likely to place no order in the next {h} days"),
        ]
    return f


def build(ctx: Ctx) -> None:
    """List each customer's orders once (DuckDB), fit BG/NBD per as_of on the buyers in that snapshot (or
    take the parameters given in `ctx.btyd_params`), and declare the per-date columns of the compiled pass
    (`purchases_kernel`)."""
    # Here, not at the top: numba takes ~1 s to import and load; the engine starts that in the background.
    from churn.features import purchases_kernel as pk

    cfg = ctx.config.features.purchases
    has_disc = ctx.ds.has_column("orders", "discount")
    # as_of is a midnight, so "in the last w days" is the same for an order's time and for its day.
    rows, offsets, fields = list_per_customer(ctx, "orders", "ordered_at", {
        "d": "CAST(ordered_at AS DATE) - DATE '1970-01-01'",
        "a": f"coalesce({scaled_int('amount', pk.DIGITS)}, {pk.NO_AMOUNT})",
        "c": scaled_int("coalesce(discount, 0)", pk.DIGITS) if has_disc else "0",
    })

    def prepare() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[pd.Timestamp, _Fit]]:
        """The lists sorted by day, and the BG/NBD fits (on the background thread: no DuckDB here)."""
        day, amt, dis = pk.sort_by_day(offsets, *fields)
        fits = _btyd_fits(ctx, rows, lambda when, at: pk.histories(offsets, day, _day_number(when), at)) \
            if cfg.btyd else {}
        return day, amt, dis, fits

    prepared = ctx.later(prepare)
    ctx.btyd_done = prepared

    def columns(when: pd.Timestamp, at: np.ndarray) -> dict[str, np.ndarray]:
        """One date's columns from the pass for these list rows, and each buyer's BG/NBD predictions from
        that date's fit."""
        day, amt, dis, fits = prepared.result()
        cols = pk.compute(offsets, day, amt, dis, _day_number(when), cfg.windows, has_disc, at)
        if cfg.btyd:
            cols["btyd_expected_orders"], cols["btyd_p_no_order"] = _predict(fits.get(when), cols)
        return cols

    per_date_columns(ctx, rows, columns)
    ctx.zero_fill |= {f"orders_{w}d" for w in cfg.windows} | {f"spend_{w}d" for w in cfg.windows}
    ctx.zero_fill |= {"spend_trend_90d", "orders_lifetime"}


def _day_number(when: pd.Timestamp) -> int:
    """Days from 1970-01-01 to the (midnight) date `when`."""
    return (pd.Timestamp(when).normalize() - pd.Timestamp("1970-01-01")).days


# One date's BG/NBD fit: sorted history keys ((x * k + t_x) * k + T), their two predictions, and k.
_Fit = tuple[np.ndarray, np.ndarray, np.ndarray, int]


def _btyd_fits(ctx: Ctx, in_spine: np.ndarray,
               histories: Callable[[pd.Timestamp, np.ndarray], tuple[np.ndarray, ...]]) -> dict[pd.Timestamp, _Fit]:
    """BG/NBD per as_of, predicted once per distinct whole-day history (x, t_x, T), which equal histories
    share: with the parameters frozen at training (`ctx.btyd_params`, at scoring), else fitted on the buyers
    in that snapshot (the spine; purchases before as_of only) and recorded in `ctx.btyd_fitted`."""
    from churn.features.btyd import BetaGeo

    if ctx.btyd_params == {}:  # training could fit no date: the model learnt these columns as missing
        ctx.notices.append("BG/NBD: no fit was stored with the model (none at training); features left missing")
        return {}
    frozen = BetaGeo.from_params(ctx.btyd_params) if ctx.btyd_params else None
    fits: dict[pd.Timestamp, _Fit] = {}
    for when in ctx.dates:
        rows = in_spine[ctx.date_slice(when)]
        cols = dict(zip(("_x", "_t_x", "_T"), histories(when, rows[rows >= 0]), strict=True))
        rows = np.flatnonzero(cols["_x"] >= 0)  # the buyers, as positions in cols
        if not len(rows) or (frozen is None and len(rows) < 30):
            why = "no buyers" if frozen else "fewer than 30 buyers"
            ctx.notices.append(f"BG/NBD skipped at {when.date()}: {why}")
            continue
        k = int(cols["_T"][rows].max()) + 1
        keys, n = np.unique(_keys(cols, rows, k), return_counts=True)
        # Sorted by (x, t_x, T): the fit sums the histories in a fixed order, so it is the same fit
        # whatever order the rows came in.
        x, t_x, big_t = (keys // (k * k)).astype(float), (keys // k % k).astype(float), (keys % k).astype(float)
        model = frozen
        if model is None:
            try:
                model = BetaGeo().fit(x, t_x, big_t, weights=n.astype(float))
            except (ValueError, FloatingPointError) as exc:
                ctx.notices.append(f"BG/NBD not fitted at {when.date()}: {exc}")
                continue
            ctx.btyd_fitted[when] = model.params_._asdict()
        fits[when] = (keys, model.expected_purchases(ctx.horizon_days, x, t_x, big_t),
                      model.prob_no_purchase(ctx.horizon_days, x, t_x, big_t), k)
    return fits


def _keys(cols: dict[str, np.ndarray], rows: np.ndarray | slice, k: int) -> np.ndarray:
    """Each row's history (x, t_x, T) as one integer (all three are below k)."""
    return (cols["_x"][rows] * k + cols["_t_x"][rows]) * k + cols["_T"][rows]


def _predict(fit: _Fit | None, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(expected orders, P(no order)) for every row whose history the date's fit predicted; NaN otherwise
    (no fit, no order before as_of, or not in the snapshot)."""
    n = len(cols["_x"])
    if fit is None:
        return np.full(n, np.nan), np.full(n, np.nan)
    keys, exp, p0, k = fit
    ok = (cols["_x"] >= 0) & (cols["_T"] < k)
    key = np.where(ok, _keys(cols, slice(None), k), -1)
    pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    ok &= keys[pos] == key
    return np.where(ok, exp[pos], np.nan), np.where(ok, p0[pos], np.nan)
