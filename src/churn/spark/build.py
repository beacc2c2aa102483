"""A feature build on Spark, wired in one place (`build_on_spark`):

1. global counts: one pass over the union (`mapInArrow`) counts what the global settings are decided from
   (rows, time range, event types, survey scale), summed on the driver into `Frozen`, and each partition's
   rows per customer;
2. buckets: the rows per customer summed (a shuffle of one count per customer and partition); customers
   with more than `heavy_share x bucket_rows` rows get a bucket of their own (Spark never splits a group),
   the rest a bucket by their id's hash, about `bucket_rows` rows each;
3. one `groupBy(bucket).applyInArrow` runs `build_bucket` on every bucket (`churn.spark.udfs.bucket_udf`); its
   output is kept (memory and disk) so the small side outputs (problems, notices, BG/NBD history counts)
   are read before the rows are used;
4. the problems of all buckets, merged, refuse the data as the embedded validation does;
5. BG/NBD fitted per date on the driver from the summed history counts (the single-machine fit), then
   predicted row by row (`mapInArrow`).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from churn.config import Config
from churn.errors import DataValidationError
from churn.features.registry import Registry
from churn.frozen import Frozen, GlobalCounts, freeze_counts
from churn.spark.source import SparkSource


@dataclass
class SparkBuild:
    """What a build on Spark gives: the rows (a Spark frame, kept until `release`), the registry, the
    settings it froze, the BG/NBD fits and notices."""

    rows: Any
    registry: Registry
    frozen: Frozen
    dates: list[pd.Timestamp]
    fitted: dict[pd.Timestamp, dict[str, float]]
    notices: list[str] = field(default_factory=list)
    customers: int = 0
    buckets: int = 0
    kept: Any = None  # the persisted bucket output
    costs: list[dict[str, float]] = field(default_factory=list)  # per bucket: seconds, input rows and bytes

    def release(self) -> None:
        """Drop the kept bucket output from the executors."""
        if self.kept is not None:
            self.kept.unpersist()


@dataclass
class Globals:
    """The global counts of the whole source and how its rows split into buckets."""

    counts: GlobalCounts
    customers: int  # distinct customer ids (null counted as one)
    rows: int  # input rows, all tables
    buckets: int  # by id hash (heavy customers' own buckets come after them)
    heavy: list[str]  # customers whose rows fill a bucket of their own, most rows first


def count_globals(src: SparkSource, config: Config, after: pd.Timestamp | None = None) -> Globals:
    """One pass over the input (steps 1 and 2 of the module docstring): the `GlobalCounts` summed over Spark
    partitions, rows per customer summed per customer, the buckets and the heavy customers."""
    from pyspark.sql import functions as F

    from churn.spark.udfs import COUNTS_SCHEMA, global_counts_udf

    cfg = config.engine.spark
    opening = Frozen(timezone=config.sources.timezone, label="", event_types=(), survey_scale=None,
                     tables=src.layouts, derived_customers="customers" not in src.layouts)
    udf = global_counts_udf(src.tables, opening, config, after)
    parts = src.union.mapInArrow(udf, _spark_schema(COUNTS_SCHEMA)).persist()
    try:
        counts = sum((pickle.loads(r["counts"]) for r in parts.where("counts IS NOT NULL").select("counts")
                      .collect()), GlobalCounts())
        per = parts.where("counts IS NULL").groupBy("_id").agg(F.sum("n").alias("n"))
        limit = cfg.heavy_share * cfg.bucket_rows
        stats = per.agg(F.count(F.lit(1)).alias("customers"), F.sum("n").alias("rows"),
                        F.collect_list(F.when((F.col("n") > limit) & F.col("_id").isNotNull(),
                                              F.struct(F.col("n"), F.col("_id")))).alias("heavy")).first()
    finally:
        parts.unpersist()
    rows = int(stats["rows"] or 0)
    heavy = [h["_id"] for h in sorted(stats["heavy"], key=lambda h: (-h["n"], h["_id"]))]
    return Globals(counts, int(stats["customers"] or 0), rows, max(1, math.ceil(rows / cfg.bucket_rows)), heavy)


def frozen_settings(src: SparkSource, config: Config, *, after: pd.Timestamp | None = None,
                    model: dict[str, Any] | None = None) -> tuple[Frozen, Globals]:
    """The global settings of the whole source (`model`: a model's source settings win: event types,
    label, BG/NBD parameters) and its `Globals`."""
    found = count_globals(src, config, after)
    model = model or {}
    frozen = freeze_counts(found.counts, src.layouts, config, where=src.label,
                           event_types=model.get("event_types"), label=model.get("label"),
                           btyd_params=model.get("btyd_params"), notices=tuple(src.notices))
    return frozen, found


def with_buckets(src: SparkSource, found: Globals) -> Any:
    """The union with a `_bucket` column: a heavy customer's own bucket, else their id's hash."""
    from pyspark.sql import functions as F

    n, heavy = found.buckets, found.heavy
    spark = src.union.sparkSession
    hashed = F.pmod(F.xxhash64("_id"), F.lit(n)).cast("int")
    if not heavy:
        return src.union.withColumn("_bucket", hashed)
    own = spark.createDataFrame([(h, n + i) for i, h in enumerate(heavy)], "_heavy_id string, _heavy_bucket int")
    joined = src.union.join(F.broadcast(own), src.union["_id"] == own["_heavy_id"], "left")
    return joined.withColumn("_bucket", F.coalesce("_heavy_bucket", hashed)).drop("_heavy_id", "_heavy_bucket")


def _spark_schema(schema: Any) -> Any:
    """The Spark schema of an Arrow schema, every field nullable (side rows leave the row columns empty)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(pa.schema([f.with_nullable(True) for f in schema]))


def output_schema(dry: Any, mode: str, label: str) -> Any:
    """The Arrow schema of the bucket job's rows, from a build of an empty bucket (`dry`): the keys, every
    feature, the BG/NBD histories (`churned` in mode 'train'; status, last activity and attributes in mode
    'score'), and `_kind`, `_payload`."""
    import pyarrow as pa

    fields = list(dry.features.schema)
    if mode == "score":  # in the order the single-machine run's rows have them (`scoring_base`)
        have = set(dry.features.schema.names)
        if label == "inactivity":  # for cancellation the last activity is never known: no column
            fields.append(pa.field("last_activity_at", pa.timestamp("us")))
        fields += [f for f in dry.attributes.schema if f.name not in have and f.name != "customer_id"]
        fields.append(pa.field("status", pa.string()))
    fields = [pa.field(f.name, pa.string() if pa.types.is_large_string(f.type) else f.type) for f in fields]
    return pa.schema([*fields, pa.field("_kind", pa.string()), pa.field("_payload", pa.binary())])


def build_on_spark(src: SparkSource, frozen: Frozen, found: Globals, dates: list[pd.Timestamp], config: Config,
                   *, mode: str = "features", attributes: tuple[str, ...] = ()) -> SparkBuild:
    """Features of every customer at `dates` on Spark (mode 'features'; 'train': with labels; 'score': one
    date, with every current customer's status and `attributes`), steps 2-5 of the module docstring."""
    from churn.features.bucket import HIDDEN, build_bucket, fit_buckets
    from churn.spark.udfs import bucket_udf, fill_btyd_udf
    from churn.validation import merge_problems

    dates = sorted(pd.Timestamp(d) for d in dates)
    dry = build_bucket({}, frozen, dates, config, labels=mode == "train", standing=mode == "score",
                       attributes=attributes)
    schema = output_schema(dry, mode, frozen.label)
    bucketed = with_buckets(src, found)
    udf = bucket_udf(src.tables, frozen, dates, config, schema, mode, attributes)
    # One shuffle partition per bucket (or as configured): the groupBy then finds the rows already placed.
    parts = config.engine.spark.shuffle_partitions or found.buckets + len(found.heavy)
    grouped = bucketed.repartition(parts, "_bucket").groupBy("_bucket")
    kept = grouped.applyInArrow(udf, _spark_schema(schema)).persist()
    try:
        side = [pickle.loads(r["_payload"]) for r in kept.where("_kind = 'side'").select("_payload").collect()]
        problems = merge_problems([s["problems"] for s in side])
        if problems:
            raise DataValidationError(problems)
        notices = list(dict.fromkeys([*frozen.notices, *(n for s in side for n in s["notices"])]))
        fitted: dict[pd.Timestamp, dict[str, float]] = {}
        rows = kept.where("_kind = 'row'").drop("_kind", "_payload")
        if HIDDEN[0] in schema.names:
            fitted, said = fit_buckets([s["btyd"] for s in side], dates, config)
            notices += said
            filled = pa_schema_without(schema, {*HIDDEN, "_kind", "_payload"})
            rows = rows.mapInArrow(fill_btyd_udf(fitted, config.label.horizon_days, filled), _spark_schema(filled))
    except BaseException:
        kept.unpersist()
        raise
    if found.heavy:
        notices.append(f"{len(found.heavy):,} customer(s) with the most rows got a bucket of their own")
    return SparkBuild(rows, dry.registry, frozen, dates, fitted, notices, found.customers,
                      found.buckets + len(found.heavy), kept, [s["cost"] for s in side])


def pa_schema_without(schema: Any, names: set[str]) -> Any:
    """`schema` without the fields named in `names`."""
    import pyarrow as pa

    return pa.schema([f for f in schema if f.name not in names])
