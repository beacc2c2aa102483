"""End to end on a real MLflow SQLite store: runs, registry aliases, promotion, loading and bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from churn.errors import ChurnError
from churn.training.loading import load_model
from churn.training.registry import promote
from churn.training.train import train

NAME = "churn-test"
WEAK = ["plan", "complaints_90d"]  # some signal, far less than all features: the champion to beat


@pytest.fixture(scope="module")
def runs(mlflow_store, synthetic, make_config):
    """weak v1 (promoted: no champion), full v2 (promoted: better), weak v3 (challenger only, then promote()
    keeps v2), full v4 (same seed as v2: determinism)."""
    frame, features = synthetic
    cfg = make_config(mlflow_store / "models", registered_name=NAME, experiment="churn-tests", plots=True)
    # The weak models only need to be weak (what promotion compares): one candidate, no search.
    one = make_config(mlflow_store / "models", registered_name=NAME, experiment="churn-tests", candidates=["lightgbm"])
    weak = [f for f in features if f.name in WEAK]
    out = {"cfg": cfg, "frame": frame, "features": features}
    out["weak1"] = train(frame, weak, one, promote=True, extra_metadata={"features_config": {"k": 1}})
    out["full"] = train(frame, features, cfg, promote=True, extra_metadata={"features_config": {"k": 1}},
                        data_fingerprint={"source": "synthetic"})
    out["weak2"] = train(frame, weak, one)
    out["promote_weak2"] = promote(NAME, cfg)
    out["full_again"] = train(frame, features, cfg)
    return out


@pytest.fixture(scope="module")
def client(mlflow_store, runs):
    from churn.config import tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def test_versions_increment_and_aliases_move(runs, client):
    assert [runs[k].version for k in ("weak1", "full", "weak2", "full_again")] == ["1", "2", "3", "4"]
    assert runs["weak1"].promoted and runs["weak1"].promotion["reason"] == "there was no champion"
    assert runs["full"].promoted and runs["full"].promotion["decision"] == "promoted"
    p = runs["promote_weak2"]
    assert not p["promoted"] and p["decision"] == "kept_champion"
    assert p["challenger_version"] == "3" and p["champion_version"] == "2"
    assert p["champion_score"] > p["challenger_score"]  # pr_auc, higher is better
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    assert str(client.get_model_version_by_alias(NAME, "previous_champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "4"
    assert runs["full_again"].promotion is None and not runs["full_again"].promoted


def test_promotion_decision_logged_on_run_and_version(runs, client):
    run = client.get_run(runs["weak2"].run_id)
    assert run.data.tags["promotion.decision"] == "kept_champion"
    assert run.data.tags["promotion.champion_version"] == "2"
    assert {"promotion_challenger_pr_auc", "promotion_champion_pr_auc"} <= set(run.data.metrics)
    mv = client.get_model_version(NAME, "2")
    assert mv.tags["promotion.decision"] == "promoted"


def test_run_has_metrics_params_tags_and_artifacts(runs, client):
    res = runs["full"]
    run = client.get_run(res.run_id)
    m = run.data.metrics
    for k in ("roc_auc", "pr_auc", "log_loss", "brier", "log_loss_raw", "brier_raw", "precision", "recall",
              "lift_top_10pct", "capture_top_20pct", "base_rate", "profit_best", "profit_best_share",
              "baseline_logistic_roc_auc", "baseline_heuristic_pr_auc", "train_positive_rate"):
        assert k in m, k
    assert m["roc_auc"] == pytest.approx(res.metrics["roc_auc"])
    p = run.data.params
    assert p["n_rows"] == str(len(runs["frame"])) and p["n_features"] == "8"
    assert p["imbalance"] == "none" and p["evaluation"] == "out_of_time" and p["model.n_jobs"] == "1"
    assert p["snapshots.holdout"] == "2025-05-01"
    t = run.data.tags
    assert t["churn_version"] and t["data.sha256"] and t["data.source"] == "synthetic"
    assert t["evaluation"] == "out_of_time" and t["registered_version"] == "2"
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert {"features.json", "features.csv", "metrics.json", "plots", "holdout"} <= arts
    plots = {a.path.split("/")[-1] for a in client.list_artifacts(res.run_id, "plots")}
    assert {"roc.png", "pr.png", "calibration.png", "lift_gain.png", "profit.png", "feature_importance.png",
            "shap_summary.png"} <= plots
    feats = json.loads(Path(client.download_artifacts(res.run_id, "features.json")).read_text())
    assert [f["name"] for f in feats][:2] == ["days_since_last_event", "events_30d"]
    assert feats[0]["description"] and "levels" in feats[6]


def test_result_metrics_and_baselines(runs):
    res = runs["full"]
    assert res.evaluation == "out_of_time"
    assert res.metrics["roc_auc"] > res.baseline_metrics["heuristic"]["roc_auc"]
    assert res.baseline_metrics["heuristic"]["column"] == "days_since_last_event"
    assert 0 < res.metrics["profit_best_share"] <= 1
    # the full model beats the one-feature heuristic beyond the holdout's noise
    assert res.metrics["vs_heuristic"] == 1.0


def test_baseline_check_tagged_with_its_interval(runs, client):
    # two weak features: the baselines on the same features are as good; the check says so, not "failed"
    t = client.get_run(runs["weak1"].run_id).data.tags
    assert t["baseline_check"] in {"within noise", "passed"} and "95% interval" in t["baseline_detail"]
    assert "warning.baselines" not in t


def test_baseline_check_verdicts_on_known_scores():
    from churn.training.comparison import auc_difference
    from churn.training.comparison import beats_baselines as _beats_baselines

    rng = np.random.default_rng(3)
    y = (rng.random(4000) < 0.1).astype(int)
    good = y + rng.normal(0, 0.6, len(y))  # ROC AUC about 0.9
    noise = rng.normal(0, 1, len(y))  # about 0.5
    d, lo, hi = auc_difference(y, noise, good, seed=1)
    assert d < -0.3 and lo < d < hi < 0
    worse = _beats_baselines(y, noise, {"logistic": good}, seed=1)
    assert not worse["ok"] and worse["check"] == "FAILED" and worse["verdicts"] == {"logistic": "worse"}
    tie = _beats_baselines(y, good, {"logistic": good + rng.normal(0, 0.01, len(y))}, seed=1)
    assert tie["ok"] and tie["verdicts"] == {"logistic": "within noise"}
    better = _beats_baselines(y, good, {"logistic": noise}, seed=1)
    assert better["check"] == "passed" and better["verdicts"] == {"logistic": "better"}


def test_holdout_customers_not_in_fitting_rows(runs):
    res = runs["full"]
    frame = runs["frame"]
    held = set(res.holdout["customer_id"])
    dates = set(res.holdout["as_of"].dt.date.astype(str))
    assert dates == {"2025-05-01"}
    rows = res.model.metadata_["rows"]
    assert len(held) == rows["holdout"]
    # Of the other customers' older rows, validation reads some customers at the validation snapshots and
    # training the rest at the training snapshots: no customer in both, every older row in one of them.
    from churn.training.splits import split_out_of_time

    mc = runs["cfg"].model
    ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
    s = split_out_of_time(ids, frame["as_of"], holdout_snapshots=mc.holdout_snapshots,
                          valid_snapshots=mc.valid_snapshots, calibration_share=mc.calibration_share,
                          holdout_customer_share=0.3, seed=mc.seed, valid_customer_share=mc.valid_customer_share)
    assert set(ids[s.holdout]) == held
    valid_ids, train_ids = set(ids[s.validation]), set(ids[s.train])
    assert valid_ids and train_ids and not valid_ids & train_ids and not (valid_ids | train_ids) & held
    older = (frame["as_of"] < "2025-05-01").to_numpy() & ~frame["customer_id"].isin(held).to_numpy()
    in_valid = frame["as_of"].dt.date.astype(str).isin(set(res.model.metadata_["snapshots"]["validation"])).to_numpy()
    validating = frame["customer_id"].isin(valid_ids).to_numpy()
    assert sorted(s.validation) == list(np.flatnonzero(older & in_valid & validating))
    assert sorted(s.train) == list(np.flatnonzero(older & ~in_valid & ~validating))
    assert rows["early_stopping"] + rows["calibration"] == len(s.validation) and rows["train"] == len(s.train)
    share = len(valid_ids) / len(valid_ids | train_ids)
    assert 0.2 < share < 0.4  # about the configured 30% of the customers


def test_loaded_models_match_in_memory(runs):
    res = runs["full"]
    ho = res.holdout
    expected = res.model.predict_risk(ho)
    champion = load_model(f"models:/{NAME}@champion")
    by_run = load_model(f"runs:/{res.run_id}/model")
    by_version = load_model(f"models:/{NAME}/2")
    bundle = load_model(res.bundle_path)
    for m in (champion, by_run, by_version, bundle):
        assert np.allclose(m.predict_risk(ho), expected, rtol=0, atol=1e-9)
    assert champion.metadata_["registered_version"] == "2" and bundle.metadata_["registered_version"] == "2"
    assert champion.metadata_["extra"] == {"features_config": {"k": 1}}
    assert champion.metadata_["label"]["horizon_days"] == 60


def test_same_seed_same_predictions(runs):
    ho = runs["full"].holdout
    assert np.array_equal(runs["full"].model.predict_risk(ho), runs["full_again"].model.predict_risk(ho))
    assert runs["full"].metrics["roc_auc"] == runs["full_again"].metrics["roc_auc"]


def test_pyfunc_returns_probabilities_with_unseen_levels_and_missing(runs):
    res = runs["full"]
    x = res.holdout[[f.name for f in runs["features"]]].head(30).copy()
    x["plan"] = x["plan"].astype(object)
    x.loc[x.index[:4], "plan"] = "enterprise"  # unseen at training
    x.loc[x.index[4:8], "region"] = None
    x.loc[x.index[8:10], "monthly_fee"] = np.nan
    from churn.training.tracking import mlflow_session

    with mlflow_session():
        pf = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
        out = pf.predict(x)
    out = np.asarray(out)
    assert out.shape == (30,) and ((out >= 0) & (out <= 1)).all()
    assert np.allclose(out, res.model.predict_risk(x), atol=1e-12)


def test_bundle_manifest_and_tamper_detection(runs, tmp_path):
    src = runs["full"].bundle_path
    manifest = json.loads(Path(src, "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.joblib", "features.json"}
    assert manifest["mlflow_run_id"] == runs["full"].run_id and manifest["version"] == "2"
    assert manifest["versions"]["lightgbm"] and manifest["metrics"]["roc_auc"] > 0.5
    copy = tmp_path / "bundle"
    shutil.copytree(src, copy)
    data = bytearray((copy / "model.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.joblib").write_bytes(bytes(data))
    with pytest.raises(ChurnError, match="model.joblib does not match its sha256"):
        load_model(str(copy))
    shutil.copytree(src, tmp_path / "b2")
    (tmp_path / "b2" / "features.json").unlink()
    with pytest.raises(ChurnError, match="features.json is missing"):
        load_model(str(tmp_path / "b2"))


def test_bundle_warns_on_library_version_change(runs, tmp_path):
    copy = tmp_path / "bundle"
    shutil.copytree(runs["full"].bundle_path, copy)
    man = json.loads((copy / "manifest.json").read_text())
    man["versions"]["lightgbm"] = "0.0.1"
    (copy / "manifest.json").write_text(json.dumps(man))
    with pytest.warns(UserWarning, match="lightgbm 0.0.1"):
        load_model(str(copy))


def test_load_model_errors(runs):
    with pytest.raises(ChurnError, match="no model bundle"):
        load_model("/nonexistent/bundle")
    with pytest.raises(ChurnError, match="cannot load model"):
        load_model(f"models:/{NAME}@nosuchalias")


def test_without_time_column_splits_by_customer_and_refits_on_every_row(mlflow_store, synthetic, make_config):
    frame, features = synthetic
    one = frame[frame["as_of"] == frame["as_of"].max()].drop(columns=["as_of"])
    cfg = make_config(mlflow_store / "models", registered_name="churn-cv", experiment="churn-tests",
                      calibration="sigmoid")
    res = train(one, features, cfg, time_col=None)
    assert res.evaluation == "grouped_random"
    assert res.refit["rows"] == len(one) and res.model.metadata_["n_fit_rows"] == len(one)
    assert res.metrics["roc_auc"] > 0.65
    assert res.version == "1"


def test_tied_candidates_are_registered_as_their_average_and_score_alike_everywhere(mlflow_store, synthetic,
                                                                                      make_config):
    """A tie margin wide enough to tie every candidate: the registered model is the average of the tied ones,
    each refit by its own rule (what the run logs), calibrated; its bundle, the registry's copy and the pyfunc
    all score as it does. Without average_ties the simplest tied candidate is registered instead."""
    from churn.training.tracking import mlflow_session

    frame, features = synthetic
    cfg = make_config(mlflow_store / "models", registered_name="churn-average", experiment="churn-tests",
                      candidates=["lightgbm", "logistic"], tie_margin=0.099)
    res = train(frame, features, cfg)
    assert res.chosen == "average" and res.model.kind == "average", res.chosen_why
    assert [m.kind for m in res.model.members_] == ["logistic", "lightgbm"]  # simplest first
    assert res.refit["rule"] == "members" and set(res.refit["members"]) == {"logistic", "lightgbm"}
    assert all(info["rows"] == len(frame) for info in res.refit["members"].values())  # each refit on every row
    assert res.model.metadata_["calibration"] != "none" and "the average of logistic" in res.chosen_why
    assert "NO CANDIDATE WITH LIGHTGBM" not in res.chosen_why
    assert not any("NO CANDIDATE WITH LIGHTGBM" in w for w in res.warnings)
    assert {"lightgbm", "logistic", "average"} <= set(res.candidates)
    rows = res.holdout.drop(columns=["churned", "churn_probability"], errors="ignore")
    want = res.model.predict_risk(rows)
    assert not np.allclose(res.model.predict_raw(rows), res.model.members_[0].predict_raw(rows))
    assert res.model.metadata_["members"] == ["logistic", "lightgbm"]
    np.testing.assert_allclose(load_model(str(res.bundle_path)).predict_risk(rows), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(load_model(res.model_uri).predict_risk(rows), want, rtol=0, atol=1e-12)
    with mlflow_session():
        pyfunc = mlflow.pyfunc.load_model(res.model_uri)
    np.testing.assert_allclose(pyfunc.predict(rows), want, rtol=0, atol=1e-9)
    from churn.config import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri())
    nested = {r.info.run_name: r for r in client.search_runs(
        [client.get_run(res.run_id).info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{res.run_id}'")}
    assert nested["candidate-average"].data.tags["chosen"] == "true"
    assert nested["candidate-average"].data.metrics["forward_roc_auc_members"] == pytest.approx(
        res.candidates["average"]["forward_roc_auc"])
    assert {n for n, r in nested.items() if r.data.tags["average_member"] == "true"} == {
        "candidate-lightgbm", "candidate-logistic"}
    reasons = res.model.contributions(rows.head(50), "path")
    np.testing.assert_allclose(reasons.sum(axis=1), np.log(res.model.predict_raw(rows.head(50)))
                               - np.log1p(-res.model.predict_raw(rows.head(50))), atol=1e-8)

    simplest = train(frame, features, cfg.model_copy(update={"model": cfg.model.model_copy(update={
        "average_ties": False})}))
    assert simplest.chosen == "logistic" and simplest.model.kind == "logistic"

def test_few_snapshots_fall_back_with_warning_and_tuning_logs_trials(mlflow_store, synthetic, make_config):
    frame, features = synthetic
    two = frame[frame["as_of"] >= "2025-04-01"]
    cfg = make_config(mlflow_store / "models", registered_name="churn-fallback", experiment="churn-tests")
    res = train(two, features, cfg, tune_trials=2)
    assert res.evaluation == "grouped_random"
    assert any("fell back to a random split by customer" in w for w in res.warnings)
    from churn.config import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri())
    run = client.get_run(res.run_id)
    children = client.search_runs([run.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{res.run_id}'")
    trials = [c for c in children if c.info.run_name.startswith("trial-")]
    assert len(trials) == 2
    assert all("valid_log_loss" in c.data.metrics and "learning_rate" in c.data.params for c in trials)
    # the tuned settings joined the candidates, each candidate a nested run of its own
    assert "lightgbm_tuned" in res.candidates
    assert {c.info.run_name for c in children} - {c.info.run_name for c in trials} == {
        f"candidate-{name}" for name in res.candidates}
    assert "tune_best_valid_log_loss" in run.data.metrics


def test_bootstrap_auc_matches_sklearn_with_ties_and_row_weights():
    from sklearn.metrics import roc_auc_score

    from churn.training.comparison import _weighted_auc, auc_difference

    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.1).astype(int)
    p = np.round(y + rng.normal(0, 1, 3000), 1)  # many ties
    q = 0.5 * y + rng.normal(0, 1, 3000)
    assert auc_difference(y, p, q, n_boot=10)[0] == pytest.approx(roc_auc_score(y, p) - roc_auc_score(y, q), abs=1e-12)
    w = rng.integers(0, 4, 3000)
    order = np.argsort(p, kind="mergesort")
    ties = np.flatnonzero(np.r_[True, p[order][1:] != p[order][:-1]])
    rows = np.repeat(np.arange(3000), w)  # integer weights are repeated rows
    assert _weighted_auc(order, ties, y, w.astype(float)) == pytest.approx(roc_auc_score(y[rows], p[rows]), abs=1e-12)
