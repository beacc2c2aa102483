"""Bring-your-own feature tables: turn a user's table (one row per customer, or per customer and date)
into a training frame and its Feature list.

- the target may be 1/0, true/false, yes/no, y/n (any case); two other text values where one names churn
  ("Attrited Customer" / "Existing Customer": attrited, churned, cancelled, left, lost, closed, exited) are
  read with that one as churn, and said; `churn_value` (`--churn-value`, `label.churn_value`) names the
  churn value outright; anything else is an error naming the column, its values and example rows;
- every other column is a feature, kept as written: how it is read (numbers, counts, numbers written as
  text, yes/no text, categories) is learnt by the model's fitted preparation (`churn.preparation`), which
  scoring applies unchanged;
- columns a model must not learn from are dropped, each named in a notice with the reason: empty and
  constant columns, dates (a date is not a number: give days since it instead), identifiers (text unique or
  nearly unique per row), personal data (e-mail addresses, phone numbers, people's names) and codes with too
  many distinct values to be categories (their levels would be stored in the model). `keep` keeps a column
  whatever these rules say (`--keep-column`);
- the id stays text (leading zeros kept; 7.0 read as 7); the time column (if any) is parsed as a date.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.preparation import infer_kind, parse_number_text, stripped_text  # noqa: F401 - parse_number_text re-exported
from churn.yesno import FALSE_WORDS, NA_WORDS, TRUE_WORDS

log = logging.getLogger(__name__)

CHURN_WORDS = ("attrited", "attrition", "churned", "churn", "cancelled", "canceled", "cancel", "left", "lost",
               "closed", "exited", "lapsed", "terminated")
_CHURN_RE = re.compile(r"\b(" + "|".join(CHURN_WORDS) + r")\b", re.IGNORECASE)
ID_SHARE = 0.9  # a text column with this share of distinct values (of its filled rows) is an identifier
CODE_SHARE = 0.1  # more distinct values than this share of rows (and than CODE_MIN): a code, not a category
CODE_MIN = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]{7,20}$")
_NAME = re.compile(r"^[A-Z][a-z'\-]+(?:\s+[A-Z][a-z'\-]+){1,3}$")  # "Ann Smith", "Jean-Luc Picard"


@dataclass
class ReadyTable:
    """A user's table read for training: the frame (id, time, target 0/1, feature columns as written), the
    features, what was dropped and why (column -> reason), and the notices to show."""

    frame: pd.DataFrame
    features: list[Feature]
    dropped: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def _examples(df: pd.DataFrame, mask: np.ndarray, col: str, id_col: str | None, n: int = 3) -> str:
    rows = []
    for i in np.flatnonzero(mask)[:n]:
        who = f"{id_col}={df[id_col].iloc[i]!r}, " if id_col and id_col in df.columns else ""
        rows.append(f"row {i + 1} ({who}{col}={df[col].iloc[i]!r})")
    return "; ".join(rows)


def parse_target(df: pd.DataFrame, target: str, id_col: str | None = None, churn_value: str | None = None,
                 notices: list[str] | None = None) -> pd.Series:
    """The target as int 0/1 (module docstring for the rules); ChurnError otherwise. A reading that was
    inferred rather than given is appended to `notices`."""
    s = df[target]
    text = stripped_text(s)
    blank = text.str.lower().isin(NA_WORDS).to_numpy()
    if churn_value is not None:
        want = str(churn_value).strip().casefold()
        folded = text.str.casefold()
        if blank.any():
            raise ChurnError(f"target column '{target}': {int(blank.sum()):,} row(s) have no value; e.g. "
                             f"{_examples(df, blank, target, id_col)}")
        if not (folded == want).any():
            seen = sorted(set(text[~blank].head(10_000)))[:10]
            raise ChurnError(f"target column '{target}': no row holds the churn value {churn_value!r} "
                             f"(--churn-value / label.churn_value); its values are {seen}")
        return pd.Series((folded == want).astype("int64").to_numpy(), index=df.index, name=target)
    if ptypes.is_bool_dtype(s) and not s.isna().any():
        return s.astype("int64")
    lower = text.str.lower()
    is_true, is_false = lower.isin(TRUE_WORDS).to_numpy(), lower.isin(FALSE_WORDS).to_numpy()
    bad = ~(is_true | is_false)
    if not bad.any():
        return pd.Series(is_true.astype("int64"), index=df.index, name=target)
    values = sorted(set(text[~blank]))
    if not blank.any() and len(values) == 2:
        churny = [v for v in values if _CHURN_RE.search(v)]
        if len(churny) == 1:
            other = next(v for v in values if v != churny[0])
            if notices is not None:
                notices.append(f"target column '{target}': {churny[0]!r} read as churn and {other!r} as not "
                               f"(it names churn); say otherwise with --churn-value")
            return pd.Series((text == churny[0]).astype("int64").to_numpy(), index=df.index, name=target)
    seen = sorted({str(v) for v in s[bad].head(200)})[:5]
    hint = (f"; if {values[0]!r} or {values[1]!r} means churn, say which with --churn-value"
            if len(values) == 2 else "")
    raise ChurnError(
        f"target column '{target}': {int(bad.sum()):,} row(s) are not 1/0, true/false or yes/no "
        f"(found {seen}){hint}; e.g. {_examples(df, bad, target, id_col)}"
    )


def read_ids(ids: pd.Series) -> pd.Series:
    """Customer ids as stripped text: whole numbers stored as floats (7.0) read as 7, so a float-typed export
    and an integer-typed one name the same customers; leading zeros of text ids are kept."""
    if ptypes.is_float_dtype(ids):
        whole = ids.notna() & (ids % 1 == 0)
        if whole[ids.notna()].all():
            return ids.map(lambda v: None if pd.isna(v) else str(int(v))).astype(object)
    return ids.astype(str).str.strip().astype(object)


def _looks_like_dates(text: pd.Series) -> bool:
    """Most filled values parse as dates written with digits (2024-03-01, 01/03/2024, 2024-03-01 10:00)."""
    sample = text[text != ""].head(2000)
    if sample.empty or not sample.str.contains(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).mean() > 0.9:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed", dayfirst=False)
    return bool(parsed.notna().mean() > 0.9)


def why_not_a_feature(s: pd.Series) -> str | None:
    """Why a column must not be a model input (a short reason), or None when it may be one."""
    if s.isna().all() or (s.dtype == object and stripped_text(s).eq("").all()):
        return "empty"
    if s.nunique(dropna=False) <= 1:
        return "constant (the same value in every row)"
    if ptypes.is_datetime64_any_dtype(s) or ptypes.is_timedelta64_dtype(s):
        return "a date (give a number such as days since it instead)"
    if ptypes.is_bool_dtype(s) or ptypes.is_numeric_dtype(s):
        return None
    text = stripped_text(s)
    filled = text[~text.str.lower().isin(NA_WORDS)]
    if filled.empty:
        return "empty"
    if _looks_like_dates(filled):
        return "a date written as text (give a number such as days since it instead)"
    kind, _ = infer_kind(s)
    if kind != "category":
        return None
    sample = filled.head(5000)
    if sample.str.match(_EMAIL).mean() > 0.5:
        return "e-mail addresses (personal data)"
    if sample.str.match(_PHONE).mean() > 0.5 and sample.str.count(r"\d").median() >= 7:
        return "phone numbers (personal data)"
    if sample.str.match(_NAME).mean() > 0.5 and filled.nunique() > 0.5 * len(filled):
        return "people's names (personal data)"
    distinct = filled.nunique()
    if distinct >= ID_SHARE * len(filled) and distinct > 1:
        return "an identifier (unique or nearly unique per row)"
    if distinct > max(CODE_MIN, CODE_SHARE * len(s)):
        return f"a code with {distinct:,} distinct values (too many to be categories)"
    return None


def read_ready_table(df: pd.DataFrame, target: str, id_col: str, time_col: str | None = None, *,
                     churn_value: str | None = None, keep: tuple[str, ...] | list[str] = ()) -> ReadyTable:
    """A user's table read for training (module docstring for the rules)."""
    if not isinstance(df, pd.DataFrame):
        raise ChurnError(f"expected a table, got {type(df).__name__}")
    for col, what in ((target, "target"), (id_col, "id"), (time_col, "time")):
        if col is not None and col not in df.columns:
            raise ChurnError(f"{what} column '{col}' is not in the table (columns: {', '.join(map(str, df.columns[:30]))})")
    unknown = [c for c in keep if c not in df.columns]
    if unknown:
        raise ChurnError(f"--keep-column names column(s) not in the table: {', '.join(map(str, unknown))}")
    if len(df) == 0:
        raise ChurnError("the table has no rows")
    out = pd.DataFrame(index=df.index)
    ids = df[id_col]
    if ids.isna().any():
        raise ChurnError(f"id column '{id_col}': {int(ids.isna().sum()):,} row(s) have no id; e.g. "
                         f"{_examples(df, ids.isna().to_numpy(), id_col, None)}")
    out[id_col] = read_ids(ids)
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
    notices: list[str] = []
    out[target] = parse_target(df, target, id_col, churn_value, notices)
    features: list[Feature] = []
    dropped: dict[str, str] = {}
    for col in df.columns:
        if col in {target, id_col, time_col}:
            continue
        s, name = df[col], str(col)
        why = why_not_a_feature(s)
        if why is not None and (why == "empty" or name not in keep):
            dropped[name] = why
            continue
        kind, _ = infer_kind(s)
        out[name] = s
        if kind == "category":
            features.append(Feature(name, "table", f"{name} (from your table)", kind="categorical"))
        else:
            features.append(Feature(name, "table", f"{name} (from your table{', yes = 1' if kind == 'yes_no' else ''})"))
    if dropped:
        notices.append(f"{len(dropped)} column(s) not used as features: "
                       + "; ".join(f"'{c}': {why}" for c, why in dropped.items())
                       + " (keep one anyway with --keep-column)")
        log.warning(notices[-1])
    if not features:
        raise ChurnError("the table has no usable feature columns besides the id, time and target"
                         + (f" ({notices[-1]})" if dropped else ""))
    return ReadyTable(out.reset_index(drop=True), features, dropped, notices)


def prepare_table(df: pd.DataFrame, target: str, id_col: str, time_col: str | None = None, *,
                  churn_value: str | None = None, keep: tuple[str, ...] | list[str] = (),
                  ) -> tuple[pd.DataFrame, list[Feature]]:
    """(training frame, features) from a user's table; `read_ready_table` with its notices logged."""
    t = read_ready_table(df, target, id_col, time_col, churn_value=churn_value, keep=keep)
    return t.frame, t.features
