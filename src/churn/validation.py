"""Validate a data source against the contract and report every problem at once.

pandera was considered, but it validates in-memory pandas frames; event tables here reach tens of millions of
rows, so the rules run as DuckDB SQL over the files: one aggregate pass per table counts every rule, and
example rows (with their line numbers) are fetched only for the rules that fail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

from churn.config import Config, TableSource
from churn.contract import ACTIVITY, CONTRACT, Column
from churn.errors import DataValidationError, Problem
from churn.sources import (
    DataSource,
    TableInfo,
    _lit,
    _q,
    explain_duckdb_error,
    native_type,
    register_typed,
    typed_expr,
)

MAX_EXAMPLES = 3
# No amount, fee, duration or score of a real customer reaches this; beyond it sums lose their cents.
MAX_MAGNITUDE = 1e12


@dataclass
class _Rule:
    column: str | None
    message: str
    condition: str  # SQL over the check view: true for a bad row
    show: list[str]  # raw columns to print in examples


def _tc(col: str) -> str:
    """Name of the typed copy of contract column `col` in the check view."""
    return _q(f"@{col}")


def _check_view(ds: DataSource, info: TableInfo, config: Config) -> str:
    """A view with the user's raw columns plus typed copies of every mapped contract column."""
    spec = CONTRACT[info.name]
    src = config.sources.tables.get(info.name, TableSource())
    typed = [
        f"{typed_expr(col, info.mapping[col.name], info.raw_types[info.mapping[col.name]], src, ds.timezone, info=info)}"
        f" AS {_tc(col.name)}"
        for col in spec.columns
        if col.name in info.mapping
    ]
    name = f"chk_{info.name}"
    ds.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT *, {', '.join(typed)} FROM {info.raw_view}")
    return name


def _column_rules(info: TableInfo, now: datetime, tolerance_days: int) -> list[_Rule]:
    """Per-column rules: required values present, values parse, numbers in range, no future dates."""
    spec = CONTRACT[info.name]
    rules: list[_Rule] = []
    future = (now + timedelta(days=tolerance_days)).replace(tzinfo=None).isoformat(sep=" ")
    for col in spec.columns:
        if col.name not in info.mapping:
            continue
        raw = _q(info.mapping[col.name])
        typed = _tc(col.name)
        native = native_type(col, info.raw_types[info.mapping[col.name]])
        # A typed column (Parquet timestamps, numbers) cannot hold blanks or unparseable text; casting
        # 50M of them to text just to look cost 6 s, so only text columns get those checks.
        present = f"{raw} IS NOT NULL" if native else f"NULLIF(TRIM(CAST({raw} AS VARCHAR)), '') IS NOT NULL"
        if col.type == "id":
            present = f"{typed} IS NOT NULL"  # the typed id is exactly the trimmed text: one trim per row, not three
        if col.required:
            rules.append(_Rule(col.name, "required value is empty", f"NOT ({present})", [info.mapping[col.name]]))
        if not native and col.type != "id":  # any non-blank text is a valid id
            rules.append(_Rule(col.name, _parse_message(col), f"{present} AND {typed} IS NULL",
                               [info.mapping[col.name]]))
        if col.type == "number":
            # NaN and infinities parse as numbers ("nan", "inf", or a float column) but break every sum.
            rules.append(_Rule(col.name, "not a finite number (NaN or infinite)",
                               f"(isnan({typed}) OR isinf({typed}))", [info.mapping[col.name]]))
            rules.append(_Rule(col.name, f"implausibly large number (magnitude above {MAX_MAGNITUDE:.0e})",
                               # Two ranges rather than abs(): Parquet's min/max statistics then settle it
                               # without reading the values (15M event rows: 0.25 s -> 2 ms for two such columns).
                               f"({typed} > {MAX_MAGNITUDE} OR {typed} < -{MAX_MAGNITUDE}) AND isfinite({typed})",
                               [info.mapping[col.name]]))
        if col.min is not None:
            rules.append(_Rule(col.name, f"value below {col.min:g}", f"{typed} < {col.min}", [info.mapping[col.name]]))
        if col.max is not None:
            rules.append(_Rule(col.name, f"value above {col.max:g}", f"{typed} > {col.max}", [info.mapping[col.name]]))
        if col.type in ("timestamp", "date"):
            rules.append(_Rule(col.name, f"timestamp in the future (after {future[:10]})",
                               f"{typed} > TIMESTAMP {_lit(future)}", [info.mapping[col.name]]))
    m = info.mapping
    if info.name == "tickets" and "closed_at" in m:
        rules.append(_Rule("closed_at", "ticket closed before it was opened",
                           f"{_tc('closed_at')} < {_tc('opened_at')}", [m["opened_at"], m["closed_at"]]))
    if info.name == "customers" and "cancel_date" in m:
        rules.append(_Rule("cancel_date", "cancellation before signup",
                           f"{_tc('cancel_date')} < {_tc('signup_date')}", [m["signup_date"], m["cancel_date"]]))
    return rules


def _parse_message(col: Column) -> str:
    """What we expected when a value did not parse."""
    return {
        "timestamp": "unparseable date/time (expected e.g. 2024-06-01, 2024-06-01T10:00:00+02:00, 01.06.2024 or "
        "01/06/2024; set sources.tables.<table>.date_format or day_first for other layouts)",
        "date": "unparseable date",
        "number": "not a number (expected e.g. 12.5, 12,5 or 1.234,5; set sources.tables.<table>."
        "decimal_separator / thousands_separator if the layout was guessed wrongly)",
        "bool": "not a yes/no value (expected true/false, yes/no, 1/0)",
        "id": "empty id",
        "text": "unreadable text",
    }[col.type]


def _examples(ds: DataSource, view: str, info: TableInfo, condition: str, show: list[str]) -> list[str]:
    """A few offending rows, by file line (CSV) or row number (Parquet), with the offending values."""
    # As text, the way the file shows them: fetching a zoned timestamp as a Python object needs pytz.
    cols = ", ".join(f"CAST({_q(c)} AS VARCHAR)" for c in dict.fromkeys(show))
    if info.in_bucket and "customer_id" in info.mapping:
        # A bucket's row numbers are not the file's: name the customer, in a stable order.
        who = f"CAST({_q(info.mapping['customer_id'])} AS VARCHAR)"
        rows = ds.con.execute(f"SELECT {who} AS __who, {cols} FROM {view} WHERE {condition} "
                              f"ORDER BY ALL LIMIT {MAX_EXAMPLES}").fetchall()
        return [f"customer {r[0]!r}: " + ", ".join(f"{c}={v!r}" for c, v in zip(dict.fromkeys(show), r[1:]))
                for r in rows]
    rows = ds.con.execute(
        f"SELECT __row, {cols} FROM (SELECT row_number() OVER () AS __row, * FROM {view}) "
        f"WHERE {condition} ORDER BY __row LIMIT {MAX_EXAMPLES}"
    ).fetchall()
    unit = "line" if info.line_offset else "row"
    out = []
    for r in rows:
        vals = ", ".join(f"{c}={v!r}" for c, v in zip(dict.fromkeys(show), r[1:]))
        out.append(f"{unit} {r[0] + info.line_offset}: {vals}")
    return out


def _raw_id(info: TableInfo) -> str | None:
    """The user's customer id column when it is text (the only kind that may already be clean)."""
    theirs = info.mapping.get("customer_id")
    return theirs if theirs and info.raw_types.get(theirs, "").upper() == "VARCHAR" else None


def _id_counts(ds: DataSource, info: TableInfo, config: Config) -> str | None:
    """Temp table of the table's distinct raw customer ids, their typed id and row count `_n`.

    Id rules (blank ids, ids to trim, unknown or duplicate customers) are checked on it: a million distinct
    ids instead of 50M rows, so each id is normalised once (trimming every row cost 1.4 s per scan, the
    unknown-customer anti-join on all rows another second).
    """
    if "customer_id" not in info.mapping:
        return None
    raw = info.mapping["customer_id"]
    typed = typed_expr(CONTRACT[info.name].column("customer_id"), raw, info.raw_types[raw],
                       config.sources.tables.get(info.name, TableSource()), ds.timezone)
    name = f"chk_ids_{info.name}"
    ds.con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {_q(raw)}, {typed} AS {_tc('customer_id')}, _n FROM "
        f"(SELECT {_q(raw)}, count(*) AS _n FROM {info.raw_view} GROUP BY ALL)"
    )
    return name


def _run_rules(ds: DataSource, view: str, ids: str | None, info: TableInfo, rules: list[_Rule]) -> list[Problem]:
    """Count every rule (id rules on the distinct ids; on Parquet one query per rule, else one pass);
    fetch examples for the failing ones. Also notes whether the ids are already clean text (`info.clean_ids`)."""
    on_ids = [r for r in rules if ids and r.column == "customer_id"]
    on_rows = [r for r in rules if r not in on_ids]
    counts: dict[int, int] = {}
    if info.columnar:
        # One query per rule: Parquet row-group statistics (min, max, null count) then settle most rules
        # without reading a value (events: 1.4 s for the one-pass scan, milliseconds this way).
        for r in on_rows:
            counts[id(r)] = ds.con.execute(f"SELECT count(*) FROM {view} WHERE {r.condition}").fetchone()[0]
    elif on_rows:
        row = ds.con.execute(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE {r.condition})" for r in on_rows) + f" FROM {view}"
        ).fetchone()
        counts |= {id(r): n for r, n in zip(on_rows, row)}
    if ids:
        raw_id = _raw_id(info)
        # Ids that normalising (trim, blank -> missing) would change: none means the raw column can be used.
        probe = f"count(*) FILTER (WHERE {_q(raw_id)} IS DISTINCT FROM {_tc('customer_id')})" if raw_id else "1"
        row = ds.con.execute(
            "SELECT " + ", ".join([probe, *(f"coalesce(sum(_n) FILTER (WHERE {r.condition}), 0)" for r in on_ids)])
            + f" FROM {ids}"
        ).fetchone()
        info.clean_ids = bool(raw_id) and row[0] == 0
        counts |= {id(r): n for r, n in zip(on_ids, row[1:])}
    problems = []
    for rule in rules:
        if n := counts[id(rule)]:
            problems.append(Problem(info.name, rule.message, str(info.path), rule.column, int(n),
                                    _examples(ds, view, info, rule.condition, rule.show)))
    return problems


def validate(ds: DataSource, config: Config, now: datetime | None = None) -> list[Problem]:
    """All contract problems of the source (empty list when it is valid)."""
    now = now or datetime.now(UTC)
    problems: list[Problem] = []
    views: dict[str, str] = {}
    ids: dict[str, str | None] = {}
    for name, info in ds.tables.items():
        if not info.in_bucket:  # a bucket's columns are the whole table's, checked once (`schema_problems`)
            problems += schema_problems(info, config)
        if info.missing_required:
            continue
        views[name] = _check_view(ds, info, config)
        ids[name] = _id_counts(ds, info, config)
        problems += _run_rules(ds, views[name], ids[name], info,
                               _column_rules(info, now, config.sources.future_tolerance_days))
    if "customers" in views and ids.get("customers"):
        info = ds.tables["customers"]
        tc = _tc("customer_id")
        dup_ids = f"SELECT {tc}, sum(_n) AS n FROM {ids['customers']} WHERE {tc} IS NOT NULL GROUP BY 1 HAVING sum(_n) > 1"
        dup = ds.con.execute(f"SELECT count(*), sum(n) FROM ({dup_ids})").fetchone()
        if dup and dup[0]:
            ex = ds.con.execute(f"{dup_ids} ORDER BY 1 LIMIT {MAX_EXAMPLES}").fetchall()
            problems.append(Problem("customers", f"duplicate customer ids ({dup[0]:,} ids)", str(info.path),
                                    "customer_id", int(dup[1]), [f"id {r[0]!r} appears {r[1]} times" for r in ex]))
        activity = [n for n in ACTIVITY if n in views and ids.get(n)]
        problems += _unknown_customers(ds, {n: views[n] for n in activity}, {n: ids[n] for n in activity},
                                       ids["customers"])
    for table in filter(None, ids.values()):
        ds.con.execute(f"DROP TABLE {table}")
    return problems


def schema_problems(info: TableInfo, config: Config) -> list[Problem]:
    """What is wrong with a table's columns themselves: mappings that name nothing, required columns missing."""
    problems = _mapping_problems(info, config)
    for col in info.missing_required:
        theirs = config.sources.tables.get(info.name, TableSource()).columns.get(col)
        hint = f" (configured as '{theirs}')" if theirs else ""
        problems.append(Problem(
            info.name, f"required column '{col}'{hint} is missing; the file has: "
            + ", ".join(info.raw_types), str(info.path), col))
    return problems


# A problem whose message counts distinct ids ("duplicate customer ids (3 ids)"): summed when merged.
_ID_COUNT = re.compile(r"\(([\d,]+) (unknown )?ids\)")


def merge_problems(parts: list[list[Problem]]) -> list[Problem]:
    """The problems of several buckets of one source as one list: one problem per table, column and rule,
    its rows (and distinct ids) summed, the first examples in a stable order."""
    merged: dict[tuple, list] = {}
    for problems in parts:
        for p in problems:
            m = _ID_COUNT.search(p.message)
            key = (p.table, p.file, p.column, _ID_COUNT.sub("(# ids)", p.message))
            entry = merged.setdefault(key, [p, 0, 0, []])
            entry[1] += p.count or 0
            entry[2] += int(m.group(1).replace(",", "")) if m else 0
            entry[3] += p.examples
    out = []
    for (_, _, _, _), (first, rows, n_ids, examples) in merged.items():
        message = first.message
        if n_ids:
            message = _ID_COUNT.sub(lambda m: f"({n_ids:,} {m.group(2) or ''}ids)", message)
        out.append(Problem(first.table, message, first.file, first.column,
                           rows if first.count is not None else None, sorted(examples)[:MAX_EXAMPLES]))
    return out


def _mapping_problems(info: TableInfo, config: Config) -> list[Problem]:
    """Column mappings in the config that name no contract column, or an optional column the file lacks.

    (A missing required column is reported with the other missing columns.)
    """
    spec = CONTRACT[info.name]
    problems = []
    for ours, theirs in config.sources.tables.get(info.name, TableSource()).columns.items():
        if spec.column(ours) is None:
            problems.append(Problem(
                info.name, f"sources.tables.{info.name}.columns maps '{ours}', which is not a column of table "
                f"'{info.name}'; its columns are: " + ", ".join(c.name for c in spec.columns), str(info.path), ours))
        elif ours not in info.mapping and ours not in info.missing_required:
            problems.append(Problem(
                info.name, f"column '{ours}' is configured as '{theirs}', which the file does not have; the file "
                "has: " + ", ".join(info.raw_types), str(info.path), ours))
    return problems


def _unknown_customers(ds: DataSource, views: dict[str, str], ids: dict[str, str], customer_ids: str) -> list[Problem]:
    """Activity rows whose customer is not in the customers table (counted on the distinct ids, for every
    activity table in one query: the customers' ids are hashed once, not once per table)."""
    if not ids:
        return []
    tc = _tc("customer_id")
    # The same condition holds on the distinct ids (for the counts) and on the check views (for examples).
    cond = f"{tc} IS NOT NULL AND {tc} NOT IN (SELECT {tc} FROM {customer_ids} WHERE {tc} IS NOT NULL)"
    union = " UNION ALL ".join(f"SELECT {_lit(name)} AS _table, {tc}, _n FROM {t}" for name, t in ids.items())
    found = {name: (n_rows, n_ids) for name, n_rows, n_ids in ds.con.execute(
        f"SELECT _table, sum(_n), count(DISTINCT {tc}) FROM ({union}) WHERE {cond} GROUP BY _table").fetchall()}
    problems = []
    for name in ids:  # in the order the tables were given
        if name in found:
            n_rows, n_ids = found[name]
            info = ds.tables[name]
            ex = _examples(ds, views[name], info, cond, [info.mapping["customer_id"]])
            problems.append(Problem(name, f"activity for customers not in the customers table ({n_ids:,} unknown "
                                    "ids)", str(info.path), "customer_id", int(n_rows), ex))
    return problems


def load_source(data: str | None, config: Config, now: datetime | None = None) -> DataSource:
    """Open, validate (raising one error listing every problem) and type a data source."""
    from churn.sources import open_source

    ds = open_source(data, config)
    try:
        # CSV views are parsed lazily: a bad line far into a file surfaces in these queries.
        problems = validate(ds, config, now)
        if not problems:
            register_typed(ds, config)
    except duckdb.Error as exc:
        ds.con.close()
        raise explain_duckdb_error(exc, ds.tables) from None
    if problems:
        ds.con.close()
        raise DataValidationError(problems)
    return ds
