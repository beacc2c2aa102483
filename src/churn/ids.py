"""A customer id read alike everywhere: one rule, written for DuckDB (`id_sql`), Spark (`id_spark`) and
Python (`normalise_id`).

The rule: text is trimmed of every character Python's `str.strip()` strips (`ID_SPACE`: spaces, tabs and
line breaks, the no-break space U+00A0, the ideographic space...), blank is missing, a whole number written
with a decimal point ("7.0", "12.00") loses it, any other text stays as written ("007" keeps its zeros);
whole float values are written without the point (7.0 -> "7"), integers as their digits.

Why written three times over one constant: the engines' own trims differ (DuckDB's TRIM strips Unicode
spaces but not tabs, Spark's `trim` only ASCII spaces, Python's `strip()` all whitespace), and on Spark the id
decides which bucket a customer's rows meet in: "007\\xa0" in one table and "007" in another must land
together. Each engine is given the explicit set of characters, and a test holds the three to one answer.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Every character str.isspace() holds (29 of them): what str.strip() removes. Written out, because scanning
# all of Unicode for them cost every `churn` command ~0.1 s at start-up, more on a busy machine (a test holds
# the list complete).
ID_SPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
            "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
WHOLE_TEXT = r"^([+-]?[0-9]+)\.0+$"  # "7.0", "-12.00": a whole number exported from a float column
_WHOLE = re.compile(WHOLE_TEXT)
_FLOATS = ("DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC")


def _sql_lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def id_sql(r: str, raw_type: str) -> str:
    """DuckDB SQL for the id in column expression `r` of DuckDB type `raw_type`."""
    if raw_type.upper().startswith(_FLOATS):
        # A float column (Parquet ids with a missing value become doubles): whole values lose the point.
        return (f"CASE WHEN {r} = trunc({r}) AND abs({r}) < 1e18 THEN CAST(CAST({r} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({r} AS VARCHAR) END")
    text = f"NULLIF(trim(CAST({r} AS VARCHAR), {_sql_lit(ID_SPACE)}), '')"
    if raw_type.upper() != "VARCHAR":
        return text  # integers (and anything else typed) read as their digits
    full = f"CASE WHEN contains({text}, '.') THEN regexp_replace({text}, {_sql_lit(WHOLE_TEXT)}, '\\1') ELSE {text} END"
    # The usual id needs none of that: not blank, no point, no space at either end (first and last character,
    # by code point, not in ID_SPACE) is the id as written. DuckDB's trim with a character set costs ~0.6 us
    # an id (0.19 s for 300,000), the test ~0.1 us; validation normalises every table's distinct ids.
    space = _sql_lit(ID_SPACE)
    clean = (f"{r} <> '' AND NOT contains({r}, '.') AND NOT contains({space}, left({r}, 1)) "
             f"AND NOT contains({space}, right({r}, 1))")
    return f"CASE WHEN {clean} THEN {r} ELSE {full} END"


def id_spark(column: Any, data_type: Any) -> Any:
    """The Spark Column of the id in `column` (a pyspark Column) of Spark type `data_type`."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(data_type, T.FloatType | T.DoubleType | T.DecimalType):
        d = column.cast("double")
        return F.when((d == F.floor(d)) & (F.abs(d) < 1e18), d.cast("long").cast("string")).otherwise(
            column.cast("string"))
    text = F.trim(column.cast("string"), F.lit(ID_SPACE))
    text = F.when(text != "", text)
    if not isinstance(data_type, T.StringType):
        return text
    return F.when(text.contains("."), F.regexp_replace(text, WHOLE_TEXT, "$1")).otherwise(text)


def normalise_id(value: Any) -> str | None:
    """The id of one Python value (text, int or float; None or NaN: missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float):
        return str(int(value)) if value == math.trunc(value) and abs(value) < 1e18 else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value).strip(ID_SPACE)
    if not text:
        return None
    return _WHOLE.sub(r"\1", text) if "." in text else text
