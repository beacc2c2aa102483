"""A scoring run's model health: drift against the training reference, the estimated performance, and the
trends of earlier runs, gathered once for drift.json, the report's "Model health" section, the CLI's
warnings, MLflow and the alert digests.

`run_health` is the one step scoring calls (a pure function of the run's rows and the model, plus reading
earlier runs' records under the output root); `health_files` writes its files into the run's temporary folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.monitoring.drift import measure_drift
from churn.monitoring.history import DRIFT_FILE, trend

NOTIFICATIONS_FILE = "notifications.json"
DRIFT_SAMPLE_ROWS = 200_000
from churn.monitoring.performance import estimate_performance

NO_REFERENCE = ("the model carries no training reference (drift_reference_; models trained before monitoring "
                "existed): drift is not measured for this run")


@dataclass
class RunHealth:
    """What one run's monitoring found: the record written as drift.json, and its breaches and notices."""

    record: dict[str, Any]
    breaches: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)
    kpis: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """The report's "Model health" section: the record, the trend of earlier runs and the KPI trend."""
        return {**self.record, "trend": self.trend, "kpis": self.kpis}


def model_facts(model: Any, model_ref: str) -> dict[str, Any]:
    """Which model scored: its reference, registered name and version, training run and holdout ROC AUC."""
    meta = getattr(model, "metadata_", {}) or {}
    holdout = (meta.get("metrics") or {}).get("roc_auc")
    return {
        "ref": str(model_ref),
        "registered_name": meta.get("registered_name"),
        "registered_version": None if meta.get("registered_version") is None else str(meta["registered_version"]),
        "model_uri": meta.get("model_uri"),
        "training_run_id": (meta.get("mlflow") or {}).get("run_id"),
        "holdout_roc_auc": float(holdout) if holdout is not None and np.isfinite(holdout) else None,
    }


def drift_rows(rows: pd.DataFrame, scored: np.ndarray, seed: int) -> pd.DataFrame:
    """The scored rows whose inputs the drift reads: all of them, or a seeded sample of DRIFT_SAMPLE_ROWS on a
    larger run (shares of 200,000 rows are within a few thousandths of the whole; memory stays bounded)."""
    idx = np.flatnonzero(scored)
    if len(idx) > DRIFT_SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(seed).choice(idx, DRIFT_SAMPLE_ROWS, replace=False))
    return rows.iloc[idx]


def run_health(model: Any, model_ref: str, rows: pd.DataFrame, is_scored: np.ndarray, plan: pd.DataFrame,
               when: pd.Timestamp, out_root: Path, config: Config,
               kpis: dict[str, Any] | None = None) -> RunHealth:
    """Health of the run whose `rows` (model inputs, as given to the model; `is_scored` marks those scored)
    became `plan` (the retention plan's customers, with churn_probability, risk_tier, contact and holdout);
    `kpis`: the report's business KPIs (`churn.monitoring.kpis.report_kpis`), when the run read raw data."""
    mc = config.monitoring
    facts = model_facts(model, model_ref)
    notices: list[str] = list((kpis or {}).get("notices", []))
    drift = None
    reference = getattr(model, "drift_reference_", None)
    scored = plan[pd.to_numeric(plan["churn_probability"], errors="coerce").notna()]
    if not mc.drift:
        notices.append("monitoring.drift is off: drift is not measured for this run")
    elif reference is None:
        notices.append(NO_REFERENCE)
    else:
        clean = model.preparation_.clean(drift_rows(rows, is_scored, config.seed))
        drift = measure_drift(reference, clean, scored["churn_probability"].to_numpy(dtype=float),
                              scored["risk_tier"] if "risk_tier" in scored.columns else None, mc)
    estimate = estimate_performance(plan, facts["holdout_roc_auc"], mc.estimated_auc_margin)
    breaches = [*(drift.breaches if drift else []), *estimate["breaches"]]
    source = model.source_settings
    record = {
        "as_of": str(when.date()),
        "model": facts,
        "label_config": source.get("label_config"),
        "drift": drift.to_dict() if drift else None,
        "estimate": estimate,
        "breaches": breaches,
        "notices": notices,
        "thresholds": mc.model_dump(mode="json", exclude={"delivery"}),
    }
    return RunHealth(record, breaches, notices, trend(out_root, when, mc.trend_runs), list((kpis or {}).get("rows", [])))


def health_files(health: RunHealth, alerts: pd.DataFrame, plan: pd.DataFrame, folder: Path,
                 config: Config) -> list[Path]:
    """Write drift.json and notifications.json (the digests of risk jumps and the health breaches, what
    `churn notify` and the delivery after scoring send) into the run's (temporary) folder."""
    from churn.io import write_json
    from churn.monitoring.digest import health_message, risk_jump_digests

    as_of = health.record["as_of"]
    version = health.record["model"]["registered_version"]
    label = f"{health.record['model']['registered_name']}/{version}" if version else health.record["model"]["ref"]
    messages = [*risk_jump_digests(alerts, plan, as_of, config), *health_message(health.breaches, as_of, label)]
    return [write_json(health.record, folder / DRIFT_FILE),
            write_json({"as_of": as_of, "messages": messages}, folder / NOTIFICATIONS_FILE)]
