"""After a scoring run's folder is in place: its health logged as a monitoring run in MLflow, and its
messages delivered to people (`churn.monitoring.delivery`). What `churn score` does last."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.config import Config
from churn.monitoring.delivery import deliver_run
from churn.monitoring.history import DRIFT_FILE
from churn.monitoring.tracking import health_metrics, log_monitoring_run


def publish_run(run_dir: Path, health: dict[str, Any], config: Config) -> list[str]:
    """Log the run's health (drift.json) to MLflow, then deliver its messages; returns what to tell the user.

    A store that fails is a notice; a delivery that fails raises `DeliveryError` (the run folder stays)."""
    notes: list[str] = []
    if health:
        run_id, why_not = log_monitoring_run("health", health["as_of"], health["model"], health_metrics(health),
                                             config, artifacts=[Path(run_dir) / DRIFT_FILE])
        notes += [why_not] if why_not else [f"model health logged to MLflow (run {run_id})"] if run_id else []
    report = deliver_run(Path(run_dir), config)
    notes += [f"sent {s}" for s in report.sent] + [f"already sent, not again: {s}" for s in report.skipped]
    return notes + report.notes if config.monitoring.delivery.channels else notes
