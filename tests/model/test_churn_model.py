"""ChurnModel behaviour without MLflow: contract, input validation, contributions, determinism, direction."""

from __future__ import annotations

import itertools

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.training.baselines import HeuristicBaseline, pick_heuristic_feature
from churn.training.metrics import ranking_metrics
from churn.training.model import ChurnModel
from churn.training.train import assert_holdout_customers_unseen, split_out_of_time

MODEL = Config().model.model_copy(update={"n_jobs": 1, "num_boost_round": 300, "early_stopping_rounds": 20,
                                          "params": {**Config().model.params, "learning_rate": 0.1, "num_leaves": 15}})


def _split(frame):
    mc = MODEL
    return split_out_of_time(frame["customer_id"].to_numpy(dtype=object), frame["as_of"],
                             holdout_snapshots=mc.holdout_snapshots, valid_snapshots=mc.valid_snapshots,
                             calibration_share=mc.calibration_share, holdout_customer_share=0.3, seed=mc.seed,
                             valid_customer_share=mc.valid_customer_share)


def _fit(frame, features, **kw):
    mc = MODEL
    s = _split(frame)
    m = ChurnModel(features, mc.params, num_boost_round=mc.num_boost_round,
                   early_stopping_rounds=mc.early_stopping_rounds, seed=mc.seed, n_jobs=1, **kw)
    y = frame["churned"].to_numpy()
    m.fit(frame.iloc[s.train], y[s.train], eval_set=(frame.iloc[s.early_stopping], y[s.early_stopping]),
          calibration_set=(frame.iloc[s.calibration], y[s.calibration]))
    return m, s


@pytest.fixture(scope="module")
def fitted(synthetic):
    frame, features = synthetic
    m, s = _fit(frame, features)
    return m, s, frame.iloc[s.holdout].reset_index(drop=True), frame, features


def test_out_of_time_split_keeps_holdout_customers_out_of_fitting(synthetic):
    frame, _ = synthetic
    s = _split(frame)
    ids = frame["customer_id"].to_numpy(dtype=object)
    fitting = np.concatenate([s.train, s.early_stopping, s.calibration])
    assert not set(ids[s.holdout]) & set(ids[fitting])
    assert_holdout_customers_unseen(ids, s)  # the same check train() runs
    dates = frame["as_of"].dt.date.astype(str).to_numpy()
    # two validation snapshots by default (config), the newest the holdout, the rest train
    assert set(dates[s.holdout]) == {"2025-05-01"} and set(dates[s.calibration]) == {"2025-03-01", "2025-04-01"}
    assert set(dates[s.early_stopping]) == {"2025-03-01", "2025-04-01"}
    assert set(dates[s.train]) == {"2025-01-01", "2025-02-01"}
    assert not set(ids[s.early_stopping]) & set(ids[s.calibration])  # validation split by customer
    # validation customers never train the evaluation fits (their training label would overlap validation's)
    assert not set(ids[s.train]) & set(ids[np.concatenate([s.early_stopping, s.calibration])])
    assert 0.2 < len(s.holdout) / (frame["as_of"] == frame["as_of"].max()).sum() < 0.4


def test_predict_proba_contract(fitted):
    m, _, ho, _, _ = fitted
    proba = m.predict_proba(ho)
    assert proba.shape == (len(ho), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert np.array_equal(proba[:, 1], m.predict_risk(ho))
    assert list(m.classes_) == [0, 1]
    assert clone(m).get_params()["n_jobs"] == 1


def test_metadata_records_versions_and_fit(fitted):
    m = fitted[0]
    assert {"lightgbm", "scikit-learn", "pandas", "churn"} <= set(m.metadata_["versions"])
    assert m.metadata_["calibration"] == "isotonic" and m.metadata_["best_iteration"] == m.best_iteration_


def test_unseen_levels_and_missing_values_are_scored(fitted):
    m, _, ho, _, _ = fitted
    x = ho.head(20).copy()
    x["plan"] = x["plan"].astype(object)
    x.loc[x.index[:5], "plan"] = "platinum"
    x.loc[x.index[5:10], "region"] = None
    x.loc[x.index[10:12], "days_since_last_event"] = np.nan
    p = m.predict_risk(x)
    assert p.shape == (20,) and np.isfinite(p).all()
    report = m.validate_input(x.assign(unused_column=1))
    assert report.unseen_levels == {"plan": 5}
    assert "unused_column" in report.extra_columns
    # an unseen level scores exactly like a missing one
    y = x.copy()
    y.loc[y.index[:5], "plan"] = None
    assert np.array_equal(m.predict_risk(y)[:5], p[:5])


def test_validate_input_names_missing_columns_and_bad_values(fitted):
    m, _, ho, _, _ = fitted
    with pytest.raises(ChurnError, match="missing 2 column.*monthly_fee.*plan"):
        m.validate_input(ho.drop(columns=["monthly_fee", "plan"]))
    bad = ho.head(10).copy()
    bad["events_30d"] = bad["events_30d"].astype(object)
    bad.loc[bad.index[3], "events_30d"] = "lots"
    with pytest.raises(ChurnError, match=r"events_30d.*text where the model expects a number.*'lots'"):
        m.predict_risk(bad)
    ok = ho.head(3).copy()
    ok["events_30d"] = ["1.5", "", None]
    assert np.isfinite(m.predict_risk(ok)).all()
    with pytest.raises(ChurnError, match="DataFrame"):
        m.predict_risk(ho.to_numpy())


def test_contributions_sum_to_raw_log_odds(fitted):
    m, _, ho, _, features = fitted
    c = m.contributions(ho.head(50))
    assert list(c.columns) == [f.name for f in features] + ["bias"]
    raw = m.predict_raw(ho.head(50))
    assert np.allclose(c.sum(axis=1).to_numpy(), np.log(raw / (1 - raw)), atol=1e-9)
    assert np.allclose(c["bias"], m.bias)


def test_joblib_round_trip_is_exact(fitted, tmp_path):
    m, _, ho, _, _ = fitted
    joblib.dump(m, tmp_path / "m.joblib")
    m2 = joblib.load(tmp_path / "m.joblib")
    assert np.array_equal(m2.predict_risk(ho), m.predict_risk(ho))


def test_same_seed_same_probabilities(synthetic, fitted):
    frame, features = synthetic
    m2, _ = _fit(frame, features)
    ho = fitted[2]
    assert np.array_equal(m2.predict_risk(ho), fitted[0].predict_risk(ho))


def test_more_complaints_never_lower_mean_risk(fitted):
    m, _, ho, _, _ = fitted
    means = [m.predict_risk(ho.assign(complaints_90d=float(v))).mean() for v in range(6)]
    assert all(b >= a for a, b in itertools.pairwise(means)), means
    assert means[-1] > means[0]


def test_model_beats_recency_heuristic(fitted):
    m, s, ho, frame, features = fitted
    y = frame["churned"].to_numpy()
    col, _ = pick_heuristic_feature(frame.iloc[s.train], y[s.train], features)
    assert col == "days_since_last_event"
    heur = HeuristicBaseline(col).fit(frame.iloc[s.train], y[s.train])
    y_ho = y[s.holdout]
    model_auc = ranking_metrics(y_ho, m.predict_risk(ho))["roc_auc"]
    heur_auc = ranking_metrics(y_ho, heur.predict_proba(ho)[:, 1])["roc_auc"]
    assert model_auc > heur_auc + 0.02, (model_auc, heur_auc)
    assert model_auc > 0.7


def test_categoricals_stored_as_numbers_match_text(synthetic):
    frame, features = synthetic
    f = frame.head(3000).copy()
    f["plan"] = f["plan"].map({"basic": 1, "standard": 2, "premium": 3})
    m = ChurnModel(features, {"num_leaves": 7}, num_boost_round=20, n_jobs=1).fit(f, f["churned"])
    assert m.categorical_levels_["plan"] == ["1", "2", "3"]
    as_text = f.assign(plan=f["plan"].astype(str))
    as_float = f.assign(plan=f["plan"].astype(float))
    assert np.array_equal(m.predict_risk(as_text), m.predict_risk(f))
    assert np.array_equal(m.predict_risk(as_float), m.predict_risk(f))


def test_monotone_constraint_makes_the_trees_move_one_way():
    """`monotone`: with a planted risk that falls again for the longest-inactive customers (a hump), the
    constrained trees' risk never falls as days since the last event grow; unconstrained, it does."""
    rng = np.random.default_rng(5)
    n = 6000
    days = rng.uniform(0, 100, n)
    noise = rng.normal(size=n)
    # Risk rises to day 60, then falls steeply: unconstrained trees follow the fall.
    logit = np.where(days < 60, -3 + days / 15, 1 - (days - 60) / 8)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"days_since_last_event": days, "noise": noise})
    feats = [Feature("days_since_last_event", "engagement", "days since the last event"),
             Feature("noise", "profile", "noise")]
    grid = pd.DataFrame({"days_since_last_event": np.linspace(0, 100, 101), "noise": 0.0})
    risk = {}
    for name, monotone in (("free", None), ("rising", {"days_since_last_event": 1})):
        m = ChurnModel(feats, {"learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 50}, kind="lightgbm",
                       num_boost_round=150, seed=1, n_jobs=1, monotone=monotone).fit(X, y)
        risk[name] = m.predict_raw(grid)
    assert np.all(np.diff(risk["rising"]) >= -1e-12)
    assert risk["free"][95] < risk["free"][60] - 0.2  # the planted fall is there to be learnt
    assert m.lgb_params_["monotone_constraints"] == [1, 0]


def test_a_constrained_name_on_a_column_of_categories_is_left_free():
    """A ready table's text column that happens to carry a constrained name ("never", "12 days") is read as
    categories: it is not constrained (LightGBM would abort the process on a constrained category) and the
    model trains with the default directions."""
    rng = np.random.default_rng(3)
    n = 2000
    X = pd.DataFrame({"days_since_last_event": rng.choice(["never", "12 days", "3 days"], n),
                      "days_since_last_order": rng.uniform(0, 90, n)})
    y = (rng.random(n) < 0.1 + 0.2 * (X["days_since_last_event"] == "never")).astype(int)
    feats = [Feature("days_since_last_event", "ready", "as exported"), Feature("days_since_last_order", "ready", "")]
    m = ChurnModel(feats, {"num_leaves": 7, "min_child_samples": 50}, num_boost_round=30, seed=1, n_jobs=1,
                   monotone=Config().model.monotone).fit(X, y)
    assert m.categorical_levels_ and "days_since_last_event" in m.categorical_levels_
    assert m.lgb_params_["monotone_constraints"] == [0, 1]
    assert m.predict_risk(X.head(5)).shape == (5,)
