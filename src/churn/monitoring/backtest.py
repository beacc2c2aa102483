"""Realised performance once a run's label window has passed: `churn backtest`.

Two ways in: a scoring run folder (`backtest_run`: its scores.parquet, the plan's contact and control-group
flags, and the model and label settings its drift.json recorded) or a model and a date (`backtest_model`:
the model's features at the date, scored now). Either way the realised label of every scored customer is
the one training would give them at that as-of date (`churn.labels`: the same spine and label rule), and the
metrics are computed on the customers whose outcome the campaign does not change
(`churn.monitoring.performance`). The result goes to backtest.json (beside the run's other files, or
`--out`), to MLflow as a monitoring run, and into the next reports' trend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config, LabelConfig
from churn.errors import ChurnError
from churn.labels import create_labels, create_spine, data_range, label_kind
from churn.monitoring.history import BACKTEST_FILE, DRIFT_FILE, read_record
from churn.monitoring.performance import finite, realised_performance, unaffected
from churn.monitoring.statistics import expected_roc_auc
from churn.monitoring.tracking import log_monitoring_run
from churn.scoring.plan_columns import texts_or_none, tier_order
from churn.sources import DataSource
from churn.timeline import label_complete, parse_as_of


@dataclass
class BacktestResult:
    """What one backtest found (the record written as backtest.json) and where it went."""

    record: dict[str, Any]
    path: Path | None = None
    notices: list[str] = field(default_factory=list)


def realised_labels(ds: DataSource, config: Config, as_of: pd.Timestamp) -> pd.DataFrame:
    """(customer_id, churned) of every customer active at `as_of`, by the label rule of `config.label`;
    a ChurnError when the data does not cover the label window yet."""
    h = config.label.horizon_days
    _, end = data_range(ds)
    if not label_complete(as_of, h, end):
        raise ChurnError(f"the label window of {as_of.date()} runs to {(as_of + pd.Timedelta(days=h)).date()} "
                         f"(label.horizon_days {h}) but the data ends {(end - pd.Timedelta(days=1)).date()}: "
                         "backtest once the data covers the whole window")
    ds.con.execute(f"CREATE OR REPLACE TEMP TABLE asof_dates AS SELECT TIMESTAMP '{as_of:%Y-%m-%d}' AS as_of")
    kind = label_kind(ds, config)
    create_spine(ds, config, kind)
    create_labels(ds, config, kind)
    out = ds.con.execute("SELECT customer_id, churned FROM labels").df()
    out["customer_id"] = out["customer_id"].astype(str)
    return out


def as_output_ids(ids: pd.Series, config: Config) -> pd.Series:
    """Customer ids as a run's outputs name them: keyed pseudonyms when `scoring.pseudonymise_ids` is on."""
    from churn.io import pseudonymise
    from churn.scoring.score import output_key

    key = output_key(config)
    return pseudonymise(ids, key).reset_index(drop=True) if key is not None else ids.astype(str).reset_index(drop=True)


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """(summary.json's meta, drift.json (empty when absent), scores.parquet) of a scoring run folder."""
    from churn.scoring.run_folder import read_scores, read_summary

    meta = read_summary(run_dir)["meta"]
    return meta, read_record(Path(run_dir) / DRIFT_FILE) or {}, read_scores(run_dir)


def _label_config(config: Config, recorded: dict[str, Any] | None) -> Config:
    """`config` with the label settings the model was trained with, when the run recorded them."""
    return config.model_copy(update={"label": LabelConfig.model_validate(recorded)}) if recorded else config


def _evaluate(plan: pd.DataFrame, labels: pd.DataFrame, config: Config) -> tuple[dict[str, Any], list[str]]:
    """Realised performance of the scored rows of `plan` against `labels`, on the unaffected customers."""
    scored = plan[pd.to_numeric(plan["churn_probability"], errors="coerce").notna()].reset_index(drop=True)
    ids = texts_or_none(scored["customer_id"])
    y = ids.map(dict(zip(labels["customer_id"], labels["churned"], strict=True)))
    notices = []
    if y.isna().any():
        notices.append(f"{int(y.isna().sum()):,} scored customers have no realised label (not active at the "
                       "as-of date in this data): left out")
    have = y.notna().to_numpy()
    if len(scored) and not have.any():
        raise ChurnError("none of the run's scored customers has a realised label in this data: is it the data "
                         "the run scored? (a run with pseudonymised ids needs scoring.pseudonymise_ids and the "
                         "same CHURN_PSEUDONYM_KEY)")
    mask, population = unaffected(scored)
    mask &= have
    tiers = texts_or_none(scored["risk_tier"]).to_numpy() if "risk_tier" in scored.columns else None
    order = tier_order(scored["risk_tier"], scored["churn_probability"]) if tiers is not None else []
    p = pd.to_numeric(scored["churn_probability"]).to_numpy(dtype=float)
    res = realised_performance(y.to_numpy(dtype=float, na_value=np.nan)[mask], p[mask],
                               tiers[mask] if tiers is not None else None, order,
                               config.monitoring.retrain_below_roc_auc)
    return {"population": population, **res}, notices


def _finish(record: dict[str, Any], path: Path | None, overwrite: bool, config: Config,
            notices: list[str]) -> BacktestResult:
    from churn.io import write_json
    from churn.monitoring.tracking import metric_name

    if path is not None:
        write_json(record, path, overwrite=overwrite)
    r = record["realised"]
    metrics = {k: r.get(k) for k in ("roc_auc", "pr_auc", "lift_top_10pct", "observed_churn_rate", "mean_predicted",
                                      "customers", "churners")}
    metrics |= {metric_name(f"observed_rate_tier_{t['group']}"): t["observed"] for t in r["calibration_by_tier"]}
    metrics |= {"expected_roc_auc": record.get("expected_roc_auc"), "holdout_roc_auc": record["model"].get("holdout_roc_auc"),
                "retrain": float(bool(r["retrain"]))}
    run_id, why_not = log_monitoring_run("backtest", record["as_of"], record["model"], metrics, config,
                                         artifacts=[path] if path is not None else [])
    notices = notices + ([why_not] if why_not else [f"backtest logged to MLflow (run {run_id})"] if run_id else [])
    return BacktestResult(record, path, notices)


def backtest_run(run_dir: str | Path, data: str | None, config: Config, *, overwrite: bool = False) -> BacktestResult:
    """Realised performance of a scoring run folder once its label window has passed; writes
    `<run_dir>/backtest.json` (refusing to replace one unless `overwrite`)."""
    from churn.io import ensure_writable
    from churn.validation import load_source

    run_dir = Path(run_dir)
    meta, drift, scores = read_run(run_dir)
    path = ensure_writable(run_dir / BACKTEST_FILE, overwrite)  # refused before the work, not after it
    when = parse_as_of(str(meta.get("as_of")))
    cfg = _label_config(config, drift.get("label_config"))
    ds = load_source(data, cfg)
    try:
        labels = realised_labels(ds, cfg, when)
    finally:
        ds.con.close()
    labels["customer_id"] = as_output_ids(labels["customer_id"], config)
    realised, notices = _evaluate(scores, labels, config)
    estimate = drift.get("estimate") or {}
    model = drift.get("model") or {"ref": meta.get("model"), "registered_version": None}
    record = {"as_of": str(when.date()), "run": str(run_dir), "model": model,
              "label": cfg.label.model_dump(mode="json"), "expected_roc_auc": estimate.get("expected_roc_auc"),
              "realised": realised}
    return _finish(record, path, overwrite, config, notices)


def backtest_model(model_ref: str, as_of: str, data: str | None, config: Config, *, out: str | None = None,
                   overwrite: bool = False) -> BacktestResult:
    """Realised performance of a model on every customer active at `as_of` (no campaign: all of them);
    writes the record to `out` (JSON) when given."""
    from churn.io import ensure_writable
    from churn.monitoring.health import model_facts
    from churn.scoring import status
    from churn.scoring.score import source_rows
    from churn.scoring.tiers import RiskTiers
    from churn.training.loading import load_model

    path = ensure_writable(out, overwrite) if out else None
    when = parse_as_of(as_of)
    model = load_model(model_ref)
    got: dict[str, pd.DataFrame] = {}
    rows, statuses, notices, _ = source_rows(model, data, when, config, model_ref=model_ref,
                                          also=lambda ds, cfg: got.update(labels=realised_labels(ds, cfg, when)))
    rows = rows[statuses == status.SCORED].reset_index(drop=True)
    p = pd.Series(np.asarray(model.predict_risk(rows), dtype=float))
    plan = pd.DataFrame({"customer_id": rows["customer_id"].astype(str), "churn_probability": p,
                         "risk_tier": RiskTiers(config.tiers).fit(p).transform(p)})
    realised, more = _evaluate(plan, got["labels"], config)
    label = model.source_settings.get("label_config") or config.label.model_dump(mode="json")
    # The estimate the same scores give without labels, beside what the labels say.
    record = {"as_of": str(when.date()), "run": None, "model": model_facts(model, model_ref), "label": label,
              "expected_roc_auc": finite(expected_roc_auc(p.to_numpy())), "realised": realised}
    return _finish(record, path, overwrite, config, list(notices) + more)
