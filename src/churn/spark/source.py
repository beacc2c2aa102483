"""The data on Spark: each table read from Parquet (a local path or any Hadoop-compatible URI), its columns
matched to the contract as the embedded engine matches them, and all tables in one frame (`SparkSource.union`)
that one `groupBy(bucket)` can hand to a task together.

The union has shared typed columns ("slots": `s0, s1, ...` text, `l0 ...` whole numbers, `d0 ...` doubles,
`b0 ...` flags, `t0 ...` instants, `n0 ...` zone-less timestamps, `dt0 ...` dates) and an integer table tag
`_tag`, so a row costs what its own columns cost (a struct per table cost 2.7x as much in a sandbox). Each
column keeps its kind of type, so the bucket reads it as the embedded engine reads the file: text through the
layouts decided from the whole table's first rows, zone-less timestamps in `sources.timezone`, instants as they
are. `_id` is the customer id normalised once (`churn.ids`), which places the customer's rows in one bucket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from churn.config import Config, TableSource
from churn.contract import ACTIVITY, CONTRACT
from churn.errors import ChurnError, DataValidationError
from churn.frozen import TableLayout
from churn.ids import id_spark

# Slot kind -> (Spark SQL type, Arrow type name): what each kind of column travels as.
KINDS = {"s": "string", "l": "bigint", "d": "double", "b": "boolean", "t": "timestamp", "n": "timestamp_ntz",
         "dt": "date"}


@dataclass(frozen=True)
class SparkTable:
    """One table's place in the union: its tag, its file, the user's id column and each other shipped
    column's slot, and the Arrow schema the bucket rebuilds it in (id first, then the columns)."""

    name: str
    path: str
    tag: int
    id_column: str
    slots: dict[str, str]  # the user's column -> its slot in the union
    schema: Any  # pyarrow.Schema


@dataclass
class SparkSource:
    """The tables of one data source on Spark, their union and their frozen layouts."""

    tables: dict[str, SparkTable]
    union: Any  # pyspark DataFrame: _tag, _id, the slots
    layouts: dict[str, TableLayout]
    notices: list[str] = field(default_factory=list)
    label: str = ""


def _kind(data_type: Any) -> str | None:
    """The slot kind of a Spark type; None for what no contract column can be (arrays, maps, binary)."""
    from pyspark.sql import types as T

    if isinstance(data_type, T.StringType):
        return "s"
    if isinstance(data_type, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return "l"
    if isinstance(data_type, T.FloatType | T.DoubleType | T.DecimalType):
        return "d"
    return {T.BooleanType: "b", T.TimestampType: "t", T.TimestampNTZType: "n", T.DateType: "dt"}.get(type(data_type))


def _arrow(kind: str) -> Any:
    import pyarrow as pa

    return {"s": pa.string(), "l": pa.int64(), "d": pa.float64(), "b": pa.bool_(),
            "t": pa.timestamp("us", tz="UTC"), "n": pa.timestamp("us"), "dt": pa.date32()}[kind]


def table_paths(spark: Any, data: str | None, config: Config) -> dict[str, str]:
    """Each table's Parquet path: `sources.tables.<name>.path` (relative ones under `data`), else
    `<data>/<name>.parquet` where it exists. CSV and Excel are refused: convert them to Parquet first."""
    root = (data or config.sources.path or "").rstrip("/")
    found: dict[str, str] = {}
    for name in CONTRACT:
        src = config.sources.tables.get(name)
        configured = src.path if src and src.path else None
        path = configured or (f"{root}/{name}.parquet" if root else None)
        if path is None:
            continue
        if configured and "://" not in path and not path.startswith("/") and root:
            path = f"{root}/{path}"
        if not path.rstrip("/").lower().endswith(".parquet") and not _is_dir(spark, path):
            raise ChurnError(f"{path}: the Spark engine reads Parquet (a file or a folder of parts); convert "
                             f"table '{name}' to Parquet or use the embedded engine")
        if _exists(spark, path):
            found[name] = path
        elif configured:
            raise ChurnError(f"{path}: file for table '{name}' does not exist")
    if not any(t in found for t in ACTIVITY):
        raise ChurnError(f"{root or 'the configured sources'}: no activity table found; need at least one of "
                         + ", ".join(f"{t}.parquet" for t in ACTIVITY))
    return found


def _hadoop_path(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p


def _exists(spark: Any, path: str) -> bool:
    fs, p = _hadoop_path(spark, path)
    return bool(fs.exists(p))


def _is_dir(spark: Any, path: str) -> bool:
    fs, p = _hadoop_path(spark, path)
    return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())


def open_spark_source(spark: Any, data: str | None, config: Config) -> SparkSource:
    """Read every table of the source, match its columns, lay it out in the union, and decide its text
    layouts from its first rows (`churn.sources.layouts`, as the embedded engine does); a column mapping
    that names nothing or a missing required column is a validation error naming the file."""
    import duckdb

    from churn.sources.base import TableInfo, connect
    from churn.sources.discovery import _match_columns
    from churn.sources.layouts import SAMPLE_ROWS, _detect_layouts, native_type
    from churn.validation import schema_problems

    paths = table_paths(spark, data, config)
    con = connect(config.engine, config.sources.timezone)
    plans: dict[str, tuple[Any, SparkTable]] = {}
    layouts: dict[str, TableLayout] = {}
    notices: list[str] = []
    problems = []
    try:
        for tag, (name, path) in enumerate(paths.items()):
            df = spark.read.parquet(path)
            spec, src = CONTRACT[name], config.sources.tables.get(name, TableSource())
            types = {f.name: f.dataType for f in df.schema.fields}
            mapping = _match_columns(spec, list(types), src.columns)
            mapping = {k: v for k, v in mapping.items() if v in types}
            missing = [c for c in spec.required if c not in mapping]
            used = set(mapping.values())
            extra = [c for c in types if spec.extra_columns and c not in used
                     and c.lower() not in {col.name for col in spec.columns}]
            id_col = mapping.get("customer_id")
            slots, counts = {}, dict.fromkeys(KINDS, 0)
            for col in [*(v for k, v in mapping.items() if k != "customer_id"), *extra]:
                kind = _kind(types[col])
                if kind is None:
                    if col in extra:
                        notices.append(f"{path}: column '{col}' ({types[col].simpleString()}) is not read")
                        continue
                    raise ChurnError(f"{path}, column '{col}': type {types[col].simpleString()} cannot hold "
                                     f"'{next(k for k, v in mapping.items() if v == col)}'")
                slots[col] = f"{kind}{counts[kind]}"
                counts[kind] += 1
            import pyarrow as pa

            schema = pa.schema([pa.field(id_col or "customer_id", pa.string()),
                                *(pa.field(c, _arrow(s.rstrip("0123456789"))) for c, s in slots.items())])
            table = SparkTable(name, path, tag, id_col or "customer_id", slots, schema)
            plans[name] = (df, table)
            # The first rows decide the text layouts, as the embedded engine's first 10,000 of the file do;
            # a table whose columns are all typed (no text to read as numbers or dates) needs none.
            texts = [c for k, c in mapping.items() if k != "customer_id" and not native_type(
                spec.column(k), _duck_type(types[c]))]
            sample = _rows_of(df.limit(SAMPLE_ROWS), table) if id_col and texts else schema.empty_table()
            con.register(f"sample_{name}", sample)
            con.execute(f"CREATE OR REPLACE VIEW raw_{name} AS SELECT * FROM sample_{name}")
            raw_types = {r[0]: r[1] for r in con.execute(f"DESCRIBE raw_{name}").fetchall()}
            # The path stays text (a URI is no local Path); in_bucket: nothing here looks at the file itself.
            info = TableInfo(name, path, f"raw_{name}", mapping, raw_types, missing, 0,  # type: ignore[arg-type]
                             in_bucket=True)
            problems += schema_problems(info, config)
            if not missing:
                _detect_layouts(con, info, src, None, notices)
            layouts[name] = TableLayout(name, path, schema, dict(mapping), tuple(missing),
                                        dict(info.number_styles), dict(info.date_formats))
    except duckdb.Error as exc:
        raise ChurnError(f"reading the first rows of the source: {exc}") from None
    finally:
        con.close()
    if problems:
        raise DataValidationError(problems)
    return SparkSource({n: t for n, (_, t) in plans.items()}, _union(plans), layouts, notices,
                       label=data or config.sources.path or "configured sources")


def _duck_type(data_type: Any) -> str:
    """The DuckDB type name the embedded engine sees for a Parquet column of this Spark type (what
    `churn.sources.native_type` reads)."""
    kind = _kind(data_type)
    return {"s": "VARCHAR", "l": "BIGINT", "d": "DOUBLE", "b": "BOOLEAN", "t": "TIMESTAMP WITH TIME ZONE",
            "n": "TIMESTAMP", "dt": "DATE"}.get(kind or "", "BLOB")


def _rows_of(df: Any, table: SparkTable) -> Any:
    """A table's rows (a pyarrow.Table) in the schema a bucket receives."""
    return df.select(*_columns(df, table)).toArrow().cast(table.schema)


def _columns(df: Any, table: SparkTable) -> list[Any]:
    """The table's columns as the bucket receives them: the id normalised, each shipped column cast to its
    slot's type."""
    from pyspark.sql import functions as F

    types = {f.name: f.dataType for f in df.schema.fields}
    out = [id_spark(F.col(f"`{table.id_column}`"), types[table.id_column]).alias(table.id_column)]
    for col, slot in table.slots.items():
        out.append(F.col(f"`{col}`").cast(KINDS[slot.rstrip("0123456789")]).alias(col))
    return out


def _union(plans: dict[str, tuple[Any, SparkTable]]) -> Any:
    """All tables in one frame: `_tag`, `_id` and every slot (null where a table has no column there)."""
    from pyspark.sql import functions as F

    width = {k: 0 for k in KINDS}
    for _, table in plans.values():
        for slot in table.slots.values():
            kind = slot.rstrip("0123456789")
            width[kind] = max(width[kind], int(slot[len(kind):]) + 1)
    all_slots = [f"{k}{i}" for k in KINDS for i in range(width[k])]
    frames = []
    for df, table in plans.values():
        by_slot = {slot: col for col, slot in table.slots.items()}
        typed = df.select(*_columns(df, table))
        cols = [F.lit(table.tag).cast("int").alias("_tag"), F.col(f"`{table.id_column}`").alias("_id")]
        for slot in all_slots:
            kind = slot.rstrip("0123456789")
            src = by_slot.get(slot)
            cols.append((F.col(f"`{src}`") if src else F.lit(None).cast(KINDS[kind])).alias(slot))
        frames.append(typed.select(*cols))
    return reduce(lambda a, b: a.unionByName(b), frames)


def split_tables(rows: Any, tables: dict[str, SparkTable]) -> dict[str, Any]:
    """A bucket's union rows (a pyarrow.Table) back as one Arrow table per source table, in the user's
    columns (what `churn.features.bucket.build_bucket` reads)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    tag = rows.column("_tag")
    for name, table in tables.items():
        part = rows.filter(pc.equal(tag, table.tag))
        if part.num_rows:
            arrays = [part.column("_id").cast(pa.string()),
                      *(part.column(slot).cast(table.schema.field(col).type) for col, slot in table.slots.items())]
            out[name] = pa.Table.from_arrays(arrays, schema=table.schema)
    return out
