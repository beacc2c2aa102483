"""The support features of one as_of date, computed in one compiled pass over each customer's tickets.

DuckDB lists each customer's tickets once per build (see `support.build`): opened and closed times in
microseconds since 1970 (`NEVER` for a ticket not closed), the complaint flag, and the satisfaction in
exact integers of 1/1,000,000 (`NO_RATING` without one), so every sum is exact and the result does not
depend on the list's order. This pass reads them for one as_of at a time; as SQL it was ~20 filtered
aggregates over every ticket ever opened, for each date. On Spark: collect_list and mapInArrow.
"""

from __future__ import annotations

import numba
import numpy as np

from churn.compiled import kernel_input
from churn.timeline import days_between_us

DAY_US = 86_400_000_000
NEVER = np.iinfo(np.int64).max  # closed_at of a ticket not closed (open at every as_of)
NO_RATING = np.iinfo(np.int64).min  # satisfaction missing
RATING_DIGITS = 6  # ratings are held in units of 1/10**RATING_DIGITS
RATING_SCALE = 10**RATING_DIGITS
_NONE = np.iinfo(np.int64).min  # "no such time" in the accumulators

# Rows of the per-customer accumulator, one name each.
(_COMPLAINTS_90, _LAST, _LAST_COMPLAINT, _RES_SUM, _RES_N, _RES_MAX, _OPEN, _OLDEST_OPEN, _OPEN_COMPLAINTS,
 _SAT_SUM, _SAT_N, _SAT_LAST_AT, _SAT_LAST) = range(13)


def compute(offsets: np.ndarray, opened: np.ndarray, closed: np.ndarray, complaint: np.ndarray,
            rating: np.ndarray, as_of_us: int, windows: list[int], rows: np.ndarray, *, has_closed: bool,
            has_complaint: bool, has_rating: bool) -> dict[str, np.ndarray]:
    """{feature: values} at the as_of `as_of_us` (microseconds since 1970), one per entry of `rows` (list
    rows; -1 = a customer without tickets): counts as integers, the rest float64 with NaN for unknown.
    Features of an absent column (`has_*`) are left out; without `closed_at` every rating counts as known."""
    n = len(rows)
    wins = kernel_input(windows, np.int64)
    big = int(wins.max())
    tickets = np.zeros((len(wins), n), np.int64)
    complaints = np.zeros((len(wins), n), np.int64)
    acc = np.zeros((13, n), np.int64)
    for r in (_LAST, _LAST_COMPLAINT, _RES_MAX, _SAT_LAST_AT):
        acc[r] = _NONE
    acc[_OLDEST_OPEN] = NEVER
    # One type per argument (churn.compiled), so the one compiled version serves every call.
    offsets, opened, closed, complaint, rating, rows = (
        kernel_input(a, np.int64) for a in (offsets, opened, closed, complaint, rating, rows))
    _pass(offsets, opened, closed, complaint, rating, rows, np.int64(as_of_us), wins, np.int64(big),
          bool(has_closed), acc, tickets, complaints)

    def since(t: np.ndarray, none: int = _NONE) -> np.ndarray:
        """Fractional days from each time to as_of (NaN for none), as SQL's days_since computes them."""
        return np.where(t != none, days_between_us(as_of_us, t), np.nan)

    cols: dict[str, np.ndarray] = {}
    for k, w in enumerate(windows):
        cols[f"tickets_{w}d"] = tickets[k]
        if has_complaint:
            cols[f"complaints_{w}d"] = complaints[k]
    if has_complaint:
        cols["repeat_complainer"] = (acc[_COMPLAINTS_90] >= 2).astype(np.int64)
        cols["days_since_last_complaint"] = since(acc[_LAST_COMPLAINT])
    cols["days_since_last_ticket"] = since(acc[_LAST])
    res_n = acc[_RES_N]
    if has_closed:
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"resolution_days_mean_{big}d"] = np.where(
                res_n > 0, acc[_RES_SUM].astype(np.float64) / 86400e6 / res_n, np.nan)
        cols[f"resolution_days_max_{big}d"] = np.where(res_n > 0, acc[_RES_MAX].astype(np.float64) / 86400e6, np.nan)
        cols["open_tickets"] = acc[_OPEN]
        cols["oldest_open_ticket_days"] = since(acc[_OLDEST_OPEN], NEVER)
        if has_complaint:
            cols["open_complaints"] = acc[_OPEN_COMPLAINTS]
    if has_rating:
        sat_n = acc[_SAT_N]
        with np.errstate(divide="ignore", invalid="ignore"):
            cols[f"satisfaction_mean_{big}d"] = np.where(
                sat_n > 0, acc[_SAT_SUM] / RATING_SCALE / sat_n, np.nan)
        cols["satisfaction_last"] = np.where(acc[_SAT_LAST_AT] != _NONE, acc[_SAT_LAST] / RATING_SCALE, np.nan)
    return cols


def warm_up() -> None:
    """Load the compiled pass (from numba's cache, or compile it once), in the background."""
    t = np.array([1, 2], np.int64)
    compute(np.array([0, 2], np.int64), t, np.array([3, NEVER], np.int64), np.array([1, 0], np.int64),
            np.array([4 * RATING_SCALE, NO_RATING], np.int64), 5, [30], np.array([0, -1]),
            has_closed=True, has_complaint=True, has_rating=True)


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass(offsets, opened, closed, complaint, rating, rows, as_of, windows, big, has_closed, acc, tickets,
          complaints):  # pragma: no cover - compiled; tested through compute
    """Accumulate the tickets opened before as_of of each customer of `rows` into its output row."""
    nw = windows.shape[0]
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        lo, hi = (offsets[r], offsets[r + 1]) if r >= 0 else (np.int64(0), np.int64(0))  # -1: no tickets
        for k in range(lo, hi):
            o = opened[k]
            if o >= as_of:
                continue  # not yet opened
            d = (as_of - o - 1) // DAY_US  # whole days before as_of (0 = the last day before it)
            c = closed[k]
            is_complaint = complaint[k] != 0
            for w in range(nw):
                if d < windows[w]:
                    tickets[w, i] += 1
                    if is_complaint:
                        complaints[w, i] += 1
            acc[_LAST, i] = max(acc[_LAST, i], o)
            if is_complaint:
                if d < 90:
                    acc[_COMPLAINTS_90, i] += 1
                acc[_LAST_COMPLAINT, i] = max(acc[_LAST_COMPLAINT, i], o)
            # A resolution (and the rating given with it) is known only once the ticket closed before
            # as_of; one closed on/after as_of is still open at as_of.
            resolved = c < as_of
            if resolved and d < big:
                acc[_RES_SUM, i] += c - o
                acc[_RES_N, i] += 1
                acc[_RES_MAX, i] = max(acc[_RES_MAX, i], c - o)
            if not resolved:
                acc[_OPEN, i] += 1
                if is_complaint:
                    acc[_OPEN_COMPLAINTS, i] += 1
                acc[_OLDEST_OPEN, i] = min(acc[_OLDEST_OPEN, i], o)
            s = rating[k]
            known = resolved or not has_closed
            if s != NO_RATING and known:
                if d < big:
                    acc[_SAT_SUM, i] += s
                    acc[_SAT_N, i] += 1
                # The last rating known at as_of; ratings known at the same instant are ordered by value.
                at = c if has_closed else o
                if at > acc[_SAT_LAST_AT, i] or (at == acc[_SAT_LAST_AT, i] and s > acc[_SAT_LAST, i]):
                    acc[_SAT_LAST_AT, i] = at
                    acc[_SAT_LAST, i] = s
