"""Reason codes read naturally with the real feature templates: "no product events", "1 day", no "0.0 hours".

The registry is the one the builders declare on data with every optional column (as for docs/features.md).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import build, make_config, write_source
from test_features_doc import FULL

from churn.features.registry import Registry
from churn.scoring.reasons import render_many, render_reason


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    config = make_config({"features": {"engagement": {"event_types": ["login"]}}}, btyd=True)
    fs = build(write_source(tmp_path_factory.mktemp("src"), FULL), ["2024-06-01"], config)
    try:
        return fs.registry
    finally:
        fs.ds.con.close()


def say(registry: Registry, name: str, value: object, **context: object) -> str:
    return render_reason(registry[name], {name: value, **context})


@pytest.mark.parametrize(
    ("name", "value", "context", "expected"),
    [
        ("events_30d", 0.0, {}, "no product events in the last 30 days"),
        ("events_30d", 1.0, {}, "only 1 product event in the last 30 days"),
        ("events_30d", 4.0, {}, "only 4 product events in the last 30 days"),
        ("active_days_30d", 0.0, {}, "not active on any of the last 30 days"),
        ("duration_hours_30d", 0.04, {}, "no use in the last 30 days"),
        ("duration_hours_30d", 2.5, {}, "only 2.5 hours of use in the last 30 days"),
        ("events_login_30d", 0.0, {}, "no 'login' events in the last 30 days"),
        ("events_login_30d", 1.0, {}, "1 'login' event in the last 30 days"),
        ("days_since_last_event", 1.0, {"event_gap_typical_days": 1.0},
         "no activity in 1 day (usually active every 1 day)"),
        ("days_since_last_event", 41.0, {"event_gap_typical_days": 3.2},
         "no activity in 41 days (usually active every 3 days)"),
        ("days_since_last_event", 41.0, {"event_gap_typical_days": np.nan}, "no activity in 41 days"),
        ("days_since_last_event", np.nan, {}, "no product activity on record"),
        ("events_30d_vs_90d", 0.0, {}, "no activity in the last 30 days, after an active quarter"),
        ("events_30d_vs_90d", 0.15, {}, "activity at 15% of its usual level"),
        ("events_30d_vs_90d", np.nan, {}, "no activity in the last 90 days"),  # no 90-day average to compare
        ("orders_90d", 0.0, {}, "no orders in the last 90 days"),
        ("orders_90d", 1.0, {}, "only 1 order in the last 90 days"),
        ("days_since_last_order", 12.0, {"order_gap_mean_days": 1.0},
         "no order in 12 days (usually one every 1 day)"),
        ("open_tickets", 1.0, {}, "1 unresolved support ticket"),
        ("complaints_30d", 2.0, {}, "2 complaints in the last 30 days"),
        ("tenure_days", 1.0, {}, "customer for only 1 day"),
        ("days_since_fee_change", 0.0, {}, "price changed today"),
        ("surveys_365d", 1.0, {}, "1 survey answer in the last year"),
    ],
)
def test_reasons_read_naturally(registry, name, value, context, expected) -> None:
    if name not in registry:
        pytest.fail(f"{name} is not declared; declared: {registry.names}")
    assert say(registry, name, value, **context) == expected
    # The vectorised renderer (what scoring uses) says the same.
    cols = {name: np.array([value, value]), **{k: np.array([v, v]) for k, v in context.items()}}
    assert list(render_many(registry[name], cols)) == [expected, expected]


# Phrases that do not read naturally: "only 0 ...", "0 orders", "1 days", "0.0 hours".
AWKWARD = re.compile(r"\bonly 0\b|(?<![\d.,+-])0 \w+s\b|(?<![\d.,+-])1 (?:\w+ )?(?:days|events|orders|tickets|"
                     r"complaints|answers|increases)\b|\b0\.0 hours\b")


def test_no_feature_says_only_zero_or_one_days(registry) -> None:
    """Every numeric feature, at the small values that used to read badly, gives a natural sentence."""
    for f in registry:
        if f.kind != "numeric" or not f.reason:
            continue
        for v in (0.0, 0.04, 1.0):
            ctx = {n: 1.0 for n in registry.names if n != f.name}
            text = render_reason(f, {f.name: v, **ctx})
            assert not AWKWARD.search(text), f"{f.name}={v}: {text!r}"
