"""Plain-language reason codes: the features that pushed each customer's risk up the most.

Ranking uses per-row contributions of the model (decision-path attribution by default, TreeSHAP on
request); wording comes from each feature's template in the registry, filled with the customer's own
values, e.g. "no activity in 41 days (usually every 3)". `render_many` renders a whole group of rows at
once, formatting each distinct value once, with the same text `render_reason` gives row by row.
"""

from __future__ import annotations

import math
import re
import string

import numba
import numpy as np
import pandas as pd

from churn.features.registry import Feature

N_REASONS = 3
_FORMATTER = string.Formatter()  # its convert_field applies !r / !s / !a exactly as str.format does
_PAREN_WITH_FIELD = re.compile(r"\s*\([^()]*\{[^}]+\}[^()]*\)")


def _fields(template: str) -> list[str]:
    """Placeholder names in a format template."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def render_reason(feature: Feature, row: dict[str, object]) -> str:
    """One reason sentence for `feature`, given the customer's values (`row` maps feature -> value)."""
    value = _py(row.get(feature.name))
    if _missing(value):
        return feature.reason_missing or f"no data: {feature.description}"
    template = feature.reason or f"{feature.description}: {{value}}"
    ctx = {"value": value}
    try:
        fields = _fields(template)
    except ValueError:  # not valid format syntax
        return f"{feature.description}: {value}"
    for name in fields:
        if name != "value":
            ctx[name] = _py(row.get(name))
    if any(_missing(ctx[k]) for k in ctx if k != "value"):
        # A context value (e.g. the usual gap) is unknown: drop the parenthesis that would show it.
        template = _PAREN_WITH_FIELD.sub("", template)
    try:
        return template.format(**ctx)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError):
        return f"{feature.description}: {value}"


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """Rows where a value is missing (None or NaN), as `_missing` decides row by row."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind in "biu":
        return np.zeros(len(values), dtype=bool)
    return np.fromiter((_missing(v) for v in values), dtype=bool, count=len(values))


def _format_column(values: np.ndarray, spec: str, conversion: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Each value formatted with `spec` (computed once per distinct value), and where formatting failed."""
    def fmt(v: object) -> tuple[str, bool]:
        try:
            return format(_FORMATTER.convert_field(_py(v), conversion), spec), False
        except (ValueError, TypeError):
            return "", True

    if values.dtype == object and len({type(v) for v in values if not _missing(v)}) > 1:
        # Mixed types (True == 1 == 1.0 would share one slot): format each row as itself.
        done = [fmt(v) for v in values]
        return np.array([t for t, _ in done], dtype=object), np.array([f for _, f in done], dtype=bool)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    items = uniques.tolist() if isinstance(uniques, np.ndarray) else [_py(u) for u in uniques]
    texts = np.empty(len(items) + 1, dtype=object)
    failed = np.zeros(len(items) + 1, dtype=bool)
    try:  # the common case in one tight loop; any failure redoes it value by value
        texts[:-1] = [format(_FORMATTER.convert_field(u, conversion), spec) for u in items] if conversion else \
            [format(u, spec) for u in items]
    except (ValueError, TypeError):
        done = [fmt(u) for u in items]
        texts[:-1] = [t for t, _ in done]
        failed[:-1] = [f for _, f in done]
    texts[-1] = ""
    out, bad = texts[codes], failed[codes]
    for i in np.flatnonzero(codes < 0):  # missing values are formatted as themselves (NaN -> "nan")
        out[i], bad[i] = fmt(values[i])
    return out, bad


def _render_rows(feature: Feature, template: str, cols: dict[str, np.ndarray], value: np.ndarray) -> np.ndarray:
    """`template` filled for every row (values already known present), as `str.format` would."""
    n = len(value)
    fallback = np.zeros(n, dtype=bool)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:
        parts = None
    if parts is None or any(f is not None and not f.isidentifier() for _, f, _, _ in parts):
        # Unparseable, or fields with attributes / indexes: the row-by-row renderer decides.
        return np.array([render_reason(feature, {feature.name: _py(value[i]),
                                                 **{k: _py(c[i]) for k, c in cols.items()}})
                         for i in range(n)], dtype=object)
    text = np.full(n, "", dtype=object)
    for literal, name, spec, conversion in parts:
        if literal:
            text = text + literal
        if name is None:
            continue
        col = value if name == "value" else cols.get(name, np.full(n, None, dtype=object))
        formatted, failed = _format_column(col, spec or "", conversion)
        text = text + np.where(failed, "", formatted)
        fallback |= failed
    if fallback.any():
        text[fallback] = [f"{feature.description}: {_py(v)}" for v in value[fallback]]
    return text


def render_many(feature: Feature, cols: dict[str, np.ndarray]) -> np.ndarray:
    """`render_reason` for many rows at once (same text), formatting each distinct value only once.

    `cols` maps the feature's name and its template's context fields to equally long arrays.
    """
    value = cols[feature.name]
    n = len(value)
    out = np.empty(n, dtype=object)
    missing = _missing_mask(value)
    out[missing] = feature.reason_missing or f"no data: {feature.description}"
    template = feature.reason or f"{feature.description}: {{value}}"
    try:
        ctx = [f for f in _fields(template) if f != "value"]
    except ValueError:
        ctx = []
    ctx_missing = np.zeros(n, dtype=bool)
    for name in ctx:
        ctx_missing |= _missing_mask(cols[name]) if name in cols else True
    for rows, tpl in ((~missing & ~ctx_missing, template),
                      (~missing & ctx_missing, _PAREN_WITH_FIELD.sub("", template))):
        if rows.any():
            sub = {k: c[rows] for k, c in cols.items() if k != feature.name}
            out[rows] = _render_rows(feature, tpl, sub, value[rows])
    return out


@numba.njit(cache=True, nogil=True)
def _top_positive(c: np.ndarray, k: int) -> np.ndarray:  # pragma: no cover
    """Per row, the columns of the k largest positive values (-1 where fewer), largest first; equal values
    keep column order, as a stable sort would."""
    out = np.full((c.shape[0], k), -1, dtype=np.int64)
    best = np.empty(k)
    for i in range(c.shape[0]):
        m = 0  # how many slots are filled
        for j in range(c.shape[1]):
            v = c[i, j]
            if not v > 0.0:  # only features that raised the risk are reasons (NaN never)
                continue
            if m == k and v <= best[k - 1]:
                continue
            p = m if m < k else k - 1
            while p > 0 and best[p - 1] < v:  # strictly smaller ones move down: earlier columns win ties
                if p < k:
                    best[p] = best[p - 1]
                    out[i, p] = out[i, p - 1]
                p -= 1
            best[p] = v
            out[i, p] = j
            if m < k:
                m += 1
    return out


def reason_codes(features: list[Feature], X: pd.DataFrame, contrib: pd.DataFrame | np.ndarray,
                 n: int = N_REASONS, *, names: list[str] | None = None) -> pd.DataFrame:
    """`reason_1..n` per row: the n features with the largest positive contributions, in plain words.

    `contrib` is a frame with one column per feature, or a matrix whose columns are `names`.
    """
    by_name = {f.name: f for f in features}
    if isinstance(contrib, pd.DataFrame):
        names = [c for c in contrib.columns if c in by_name]
        c = contrib[names].to_numpy(dtype=float)
    else:
        keep = [i for i, name in enumerate(names or []) if name in by_name]
        c = np.asarray(contrib, dtype=np.float64)
        if len(keep) < len(names or []):
            c = c[:, keep]
        names = [names[i] for i in keep]
    k = min(n, len(names))
    top = _top_positive(c, k)
    out = np.full((len(X), n), None, dtype=object)
    needed: dict[str, list[str]] = {}
    for name in names:
        try:
            fields = _fields(by_name[name].reason or "")
        except ValueError:
            fields = []
        needed[name] = [name, *[f for f in fields if f != "value" and f in X.columns]]
    cols: dict[str, np.ndarray] = {}
    for j in range(k):
        has = np.flatnonzero(top[:, j] >= 0)
        order = has[np.argsort(top[has, j], kind="stable")]
        bounds = np.flatnonzero(np.diff(top[order, j])) + 1
        for rows in np.split(order, bounds):
            if not len(rows):
                continue
            feat = by_name[names[top[rows[0], j]]]
            for col in needed[feat.name]:
                if col not in cols:
                    cols[col] = X[col].to_numpy()
            out[rows, j] = render_many(feat, {col: cols[col][rows] for col in needed[feat.name]})
    return pd.DataFrame(out, columns=[f"reason_{i + 1}" for i in range(n)], index=X.index)


def _py(v: object) -> object:
    """numpy scalars to Python values (format specs like `:,.0f` want real floats)."""
    if isinstance(v, np.generic):
        return v.item()
    return v
