"""A plan that learned from past campaigns (`plan_retention(effects=..., customer_save_rates=...)`): it prices
offers with the measured rates, says which are measured and which assumed, never contacts anyone without
consent (or excluded, or in the cool-down), and leaves the control group exactly as random as it was.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.campaigns.learning import Cell, shrink
from churn.config import ChannelsConfig, Config, Incentive, IncentivesConfig
from churn.scoring.allocation import plan_retention
from churn.scoring.summary import PlanSummary

OFFERS = [
    Incentive(name="discount", kind="discount", cost_share_of_fee=0.5,
              save_rate={"critical": 0.25, "high": 0.2, "medium": 0.1}),
    Incentive(name="call", kind="personal_call", unit_cost=5.0, save_rate={"critical": 0.4, "high": 0.3},
              eligible={"tiers": ["critical", "high"]}),
]
ASSUMED = {"discount": {"critical": 0.25, "high": 0.2, "medium": 0.1}, "call": {"critical": 0.4, "high": 0.3}}


def _config(budget: float = 1e9, control_share: float = 0.2) -> Config:
    return Config(incentives=IncentivesConfig(budget=budget, control_share=control_share, cooldown_days=30,
                                              channels=ChannelsConfig(contact_cost={"email": 0.01}),
                                              catalogue=OFFERS))


def _scores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": [f"{i:05d}" for i in range(n)],
        "as_of": pd.Timestamp("2025-03-01"),
        "churn_probability": rng.uniform(0, 1, n),
        "monthly_fee": rng.choice([9.99, 19.99, 29.99], n),
        "marketing_consent": rng.choice([True, False, None], n, p=[0.7, 0.2, 0.1]),
    })


def _learned(harmful_call: bool = False):
    """Effects as `churn campaign-effect` learns them: the discount measured in critical (it saved more than
    assumed), the call measured in critical (no effect, or harm), everything else not measured."""
    cells = [Cell("critical", "discount", 2000, 100, 500, 100),
             Cell("critical", "call", 2000, 500 if harmful_call else 400, 500, 100)]
    return shrink(cells, ASSUMED, strength=200)


def test_the_plan_prices_with_measured_rates_and_says_which_are_measured():
    scores = _scores(400, 1)
    plan = plan_retention(scores, _config(), effects=_learned(harmful_call=True), seed=3)
    rates = plan.summary.save_rates
    # Control churn m_c = 0.2 (200 of 1,000 held out); discount: prior treated 0.15, k = 200:
    # (30 + 100) / 2200 = 0.059091 against (40 + 100) / 700 = 0.2: 1 - 0.29545 = 0.704545.
    assert rates["discount"]["critical"].source == "measured"
    assert rates["discount"]["critical"].rate == pytest.approx(0.704545, abs=1e-6)
    assert rates["discount"]["critical"].assumed == 0.25
    assert (rates["discount"]["high"].source, rates["discount"]["high"].rate) == ("assumed", 0.2)
    # The call did harm (25% churn against 20%): its learned rate is negative, used as 0, never worth giving.
    assert rates["call"]["critical"].source == "measured" and rates["call"]["critical"].rate == 0.0
    c = plan.customers
    assert not ((c["risk_tier"] == "critical") & (c["incentive"] == "call")).any()
    assert ((c["risk_tier"] == "high") & (c["incentive"] == "call")).any()  # assumed 30% there: still offered
    crit = c[(c["risk_tier"] == "critical") & (c["incentive"] == "discount")]
    rev = crit["monthly_fee"]
    expected = crit["churn_probability"] * crit["customer_value"] * 0.704545
    assert np.allclose(crit["expected_saved_value"], expected, rtol=1e-5)
    assert np.allclose(crit["incentive_cost"], 0.5 * rev + 0.01)
    # summary.json carries them; a plan on the catalogue alone writes the summary it always did.
    as_json = json.loads(json.dumps(plan.summary.to_dict()))
    assert as_json["save_rates"]["discount"]["critical"]["source"] == "measured"
    assert PlanSummary.from_dict(as_json) == plan.summary
    assert "save_rates" not in plan_retention(scores, _config(), seed=3).summary.to_dict()


def test_own_rates_of_an_uplift_model_replace_the_tier_rate():
    scores = _scores(300, 2)
    ids = scores["customer_id"]
    # Nobody is expected to be saved by anything, except five customers with a strong own effect.
    own = pd.DataFrame({"customer_id": ids, "discount": 0.0, "call": 0.0})
    chosen = ids[(scores["marketing_consent"] == True) & (scores["churn_probability"] > 0.6)].head(5)  # noqa: E712
    own.loc[own["customer_id"].isin(chosen), "discount"] = 0.9
    plan = plan_retention(scores, _config(control_share=0.0), customer_save_rates=own, seed=3)
    assert set(plan.customers.loc[plan.customers["contact"], "customer_id"]) == set(chosen)
    priced = sum(r.customers_priced for by_tier in plan.summary.save_rates.values() for r in by_tier.values())
    assert priced > 0 and all(r.source == "assumed" for t in plan.summary.save_rates.values() for r in t.values())


@settings(max_examples=settings.default.max_examples // 4, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.floats(0.0, 0.5), st.booleans(), st.floats(10.0, 5_000.0))
def test_learning_never_contacts_without_consent_and_leaves_the_control_group_alone(seed, share, harmful, budget):
    scores = _scores(120, seed)
    rng = np.random.default_rng(seed + 1)
    excluded = pd.DataFrame({"customer_id": scores["customer_id"].sample(5, random_state=seed)})
    history = pd.DataFrame({"customer_id": scores["customer_id"].sample(5, random_state=seed + 1),
                            "contacted_at": pd.Timestamp("2025-02-20")})
    # Own rates that would make everyone, consent or not, look like the best customer to contact.
    own = pd.DataFrame({"customer_id": scores["customer_id"], "discount": rng.uniform(0.5, 1.0, len(scores)),
                        "call": rng.uniform(0.5, 1.0, len(scores))})
    config = _config(budget=budget, control_share=share)
    kwargs = {"exclusions": excluded, "contact_history": history, "seed": seed}
    plain = plan_retention(scores, config, **kwargs).customers
    learned = plan_retention(scores, config, effects=_learned(harmful), customer_save_rates=own, **kwargs).customers
    consent = learned["marketing_consent"].map(lambda v: v is True or v == True)  # noqa: E712
    assert not (learned["contact"] & ~consent).any()
    assert not learned.loc[learned["customer_id"].isin(excluded["customer_id"]), "contact"].any()
    assert not learned.loc[learned["customer_id"].isin(history["customer_id"]), "contact"].any()
    # The control group: the same customers, drawn by the same seeded hash, none of them contacted.
    assert learned["holdout"].tolist() == plain["holdout"].tolist()
    assert not (learned["holdout"] & learned["contact"]).any()
    assert (learned["no_contact_reason"][learned["holdout"]] == "control group").all()
