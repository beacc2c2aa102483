"""Marketing segments: one contact list per (risk tier, incentive), as CSV files and one Excel workbook.

Input is the retention plan (one row per scored customer). Only customers the plan contacts are listed
(`contact` true and not in the control group). Each list holds contact columns only, never model internals
or customer value, sorted by churn probability (highest first) then customer id, so identical plans give
identical files.

Layout written by `write_segments(plan, out_dir)`::

    out_dir/segments/critical__discount_20.csv   UTF-8 with BOM (Excel shows Persian, Latvian ... right)
    out_dir/segments/high__free_month.csv
    out_dir/segments.xlsx                        "Summary" sheet, then one sheet per segment

The folder is built in a temporary sibling and swapped into place (`churn.io.atomic_dir`), the workbook is
written to a temporary file and renamed (`churn.io.atomic_path`); a failure anywhere leaves neither behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from churn.errors import ChurnError
from churn.io import atomic_dir, atomic_path

# Languages written right to left (ISO 639-1, plus a few common 639-2/3 codes).
RTL_LANGUAGES = frozenset(
    {"fa", "ar", "he", "ur", "ps", "yi", "dv", "sd", "ug", "ckb", "iw", "fas", "per", "ara"}
)

PLAN_REQUIRED = ("customer_id", "churn_probability", "risk_tier", "contact", "holdout", "offer_message")
NO_INCENTIVE = "no_incentive"
SUMMARY_SHEET = "Summary"
PROBABILITY_DECIMALS = 3

_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="305496")
_TITLE_FONT = Font(bold=True, size=14)
_SECTION_FONT = Font(bold=True, size=12)
_RTL = Alignment(horizontal="right", vertical="top", wrap_text=True, readingOrder=2)
_WRAP = Alignment(vertical="top", wrap_text=True)
_TOP = Alignment(vertical="top")
_SHEET_BAD_CHARS = re.compile(r"[\[\]:*?/\\]")


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
        base = name if max_len is None else name[: max_len - len(suffix)]
        candidate = f"{base}{suffix}"
    taken.add(candidate.casefold())
    return candidate


def sheet_title(tier: str, incentive: str) -> str:
    """A valid Excel sheet title (<= 31 chars, no []:*?/\\) for a segment, before de-duplication."""
    title = _SHEET_BAD_CHARS.sub("_", f"{tier} - {incentive}").strip("'").strip()
    return title[:31].rstrip() or "segment"


def contact_columns(plan: pd.DataFrame) -> list[str]:
    """The columns a segment file holds, in order (name and email only when the plan has them)."""
    cols = ["customer_id"]
    cols += [c for c in ("name", "email") if c in plan.columns]
    cols += ["language", "message_language", "channel", "incentive", "offer_message"]
    cols += ["reason_1", "reason_2", "reason_3", "risk_tier", "churn_probability"]
    return cols


def contact_rows(plan: pd.DataFrame) -> pd.DataFrame:
    """Contacted customers (contact and not control group) with contact columns only, sorted.

    `language` is the customer's preferred language (the message language when the plan has none);
    `message_language` is the language `offer_message` is written in (they differ when a translation
    was missing and the default language was used). Probabilities are rounded to 3 decimals.
    """
    check_columns(plan, PLAN_REQUIRED, "segments")
    contacted = plan[as_flag(plan["contact"]) & ~as_flag(plan["holdout"])]
    out = pd.DataFrame(index=contacted.index)
    out["customer_id"] = contacted["customer_id"].map(text_or_none).astype(object)
    for col in ("name", "email"):
        if col in plan.columns:
            out[col] = contacted[col].map(text_or_none).astype(object)
    msg_lang = contacted["message_language"] if "message_language" in plan.columns else None
    lang = contacted["language"] if "language" in plan.columns else msg_lang
    out["language"] = lang.map(text_or_none).astype(object) if lang is not None else None
    out["message_language"] = (
        msg_lang.map(text_or_none).astype(object) if msg_lang is not None else out["language"]
    )
    for col in ("channel", "incentive", "offer_message", "reason_1", "reason_2", "reason_3"):
        out[col] = contacted[col].map(text_or_none).astype(object) if col in plan.columns else None
    out["incentive"] = out["incentive"].fillna(NO_INCENTIVE)
    out["risk_tier"] = contacted["risk_tier"].map(text_or_none).astype(object)
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
    return out[contact_columns(plan)].reset_index(drop=True)


def build_segments(plan: pd.DataFrame) -> list[Segment]:
    """Split the contacted customers into segments, riskiest tier first, incentives alphabetically."""
    rows = contact_rows(plan)
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


# ------------------------------------------------------------------------------------ summary figures
_SUMMARY_ALIASES = {
    "incentives": ("incentives", "per_incentive", "by_incentive"),
}


def incentive_figures(summary: dict | None) -> dict[str, dict[str, float]]:
    """Per-incentive {customers, cost, expected_saved_value, expected_net_value} from a plan summary."""
    if not summary:
        return {}
    for key in _SUMMARY_ALIASES["incentives"]:
        val = summary.get(key)
        if isinstance(val, dict):
            return {str(k): dict(v) for k, v in val.items() if isinstance(v, dict)}
        if isinstance(val, list):  # list of records with a 'name' / 'incentive' key
            out = {}
            for rec in val:
                if isinstance(rec, dict) and (rec.get("name") or rec.get("incentive")):
                    out[str(rec.get("name") or rec.get("incentive"))] = dict(rec)
            return out
    return {}


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(f) else f


def _first(plan: pd.DataFrame, col: str) -> Any:
    if col not in plan.columns or plan.empty:
        return None
    vals = plan[col].dropna()
    return vals.iloc[0] if len(vals) else None


# ----------------------------------------------------------------------------------------- workbook
def _autosize(ws: Worksheet, widths: dict[int, int]) -> None:
    for idx, width in widths.items():
        ws.column_dimensions[get_column_letter(idx)].width = width


def _set(ws: Worksheet, row: int, col: int, value: Any, **style: Any) -> Any:
    """Write one cell; text is always stored as text (a leading '=' never becomes a formula)."""
    cell = ws.cell(row=row, column=col, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    for k, v in style.items():
        setattr(cell, k, v)
    return cell


def _header(ws: Worksheet, row: int, names: list[str]) -> None:
    for j, name in enumerate(names, start=1):
        _set(ws, row, j, name, font=_HEADER_FONT, fill=_HEADER_FILL)


def _write_segment_sheet(ws: Worksheet, seg: Segment) -> None:
    """One segment's rows: ids as text, probabilities as %, RTL reading order for right-to-left rows."""
    cols = list(seg.rows.columns)
    _header(ws, 1, cols)
    widths = {j: max(10, len(c) + 2) for j, c in enumerate(cols, start=1)}
    text_cols = {"name", "offer_message", "reason_1", "reason_2", "reason_3"}
    for i, rec in enumerate(seg.rows.itertuples(index=False, name=None), start=2):
        rtl_row = is_rtl_language(rec[cols.index("message_language")])
        for j, (col, value) in enumerate(zip(cols, rec, strict=True), start=1):
            value = None if value is None or (not isinstance(value, str) and pd.isna(value)) else value
            cell = _set(ws, i, j, value)
            if col == "customer_id":
                cell.number_format = "@"
            elif col == "churn_probability":
                cell.number_format = "0.0%"
            if col == "offer_message":
                cell.alignment = _RTL if rtl_row or starts_rtl(value) else _WRAP
            elif col in text_cols and starts_rtl(value):
                cell.alignment = _RTL
            else:
                cell.alignment = _TOP
            if isinstance(value, str):
                widths[j] = max(widths[j], min(len(value) + 2, 60))
    if "offer_message" in cols:
        widths[cols.index("offer_message") + 1] = 60
    _autosize(ws, widths)
    ws.freeze_panes = "B2"
    if len(seg.rows):
        ws.auto_filter.ref = f"A1:{get_column_letter(len(cols))}{len(seg.rows) + 1}"


def _write_summary_sheet(
    ws: Worksheet, plan: pd.DataFrame, segments: list[Segment], summary: dict | None
) -> None:
    """Tier sizes, contacts per incentive, budget used and expected saved value, and a segment index."""
    currency = (summary or {}).get("currency") or "EUR"
    money = f'#,##0 "{currency}"'
    r = 1
    _set(ws, r, 1, "Retention segments", font=_TITLE_FONT)
    as_of, version = _first(plan, "as_of"), _first(plan, "model_version")
    r += 1
    if as_of is not None:
        _set(ws, r, 1, "Scores as of")
        _set(ws, r, 2, str(pd.Timestamp(as_of).date()) if not isinstance(as_of, str) else as_of)
        r += 1
    if version is not None:
        _set(ws, r, 1, "Model version")
        _set(ws, r, 2, str(version))
        r += 1

    # Tier sizes
    r += 1
    _set(ws, r, 1, "Customers by risk tier", font=_SECTION_FONT)
    r += 1
    _header(ws, r, ["Risk tier", "Scored", "Contacted", "Control group", "Not contacted"])
    contact = as_flag(plan["contact"]) & ~as_flag(plan["holdout"]) if "contact" in plan else None
    holdout = as_flag(plan["holdout"]) if "holdout" in plan else None
    tiers = plan["risk_tier"].astype(object).map(text_or_none)
    for tier in tier_order(plan["risk_tier"], plan.get("churn_probability")):
        r += 1
        in_tier = tiers == tier
        n = int(in_tier.sum())
        n_contact = int((in_tier & contact).sum()) if contact is not None else 0
        n_hold = int((in_tier & holdout).sum()) if holdout is not None else 0
        for j, v in enumerate([tier, n, n_contact, n_hold, n - n_contact - n_hold], start=1):
            _set(ws, r, j, v, number_format="#,##0" if j > 1 else "General")
    r += 1
    _set(ws, r, 1, "Total", font=Font(bold=True))
    _set(ws, r, 2, len(plan), font=Font(bold=True), number_format="#,##0")

    # Contacts per incentive
    figures = incentive_figures(summary)
    r += 2
    _set(ws, r, 1, "Contacts by incentive", font=_SECTION_FONT)
    r += 1
    _header(ws, r, ["Incentive", "Customers", "Cost", "Expected saved value", "Expected net value"])
    counts: dict[str, int] = {}
    for seg in segments:
        counts[seg.incentive] = counts.get(seg.incentive, 0) + len(seg.rows)
    for name in sorted(set(counts) | set(figures)):
        fig = figures.get(name, {})
        r += 1
        n = counts.get(name, int(_num(fig.get("customers")) or 0))
        vals = [
            name,
            n,
            _num(fig.get("cost")),
            _num(fig.get("expected_saved_value")),
            _num(fig.get("expected_net_value")),
        ]
        for j, v in enumerate(vals, start=1):
            _set(ws, r, j, v, number_format="#,##0" if j == 2 else money if j > 2 else "General")

    # Budget
    budget = _num((summary or {}).get("budget"))
    used = _num((summary or {}).get("budget_used"))
    if used is None and "incentive_cost" in plan.columns and contact is not None:
        used = float(pd.to_numeric(plan.loc[contact, "incentive_cost"], errors="coerce").sum())
    saved_vals = [_num(f.get("expected_saved_value")) for f in figures.values()]
    saved = sum(v for v in saved_vals if v is not None) if any(v is not None for v in saved_vals) else None
    r += 2
    _set(ws, r, 1, "Budget", font=_SECTION_FONT)
    for label, v in [
        ("Budget", budget),
        ("Budget used", used),
        ("Budget left", budget - used if budget is not None and used is not None else None),
        ("Expected saved value", saved),
    ]:
        r += 1
        _set(ws, r, 1, label)
        _set(ws, r, 2, v if v is not None else "not given", number_format=money)

    # Segment index with links to the sheets
    r += 2
    _set(ws, r, 1, "Segments", font=_SECTION_FONT)
    r += 1
    _header(ws, r, ["Risk tier", "Incentive", "Customers", "CSV file", "Sheet"])
    for seg in segments:
        r += 1
        for j, v in enumerate([seg.tier, seg.incentive, len(seg.rows), f"segments/{seg.file_name}"], start=1):
            _set(ws, r, j, v, number_format="#,##0" if j == 3 else "General")
        link = _set(ws, r, 5, seg.sheet_name, font=Font(color="0563C1", underline="single"))
        link.hyperlink = f"#'{seg.sheet_name}'!A1"
    _autosize(ws, {1: 24, 2: 22, 3: 14, 4: 36, 5: 30})


def build_workbook(plan: pd.DataFrame, segments: list[Segment], summary: dict | None = None) -> Workbook:
    """The segments workbook: a Summary sheet then one sheet per segment, in segment order."""
    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    _write_summary_sheet(ws, plan, segments, summary)
    for seg in segments:
        _write_segment_sheet(wb.create_sheet(seg.sheet_name), seg)
    wb.properties.creator = "churn"
    return wb


# ---------------------------------------------------------------------------------------------- I/O
def _write_segment_csv(rows: pd.DataFrame, path: Path) -> None:
    """One segment as UTF-8 CSV with a BOM (so Excel detects UTF-8 and shows non-Latin text)."""
    rows.to_csv(path, index=False, encoding="utf-8-sig")


def write_segments(
    plan: pd.DataFrame, out_dir: Path, *, overwrite: bool = False, summary: dict | None = None
) -> list[Path]:
    """`out_dir/segments/` with one CSV per (risk_tier, incentive) among contacted customers, plus `out_dir/segments.xlsx`.

    Returns the CSV paths (riskiest tier first) followed by the workbook path. Refuses to replace an
    existing folder or workbook unless `overwrite=True`. `summary` (the retention plan summary, optional)
    adds budget, cost and expected saved value per incentive to the workbook's Summary sheet. On any error
    nothing new is left on disk (not even `out_dir`, when this call created it).
    """
    out_dir = Path(out_dir)
    seg_dir, xlsx = out_dir / "segments", out_dir / "segments.xlsx"
    # Check both targets before doing any work, so a refusal never follows a half-done job.
    for target in (seg_dir, xlsx):
        if target.exists() and not overwrite:
            raise ChurnError(f"{target} already exists; pass --overwrite to replace it")
    segments = build_segments(plan)
    workbook = build_workbook(plan, segments, summary)
    created_out_dir = not out_dir.exists()
    try:
        # Exit order: the workbook is renamed into place, then the folder is swapped in.
        with atomic_dir(seg_dir, overwrite) as tmp_dir, atomic_path(xlsx, overwrite) as tmp_xlsx:
            for seg in segments:
                _write_segment_csv(seg.rows, tmp_dir / seg.file_name)
            workbook.save(tmp_xlsx)
    except BaseException:
        if created_out_dir:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: never removes anything that was there before
        raise
    return [seg_dir / seg.file_name for seg in segments] + [xlsx]
