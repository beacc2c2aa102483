"""The typed relations: each user column turned into its contract type in SQL (`typed_expr`: NULL where a
value cannot be parsed; validation has reported those first), one relation per table (`register_typed`), and
a customers table derived from activity when the source has none.
"""

from __future__ import annotations

import re

from churn.config import Config, TableSource
from churn.contract import ACTIVITY, CONTRACT, Column
from churn.ids import id_sql
from churn.sources.base import DataSource, TableInfo, _lit, _q
from churn.sources.layouts import _GROUPING, _date_formats, _thousands_class, native_type
from churn.yesno import FALSE_WORDS, TRUE_WORDS


def typed_expr(col: Column, raw: str, raw_type: str, src: TableSource, timezone: str, clean_id: bool = False,
               info: TableInfo | None = None) -> str:
    """SQL turning the user's column `raw` into the contract type (NULL where it cannot be parsed).

    `info` carries the layouts decided for the table's text columns (decimal comma, day-first dates); the
    config's explicit settings win over them."""
    r = _q(raw)
    t = raw_type.upper()
    if col.type == "id" and clean_id and t == "VARCHAR":
        return r
    if col.type == "id":
        return id_sql(r, t)
    if col.type in ("timestamp", "date"):
        if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
            return f"timezone('UTC', {r})"
        if native_type(col, raw_type):
            ts = f"CAST({r} AS TIMESTAMP)"
            return ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        text = f"NULLIF(TRIM(CAST({r} AS VARCHAR)), '')"
        if src.date_format:
            ts = f"try_strptime({text}, {_lit(src.date_format)})"
            return ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        # TIMESTAMPTZ honours offsets in the text and reads naive text in the session time zone.
        iso = f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"
        formats = (info.date_formats.get(raw) if info else None) or _date_formats(
            True if src.day_first is None else src.day_first)
        # Other layouts (31.12.2024, 12/31/2024 10:00) only where ISO does not parse: a column may mix them.
        ts = f"try_strptime({text}, [{', '.join(_lit(f) for f in formats)}])"
        local = ts if timezone == "UTC" else f"timezone('UTC', timezone({_lit(timezone)}, {ts}))"
        return f"coalesce({iso}, {local})"
    if col.type == "number":
        if native_type(col, raw_type):
            return f"CAST({r} AS DOUBLE)"
        text = f"NULLIF(TRIM(CAST({r} AS VARCHAR)), '')"
        decimal, thousands = (info.number_styles.get(raw) if info else None) or (
            src.decimal_separator or ".", _thousands_class(src.decimal_separator or ".", src.thousands_separator))
        if not thousands and decimal == ".":
            return f"TRY_CAST({text} AS DOUBLE)"
        # Grouped digits (1.234.567,5 or 1,234.5 or 1 234,5) lose their grouping; the decimal becomes a dot.
        grouped = _GROUPING.format(t=thousands, d=re.escape(decimal)) if thousands else None
        plain = text if not grouped else (
            f"CASE WHEN regexp_full_match({text}, {_lit(grouped)}) "
            f"THEN regexp_replace({text}, {_lit('[' + thousands + ']')}, '', 'g') ELSE {text} END")
        if decimal == ",":
            # A comma decimal (12,5); a plain dot decimal (12.5) in the same column is still unambiguous.
            plain = f"replace({plain}, ',', '.')"
        return f"TRY_CAST({plain} AS DOUBLE)"
    if col.type == "bool":
        if native_type(col, raw_type):
            return r
        low = f"LOWER(TRIM(CAST({r} AS VARCHAR)))"
        trues = ", ".join(_lit(w) for w in sorted(TRUE_WORDS))
        falses = ", ".join(_lit(w) for w in sorted(FALSE_WORDS))
        return f"CASE WHEN {low} IN ({trues}) THEN TRUE WHEN {low} IN ({falses}) THEN FALSE ELSE NULL END"
    return f"NULLIF(CAST({r} AS VARCHAR), '')"


def register_typed(ds: DataSource, config: Config) -> None:
    """Create the canonical typed relations (`customers`, `events`, ...) once validation has passed."""
    con = ds.con
    for name, info in ds.tables.items():
        spec = CONTRACT[name]
        src = config.sources.tables.get(name, TableSource())
        select = []
        for col in spec.columns:
            if col.name in info.mapping:
                theirs = info.mapping[col.name]
                expr = typed_expr(col, theirs, info.raw_types[theirs], src, ds.timezone, clean_id=info.clean_ids,
                                  info=info)
                select.append(f"{expr} AS {_q(col.name)}")
        if spec.extra_columns:
            used = set(info.mapping.values())
            for theirs in info.raw_types:
                if theirs not in used and theirs.lower() not in {c.name for c in spec.columns}:
                    select.append(f"{_q(theirs)} AS {_q(theirs)}")
        # No row filter: validation has rejected every empty or unparseable required value, time columns
        # included. (A `WHERE timestamp IS NOT NULL` here once filtered on a raw column that happened to
        # have our name instead of the mapped one, and made every scan of events read its timestamps.)
        body = f"SELECT {', '.join(select)} FROM {info.raw_view}"
        # CSVs are parsed once into a table; Parquet stays a view (columnar scans are cheap).
        kind = "VIEW" if info.columnar else "TEMP TABLE"
        con.execute(f"CREATE {kind} {name} AS {body}")
    if "customers" not in ds.tables:
        _derive_customers(ds)


def _derive_customers(ds: DataSource) -> None:
    """A bare activity log has no customer table: signup is the first activity of each customer."""
    parts = []
    for name in ACTIVITY:
        if name in ds.tables:
            parts.append(f"SELECT customer_id, {_q(CONTRACT[name].time_column or '')} AS ts FROM {name}")
    union = " UNION ALL ".join(parts)
    ds.con.execute(
        "CREATE TEMP TABLE customers AS SELECT customer_id, MIN(ts) AS signup_date, "
        f"CAST(NULL AS TIMESTAMP) AS cancel_date FROM ({union}) GROUP BY customer_id"
    )
    ds.derived_customers = True
    ds.notices.append("no 'customers' table: customers derived from activity (signup = first activity)")
