"""The Python API (`import churn`): every public name is documented, cheap to import and answers like the
CLI on a small generated source (2,000 customers, a real MLflow SQLite store in a temp folder)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

os.environ["OMP_NUM_THREADS"] = "1"  # 2 shared cores: no OpenMP oversubscription in tests

import numpy as np
import pandas as pd
import pytest

import churn
from churn.errors import ChurnError

CUSTOMERS = 2000
SEED = 7


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A workspace: generated data, and MLflow in the temp folder (the env is restored afterwards)."""
    root = tmp_path_factory.mktemp("api")
    mp = pytest.MonkeyPatch()
    # Recorded so undo() restores them: `workspace` points MLflow at its own store for the process.
    mp.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", ""))
    mp.setenv("CHURN_ARTIFACT_ROOT", os.environ.get("CHURN_ARTIFACT_ROOT", ""))
    try:
        yield churn.workspace(root, customers=CUSTOMERS, seed=SEED)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def frame(ws):
    """The workspace's training frame, built once for the tests that read it."""
    return churn.build_training_frame(ws.data, ws.config)


@pytest.fixture(scope="module")
def trained(ws):
    """One training run (not promoted), shared by the tests below."""
    return churn.train(ws.config, ws.data)


@pytest.fixture(scope="module")
def scores(ws, trained):
    return churn.score(trained.model_uri, ws.data, churn.latest_date(ws.data, ws.config), ws.config)


def test_all_names_are_documented_typed_functions_or_classes():
    assert churn.__all__ == sorted(set(churn.__all__))
    for name in churn.__all__:
        obj = getattr(churn, name)
        assert obj.__doc__ and len(obj.__doc__.strip()) > 20, name
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            assert sig.return_annotation is not inspect.Signature.empty, name
            assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
            assert "Example" in obj.__doc__ or ">>>" in obj.__doc__, f"{name}: no example in its docstring"
    with pytest.raises(AttributeError):
        churn.no_such_function  # noqa: B018


def test_import_churn_loads_no_heavy_library():
    code = ("import sys, churn; heavy = [m for m in ('pandas', 'duckdb', 'lightgbm', 'mlflow', 'sklearn') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_and_validation_report(ws, tmp_path):
    cfg = churn.load_config()
    assert cfg.label.horizon_days > 0 and cfg.incentives.catalogue, "the default config has a catalogue"
    report = churn.validation_report(ws.data, ws.config)
    assert report.valid and report.problems.empty
    rows = report.tables.set_index("table")["rows"]
    assert rows["customers"] == CUSTOMERS
    assert rows["events"] == len(pd.read_parquet(ws.data / "events.parquet"))
    assert report.start < report.end and report.label == "cancellation"
    # A broken source is reported, not raised: every problem listed.
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.DataFrame({"customer_id": ["a", "a"], "signup_date": ["2024-01-01", "not a date"]}).to_csv(
        bad / "customers.csv", index=False)
    pd.DataFrame({"customer_id": ["a"], "timestamp": ["2024-02-01"]}).to_csv(bad / "events.csv", index=False)
    broken = churn.validation_report(bad, ws.config)
    assert not broken.valid and len(broken.problems) >= 2
    assert set(broken.problems["table"]) == {"customers"}


def test_features_training_frame_and_exploration(ws, frame):
    end = churn.latest_date(ws.data, ws.config)
    feats = churn.build_features(ws.data, [end], ws.config)
    assert {"customer_id", "as_of"} <= set(feats.columns) and feats["customer_id"].is_unique
    assert (feats["as_of"] == pd.Timestamp(end)).all()
    tf = frame
    frame = tf.frame
    assert set(frame["churned"].unique()) == {0, 1} and len(tf.as_of) >= 3
    by_month = churn.churn_rate_by(frame, "month")
    assert by_month["rows"].sum() == len(frame) and len(by_month) == len(tf.as_of)
    by_plan = churn.churn_rate_by(frame, "plan")
    assert by_plan["churners"].sum() == frame["churned"].sum()
    np.testing.assert_allclose(by_plan["churn_rate"], by_plan["churners"] / by_plan["rows"])
    with churn.open_source(ws.data, ws.config) as ds:
        activity = churn.activity_by_month(ds)
    assert activity["events"].sum() == len(pd.read_parquet(ws.data / "events.parquet"))
    assert (activity["active_customers"] <= CUSTOMERS).all()
    signals = churn.signal_vs_churn(frame, tf.features, per_family=2)
    assert set(signals["family"]) == {f.family for f in tf.features}
    # Each feature's levels (missing values included) cover every row.
    assert signals.groupby("feature")["rows"].sum().eq(len(frame)).all()
    strength = churn.signal_strength(frame, tf.features)
    assert strength["auc"].between(0.5, 1.0).all() and strength["auc"].iloc[0] > 0.6
    fig = churn.plot_signals(signals, base_rate=frame["churned"].mean())
    assert len([ax for ax in fig.axes if ax.get_visible()]) == signals["feature"].nunique()


def test_train_and_read_the_run_back(trained):
    assert trained.chosen in trained.candidates and trained.version == "1"
    run = churn.read_run(trained.run_id)
    assert run.chosen == trained.chosen and run.chosen_why == trained.chosen_why
    assert set(run.candidates.index) == set(trained.candidates)
    for name, metrics in trained.candidates.items():
        assert run.candidates.loc[name, "roc_auc"] == pytest.approx(metrics["roc_auc"])
    assert list(run.lift.index) == list(range(1, 11))
    assert run.lift["capture_cumulative"].iloc[-1] == pytest.approx(1.0)
    assert run.lift["churn_rate"].iloc[0] > run.lift["churn_rate"].iloc[-1], "the riskiest decile churns more"
    assert {"mean_predicted", "observed_rate"} <= set(run.calibration.columns) and len(run.calibration) >= 3
    assert set(run.importance["feature"]) == set(trained.model.feature_names_)
    assert {"calibration", "lift_gain", "feature_importance"} <= set(run.plots)
    assert all(p.is_file() for p in run.plots.values())


def test_score_in_memory_matches_score_frame(ws, trained, scores):
    model = churn.load_model(trained.model_uri)
    scored = scores[scores["status"] == "scored"]
    assert len(scored) > 500 and scored["churn_probability"].between(0, 1).all()
    assert scores.loc[scores["status"] != "scored", "churn_probability"].isna().all()
    again = churn.score_frame(model, scored, ws.config)
    np.testing.assert_allclose(again["churn_probability"], scored["churn_probability"], rtol=0, atol=1e-12)
    assert (again["reason_1"] == scored["reason_1"]).all()


def test_plan_under_two_budgets(ws, scores):
    small, large = 100.0, 20_000.0  # the small budget binds: 2,000 customers have ~300 of offers worth making
    plans = {b: churn.plan_retention(scores, ws.config, budget=b) for b in (small, large)}
    for budget, plan in plans.items():
        assert plan.customers["incentive_cost"].sum() <= budget + 1e-6
        assert len(plan.customers) == len(scores)
    table = churn.compare_budgets(scores, [small, large], ws.config)
    assert list(table.columns) == ["budget 100", "budget 20,000"]
    assert table.loc["contacted", "budget 100"] < table.loc["contacted", "budget 20,000"]
    # the table shows money to the cent
    assert table.loc["spend", "budget 100"] == pytest.approx(plans[small].customers["incentive_cost"].sum(), abs=0.005)
    assert table.loc["expected_net_value", "budget 100"] < table.loc["expected_net_value", "budget 20,000"]
    preview = churn.segment_preview(plans[large], rows=2)
    assert len(preview) and preview.groupby("file").size().le(2).all()
    contacted = int(plans[large].customers["contact"].sum())
    assert preview.groupby("file")["segment_size"].first().sum() == contacted


def test_promote_then_score_to_folder_as_the_cli(ws, trained, scores, tmp_path):
    decision = churn.promote(ws.config)
    assert decision["promoted"] is True
    ref = churn.champion(ws)  # found, not trained again
    assert ref == "models:/churn@champion" and churn.load_model(ref).metadata_["registered_version"] == "1"
    end = churn.latest_date(ws.data, ws.config)
    run = churn.score_to_folder(ref, ws.data, end, ws.config, out=tmp_path / "out")
    assert run.out_dir == tmp_path / "out" / str(end)
    assert {"scores.parquet", "report.html", "summary.json", "alerts.csv"} <= {f.name for f in run.files}
    written = pd.read_parquet(run.out_dir / "scores.parquet").set_index("customer_id")
    memory = scores.set_index("customer_id")
    assert set(written.index) == set(memory.index)
    np.testing.assert_allclose(written.loc[memory.index, "churn_probability"], memory["churn_probability"],
                               rtol=0, atol=1e-12)


def test_train_on_a_ready_table(ws, frame, tmp_path):
    """Bring-your-own features: the training frame written as CSV trains under its own registered name."""
    frame = frame.frame
    table = tmp_path / "features.csv"
    frame.to_csv(table, index=False)
    # Small: the table's path through training (the Optuna search on the table's own columns included, with
    # two trials) and scoring is what is checked, not the search's quality.
    model_settings = ws.config.model.model_copy(update={"registered_name": "churn_table",
                                                         "candidates": ["lightgbm"], "auto_tune_trials": 2,
                                                         "plots": False})
    cfg = ws.config.model_copy(update={"model": model_settings})
    result = churn.train_table(table, "churned", "customer_id", cfg, time_col="as_of")
    assert result.model_uri == "models:/churn_table/1" and result.chosen in result.candidates
    latest = frame[frame["as_of"] == frame["as_of"].max()].head(50)
    probs = churn.score_frame(result.model_uri, latest, cfg)["churn_probability"]
    assert probs.between(0, 1).all() and probs.nunique() > 1


def test_train_on_the_frame_already_built(ws, frame):
    """A frame built and explored is trained as it is (not built again): the run's data fingerprint is that
    frame's, rows and hash; a frame with as_of dates, or something that is not a frame, is refused."""
    tf = frame
    small = ws.config.model.model_copy(update={"registered_name": "churn_frame", "candidates": ["lightgbm"],
                                                "auto_tune_max_rows": 0, "refit": False, "num_boost_round": 40,
                                                "plots": False})
    cfg = ws.config.model_copy(update={"model": small})
    result = churn.train(cfg, frame=tf)
    recorded = result.model.metadata_["data_fingerprint"]
    assert {k: recorded.get(k) for k in tf.fingerprint} == tf.fingerprint
    assert recorded["frame_rows"] == len(tf.frame) and recorded["snapshots"] == [str(d.date()) for d in tf.as_of]
    run = churn.read_run(result.run_id)  # model.plots off: no plots drawn, everything else logged
    assert run.plots == {} and len(run.calibration) >= 3 and list(run.lift.index) == list(range(1, 11))
    with pytest.raises(ChurnError, match="either as_of or a frame"):
        churn.train(cfg, frame=tf, as_of=["2024-06-01"])
    with pytest.raises(ChurnError, match="must be a training frame"):
        churn.train(cfg, frame=tf.frame)
