"""The engagement features of one as_of date, computed in one compiled pass over each customer's events.

DuckDB groups the events once per build into one list per customer (see `engagement.build`); each event is
one 64-bit code: its event-type index in the low `type_bits`, its day (days after the build's first
window day) in the next `day_bits`, its duration in whole milliseconds above. This pass reads those lists
for one as_of at a time, one customer after another, so every counter of a customer is touched while it
is in cache whatever order the file had. As SQL, the same features were 35 filtered aggregates over every
event of each date's window: ~4.5 s a date on 1M customers and 10M events, against one grouping for all
dates (~3-4 s) and ~0.5 s a date here. On Spark the same two steps would be collect_list and mapInArrow
over this function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from churn.compiled import kernel_input

NO_DAY = np.iinfo(np.int32).min  # `before`: the customer has no event before the first window day


@dataclass(frozen=True)
class Layout:
    """How an event is packed into 64 bits, and what a pass counts."""

    type_bits: int
    day_bits: int
    n_types: int  # per-type counts for codes 0..n_types-1; code n_types = any other or no type
    windows: tuple[int, ...]
    lookback: int  # days an event stays in some window (>= 90 and every window)
    weeks: int  # weeks of `weeks_active_share`

    @property
    def max_duration_ms(self) -> int:
        """The largest duration (ms) the code holds: 2^50 - 1 with the defaults, never below 2^40 (35 years)
        for up to 127 event types over 170 years."""
        return (1 << (63 - self.type_bits - self.day_bits)) - 1


def layout(n_types: int, span_days: int, windows: list[int], lookback: int, weeks: int) -> Layout:
    """The packing for `n_types` event types over `span_days` days."""
    return Layout(type_bits=n_types.bit_length(), day_bits=max(1, span_days.bit_length()), n_types=n_types,
                  windows=tuple(int(w) for w in windows), lookback=int(lookback), weeks=int(weeks))


def compute(offsets: np.ndarray, codes: np.ndarray, before: np.ndarray, as_of_day: int, lay: Layout,
            type_names: list[str], with_duration: bool, rows: np.ndarray) -> dict[str, np.ndarray]:
    """{feature: values} for the as_of whose day index is `as_of_day` (same origin as the codes), one value
    per entry of `rows` (list rows; -1 = a customer without a list): counts as integers, the rest float64
    with NaN for unknown. `type_names[i]` names the columns of type code i. A customer with no event
    before as_of gets what the features say of no activity (zero counts, unknown recency)."""
    n = len(rows)
    nw = len(lay.windows)
    # Feature-major, so each column is one contiguous array that Arrow takes without a copy.
    counts = np.zeros((nw, n), np.int64)
    dur_ms = np.zeros((nw, n), np.int64)
    active = np.zeros((nw + 1, n), np.int64)  # last row: active days in the last 90 (for the typical gap)
    by_type = np.zeros((nw, max(lay.n_types, 1), n), np.int64)
    trend = np.zeros((4, n), np.int64)  # events in the last 30, the 30 before, the last 90; weeks active
    last = np.full(n, np.nan)  # days from the start of the last active day to as_of
    # One type per argument (churn.compiled), so one compiled version serves Arrow's and computed arrays.
    offsets, codes, before, rows = (kernel_input(a, np.int64) for a in (offsets, codes, before, rows))
    _pass(offsets, codes, before, rows, np.int64(as_of_day), kernel_input(lay.windows, np.int64), lay.type_bits,
          lay.day_bits, lay.n_types, lay.lookback, lay.weeks, counts, dur_ms, active, by_type, trend, last)
    cols: dict[str, np.ndarray] = {}
    for k, w in enumerate(lay.windows):
        cols[f"events_{w}d"] = counts[k]
        cols[f"active_days_{w}d"] = active[k]
        if with_duration:
            cols[f"duration_hours_{w}d"] = dur_ms[k] / 3_600_000.0
        for t, name in enumerate(type_names):
            cols[f"events_{name}_{w}d"] = by_type[k, t]
    e30, prev30, e90, weeks = (trend[i].astype(np.float64) for i in range(4))
    active90 = active[nw].astype(np.float64)
    cols["days_since_last_event"] = last
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["event_gap_typical_days"] = np.where(active90 > 0, 90.0 / active90, np.nan)
        cols["events_30d_vs_90d"] = np.where(e90 > 0, e30 * 3 / e90, np.nan)
    cols["events_trend_30d"] = (e30 + 1) / (prev30 + 1) - 1
    cols["weeks_active_share"] = weeks / lay.weeks
    return cols


def warm_up() -> None:
    """Load the compiled pass (from numba's cache, or compile it once): ~0.6 s, run in the background while
    DuckDB groups the events."""
    compute(np.zeros(2, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), 1, layout(1, 1, [7], 90, 1),
            ["x"], True, np.array([0, -1]))


_BLOCKS = 64  # customer blocks shared out between threads (each with its own day / week marks)


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass(offsets, codes, before, rows, as_of_day, windows, type_bits, day_bits, n_types, lookback, weeks,
          counts, dur_ms, active, by_type, trend, last):  # pragma: no cover - compiled; tested through compute
    """Accumulate the events before as_of of each customer of `rows` into its output row."""
    type_mask = (np.int64(1) << type_bits) - 1
    day_mask = (np.int64(1) << day_bits) - 1
    nw = windows.shape[0]
    n = rows.shape[0]
    for block in numba.prange(_BLOCKS):
        # Which customer last marked a day / week: distinct days and weeks without clearing per customer.
        day_seen = np.full(max(lookback, 90), -1, np.int64)
        week_seen = np.full(max(weeks, 1), -1, np.int64)
        for i in range(n * block // _BLOCKS, n * (block + 1) // _BLOCKS):
            r = rows[i]
            if r < 0:
                continue  # no event at all: the zeros and NaN the arrays start with
            first = np.int64(-1)  # d of the latest event before as_of (0 = the last day before it)
            for k in range(offsets[r], offsets[r + 1]):
                code = codes[k]
                d = as_of_day - 1 - ((code >> type_bits) & day_mask)
                if d < 0:
                    continue  # on or after as_of: not yet happened
                if first < 0 or d < first:
                    first = d
                if d >= lookback:
                    continue
                t = code & type_mask
                ms = code >> (type_bits + day_bits)
                new_day = day_seen[d] != i
                day_seen[d] = i
                for w in range(nw):
                    if d < windows[w]:
                        counts[w, i] += 1
                        dur_ms[w, i] += ms
                        if t < n_types:
                            by_type[w, t, i] += 1
                        if new_day:
                            active[w, i] += 1
                if d < 90:
                    trend[2, i] += 1
                    if new_day:
                        active[nw, i] += 1
                    if d < 30:
                        trend[0, i] += 1
                    elif d < 60:
                        trend[1, i] += 1
                if d < weeks * 7:
                    wk = d // 7
                    if week_seen[wk] != i:
                        week_seen[wk] = i
                        trend[3, i] += 1
            if first >= 0:
                last[i] = first + 1  # days from the start of that day to as_of
            elif before[r] != NO_DAY:
                last[i] = as_of_day - before[r]
