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


def _context(feature: Feature) -> list[str]:
    """The other columns a feature's reason template names."""
    try:
        return [f for f in _fields(feature.reason or "") if f != "value"]
    except ValueError:
        return []


def driver_inputs(plan: pd.DataFrame, features: Sequence[Feature] = ()) -> list[str]:
    """The columns of `plan` that `risk_drivers` reads (select them before splitting a large plan: each
    group is then a narrow copy, not every column of every customer)."""
    wanted = set(reason_columns(N_REASONS)) | set(driver_columns(N_REASONS))
    for f in features:
        wanted |= {f.name, *_context(f)}
    return [c for c in plan.columns if c in wanted]


def _typical(group: pd.DataFrame, rows: np.ndarray, feature: Feature | None, texts: pd.Series) -> str | None:
    """The reason for the median customer with this driver, or the driver's most common reason text."""
    if feature is not None and feature.name in group.columns:
        if feature.kind == "numeric":
            # The median of each number: a value some customer of the group really has, not a mean between.
            row = {c: pd.to_numeric(group[c].iloc[rows], errors="coerce").median()
                   for c in [feature.name, *_context(feature)] if c in group.columns}
        else:
            mode = group[feature.name].iloc[rows].dropna().astype(str).mode()
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
    # Integer codes of each customer's (up to three) drivers: a million customers' reasons as objects in
    # a long frame cost gigabytes; the codes cost 24 MB.
    codes, uniques = pd.factorize(group[key_cols].to_numpy(dtype=object).ravel(), use_na_sentinel=True)
    codes = codes.reshape(n, len(key_cols))
    first = codes >= 0
    for j in range(1, codes.shape[1]):  # a customer counts once per driver
        first[:, j] &= ~(codes[:, :j] == codes[:, [j]]).any(axis=1)
    counts = np.bincount(codes[first], minlength=len(uniques))
    order = sorted(np.flatnonzero(counts), key=lambda u: (-int(counts[u]), str(uniques[u])))[:top]
    texts = group[texts_cols[: len(key_cols)]].to_numpy(dtype=object)
    out = []
    for u in order:
        key = uniques[u]
        has = codes == u
        feature = known.get(key) if by_feature else None
        k = int(counts[u])
        out.append(Driver(
            name=str(key),
            label=_label(str(key), feature) if by_feature else str(key),
            family=feature.family if feature else None,
            customers=k,
            share=k / n,
            typical=_typical(group, np.flatnonzero(has.any(axis=1)), feature, pd.Series(texts[has]))
            if by_feature else None,
        ))
    return out
