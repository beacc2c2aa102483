"""Marketing segments: one contact list per (risk tier, incentive), as CSV files and one Excel workbook.

Input is the retention plan (one row per scored customer). Only customers the plan contacts are listed
(`contact` true and not in the control group). Each list holds the id, the configured contact columns
(`incentives.contact_columns`, default name and email) and the campaign's columns (language, channel, offer,
reasons, tier, probability), never other customer attributes, model internals or customer value, sorted
by churn probability (highest first) then customer id, so identical plans give identical files.

Layout written by `write_segments(plan, out_dir)`::

    out_dir/segments/critical__discount_20.csv   UTF-8 with BOM (Excel shows Persian, Latvian ... right)
    out_dir/segments/high__free_month.csv
    out_dir/segments/win_back.csv                lapsed customers who may be contacted (non-contractual)
    out_dir/segments.xlsx                        "Summary" sheet, then one sheet per segment

The win-back list holds the plan's `win_back` rows: lapsed customers (no recent activity, so not scored)
whom the contact rules allow to be contacted (consent given, not excluded, not in cool-down), most recently
active first. It is written whenever the plan has lapsed customers, even when none may be contacted.

The folder is built in a temporary sibling and swapped into place (`churn.io.atomic_dir`), the workbook is
written to a temporary file and renamed (`churn.io.atomic_path`); a failure anywhere leaves neither behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from churn.errors import ChurnError
from churn.io import atomic_dir, atomic_path
from churn.scoring import status
from churn.scoring.summary import IncentiveResult, PlanSummary

# Languages written right to left (ISO 639-1, plus a few common 639-2/3 codes).
RTL_LANGUAGES = frozenset(
    {"fa", "ar", "he", "ur", "ps", "yi", "dv", "sd", "ug", "ckb", "iw", "fas", "per", "ara"}
)

PLAN_REQUIRED = ("customer_id", "churn_probability", "risk_tier", "contact", "holdout", "offer_message")
# Customer attributes a segment carries unless configured otherwise (`incentives.contact_columns`).
DEFAULT_CONTACT = ("name", "email")
NO_INCENTIVE = "no_incentive"
WIN_BACK_FILE = "win_back.csv"
WIN_BACK_SHEET = "Win-back"
SUMMARY_SHEET = "Summary"
PROBABILITY_DECIMALS = 3

# Cell styles as XlsxWriter format properties, combined per cell by `_Styles`.
_HEADER = {"bold": True, "font_color": "#FFFFFF", "pattern": 1, "bg_color": "#305496"}
_TITLE = {"bold": True, "font_size": 14}
_SECTION = {"bold": True, "font_size": 12}
_BOLD = {"bold": True}
_LINK = {"font_color": "#0563C1", "underline": 1}
_RTL = {"align": "right", "valign": "top", "text_wrap": True, "reading_order": 2}
_WRAP = {"valign": "top", "text_wrap": True}
_TOP = {"valign": "top"}
_AS_TEXT = {"num_format": "@"}
_PERCENT = {"num_format": "0.0%"}
_COUNT = {"num_format": "#,##0"}
_TEXT_COLUMNS = frozenset({"name", "offer_message", "reason_1", "reason_2", "reason_3"})
_DIGIT_PX = 7  # width of a digit in Calibri 11 (the default font), in pixels
# The workbook's document date, fixed so that its bytes never depend on when it was written.
_CREATED = datetime(1980, 1, 1, tzinfo=UTC)
_SHEET_BAD_CHARS = re.compile(r"[\[\]:*?/\\]")
_SHEET_EDGES = re.compile(r"^[\s']+|[\s']+$")  # Excel refuses a sheet name that starts or ends with '


# ------------------------------------------------------------------------------------- shared helpers
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


# ------------------------------------------------------------------------------------ pure: segments
@dataclass(frozen=True)
class Segment:
    """One contact list: a risk tier and an incentive, with its file and sheet names and its rows."""

    tier: str
    incentive: str
    file_name: str
    sheet_name: str
    rows: pd.DataFrame  # contact columns only, sorted


def slug(text: str, max_len: int = 60) -> str:
    """A safe, readable file-name part: 'Discount 20%' -> 'discount_20'; non-Latin text gets a stable code."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    s = re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()[:max_len].strip("_")
    if not s:
        s = "u" + hashlib.sha1(str(text).encode("utf-8")).hexdigest()[:8]
    return s


def _unique(name: str, taken: set[str], max_len: int | None = None, sep: str = "_") -> str:
    """`name`, or `name_2`, `name_3` ... (trimmed to `max_len`) so that it is not in `taken` (case-blind)."""
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        suffix = f"{sep}{n}"
        base = name if max_len is None else _clip_utf16(name, max_len - len(suffix))
        candidate = f"{base}{suffix}"
    taken.add(candidate.casefold())
    return candidate


def _clip_utf16(text: str, max_len: int) -> str:
    """`text` cut to at most `max_len` UTF-16 units: Excel counts sheet-name length so (an emoji is 2)."""
    text = text[:max_len]
    while len(text.encode("utf-16-le")) > 2 * max_len:
        text = text[:-1]
    return text


def sheet_title(tier: str, incentive: str) -> str:
    """A valid Excel sheet title for a segment (<= 31 UTF-16 units, no []:*?/\\, no ' at either end)."""
    title = _SHEET_EDGES.sub("", _SHEET_BAD_CHARS.sub("_", f"{tier} - {incentive}"))
    return _SHEET_EDGES.sub("", _clip_utf16(title, 31)) or "segment"


def contact_columns(plan: pd.DataFrame, contact: Sequence[str] = DEFAULT_CONTACT) -> list[str]:
    """The columns a segment file holds, in order: the id, the configured `contact` columns the plan has
    (name and email by default), then the campaign's own columns. No other customer attribute."""
    cols = ["customer_id"]
    cols += [c for c in contact if c in plan.columns]
    cols += ["language", "message_language", "channel", "incentive", "offer_message"]
    cols += ["reason_1", "reason_2", "reason_3", "risk_tier", "churn_probability"]
    return cols


def contact_rows(plan: pd.DataFrame, contact: Sequence[str] = DEFAULT_CONTACT) -> pd.DataFrame:
    """Contacted customers (contact and not control group) with contact columns only, sorted.

    `language` is the customer's preferred language (the message language when the plan has none);
    `message_language` is the language `offer_message` is written in (they differ when a translation
    was missing and the default language was used). Probabilities are rounded to 3 decimals.
    """
    check_columns(plan, PLAN_REQUIRED, "segments")
    contacted = plan[as_flag(plan["contact"]) & ~as_flag(plan["holdout"])]
    out = pd.DataFrame(index=contacted.index)
    out["customer_id"] = texts_or_none(contacted["customer_id"]).astype(object)
    for col in contact:
        if col in plan.columns:
            out[col] = texts_or_none(contacted[col]).astype(object)
    msg_lang = contacted["message_language"] if "message_language" in plan.columns else None
    lang = contacted["language"] if "language" in plan.columns else msg_lang
    out["language"] = texts_or_none(lang).astype(object) if lang is not None else None
    out["message_language"] = (
        texts_or_none(msg_lang).astype(object) if msg_lang is not None else out["language"]
    )
    for col in ("channel", "incentive", "offer_message", "reason_1", "reason_2", "reason_3"):
        out[col] = texts_or_none(contacted[col]).astype(object) if col in plan.columns else None
    out["incentive"] = out["incentive"].fillna(NO_INCENTIVE)
    out["risk_tier"] = texts_or_none(contacted["risk_tier"]).astype(object)
    prob = pd.to_numeric(contacted["churn_probability"], errors="coerce")
    if out["customer_id"].isna().any():
        bad = contacted.index[out["customer_id"].isna()][:5].tolist()
        raise ChurnError(f"segments: column 'customer_id' is empty for contacted rows (row index {bad})")
    if out["risk_tier"].isna().any():
        bad = out.loc[out["risk_tier"].isna(), "customer_id"].head(5).tolist()
        raise ChurnError(f"segments: column 'risk_tier' is empty for contacted customers, e.g. {bad}")
    out["_p"] = prob.astype(float)
    out = out.sort_values(
        ["_p", "customer_id"], ascending=[False, True], kind="mergesort", na_position="last"
    )
    out["churn_probability"] = out.pop("_p").round(PROBABILITY_DECIMALS)
    return out[contact_columns(plan, contact)].reset_index(drop=True)


def build_segments(plan: pd.DataFrame, contact: Sequence[str] = DEFAULT_CONTACT) -> list[Segment]:
    """Split the contacted customers into segments, riskiest tier first, incentives alphabetically; each
    row carries the id, the `contact` columns and the campaign's columns (`contact_columns`)."""
    rows = contact_rows(plan, contact)
    order = {t: i for i, t in enumerate(tier_order(plan["risk_tier"], plan["churn_probability"]))}
    keys = sorted(
        {(t, i) for t, i in zip(rows["risk_tier"], rows["incentive"], strict=True)},
        key=lambda k: (order.get(k[0], len(order)), k[0], k[1]),
    )
    files: set[str] = set()
    sheets: set[str] = {SUMMARY_SHEET.casefold()}
    segments = []
    for tier, incentive in keys:
        part = rows[(rows["risk_tier"] == tier) & (rows["incentive"] == incentive)].reset_index(drop=True)
        stem = _unique(f"{slug(tier)}__{slug(incentive)}", files)
        sheet = _unique(sheet_title(tier, incentive), sheets, max_len=31, sep=" ")
        segments.append(Segment(tier, incentive, f"{stem}.csv", sheet, part))
    return segments


def win_back_rows(plan: pd.DataFrame, contact: Sequence[str] = DEFAULT_CONTACT) -> pd.DataFrame | None:
    """The win-back list (id, the `contact` columns, language, channel and last activity date), most
    recently active first, then by id; None when the plan has no lapsed customer."""
    if "win_back" not in plan.columns or "status" not in plan.columns:
        return None
    if not (plan["status"].astype(object) == status.LAPSED).any():
        return None
    listed = plan[as_flag(plan["win_back"])]
    out = pd.DataFrame({"customer_id": texts_or_none(listed["customer_id"]).astype(object)})
    for col in (*contact, "language", "channel"):
        if col in plan.columns and col not in out.columns:
            out[col] = texts_or_none(listed[col]).astype(object)
    last = (pd.to_datetime(listed["last_activity_at"]) if "last_activity_at" in plan.columns
            else pd.Series(pd.NaT, index=listed.index))
    out["_t"] = last
    out = out.sort_values(["_t", "customer_id"], ascending=[False, True], kind="mergesort", na_position="last")
    out["last_activity"] = out.pop("_t").dt.strftime("%Y-%m-%d").astype(object)
    return out.reset_index(drop=True)


def win_back_segment(plan: pd.DataFrame, contact: Sequence[str] = DEFAULT_CONTACT) -> Segment | None:
    """The win-back list as a segment (its own file and sheet), or None."""
    rows = win_back_rows(plan, contact)
    if rows is None:
        return None
    return Segment(status.LAPSED, "win-back", WIN_BACK_FILE, WIN_BACK_SHEET, rows)


def _first(plan: pd.DataFrame, col: str) -> Any:
    if col not in plan.columns or plan.empty:
        return None
    vals = plan[col].dropna()
    return vals.iloc[0] if len(vals) else None


# ----------------------------------------------------------------------------------------- workbook
class _Styles:
    """The workbook's cell formats, one per distinct set of properties (shared by all cells that use it)."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self._workbook = workbook
        self._made: dict[tuple[tuple[str, Any], ...], Format] = {}

    def __call__(self, *parts: dict[str, Any]) -> Format:
        """The format with the properties of all `parts` (later parts win)."""
        props = {k: v for part in parts for k, v in part.items()}
        key = tuple(sorted(props.items()))
        if key not in self._made:
            self._made[key] = self._workbook.add_format(props)
        return self._made[key]


def _write(ws: Worksheet, row: int, col: int, value: Any, fmt: Format | None = None) -> None:
    """Write one cell: text always as text (a leading '=' never becomes a formula), missing as blank."""
    if isinstance(value, str):
        ws.write_string(row, col, value, fmt)
    elif value is None or pd.isna(value):
        ws.write_blank(row, col, None, fmt)  # with a format the empty cell keeps its alignment
    else:
        ws.write_number(row, col, value, fmt)


def _write_row(
    ws: Worksheet, row: int, values: Iterable[Any], fmt: Format | None = None, col: int = 0
) -> None:
    for j, value in enumerate(values, start=col):
        _write(ws, row, j, value, fmt)


def _set_widths(ws: Worksheet, widths: Iterable[int]) -> None:
    # Set in pixels because XlsxWriter stores pixels / 7, i.e. exactly `width` characters as openpyxl
    # did; set_column would add 5 px of cell padding on top.
    for j, width in enumerate(widths):
        ws.set_column_pixels(j, j, width * _DIGIT_PX)


def _column_formats(rows: pd.DataFrame, col: str, styles: _Styles) -> list[Format]:
    """Each cell's format in one column: ids as text, probabilities as %, right-to-left text read RTL."""
    if col == "customer_id":
        return [styles(_TOP, _AS_TEXT)] * len(rows)
    if col == "churn_probability":
        return [styles(_TOP, _PERCENT)] * len(rows)
    if col not in _TEXT_COLUMNS:
        return [styles(_TOP)] * len(rows)
    rtl = per_distinct(rows[col].astype(object), starts_rtl, False, bool)
    plain = styles(_TOP)
    if col == "offer_message":  # the message follows its language, even when it opens with a Latin name
        rtl |= per_distinct(rows["message_language"].astype(object), is_rtl_language, False, bool)
        plain = styles(_WRAP)
    right_to_left = styles(_RTL)
    return [right_to_left if f else plain for f in rtl]


def _column_widths(rows: pd.DataFrame) -> list[int]:
    """Header or longest text + 2 characters, between 10 and 60 (a longer header wins); offer_message 60."""
    widths = []
    for col in rows.columns:
        longest = max((len(v) for v in rows[col] if isinstance(v, str)), default=0)
        widths.append(60 if col == "offer_message" else max(10, len(col) + 2, min(longest + 2, 60)))
    return widths


def _write_segment_sheet(ws: Worksheet, seg: Segment, styles: _Styles) -> None:
    """One segment's rows: ids as text, probabilities as %, RTL reading order for right-to-left rows."""
    cols = list(seg.rows.columns)
    _write_row(ws, 0, cols, styles(_HEADER))
    formats = zip(*(_column_formats(seg.rows, col, styles) for col in cols), strict=True)
    records = seg.rows.itertuples(index=False, name=None)
    for i, (values, fmts) in enumerate(zip(records, formats, strict=True), start=1):
        for j, (value, fmt) in enumerate(zip(values, fmts, strict=True)):
            _write(ws, i, j, value, fmt)
    _set_widths(ws, _column_widths(seg.rows))
    ws.freeze_panes(1, 1)
    if len(seg.rows):
        ws.autofilter(0, 0, len(seg.rows), len(cols) - 1)


def _write_heading(ws: Worksheet, plan: pd.DataFrame, styles: _Styles) -> int:
    """Title, score date and model version; returns the next free row."""
    _write(ws, 0, 0, "Retention segments", styles(_TITLE))
    r = 1
    as_of, version = _first(plan, "as_of"), _first(plan, "model_version")
    if as_of is not None:
        _write_row(
            ws, r, ["Scores as of", as_of if isinstance(as_of, str) else str(pd.Timestamp(as_of).date())]
        )
        r += 1
    if version is not None:
        _write_row(ws, r, ["Model version", str(version)])
        r += 1
    return r


def _write_tier_table(
    ws: Worksheet, r: int, plan: pd.DataFrame, contact: pd.Series | None, styles: _Styles
) -> int:
    """Customer counts per risk tier from row `r`; returns the next free row."""
    _write(ws, r, 0, "Customers by risk tier", styles(_SECTION))
    _write_row(
        ws, r + 1, ["Risk tier", "Scored", "Contacted", "Control group", "Not contacted"], styles(_HEADER)
    )
    r += 2
    holdout = as_flag(plan["holdout"]) if "holdout" in plan else None
    tiers = texts_or_none(plan["risk_tier"])
    for tier in tier_order(plan["risk_tier"], plan.get("churn_probability")):
        in_tier = tiers == tier
        n = int(in_tier.sum())
        n_contact = int((in_tier & contact).sum()) if contact is not None else 0
        n_hold = int((in_tier & holdout).sum()) if holdout is not None else 0
        _write(ws, r, 0, tier)
        _write_row(ws, r, [n, n_contact, n_hold, n - n_contact - n_hold], styles(_COUNT), col=1)
        r += 1
    _write(ws, r, 0, "Total", styles(_BOLD))
    _write(ws, r, 1, int(tiers.notna().sum()), styles(_BOLD, _COUNT))
    return r + 1


def _write_status_table(ws: Worksheet, r: int, plan: pd.DataFrame, styles: _Styles) -> int:
    """Customers by status (scored, or why not) from row `r`; returns the next free row."""
    _write(ws, r, 0, "Customers by status", styles(_SECTION))
    _write_row(ws, r + 1, ["Status", "Customers", "Meaning"], styles(_HEADER))
    r += 2
    counts = status.status_counts(plan["status"]) if "status" in plan.columns else {status.SCORED: len(plan)}
    for name, n in counts.items():
        _write(ws, r, 0, name)
        _write(ws, r, 1, n, styles(_COUNT))
        _write(ws, r, 2, status.STATUS_TEXT.get(name, ""))
        r += 1
    _write(ws, r, 0, "Total", styles(_BOLD))
    _write(ws, r, 1, len(plan), styles(_BOLD, _COUNT))
    return r + 1


def _write_incentive_table(
    ws: Worksheet, r: int, segments: list[Segment], figures: dict[str, IncentiveResult], money: Format,
    styles: _Styles,
) -> int:
    """Customers, cost and expected values per incentive from row `r`; returns the next free row."""
    _write(ws, r, 0, "Contacts by incentive", styles(_SECTION))
    header = ["Incentive", "Customers", "Cost", "Expected saved value", "Expected net value"]
    _write_row(ws, r + 1, header, styles(_HEADER))
    r += 2
    counts: dict[str, int] = {}
    for seg in segments:
        counts[seg.incentive] = counts.get(seg.incentive, 0) + len(seg.rows)
    for name in sorted(set(counts) | set(figures)):
        fig = figures.get(name)
        _write(ws, r, 0, name)
        _write(ws, r, 1, counts.get(name, fig.customers if fig else 0), styles(_COUNT))
        values = [fig.cost, fig.expected_saved_value, fig.expected_net_value] if fig else [None] * 3
        _write_row(ws, r, values, money, col=2)
        r += 1
    return r


def _write_budget(
    ws: Worksheet,
    r: int,
    plan: pd.DataFrame,
    summary: PlanSummary | None,
    contact: pd.Series | None,
    figures: dict[str, IncentiveResult],
    money: Format,
    styles: _Styles,
) -> int:
    """Budget, budget used and left, and expected saved value from row `r`; returns the next free row."""
    budget = summary.budget if summary else None
    used = summary.budget_used if summary else None
    if used is None and "incentive_cost" in plan.columns and contact is not None:
        used = float(pd.to_numeric(plan.loc[contact, "incentive_cost"], errors="coerce").sum())
    saved = summary.expected_saved_value if summary else None
    _write(ws, r, 0, "Budget", styles(_SECTION))
    for label, v in [
        ("Budget", budget),
        ("Budget used", used),
        ("Budget left", budget - used if budget is not None and used is not None else None),
        ("Expected saved value", saved),
    ]:
        r += 1
        _write(ws, r, 0, label)
        _write(ws, r, 1, v if v is not None else "not given", money)
    return r + 1


def _write_segment_index(ws: Worksheet, r: int, segments: list[Segment], styles: _Styles) -> None:
    """One row per segment from row `r`, each with a link to its sheet."""
    _write(ws, r, 0, "Segments", styles(_SECTION))
    _write_row(ws, r + 1, ["Risk tier", "Incentive", "Customers", "CSV file", "Sheet"], styles(_HEADER))
    for i, seg in enumerate(segments, start=r + 2):
        _write_row(ws, i, [seg.tier, seg.incentive])
        _write(ws, i, 2, len(seg.rows), styles(_COUNT))
        _write(ws, i, 3, f"segments/{seg.file_name}")
        quoted = seg.sheet_name.replace("'", "''")  # Excel's escape for ' inside a quoted sheet name
        ws.write_url(i, 4, f"internal:'{quoted}'!A1", styles(_LINK), string=seg.sheet_name)


def _write_summary_sheet(
    ws: Worksheet, plan: pd.DataFrame, segments: list[Segment], summary: PlanSummary | None, styles: _Styles,
    extra: Sequence[Segment] = (),
) -> None:
    """Customers by status, tier sizes, contacts per incentive, budget used and expected saved value, and
    an index of the segments (retention segments, then `extra` lists such as win-back)."""
    money = styles({"num_format": f'#,##0 "{summary.currency if summary else "EUR"}"'})
    contact = as_flag(plan["contact"]) & ~as_flag(plan["holdout"]) if "contact" in plan else None
    figures = summary.incentives if summary else {}
    # Each block starts one empty row below the previous one.
    r = _write_heading(ws, plan, styles)
    r = _write_status_table(ws, r + 1, plan, styles)
    r = _write_tier_table(ws, r + 1, plan, contact, styles)
    r = _write_incentive_table(ws, r + 1, segments, figures, money, styles)
    r = _write_budget(ws, r + 1, plan, summary, contact, figures, money, styles)
    _write_segment_index(ws, r + 1, [*segments, *extra], styles)
    _set_widths(ws, [24, 22, 14, 36, 30])


def write_workbook(
    path: Path, plan: pd.DataFrame, segments: list[Segment], summary: PlanSummary | None = None,
    extra: Sequence[Segment] = (),
) -> None:
    """Write the segments workbook to `path`: a Summary sheet then one sheet per segment, in segment order,
    then one per `extra` list (win-back)."""
    # in_memory: no temporary files elsewhere, and zip entries get a fixed date; with the fixed document
    # date, identical plans give byte-identical workbooks. Nothing touches `path` before close().
    workbook = xlsxwriter.Workbook(str(path), {"in_memory": True})
    workbook.set_properties({"author": "churn", "created": _CREATED})
    styles = _Styles(workbook)
    _write_summary_sheet(workbook.add_worksheet(SUMMARY_SHEET), plan, segments, summary, styles, extra)
    for seg in [*segments, *extra]:
        _write_segment_sheet(workbook.add_worksheet(seg.sheet_name), seg, styles)
    workbook.close()


# ---------------------------------------------------------------------------------------------- I/O
def _write_segment_csv(rows: pd.DataFrame, path: Path) -> None:
    """One segment as UTF-8 CSV with a BOM (so Excel detects UTF-8 and shows non-Latin text)."""
    rows.to_csv(path, index=False, encoding="utf-8-sig")


def write_segments(
    plan: pd.DataFrame, out_dir: Path, *, overwrite: bool = False, summary: PlanSummary | None = None,
    contact: Sequence[str] = DEFAULT_CONTACT,
) -> list[Path]:
    """`out_dir/segments/` with one CSV per (risk_tier, incentive) among contacted customers, plus `out_dir/segments.xlsx`.

    Returns the CSV paths (riskiest tier first, then win_back.csv) and the workbook path. Refuses to replace an
    existing folder or workbook unless `overwrite=True`. `summary` (the retention plan summary, optional)
    adds budget, cost and expected saved value per incentive to the workbook's Summary sheet. `contact`: the
    customer columns the lists carry (`incentives.contact_columns`). On any error
    nothing new is left on disk (not even `out_dir`, when this call created it).
    """
    out_dir = Path(out_dir)
    seg_dir, xlsx = out_dir / "segments", out_dir / "segments.xlsx"
    # Check both targets before doing any work, so a refusal never follows a half-done job.
    for target in (seg_dir, xlsx):
        if target.exists() and not overwrite:
            raise ChurnError(f"{target} already exists; pass --overwrite to replace it")
    segments = build_segments(plan, contact)
    win_back = win_back_segment(plan, contact)
    extra = [win_back] if win_back is not None else []
    created_out_dir = not out_dir.exists()
    try:
        # Exit order: the workbook is renamed into place, then the folder is swapped in.
        with atomic_dir(seg_dir, overwrite) as tmp_dir, atomic_path(xlsx, overwrite) as tmp_xlsx:
            for seg in [*segments, *extra]:
                _write_segment_csv(seg.rows, tmp_dir / seg.file_name)
            write_workbook(tmp_xlsx, plan, segments, summary, extra)
    except BaseException:
        if created_out_dir:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: never removes anything that was there before
        raise
    return [seg_dir / seg.file_name for seg in [*segments, *extra]] + [xlsx]
