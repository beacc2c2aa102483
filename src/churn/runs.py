"""A training run read back from MLflow: what a data scientist looks at after `churn train`.

Everything here is read from the tracking store (metrics, tags, artifacts), not from the in-memory
`TrainResult`, so a notebook can inspect any past run by its id.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from churn.errors import ChurnError

CANDIDATE_PREFIX = "candidate_"
LIFT_BINS = 10


@dataclass
class RunReport:
    """One training run as stored in MLflow.

    `candidates`: one row per candidate model with `forward_roc_auc` (what the choice read),
    `valid_roc_auc` and its evaluation fit's holdout metrics; `calibration`: observed churn rate against mean predicted probability per bin;
    `lift`: churn rate and lift per risk decile of the holdout; `importance`: gain per feature and its
    family (largest first);
    `plots`: the run's PNG plots, downloaded to a local folder (none for a run trained with `model.plots`
    off).
    """

    run_id: str
    chosen: str
    chosen_why: str
    metrics: dict[str, float]
    candidates: pd.DataFrame
    calibration: pd.DataFrame
    lift: pd.DataFrame
    importance: pd.DataFrame
    plots: dict[str, Path] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def candidate_table(metrics: dict[str, float]) -> pd.DataFrame:
    """Candidate metrics logged as `candidate_<name>_<metric>` -> one row per candidate, sorted by the
    forward ROC AUC the choice read (best first; validation ROC AUC for runs without one).

    Example:
        >>> metrics = {"candidate_lightgbm_stumps_roc_auc": 0.8,
        ...            "candidate_lightgbm_stumps_valid_roc_auc": 0.7}
        >>> candidate_table(metrics).to_dict("index")
        {'lightgbm_stumps': {'roc_auc': 0.8, 'valid_roc_auc': 0.7}}
    """
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if not key.startswith(CANDIDATE_PREFIX):
            continue
        rest = key[len(CANDIDATE_PREFIX):]
        # Candidate names may contain underscores (lightgbm_stumps): split at the known metric names.
        for metric in ("forward_roc_auc", "valid_roc_auc", "roc_auc", "pr_auc", "log_loss", "brier", "lift_top_10pct",
                       "capture_top_10pct", "base_rate", "n_rows", "n_churners"):
            if rest.endswith("_" + metric) and not rest.endswith("_raw"):
                rows.setdefault(rest[: -len(metric) - 1], {})[metric] = value
                break
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "candidate"
    for key in ("forward_roc_auc", "valid_roc_auc"):
        if key in table:
            return table.sort_values(key, ascending=False)
    return table


def lift_table(label: np.ndarray, risk: np.ndarray, bins: int = LIFT_BINS) -> pd.DataFrame:
    """Churn rate, lift over the base rate and cumulative capture per risk decile (riskiest first).

    Example:
        >>> lift_table(np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3]), bins=2)["lift"].tolist()
        [2.0, 0.0]
    """
    y = np.asarray(label, dtype=float)
    order = np.argsort(-np.asarray(risk, dtype=float), kind="mergesort")
    decile = np.empty(len(y), dtype=int)
    decile[order] = np.arange(len(y)) * bins // max(len(y), 1) + 1
    df = pd.DataFrame({"decile": decile, "churned": y, "risk": risk})
    out = df.groupby("decile").agg(customers=("churned", "size"), churners=("churned", "sum"),
                                   mean_risk=("risk", "mean"), churn_rate=("churned", "mean"))
    base = y.mean() if len(y) else float("nan")
    out["lift"] = out["churn_rate"] / base if base else np.nan
    out["capture_cumulative"] = out["churners"].cumsum() / max(y.sum(), 1.0)
    return out


def read_run(run_id: str) -> RunReport:
    """Read a training run back from the project's MLflow store (`MLFLOW_TRACKING_URI`).

    Example:
        >>> report = read_run(result.run_id)  # doctest: +SKIP
        >>> report.candidates[["valid_roc_auc", "roc_auc"]]  # doctest: +SKIP
    """
    from mlflow.exceptions import MlflowException

    from churn.training.registry import HOLDOUT_ARTIFACT_DIR, HOLDOUT_FILE, LABEL_COLUMN, RISK_COLUMN
    from churn.training.tracking import mlflow_session

    with mlflow_session() as client:
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            raise ChurnError(f"no MLflow run {run_id}: {exc.message}") from None
        # Downloads go to a folder that outlives the call: the notebook shows the PNGs afterwards.
        local = Path(tempfile.mkdtemp(prefix=f"churn-run-{run_id[:8]}-"))
        holdout_file = client.download_artifacts(run_id, f"{HOLDOUT_ARTIFACT_DIR}/{HOLDOUT_FILE}", str(local))
        holdout = pd.read_parquet(holdout_file)
        reliability = pd.read_csv(client.download_artifacts(run_id, "reliability.csv", str(local)))
        features_file = client.download_artifacts(run_id, "features.json", str(local))
        features_doc = json.loads(Path(features_file).read_text())
        drawn = client.list_artifacts(run_id, "plots")  # none when the run was trained with model.plots off
        plots_dir = Path(client.download_artifacts(run_id, "plots", str(local))) if drawn else None
    metrics = dict(run.data.metrics)
    tags = dict(run.data.tags)
    return RunReport(
        run_id=run_id,
        chosen=tags.get("model.chosen", ""),
        chosen_why=tags.get("model.chosen_why", ""),
        metrics={k: v for k, v in metrics.items() if not k.startswith(("candidate_", "baseline_"))},
        candidates=candidate_table(metrics),
        calibration=reliability,
        lift=lift_table(holdout[LABEL_COLUMN].to_numpy(), holdout[RISK_COLUMN].to_numpy()),
        importance=_importance(run_id, features_doc),
        plots={p.stem: p for p in sorted(plots_dir.glob("*.png"))} if plots_dir else {},
        tags={k: v for k, v in tags.items() if not k.startswith("mlflow.")},
    )


def _importance(run_id: str, features_doc: list[dict]) -> pd.DataFrame:
    """Gain importance of the run's registered model per feature, with the feature's family."""
    from churn.training.loading import load_model

    gain = load_model(f"runs:/{run_id}/model").feature_importance("gain")
    family = {f["name"]: f.get("family", "") for f in features_doc}
    out = pd.DataFrame({"feature": gain.index, "family": [family.get(n, "") for n in gain.index],
                        "importance": gain.to_numpy(dtype=float)})
    return out.sort_values("importance", ascending=False, ignore_index=True)
