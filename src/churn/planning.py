"""Retention plans side by side: the same scored customers planned under other budgets, and a preview of
the segments marketing would receive."""

from __future__ import annotations

from typing import Any

import pandas as pd

from churn.config import Config


def budget_table(plans: dict[str, Any]) -> pd.DataFrame:
    """Side by side, one column per named retention plan: customers contacted, spend, expected saved and
    net value, and the contacts per incentive. Read from the plans' rows, not their summaries.

    Example:
        >>> budget_table({"small": plan_small, "large": plan_large})  # doctest: +SKIP
    """
    cols = {}
    for name, plan in plans.items():
        c = plan.customers
        contacted = c["contact"].astype(bool)
        col = {"contacted": int(contacted.sum()), "spend": float(c["incentive_cost"].sum()),
               "expected_saved_value": float(c["expected_saved_value"].sum()),
               "expected_net_value": float(c["expected_net_value"].sum()),
               "control_group": int(c["holdout"].astype(bool).sum())}
        for inc, n in c.loc[contacted, "incentive"].value_counts().sort_index().items():
            col[f"incentive: {inc}"] = int(n)
        cols[name] = col
    return pd.DataFrame(cols).fillna(0).round(2)


def with_budget(config: Config, budget: float) -> Config:
    """A copy of `config` with another incentive budget (validated like the file).

    Example:
        >>> with_budget(Config(), 5000).incentives.budget
        5000.0
    """
    data = config.model_dump()
    data["incentives"]["budget"] = float(budget)
    return Config.model_validate(data)


def segment_preview(plan: Any, rows: int = 3) -> pd.DataFrame:
    """The segments (tier x incentive lists) of a plan: size and the first `rows` customers of each, as
    the segment files list them.

    Example:
        >>> segment_preview(plan).head()  # doctest: +SKIP
    """
    from churn.scoring.segments import build_segments

    parts = []
    for seg in build_segments(plan.customers):
        head = seg.rows.head(rows).copy()
        head.insert(0, "segment_size", len(seg.rows))
        head.insert(0, "file", seg.file_name)
        parts.append(head)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["file", "segment_size"])
