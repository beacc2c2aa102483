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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from churn.errors import ChurnError
from churn.io import atomic_dir, atomic_path
from churn.scoring import status
from churn.scoring.plan_columns import (  # noqa: F401 - re-exported: imported from here by tests and callers
    NO_INCENTIVE,
    RTL_LANGUAGES,
    as_flag,
    check_columns,
    is_rtl_language,
    per_distinct,
    starts_rtl,
    text_or_none,
    texts_or_none,
    tier_order,
)
from churn.scoring.summary import PlanSummary
from churn.scoring.workbook import SUMMARY_SHEET, write_workbook

PLAN_REQUIRED = ("customer_id", "churn_probability", "risk_tier", "contact", "holdout", "offer_message")
# Customer attributes a segment carries unless configured otherwise (`incentives.contact_columns`).
DEFAULT_CONTACT = ("name", "email")
WIN_BACK_FILE = "win_back.csv"
WIN_BACK_SHEET = "Win-back"
PROBABILITY_DECIMALS = 3
_SHEET_BAD_CHARS = re.compile(r"[\[\]:*?/\\]")
_SHEET_EDGES = re.compile(r"^[\s']+|[\s']+$")  # Excel refuses a sheet name that starts or ends with '


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
