"""Risk alerts between two runs: the rise threshold and tier crossings, on hand-made frames."""

from __future__ import annotations

import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.scoring.alerts import compute_alerts

# The alerts.csv layout expected, written out (not read from the module under test).
ALERT_COLUMNS = ["customer_id", "previous_probability", "current_probability", "probability_rise",
                 "previous_tier", "current_tier", "risk_rose", "moved_up_tier", "why"]

TIERS = ["critical", "high", "medium", "low"]


def scored(rows: list[tuple[str, float, str]], **extra: list) -> pd.DataFrame:
    ids, probs, tiers = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "customer_id": list(ids),
            "churn_probability": list(probs),
            "risk_tier": pd.Categorical(tiers, categories=TIERS, ordered=True),
            **extra,
        }
    )


PREVIOUS = scored(
    [
        ("001", 0.10, "low"),  # rises 0.20, same tier band crossing low -> medium
        ("002", 0.40, "high"),  # rises 0.05 but crosses into critical
        ("003", 0.20, "medium"),  # rises exactly 0.15: not "more than"
        ("004", 0.60, "critical"),  # falls: no alert
        ("005", 0.31, "high"),  # rises 0.16 within high: alert for the rise only
        ("006", 0.55, "critical"),  # new customer in current is 007; 006 is gone
    ]
)
CURRENT = scored(
    [
        ("001", 0.30, "medium"),
        ("002", 0.45, "critical"),
        ("003", 0.35, "high"),  # ... but it did move medium -> high: alert for the tier
        ("004", 0.20, "medium"),
        ("005", 0.47, "high"),
        ("007", 0.90, "critical"),
    ],
    name=["A", "B", "C", "D", "E", "G"],
)


def test_rise_threshold_and_tier_crossing():
    alerts = compute_alerts(CURRENT, PREVIOUS, probability_rise=0.15)
    by_id = alerts.set_index("customer_id")
    assert list(by_id.index) == ["001", "005", "003", "002"]  # largest rise first
    assert by_id.loc["001", "risk_rose"] and by_id.loc["001", "moved_up_tier"]
    assert by_id.loc["001", "why"] == "risk rose by 20 points (10% to 30%); moved from low to medium"
    assert not by_id.loc["002", "risk_rose"] and by_id.loc["002", "moved_up_tier"]
    assert by_id.loc["002", "why"] == "moved from high to critical"
    assert not by_id.loc["003", "risk_rose"] and by_id.loc["003", "moved_up_tier"]  # exactly 0.15
    assert by_id.loc["005", "risk_rose"] and not by_id.loc["005", "moved_up_tier"]
    assert by_id.loc["005", "why"] == "risk rose by 16 points (31% to 47%)"
    assert (
        by_id.loc["005", "previous_probability"] == 0.31 and by_id.loc["005", "current_probability"] == 0.47
    )
    assert by_id.loc["005", "probability_rise"] == pytest.approx(0.16)
    assert (by_id.loc["002", "previous_tier"], by_id.loc["002", "current_tier"]) == ("high", "critical")
    assert "004" not in by_id.index and "007" not in by_id.index  # fell / new customer
    assert list(alerts.columns) == ALERT_COLUMNS + ["name"]  # context from the current run
    assert by_id.loc["001", "name"] == "A"


def test_higher_threshold_keeps_only_tier_moves():
    alerts = compute_alerts(CURRENT, PREVIOUS, probability_rise=0.5)
    assert set(alerts["customer_id"]) == {"001", "002", "003"}
    assert not alerts["risk_rose"].any() and alerts["moved_up_tier"].all()


def test_no_previous_run_gives_an_empty_frame_with_columns():
    for previous in (None, PREVIOUS.iloc[0:0]):
        alerts = compute_alerts(CURRENT, previous, probability_rise=0.15)
        assert alerts.empty
        assert list(alerts.columns) == ALERT_COLUMNS + ["name"]


def test_nothing_to_report_gives_an_empty_frame():
    alerts = compute_alerts(PREVIOUS, PREVIOUS, probability_rise=0.15)
    assert alerts.empty and list(alerts.columns) == ALERT_COLUMNS


def test_ids_are_matched_as_text_and_previous_tiers_may_be_plain_strings():
    previous = pd.DataFrame({"customer_id": ["007"], "churn_probability": [0.2], "risk_tier": ["medium"]})
    current = scored([("007", 0.6, "critical"), ("7", 0.9, "critical")])
    alerts = compute_alerts(current, previous, probability_rise=0.15)
    assert alerts["customer_id"].tolist() == ["007"]
    assert alerts.loc[0, "why"] == "risk rose by 40 points (20% to 60%); moved from medium to critical"


def test_unknown_previous_tier_is_not_a_tier_move():
    previous = pd.DataFrame({"customer_id": ["1"], "churn_probability": [0.40], "risk_tier": ["amber"]})
    current = scored([("1", 0.45, "critical")])
    assert compute_alerts(current, previous, probability_rise=0.15).empty


def test_tier_order_falls_back_to_probability_when_not_categorical():
    current = pd.DataFrame(
        {
            "customer_id": ["1", "2", "3"],
            "churn_probability": [0.8, 0.4, 0.1],
            "risk_tier": ["red", "amber", "green"],
        }
    )
    previous = current.assign(churn_probability=[0.7, 0.35, 0.1], risk_tier=["amber", "amber", "green"])
    alerts = compute_alerts(current, previous, probability_rise=0.15)
    assert alerts["customer_id"].tolist() == ["1"] and alerts.loc[0, "why"] == "moved from amber to red"


def test_bad_inputs_raise_a_clear_error():
    with pytest.raises(ChurnError, match="between 0 and 1"):
        compute_alerts(CURRENT, PREVIOUS, probability_rise=15)
    dup = pd.concat([PREVIOUS, PREVIOUS.head(1)])
    with pytest.raises(ChurnError, match=r"previous run.*not unique.*001"):
        compute_alerts(CURRENT, dup, probability_rise=0.15)
    with pytest.raises(ChurnError, match="risk_tier"):
        compute_alerts(CURRENT.drop(columns=["risk_tier"]), PREVIOUS, probability_rise=0.15)
