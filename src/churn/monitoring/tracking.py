"""Monitoring runs in MLflow: each scoring run's health and each backtest, as a run of the experiment
`monitoring.experiment`, tagged with the model it watched (registered name and version, model URI and
training run when known) so the MLflow UI lists a model version's health over time.

A run is logged when the project has a tracking store: MLFLOW_TRACKING_URI is set, or the model itself was
loaded from MLflow (models:/ or runs:/). A bundle scored without either is not logged (a monitoring run
would otherwise create ./mlruns.db wherever scoring ran); the caller gets a notice instead. A store that
fails is a notice too, never a failed run: the run folder is the output.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from churn.config import Config

_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. /]")


def metric_name(text: str) -> str:
    """`text` as an MLflow metric name (letters, digits, _ - . space / only)."""
    return _UNSAFE.sub("_", str(text))[:250]


def store_known(model_ref: str) -> bool:
    """Whether there is a tracking store to log to (see the module docstring)."""
    return bool(os.environ.get("MLFLOW_TRACKING_URI")) or str(model_ref).startswith(("models:/", "runs:/"))


def log_monitoring_run(kind: str, as_of: str, model: dict[str, Any], metrics: dict[str, Any],
                       config: Config, artifacts: Sequence[Path] = (), extra_tags: dict[str, str] | None = None,
                       ) -> tuple[str | None, str | None]:
    """Log one monitoring run (`kind`: health or backtest); returns (run id, None) or (None, why not)."""
    if not config.monitoring.mlflow:
        return None, None
    if not store_known(model.get("ref", "")):
        return None, (f"monitoring run not logged to MLflow: the model {model.get('ref')} is a bundle and "
                      "MLFLOW_TRACKING_URI is not set")
    import mlflow

    from churn.training.tracking import ensure_experiment, log_metrics, mlflow_session

    tags = {
        "churn.monitoring": kind, "as_of": as_of,
        **{f"model.{k}": str(v) for k, v in model.items() if v is not None and k != "holdout_roc_auc"},
        **(extra_tags or {}),
    }
    try:
        with mlflow_session() as client:
            exp = ensure_experiment(client, config.monitoring.experiment)
            with mlflow.start_run(experiment_id=exp, run_name=f"{kind}-{as_of}") as run:
                mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})
                log_metrics({metric_name(k): v for k, v in metrics.items()})
                for path in artifacts:
                    mlflow.log_artifact(str(path))
                return run.info.run_id, None
    except Exception as exc:  # noqa: BLE001 - a store that fails must not fail a finished run
        detail = str(getattr(exc, "message", None) or exc).splitlines()[0][:300]
        return None, f"monitoring run not logged to MLflow ({type(exc).__name__}: {detail})"


def health_metrics(record: dict[str, Any]) -> dict[str, Any]:
    """The numbers of a run's health record (drift.json) worth a chart in MLflow."""
    drift = record.get("drift") or {}
    est = record.get("estimate") or {}
    out: dict[str, Any] = {
        "breaches": len(record.get("breaches") or []),
        "expected_roc_auc": est.get("expected_roc_auc"), "expected_churn_rate": est.get("expected_churn_rate"),
        "holdout_roc_auc": (record.get("model") or {}).get("holdout_roc_auc"),
        "score_psi": drift.get("score_psi"), "mean_predicted": drift.get("mean_now"),
        "mean_predicted_change": drift.get("mean_change"),
    }
    for t in drift.get("tiers") or []:
        out[f"tier_share_{t['tier']}"] = t["now"]
    for f in drift.get("features") or []:
        out[f"{'psi' if f['kind'] == 'numeric' else 'js'}_{f['feature']}"] = f["psi"] if f["kind"] == "numeric" else f["js_distance"]
    return out
