"""Every customer accounted for: each row of a scoring run carries a `status`, scored or why not.

| status             | who                                                                          |
|--------------------|------------------------------------------------------------------------------|
| `scored`           | a current customer active in the population window: scored and planned      |
| `lapsed`           | non-contractual: a current customer with no activity in the window           |
| `no_history`       | non-contractual: signed up before as_of, but no activity the label counts     |
| `cancelled`        | cancelled before as_of                                                       |
| `not_yet_customer` | signed up on or after as_of                                                  |
| `unknown`          | an id of the customer list that the data does not know                       |
| `no_score`         | a row handed to the plan without a probability or a status (library use)     |

A run over the data writes the current customers (`scored` and `lapsed`, see `churn.labels`) and the known
customers with no activity the label counts (`no_history`: every id with any activity appears); a run over a
customer list (`--customers`) writes exactly the listed ids, so every status can appear. Rows that are not
scored have no probability, tier, reasons or retention incentive. Lapsed customers with consent, and not
blocked by another contact rule, form the win-back list (`win_back`).

The plan summary (`churn.scoring.summary.PlanSummary`) carries the counts in `status_counts` ({status:
customers}, in the order of STATUSES, statuses with no customer left out) and the win-back figures in
`win_back`; `counts_from_summary` reads them from a summary or from its JSON form (summary.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from churn.scoring.summary import PlanSummary, WinBack

SCORED = "scored"
LAPSED = "lapsed"
NO_HISTORY = "no_history"
CANCELLED = "cancelled"
NOT_YET_CUSTOMER = "not_yet_customer"
UNKNOWN = "unknown"
NO_SCORE = "no_score"
STATUSES = (SCORED, LAPSED, NO_HISTORY, CANCELLED, NOT_YET_CUSTOMER, UNKNOWN, NO_SCORE)

# Plain words for the CLI, the report and the no-contact reasons.
STATUS_TEXT = {
    SCORED: "a churn probability, a risk tier and reasons",
    LAPSED: "lapsed: no recent activity",
    NO_HISTORY: "no activity the label counts (orders, events) before the scoring date",
    CANCELLED: "cancelled before the scoring date",
    NOT_YET_CUSTOMER: "not yet a customer at the scoring date",
    UNKNOWN: "not in the data",
    NO_SCORE: "no score",
}
REASON_WIN_BACK = "lapsed: on the win-back list"


def status_counts(status: pd.Series | np.ndarray) -> dict[str, int]:
    """{status: rows} in the order of STATUSES (absent statuses left out; an unexpected one last)."""
    vc = pd.Series(np.asarray(status, dtype=object)).value_counts()
    order = [s for s in STATUSES if s in vc.index] + sorted(str(s) for s in vc.index if s not in STATUSES)
    return {s: int(vc[s]) for s in order}


def counts_from_summary(summary: PlanSummary | Mapping[str, Any] | None) -> dict[str, int]:
    """The status counts of a plan summary, or of its JSON form (`status_counts`); empty when it has none."""
    if isinstance(summary, PlanSummary):
        counts: Any = summary.status_counts
    else:  # summary.json read back: the one key PlanSummary.to_dict writes
        counts = (summary or {}).get("status_counts")
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, Mapping) else {}


def statuses_of(frame: pd.DataFrame, probability: np.ndarray) -> np.ndarray:
    """Each row's status: the frame's `status` column, else scored where there is a probability."""
    if "status" in frame.columns:
        st = frame["status"].astype(object).to_numpy(copy=True)
        st[pd.isna(st)] = NO_SCORE
        return st
    return np.where(np.isnan(probability), NO_SCORE, SCORED).astype(object)


def unscored_reasons(status: np.ndarray, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(no-contact reason, win-back flag) per row, given each row's status and contact-rule block.

    Scored rows keep their block (None: may be contacted). Lapsed rows with no block are on the win-back
    list; blocked lapsed rows keep the rule that blocks them (consent, exclusion, cool-down). Every other
    unscored row says why it has no score."""
    reason = block.copy()
    lapsed = status == LAPSED
    win_back = lapsed & pd.isna(block)
    reason[win_back] = REASON_WIN_BACK
    for s in set(status[(status != SCORED) & ~lapsed].tolist()):
        why = STATUS_TEXT[NO_SCORE] if s == NO_SCORE else f"not scored: {STATUS_TEXT.get(s, s)}"
        reason[status == s] = why
    return reason, win_back


def win_back_summary(status: np.ndarray, win_back: np.ndarray, reason: np.ndarray) -> WinBack:
    """Lapsed customers, how many are on the win-back list, and why the others are not."""
    lapsed = status == LAPSED
    blocked = pd.Series(reason[lapsed & ~win_back], dtype=object).value_counts()
    return WinBack(lapsed=int(lapsed.sum()), listed=int(win_back.sum()),
                   not_listed={str(k): int(v) for k, v in sorted(blocked.items())})
