"""Model health on every scoring run, end to end on a real LightGBM model and real run folders: drift.json,
the report's "Model health" section, the CLI's warnings, the digest of breaches, the trend of earlier runs,
a model without a reference, and the monitoring run in a real MLflow store (SQLite) naming the model version.

The model is fitted here on the synthetic frame and given its training reference exactly as the trainer
will (`model.drift_reference_ = reference_for(...)`), then scored from a bundle like any registered model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import forked_cli
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from churn.config import Config
from churn.monitoring.health import NO_REFERENCE
from churn.monitoring.reference import reference_for
from churn.pipeline import score_to_folder
from churn.scoring.score import score_table
from churn.training.bundle import export_bundle
from churn.training.model import ChurnModel
from churn.training.synthetic import synthetic_training_frame

HOLDOUT_AUC = 0.81  # what the trainer records in the model's metadata (metrics -> roc_auc)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """A fitted model with its reference (bundle `with_reference`) and without (`without_reference`), and
    next month's customers as a ready table: unchanged, and with planted shifts."""
    root = tmp_path_factory.mktemp("health")
    frame, features = synthetic_training_frame(2000, 5, seed=7)
    month = frame["as_of"].dt.strftime("%Y-%m-%d")
    train, valid = frame[month <= "2025-03-01"], frame[month == "2025-04-01"]
    half = valid["customer_id"].str[-1].isin(list("01234"))
    cfg = Config()
    model = ChurnModel(features, cfg.model.params, num_boost_round=200, early_stopping_rounds=20, n_jobs=1, seed=3)
    model.fit(train, train["churned"], eval_set=(valid[half], valid["churned"][half]),
              calibration_set=(valid[~half], valid["churned"][~half]))
    model.metadata_.update({"metrics": {"roc_auc": HOLDOUT_AUC}, "mlflow": {"run_id": "training-run-1"}})
    export_bundle(model, root / "without_reference", name="churn-health", version=3)
    model.drift_reference_ = reference_for(model, valid, None, cfg)  # the trainer's hook
    export_bundle(model, root / "with_reference", name="churn-health", version=3)
    new = frame[month == "2025-05-01"].drop(columns=["churned"])
    new.to_parquet(root / "next.parquet")
    shifted = new.copy()
    shifted["events_30d"] = shifted["events_30d"] * 3  # much more activity
    shifted.loc[shifted.index[::4], "plan"] = "platinum"  # a plan training never saw: 25%
    shifted.loc[shifted.index[:600], "days_since_last_event"] = np.nan  # 30% more missing
    shifted.to_parquet(root / "shifted.parquet")
    return {"root": root, "model": model, "cfg": cfg}


def _score(work: dict, table: str, out: Path, as_of: str, bundle: str = "with_reference", **kw):
    return score_table(str(work["root"] / table), "customer_id", str(work["root"] / bundle), str(out),
                       work["cfg"], as_of=as_of, **kw)


def test_an_unchanged_month_is_healthy(work: dict, tmp_path: Path) -> None:
    run = _score(work, "next.parquet", tmp_path / "out", "2025-05-01")
    record = json.loads((run.out_dir / "drift.json").read_text())
    assert record == run.health and record["breaches"] == [] and run.notices == []
    assert {f["feature"] for f in record["drift"]["features"]} == {f.name for f in work["model"].features_}
    assert record["model"] == {"ref": str(work["root"] / "with_reference"), "registered_name": "churn-health",
                               "registered_version": "3", "model_uri": None, "training_run_id": "training-run-1",
                               "holdout_roc_auc": HOLDOUT_AUC}
    scores = pd.read_parquet(run.out_dir / "scores.parquet")
    assert record["drift"]["mean_now"] == pytest.approx(scores["churn_probability"].mean())
    assert record["estimate"]["customers"] == len(scores)  # nobody contacted: no catalogue in this config
    html = (run.out_dir / "report.html").read_text()
    assert 'id="health"' in html and 'data-health="ok"' in html and "No warnings" in html
    assert f'data-health="expected_roc_auc">{record["estimate"]["expected_roc_auc"]:.3f}<' in html
    assert json.loads((run.out_dir / "notifications.json").read_text())["messages"] == []


def test_planted_shifts_warn_in_the_record_the_report_the_digest_and_the_cli(work: dict, tmp_path: Path) -> None:
    run = _score(work, "shifted.parquet", tmp_path / "out", "2025-05-01")
    breaches = run.health["breaches"]
    assert any(b.startswith("events_30d: distribution shifted (PSI") for b in breaches), breaches
    assert "plan: 25.0% of customers in categories training never saw (e.g. 'platinum')" in breaches
    assert any(b.startswith("days_since_last_event: missing in 3") for b in breaches), breaches
    html = (run.out_dir / "report.html").read_text()
    assert 'data-health="breaches"' in html and "plan: 25.0% of customers in categories training never saw" in html
    assert "(e.g. &#39;platinum&#39;)" in html  # escaped like every value from the data
    [health] = [m for m in json.loads((run.out_dir / "notifications.json").read_text())["messages"]
                if m["kind"] == "health"]
    assert health["items"] == len(breaches) and health["title"].startswith(f"Model health: {len(breaches)} breaches")
    assert all(b in health["text"] for b in breaches)
    # The CLI says each breach as a warning.
    env = {**os.environ, "COLUMNS": "400", "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = forked_cli.run(["score", "--table", work["root"] / "shifted.parquet", "--id", "customer_id", "--model",
                           work["root"] / "with_reference", "--as-of", "2025-05-01", "--out", tmp_path / "cli"],
                          env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning: model health: ")]
    assert [w.removeprefix("warning: model health: ") for w in warned] == breaches
    assert "monitoring run not logged to MLflow: the model" in done.stderr  # a bundle, no store set
    assert not (tmp_path / "mlruns.db").exists()


def test_a_large_run_compares_a_seeded_sample_of_inputs(work: dict, tmp_path: Path, monkeypatch) -> None:
    from churn.monitoring import health

    monkeypatch.setattr(health, "DRIFT_SAMPLE_ROWS", 500)
    runs = [_score(work, "shifted.parquet", tmp_path / f"out{i}", "2025-05-01") for i in range(2)]
    drift = [r.health["drift"] for r in runs]
    assert (drift[0]["n_rows"], drift[0]["feature_rows"]) == (2000, 500)  # scores: all; inputs: the sample
    assert drift[0] == drift[1]  # seeded: the same sample every time
    assert any(b.startswith("events_30d: distribution shifted") for b in runs[0].health["breaches"])


def test_a_model_without_reference_is_scored_with_a_notice(work: dict, tmp_path: Path) -> None:
    run = _score(work, "shifted.parquet", tmp_path / "out", "2025-05-01", bundle="without_reference")
    assert NO_REFERENCE in run.notices
    record = json.loads((run.out_dir / "drift.json").read_text())
    assert record["drift"] is None and record["breaches"] == [] and record["estimate"]["expected_roc_auc"] > 0.5
    html = (run.out_dir / "report.html").read_text()
    assert "(drift was not measured)" in html and "drift is not measured for this run" in html


def test_the_report_shows_earlier_runs_and_what_their_backtests_found(work: dict, tmp_path: Path) -> None:
    first = _score(work, "next.parquet", tmp_path / "out", "2025-05-01")
    # What `churn backtest --run` leaves beside the run once its outcomes are known (its layout, by hand).
    (first.out_dir / "backtest.json").write_text(json.dumps(
        {"as_of": "2025-05-01", "realised": {"roc_auc": 0.7123, "observed_churn_rate": 0.081, "retrain": False}}))
    second = _score(work, "shifted.parquet", tmp_path / "out", "2025-06-01")
    html = (second.out_dir / "report.html").read_text()
    row = html.split('data-run="2025-05-01">', 1)[1].split("</tr>", 1)[0]
    mean = first.health["drift"]["mean_now"]
    assert f"{mean:.1%}" in row and ">0<" in row  # no breach then
    assert f'{first.health["estimate"]["expected_roc_auc"]:.3f}' in row and "0.712" in row and "8.1%" in row
    assert ">no<" in row  # no retraining recommended


def test_monitoring_run_in_mlflow_names_the_model_version(work: dict, tmp_path: Path, mlflow_env) -> None:
    with mlflow_env(tmp_path / "mlflow"):
        run = score_to_folder(work["cfg"], str(work["root"] / "with_reference"), str(tmp_path / "out"),
                              table=str(work["root"] / "shifted.parquet"), id_col="customer_id", as_of="2025-05-01")
        [logged] = [n for n in run.notices if n.startswith("model health logged to MLflow (run ")]
        run_id = logged.split("(run ")[1].rstrip(")")
        client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        got = client.get_run(run_id)
        assert client.get_experiment(got.info.experiment_id).name == "churn-monitoring"
        tags = got.data.tags
        assert (tags["churn.monitoring"], tags["as_of"]) == ("health", "2025-05-01")
        assert (tags["model.registered_name"], tags["model.registered_version"]) == ("churn-health", "3")
        assert tags["model.training_run_id"] == "training-run-1"
        m = got.data.metrics
        assert m["breaches"] == len(run.health["breaches"]) and m["holdout_roc_auc"] == HOLDOUT_AUC
        events = next(f for f in run.health["drift"]["features"] if f["feature"] == "events_30d")
        assert m["psi_events_30d"] == pytest.approx(events["psi"])
        assert m["expected_roc_auc"] == pytest.approx(run.health["estimate"]["expected_roc_auc"])
        assert [a.path for a in client.list_artifacts(run_id)] == ["drift.json"]


def test_scoring_delivers_risk_jumps_once_and_keeps_the_run_when_delivery_fails(
        work: dict, tmp_path: Path, webhook_server, monkeypatch) -> None:
    from churn.monitoring.delivery import DeliveryError

    base = work["cfg"].model_dump()
    base["monitoring"]["delivery"].update({"channels": ["webhook"], "min_interval_seconds": 0.0, "retries": 1,
                                           "backoff_seconds": 0.01})
    cfg = Config.model_validate(base)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURN_WEBHOOK_URL", webhook_server.url)
    out = tmp_path / "out"

    def score(table: str, as_of: str, **kw):
        return score_to_folder(cfg, str(work["root"] / "with_reference"), str(out), table=str(work["root"] / table),
                               id_col="customer_id", as_of=as_of, **kw)

    score("next.parquet", "2025-05-01")
    assert [b["blocks"][0]["text"]["text"] for b in webhook_server.bodies()] == []  # no earlier run, no breach
    run = score("shifted.parquet", "2025-06-01")
    alerts = pd.read_csv(run.out_dir / "alerts.csv", dtype={"customer_id": str})
    sent = webhook_server.bodies()
    listed = sum(b["text"].count("\n• ") for b in sent[:-1])
    more = sum(int(line.split()[2].replace(",", "")) for b in sent[:-1] for line in b["text"].splitlines()
               if line.startswith("… and "))
    assert len(alerts) > 0 and listed + more == len(alerts)  # every alert in one region's digest
    assert sent[-1]["blocks"][0]["text"]["text"].startswith("Model health: ")
    assert [n for n in run.notices if n.startswith("sent webhook: ")] and len(sent) >= 2
    # Scored again (--overwrite): the same messages are not sent twice.
    again = score("shifted.parquet", "2025-06-01", overwrite=True)
    assert len(webhook_server.received) == len(sent)
    assert len([n for n in again.notices if n.startswith("already sent, not again: webhook: ")]) == len(sent)
    # The webhook down: a clear error; the run folder is complete.
    monkeypatch.setenv("CHURN_WEBHOOK_URL", "http://127.0.0.1:9/hook")  # discard port: nothing listens
    with pytest.raises(DeliveryError, match=r"(?s)cannot reach http://127.0.0.1:9 .*churn notify --run"):
        score("shifted.parquet", "2025-07-01")
    done = out / "2025-07-01"
    assert {p.name for p in done.iterdir()} >= {"scores.parquet", "report.html", "alerts.csv", "drift.json",
                                                "notifications.json", "summary.json", "segments.xlsx"}


def test_the_trainers_hook_takes_raw_or_calibrated_scores(work: dict) -> None:
    model, cfg = work["model"], work["cfg"]
    rows = pd.read_parquet(work["root"] / "next.parquet")
    own = reference_for(model, rows, None, cfg)
    from_raw = reference_for(model, rows, model.predict_raw(rows), cfg, raw=True)
    given = reference_for(model, rows, model.predict_risk(rows), cfg)
    assert own.score_edges_ == from_raw.score_edges_ == given.score_edges_
    assert own.score_mean_ == pytest.approx(float(np.mean(model.predict_risk(rows))))
    assert sum(own.tier_shares_.values()) == pytest.approx(1.0) and set(own.tier_shares_) <= {
        t.name for t in cfg.tiers.levels}
    assert own.features_ == {f.name: ("categorical" if f.kind == "categorical" else "numeric")
                             for f in model.features_}
