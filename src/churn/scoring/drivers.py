"""Why customers are at risk, by driver: which features most often appear among a group's top reasons.

Reason texts carry each customer's own numbers ("no product events in the last 30 days", "only 2 product
events ..."), so counting texts splits one driver into many rows. `risk_drivers` counts the feature behind
each reason instead (`reason_N_feature`, written by `churn.scoring.reasons.reason_codes`), with its share of
the group and a typical value: the reason said for the median customer who has that driver (the feature's
own column, when the plan carries it), else the most common text. Plans without driver columns (older runs)
are counted by text, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.features.registry import Feature
from churn.scoring.reasons import N_REASONS, _fields, driver_columns, reason_columns, render_reason


@dataclass(frozen=True)
class Driver:
    """One driver of risk in a group of customers."""

    name: str  # the feature (or, for plans without driver columns, the reason text)
    label: str  # what the report shows: the feature's description
    family: str | None  # the feature family (engagement, support ...), when known
    customers: int  # customers of the group with this driver among their top reasons
    share: float  # of the group
    typical: str | None  # the reason as said for a typical customer with this driver


def _label(name: str, feature: Feature | None) -> str:
    text = feature.description if feature else name.replace("_", " ")
    return text[:1].upper() + text[1:]


def _typical(group: pd.DataFrame, rows: np.ndarray, feature: Feature | None, texts: pd.Series) -> str | None:
    """The reason for the median customer with this driver, or the driver's most common reason text."""
    if feature is not None and feature.name in group.columns:
        sub = group.iloc[rows]
        if feature.kind == "numeric":
            try:
                context = [f for f in _fields(feature.reason or "") if f != "value"]
            except ValueError:
                context = []
            # The median of each number: a value some customer of the group really has, not a mean between.
            row = {c: pd.to_numeric(sub[c], errors="coerce").median() for c in [feature.name, *context]
                   if c in sub.columns}
        else:
            mode = sub[feature.name].dropna().astype(str).mode()
            row = {feature.name: mode.iloc[0] if len(mode) else None}
        return render_reason(feature, row)
    common = texts.dropna().value_counts()
    return str(common.index[0]) if len(common) else None


def risk_drivers(group: pd.DataFrame, features: Sequence[Feature] = (), *, top: int = 5) -> list[Driver]:
    """The `top` drivers of risk among the customers of `group` (rows of a retention plan), most common first.

    Example:
        >>> plan = pd.DataFrame({"reason_1": ["no orders in the last 90 days", "only 1 order in the last 90 days"],
        ...                      "reason_1_feature": ["orders_90d", "orders_90d"]})
        >>> [(d.name, d.customers, d.share) for d in risk_drivers(plan)]
        [('orders_90d', 2, 1.0)]
    """
    n = len(group)
    texts_cols = [c for c in reason_columns(N_REASONS) if c in group.columns]
    by_feature = [c for c in driver_columns(N_REASONS) if c in group.columns]
    if not n or not texts_cols:
        return []
    known = {f.name: f for f in features}
    key_cols = by_feature or texts_cols  # older plans: count the texts themselves
    keys = group[key_cols].to_numpy(dtype=object)
    texts = group[texts_cols[: len(key_cols)]].to_numpy(dtype=object)
    ids = np.repeat(np.arange(n), len(key_cols))
    long = pd.DataFrame({"id": ids, "key": keys.ravel(), "text": texts.ravel()})
    long = long[long["key"].notna()].drop_duplicates(["id", "key"])  # a customer counts once per driver
    counts = long.groupby("key", sort=False)["id"].nunique()
    order = sorted(counts.index, key=lambda k: (-int(counts[k]), str(k)))[:top]
    out = []
    for key in order:
        mine = long[long["key"] == key]
        feature = known.get(key) if by_feature else None
        k = int(counts[key])
        out.append(Driver(
            name=str(key),
            label=_label(str(key), feature) if by_feature else str(key),
            family=feature.family if feature else None,
            customers=k,
            share=k / n,
            typical=_typical(group, mine["id"].to_numpy(), feature, mine["text"]) if by_feature else None,
        ))
    return out
