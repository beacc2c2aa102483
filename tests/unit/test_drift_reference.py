"""The training reference (a scikit-learn style estimator) and the drift of a run against it, on small frames
whose distributions are known: planted shifts are found, an unchanged run finds nothing, and a 19% rise of a
low churn rate is caught by the mean and the tiers although PSI barely moves."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from churn.config.schema import MonitoringConfig
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.monitoring.drift import measure_drift
from churn.monitoring.reference import DriftReference

FEATURES = [Feature("visits", "engagement", "visits"), Feature("plan", "profile", "plan", kind="categorical")]
THRESHOLDS = MonitoringConfig()


def frame(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "premium"], n, p=[0.7, 0.3]).astype(object)
    return pd.DataFrame({"visits": rng.gamma(2.0, 5.0, n), "plan": plan})


def test_the_estimator_contract() -> None:
    ref = DriftReference(bins=5)
    assert ref.get_params() == {"bins": 5} and not hasattr(ref, "features_")  # the constructor does no work
    values = pd.DataFrame({"visits": np.arange(1.0, 101.0), "plan": ["Gold", " gold", "silver", None] * 25})
    fitted = ref.fit(values, FEATURES, np.linspace(0.01, 0.5, 100), ["high"] * 20 + ["low"] * 80)
    assert fitted is ref
    # Quintile edges of 1..100 (linear interpolation: 1 + 99 k / 5), 20 values in each bin.
    assert ref.edges_["visits"] == pytest.approx([20.8, 40.6, 60.4, 80.2])
    assert ref.shares_["visits"] == pytest.approx([0.2] * 5)
    assert ref.levels_["plan"] == pytest.approx({"gold": 2 / 3, "silver": 1 / 3})  # case and spaces folded
    assert ref.missing_ == pytest.approx({"visits": 0.0, "plan": 0.25})
    assert ref.tier_shares_ == pytest.approx({"high": 0.2, "low": 0.8})
    assert ref.score_mean_ == pytest.approx(0.255) and ref.n_rows_ == 100
    assert ref.features_ == {"visits": "numeric", "plan": "categorical"}
    assert clone(ref).get_params() == {"bins": 5} and not hasattr(clone(ref), "edges_")
    again = pickle.loads(pickle.dumps(ref))
    assert again.edges_ == ref.edges_ and again.levels_ == ref.levels_


def test_ties_give_fewer_bins_not_empty_duplicates() -> None:
    visits = np.r_[np.zeros(600), np.arange(1.0, 401.0)]  # 60% zeros
    ref = DriftReference().fit(pd.DataFrame({"visits": visits, "plan": "a"}), FEATURES, np.full(1000, 0.1))
    # Deciles 1-5 are all 0; the 6th lies 0.4 of the way from the last 0 to the first 1 (1000 values).
    assert ref.edges_["visits"] == pytest.approx([0.0, 0.4, 100.3, 200.2, 300.1])
    assert ref.shares_["visits"] == pytest.approx([0.0, 0.6, 0.1, 0.1, 0.1, 0.1])


def test_bad_reference_rows_are_refused() -> None:
    with pytest.raises(ChurnError, match="lack feature column.*plan"):
        DriftReference().fit(pd.DataFrame({"visits": [1.0]}), FEATURES, [0.1])
    with pytest.raises(ChurnError, match="2 scores for 3 rows"):
        DriftReference().fit(frame(3), FEATURES, [0.1, 0.2])
    with pytest.raises(ChurnError, match="bins must be at least 2"):
        DriftReference(bins=1).fit(frame(3), FEATURES, [0.1, 0.2, 0.3])


def test_an_unchanged_population_has_no_breach() -> None:
    train, now = frame(4000, seed=1), frame(4000, seed=2)  # two draws of one distribution
    scores = np.random.default_rng(3).beta(1, 8, 4000)
    ref = DriftReference().fit(train, FEATURES, scores, np.where(scores > 0.3, "high", "low"))
    later = np.random.default_rng(4).beta(1, 8, 4000)
    report = measure_drift(ref, now, later, np.where(later > 0.3, "high", "low"), THRESHOLDS)
    assert report.breaches == []
    by = {d.feature: d for d in report.features}
    assert by["visits"].psi < 0.02 and by["plan"].js_distance < 0.02 and by["plan"].unseen_share == 0.0


def test_planted_shifts_are_each_named() -> None:
    train = frame(3000, seed=1)
    scores = np.random.default_rng(3).beta(1, 8, 3000)
    ref = DriftReference().fit(train, FEATURES, scores)
    now = frame(3000, seed=2)
    now["visits"] = now["visits"] * 2.0  # everyone visits twice as often
    now.loc[now.index[:300], "plan"] = "Platinum"  # a plan training never saw, 10% of customers
    now.loc[now.index[300:900], "visits"] = np.nan  # 20% now missing (none were)
    report = measure_drift(ref, now, scores, None, THRESHOLDS)
    by = {d.feature: d for d in report.features}
    assert by["visits"].psi > 0.2 and by["visits"].missing_now == pytest.approx(0.2)
    assert by["plan"].unseen_share == pytest.approx(0.1) and by["plan"].unseen_levels == ["platinum"]
    text = "\n".join(report.breaches)
    assert "visits: distribution shifted (PSI" in text
    assert "visits: missing in 20% of customers (training: 0%)" in text
    assert "plan: 10.0% of customers in categories training never saw (e.g. 'platinum')" in text
    assert not [b for b in report.breaches if "churn" in b]  # the scores did not move


def test_a_fifth_more_risk_moves_psi_little_but_the_mean_and_tiers_are_flagged() -> None:
    rng = np.random.default_rng(11)
    train = np.clip(rng.beta(0.8, 12.0, 20000), 0, 1)  # mean about 6.2%
    now = np.clip(rng.beta(0.8, 12.0, 20000) * 1.19, 0, 1)  # the same customers at 19% more risk
    tiers = lambda p: np.where(p >= 0.15, "high", "low")  # noqa: E731
    ref = DriftReference().fit(frame(20000), FEATURES, train, tiers(train))
    report = measure_drift(ref, frame(20000, seed=5), now, tiers(now), THRESHOLDS)
    assert report.score_psi < 0.1  # below the usual alarm: PSI alone would miss it
    assert report.mean_change == pytest.approx(0.19, abs=0.02)
    assert report.breaches == ["mean predicted churn 6.3% in training, 7.5% now (+20%; threshold ±15%)"]
    high = next(t for t in report.tiers if t["tier"] == "high")
    assert high["now"] - high["reference"] == pytest.approx(high["change"]) and high["change"] > 0.02
