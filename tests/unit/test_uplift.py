"""Uplift models and their evaluation: Qini and uplift@k by hand on a tiny table; two-model and X-learner on
real LightGBM recovering a planted effect that helps some customers and harms others; the held-out choice
that keeps a model only when it reliably beats the tier rates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.campaigns.uplift import (
    TwoModel,
    XLearner,
    customer_save_rates,
    evaluate,
    learn_uplift,
    qini_coefficient,
    qini_curve,
    uplift_at_k,
)

SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
TREATED = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
CHURNED = np.array([0, 1, 0, 1, 1, 0])


def test_qini_by_hand():
    # Top k:     1    2    3    4    5    6
    # treated    1    1    2    2    3    3     control 0 1 1 2 2 3
    # churned t  0    0    0    0    1    1     churned c 0 1 1 2 2 2
    # Q(k) = churned_c x treated / control - churned_t: 0 (no control yet), 1, 2, 2, 3 x 2/2 - 1 = 2, 2 - 1 = 1
    assert qini_curve(SCORE, TREATED, CHURNED).tolist() == [0.0, 1.0, 2.0, 2.0, 2.0, 1.0]
    # Random targeting ends at the same 1: k / 6. Differences -1/6, 2/3, 3/2, 4/3, 7/6, 0: mean 0.75; / 6.
    assert qini_coefficient(SCORE, TREATED, CHURNED) == pytest.approx(0.125)
    # Top half: two contacted (neither churned), one control (churned): 1 - 0.
    assert uplift_at_k(SCORE, TREATED, CHURNED, 0.5) == 1.0
    assert np.isnan(uplift_at_k(SCORE, TREATED, CHURNED, 1 / 6))  # no control among the top one


def _planted(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Customers whose churn an offer lowers by 0.25 when `price_sensitive` is high and raises by 0.10
    otherwise (sleeping dogs); `noise` and `region` carry nothing."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"price_sensitive": rng.uniform(0, 1, n), "noise": rng.normal(size=n),
                      "region": rng.choice(["north", "south"], n)})
    effect = np.where(X["price_sensitive"] > 0.5, 0.25, -0.10)
    treated = rng.uniform(size=n) < 0.5
    churned = (rng.uniform(size=n) < 0.35 - treated * effect).astype(int)
    return X, treated, churned, effect


@pytest.mark.parametrize("model", [TwoModel, XLearner])
def test_models_recover_the_planted_effect(model):
    X, t, y, _ = _planted(6000, 1)
    m = model(params={"n_estimators": 60, "min_child_samples": 100}, seed=3, n_jobs=1).fit(X, t, y)
    X_new, t_new, y_new, effect = _planted(4000, 2)
    tau = m.predict_uplift(X_new)
    helps = effect > 0
    assert tau[helps].mean() > 0.15 and tau[~helps].mean() < 0.0
    assert qini_coefficient(tau, t_new, y_new) > qini_coefficient(-tau, t_new, y_new) + 0.01
    # Learnt state only; predicting does not refit, and the same seed gives the same model.
    again = model(params={"n_estimators": 60, "min_child_samples": 100}, seed=3, n_jobs=1).fit(X, t, y)
    assert np.allclose(again.predict_uplift(X_new), tau)


def test_a_model_is_chosen_only_when_it_reliably_beats_the_tier_rates():
    X, t, y, effect = _planted(3000, 4)
    noise = np.random.default_rng(5).normal(size=len(t))
    better = evaluate({"tier_rates": noise, "two_model": effect + 0.01 * noise}, t, y, "discount")
    assert better.chosen == "two_model" and better.wins["two_model"] >= 0.95
    worse = evaluate({"tier_rates": effect + 0.01 * noise, "two_model": noise}, t, y, "discount")
    assert worse.chosen == "tier_rates" and worse.wins["two_model"] < 0.5
    assert better.qini["two_model"] > better.qini["tier_rates"]


def test_learn_uplift_keeps_the_tier_rates_without_enough_history():
    X, t, y, effect = _planted(4500, 6)
    history = X.assign(campaign=np.repeat([0, 1, 2], 1500), offer="discount", treated=t, churned=y,
                       risk_tier="high", churn_probability=0.35)
    learned = learn_uplift(history, ["price_sensitive", "noise", "region"], {"discount": {"high": 0.2}}, seed=1,
                           models=("two_model", "x_learner"))  # the Qini-judged ones (hazard: test_hazard.py)
    # The tier rate ranks every customer of the tier alike: the model finds who the offer helps.
    u = learned["discount"]
    assert u.evaluation.chosen in ("two_model", "x_learner") and u.model is not None
    rates = customer_save_rates(learned, history.assign(customer_id=[f"c{i}" for i in range(len(history))]),
                                ["price_sensitive", "noise", "region"])
    helps = effect > 0
    assert rates.loc[helps, "discount"].mean() > 0.3 and rates.loc[~helps, "discount"].mean() < 0.1
    assert rates["discount"].between(0, 1).all()
    small = learn_uplift(history.iloc[:300], ["price_sensitive", "noise", "region"], {"discount": {"high": 0.2}})
    assert small["discount"].model is None and "too little history" in small["discount"].why
