"""Realised against estimated performance on generated data (real DuckDB, LightGBM and MLflow on SQLite):
with no drift the estimate made before the outcomes (CBPE) and the realised ROC AUC agree within the noise
of the realised figure; when a shift is planted (most product events and every order of a random half of
the customers vanish after the training dates: they look like leavers but their contracts run on), drift
flags it, the realised ROC AUC falls and the two separate. Labels and the noise are computed here from the
raw tables with pandas and scikit-learn. Also `churn backtest` (a run folder or a model at a date),
its MLflow run, the trend in the next report, and the KPIs with the campaign's saved revenue."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import forked_cli
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from churn.config import load_config
from churn.errors import ChurnError
from churn.generate import generate
from churn.monitoring.backtest import backtest_run
from churn.monitoring.reference import reference_for
from churn.pipeline import score_to_folder, train_from_data
from churn.scoring import status
from churn.scoring.score import source_rows
from churn.training.bundle import export_bundle
from churn.training.loading import load_model

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AS_OF = pd.Timestamp("2025-05-01")
HORIZON = 60  # the default label horizon


def cli(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300", "OMP_NUM_THREADS": "1"}
    done = forked_cli.run(args, env=env, timeout=600)
    assert not check or done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def world(mlflow_store) -> dict:
    """6,000 generated subscribers; a model trained on snapshots up to 2025-03-01 and given its reference (the
    newest training snapshot's customers); the same data with a planted shift."""
    root = mlflow_store
    generate(6000, date(2024, 1, 1), date(2025, 7, 1), 5, root / "data")
    cfg = load_config(ROOT / "configs" / "default.yaml")
    raw = cfg.model_dump()
    raw["snapshots"].update({"count": 6, "end": "2025-03-01"})
    raw["model"].update({"n_jobs": 1, "candidates": ["lightgbm"], "auto_tune_max_rows": 0, "num_boost_round": 200,
                         "early_stopping_rounds": 20, "refit": False, "plots": False,
                         "bundle_dir": str(root / "models")})
    cfg = cfg.model_validate(raw)
    trained = train_from_data(cfg, str(root / "data"))
    model = load_model(trained.bundle_path)
    rows, st, _, _ = source_rows(model, str(root / "data"), pd.Timestamp("2025-03-01"), cfg)
    model.drift_reference_ = reference_for(model, rows[st == status.SCORED], None, cfg)  # the trainer's hook
    export_bundle(model, root / "models" / "monitored", name="churn", version=trained.version)
    shifted = root / "shifted"
    shutil.copytree(root / "data", shifted)
    rng = np.random.default_rng(3)
    customers = pd.read_parquet(root / "data" / "customers.parquet")
    half = set(rng.choice(customers["customer_id"], len(customers) // 2, replace=False))
    events = pd.read_parquet(shifted / "events.parquet")
    gone = (events["timestamp"] >= "2025-02-01") & events["customer_id"].isin(half) & (rng.random(len(events)) < 0.9)
    events[~gone].to_parquet(shifted / "events.parquet", index=False)
    orders = pd.read_parquet(shifted / "orders.parquet")
    orders[~((orders["ordered_at"] >= "2025-02-01") & orders["customer_id"].isin(half))].to_parquet(
        shifted / "orders.parquet", index=False)
    return {"root": root, "cfg": cfg, "bundle": root / "models" / "monitored", "customers": customers}


def realised_labels(customers: pd.DataFrame) -> pd.Series:
    """Churned within the horizon after AS_OF, for every customer current at AS_OF (by hand, from the table)."""
    c = customers[(customers["signup_date"] < AS_OF)
                  & (customers["cancel_date"].isna() | (customers["cancel_date"] >= AS_OF))]
    end = AS_OF + pd.Timedelta(days=HORIZON)
    return pd.Series(((c["cancel_date"] >= AS_OF) & (c["cancel_date"] < end)).astype(int).to_numpy(),
                     index=c["customer_id"].astype(str))


def unaffected_scores(run_dir: Path) -> pd.DataFrame:
    s = pd.read_parquet(run_dir / "scores.parquet")
    s = s[s["status"] == "scored"]
    return s[~(s["contact"].astype(bool) & ~s["holdout"].astype(bool))]


def bootstrap_se(y: np.ndarray, p: np.ndarray, seed: int = 0, n: int = 400) -> float:
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            aucs.append(roc_auc_score(y[i], p[i]))
    return float(np.std(aucs))


@pytest.fixture(scope="module")
def runs(world) -> dict:
    out = {}
    for name, data in (("clean", world["root"] / "data"), ("shifted", world["root"] / "shifted")):
        run = score_to_folder(world["cfg"], str(world["bundle"]), str(world["root"] / f"out-{name}"),
                              data=str(data), as_of=str(AS_OF.date()))
        out[name] = (run, backtest_run(run.out_dir, str(data), world["cfg"]))
    return out


def test_estimate_and_realised_agree_without_drift_and_separate_with_a_planted_shift(world, runs) -> None:
    labels = realised_labels(world["customers"])
    gaps = {}
    for name, (run, back) in runs.items():
        s = unaffected_scores(run.out_dir)
        y = s["customer_id"].map(labels).to_numpy(dtype=int)
        p = s["churn_probability"].to_numpy(dtype=float)
        realised = back.record["realised"]
        assert realised["population"] == "control group and customers not contacted"
        assert realised["customers"] == len(s) and realised["churners"] == y.sum() > 50
        assert realised["roc_auc"] == pytest.approx(roc_auc_score(y, p))  # the record, checked by hand
        estimate = run.health["estimate"]["expected_roc_auc"]
        assert back.record["expected_roc_auc"] == estimate
        gaps[name] = (estimate - realised["roc_auc"], bootstrap_se(y, p))
    gap, se = gaps["clean"]
    assert abs(gap) < 2 * se, gaps  # within the realised figure's noise
    gap, se = gaps["shifted"]
    assert gap > 2 * se, gaps  # the estimate is blind to it; the outcomes are not
    clean_breaches, shifted_breaches = (runs[k][0].health["breaches"] for k in ("clean", "shifted"))
    assert not [b for b in clean_breaches if b.startswith(("events_", "orders_", "spend_"))]
    assert [b for b in shifted_breaches if b.startswith("events_30d: distribution shifted")]
    assert [b for b in shifted_breaches if b.startswith("orders_90d: distribution shifted")]


def test_backtest_command_records_logs_and_feeds_the_next_reports_trend(world, runs, tmp_path: Path) -> None:
    run, back = runs["clean"]
    done = cli("backtest", "--data", world["root"] / "data", "--run", run.out_dir, check=False)
    assert done.returncode == 1 and "backtest.json already exists; pass --overwrite" in done.stderr
    done = cli("backtest", "--data", world["root"] / "data", "--run", run.out_dir, "--overwrite")
    record = json.loads((run.out_dir / "backtest.json").read_text())
    table = " ".join(done.stdout.split())
    assert f"ROC AUC │ {record['realised']['roc_auc']:.3f}" in table
    assert f"ROC AUC estimated before the outcomes │ {record['expected_roc_auc']:.3f}" in table
    if record["realised"]["retrain"]:  # below monitoring.retrain_below_roc_auc (0.7)
        assert f"warning: retraining recommended: {record['realised']['retrain_why']}" in done.stderr
    assert record["realised"]["roc_auc"] == pytest.approx(back.record["realised"]["roc_auc"])
    logged = [line for line in done.stderr.splitlines() if "backtest logged to MLflow (run " in line]
    run_id = logged[0].split("(run ")[1].split(")")[0]
    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    got = client.get_run(run_id)
    assert got.data.tags["churn.monitoring"] == "backtest" and got.data.tags["model.registered_name"] == "churn"
    assert got.data.metrics["roc_auc"] == pytest.approx(record["realised"]["roc_auc"])
    # The next month's report shows it beside what was estimated then.
    nxt = score_to_folder(world["cfg"], str(world["bundle"]), str(run.out_dir.parent), data=str(world["root"] / "data"),
                          as_of="2025-06-01")
    row = (nxt.out_dir / "report.html").read_text().split(f'data-run="{AS_OF.date()}">', 1)[1].split("</tr>")[0]
    assert f"{record['realised']['roc_auc']:.3f}" in row and f"{record['expected_roc_auc']:.3f}" in row


def test_backtest_of_a_model_at_a_date(world, tmp_path: Path) -> None:
    out = tmp_path / "backtest.json"
    cli("backtest", "--data", world["root"] / "data", "--model", world["bundle"], "--as-of", AS_OF.date(),
        "--out", out)
    record = json.loads(out.read_text())
    labels = realised_labels(world["customers"])
    assert record["realised"]["population"] == "every scored customer (no one was contacted)"
    assert (record["realised"]["customers"], record["realised"]["churners"]) == (len(labels), labels.sum())
    assert 0.6 < record["expected_roc_auc"] < 0.9 and record["run"] is None


def test_backtest_before_the_outcomes_are_known_is_refused(world, tmp_path: Path) -> None:
    run = tmp_path / "2025-06-01"
    run.mkdir()
    pd.DataFrame({"customer_id": ["1"], "churn_probability": [0.1]}).to_parquet(run / "scores.parquet")
    (run / "summary.json").write_text(json.dumps({"meta": {"as_of": "2025-06-01"}}))
    with pytest.raises(ChurnError, match=r"the label window of 2025-06-01 runs to 2025-07-31 \(label.horizon_days "
                                         r"60\) but the data ends 2025-06-30: backtest once the data covers"):
        backtest_run(run, str(world["root"] / "data"), world["cfg"])
    assert not (run / "backtest.json").exists()


def test_kpis_with_the_campaigns_saved_revenue(world, runs, tmp_path: Path) -> None:
    run, _ = runs["clean"]
    cli("kpis", "--data", world["root"] / "data", "--by", "region", "--campaign", run.out_dir,
        "--out", tmp_path / "kpis.csv")
    t = pd.read_csv(tmp_path / "kpis.csv")
    may = t[t["month"] == "2025-05"]
    total = may.loc[may["segment"] == "all", "saved_revenue"].item()
    assert total == pytest.approx(may.loc[may["segment"] == "region", "saved_revenue"].sum())
    assert t.loc[t["month"] != "2025-05", "saved_revenue"].isna().all()
    # The scoring report of 2025-05-01 showed everyone's KPIs of the six months before it.
    html = (run.out_dir / "report.html").read_text()
    everyone = t[t["segment"] == "all"].set_index("month")
    for month in ("2024-11", "2024-12", "2025-01", "2025-02", "2025-03", "2025-04"):
        row = html.split(f'data-month="{month}">', 1)[1].split("</tr>")[0]
        assert f">{everyone.loc[month, 'customers_start']:,}<" in row
        assert f">{everyone.loc[month, 'churn_rate']:.1%}<" in row
    assert 'data-month="2025-05"' not in html  # not over before the run
    assert set(t["month"]) == {f"2024-{m:02d}" for m in range(7, 13)} | {f"2025-{m:02d}" for m in range(1, 7)}
