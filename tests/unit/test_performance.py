"""Estimated and realised performance on hand-made plans: who counts as unaffected by the campaign, the
expected churn per tier, the flag against the training holdout, and realised ROC AUC, lift and calibration
worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.monitoring.performance import estimate_performance, realised_performance, risk_deciles, unaffected

TIERS = ["high", "low"]


def plan() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "churn_probability": [0.9, 0.6, 0.5, 0.2, 0.1, np.nan],  # f: not scored
        "risk_tier": pd.Categorical(["high", "high", "high", "low", "low", None], categories=TIERS, ordered=True),
        "contact": [True, False, False, True, False, False],
        "holdout": [False, True, False, False, False, False],  # b: control group
    })


def test_unaffected_is_the_control_group_and_those_not_contacted() -> None:
    mask, population = unaffected(plan())
    # a and d were contacted (their outcome may change), f has no score.
    assert mask.tolist() == [False, True, True, False, True, False]
    assert population == "control group and customers not contacted"
    nobody = plan().assign(contact=False, holdout=False)
    assert unaffected(nobody)[1] == "every scored customer (no one was contacted)"


def test_estimate_on_the_unaffected_customers_by_hand() -> None:
    est = estimate_performance(plan(), holdout_roc_auc=0.9, margin=0.05)
    # b, c, e: p = 0.6, 0.5, 0.1. Expected churners 1.2, stayers 1.8. Curve: (0,0) -> after b (0.4/1.8,
    # 0.6/1.2) -> after c (0.9/1.8, 1.1/1.2) -> after e (1, 1).
    pts = [(0, 0), (0.4 / 1.8, 0.5), (0.9 / 1.8, 1.1 / 1.2), (1, 1)]
    auc = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(pts, pts[1:]))
    assert est["customers"] == 3 and est["expected_roc_auc"] == pytest.approx(auc)
    assert est["expected_churn_rate"] == pytest.approx(1.2 / 3)
    assert est["by_tier"] == [{"tier": "high", "customers": 2, "expected_churn_rate": pytest.approx(0.55)},
                              {"tier": "low", "customers": 1, "expected_churn_rate": pytest.approx(0.1)}]
    assert est["breaches"] and est["breaches"][0].startswith(f"estimated ROC AUC {auc:.3f} on control group")
    assert estimate_performance(plan(), holdout_roc_auc=auc + 0.04, margin=0.05)["breaches"] == []
    assert estimate_performance(plan(), holdout_roc_auc=None, margin=0.05)["breaches"] == []


def test_realised_performance_by_hand() -> None:
    # 10 customers, riskiest first; churners at ranks 1, 2 and 5.
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0])
    tiers = np.array(["high"] * 5 + ["low"] * 5, dtype=object)
    r = realised_performance(y, p, tiers, TIERS, retrain_below=0.95)
    # Pairs (churner, stayer) ranked right: 7 + 7 + 5 of 3 x 7 = 21.
    assert r["roc_auc"] == pytest.approx(19 / 21)
    # Average precision: precision at each churner's rank: 1/1, 2/2, 3/5.
    assert r["pr_auc"] == pytest.approx((1 + 1 + 0.6) / 3)
    # The riskiest 10% is one customer, a churner: rate 1 against a base rate of 0.3.
    assert r["lift_top_10pct"] == pytest.approx(1 / 0.3)
    assert r["calibration_by_tier"] == [
        {"group": "high", "customers": 5, "predicted": pytest.approx(0.7), "observed": pytest.approx(0.6)},
        {"group": "low", "customers": 5, "predicted": pytest.approx(0.21), "observed": 0.0}]
    first = r["calibration_by_decile"][0]
    assert first == {"group": 1, "customers": 1, "predicted": pytest.approx(0.9), "observed": 1.0}
    assert r["customers"] == 10 and r["churners"] == 3 and r["observed_churn_rate"] == pytest.approx(0.3)
    assert r["retrain"] and r["retrain_why"] == "realised ROC AUC 0.905 is below 0.95 (monitoring.retrain_below_roc_auc)"
    assert not realised_performance(y, p, tiers, TIERS, retrain_below=0.7)["retrain"]


def test_deciles_by_rank() -> None:
    assert risk_deciles(np.array([0.1, 0.9, 0.5, 0.5])).tolist() == [8, 1, 3, 6]
    assert risk_deciles(np.arange(20.0))[::-1].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10]


def test_one_class_has_no_auc_and_no_retraining_advice() -> None:
    r = realised_performance(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4]), None, [], retrain_below=0.7)
    assert r["roc_auc"] is None and r["pr_auc"] is None and not r["retrain"]
