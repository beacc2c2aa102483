"""Risk tiers: fixed probability cut points, learnt quantile cut points, the estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churn.config import TierLevel, TiersConfig
from churn.errors import ChurnError
from churn.scoring.tiers import RiskTiers, assign_tiers

NAMES = ["critical", "high", "medium", "low"]


def quantile_config(shares=(0.1, 0.3, 0.6, 1.0)) -> TiersConfig:
    return TiersConfig(
        method="quantile", levels=[TierLevel(name=n, top_share=s) for n, s in zip(NAMES, shares)]
    )


def test_probability_thresholds_riskiest_first_and_boundaries_inclusive():
    p = pd.Series([0.9, 0.5, 0.49, 0.3, 0.29, 0.15, 0.1, 0.0], index=list("abcdefgh"))
    tiers = assign_tiers(p, TiersConfig())
    assert list(tiers) == ["critical", "critical", "high", "high", "medium", "medium", "low", "low"]
    assert list(tiers.cat.categories) == NAMES and tiers.cat.ordered
    assert list(tiers.index) == list("abcdefgh")  # index kept
    assert tiers.min() == "critical"  # riskiest tier sorts first


def test_last_tier_catches_everyone_whatever_its_own_rule():
    cfg = TiersConfig(levels=[TierLevel(name="hot", min_probability=0.6), TierLevel(name="rest", min_probability=0.2)])
    tiers = assign_tiers(pd.Series([0.7, 0.1, 0.0]), cfg)
    assert list(tiers) == ["hot", "rest", "rest"]


def test_missing_probability_gets_missing_tier():
    tiers = assign_tiers(pd.Series([0.7, np.nan]), TiersConfig())
    assert tiers.iloc[0] == "critical" and pd.isna(tiers.iloc[1])


def test_quantile_tiers_hold_their_cumulative_shares():
    p = pd.Series(np.linspace(0.01, 0.99, 100)).sample(frac=1.0, random_state=3)  # any order
    tiers = assign_tiers(p, quantile_config())
    counts = tiers.value_counts()
    assert counts.to_dict() == {"critical": 10, "high": 20, "medium": 30, "low": 40}
    # the riskiest 10 probabilities are the critical ones
    assert set(p[tiers == "critical"]) == set(p.nlargest(10))


def test_quantile_rounding_is_half_up():
    # n = 15, critical share 0.1 -> floor(1.5 + 0.5) = 2 customers; high share 0.3 -> floor(4.5 + 0.5) = 5 in all
    p = pd.Series(np.arange(15) / 20.0)
    tiers = assign_tiers(p, quantile_config((0.1, 0.3, 0.6, 1.0)))
    assert (tiers == "critical").sum() == 2
    assert (tiers.isin(["critical", "high"])).sum() == 5


def test_quantile_ties_share_a_tier():
    p = pd.Series([0.9, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    tiers = assign_tiers(p, quantile_config((0.2, 0.3, 0.6, 1.0)))
    assert (tiers == "critical").sum() == 4  # the 2nd riskiest ties with two more: all critical
    assert tiers[p == 0.8].nunique() == 1


def test_learnt_thresholds_apply_to_a_later_list():
    today = pd.Series(np.linspace(0, 1, 101))
    model = RiskTiers(quantile_config()).fit(today)
    assert model.thresholds_[0] == pytest.approx(0.91)  # k = floor(0.1 x 101 + 0.5) = 10th riskiest
    assert model.thresholds_[-1] == -np.inf
    later = model.transform(pd.Series([0.95, 0.5, 0.05]))
    assert list(later) == ["critical", "medium", "low"]


def test_estimator_contract_constructor_does_no_work_and_pickles():
    est = RiskTiers(TiersConfig(method="probability", levels=[TierLevel(name="a", top_share=0.1), TierLevel(name="b", top_share=1.0)]))
    assert not hasattr(est, "thresholds_")  # a bad config is only noticed by fit
    with pytest.raises(ChurnError, match="call fit"):
        est.transform(pd.Series([0.1]))
    with pytest.raises(ChurnError, match="method is 'probability'"):
        est.fit(pd.Series([0.1]))
    fitted = RiskTiers(TiersConfig()).fit(pd.Series([0.2, 0.7]))
    again = pickle.loads(pickle.dumps(fitted))
    assert list(again.transform(pd.Series([0.7]))) == ["critical"]
    assert fitted.thresholds() == {"critical": 0.5, "high": 0.3, "medium": 0.15, "low": -np.inf}


def test_fixed_cut_points_must_fall():
    cfg = TiersConfig(levels=[TierLevel(name="a", min_probability=0.2), TierLevel(name="b", min_probability=0.5),
                              TierLevel(name="c", min_probability=0.0)])
    with pytest.raises(ChurnError, match="must fall"):
        assign_tiers(pd.Series([0.3]), cfg)


@settings(max_examples=settings.default.max_examples * 3 // 10)
@given(
    st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60),
    st.sampled_from(["probability", "quantile"]),
)
def test_higher_probability_never_gets_a_less_risky_tier(probs, method):
    p = pd.Series(probs)
    cfg = TiersConfig() if method == "probability" else quantile_config()
    codes = assign_tiers(p, cfg).cat.codes.to_numpy()
    order = np.argsort(p.to_numpy(), kind="stable")
    assert np.all(np.diff(codes[order]) <= 0)  # rising probability: same or riskier (lower code) tier
    assert (codes >= 0).all()  # everyone has a tier
