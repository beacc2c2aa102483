"""Purchase frequency: how often and how much a customer buys, and whether the next order is overdue.

Also buy-till-you-die features from a BG/NBD model: at training fitted per as_of date on purchases before it
only; when scoring raw data with a model (`churn score --data`, `churn.score`) predicted with the
parameters of the newest training date's fit, stored in the model (no step across customers then, so a
customer's score does not depend on who else is in the data or bucket). A feature build without a model
(`churn features`, `churn.build_features`) fits per date, as training does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    if cfg.btyd and ctx.btyd_deferred and ctx.btyd_params is None:
        ctx.hidden |= {"_btyd_x": "_x", "_btyd_t_x": "_t_x", "_btyd_T": "_T"}  # filled in after the fit
    ctx.zero_fill |= {f"orders_{w}d" for w in cfg.windows} | {f"spend_{w}d" for w in cfg.windows}
    ctx.zero_fill |= {"spend_trend_90d", "orders_lifetime"}


def _day_number(when: pd.Timestamp) -> int:
    """Days from 1970-01-01 to the (midnight) date `when`."""
    return (pd.Timestamp(when).normalize() - pd.Timestamp("1970-01-01")).days


# One date's BG/NBD fit: sorted history keys ((x * k + t_x) * k + T), their two predictions, and k.
_Fit = tuple[np.ndarray, np.ndarray, np.ndarray, int]


# Histories of one date's buyers: distinct (x, t_x, T), sorted, and how many buyers share each.
Histories = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
MIN_BUYERS = 30  # fewer buyers in a snapshot: no BG/NBD fit at that date


def _btyd_fits(ctx: Ctx, in_spine: np.ndarray,
               histories: Callable[[pd.Timestamp, np.ndarray], tuple[np.ndarray, ...]]) -> dict[pd.Timestamp, _Fit]:
    """BG/NBD per as_of, predicted once per distinct whole-day history (x, t_x, T), which equal histories
    share: with the parameters frozen at training (`ctx.btyd_params`, at scoring), else fitted on the buyers
    in that snapshot (the spine; purchases before as_of only) and recorded in `ctx.btyd_fitted`. A bucket
    of a larger build (`ctx.btyd_deferred`) only counts its histories into `ctx.btyd_counts`."""
    from churn.features.btyd import BetaGeo

    if ctx.btyd_params == {}:  # training could fit no date: the model learnt these columns as missing
        ctx.notices.append("BG/NBD: no fit was stored with the model (none at training); features left missing")
        return {}
    frozen = BetaGeo.from_params(ctx.btyd_params) if ctx.btyd_params else None
    fits: dict[pd.Timestamp, _Fit] = {}
    for when in ctx.dates:
        rows = in_spine[ctx.date_slice(when)]
        cols = dict(zip(("_x", "_t_x", "_T"), histories(when, rows[rows >= 0]), strict=True))
        counted = history_counts(cols["_x"], cols["_t_x"], cols["_T"])
        if ctx.btyd_deferred and frozen is None:
            ctx.btyd_counts[when] = counted
            continue
        if frozen is not None and not len(counted[0]):
            if not ctx.btyd_deferred:  # a bucket without buyers is normal; the whole data without any is not
                ctx.notices.append(f"BG/NBD skipped at {when.date()}: no buyers")
            continue
        model = frozen or fit_histories(ctx, when, counted)
        if model is None:
            continue
        if frozen is None:
            ctx.btyd_fitted[when] = model.params_._asdict()
        fits[when] = predictions(model, counted[:3], ctx.horizon_days)
    return fits


def history_counts(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> Histories:
    """The buyers' (x >= 0) distinct histories (x, t_x, T), sorted, and how many buyers share each."""
    bought = np.flatnonzero(x >= 0)
    if not len(bought):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, empty
    cols = {"_x": x, "_t_x": t_x, "_T": big_t}
    k = int(big_t[bought].max()) + 1
    keys, n = np.unique(_keys(cols, bought, k), return_counts=True)
    return keys // (k * k), keys // k % k, keys % k, n.astype(np.int64)


def add_histories(parts: list[Histories]) -> Histories:
    """Histories counted in several buckets, summed: the counts of all their buyers together, sorted."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return history_counts(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    x, t_x, big_t, n = (np.concatenate(c) for c in zip(*parts, strict=True))
    k = int(big_t.max()) + 1
    keys, at = np.unique(_keys({"_x": x, "_t_x": t_x, "_T": big_t}, slice(None), k), return_inverse=True)
    return keys // (k * k), keys // k % k, keys % k, np.bincount(at, weights=n).astype(np.int64)


def fit_histories(ctx: Ctx, when: pd.Timestamp, counted: Histories) -> Any:
    """The BG/NBD fit (`BetaGeo`) at `when` on the counted histories, weighted by how many buyers share each;
    None, with a notice, when there are fewer than 30 buyers or the fit fails."""
    from churn.features.btyd import BetaGeo

    x, t_x, big_t, n = counted
    if n.sum() < MIN_BUYERS:
        ctx.notices.append(f"BG/NBD skipped at {when.date()}: fewer than {MIN_BUYERS} buyers")
        return None
    # Sorted by (x, t_x, T): the fit sums the histories in a fixed order, so it is the same fit whatever
    # order the rows came in, and whichever buckets counted them.
    try:
        return BetaGeo().fit(x.astype(float), t_x.astype(float), big_t.astype(float), weights=n.astype(float))
    except (ValueError, FloatingPointError) as exc:
        ctx.notices.append(f"BG/NBD not fitted at {when.date()}: {exc}")
        return None


def predictions(model: Any, histories: tuple[np.ndarray, ...], horizon_days: int) -> _Fit:
    """A date's predictions per distinct history (x, t_x, T) (what `_predict` looks each row up in)."""
    x, t_x, big_t = (np.asarray(h, np.int64) for h in histories)
    k = int(big_t.max()) + 1 if len(big_t) else 1
    keys = _keys({"_x": x, "_t_x": t_x, "_T": big_t}, slice(None), k)
    xf, tf, bf = x.astype(float), t_x.astype(float), big_t.astype(float)
    return keys, model.expected_purchases(horizon_days, xf, tf, bf), model.prob_no_purchase(horizon_days, xf, tf, bf), k


def predict_rows(model: Any, x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray,
                 horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """(expected orders, P(no order)) per row from its history (x -1: no order before as_of: NaN), predicted
    once per distinct history as a build predicts them: how a bucketed build fills in the BG/NBD features
    after the fit."""
    x, t_x, big_t = (np.asarray(a, np.int64) for a in (x, t_x, big_t))
    counted = history_counts(x, t_x, big_t)
    fit = predictions(model, counted[:3], horizon_days) if len(counted[0]) else None
    return _predict(fit, {"_x": x, "_t_x": t_x, "_T": big_t})


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
    if not len(keys):
        return np.full(n, np.nan), np.full(n, np.nan)
    ok = (cols["_x"] >= 0) & (cols["_T"] < k)
    key = np.where(ok, _keys(cols, slice(None), k), -1)
    pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
    ok &= keys[pos] == key
    return np.where(ok, exp[pos], np.nan), np.where(ok, p0[pos], np.nan)
