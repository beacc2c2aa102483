"""Plain-language reason codes: the features that pushed each customer's risk up the most.

Ranking uses LightGBM's own per-row contributions (TreeSHAP, `pred_contrib`); wording comes from each
feature's template in the registry, filled with the customer's own values, e.g.
"no activity in 41 days (usually every 3)".
"""

from __future__ import annotations

import math
import re
import string

import numpy as np
import pandas as pd

from churn.features.registry import Feature

N_REASONS = 3
_PAREN_WITH_FIELD = re.compile(r"\s*\([^()]*\{[^}]+\}[^()]*\)")


def _fields(template: str) -> list[str]:
    """Placeholder names in a format template."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def render_reason(feature: Feature, row: dict[str, object]) -> str:
    """One reason sentence for `feature`, given the customer's values (`row` maps feature -> value)."""
    value = row.get(feature.name)
    if _missing(value):
        return feature.reason_missing or f"no data: {feature.description}"
    template = feature.reason or f"{feature.description}: {{value}}"
    ctx = {"value": value}
    for name in _fields(template):
        if name != "value":
            ctx[name] = row.get(name)
    if any(_missing(ctx[k]) for k in ctx if k != "value"):
        # A context value (e.g. the usual gap) is unknown: drop the parenthesis that would show it.
        template = _PAREN_WITH_FIELD.sub("", template)
    try:
        return template.format(**ctx)
    except (KeyError, ValueError, TypeError):
        return f"{feature.description}: {value}"


def reason_codes(features: list[Feature], X: pd.DataFrame, contrib: pd.DataFrame, n: int = N_REASONS) -> pd.DataFrame:
    """`reason_1..n` per row: the n features with the largest positive contributions, in plain words."""
    by_name = {f.name: f for f in features}
    names = [c for c in contrib.columns if c in by_name]
    c = contrib[names].to_numpy(dtype=float)
    c = np.where(c > 0, c, -np.inf)  # only features that raised the risk are reasons
    k = min(n, len(names))
    top = np.argsort(-c, axis=1, kind="stable")[:, :k]
    top_val = np.take_along_axis(c, top, axis=1)
    out = np.full((len(X), n), None, dtype=object)
    needed: dict[str, list[str]] = {
        name: [name, *[f for f in _fields(by_name[name].reason or "") if f != "value" and f in X.columns]]
        for name in names
    }
    cols = {col: X[col].to_numpy(dtype=object) for col in {x for v in needed.values() for x in v}}
    for j in range(k):
        for fi in np.unique(top[:, j]):
            rows = np.flatnonzero((top[:, j] == fi) & np.isfinite(top_val[:, j]))
            if not len(rows):
                continue
            feat = by_name[names[fi]]
            ctx_cols = needed[feat.name]
            for r in rows:
                out[r, j] = render_reason(feat, {col: _py(cols[col][r]) for col in ctx_cols})
    return pd.DataFrame(out, columns=[f"reason_{i + 1}" for i in range(n)], index=X.index)


def _py(v: object) -> object:
    """numpy scalars to Python values (format specs like `:,.0f` want real floats)."""
    if isinstance(v, np.generic):
        return v.item()
    return v
