"""Plain-language reason codes: the features that pushed each customer's risk up the most.

Ranking uses per-row contributions of the model (decision-path attribution by default, TreeSHAP on
request); wording comes from each feature's template in the registry, filled with the customer's own
values, e.g. "no activity in 41 days (usually every 3 days)". `render_many` renders a whole group of rows
at once, formatting each distinct value once, with the same text `render_reason` gives row by row.

Templates are `str.format` templates with two additions, so reasons read naturally:

* a unit after the format spec, singular and plural: `{value:.0f day|days}` gives "1 day", "41 days"
  (singular exactly when the number shows as "1");
* forms for zero and one, separated by ` || `: `0: no orders in the last 90 days || only {value:.0f} orders
  in the last 90 days` says "no orders ..." when the value shows as zero ("0", "0.0", "0%") in the default
  form's first `{value}`, and "1: ..." likewise when it shows as exactly "1". The form without a prefix is
  the default.
"""

from __future__ import annotations

import math
import re
import string

import numba
import numpy as np
import pandas as pd

from churn.compiled import kernel_input
from churn.features.registry import Feature

N_REASONS = 3
_PAREN_WITH_FIELD = re.compile(r"\s*\([^()]*\{[^}]+\}[^()]*\)")
_FORM_SEP = " || "
_FORM_KEY = re.compile(r"^(0|1): ")
_ZERO = re.compile(r"[+-]?0+(?:\.0+)?%?")  # a number that shows as zero
_ONE = re.compile(r"\+?1")  # shows as exactly one (so "1.0 hours" stays plural)


def _split_unit(spec: str) -> tuple[str, str | None, str | None]:
    """`.0f day|days` -> (".0f", "day", "days"); a spec without a unit -> (spec, None, None)."""
    num, sep, unit = spec.partition(" ")
    if not sep or "|" not in unit:
        return spec, None, None
    one, _, many = unit.partition("|")
    return num, one, many


def _with_unit(text: str, one: str | None, many: str | None) -> str:
    return text if one is None else f"{text} {one if text in ('1', '+1') else many}"


class _UnitFormatter(string.Formatter):
    """`str.format` plus the unit suffix of `_split_unit` (convert_field applies !r / !s / !a as usual)."""

    def format_field(self, value: object, format_spec: str) -> str:
        num, one, many = _split_unit(format_spec)
        return _with_unit(format(value, num), one, many)


_FORMATTER = _UnitFormatter()


def _forms(template: str) -> tuple[str, dict[str, str]]:
    """(default form, {"0"/"1": form}) of a template with ` || `-separated forms."""
    default, keyed = None, {}
    for part in template.split(_FORM_SEP):
        m = _FORM_KEY.match(part)
        if m:
            keyed[m.group(1)] = part[m.end():]
        else:
            default = part
    if default is None:  # only keyed forms: the last one is the default
        default = template.split(_FORM_SEP)[-1]
        default = default[_FORM_KEY.match(default).end():]
    return default, keyed


def _decider(default: str) -> tuple[str, str | None]:
    """(number spec, conversion) of the default form's first `{value}`: how a value shows for the choice."""
    try:
        for _, name, spec, conversion in string.Formatter().parse(default):
            if name == "value":
                return _split_unit(spec or "")[0], conversion
    except ValueError:
        pass
    return "", None


def _form_of(shown: str) -> str | None:
    """"0" when a formatted value shows as zero, "1" when as exactly one, else None."""
    if _ZERO.fullmatch(shown):
        return "0"
    if _ONE.fullmatch(shown):
        return "1"
    return None


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
    default, keyed = _forms(template)
    template = default
    if keyed:
        spec, conversion = _decider(default)
        try:
            shown = format(_FORMATTER.convert_field(value, conversion), spec)
        except (ValueError, TypeError):
            shown = ""
        template = keyed.get(_form_of(shown) or "", default)
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
        return _FORMATTER.format(template, **ctx)
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
    spec, one, many = _split_unit(spec)

    def fmt(v: object) -> tuple[str, bool]:
        try:
            return _with_unit(format(_FORMATTER.convert_field(_py(v), conversion), spec), one, many), False
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
    else:
        if one is not None:  # per distinct value, like the numbers themselves
            texts[:-1] = [_with_unit(t, one, many) for t in texts[:-1]]
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
    default, keyed = _forms(feature.reason or f"{feature.description}: {{value}}")
    form = np.full(n, "", dtype=object)  # "" default, "0" / "1" the zero / one form
    present = np.flatnonzero(~missing)
    if keyed and present.size:
        shown, failed = _format_column(value[present], *_decider(default))
        codes, uniques = pd.factorize(shown)
        # Once per distinct text; a zero or one without its own form takes the default.
        kinds = np.array([k if (k := _form_of(u)) in keyed else "" for u in uniques], dtype=object)
        form[present] = np.where(failed, "", kinds[codes])
    for key, template in (("", default), *keyed.items()):
        chosen = ~missing & (form == key) if keyed else ~missing
        if not chosen.any():
            continue
        try:
            ctx = [f for f in _fields(template) if f != "value"]
        except ValueError:
            ctx = []
        ctx_missing = np.zeros(n, dtype=bool)
        for name in ctx:
            ctx_missing |= _missing_mask(cols[name]) if name in cols else True
        for rows, tpl in ((chosen & ~ctx_missing, template),
                          (chosen & ctx_missing, _PAREN_WITH_FIELD.sub("", template))):
            if rows.any():
                sub = {k: c[rows] for k, c in cols.items() if k != feature.name}
                out[rows] = _render_rows(feature, tpl, sub, value[rows])
    return out


@numba.njit(cache=True, nogil=True)
def _top_positive(c: np.ndarray, ncols: int, k: int) -> np.ndarray:  # pragma: no cover
    """Per row, the columns (of the first `ncols`) of the k largest positive values (-1 where fewer), largest
    first; equal values keep column order, as a stable sort would."""
    out = np.full((c.shape[0], k), -1, dtype=np.int64)
    best = np.empty(k)
    for i in range(c.shape[0]):
        m = 0  # how many slots are filled
        for j in range(ncols):
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
    """`reason_1..n` per row: the n features with the largest positive contributions, in plain words, and
    `reason_1_feature..reason_n_feature`: which feature each reason speaks for (the report groups by it).

    `contrib` is a frame with one column per feature, or a matrix whose first columns are `names` (later
    columns, such as the bias of `contributions_encoded`, are not read: the scorer passes its matrix whole, so
    nothing is copied).
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
    top = _top_positive(kernel_input(c, np.float64), len(names), k)
    out = np.full((len(X), n), None, dtype=object)
    driver = np.full((len(X), n), None, dtype=object)
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
            driver[rows, j] = feat.name
    return pd.DataFrame(np.hstack([out, driver]), index=X.index, columns=reason_columns(n) + driver_columns(n))


def reason_columns(n: int = N_REASONS) -> list[str]:
    """`reason_1..n`: the reason texts."""
    return [f"reason_{i + 1}" for i in range(n)]


def driver_columns(n: int = N_REASONS) -> list[str]:
    """`reason_1_feature..reason_n_feature`: the feature behind each reason text."""
    return [f"reason_{i + 1}_feature" for i in range(n)]


def _py(v: object) -> object:
    """numpy scalars to Python values (format specs like `:,.0f` want real floats)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def warm_up() -> None:
    """Load the compiled ranking of contributions (numba's cache, or compile it once; churn.compiled)."""
    _top_positive(kernel_input(np.array([[0.5, -1.0, 2.0]]), np.float64), 3, 2)
