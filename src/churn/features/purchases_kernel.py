"""The purchase features of one as_of date, computed in one compiled pass over each customer's orders.

DuckDB lists each customer's orders once per build (see `purchases.build`): the order's day (days since
1970-01-01), its amount and discount in exact integers of 1/10,000 (so sums do not depend on row order,
as with the DECIMAL sums they replace). `sort_by_day` orders each list once; the orders before any as_of
are then a prefix of it, which this pass walks for one as_of at a time: windowed counts and spend, and the
distinct order days (gaps, BG/NBD inputs). As SQL this was ~15 filtered aggregates over a year of orders
per date plus a list cut per date; on Spark the same two steps would be collect_list and mapInArrow.
"""

from __future__ import annotations

import numba
import numpy as np

from churn.compiled import kernel_input

DIGITS = 4  # amounts and discounts are held in units of 1/10**DIGITS (DECIMAL(18, 4))
SCALE = 10**DIGITS
NO_AMOUNT = -1  # an order without an amount: counted, not summed (amounts are never negative)


def sort_by_day(offsets: np.ndarray, day: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """`day` and each of `values` reordered by day within each list (offsets unchanged)."""
    order = np.empty(len(day), np.int64)
    _sort_segments(kernel_input(offsets, np.int64), kernel_input(day, np.int64), order)
    return (day[order], *(v[order] for v in values))


def compute(offsets: np.ndarray, day: np.ndarray, amount: np.ndarray, discount: np.ndarray, as_of_day: int,
            windows: list[int], with_discount: bool, rows: np.ndarray) -> dict[str, np.ndarray]:
    """{feature: values} at the as_of whose day number is `as_of_day`, one per entry of `rows` (list rows
    of lists sorted by `sort_by_day`; -1 = a customer without orders): counts as integers, the rest
    float64 with NaN for unknown. Also the BG/NBD inputs `_x` (repeat order days), `_t_x` (first to last
    order day), `_T` (first order day to as_of), -1 for a customer without an order before as_of."""
    wins = np.asarray(sorted(windows), np.int64)
    big = int(wins[-1])
    counts, spend, acc = _run(offsets, day, amount, discount, as_of_day, wins, rows)
    cols: dict[str, np.ndarray] = {}
    for k, w in enumerate(wins):
        cols[f"orders_{w}d"] = counts[k]
        cols[f"spend_{w}d"] = spend[k] / SCALE
    valued, disc, s90, s_prev = acc[0], acc[1] / SCALE, acc[2] / SCALE, acc[3] / SCALE
    x, t_x, big_t, since, gap2 = (acc[i] for i in range(4, 9))
    bought = x >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        big_spend = np.where(valued > 0, spend[-1] / SCALE, np.nan)  # NULL when no amount was known
        cols[f"avg_order_value_{big}d"] = np.where(counts[-1] > 0, big_spend / counts[-1], np.nan)
        cols["spend_trend_90d"] = np.where(s_prev > 0, s90 / s_prev - 1, np.where(s90 > 0, 1.0, 0.0))
        if with_discount:
            whole = big_spend + disc
            cols[f"discount_share_{big}d"] = np.where((counts[-1] > 0) & (whole != 0), disc / whole, np.nan)
        days = np.where(bought, since.astype(np.float64), np.nan)
        mean_gap = np.where(x > 0, t_x / x.astype(np.float64), np.nan)
        var_gap = np.maximum(gap2 / x.astype(np.float64) - mean_gap * mean_gap, 0)
        cols["days_since_last_order"] = days
        cols["orders_lifetime"] = np.where(bought, x + 1, 0)
        cols["order_gap_mean_days"] = mean_gap
        cols["order_gap_std_days"] = np.where(x >= 2, np.sqrt(var_gap), np.nan)
        cols["order_overdue_ratio"] = np.where(mean_gap != 0, days / mean_gap, np.nan)
    cols["_x"], cols["_t_x"], cols["_T"] = x, t_x, big_t
    return cols


def histories(offsets: np.ndarray, day: np.ndarray, as_of_day: int, rows: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Only the BG/NBD inputs `_x`, `_t_x`, `_T` of `compute` (what a fit needs, without the rest)."""
    zeros = np.zeros(len(day), np.int64)
    acc = _run(offsets, day, zeros, zeros, as_of_day, np.array([1], np.int64), rows)[2]
    return acc[4], acc[5], acc[6]


def _run(offsets: np.ndarray, day: np.ndarray, amount: np.ndarray, discount: np.ndarray, as_of_day: int,
         windows: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pass's sums: (orders per window, spend per window, the other sums), one per entry of `rows`."""
    n = len(rows)
    counts = np.zeros((len(windows), n), np.int64)
    spend = np.zeros((len(windows), n), np.int64)
    # Rows: orders with an amount in the largest window, discount there, spend in the last 90 days and
    # in the 90 before; then the order-day summary: x, t_x, T, days since the last order day, sum of
    # squared gaps between order days.
    acc = np.zeros((9, n), np.int64)
    _pass(*(kernel_input(a, np.int64) for a in (offsets, day, amount, discount, rows)), np.int64(as_of_day),
          kernel_input(windows, np.int64), acc, counts, spend)
    return counts, spend, acc


def warm_up() -> None:
    """Load the compiled loops (from numba's cache, or compile them once), in the background."""
    offsets = np.array([0, 2], np.int64)
    day, amount, disc = sort_by_day(offsets, np.array([3, 1], np.int64), np.array([1, 2], np.int64),
                                    np.zeros(2, np.int64))
    compute(offsets, day, amount, disc, 5, [30], True, np.array([0, -1]))


@numba.njit(parallel=True, cache=True, nogil=True)
def _sort_segments(offsets, day, order):  # pragma: no cover - compiled; tested through sort_by_day
    """order[offsets[i]:offsets[i+1]] = that list's positions sorted by day (ties in list order)."""
    for i in numba.prange(offsets.shape[0] - 1):
        lo, hi = offsets[i], offsets[i + 1]
        idx = np.argsort(day[lo:hi], kind="mergesort")
        for k in range(hi - lo):
            order[lo + k] = lo + idx[k]


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass(offsets, day, amount, discount, rows, as_of_day, windows, acc, counts, spend):  # pragma: no cover
    """Accumulate the orders before as_of (a prefix of the day-sorted list) of each customer of `rows`."""
    nw = windows.shape[0]
    big = windows[nw - 1]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        first, prev = np.int64(-1), np.int64(-1)
        n_days, gap2 = np.int64(0), np.int64(0)
        lo, hi = (offsets[r], offsets[r + 1]) if r >= 0 else (np.int64(0), np.int64(0))  # -1: no orders
        for k in range(lo, hi):
            dd = day[k]
            if dd >= as_of_day:
                break  # on or after as_of: not yet happened (and so is every later one)
            if n_days == 0:
                first = dd
                n_days = 1
            elif dd != prev:
                gap2 += (dd - prev) * (dd - prev)
                n_days += 1
            prev = dd
            d = as_of_day - 1 - dd  # whole days before as_of (0 = the last day before it)
            a = amount[k]
            for w in range(nw):
                if d < windows[w]:
                    counts[w, i] += 1
                    if a != NO_AMOUNT:
                        spend[w, i] += a
            if d < big:
                acc[1, i] += discount[k]
                if a != NO_AMOUNT:
                    acc[0, i] += 1
            if a != NO_AMOUNT:
                if d < 90:
                    acc[2, i] += a
                elif d < 180:
                    acc[3, i] += a
        if n_days == 0:
            for r in range(4, 9):
                acc[r, i] = -1
        else:
            acc[4, i] = n_days - 1
            acc[5, i] = prev - first
            acc[6, i] = as_of_day - first
            acc[7, i] = as_of_day - prev
            acc[8, i] = gap2
