"""Customer value: fee-based, spend-based, auto per customer, never NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.config import ValueConfig
from churn.scoring.value import customer_value, monthly_revenue, value_basis

# Expectations by hand: a month is a twelfth of a 365-day year (365 / 12 = 30.41666... days).


def test_fee_based_value_is_fee_times_lifetime_times_margin():
    df = pd.DataFrame({"monthly_fee": [20.0, 9.99]})
    v = customer_value(df, ValueConfig(method="fee", lifetime_months=24, margin=0.5))
    assert v.tolist() == pytest.approx([240.0, 9.99 * 12])


def test_spend_based_value_annualises_the_window():
    df = pd.DataFrame({"spend_365d": [1200.0]})
    v = customer_value(df, ValueConfig(method="spend", lifetime_months=24))
    assert v.iloc[0] == pytest.approx(2400.0)  # 1,200 a year is 100 a month; x 24 months


def test_auto_picks_per_customer_and_unknown_is_zero():
    df = pd.DataFrame(
        {
            "monthly_fee": [30.0, np.nan, 0.0, np.nan, 0.0],
            "spend_365d": [9999.0, 365.0, 730.0, np.nan, np.nan],
        }
    )
    cfg = ValueConfig(lifetime_months=12)
    assert value_basis(df, cfg).tolist() == ["fee", "spend", "spend", "unknown", "fee"]
    v = customer_value(df, cfg)
    # 30 x 12; 365 a year is 365 over 12 months; 730 a year twice that; nothing known; a zero fee.
    assert v.tolist() == pytest.approx([360.0, 365.0, 730.0, 0.0, 0.0])
    assert not v.isna().any()


def test_short_tenure_annualises_over_tenure_with_a_floor():
    df = pd.DataFrame({"spend_365d": [300.0, 300.0, 300.0], "tenure_days": [60.0, 5.0, 1000.0]})
    rev = monthly_revenue(df, ValueConfig(method="spend"))
    # 300 in 60 days is 5 a day: 152.08 a month; 5 days of tenure count as the 30-day floor (10 a day);
    # 1,000 days of tenure use the whole 365-day window: 300 a year is 25 a month.
    assert rev.tolist() == pytest.approx([152.0833333, 304.1666667, 25.0])


def test_average_order_value_times_orders_when_no_spend_column():
    df = pd.DataFrame({"avg_order_value": [50.0], "orders_365d": [6.0]})
    assert monthly_revenue(df, ValueConfig(method="spend")).iloc[0] == pytest.approx(25.0)  # 6 x 50 a year


def test_other_window_used_when_configured_one_missing():
    df = pd.DataFrame({"spend_90d": [90.0], "spend_365d": [730.0]})
    rev = monthly_revenue(df, ValueConfig(method="spend", spend_window_days=180))
    assert rev.iloc[0] == pytest.approx(60.8333333)  # the longest available window: 730 a year over 12


def test_text_numbers_refunds_and_missing_columns_never_give_nan():
    df = pd.DataFrame({"monthly_fee": ["12.5", "", None, "abc"], "spend_365d": ["-50", None, None, None]})
    v = customer_value(df, ValueConfig(lifetime_months=2))
    assert v.tolist() == pytest.approx([25.0, 0.0, 0.0, 0.0])
    assert (customer_value(pd.DataFrame(index=range(3)), ValueConfig()) == 0).all()
    assert (customer_value(pd.DataFrame({"spend_365d": [-10.0]}), ValueConfig()) == 0).all()


def test_training_profit_curve_values_customers_as_the_plan_does():
    # The same rows through the plan (scoring) and through training's profit curve: the same value each,
    # whatever is missing (fee, spend, both), whatever the basis and tenure.
    from churn.config import Config, IncentivesConfig
    from churn.scoring.allocation import plan_retention
    from churn.training.metrics import customer_value as profit_curve_value

    frame = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e", "f"],
        "churn_probability": [0.9, 0.5, 0.4, 0.3, 0.2, 0.1],
        "monthly_fee": [20.0, np.nan, 0.0, np.nan, 15.0, np.nan],
        "spend_365d": [100.0, 730.0, 365.0, np.nan, np.nan, 90.0],
        "spend_90d": [10.0, np.nan, 50.0, 20.0, np.nan, np.nan],
        "tenure_days": [400.0, 45.0, np.nan, 800.0, 10.0, 3.0],
    })
    for method in ("auto", "fee", "spend"):
        config = Config(value=ValueConfig(method=method, lifetime_months=18, margin=0.4),
                        incentives=IncentivesConfig(catalogue=[]))
        plan = plan_retention(frame, config).customers.set_index("customer_id")
        trained, _ = profit_curve_value(frame, config)
        assert trained.tolist() == pytest.approx(plan.loc[frame["customer_id"], "customer_value"].tolist())
        assert not np.isnan(trained).any()
