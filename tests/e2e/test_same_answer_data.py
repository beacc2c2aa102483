"""Data-folder mode: `churn score` on a training date reproduces the registered model's in-memory
probabilities for every scored customer, and the MLflow pyfunc's; the refit saw every snapshot."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"

from datetime import date

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from churn.cli import app


@pytest.fixture(scope="module")
def trained(mlflow_store):
    from churn.generate import generate

    tmp = mlflow_store
    data = tmp / "data"
    generate(1500, date(2024, 1, 1), date(2025, 7, 1), 3, data)
    cfg = tmp / "config.yaml"
    cfg.write_text(f"snapshots:\n  count: 5\nmodel:\n  registered_name: same-data\n  experiment: same-data\n  n_jobs: 1\n  num_boost_round: 200\n  early_stopping_rounds: 20\n"
                   f"  auto_tune_max_rows: 0\n  candidates: [lightgbm, logistic]\n  forward_folds: 1\n  plots: false\n"
                   f"  bundle_dir: {tmp / 'models'}\n")
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--data", str(data)])
    assert res.exit_code == 0, res.output
    assert "registered models:/same-data/1" in " ".join(res.output.split())
    return {"tmp": tmp, "data": data, "cfg": cfg}


def _cli_scores(trained, as_of: str, out: str) -> pd.Series:
    """`churn score` of the registered model at `as_of`: the scored customers' probabilities."""
    res = CliRunner().invoke(app, ["score", "--config", str(trained["cfg"]), "--data", str(trained["data"]),
                                   "--as-of", as_of, "--model", "models:/same-data/1", "--out",
                                   str(trained["tmp"] / out)])
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(trained["tmp"] / out / as_of / "scores.parquet")
    return scores[scores["status"] == "scored"].set_index("customer_id")["churn_probability"]


def _api_features(trained, settings: dict, as_of: str, btyd_params) -> pd.DataFrame:
    """The date's features through the Python API, with the model's build settings (`btyd_params` given)."""
    from churn.config import load_config
    from churn.features.engine import build_features
    from churn.validation import load_source

    cfg = load_config(trained["cfg"])
    ds = load_source(str(trained["data"]), cfg)
    try:
        return build_features(ds, [pd.Timestamp(as_of)], cfg, event_types=settings["event_types"],
                              label=settings["label"], btyd_params=btyd_params).to_pandas()
    finally:
        ds.con.close()


def test_scoring_a_training_date_reproduces_the_model(trained):
    from churn.training.loading import load_model

    model = load_model("models:/same-data/1")
    as_of = model.metadata_["snapshots"]["holdout"][0]
    scored = _cli_scores(trained, as_of, "out")
    # The same date's features through the Python API, with the settings the model's preparation holds.
    settings = model.source_settings
    frame = _api_features(trained, settings, as_of, settings["btyd_params"])
    expected = pd.Series(model.predict_risk(frame), index=frame["customer_id"])
    assert len(scored) == len(expected) > 300
    np.testing.assert_allclose(scored.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    from churn.training.tracking import mlflow_session

    with mlflow_session():  # the project's store, whatever MLflow's process-wide URI says
        pyfunc = mlflow.pyfunc.load_model("models:/same-data/1")
    np.testing.assert_allclose(pyfunc.predict(frame[[f.name for f in model.features_]]), expected.to_numpy(),
                               rtol=0, atol=1e-9)


def test_a_later_date_is_scored_with_the_bgnbd_fit_frozen_at_training(trained):
    """After the training dates, BG/NBD is not refitted: the CLI's scores are the model applied to features
    predicted with the stored parameters (the newest training date's fit), not with a fit at that date."""
    from churn.training.loading import load_model

    model = load_model("models:/same-data/1")
    settings = model.source_settings
    assert sorted(settings["btyd_params"]) == ["a", "alpha", "b", "r"]
    assert all(v > 0 for v in settings["btyd_params"].values())
    later = "2025-07-01"
    assert pd.Timestamp(later) > pd.Timestamp(model.metadata_["snapshots"]["holdout"][0])
    scored = _cli_scores(trained, later, "later")
    frames = {name: _api_features(trained, settings, later, params)
              for name, params in (("frozen", settings["btyd_params"]), ("refit", None))}
    frozen = frames["frozen"]
    np.testing.assert_allclose(scored.loc[frozen["customer_id"]].to_numpy(), model.predict_risk(frozen),
                               rtol=0, atol=1e-9)
    # A fit at the scoring date would have given other values (so the comparison above can tell them apart).
    assert not np.allclose(frozen["btyd_p_no_order"].fillna(-1), frames["refit"]["btyd_p_no_order"].fillna(-1))


def test_refit_used_every_snapshot(trained):
    from churn.config import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri())
    exp = client.get_experiment_by_name("same-data")
    parent = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name.startswith("train-")][0]
    p = parent.data.params
    # every row of the training frame, holdout and validation included, went into the registered model
    assert int(p["refit.rows"]) == int(p["n_rows"]) > int(p["rows.train"]) + int(p["rows.holdout"])
    assert p["chosen"] == parent.data.tags["model.chosen"] and parent.data.tags["model.chosen_why"]
    names = {r.info.run_name for r in client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")}
    assert f"candidate-{p['chosen']}" in names and "candidate-logistic" in names
