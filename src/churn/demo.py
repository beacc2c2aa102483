"""`churn demo`: the whole flow on generated data, with embedded defaults (DuckDB, MLflow on SQLite)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from churn.config import Config, tracking_uri

DEMO_START = date(2024, 1, 1)
DEMO_END = date(2025, 7, 1)  # 18 months of activity
DEMO_EVENTS_PER_CUSTOMER = 120.0


@dataclass
class DemoResult:
    """What the demo produced."""

    train: Any
    score: Any
    tracking_uri: str
    data_dir: Path
    seconds: float


def run_demo(config: Config, *, workdir: Path = Path("."), customers: int = 20_000, seed: int = 42,
             start: date = DEMO_START, end: date = DEMO_END,
             progress: Callable[[str], None] | None = None) -> DemoResult:
    """Generate data, train on monthly snapshots (promoting the model), score the latest date, write outputs."""
    from churn.generate import generate
    from churn.labels import data_range
    from churn.pipeline import score_to_folder, train_from_data
    from churn.validation import load_source

    t0 = time.perf_counter()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # Everything the demo writes stays under workdir, unless the user pointed MLflow elsewhere.
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlruns.db'}")
    os.environ.setdefault("CHURN_ARTIFACT_ROOT", (workdir / "mlartifacts").as_uri())
    data_dir = workdir / "data" / "demo"
    cfg = config.model_copy(update={
        "model": config.model.model_copy(update={"bundle_dir": str(workdir / config.model.bundle_dir)}),
    })
    if progress:
        progress(f"generating {customers:,} customers")
    # ~7 events a month: a product people use weekly (the generator's default is sparser, for scale tests).
    generate(customers, start, end, seed, data_dir, overwrite=True, events_per_customer=DEMO_EVENTS_PER_CUSTOMER)
    res_train = train_from_data(cfg, str(data_dir), promote=True, progress=progress)
    ds = load_source(str(data_dir), cfg)
    try:
        _, data_end = data_range(ds)
    finally:
        ds.con.close()
    res_score = score_to_folder(cfg, f"models:/{cfg.model.registered_name}@champion", str(workdir / cfg.output_dir),
                                data=str(data_dir), as_of=str(data_end.date()), overwrite=True, progress=progress)
    return DemoResult(res_train, res_score, tracking_uri(), data_dir, time.perf_counter() - t0)
