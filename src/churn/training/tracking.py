"""MLflow plumbing: where runs go, the experiment, git and data fingerprints, safe metric/param logging.

The tracking URI comes from `churn.config.tracking_uri()` (honours MLFLOW_TRACKING_URI); a new experiment
keeps its artifacts under `churn.config.artifact_root()` so a SQLite store does not scatter ./mlruns.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from churn import config as churn_config

log = logging.getLogger(__name__)
MAX_PARAM_CHARS = 6000


@contextlib.contextmanager
def mlflow_session(uri: str | None = None) -> Iterator[MlflowClient]:
    """Point MLflow at the project's store for the duration of the block, quietly.

    MLflow's fluent API is process-global (and `set_tracking_uri` also exports MLFLOW_TRACKING_URI), so the
    previous URI and environment are put back afterwards rather than left behind. The registry follows the
    tracking URI unless MLFLOW_REGISTRY_URI says otherwise.
    """
    uri = uri or churn_config.tracking_uri()
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    prev_env = {k: os.environ.get(k) for k in keys}
    prev_uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    quiet = [logging.getLogger(n) for n in ("mlflow", "alembic")]
    levels = [lg.level for lg in quiet]
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    for lg in quiet:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*input example.*")
            warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
            mlflow.set_tracking_uri(uri)
            yield MlflowClient(tracking_uri=uri)
    finally:
        mlflow.set_tracking_uri(prev_uri)
        for k, v in prev_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for lg, lv in zip(quiet, levels):
            lg.setLevel(lv)


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created with artifact_location=artifact_root() when new; against a
    tracking server (http/https) without CHURN_ARTIFACT_ROOT, where the server says (its proxied artifact
    store), not a folder on this machine."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        remote = str(client.tracking_uri).startswith(("http://", "https://"))
        location = None if remote and not os.environ.get("CHURN_ARTIFACT_ROOT") else churn_config.artifact_root()
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another process may have created it meanwhile: look again, re-raise if still absent
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_info(path: str | None = None) -> dict[str, str]:
    """Commit and dirty flag of the git repository around `path` (CWD), or {} outside one."""
    try:
        def _git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, timeout=5,
                                  check=True).stdout.strip()

        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
        return {"git_commit": commit, "git_dirty": str(dirty).lower()}
    except (OSError, subprocess.SubprocessError):
        return {}


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 over the row hashes of a frame (column names and order included)."""
    h = hashlib.sha256("|".join(map(str, frame.columns)).encode())
    if len(frame):
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(frame: pd.DataFrame, *, id_col: str, time_col: str | None, label_col: str) -> dict[str, Any]:
    """Row/customer counts, snapshot range, positive rate and a content hash of a training frame."""
    fp: dict[str, Any] = {
        "rows": len(frame),
        "customers": int(frame[id_col].nunique()),
        "columns": int(frame.shape[1]),
        "positive_rate": round(float(frame[label_col].mean()), 6) if len(frame) else None,
        "sha256": frame_hash(frame),
    }
    if time_col and time_col in frame.columns:
        t = pd.to_datetime(frame[time_col])
        fp.update(snapshots=int(t.nunique()), first_as_of=str(t.min().date()), last_as_of=str(t.max().date()))
    return fp


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_params(params: dict[str, Any]) -> None:
    """Log params as strings (long values cut to MLflow's limit)."""
    clean = {k: (str(v) if v is not None else "None")[:MAX_PARAM_CHARS] for k, v in flatten(params).items()}
    mlflow.log_params(clean)


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Only the finite numeric values (MLflow stores NaN awkwardly and it means 'undefined' here)."""
    out = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[k] = f
    return out


def log_metrics(metrics: dict[str, Any], prefix: str = "", run_id: str | None = None,
                client: MlflowClient | None = None) -> None:
    """Log the finite values of `metrics` (to the active run, or `run_id` via `client`)."""
    vals = {f"{prefix}{k}": v for k, v in finite_metrics(metrics).items()}
    if run_id and client:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, ts, 0) for k, v in vals.items()])
    else:
        mlflow.log_metrics(vals)


def jsonable(obj: Any) -> Any:
    """Numpy/pandas scalars and dates as plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (pd.Timestamp,)):
        return str(obj.date()) if obj == obj.normalize() else obj.isoformat()
    return obj
