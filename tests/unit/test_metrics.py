"""Holdout metrics, economics and customer value on small hand-checked inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.config import Config, Incentive
from churn.training.metrics import (
    customer_value,
    holdout_metrics,
    incentive_economics,
    profit_curve,
    profit_summary,
    top_k,
    top_share_metrics,
)


def test_top_share_precision_lift_capture():
    # 20 rows, 4 churners; the riskiest 2 (10%) are both churners, the riskiest 4 (20%) hold 3 of them
    y = np.array([1, 1, 0, 1] + [0] * 15 + [1])
    p = np.linspace(1, 0, 20)
    m = top_share_metrics(y, p)
    assert m["precision_top_10pct"] == 1.0 and m["lift_top_10pct"] == pytest.approx(5.0)
    assert m["capture_top_10pct"] == 0.5
    assert m["precision_top_20pct"] == 0.75 and m["capture_top_20pct"] == 0.75
    assert m["precision_top_5pct"] == 1.0  # top 5% of 20 rows = 1 row


def test_top_k_rounds_up_and_keeps_one():
    assert top_k(20, 0.05) == 1 and top_k(21, 0.1) == 3 and top_k(3, 0.01) == 1 and top_k(0, 0.1) == 0


def test_holdout_metrics_perfect_and_raw():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.8, 0.9])
    m = holdout_metrics(y, p, p_raw=np.array([0.3, 0.4, 0.6, 0.7]))
    assert m["roc_auc"] == 1.0 and m["pr_auc"] == 1.0 and m["base_rate"] == 0.5
    assert m["brier"] == pytest.approx(np.mean([0.01, 0.04, 0.04, 0.01]))
    assert m["brier_raw"] > m["brier"] and m["roc_auc_raw"] == 1.0
    assert m["precision"] == 1.0 and m["recall"] == 1.0


def test_one_class_holdout_gives_nan_not_error():
    m = holdout_metrics(np.zeros(5), np.linspace(0, 1, 5))
    assert np.isnan(m["roc_auc"]) and np.isfinite(m["brier"])


def test_profit_curve_by_hand():
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    value = np.array([100.0, 50.0, 200.0, 10.0])
    curve = profit_curve(y, p, value, save_rate=0.5, cost=10.0)
    # contact order 0,1,2,3: gains 40, -10, 90, -10
    assert curve["profit"].tolist() == [0.0, 40.0, 30.0, 120.0, 110.0]
    s = profit_summary(curve)
    assert s["profit_best"] == 120.0 and s["profit_best_share"] == 0.75 and s["profit_contact_all"] == 110.0


def test_economics_defaults_and_catalogue():
    e = incentive_economics(Config())
    assert (e.save_rate, e.cost) == (0.2, 5.0) and "default" in e.source
    cfg = Config(incentives={"catalogue": [
        Incentive(name="a", kind="discount", unit_cost=10.0, save_rate={"high": 0.3, "low": 0.1}),
        Incentive(name="b", kind="gift", unit_cost=20.0, save_rate={"high": 0.4}),
    ]})
    e = incentive_economics(cfg)
    # per tier: high 0.35 / 15 (a and b), low 0.1 / 10 (a); critical and medium have no offer
    assert e.save_rate == pytest.approx(0.225) and e.cost == pytest.approx(12.5)
    assert "high 0.35 / 15.00; low 0.10 / 10.00" in e.source


def test_profit_curve_reads_the_catalogue_as_the_plan_does():
    # Contact prices, a forced channel, eligibility by tier and a cap of zero: the per-tier save rate and
    # cost the profit curve uses are the ones the plan gives each contacted customer.
    from churn.config import ChannelsConfig, Eligibility, IncentivesConfig
    from churn.scoring.allocation import plan_retention
    from churn.scoring.offers import tier_terms

    catalogue = [
        Incentive(name="call", kind="personal_call", unit_cost=6.0, channel="Call",
                  save_rate={"critical": 0.5, "high": 0.45}, eligible=Eligibility(tiers=["critical"])),
        Incentive(name="voucher", kind="gift", unit_cost=2.0, save_rate={"high": 0.25, "medium": 0.1}),
        Incentive(name="never", kind="gift", unit_cost=0.0, save_rate={"low": 0.9}, max_customers=0),
    ]
    cfg = Config(incentives=IncentivesConfig(
        budget=1e9, control_share=0.0, catalogue=catalogue,
        channels=ChannelsConfig(default="email", contact_cost={"email": 0.5, "call": 4.0})))
    terms = tier_terms(cfg)
    assert {k: (t.save_rate, t.cost, t.offers) for k, t in terms.items()} == {
        "critical": (0.5, 10.0, ("call",)), "high": (0.25, 2.5, ("voucher",)),
        "medium": (0.1, 2.5, ("voucher",))}
    e = incentive_economics(cfg)
    assert e.save_rate == pytest.approx((0.5 + 0.25 + 0.1) / 3) and e.cost == pytest.approx(15.0 / 3)

    p = [0.9, 0.8, 0.4, 0.35, 0.2, 0.05]
    scores = pd.DataFrame({"customer_id": [f"c{i}" for i in range(6)], "churn_probability": p,
                           "monthly_fee": 100.0, "marketing_consent": True})
    plan = plan_retention(scores, cfg).customers
    given = plan[plan["contact"]]
    assert set(given["risk_tier"].astype(str)) == {"critical", "high", "medium"}  # nothing for low: cap 0
    for _, c in given.iterrows():
        t = terms[str(c["risk_tier"])]
        assert c["incentive"] in t.offers
        assert c["incentive_cost"] == pytest.approx(t.cost)
        saved = c["churn_probability"] * c["customer_value"] * t.save_rate
        assert c["expected_saved_value"] == pytest.approx(saved)


def test_customer_value_sources():
    cfg = Config()  # value: auto basis, 24 lifetime months, margin 1
    v, src = customer_value(pd.DataFrame({"monthly_fee": [10.0, np.nan, 30.0]}), cfg)
    assert v.tolist() == [240.0, 0.0, 720.0]  # a missing fee (and no spend) is worth 0, as in the plan
    assert "fee for 2" in src and "unknown (0) for 1" in src
    v, src = customer_value(pd.DataFrame({"spend_365d": [1217.5]}), cfg)
    assert v[0] == pytest.approx(1217.5 / 12 * 24) and "spend for 1" in src
    v, src = customer_value(pd.DataFrame({"x": [1, 2]}), cfg)
    assert v.tolist() == [0.0, 0.0] and src.startswith("no customer value known")
