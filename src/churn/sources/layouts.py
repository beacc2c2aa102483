"""How a table's text reads: per text number column its decimal separator and digit grouping, per text date
column day-first or month-first, decided from a sample of its values unless the table's config fixes them
(`decimal_separator`, `thousands_separator`, `day_first`, `date_format`); and which columns need no parsing
at all (`native_type`).
"""

from __future__ import annotations

import duckdb

from churn.config import TableSource
from churn.contract import CONTRACT, Column
from churn.sources.base import TableInfo, _lit, _q, _setting

_GROUPING = r"[+-]?\d{{1,3}}(?:[{t}]\d{{3}})+(?:[{d}]\d*)?"
_COMMA_EVIDENCE = (r"[+-]?\d*,(?:\d{1,2}|\d{4,})", r"[+-]?\d{1,3}(?:[. \x{00a0}']\d{3})+,\d+",
                   r"[+-]?\d{1,3}(?:\.\d{3}){2,}")
_DOT_EVIDENCE = (r"[+-]?\d*\.(?:\d{1,2}|\d{4,})(?:[eE][+-]?\d+)?", r"[+-]?\d{1,3}(?:[, \x{00a0}']\d{3})+\.\d+",
                 r"[+-]?\d{1,3}(?:,\d{3}){2,}")
_AMBIGUOUS_COMMA = r"[+-]?\d{1,3}(?:,\d{3})+"
_GROUP_CHARS = r"\d[, '\x{00a0}\x{202f}]\d"  # a digit group separator between digits
_SLASHED = r"\d{1,2}[/-]\d{1,2}[/-]\d{2,4}(?:[ T].*)?"
_DATE_PARTS = r"^(\d{1,2})[/-](\d{1,2})[/-]"
_TIMES = ("", " %H:%M", " %H:%M:%S", "T%H:%M:%S", " %H:%M:%S.%f")
SAMPLE_ROWS = 10_000  # values per column that decide its number and date layout


def _date_formats(day_first: bool) -> tuple[str, ...]:
    """strptime layouts tried after ISO 8601 (dotted dates are always day first: 31.12.2024)."""
    d = ["%d.%m.%Y", "%d.%m.%y"]
    for sep in ("/", "-"):
        d += [f"%d{sep}%m{sep}%Y"] if day_first else [f"%m{sep}%d{sep}%Y"]
    return tuple(f + t for f in d for t in _TIMES)


def _thousands_class(decimal: str, configured: str | None) -> str:
    if configured is not None:
        return configured  # one of , . space ' (or none): literal inside a character class
    return ("," if decimal == "." else ".") + " \u00a0\u202f'"


def _detect_layouts(con: duckdb.DuckDBPyConnection, info: TableInfo, src: TableSource, delimiter: str | None,
                    notices: list[str]) -> None:
    """Decide, per text number and date column, the decimal separator and day-first order from a sample."""
    spec = CONTRACT[info.name]
    aggs: list[str] = []
    plan: list[tuple[str, str, str]] = []  # (kind, our column, their column)
    for col in spec.columns:
        theirs = info.mapping.get(col.name)
        if theirs is None or theirs not in info.raw_types or native_type(col, info.raw_types[theirs]):
            continue
        t = f"TRIM(CAST({_q(theirs)} AS VARCHAR))"
        if col.type == "number" and src.decimal_separator is None:
            comma = " OR ".join(f"regexp_full_match({t}, {_lit(r)})" for r in _COMMA_EVIDENCE)
            dot = " OR ".join(f"regexp_full_match({t}, {_lit(r)})" for r in _DOT_EVIDENCE)
            amb = f"regexp_full_match({t}, {_lit(_AMBIGUOUS_COMMA)})"
            grouped = f"regexp_matches({t}, {_lit(_GROUP_CHARS)})"
            aggs += [f"count(*) FILTER (WHERE {comma})", f"count(*) FILTER (WHERE {dot})",
                     f"count(*) FILTER (WHERE {amb})", f"count(*) FILTER (WHERE {grouped})"]
            plan.append(("number", col.name, theirs))
        elif col.type in ("timestamp", "date") and not src.date_format and src.day_first is None:
            slashed = f"regexp_full_match({t}, {_lit(_SLASHED)})"
            def part(k: int, t: str = t) -> str:
                return f"TRY_CAST(regexp_extract({t}, {_lit(_DATE_PARTS)}, {k}) AS INTEGER)"

            aggs += [f"count(*) FILTER (WHERE {slashed})",
                     f"count(*) FILTER (WHERE {slashed} AND {part(1)} > 12)",
                     f"count(*) FILTER (WHERE {slashed} AND {part(2)} > 12)", "0"]
            plan.append(("date", col.name, theirs))
    found: tuple = ()
    if aggs:
        found = con.execute(f"SELECT {', '.join(aggs)} FROM (SELECT * FROM {info.raw_view} LIMIT {SAMPLE_ROWS})"
                            ).fetchone() or ()
    for i, (kind, ours, theirs) in enumerate(plan):
        a, b, c, g = found[4 * i: 4 * i + 4]
        if kind == "number":
            # A decimal comma shows as a comma not followed by exactly three digits (12,5) or as dot groups
            # before a comma (1.234,5); "1,234" alone could be either: semicolon exports are European.
            decimal = "," if (a and not b) or (c and not a and not b and delimiter == ";") else "."
            thousands = _thousands_class(decimal, src.thousands_separator)
            if decimal == "." and not g and src.thousands_separator is None:
                # Plain numbers in the sample: a straight cast, no per-value pattern match (50M-row exports).
                # A grouped value further down then shows up as "not a number" with its line.
                thousands = ""
            info.number_styles[theirs] = (decimal, thousands)
        else:
            if b and not c:
                day_first = True
            elif c and not b:
                day_first = False
            else:
                day_first = True
                if a and not b:
                    notices.append(f"{info.path}, column '{theirs}': dates like 03/04/2024 are read day first; set "
                                   f"{_setting(info.name, 'day_first')}: false if they are month first")
            info.date_formats[theirs] = _date_formats(day_first)


def native_type(col: Column, raw_type: str) -> bool:
    """Whether the file already stores the column in its contract type (so it needs no parsing)."""
    t = raw_type.upper()
    if col.type in ("timestamp", "date"):
        return t.startswith("TIMESTAMP") or t == "DATE"
    if col.type == "number":
        return any(k in t for k in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC"))
    if col.type == "bool":
        return t == "BOOLEAN"
    return t == "VARCHAR" and col.type == "text"
