"""Models no better than chance, or worse (issue 26), through the CLI on ready tables with snapshots:

- a population with no learnable signal: registered, but said loudly, and `--promote` is refused;
- a relationship that flips between the training snapshots and the holdout's (a model ranking churners
  below non-churners): never registered without `--force`, and the MLflow run records why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from typer.testing import CliRunner

from churn.cli import app
from churn.config import tracking_uri

CONFIG = ("model:\n  n_jobs: 1\n  num_boost_round: 60\n  early_stopping_rounds: 10\n  auto_tune_max_rows: 0\n"
          "  candidates: [lightgbm, logistic_l1]\n  registered_name: {name}\n  experiment: {name}\n"
          "  plots: false\n  bundle_dir: {models}\n")


def _snapshots(n: int, seed: int, flip_last: bool, signal: float) -> pd.DataFrame:
    """n customers x 6 monthly snapshots; churn depends on `x` with strength `signal`, reversed in the last
    snapshot when `flip_last`."""
    rng = np.random.default_rng(seed)
    rows = []
    dates = pd.date_range("2024-01-01", periods=6, freq="MS")
    for k, when in enumerate(dates):
        x = rng.normal(size=n)
        sign = -1.0 if flip_last and k == len(dates) - 1 else 1.0
        p = 1 / (1 + np.exp(-(-1.0 + sign * signal * x)))
        rows.append(pd.DataFrame({"id": [f"C{i:05d}" for i in range(n)], "snap": when.date(), "x": x,
                                  "noise": rng.normal(size=n), "churned": (rng.random(n) < p).astype(int)}))
    return pd.concat(rows)


def _train(tmp: Path, name: str, df: pd.DataFrame, *extra: str):
    table = tmp / f"{name}.csv"
    df.to_csv(table, index=False)
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(CONFIG.format(name=name, models=tmp / "models"))
    return CliRunner().invoke(app, ["train", "--config", str(cfg), "--table", str(table), "--target", "churned",
                                    "--id", "id", "--time-col", "snap", *extra])


def test_no_signal_is_said_loudly_and_cannot_be_promoted(mlflow_store, tmp_path):
    res = _train(tmp_path, "coin", _snapshots(700, 1, flip_last=False, signal=0.0), "--promote")
    said = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "THE MODEL IS NO BETTER THAN CHANCE" in said and "includes 0.5" in said
    assert "NOT PROMOTED" in said and "not promoted: the challenger is no better than chance" in said
    client = MlflowClient(tracking_uri=tracking_uri())
    assert not client.get_registered_model("coin").aliases.get("champion")
    assert client.get_model_version("coin", "1").tags["promotion.decision"] == "refused"


def test_an_inverted_model_is_not_registered_without_force(mlflow_store, tmp_path):
    df = _snapshots(900, 2, flip_last=True, signal=2.0)
    res = _train(tmp_path, "flip", df)
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "THE MODEL RANKS CHURNERS BELOW NON-CHURNERS" in said and "NOT registered" in said and "--force" in said
    client = MlflowClient(tracking_uri=tracking_uri())
    assert not client.search_model_versions("name='flip'")
    [run] = client.search_runs([client.get_experiment_by_name("flip").experiment_id],
                               "tags.mlflow.runName LIKE 'train-%'")
    assert run.info.status == "FAILED" and run.data.tags["chance_check"] == "inverted"
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    forced = _train(tmp_path, "flip", df, "--force")
    assert forced.exit_code == 0, forced.output
    assert [str(v.version) for v in client.search_model_versions("name='flip'")] == ["1"]
