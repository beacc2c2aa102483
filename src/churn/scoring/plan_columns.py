"""Reading a retention plan's columns the same way in every output (segments, workbook, report, alerts):
yes/no flags, clean text, tiers riskiest first, right-to-left languages and text, required columns.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from churn.errors import ChurnError

# Languages written right to left (ISO 639-1, plus a few common 639-2/3 codes).
RTL_LANGUAGES = frozenset(
    {"fa", "ar", "he", "ur", "ps", "yi", "dv", "sd", "ug", "ckb", "iw", "fas", "per", "ara"}
)
NO_INCENTIVE = "no_incentive"  # what a contacted customer without an incentive is listed under


def is_rtl_language(code: Any) -> bool:
    """True for a right-to-left language code such as 'fa', 'ar', 'he', 'ur' (also 'fa-IR', 'FA')."""
    if not isinstance(code, str) or not code.strip():
        return False
    return re.split(r"[-_]", code.strip().lower())[0] in RTL_LANGUAGES


def starts_rtl(text: Any) -> bool:
    """True when the first strongly directional character of `text` is right-to-left (Arabic, Hebrew ...)."""
    if not isinstance(text, str):
        return False
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            return True
        if bidi == "L":
            return False
    return False


def tier_order(tiers: pd.Series, probability: pd.Series | None = None) -> list[str]:
    """Tier names riskiest first: the categories of an ordered categorical, else by mean probability."""
    if isinstance(tiers.dtype, pd.CategoricalDtype):
        return [str(c) for c in tiers.cat.categories]
    names = tiers.dropna().astype(str)
    if probability is None:
        return sorted(names.unique())
    means = pd.to_numeric(probability, errors="coerce").groupby(names).mean()
    return sorted(means.index, key=lambda t: (-means[t], t))


def as_flag(values: pd.Series) -> pd.Series:
    """A yes/no column as bool: booleans as they are, text 'true'/'yes'/'1' as true, missing as false."""
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(float) != 0
    text = values.astype("string").str.strip().str.lower()
    return text.isin(["true", "1", "yes", "y", "t"]).fillna(False).astype(bool)


def text_or_none(value: Any) -> str | None:
    """A cell as clean text, or None when missing/blank."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    s = str(value).strip()
    return s or None


def per_distinct(values: pd.Series, fn: Callable[[Any], Any], missing: Any, dtype: Any = object) -> np.ndarray:
    """`fn` of every cell of a column, computed once per distinct value (`missing` for missing cells)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.array([*(fn(u) for u in uniques.tolist()), missing], dtype=dtype)[codes]


def texts_or_none(values: pd.Series | np.ndarray) -> pd.Series:
    """`text_or_none` for a whole column, computed once per distinct value."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    return pd.Series(per_distinct(s, text_or_none, None), index=s.index, dtype=object, name=s.name)


def check_columns(plan: pd.DataFrame, required: Iterable[str], what: str) -> None:
    """Raise ChurnError naming every required column the plan lacks."""
    missing = [c for c in required if c not in plan.columns]
    if missing:
        raise ChurnError(
            f"{what}: the retention plan lacks column(s) {missing}; it has {sorted(map(str, plan.columns))}"
        )
