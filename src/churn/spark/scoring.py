"""What `churn score --engine spark` does: the registered model's features built per customer bucket on
Spark with the model's settings, scored by `mapInArrow` with the model broadcast to every task (the same
`score_frame`: probabilities and reasons), planned on Spark (`churn.spark.plan`), written as the same run
folder: scores.parquet as a folder of Parquet parts written by Spark, and the segments, workbook, report,
alerts, drift and summary.json from the plan's rows gathered on the driver (`churn.scoring.score.write_run`).

On the driver: the plan's rows without the model inputs, plus the inputs of at most 200,000 scored customers
(a seeded sample on larger runs, as the drift reads them; the report's typical values of each driver are then
those of the sample). Not supported with this engine: `--customers` lists and the report's KPI trend.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.scoring.run_folder import SCORES_FILE
from churn.timeline import parse_as_of

Progress = Callable[[str], None] | None
SAMPLE_ROWS = 200_000  # scored customers whose model inputs reach the driver (`monitoring.health`)


def _say(progress: Progress, msg: str) -> None:
    if progress:
        progress(msg)


def score_on_spark(data: str | None, as_of: str, model_ref: str, out_root: str, config: Config, *,
                   overwrite: bool = False, csv: bool = False, progress: Progress = None,
                   customers: str | None = None, allow_stale_data: bool = False) -> Any:
    """Score raw data (Parquet, local or a Hadoop URI) as of a date on Spark and write the run folder
    `<out_root>/<as_of>/`; returns the `ScoreRun` (as `churn.scoring.score.score_source` does)."""
    from pyspark.sql import functions as F

    from churn.contract import ACTIVITY
    from churn.io import ensure_writable
    from churn.scoring.model_features import features_config, model_feature_metadata
    from churn.scoring.score import asked_attributes, model_version, output_key
    from churn.spark.build import build_on_spark, frozen_settings
    from churn.spark.session import spark_session
    from churn.spark.source import open_spark_source
    from churn.timeline import scoring_date_warnings
    from churn.training.loading import load_model

    if customers:
        raise ChurnError("--customers is not supported with --engine spark yet; score everyone, or use the "
                         "embedded engine for a list of customers")
    when = parse_as_of(as_of)
    run_dir = Path(out_root) / str(when.date())
    output_key(config)  # refused before any work when pseudonyms are asked for without a key
    ensure_writable(run_dir, overwrite)
    _say(progress, "loading model")
    model = load_model(model_ref)
    meta = model_feature_metadata(model)
    cfg = features_config(model, config, model_ref)
    spark = spark_session(cfg)
    _say(progress, "reading the data on Spark")
    src = open_spark_source(spark, data, cfg)
    _say(progress, "global settings (one pass over the data)")
    frozen, found = frozen_settings(src, cfg, after=when, model=meta)
    start, end = frozen.data_range
    activity = sum(n for t, n in found.counts.rows.items() if t in ACTIVITY)
    warnings = scoring_date_warnings(
        when, data_start=start, data_end=end, share_after=found.counts.activity_after / activity if activity else 0.0,
        today=datetime.now(UTC).date(), max_staleness_days=config.scoring.max_staleness_days,
        future_tolerance_days=config.sources.future_tolerance_days, allow_stale=allow_stale_data)
    have = set(src.layouts["customers"].schema.names) if "customers" in src.layouts else set()
    absent = [c for c in config.incentives.contact_columns if c not in have]
    _say(progress, "features per customer bucket")
    build = build_on_spark(src, frozen, found, [when], cfg, mode="score", attributes=tuple(asked_attributes(config)))
    notices = list(build.notices)
    if absent:
        notices.append(f"incentives.contact_columns: {', '.join(absent)} not in the customers table; the "
                       "segment files leave them out")
    if config.monitoring.kpi_months:
        notices.append("the report's KPI trend is left out with --engine spark (run `churn kpis` for it)")
    try:
        n_scored = build.rows.where(F.col("status") == "scored").count()
        if not n_scored:
            raise ChurnError(f"no customer is active as of {when.date()} in {data}; nothing to score")
        _say(progress, f"scoring {n_scored:,} customers on Spark")
        scored = _scored(spark, build, model, config).withColumn(
            "model_version", F.lit(model_version(model, model_ref))).persist()
        return _plan_and_write(spark, scored, model, model_ref, build, when, run_dir, Path(out_root), config,
                               overwrite=overwrite, csv=csv, progress=progress, notices=notices,
                               source=str(data), warnings=warnings)
    finally:
        build.release()


def _scored(spark: Any, build: Any, model: Any, config: Config) -> Any:
    """The build's rows with the model's probability and reasons (`score_udf`, the model broadcast)."""
    import pyarrow as pa

    from churn.features.registry import Registry
    from churn.scoring.reasons import N_REASONS
    from churn.spark.build import _spark_schema
    from churn.spark.udfs import score_udf

    base = build.rows.limit(0).toArrow().schema
    added = [pa.field("churn_probability", pa.float64()),
             *(pa.field(f"reason_{i + 1}", pa.string()) for i in range(N_REASONS)),
             *(pa.field(f"reason_{i + 1}_feature", pa.string()) for i in range(N_REASONS))]
    # The status after the model's verdict, as the single-machine run sets it.
    schema = pa.schema([*(f for f in base if f.name != "status"), *added, base.field("status")])
    broadcast = spark.sparkContext.broadcast(model)
    return build.rows.mapInArrow(score_udf(broadcast, Registry(list(model.features_)), config, schema),
                                 _spark_schema(schema))


def _plan_and_write(spark: Any, scored: Any, model: Any, model_ref: str, build: Any, when: pd.Timestamp,
                    run_dir: Path, out_root: Path, config: Config, *, overwrite: bool, csv: bool,
                    progress: Progress, notices: list[str], source: str, warnings: list[str]) -> Any:
    """Plan on Spark, gather what the driver writes from, and write the run folder."""
    from churn.io import pseudonym_key
    from churn.scoring.score import plan_inputs, write_run
    from churn.spark.plan import plan_on_spark

    features = [f.name for f in model.features_]
    _say(progress, "allocating retention incentives on Spark")
    try:
        sample = _inputs_sample(scored, list(model.features_), config.seed)  # the model inputs, as scored (drift, drivers)
        plan = plan_on_spark(scored, config, plan_inputs(config))
        made = set(plan.rows.columns) - set(scored.columns)
    finally:
        scored.unpersist()
    if "preferred_channel" in made:  # the plan keeps the customer's own channel there; `channel` is its own
        made.add("channel")
    inputs = set(build.rows.columns) - {"status"}  # what the data brought, for the scores' columns
    _say(progress, "gathering the plan on the driver")
    planned = plan.rows.persist()
    try:
        narrow = planned.drop(*[c for c in features if c not in made]).toPandas()
        kept = sample[["customer_id", *(c for c in sample.columns if c not in narrow.columns)]]
        planned_customers = _customers_frame(narrow, kept, plan.decisions.tiers)
        key = pseudonym_key() if config.scoring.pseudonymise_ids else None

        def write_scores(folder: Path, columns: list[str]) -> list[Path]:
            return [_write_scores(planned, folder / SCORES_FILE, columns, key)]

        return write_run(model, model_ref, sample, np.ones(len(sample), dtype=bool), planned_customers,
                         plan.summary, inputs, when, run_dir, out_root, config, overwrite=overwrite, csv=csv,
                         progress=progress, notices=notices, source=source, warnings=warnings,
                         write_scores=write_scores)
    finally:
        planned.unpersist()


def _inputs_sample(scored: Any, features: list[Any], seed: int) -> pd.DataFrame:
    """The model inputs of the scored customers, or of a seeded sample of SAMPLE_ROWS of them (by a hash of
    the id: the same customers whatever the partitions), in customer-id order."""
    from pyspark.sql import functions as F

    from churn.features.engine import feature_frame
    from churn.features.registry import Registry

    have = [f for f in features if f.name in scored.columns]
    rows = scored.where(F.col("status") == "scored").select("customer_id", *[f.name for f in have])
    frame = rows.limit(SAMPLE_ROWS + 1).toPandas()
    if len(frame) > SAMPLE_ROWS:
        cut = int(SAMPLE_ROWS / rows.count() * 1_000_000)
        frame = rows.where(F.pmod(F.xxhash64("customer_id", F.lit(seed)), F.lit(1_000_000)) < cut).toPandas()
    return feature_frame(frame, Registry(have)).sort_values("customer_id", kind="stable").reset_index(drop=True)


def _customers_frame(narrow: pd.DataFrame, sample: pd.DataFrame, tiers: Any) -> pd.DataFrame:
    """The plan's customers as the single-machine plan gives them: in customer-id order, the tier an ordered
    categorical, the sampled customers' model inputs (missing for the rest)."""
    frame = narrow.merge(sample, on="customer_id", how="left") if len(sample.columns) > 1 else narrow
    frame = frame.sort_values("customer_id", kind="stable").reset_index(drop=True)
    frame["risk_tier"] = pd.Categorical(frame["risk_tier"], categories=list(tiers.tier_names_), ordered=True)
    text = {c: frame[c].astype(object).where(frame[c].notna(), None) for c in frame.columns
            if frame[c].dtype == object or isinstance(frame[c].dtype, pd.StringDtype)}
    return frame.assign(**text) if text else frame


def _write_scores(planned: Any, path: Path, columns: list[str], key: bytes | None) -> Path:
    """scores.parquet as a folder of parts written by Spark, riskiest first (ties by id), in `columns`;
    customer ids pseudonymised with `key` when given."""
    from pyspark.sql import functions as F

    frame = planned.select(*columns)
    if key is not None:
        from churn.io import pseudonymise

        @F.pandas_udf("string")
        def pseudonym(ids: pd.Series) -> pd.Series:
            return pseudonymise(ids, key)

        frame = frame.withColumn("customer_id", pseudonym("customer_id"))
    ordered = frame.orderBy(F.desc_nulls_last("churn_probability"), F.asc("customer_id"))
    ordered.write.mode("overwrite").parquet(str(path.resolve()))
    return path
