"""The price-history features of one as_of date, computed in one compiled pass over each customer's changes.

DuckDB lists each customer's fee changes once per build (see `profile.build`) and `order_changes` orders
each list by (time, fee, plan): the order that decides which of several changes at the same instant is in
force, never the file's row order. So the changes before any as_of are a prefix of the list, the one in
force is the prefix's last, and a change's previous fee is its neighbour's. Fees stay the exact doubles of the data (nothing is summed).
On Spark: collect_list ordered by the same keys, and mapInArrow.
"""

from __future__ import annotations

import numba
import numpy as np

from churn.compiled import kernel_input
from churn.timeline import days_between_us

DAY_US = 86_400_000_000


def order_changes(offsets: np.ndarray, changed: np.ndarray, fee: np.ndarray, plan_rank: np.ndarray) -> np.ndarray:
    """The positions that order each list by (time, fee, plan rank), lists kept in place.

    Here rather than DuckDB's ordered `list(... ORDER BY ...)`, whose result took ~14 s to fetch for 1M
    customers' changes (the sort itself is milliseconds: most lists hold one or two changes)."""
    order = np.empty(len(changed), np.int64)
    _order(kernel_input(offsets, np.int64), kernel_input(changed, np.int64), kernel_input(fee, np.float64),
           kernel_input(plan_rank, np.int64), order)
    return order


def compute(offsets: np.ndarray, changed: np.ndarray, fee: np.ndarray, has_plan: np.ndarray, as_of_us: int,
            rows: np.ndarray) -> dict[str, np.ndarray]:
    """{name: values} at the as_of `as_of_us` (microseconds since 1970), one per entry of `rows` (list rows;
    -1 = a customer without changes): `_changes` (how many before as_of), `fee_now`, `fee_change_90d`,
    `fee_increases_365d`, `days_since_fee_change` (NaN when unknown) and `_plan_at`, the list position of the
    latest change before as_of that names a plan (-1 for none)."""
    n = len(rows)
    count, plan_at, increases = np.zeros(n, np.int64), np.full(n, -1, np.int64), np.zeros(n, np.int64)
    fee_now, fee_before, last = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, np.int64)
    offsets, changed, rows = (kernel_input(a, np.int64) for a in (offsets, changed, rows))
    _pass(offsets, changed, kernel_input(fee, np.float64), kernel_input(has_plan, np.bool_), rows,
          np.int64(as_of_us), count, plan_at, increases, fee_now, fee_before, last)
    return {
        "_changes": count,
        "fee_now": fee_now,
        # No change 90 days ago (or none at all): the fee did not change as far as we know.
        "fee_change_90d": np.where(np.isnan(fee_before), 0.0, fee_now - fee_before),
        "fee_increases_365d": increases,
        "days_since_fee_change": np.where(count > 0, days_between_us(as_of_us, last), np.nan),
        "_plan_at": plan_at,
    }


def warm_up() -> None:
    """Load the compiled pass (from numba's cache, or compile it once), in the background."""
    offsets, changed, fee = np.array([0, 2], np.int64), np.array([2, 1], np.int64), np.array([9.0, 10.0])
    order = order_changes(offsets, changed, fee, np.array([1, 0], np.int64))
    compute(offsets, changed[order], fee[order], np.array([True, False]), 5, np.array([0, -1]))


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass(offsets, changed, fee, has_plan, rows, as_of, count, plan_at, increases, fee_now, fee_before,
          last):  # pragma: no cover - compiled; tested through compute
    """For each customer of `rows`, walk the changes before as_of (a prefix of the ordered list)."""
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        if r < 0:
            continue  # no changes on record
        lo, hi = offsets[r], offsets[r + 1]
        k = lo
        while k < hi and changed[k] < as_of:
            # Whole days before as_of, as everywhere (0 = the last day before it).
            age = (as_of - changed[k] - 1) // DAY_US
            if age >= 90:
                fee_before[i] = fee[k]
            if age < 365 and k > lo and fee[k] > fee[k - 1]:
                increases[i] += 1
            if has_plan[k]:
                plan_at[i] = k
            k += 1
        count[i] = k - lo
        if k > lo:
            fee_now[i] = fee[k - 1]
            last[i] = changed[k - 1]


@numba.njit(parallel=True, cache=True, nogil=True)
def _order(offsets, changed, fee, rank, order):  # pragma: no cover - compiled; tested through order_changes
    """order[lo:hi] = list lo:hi's positions sorted by (changed, fee, rank), ties kept in list order."""
    for i in numba.prange(offsets.shape[0] - 1):
        lo, hi = offsets[i], offsets[i + 1]
        if hi - lo <= 16:
            # Short lists (nearly all): a stable insertion sort, no allocation.
            for k in range(lo, hi):
                order[k] = k
                j = k
                while j > lo:
                    a, b = order[j - 1], order[j]
                    if changed[a] < changed[b] or (changed[a] == changed[b] and (
                            fee[a] < fee[b] or (fee[a] == fee[b] and rank[a] <= rank[b]))):
                        break
                    order[j - 1], order[j] = b, a
                    j -= 1
        else:
            # Longer lists: stable sorts from the last key to the first.
            idx = np.argsort(rank[lo:hi], kind="mergesort")
            idx = idx[np.argsort(fee[lo:hi][idx], kind="mergesort")]
            idx = idx[np.argsort(changed[lo:hi][idx], kind="mergesort")]
            for k in range(hi - lo):
                order[lo + k] = lo + idx[k]
