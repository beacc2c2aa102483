"""A self-contained place to try the package (the notebooks' starting point): generated data, an MLflow
store, outputs and model bundles under one folder, wherever the caller's working directory is."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn.config import DEFAULT_CONFIG, Config, load_config

START = date(2024, 1, 1)
END = date(2025, 7, 1)  # 18 months of activity, as in `churn demo`
EVENTS_PER_CUSTOMER = 120.0  # the demo's weekly-use product: enough signal with 2,000 customers
_PARAMS_FILE = "workspace.json"


@dataclass
class Workspace:
    """Paths and settings of one workspace; `config` points its model bundles and outputs inside `root`."""

    root: Path
    data: Path
    outputs: Path
    tracking_uri: str
    config: Config


def default_root() -> Path:
    """<project>/outputs/notebooks when the package runs from a checkout (found from the package's own
    location, not the working directory), else a folder in the system's temp directory.

    Example:
        >>> default_root().name
        'notebooks'
    """
    project = DEFAULT_CONFIG.parents[1]
    if (project / "pyproject.toml").is_file():
        return project / "outputs" / "notebooks"
    return Path(tempfile.gettempdir()) / "churn-notebooks"


def quick(config: Config, rounds: int = 100) -> Config:
    """`config` with a fast model for small examples: three candidates (LightGBM, its stumps and the sparse
    logistic regression), one forward fold, no automatic tuning, fewer boosting rounds, one thread.

    Example:
        >>> quick(Config()).model.auto_tune_max_rows
        0
    """
    model = config.model.model_copy(update={"auto_tune_max_rows": 0, "num_boost_round": rounds, "n_jobs": 1,
                                            "candidates": ["lightgbm", "lightgbm_stumps", "logistic_l1"],
                                            "forward_folds": 1})
    return config.model_copy(update={"model": model})


def workspace(root: str | Path | None = None, *, customers: int = 2000, seed: int = 7,
              config: str | Path | Config | None = None, tracking_uri: str | None = None,
              fast: bool = True) -> Workspace:
    """Generate a data set (unless the same one is there already) and point MLflow at a store in `root`.

    MLflow settings are process-wide: this sets MLFLOW_TRACKING_URI (default `sqlite:///<root>/mlruns.db`)
    and CHURN_ARTIFACT_ROOT for the rest of the session, so `train`, `load_model` and `read_run` use it.

    Example:
        >>> ws = workspace("/tmp/churn-try", customers=2000)  # doctest: +SKIP
        >>> result = train(ws.config, ws.data)  # doctest: +SKIP
    """
    from churn.generate import generate

    base = Path(root).expanduser().resolve() if root else default_root()
    base.mkdir(parents=True, exist_ok=True)
    cfg = config if isinstance(config, Config) else load_config(config)
    cfg = cfg.model_copy(update={
        "output_dir": str(base / "outputs"),
        "model": cfg.model.model_copy(update={"bundle_dir": str(base / "models")}),
    })
    if fast:
        cfg = quick(cfg)
    data = base / "data"
    wanted = {"customers": customers, "seed": seed, "start": str(START), "end": str(END)}
    marker = base / _PARAMS_FILE
    # Same parameters, same tables (the generator is seeded): skip the work on a re-run.
    same = marker.is_file() and json.loads(marker.read_text()) == wanted
    if not (same and (data / "customers.parquet").exists()):
        generate(customers, START, END, seed, data, overwrite=True, events_per_customer=EVENTS_PER_CUSTOMER)
        marker.write_text(json.dumps(wanted))
    uri = tracking_uri or f"sqlite:///{base / 'mlruns.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["CHURN_ARTIFACT_ROOT"] = (base / "mlartifacts").as_uri()
    return Workspace(base, data, base / "outputs", uri, cfg)


def champion(ws: Workspace) -> str:
    """The model reference `models:/<name>@champion` of the workspace's store, training and promoting a
    model first when the store has none (so a scoring notebook also runs on its own).

    Example:
        >>> model_ref = champion(ws)  # doctest: +SKIP
    """
    from churn.pipeline import train_from_data
    from churn.training.registry import CHAMPION, alias_version
    from churn.training.tracking import mlflow_session

    name = ws.config.model.registered_name
    with mlflow_session() as client:
        version = alias_version(client, name, CHAMPION)  # None as well when no model of that name exists
    if version is None:
        train_from_data(ws.config, str(ws.data), promote=True)
    return f"models:/{name}@{CHAMPION}"
