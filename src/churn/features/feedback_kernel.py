"""The feedback features of one as_of date, computed in one compiled pass over each customer's answers.

DuckDB lists each customer's survey answers once per build (see `feedback.build`): the time answered in
microseconds since 1970 and the score in exact integers of 1/1,000,000 (`NO_SCORE` without one), so sums
are exact and do not depend on the list's order. On Spark: collect_list and mapInArrow.
"""

from __future__ import annotations

import numba
import numpy as np

from churn.compiled import kernel_input
from churn.timeline import days_between_us

DAY_US = 86_400_000_000
DIGITS = 6  # scores are held in units of 1/10**DIGITS
SCALE = 10**DIGITS
NO_SCORE = np.iinfo(np.int64).min  # an answer without a score: counted as an answer, not scored
_NONE = np.iinfo(np.int64).min


def compute(offsets: np.ndarray, answered: np.ndarray, score: np.ndarray, as_of_us: int, detractor_max: float,
            rows: np.ndarray) -> dict[str, np.ndarray]:
    """{feature: values} at the as_of `as_of_us` (microseconds since 1970), one per entry of `rows` (list
    rows; -1 = a customer who never answered): counts as integers, the rest float64 with NaN for unknown."""
    n = len(rows)
    # Rows: last answer time, last score's time, last score, scored answers, score sum, answers in 365 days.
    acc = np.zeros((6, n), np.int64)
    acc[0] = acc[1] = acc[2] = _NONE
    offsets, answered, score, rows = (kernel_input(a, np.int64) for a in (offsets, answered, score, rows))
    _pass(offsets, answered, score, rows, np.int64(as_of_us), acc)
    scored, total = acc[3], acc[4] / SCALE
    last = np.where(acc[1] != _NONE, acc[2] / SCALE, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "survey_last_score": last,
            "survey_mean_score": np.where(scored > 0, total / scored, np.nan),
            "survey_score_trend": np.where(scored >= 2, last - (total - last) / (scored - 1), np.nan),
            "survey_detractor": np.where(np.isnan(last), np.nan, last <= detractor_max),
            "days_since_last_survey": np.where(acc[0] != _NONE, days_between_us(as_of_us, acc[0]), np.nan),
            "surveys_365d": acc[5],
        }


def warm_up() -> None:
    """Load the compiled pass (from numba's cache, or compile it once), in the background."""
    compute(np.array([0, 2], np.int64), np.array([1, 2], np.int64), np.array([SCALE, NO_SCORE], np.int64), 5,
            6.0, np.array([0, -1]))


@numba.njit(parallel=True, cache=True, nogil=True)
def _pass(offsets, answered, score, rows, as_of, acc):  # pragma: no cover - compiled; tested through compute
    """Accumulate the answers before as_of of each customer of `rows` into its output row."""
    for i in numba.prange(rows.shape[0]):
        r = rows[i]
        lo, hi = (offsets[r], offsets[r + 1]) if r >= 0 else (np.int64(0), np.int64(0))  # -1: no answers
        for k in range(lo, hi):
            t = answered[k]
            if t >= as_of:
                continue  # not yet answered
            acc[0, i] = max(acc[0, i], t)
            if (as_of - t - 1) // DAY_US < 365:
                acc[5, i] += 1
            s = score[k]
            if s == NO_SCORE:
                continue
            acc[3, i] += 1
            acc[4, i] += s
            # Two answers at the same instant: the higher score counts as the last (never the list's order).
            if t > acc[1, i] or (t == acc[1, i] and s > acc[2, i]):
                acc[1, i] = t
                acc[2, i] = s
