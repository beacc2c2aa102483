"""The segments workbook (segments.xlsx): a Summary sheet (customers by status and by tier, contacts per
incentive, the budget, an index of the segments) and one sheet per segment, written with XlsxWriter.

Text is always written as text (a leading '=' never becomes a formula), ids as text, probabilities as %,
right-to-left text with right-to-left reading order. Identical plans give byte-identical workbooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from churn.scoring import status
from churn.scoring.plan_columns import (
    as_flag,
    is_rtl_language,
    per_distinct,
    starts_rtl,
    texts_or_none,
    tier_order,
)
from churn.scoring.summary import IncentiveResult, PlanSummary

if TYPE_CHECKING:
    from churn.scoring.segments import Segment

SUMMARY_SHEET = "Summary"

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
