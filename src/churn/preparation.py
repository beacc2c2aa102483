"""The fitted preparation: everything learnt from training data that shapes a model input, in one object.

`Preparation` follows the scikit-learn contract (`fit` learns, `transform` applies) and is stored inside
the model, so training, `churn score`, the Python API and the MLflow pyfunc apply exactly the same steps,
and the Spark scale-out can broadcast it to every partition. It learns, per feature column:

- how a value is read: a number (from numbers, booleans or text holding numbers: "1.5", "1,5" with a
  decimal comma, "1,234.5" with thousands separators, "45%"), yes/no text (yes/no, y/n, true/false, t/f,
  1/0 in any case and spacing) read as 1/0, or a category;
- a category's levels: the `max_categories` most frequent, levels seen fewer than `min_level_count`
  times grouped into OTHER, matched case- and space-insensitively; a level never seen is missing;
- for raw-data models, the source settings a feature build must reuse (`source`: label kind, event
  types chosen, feature and label configuration with the survey scale frozen, the BG/NBD parameters).

Harmless differences at scoring are accepted (integer vs float, "Yes"/"yes"/" YES ", column order, extra
columns, which are reported); a value that cannot be read the way training read it is an error naming the
column, the count and example rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator, TransformerMixin

from churn.errors import ChurnError, DataValidationError, Problem
from churn.features.registry import Feature
from churn.yesno import FALSE_WORDS, NA_WORDS, TRUE_WORDS

OTHER = "(other)"
MAX_EXAMPLES = 3

TextFormat = Literal["plain", "thousands", "decimal_comma", "european", "percent"]
_PATTERNS = {
    "plain": re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"),
    "comma_groups": re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$"),  # 1,234.5
    "decimal_comma": re.compile(r"^[+-]?\d+(,\d+)?$"),  # 1,5
    "dot_groups": re.compile(r"^[+-]?\d{1,3}(\.\d{3})+(,\d+)?$"),  # 1.234,5
    "percent": re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)\s?%$"),
}
# Each format and the spellings it reads, in the order a column's format is decided (plain first, so
# "1.234" alone is one point two three four unless the column was learnt as European).
_FORMATS: dict[str, tuple[str, ...]] = {
    "plain": ("plain",),
    "thousands": ("plain", "comma_groups"),
    "decimal_comma": ("decimal_comma",),
    "european": ("decimal_comma", "dot_groups"),
    "percent": ("percent",),
}


def _matches(values: pd.Series, fmt: str) -> pd.Series:
    """Which stripped, non-blank text values are written in number format `fmt`."""
    out = pd.Series(False, index=values.index)
    for name in _FORMATS[fmt]:
        out |= values.str.match(_PATTERNS[name])
    return out


def stripped_text(s: pd.Series) -> pd.Series:
    """Values as stripped text (`str(value).strip()`); missing values as ''. Text comes back in pandas' string
    dtype (Arrow), as tables read as text already are, so the matching and parsing that follow run
    vectorised; values that are not all text (numbers, bytes, anything Arrow cannot hold) are converted one
    by one, as `str()` writes them."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.fillna("").str.strip()
    obj = s.astype(object)
    filled = obj.where(obj.notna(), "")
    if ptypes.infer_dtype(filled, skipna=True) in ("string", "empty"):
        try:
            return filled.astype("str").str.strip()
        except (UnicodeError, pa.ArrowException):  # e.g. a lone surrogate: not valid UTF-8
            pass
    return pd.Series([str(v).strip() for v in filled.to_numpy()], index=s.index, dtype=object)


def _examples(s: pd.Series, mask: np.ndarray) -> list[str]:
    idx = np.flatnonzero(mask)[:MAX_EXAMPLES]
    return [f"row {i + 1}: {s.iloc[i]!r}" for i in idx]


def number_format(values: pd.Series) -> TextFormat | None:
    """The first number format (see _FORMATS) all non-blank `values` are written in, or None."""
    if values.empty:
        return "plain"
    for fmt in _FORMATS:
        if _matches(values, fmt).all():
            return fmt  # type: ignore[return-value]
    return None


def parse_numbers(text: pd.Series, fmt: TextFormat) -> pd.Series:
    """Stripped text (no blanks) written in `fmt` as float64; NaN where a value does not parse."""
    if fmt == "thousands":
        text = text.str.replace(",", "", regex=False)
    elif fmt == "decimal_comma":
        text = text.str.replace(",", ".", regex=False)
    elif fmt == "european":
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    elif fmt == "percent":
        text = text.str.rstrip("%").str.strip()
    plain = text.where(_matches(text, "plain"))
    if isinstance(plain.dtype, pd.StringDtype):
        # Arrow's cast, in compiled code, reads each value (all matched the plain pattern) as float() does.
        try:
            values = pc.cast(pa.array(plain), pa.float64()).to_numpy(zero_copy_only=False)
            return pd.Series(values, index=text.index, dtype="float64")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):
            pass  # a value Arrow does not read (digits of another script): pandas decides, as below
    # Without its leading "+": pd.to_numeric reads "+7e23" one unit in the last place away from float().
    plain = plain.str.replace(r"^\+", "", regex=True)
    return pd.to_numeric(plain, errors="coerce").astype("float64")


def parse_number_text(s: pd.Series) -> pd.Series | None:
    """Text that holds numbers as float64 (NaN for blanks/NA markers), or None when it is not numeric."""
    text = stripped_text(s)
    na = text.str.lower().isin(NA_WORDS)
    fmt = number_format(text[~na])
    if fmt is None:
        return None
    out = pd.Series(np.nan, index=s.index, dtype="float64")
    out[~na] = parse_numbers(text[~na], fmt)
    return out


@dataclass
class ColumnRule:
    """How one feature column is read: `number` (text in `text_format`), `yes_no` (1/0) or `category`."""

    name: str
    kind: Literal["number", "yes_no", "category"]
    text_format: TextFormat | None = None
    levels: list[str] = field(default_factory=list)  # categories, in code order (OTHER last if grouped)
    grouped: list[str] = field(default_factory=list)  # rare levels read as OTHER

    @property
    def categorical(self) -> bool:
        return self.kind == "category"


def infer_kind(s: pd.Series) -> tuple[Literal["number", "yes_no", "category"], TextFormat | None]:
    """How a table column holds its values (bring-your-own tables): numbers, yes/no text or categories.

    Only words make a yes/no column (yes/no, y/n, true/false, t/f): a column of 0s and 1s, typed or written
    as text, is a number, so a count that is 0 or 1 in the rows a model was fitted on still reads a later 2.
    """
    if ptypes.is_bool_dtype(s) or ptypes.is_numeric_dtype(s):
        return "number", None
    text = stripped_text(s)
    lower = text.str.lower()
    filled = lower[~lower.isin(NA_WORDS)]
    fmt = number_format(text[~lower.isin(NA_WORDS)])
    if fmt is not None and not filled.empty:
        return "number", fmt
    nonblank = lower[lower != ""]
    if not nonblank.empty and nonblank.isin(TRUE_WORDS | FALSE_WORDS).all():
        return "yes_no", None
    return "category", None


def category_text(s: pd.Series) -> np.ndarray:
    """A categorical column as an object array of str (None = missing; blanks and NA markers missing).

    Numbers become text the same way at fit and at scoring (1, 1.0 -> "1"), so codes stored as numbers in
    one file and as text in another still match. Each distinct value is converted once.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    values = uniques.tolist() if isinstance(uniques, np.ndarray) else list(uniques)
    if ptypes.is_bool_dtype(s):
        texts: list[str | None] = [str(bool(v)) for v in values]
    elif ptypes.is_numeric_dtype(s):
        texts = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values]
    else:
        texts = []
        for v in values:
            t = None if pd.isna(v) else str(v).strip()
            texts.append(None if t is None or t.lower() in NA_WORDS else t)
    return np.array([*texts, None], dtype=object)[codes]


def _read_number(s: pd.Series, rule: ColumnRule, problems: list[Problem]) -> np.ndarray:
    if ptypes.is_bool_dtype(s) or ptypes.is_numeric_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if ptypes.is_datetime64_any_dtype(s) or ptypes.is_timedelta64_dtype(s):
        problems.append(Problem("model input", f"is a date/time column ({s.dtype}) but the model expects a "
                                "number", column=rule.name, count=len(s)))
        return np.full(len(s), np.nan)
    text = stripped_text(s)
    blank = text.str.lower().isin(NA_WORDS).to_numpy()
    out = np.full(len(s), np.nan)
    values, ambiguous = read_number_text(text[~blank], rule.text_format or "plain")
    out[~blank] = values
    bad = np.isnan(out) & ~blank
    amb = np.zeros(len(s), dtype=bool)
    amb[np.flatnonzero(~blank)[ambiguous]] = True
    if amb.any():
        problems.append(Problem("model input", "mixes number styles, and these values read differently in "
                                "them (1.234 is 1.234 with a decimal point, 1234 with thousands dots); write "
                                "the column in one style", column=rule.name, count=int(amb.sum()),
                                examples=_examples(s, amb)))
    if (bad & ~amb).any():
        problems.append(Problem("model input", "holds text where the model expects a number", column=rule.name,
                                count=int((bad & ~amb).sum()), examples=_examples(s, bad & ~amb)))
    return out


# Styles that write the decimal mark alike: a batch that strays from the learnt style stays in its family.
_FAMILY = {"plain": ("thousands",), "thousands": ("plain",), "decimal_comma": ("european",),
           "european": ("decimal_comma",), "percent": ()}


def read_number_text(filled: pd.Series, learned: TextFormat) -> tuple[np.ndarray, np.ndarray]:
    """(values, ambiguous) of stripped non-blank number text read by a column whose learnt style is
    `learned`: in that style when it reads every value, else in the first style of its family that does (a
    whole batch written elsewhere is harmless); else each value in the styles that read it, and where those
    disagree (1.234 in a batch that also holds 2,5) the value is ambiguous (NaN, flagged), never guessed.
    Percentages and plain numbers never stand in for each other: 45% and 0.45 are a hundred times apart, so
    a column learnt one way reads the other as unreadable (NaN)."""
    for fmt in (learned, *_FAMILY[learned]):
        if _matches(filled, fmt).all():
            return parse_numbers(filled, fmt).to_numpy(), np.zeros(len(filled), dtype=bool)  # type: ignore[arg-type]
    styles = ["percent"] if learned == "percent" else [f for f in _FORMATS if f != "percent"]
    read = np.column_stack([parse_numbers(filled, f).where(_matches(filled, f)).to_numpy(dtype="float64")
                            for f in styles]) if len(filled) else np.empty((0, len(styles)))
    n = (~np.isnan(read)).sum(axis=1)
    with np.errstate(all="ignore"):
        lo, hi = np.nanmin(np.where(n[:, None] > 0, read, 0.0), axis=1), np.nanmax(
            np.where(n[:, None] > 0, read, 0.0), axis=1)
    ambiguous = (n > 1) & (lo != hi)
    return np.where((n > 0) & ~ambiguous, lo, np.nan), ambiguous


def _read_yes_no(s: pd.Series, rule: ColumnRule, problems: list[Problem]) -> np.ndarray:
    if ptypes.is_bool_dtype(s) or ptypes.is_numeric_dtype(s):
        out = s.to_numpy(dtype="float64", na_value=np.nan)
        bad = ~np.isnan(out) & ~np.isin(out, (0.0, 1.0))
    else:
        text = stripped_text(s).str.lower()
        blank = text.isin(NA_WORDS).to_numpy()
        yes, no = text.isin(TRUE_WORDS).to_numpy(), text.isin(FALSE_WORDS).to_numpy()
        out = np.where(yes, 1.0, np.where(no, 0.0, np.nan))
        bad = ~(yes | no | blank)
    if bad.any():
        problems.append(Problem("model input", "holds values that are not yes/no (training read this column as "
                                "yes = 1, no = 0)", column=rule.name, count=int(bad.sum()),
                                examples=_examples(s, bad)))
    return out


class Preparation(TransformerMixin, BaseEstimator):
    """Raw feature columns -> the float matrix the models read, with every rule learnt at `fit`.

    Parameters are settings only: `features` (the declared features; with `infer=True`, the kind of each
    column is learnt from its values, as for bring-your-own tables), `max_categories`, `min_level_count`
    and `source` (the raw-data build's settings, kept as given). `fit` learns `rules_`, `features_`,
    `feature_names_`, `categorical_index_` and `categorical_levels_`.
    """

    def __init__(self, features: list[Feature] | None = None, *, infer: bool = False, max_categories: int = 256,
                 min_level_count: int = 5, source: dict[str, Any] | None = None):
        self.features = features
        self.infer = infer
        self.max_categories = max_categories
        self.min_level_count = min_level_count
        self.source = source

    # -- fit
    def fit(self, X: pd.DataFrame, y: Any = None) -> Preparation:
        """Learn how each feature column is read and each categorical column's levels."""
        feats = list(self.features or [])
        if not feats:
            raise ChurnError("the model needs at least one feature")
        _check_columns(X, [f.name for f in feats])
        rules: list[ColumnRule] = []
        decided: list[Feature] = []
        for f in feats:
            s = X[f.name]
            if f.kind == "categorical":
                kind, fmt = "category", None
            elif self.infer:
                kind, fmt = infer_kind(s)
            else:
                kind, fmt = "number", None
            rule = ColumnRule(f.name, kind, fmt)
            if rule.categorical:
                self._learn_levels(rule, category_text(s))
            rules.append(rule)
            decided.append(f if (f.kind == "categorical") == rule.categorical else
                           Feature(f.name, f.family, f.description, f.window_days,
                                   "categorical" if rule.categorical else "numeric", f.reason, f.reason_missing))
        self.rules_ = rules
        self.features_ = decided
        self.feature_names_ = [f.name for f in decided]
        self.categorical_index_ = [i for i, r in enumerate(rules) if r.categorical]
        self.categorical_levels_ = {r.name: list(r.levels) for r in rules if r.categorical}
        return self

    def _learn_levels(self, rule: ColumnRule, values: np.ndarray) -> None:
        # One level per spelling up to case ("Gold", "gold " are one), named by its most frequent spelling.
        text = pd.Series(values, dtype=object).dropna()
        spellings = text.value_counts()
        folded = text.str.casefold().value_counts()
        name: dict[str, str] = {}
        for spelling, _ in sorted(spellings.items(), key=lambda kv: (-kv[1], str(kv[0]))):
            name.setdefault(str(spelling).casefold(), str(spelling))
        # Deterministic: most frequent first, ties by name; the kept ones sorted so codes read alphabetically.
        ordered = sorted(((name[k], n) for k, n in folded.items()), key=lambda kv: (-kv[1], kv[0]))
        keep = [k for k, n in ordered[: self.max_categories] if n >= self.min_level_count]
        if not keep and ordered:  # a tiny table: keep what there is rather than nothing
            keep = [k for k, _ in ordered[: self.max_categories]]
        kept = set(keep)
        rule.grouped = sorted(k for k, _ in ordered if k not in kept)
        rule.levels = sorted(keep) + ([OTHER] if rule.grouped else [])

    # -- transform
    def clean(self, X: pd.DataFrame) -> pd.DataFrame:
        """The feature columns read as training read them: numbers float64 (NaN missing), categories text
        (None missing), in model order. Raises DataValidationError naming every unreadable column."""
        cols = self.read_columns(X)
        return pd.DataFrame({k: pd.Series(v, index=X.index, dtype=v.dtype, copy=False) for k, v in cols.items()})

    def read_columns(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """`clean` as a dict of arrays (the scoring path encodes straight away)."""
        _check_columns(X, self.feature_names_)
        problems: list[Problem] = []
        out: dict[str, np.ndarray] = {}
        for rule in self.rules_:
            s = X[rule.name]
            if rule.categorical:
                out[rule.name] = category_text(s)
            elif rule.kind == "yes_no":
                out[rule.name] = _read_yes_no(s, rule, problems)
            else:
                out[rule.name] = _read_number(s, rule, problems)
        if problems:
            raise DataValidationError(problems)
        return out

    def extra_columns(self, X: pd.DataFrame) -> list[str]:
        """Columns of `X` the model does not use (ignored, and reported by the scorer)."""
        names = set(self.feature_names_)
        return [str(c) for c in X.columns if c not in names]

    def encode(self, clean: pd.DataFrame | dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """The float matrix of already-read columns (categories as level codes, NaN missing) and, per
        column, how many rows held a level never seen at fit."""
        n = len(clean) if isinstance(clean, pd.DataFrame) else len(next(iter(clean.values()), ()))
        out = np.empty((n, len(self.rules_)), dtype="float64", order="F")
        unseen: dict[str, int] = {}
        for j, rule in enumerate(self.rules_):
            values = np.asarray(clean[rule.name])
            if not rule.categorical:
                out[:, j] = values.astype("float64", copy=False)
                continue
            # Match the distinct values to the levels, then spread: cheap however many rows there are.
            seen, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
            codes = self._level_codes(rule, list(uniques))
            row_codes = np.append(codes, -1)[seen]
            col = row_codes.astype("float64")
            col[row_codes < 0] = np.nan
            n_unseen = int(((row_codes < 0) & (seen >= 0)).sum())
            if n_unseen:
                unseen[rule.name] = n_unseen
            out[:, j] = col
        return out, unseen

    def _level_codes(self, rule: ColumnRule, values: list[Any]) -> np.ndarray:
        code = {v.casefold(): i for i, v in enumerate(rule.levels)}
        other = code.get(OTHER.casefold(), -1)
        code.update({v.casefold(): other for v in rule.grouped})
        return np.asarray([code.get(str(v).casefold(), -1) for v in values], dtype=np.int64)

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix for raw feature columns `X` (model order; extra columns ignored)."""
        return self.encode(self.read_columns(X))[0]


def _check_columns(X: Any, names: list[str]) -> None:
    if not isinstance(X, pd.DataFrame):
        raise ChurnError(f"model input must be a table (pandas DataFrame), got {type(X).__name__}")
    problems: list[Problem] = []
    missing = [n for n in names if n not in X.columns]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        problems.append(Problem("model input", f"is missing {len(missing)} column(s) the model needs: {shown}"))
    dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]} & set(names))
    if dup:
        problems.append(Problem("model input", f"has duplicated column(s): {', '.join(dup)}"))
    if problems:
        raise DataValidationError(problems)
