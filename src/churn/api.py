"""The Python API: what the CLI does, as plain functions returning DataFrames or dataclasses.

Each function delegates to the same code the `churn` command runs (`churn.pipeline` wires the flow), so a
notebook and a scheduled job get the same answers. `config` may be omitted (configs/default.yaml) and
`data` may be None (the config's `sources.path`).

    >>> import churn  # doctest: +SKIP
    >>> cfg = churn.load_config()  # doctest: +SKIP
    >>> result = churn.train(cfg, "data/demo")  # doctest: +SKIP
    >>> scores = churn.score(result.model_uri, "data/demo", "2025-07-01", cfg)  # doctest: +SKIP
    >>> plan = churn.plan_retention(scores, cfg, budget=20_000)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.config import Config
from churn.config import load_config as _load_config
from churn.errors import ChurnError

if TYPE_CHECKING:  # the heavy modules load only when a function needs them
    from churn.features.engine import TrainingFrame
    from churn.scoring.allocation import RetentionPlan
    from churn.scoring.score import ScoreRun
    from churn.sources import DataSource
    from churn.training.model import ChurnModel
    from churn.training.train import TrainResult

PathLike = str | Path


def _cfg(config: Config | PathLike | None) -> Config:
    return config if isinstance(config, Config) else _load_config(config)


def _path(data: PathLike | None) -> str | None:
    return None if data is None else str(data)


def load_config(path: PathLike | None = None) -> Config:
    """Read and validate a YAML config (default: configs/default.yaml; every key has a default).

    Example:
        >>> cfg = load_config()
        >>> cfg.label.horizon_days
        60
    """
    return _load_config(path)


@contextmanager
def open_source(data: PathLike | None = None,
                config: Config | PathLike | None = None) -> Iterator[DataSource]:
    """Open and validate a data source (raising one error that lists every problem); the typed tables are
    DuckDB views on `ds.con`, closed when the block ends.

    Example:
        >>> with open_source("data/demo") as ds:  # doctest: +SKIP
        ...     ds.con.execute("SELECT count(*) FROM customers").fetchone()  # doctest: +SKIP
    """
    from churn.validation import load_source

    ds = load_source(_path(data), _cfg(config))
    try:
        yield ds
    finally:
        ds.con.close()


@dataclass
class ValidationReport:
    """What `churn validate` reports: every table with its rows, or every problem found."""

    valid: bool
    tables: pd.DataFrame  # table, file, rows
    problems: pd.DataFrame  # table, column, message, rows, examples
    start: pd.Timestamp | None = None  # first activity
    end: pd.Timestamp | None = None  # day after the last activity
    label: str | None = None  # cancellation or inactivity
    notices: list[str] = field(default_factory=list)
    activity: list[str] = field(default_factory=list)  # inactivity: the tables that count as activity


def validation_report(data: PathLike | None = None,
                      config: Config | PathLike | None = None) -> ValidationReport:
    """Check a source against the data contract; problems are returned, not raised.

    Example:
        >>> report = validation_report("data/demo")  # doctest: +SKIP
        >>> report.valid, report.tables  # doctest: +SKIP
    """
    from churn.errors import DataValidationError
    from churn.labels import activity_tables, data_range, label_kind

    cfg = _cfg(config)
    try:
        with open_source(data, cfg) as ds:
            rows = [{"table": name, "file": path, "rows": n} for name, path, n in ds.table_rows()]
            start, end = data_range(ds)
            kind = label_kind(ds, cfg)
            return ValidationReport(True, pd.DataFrame(rows), _problem_frame([]), start, end, kind,
                                    list(ds.notices), activity_tables(ds, cfg) if kind == "inactivity" else [])
    except DataValidationError as exc:
        no_tables = pd.DataFrame(columns=["table", "file", "rows"])
        return ValidationReport(False, no_tables, _problem_frame(exc.problems))


def _problem_frame(problems: Sequence[Any]) -> pd.DataFrame:
    return pd.DataFrame([{"table": p.table, "column": p.column, "message": p.message, "rows": p.count,
                          "examples": "; ".join(p.examples)} for p in problems],
                        columns=["table", "column", "message", "rows", "examples"])


def latest_date(data: PathLike | None = None, config: Config | PathLike | None = None) -> date:
    """The day after the source's last activity: the latest as-of date with every fact before it.

    Example:
        >>> latest_date("data/demo")  # doctest: +SKIP
        datetime.date(2025, 7, 1)
    """
    from churn.labels import data_range

    with open_source(data, config) as ds:
        return data_range(ds)[1].date()


def build_features(data: PathLike | None, as_of: Sequence[str | date] | str | date,
                   config: Config | PathLike | None = None) -> pd.DataFrame:
    """Point-in-time features of every customer at each as-of date, one row per (customer_id, as_of), as
    `churn features` writes them.

    Example:
        >>> features = build_features("data/demo", ["2025-06-01"])  # doctest: +SKIP
    """
    from churn.features.engine import build_features as build
    from churn.timeline import parse_as_of

    dates = [as_of] if isinstance(as_of, (str, date)) else list(as_of)
    cfg = _cfg(config)
    with open_source(data, cfg) as ds:
        return build(ds, [parse_as_of(d) for d in dates], cfg).to_pandas()


def build_training_frame(data: PathLike | None = None, config: Config | PathLike | None = None,
                         as_of: Sequence[str | date] | None = None) -> TrainingFrame:
    """The labelled snapshots training uses: `.frame` (features + `churned`), `.features`, `.as_of`.

    Example:
        >>> tf = build_training_frame("data/demo")  # doctest: +SKIP
        >>> tf.frame["churned"].mean()  # doctest: +SKIP
    """
    from churn.features.engine import build_training_frame as build

    cfg = _cfg(config)
    with open_source(data, cfg) as ds:
        return build(ds, cfg, list(as_of) if as_of else None)


def train(config: Config | PathLike | None = None, data: PathLike | None = None, *,
          as_of: Sequence[str] | None = None, promote: bool = False, tune_trials: int = 0,
          frame: TrainingFrame | None = None) -> TrainResult:
    """Train on raw data as `churn train` does: candidates chosen out of time, refit, tracked and
    registered in MLflow (alias `challenger`; `champion` too with `promote=True` if it wins). With `frame`
    (from `build_training_frame`), that frame is trained as it is instead of being built again.

    Example:
        >>> result = train(cfg, "data/demo")  # doctest: +SKIP
        >>> tf = build_training_frame("data/demo", cfg)  # doctest: +SKIP
        >>> result = train(cfg, frame=tf)  # the frame just explored, not built a second time  # doctest: +SKIP
        >>> result.chosen, result.metrics["roc_auc"]  # doctest: +SKIP
    """
    from churn.pipeline import train_from_data, with_overrides

    if frame is not None and as_of:
        raise ChurnError("give either as_of or a frame: the frame's snapshot dates are already decided")
    cfg = with_overrides(_cfg(config), as_of=list(as_of) if as_of else None)
    return train_from_data(cfg, _path(data), tune_trials=tune_trials, promote=promote, frame=frame)


def train_table(table: PathLike, target: str, id_col: str, config: Config | PathLike | None = None, *,
                time_col: str | None = None, promote: bool = False, churn_value: str | None = None,
                keep_columns: list[str] | None = None) -> TrainResult:
    """Train on a ready feature table (CSV/Parquet), as `churn train --table` does. `churn_value` names the
    target's value that means churn; `keep_columns` keeps columns the table and leakage rules would drop.

    Example:
        >>> result = train_table("features.csv", target="churned", id_col="customer_id")  # doctest: +SKIP
        >>> result = train_table("bank.csv", "Attrition_Flag", "CLIENTNUM", churn_value="Attrited Customer")  # doctest: +SKIP
    """
    from churn.pipeline import train_from_table

    return train_from_table(_cfg(config), str(table), target, id_col, time_col=time_col, promote=promote,
                            churn_value=churn_value, keep_columns=keep_columns)


def load_model(ref: str | PathLike) -> ChurnModel:
    """A model from "models:/churn@champion", "models:/churn/3", "runs:/<id>/model" or a bundle folder.

    Example:
        >>> model = load_model("models:/churn@champion")  # doctest: +SKIP
    """
    from churn.training.loading import load_model as load

    return load(str(ref))


def _model(model: ChurnModel | str | PathLike) -> ChurnModel:
    return load_model(model) if isinstance(model, (str, Path)) else model


def score(model: ChurnModel | str | PathLike, data: PathLike | None, as_of: str | date,
          config: Config | PathLike | None = None, *, allow_stale_data: bool = False) -> pd.DataFrame:
    """Every current customer as of `as_of` with `status`, `churn_probability` and reason codes, in memory
    (the rows `churn score` plans for; nothing is written). Only `scored` rows have a probability. A date
    more than `scoring.max_staleness_days` after the newest activity, or in the future, is refused unless
    `allow_stale_data=True`; a warning (UserWarning) says what such a date, or one before most of the data,
    means for the scores.

    Example:
        >>> scores = score("models:/churn@champion", "data/demo", "2025-07-01")  # doctest: +SKIP
    """
    from churn.pipeline import score_customers

    return score_customers(_model(model), _path(data), str(as_of), _cfg(config), allow_stale_data=allow_stale_data)


def score_frame(model: ChurnModel | str | PathLike, frame: pd.DataFrame,
                config: Config | PathLike | None = None) -> pd.DataFrame:
    """Churn probability and reason codes (`reason_1`...) for each row of a feature frame, same index.

    Example:
        >>> score_frame(model, tf.frame.head(5))  # doctest: +SKIP
    """
    from churn.scoring.score import score_frame as run

    cfg = _cfg(config)
    return run(_model(model), frame, chunk_rows=cfg.scoring.chunk_rows,
               reason_method=cfg.scoring.reason_method)


def plan_retention(scores: pd.DataFrame, config: Config | PathLike | None = None, *,
                   budget: float | None = None) -> RetentionPlan:
    """Tiers, value, contact rules, control group and the incentives chosen within the budget (the
    config's, or `budget`): `.customers` one row per customer, `.summary` the totals.

    Example:
        >>> plan = plan_retention(scores, cfg, budget=10_000)  # doctest: +SKIP
        >>> plan.customers["incentive"].value_counts()  # doctest: +SKIP
    """
    from churn.planning import with_budget
    from churn.scoring.allocation import plan_retention as plan

    cfg = _cfg(config)
    if budget is not None:
        cfg = with_budget(cfg, budget)
    return plan(scores, cfg, seed=cfg.seed)


def compare_budgets(scores: pd.DataFrame, budgets: Sequence[float],
                    config: Config | PathLike | None = None) -> pd.DataFrame:
    """The plan under each budget, side by side: contacted, spend, expected saved and net value, and
    contacts per incentive (one column per budget).

    Example:
        >>> compare_budgets(scores, [5_000, 20_000], cfg)  # doctest: +SKIP
    """
    from churn.planning import budget_table

    cfg = _cfg(config)
    return budget_table({f"budget {b:,.0f}": plan_retention(scores, cfg, budget=b) for b in budgets})


def score_to_folder(model: str | PathLike, data: PathLike | None, as_of: str | date,
                    config: Config | PathLike | None = None, *, out: PathLike | None = None,
                    overwrite: bool = False, csv: bool = False, allow_stale_data: bool = False) -> ScoreRun:
    """Score, plan and write the outputs exactly as `churn score` does: `<out>/<as_of>/` with
    scores.parquet, segments/, segments.xlsx, report.html, alerts.csv and summary.json. The scoring date
    is checked as `churn score` checks it (`allow_stale_data` as `--allow-stale-data`); what it calls for
    is in the run's `warnings`, summary.json and the report.

    Example:
        >>> run = score_to_folder("models:/churn@champion", "data/demo", "2025-07-01")  # doctest: +SKIP
        >>> run.out_dir / "report.html"  # doctest: +SKIP
    """
    from churn.pipeline import score_to_folder as run

    cfg = _cfg(config)
    return run(cfg, str(model), str(out or cfg.output_dir), data=_path(data), as_of=str(as_of), csv=csv,
               overwrite=overwrite, allow_stale_data=allow_stale_data)


def promote(config: Config | PathLike | None = None, name: str | None = None) -> dict[str, Any]:
    """Move alias `champion` to the challenger if it beats the champion on the same holdout, as
    `churn promote` does; returns the decision and both scores.

    Example:
        >>> promote(cfg)["promoted"]  # doctest: +SKIP
    """
    from churn.pipeline import promote_model

    return promote_model(_cfg(config), name)
