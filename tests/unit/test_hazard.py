"""The hazard-ratio effect model: the link by hand, the fit recovering planted hazard ratios on the churn model's
own probability, each campaign's level read from its controls, the penalty chosen on held-out campaigns, and
the held-out check against the tier rates (it wins where the effect differs by customer, not where it is flat).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from churn.campaigns.hazard import (
    DEFAULT_PENALTY,
    NO_CORRECTION,
    HazardRatio,
    campaign_shifts,
    cloglog,
    fit_cloglog,
    held_out_gain,
)
from churn.campaigns.uplift import customer_save_rates, evaluate, learn_uplift
from churn.errors import ChurnError


def test_link_by_hand():
    # cloglog(p) = log(-log(1 - p)): 1 - e^-1 -> log(1) = 0; 1 - e^-e -> log(e) = 1.
    assert cloglog(np.array([1 - math.exp(-1), 1 - math.exp(-math.e)])) == pytest.approx([0.0, 1.0])
    # One rate, no features: the maximum likelihood is the churn share, so exp(b0) = -log(1 - 0.25) / 1.
    y = np.array([1, 0, 0, 0] * 50)
    b0, b = fit_cloglog(np.zeros((200, 0)), np.zeros(200), y, 0.0)
    assert b.shape == (0,) and math.exp(b0) == pytest.approx(-math.log(0.75), rel=1e-5)


def _campaigns(n: int, seed: int, shifts=(0.0, 0.4, -0.3)) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers in three campaigns, 80% contacted: `p` is the churn model's probability (right up to each
    campaign's planted shift); a contact multiplies the hazard by 0.3 when `price` > 0 (persuadable) and by
    1.8 otherwise (sleeping dogs); `noise` carries nothing."""
    rng = np.random.default_rng(seed)
    campaign = np.repeat(np.arange(3), n // 3)
    m = len(campaign)
    price, noise = rng.normal(size=m), rng.normal(size=m)
    p = rng.uniform(0.05, 0.5, m)
    treated = rng.uniform(size=m) < 0.8
    ratio = np.where(price > 0, 0.3, 1.8)
    h = -np.log1p(-p) * np.exp(np.array(shifts)[campaign]) * np.where(treated, ratio, 1.0)
    churned = (rng.uniform(size=m) < -np.expm1(-h)).astype(int)
    X = pd.DataFrame({"price": price, "noise": noise, "churn_probability": p, "campaign": campaign})
    return X.assign(treated=treated, churned=churned), ratio


def test_each_campaign_level_comes_from_its_controls():
    X, _ = _campaigns(30_000, 1)
    shifts = campaign_shifts(X["churn_probability"].to_numpy(), X["churned"].to_numpy(),
                             X["treated"].to_numpy(), X["campaign"].to_numpy())
    assert [shifts[k] for k in range(3)] == pytest.approx([0.0, 0.4, -0.3], abs=0.08)


def test_a_campaign_without_enough_controls_keeps_the_churn_models_level():
    X, _ = _campaigns(30_000, 1)
    y, t, k = X["churned"].to_numpy(), X["treated"].to_numpy(), X["campaign"].to_numpy()
    few = t | (np.cumsum(~t) > 20)  # 20 controls left in all: campaign 0's
    assert campaign_shifts(X["churn_probability"].to_numpy(), y, few, k) == {0: 0.0, 1: 0.0, 2: 0.0}
    stayed = np.where(t, y, 0)  # controls who all stayed: the shift would run to minus infinity
    assert set(campaign_shifts(X["churn_probability"].to_numpy(), stayed, t, k).values()) == {0.0}
    cols = ["price", "noise", "churn_probability", "campaign"]
    model = HazardRatio(penalty=10.0).fit(X[cols], few, y)
    assert model.control_penalty_ == NO_CORRECTION and not model.control_coef_.any()
    with pytest.raises(ChurnError, match="contacted"):
        HazardRatio().fit(X[cols], np.zeros(len(X), bool), y)
    with pytest.raises(ChurnError, match="campaign"):
        HazardRatio().fit(X[cols].assign(campaign=np.where(t, np.nan, 1.0)), t, y)


def test_recovers_the_planted_hazard_ratios():
    X, ratio = _campaigns(30_000, 2)
    model = HazardRatio(penalty=1.0).fit(X[["price", "noise", "churn_probability", "campaign"]], X["treated"],
                                         X["churned"])
    m = model.multiplier(X)
    # A linear log-ratio through a step: the two groups are told apart, on the right side of 1.
    assert np.median(m[ratio < 1]) < 0.6 and np.median(m[ratio > 1]) > 1.2
    assert abs(model.coef_[model.columns_.index("noise")]) < 0.1
    assert model.columns_ == ["price", "noise"]  # the baseline and the campaign are not effect covariates


def test_uplift_by_hand():
    # m = exp(log 0.5 + 0.2 x (3 - 1) / 2) = 0.5 e^0.2; p = 0.2: churn with the offer 1 - 0.8^m.
    model = HazardRatio()
    model.columns_, model.mean_, model.scale_ = ["price"], np.array([1.0]), np.array([2.0])
    model.intercept_, model.coef_ = math.log(0.5), np.array([0.2])
    row = pd.DataFrame({"price": [3.0], "churn_probability": [0.2]})
    m = 0.5 * math.exp(0.2)
    assert model.multiplier(row)[0] == pytest.approx(m)
    assert model.predict_uplift(row)[0] == pytest.approx(0.2 - (1 - 0.8 ** m))
    assert model.predict_uplift(row.assign(churn_probability=[1.0]))[0] == 0.0  # certain churn stays certain
    with pytest.raises(ChurnError, match="churn_probability"):
        model.predict_uplift(row.assign(churn_probability=[1.5]))
    with pytest.raises(ChurnError, match="price"):
        model.predict_uplift(row.drop(columns="price"))


def test_the_churn_models_error_seen_by_the_controls_is_taken_out_when_asked():
    # The churn model misses a doubled hazard for `rise` > 0; the offer does the same (x0.7) to everyone.
    rng = np.random.default_rng(7)
    n = 30_000
    rise, p = rng.normal(size=n), rng.uniform(0.05, 0.5, n)
    treated = rng.uniform(size=n) < 0.7
    h = -np.log1p(-p) * np.where(rise > 0, 2.0, 1.0) * np.where(treated, 0.7, 1.0)
    X = pd.DataFrame({"rise": rise, "churn_probability": p, "campaign": np.repeat([0, 1, 2], n // 3)})
    y = (rng.uniform(size=n) < -np.expm1(-h)).astype(int)
    model = HazardRatio(penalty=10.0, correct_with_controls=True).fit(X, treated, y)
    m = model.multiplier(X)
    assert np.median(m[rise > 0]) == pytest.approx(0.7, abs=0.08)
    assert np.median(m[rise <= 0]) == pytest.approx(0.7, abs=0.08)
    assert model.control_coef_[0] > 0.2  # the controls saw the error
    # By default the error is taken for an effect (the documented assumption): contact looks worse for `rise`.
    default = HazardRatio(penalty=10.0).fit(X, treated, y)
    plain = default.multiplier(X)
    assert np.median(plain[rise > 0]) > 0.75 and np.median(plain[rise <= 0]) < 0.65
    # ... and the control fit, recorded either way, says the churn model is off (its penalty chosen on them).
    assert default.control_penalty_ < NO_CORRECTION and default.control_coef_[0] > 0.2


def test_penalty_is_chosen_on_held_out_campaigns():
    X, _ = _campaigns(6_000, 3)
    cols = ["price", "noise", "churn_probability", "campaign"]
    chosen = HazardRatio(penalties=(1.0, 1e4)).fit(X[cols], X["treated"], X["churned"])
    assert chosen.penalty_ == 1.0  # the effect is real: shrinking it to nothing predicts worse
    assert chosen.control_penalty_ == NO_CORRECTION  # the churn model is right: the controls show only noise
    one = X[X["campaign"] == 0]
    assert HazardRatio().fit(one[cols], one["treated"], one["churned"]).penalty_ == DEFAULT_PENALTY
    # Same data, same model (deterministic).
    again = HazardRatio(penalties=(1.0, 1e4)).fit(X[cols], X["treated"], X["churned"])
    assert np.array_equal(again.coef_, chosen.coef_)


def test_held_out_check_wins_only_where_the_effect_differs_by_customer():
    X, _ = _campaigns(30_000, 4)
    cols = ["price", "noise", "churn_probability", "campaign"]
    fit, held = X[X["campaign"] < 2], X[(X["campaign"] == 2) & X["treated"]]
    model = HazardRatio().fit(fit[cols], fit["treated"], fit["churned"])
    flat = np.full(len(held), 0.1)  # a tier rate: everyone alike
    gain, wins = held_out_gain(model, held, flat, -0.3, seed=1)
    assert gain > 0 and wins >= 0.95
    # Where the offer does the same to everyone, the flat rate that is right is not beaten.
    rng = np.random.default_rng(5)
    same = X.copy()
    h = -np.log1p(-same["churn_probability"]) * np.where(same["treated"], 0.7, 1.0)
    same["churned"] = (rng.uniform(size=len(same)) < -np.expm1(-h)).astype(int)
    model = HazardRatio().fit(same.loc[same["campaign"] < 2, cols], same.loc[same["campaign"] < 2, "treated"],
                              same.loc[same["campaign"] < 2, "churned"])
    held = same[(same["campaign"] == 2) & same["treated"]]
    p = held["churn_probability"].to_numpy()
    right = 1 - (1 - (1 - p) ** 0.7) / p  # the save rate a hazard ratio of 0.7 gives each customer
    gain, wins = held_out_gain(model, held, right, 0.0, seed=1)
    assert -0.005 < gain < 0 and wins < 0.5  # the truth is not beaten: the fitted noise costs a little
    # The held-out campaign's own level applies to both sides: with it, still even; the tier rates without it
    # (a stale level) would lose by far more.
    shifted = same.copy()
    h = -np.log1p(-shifted["churn_probability"]) * np.exp(0.5) * np.where(shifted["treated"], 0.7, 1.0)
    shifted["churned"] = (np.random.default_rng(6).uniform(size=len(shifted)) < -np.expm1(-h)).astype(int)
    held = shifted[(shifted["campaign"] == 2) & shifted["treated"]]
    gain, _ = held_out_gain(model, held, right, 0.5, seed=1)
    assert -0.005 < gain < 0.005


def test_a_likelihood_judged_model_is_used_where_its_gain_is_positive():
    score = np.arange(6, dtype=float)
    t, y = np.array([1, 0, 1, 0, 1, 0], bool), np.array([0, 1, 0, 1, 1, 0])
    scores = {"tier_rates": score, "hazard_ratio": -score}  # a worse ranking on this tiny table
    assert evaluate(scores, t, y, "o", judged={"hazard_ratio": (0.01, 0.3)}).chosen == "hazard_ratio"
    lost = evaluate(scores, t, y, "o", judged={"hazard_ratio": (-0.01, 0.9)})
    assert lost.chosen == "tier_rates" and lost.wins["hazard_ratio"] == 0.9
    assert lost.likelihood_gain == {"hazard_ratio": -0.01}


def test_learn_uplift_chooses_the_hazard_ratio_and_the_plan_prices_with_it():
    X, ratio = _campaigns(24_000, 6, shifts=(0.0, 0.2, 0.1))
    history = X.assign(offer="discount", risk_tier="high", customer_id=[f"c{i}" for i in range(len(X))])
    learned = learn_uplift(history, ["price", "noise"], {"discount": {"high": 0.1}}, seed=1,
                           models=("hazard_ratio",))
    u = learned["discount"]
    assert u.evaluation.chosen == "hazard_ratio" and u.evaluation.likelihood_gain["hazard_ratio"] > 0
    assert "held-out log-likelihood" in u.why
    assert set(u.model.shifts_) == {0, 1, 2}  # the model the plan uses was refitted on every campaign
    # The plan's rates: persuadables get a positive rate, sleeping dogs none (contact would drive them away).
    rates = customer_save_rates(learned, history.drop(columns="campaign"), ["price", "noise"])
    with pytest.raises(ChurnError, match="noise"):
        customer_save_rates(learned, history.drop(columns=["campaign", "noise"]), ["price", "noise"])
    dogs, persuadable = rates["discount"][ratio > 1], rates["discount"][ratio < 1]
    assert persuadable.median() > 0.3 and dogs.median() == 0.0 and dogs.mean() < 0.05
    # With every model on offer, the hazard ratio is preferred when it passes its check.
    default = learn_uplift(history, ["price", "noise"], {"discount": {"high": 0.1}}, seed=1)
    assert default["discount"].evaluation.chosen == "hazard_ratio"
    assert set(default["discount"].evaluation.wins) == {"two_model", "x_learner", "hazard_ratio"}
