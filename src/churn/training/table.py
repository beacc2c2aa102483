"""Bring-your-own feature tables: turn a user's table (one row per customer, or per customer and date)
into a training frame and its Feature list.

- the target may be 1/0, true/false, yes/no, y/n (any case); anything else is an error naming the column
  and example rows;
- every other column is a feature, kept as written: how it is read (numbers, numbers written as text,
  yes/no text, categories) is learnt by the model's fitted preparation (`churn.preparation`), which
  scoring applies unchanged; all-blank and date columns are dropped, with a warning;
- the id stays text (leading zeros kept); the time column (if any) is parsed as a date.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.preparation import infer_kind, parse_number_text  # noqa: F401 - parse_number_text re-exported
from churn.yesno import FALSE_WORDS, TRUE_WORDS

log = logging.getLogger(__name__)


def _examples(df: pd.DataFrame, mask: np.ndarray, col: str, id_col: str | None, n: int = 3) -> str:
    rows = []
    for i in np.flatnonzero(mask)[:n]:
        who = f"{id_col}={df[id_col].iloc[i]!r}, " if id_col and id_col in df.columns else ""
        rows.append(f"row {i + 1} ({who}{col}={df[col].iloc[i]!r})")
    return "; ".join(rows)


def parse_target(df: pd.DataFrame, target: str, id_col: str | None = None) -> pd.Series:
    """The target as int 0/1 from 1/0, true/false, yes/no (case-insensitive); ChurnError otherwise."""
    s = df[target]
    if ptypes.is_bool_dtype(s) and not s.isna().any():
        return s.astype("int64")
    text = s.astype(object).where(s.notna(), "").map(lambda v: str(v).strip().lower())
    is_true, is_false = text.isin(TRUE_WORDS).to_numpy(), text.isin(FALSE_WORDS).to_numpy()
    bad = ~(is_true | is_false)
    if bad.any():
        seen = sorted({str(v) for v in s[bad].head(200)})[:5]
        raise ChurnError(
            f"target column '{target}': {int(bad.sum()):,} row(s) are not 1/0, true/false or yes/no "
            f"(found {seen}); e.g. {_examples(df, bad, target, id_col)}"
        )
    return pd.Series(is_true.astype("int64"), index=df.index, name=target)


def prepare_table(df: pd.DataFrame, target: str, id_col: str, time_col: str | None = None,
                  ) -> tuple[pd.DataFrame, list[Feature]]:
    """(training frame, features) from a user's table; see the module docstring for the rules."""
    if not isinstance(df, pd.DataFrame):
        raise ChurnError(f"expected a table, got {type(df).__name__}")
    for col, what in ((target, "target"), (id_col, "id"), (time_col, "time")):
        if col is not None and col not in df.columns:
            raise ChurnError(f"{what} column '{col}' is not in the table (columns: {', '.join(map(str, df.columns[:30]))})")
    if len(df) == 0:
        raise ChurnError("the table has no rows")
    out = pd.DataFrame(index=df.index)
    ids = df[id_col]
    if ids.isna().any():
        raise ChurnError(f"id column '{id_col}': {int(ids.isna().sum()):,} row(s) have no id; e.g. "
                         f"{_examples(df, ids.isna().to_numpy(), id_col, None)}")
    if ptypes.is_float_dtype(ids) and (ids % 1 == 0).all():
        ids = ids.astype("int64")
    out[id_col] = ids.astype(str).str.strip().astype(object)
    if time_col is not None:
        t = pd.to_datetime(df[time_col], errors="coerce")
        bad = t.isna().to_numpy()
        if bad.any():
            raise ChurnError(f"time column '{time_col}': {int(bad.sum()):,} row(s) are not dates; e.g. "
                             f"{_examples(df, bad, time_col, id_col)}")
        out[time_col] = t
        dup = out.duplicated([id_col, time_col]).to_numpy()
    else:
        dup = np.zeros(len(df), dtype=bool)
    if dup.any():
        raise ChurnError(f"the table has {int(dup.sum()):,} duplicated ({id_col}, {time_col}) row(s); e.g. "
                         f"{_examples(df, dup, id_col, None)}")
    out[target] = parse_target(df, target, id_col)
    features: list[Feature] = []
    skipped: list[str] = []
    for col in df.columns:
        if col in {target, id_col, time_col}:
            continue
        s = df[col]
        name = str(col)
        if s.isna().all() or (s.dtype == object and s.astype(str).str.strip().eq("").all()):
            skipped.append(f"{name} (empty)")
            continue
        if ptypes.is_datetime64_any_dtype(s) or ptypes.is_timedelta64_dtype(s):
            skipped.append(f"{name} (date; turn it into a number such as days since)")
            continue
        kind, _ = infer_kind(s)
        out[name] = s
        if kind == "category":
            features.append(Feature(name, "table", f"{name} (from your table)", kind="categorical"))
        else:
            features.append(Feature(name, "table", f"{name} (from your table{', yes = 1' if kind == 'yes_no' else ''})"))
    if skipped:
        log.warning("columns not used as features: %s", ", ".join(skipped))
    if not features:
        raise ChurnError("the table has no usable feature columns besides the id, time and target")
    return out.reset_index(drop=True), features
