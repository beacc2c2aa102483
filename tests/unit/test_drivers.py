"""The report's "Why customers are at risk" counts drivers (features), not the exact reason texts."""

from __future__ import annotations

import pandas as pd

from churn.features.registry import Feature
from churn.scoring.drivers import risk_drivers
from churn.scoring.report import report_context

EVENTS = Feature("events_30d", "engagement", "product events in the last 30 days", 30,
                 reason="0: no product events in the last 30 days || "
                        "only {value:.0f product event|product events} in the last 30 days")
TICKETS = Feature("open_tickets", "support", "support tickets still unresolved",
                  reason="{value:.0f unresolved support ticket|unresolved support tickets}")
PLAN = Feature("plan", "profile", "customer plan", kind="categorical", reason="plan: {value}")


def plan_frame() -> pd.DataFrame:
    """Five customers: four name product events (with four different texts), two open tickets, one the plan."""
    return pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "churn_probability": [0.9, 0.8, 0.7, 0.6, 0.1],
        "risk_tier": ["high", "high", "high", "high", "low"],
        "events_30d": [0.0, 1.0, 2.0, 0.0, 30.0],
        "open_tickets": [3.0, 0.0, 1.0, 0.0, 0.0],
        "plan": ["basic", "basic", "plus", "basic", "plus"],
        "reason_1": ["no product events in the last 30 days", "only 1 product event in the last 30 days",
                     "1 unresolved support ticket", "no product events in the last 30 days", None],
        "reason_2": ["3 unresolved support tickets", "plan: basic", "only 2 product events in the last 30 days",
                     None, None],
        "reason_3": [None, None, None, None, None],
        "reason_1_feature": ["events_30d", "events_30d", "open_tickets", "events_30d", None],
        "reason_2_feature": ["open_tickets", "plan", "events_30d", None, None],
        "reason_3_feature": [None, None, None, None, None],
    })


def test_drivers_count_customers_per_feature_with_a_typical_reason() -> None:
    high = plan_frame().iloc[:4]
    got = risk_drivers(high, [EVENTS, TICKETS, PLAN])
    assert [(d.name, d.family, d.customers, d.share) for d in got] == [
        ("events_30d", "engagement", 4, 1.0),  # four texts, one driver
        ("open_tickets", "support", 2, 0.5),
        ("plan", "profile", 1, 0.25),
    ]
    assert got[0].label == "Product events in the last 30 days"
    # median events of a, b, c, d (0, 1, 2, 0) is 0.5: shown as "0" -> the zero form
    assert got[0].typical == "no product events in the last 30 days"
    assert got[1].typical == "2 unresolved support tickets"  # median of 3 and 1
    assert got[2].typical == "plan: basic"


def test_without_feature_columns_the_most_common_text_is_typical() -> None:
    high = plan_frame().iloc[:4].drop(columns=["events_30d", "open_tickets", "plan"])
    got = risk_drivers(high, [EVENTS, TICKETS, PLAN], top=1)
    assert [(d.name, d.customers, d.typical) for d in got] == [
        ("events_30d", 4, "no product events in the last 30 days")]


def test_plans_without_driver_columns_count_texts() -> None:
    old = plan_frame().drop(columns=["reason_1_feature", "reason_2_feature", "reason_3_feature"]).iloc[:4]
    got = risk_drivers(old, top=2)
    assert [(d.name, d.customers) for d in got] == [("no product events in the last 30 days", 2),
                                                    ("1 unresolved support ticket", 1)]


def test_report_shows_drivers_per_tier() -> None:
    ctx = report_context(plan_frame(), None, {}, [EVENTS, TICKETS, PLAN])
    high = next(t for t in ctx["reasons"] if t["tier"] == "high")
    assert [(r["text"], r["count"]) for r in high["reasons"]] == [
        ("Product events in the last 30 days", 4), ("Support tickets still unresolved", 2), ("Customer plan", 1)]
    assert all(t["tier"] != "low" for t in ctx["reasons"])  # the low tier's customer has no reasons
