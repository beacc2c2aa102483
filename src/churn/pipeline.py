"""The flow, wired by name in one place: data -> validated source -> features -> model -> scores -> plan.

Each function here is what one CLI command does; the CLI only parses arguments and shows progress.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features.engine import build_features, build_training_frame
from churn.io import ensure_writable, read_table
from churn.timeline import parse_as_of
from churn.validation import load_source

Progress = Callable[[str], None] | None


def with_overrides(config: Config, *, label: str | None = None, horizon_days: int | None = None,
                   as_of: list[str] | None = None, engine: str | None = None) -> Config:
    """A copy of `config` with command-line overrides applied (validated like the file)."""
    data = config.model_dump()
    if engine:
        data["engine"]["kind"] = engine
    if label:
        data["label"]["kind"] = label
    if horizon_days:
        data["label"]["horizon_days"] = horizon_days
    if as_of:
        data["snapshots"]["as_of"] = [parse_as_of(d).date() for d in as_of]
    try:
        return Config.model_validate(data)
    except Exception as exc:  # pydantic error on a bad override is the user's
        raise ChurnError(f"invalid option: {exc}") from None


@dataclass
class FeatureBuild:
    """What `churn features` produced."""

    path: Path
    rows: int
    features: int
    notices: list[str] = field(default_factory=list)


def features_to_file(data: str | None, as_of: list[str], out: str, config: Config, *, overwrite: bool = False,
                     progress: Progress = None) -> FeatureBuild:
    """Validate the source, build features at each as_of and write them (Parquet/CSV; on Spark a folder of
    Parquet parts)."""
    if config.engine.kind == "spark":
        from churn.spark.flows import features_to_folder

        return features_to_folder(data, as_of, out, config, overwrite=overwrite, progress=progress)
    ensure_writable(out, overwrite)  # fail before the work, not after it
    if progress:
        progress("validating data")
    ds = load_source(data, config)
    try:
        fs = build_features(ds, [parse_as_of(d) for d in as_of], config, progress=progress)
        if progress:
            progress("writing features")
        path = fs.write(out, overwrite)
        rows = fs.rows()
        return FeatureBuild(path, rows, len(fs.registry), fs.notices)
    finally:
        ds.con.close()


def train_from_data(config: Config, data: str | None, *, as_of: list[str] | None = None, tune_trials: int = 0,
                    tune_minutes: float | None = None, promote: bool = False, keep_columns: list[str] | None = None,
                    force: bool = False, progress: Progress = None, frame: Any = None) -> Any:
    """Build the multi-snapshot training frame from raw data and train, tracked in MLflow; with `frame` (a
    `TrainingFrame` already built from the data), train on it as it is."""
    from churn.features.frame import TrainingFrame
    from churn.training.train import train

    if frame is not None:
        if not isinstance(frame, TrainingFrame):
            raise ChurnError(f"frame must be a training frame (build_training_frame), got {type(frame).__name__}")
        tf = frame
    elif config.engine.kind == "spark":  # the frame built on Spark, the model trained here
        from churn.spark.flows import training_frame_on_spark

        tf = training_frame_on_spark(data, config, as_of, progress=progress)
    else:
        if progress:
            progress("validating data")
        ds = load_source(data, config)
        try:
            tf = build_training_frame(ds, config, as_of, progress=progress)
        finally:
            ds.con.close()
    if tf.frame["churned"].nunique() < 2:
        raise ChurnError(
            f"every snapshot row has the same label ({int(tf.frame['churned'].iloc[0])}); nothing to learn. "
            "Check label.kind and label.horizon_days"
        )
    if progress:
        progress(f"training on {len(tf.frame):,} rows x {len(tf.features)} features, "
                 f"{len(tf.as_of)} snapshots ({tf.label} label)")
    result = train(
        tf.frame, tf.features, config, data_fingerprint=tf.fingerprint, config_path=config.source_file,
        tune_trials=tune_trials, tune_minutes=tune_minutes, promote=promote,
        extra_metadata={**tf.metadata, "notices": tf.notices}, source=tf.source_settings(), progress=progress,
        keep_columns=sorted({*config.model.keep_columns, *(keep_columns or [])}), force=force,
    )
    result.warnings = list(tf.notices) + list(result.warnings)
    return result


def train_from_table(config: Config, table: str, target: str, id_col: str, *, time_col: str | None = None,
                     tune_trials: int = 0, tune_minutes: float | None = None, promote: bool = False,
                     churn_value: str | None = None, keep_columns: list[str] | None = None,
                     force: bool = False, progress: Progress = None) -> Any:
    """Train on a ready feature table (bring your own features). `churn_value` (else `label.churn_value`)
    names the target's churn value; `keep_columns` (and `model.keep_columns`) are kept as features whatever
    the table and leakage rules say."""
    from churn.training.table import read_ready_table
    from churn.training.train import train

    keep = sorted({*config.model.keep_columns, *(keep_columns or [])})
    df = read_table(table)
    try:
        ready = read_ready_table(df, target, id_col, time_col, churn_value=churn_value or config.label.churn_value,
                                 keep=keep)
    except ChurnError as exc:
        raise ChurnError(f"{table}: {exc}") from None
    frame = ready.frame
    fp = {"table": str(table), "rows": len(frame), "columns": len(df.columns),
          "hash": str(pd.util.hash_pandas_object(frame, index=False).sum())}
    result = train(frame, ready.features, config, id_col=id_col, time_col=time_col, label_col=target,
                   data_fingerprint=fp, config_path=config.source_file, tune_trials=tune_trials,
                   tune_minutes=tune_minutes, promote=promote, keep_columns=keep, force=force,
                   extra_metadata={"source": "table", "id_col": id_col, "time_col": time_col,
                                   "dropped_columns": ready.dropped}, progress=progress)
    result.warnings = list(ready.notices) + list(result.warnings)
    return result


def score_to_folder(config: Config, model_ref: str, out_root: str, *, data: str | None = None,
                    as_of: str | None = None, table: str | None = None, id_col: str | None = None,
                    customers: str | None = None, csv: bool = False, overwrite: bool = False,
                    allow_stale_data: bool = False, progress: Progress = None,
                    chunk_progress: Callable[[int, int], None] | None = None) -> Any:
    """What `churn score` does: score raw data as of a date (or a ready feature table with `table` and
    `id_col`), plan retention and write the run folder `<out_root>/<as_of>/`; returns the ScoreRun. A date
    more than `scoring.max_staleness_days` after the data, or in the future, is refused unless
    `allow_stale_data` (then the run's `warnings`, summary.json and report say so)."""
    from churn.campaigns.learning import read_effects
    from churn.scoring.score import score_source, score_table

    if config.incentives.effects:
        read_effects(config.incentives.effects)  # a bad effects file is refused before any scoring work
    if table:
        if not id_col:
            raise ChurnError("a feature table needs its id column")
        if config.engine.kind == "spark":
            raise ChurnError("a ready feature table is scored by the embedded engine: leave out --engine spark")
        return _published(score_table(table, id_col, model_ref, out_root, config, as_of=as_of, overwrite=overwrite,
                                      csv=csv, progress=progress, chunk_progress=chunk_progress,
                                      customers=customers), config, progress)
    if not as_of:
        raise ChurnError("an as-of date is required when scoring raw data")
    if config.engine.kind == "spark":
        from churn.spark.scoring import score_on_spark

        return _published(score_on_spark(data, as_of, model_ref, out_root, config, overwrite=overwrite, csv=csv,
                                         progress=progress, customers=customers, allow_stale_data=allow_stale_data),
                          config, progress)
    run = score_source(data, as_of, model_ref, out_root, config, overwrite=overwrite, csv=csv,
                       progress=progress, chunk_progress=chunk_progress, customers=customers,
                       customers_id=id_col, allow_stale_data=allow_stale_data)
    return _published(run, config, progress)


def _published(run: Any, config: Config, progress: Progress) -> Any:
    """The finished run with its health logged to MLflow and its messages delivered (notices added)."""
    from churn.monitoring.publish import publish_run

    if progress:
        progress("logging model health and delivering alerts")
    run.notices += publish_run(run.out_dir, run.health, config)
    return run


def measure_campaigns(config: Config, runs: list[str], data: str | None, *, effects_out: str | None = None,
                      prior_strength: float | None = None, overwrite: bool = False, uplift: bool = True,
                      model: str | None = None, progress: Progress = None) -> Any:
    """What `churn campaign-effect` does: measure past runs' campaigns against their control groups (written
    to each run folder and MLflow) and learn the save rates the next plan reads (the effects file), with
    per-customer effects of each offer where two or more campaigns show them (`model`: the churn model whose
    features they read; default: the latest run's)."""
    from churn.campaigns.run import measure_campaigns as measure

    return measure(runs, data, config, effects_out=effects_out, strength=prior_strength, overwrite=overwrite,
                   uplift=uplift, model_ref=model, progress=progress)


def with_effects(config: Config, effects: str | None) -> Config:
    """`config` with `incentives.effects` set to the effects file (`churn score --effects`), checked."""
    if not effects:
        return config
    from churn.campaigns.learning import read_effects

    read_effects(effects)
    return config.model_copy(update={"incentives": config.incentives.model_copy(update={"effects": str(effects)})})


def promote_model(config: Config, name: str | None = None, *, force: bool = False) -> dict[str, Any]:
    """What `churn promote` does: move alias `champion` to the challenger if it wins on the same holdout
    (`force`: whatever the comparison or the chance check says)."""
    from churn.training.registry import promote

    return promote(name or config.model.registered_name, config, force=force)


def score_customers(model: Any, data: str | None, as_of: str, config: Config, *,
                    allow_stale_data: bool = False, progress: Progress = None) -> pd.DataFrame:
    """Every current customer as of `as_of` with status, churn probability and reason codes, in memory
    (nothing written): the rows `churn score` plans for, before the plan. Rows not scored (lapsed, no
    history...) have no probability. The scoring date is checked as `churn score` checks it: refused long
    after the data unless `allow_stale_data`; what it calls for is issued as a UserWarning."""
    import warnings as python_warnings

    from churn.scoring.score import _spread, model_version, score_frame, source_rows
    from churn.scoring.status import SCORED

    rows, statuses, _, warnings = source_rows(model, data, parse_as_of(as_of), config, progress=progress,
                                              allow_stale_data=allow_stale_data)
    for text in warnings:
        python_warnings.warn(text, UserWarning, stacklevel=2)
    rows = rows.reset_index(drop=True)
    scored = statuses == SCORED
    values = score_frame(model, rows[scored], chunk_rows=config.scoring.chunk_rows,
                         reason_method=config.scoring.reason_method)
    for col in values.columns:  # rows without a score keep a missing value, as in scores.parquet
        rows[col] = _spread(values[col].to_numpy(), scored)
    rows["status"] = statuses
    rows["model_version"] = model_version(model, "in memory")
    return rows


@dataclass
class KpiBuild:
    """What `churn kpis` wrote."""

    path: Path
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def kpis_to_file(config: Config, data: str | None, out: str, *, months: int = 12, end: str | None = None,
                 by: list[str] | None = None, campaign: str | None = None, overwrite: bool = False,
                 progress: Progress = None) -> KpiBuild:
    """What `churn kpis` does: the business KPIs per month (and per value of each `by` column) of the
    `months` months before `end` (default: the month the data ends in), with a campaign run's saved revenue
    when `campaign` names its run folder; written as CSV or Excel."""
    from churn.labels import data_range
    from churn.monitoring.kpis import campaign_savings, kpi_table, month_start, write_kpis

    ensure_writable(out, overwrite)  # fail before the work, not after it
    if progress:
        progress("validating data")
    ds = load_source(data, config)
    try:
        _, data_end = data_range(ds)
        last = month_start(parse_as_of(end) if end else data_end)
        savings, notes = None, [f"revenue, CLTV, NPS and CSAT: formulas in docs/monitoring.md; months before {last.date()}"]
        if campaign:
            if progress:
                progress("valuing the campaign")
            savings, how = campaign_savings(campaign, ds, config, by or [])
            notes.append(how)
        else:
            notes.append("saved revenue: left out (no campaign run given: --campaign RUN_FOLDER)")
        if progress:
            progress("computing KPIs")
        table = kpi_table(ds, config, end=last, months=months, by=by or [], savings=savings)
    finally:
        ds.con.close()
    return KpiBuild(write_kpis(table, out, notes, overwrite), table, notes)
