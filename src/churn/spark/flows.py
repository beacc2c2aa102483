"""What `churn features` and `churn train` do with `--engine spark` (the pipeline dispatches here): the same
steps as the embedded flow in `churn.pipeline`, with the features built per customer bucket on Spark
(`churn.spark.build`). Scoring is in `churn.spark.scoring`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from churn.config import Config
from churn.timeline import parse_as_of

Progress = Callable[[str], None] | None


def _say(progress: Progress, msg: str) -> None:
    if progress:
        progress(msg)


def features_to_folder(data: str | None, as_of: list[str], out: str, config: Config, *, overwrite: bool = False,
                       progress: Progress = None) -> Any:
    """`churn features --engine spark`: features of every customer at each date, written as a folder of
    Parquet parts at `out` (local or a Hadoop URI); returns the pipeline's `FeatureBuild`."""
    from churn.pipeline import FeatureBuild
    from churn.spark.build import build_on_spark, frozen_settings
    from churn.spark.output import check_writable, spark_output
    from churn.spark.session import spark_session
    from churn.spark.source import open_spark_source

    spark = spark_session(config)
    check_writable(spark, out, overwrite)  # fail before the work, not after it
    _say(progress, "reading the data on Spark")
    src = open_spark_source(spark, data, config)
    _say(progress, "global settings (one pass over the data)")
    frozen, found = frozen_settings(src, config)
    _say(progress, "features per customer bucket")
    build = build_on_spark(src, frozen, found, [parse_as_of(d) for d in as_of], config)
    try:
        with spark_output(spark, out, overwrite) as tmp:
            build.rows.write.mode("overwrite").parquet(tmp)
        rows = build.rows.sparkSession.read.parquet(out).count()
    finally:
        build.release()
    return FeatureBuild(out, rows, len(build.registry), build.notices)  # type: ignore[arg-type]


def training_frame_on_spark(data: str | None, config: Config, as_of: list[Any] | None = None,
                            progress: Progress = None) -> Any:
    """`churn train --engine spark`: the labelled frame built on Spark, sampled by customer (all of a
    customer's snapshots or none, by a seeded hash of the id) down to `engine.spark.train_max_rows`, and
    collected to the driver as the `TrainingFrame` the trainer reads."""
    from pyspark.sql import functions as F

    from churn.features.engine import feature_frame
    from churn.features.frame import training_dates, training_frame
    from churn.spark.build import build_on_spark, frozen_settings
    from churn.spark.session import spark_session
    from churn.spark.source import open_spark_source

    spark = spark_session(config)
    _say(progress, "reading the data on Spark")
    src = open_spark_source(spark, data, config)
    _say(progress, "global settings (one pass over the data)")
    frozen, found = frozen_settings(src, config)
    date_notices: list[str] = []
    dates, dropped = training_dates(*frozen.data_range, config, as_of, date_notices)
    _say(progress, "features and labels per customer bucket")
    build = build_on_spark(src, frozen, found, dates, config, mode="train")
    try:
        rows = build.rows
        total = rows.count()
        limit = config.engine.spark.train_max_rows
        notices = list(build.notices)
        if total > limit:
            share = limit / total
            keep = F.pmod(F.xxhash64("customer_id", F.lit(config.seed)), F.lit(1_000_000)) < int(share * 1_000_000)
            rows = rows.where(keep)
            notices.append(f"training frame sampled by customer: about {share:.1%} of the customers "
                           f"(engine.spark.train_max_rows {limit:,} of {total:,} rows)")
        _say(progress, "collecting the training frame")
        frame = feature_frame(rows.toPandas(), build.registry)
    finally:
        build.release()
    frame = frame.sort_values(["as_of", "customer_id"], kind="stable").reset_index(drop=True)
    frame["churned"] = frame["churned"].astype("int32")
    counts = dict(frozen.rows)
    if frozen.derived_customers:
        counts["customers"] = found.customers  # each bucket derives its own customers: count them once
    newest = max(build.fitted) if build.fitted else None
    meta = {"label": frozen.label, "event_types": list(frozen.event_types),
            "features": [f.to_dict() for f in build.registry],
            "btyd_params": build.fitted[newest] if newest is not None else {}}
    return training_frame(frame, list(build.registry), dates, dropped, frozen.label, meta, config, rows=counts,
                          data=frozen.data_range, survey_scale=frozen.survey_scale,
                          notices=notices + date_notices)

