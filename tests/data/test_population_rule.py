"""The population rule (`churn.labels`): who is a current customer at an as_of, and who of them is active.

Hand-made sources, expectations written out by hand: a bare order log (no customers table, ids with leading
zeros) for the non-contractual rule, a customers table with cancellations for the contractual one. The
training snapshot (the spine the features are built on) must be exactly the 'active' customers of the
standing table that scoring uses.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import build, make_config, write_source

from churn.labels import create_standing

H = 30  # horizon; the activity window is the 30 days before as_of: [as_of - 30 days, as_of)


def standing(folder: Path, as_of: list[str], overrides: dict | None = None) -> tuple[dict, set]:
    """({(customer_id, as_of): standing}, {(customer_id, as_of) of the feature rows}) of a written source."""
    cfg = make_config({"label": {"horizon_days": H}, "features": {"families": ["profile"]}, **(overrides or {})})
    fs = build(folder, as_of, cfg)
    try:
        create_standing(fs.ds, cfg, fs.label)
        rows = fs.ds.con.execute("SELECT customer_id, as_of, standing FROM standing").fetchall()
        feature_rows = fs.to_pandas()
    finally:
        fs.ds.con.close()
    got = {(c, str(pd.Timestamp(a).date())): s for c, a, s in rows}
    spine = {(c, str(pd.Timestamp(a).date())) for c, a in zip(feature_rows["customer_id"], feature_rows["as_of"])}
    return got, spine


ORDERS = [  # as_of 2024-06-01: window [2024-05-02, 2024-06-01); as_of 2024-07-15: [2024-06-15, 2024-07-15)
    ("001", "2024-05-20"),
    ("002", "2024-03-01"),
    ("003", "2024-05-02T00:00:00"),  # first instant of the window
    ("004", "2024-05-01T23:59:59"),  # last instant before it
    ("005", "2024-06-01T00:00:00"),  # at as_of: not before it, so not yet a customer
    ("006", "2024-07-01"),
    ("0007", "2024-01-01"),
    ("0007", "2024-06-10"),  # after the first as_of: does not count there
]


@pytest.fixture(scope="module")
def order_log(tmp_path_factory) -> tuple[dict, set]:
    orders = [{"customer_id": c, "ordered_at": t, "amount": 10.0} for c, t in ORDERS]
    folder = write_source(tmp_path_factory.mktemp("orders"), {"orders": orders})
    return standing(folder, ["2024-06-01", "2024-07-15"])


def test_non_contractual_standing_of_every_known_customer(order_log):
    got, _ = order_log
    assert {c: s for (c, d), s in got.items() if d == "2024-06-01"} == {
        "001": "active", "002": "lapsed", "003": "active", "004": "lapsed", "005": "not_yet_customer",
        "006": "not_yet_customer", "0007": "lapsed",
    }
    assert {c: s for (c, d), s in got.items() if d == "2024-07-15"} == {
        "001": "lapsed", "002": "lapsed", "003": "lapsed", "004": "lapsed", "005": "lapsed",
        "006": "active", "0007": "lapsed",
    }


def test_the_training_snapshot_is_the_active_customers(order_log):
    got, spine = order_log
    assert spine == {k for k, s in got.items() if s == "active"}
    assert ("0007", "2024-06-01") not in spine and ("007", "2024-06-01") not in got  # ids stay text


def test_active_within_days_widens_the_window_for_both(tmp_path):
    orders = [{"customer_id": c, "ordered_at": t, "amount": 10.0} for c, t in ORDERS]
    folder = write_source(tmp_path, {"orders": orders})
    got, spine = standing(folder, ["2024-06-01"], {"label": {"horizon_days": H, "active_within_days": 100}})
    # 100 days before 2024-06-01 is 2024-02-22: 002 (2024-03-01) is active now; 0007 (2024-01-01) is not
    assert {c for (c, _), s in got.items() if s == "active"} == {"001", "002", "003", "004"}
    assert spine == {k for k, s in got.items() if s == "active"}


def test_no_history_and_cancelled_with_a_customers_table(tmp_path):
    customers = [
        {"customer_id": "a1", "signup_date": "2024-01-01", "cancel_date": None},
        {"customer_id": "a2", "signup_date": "2024-01-01", "cancel_date": None},  # only events: no orders
        {"customer_id": "a3", "signup_date": "2024-01-01", "cancel_date": "2024-05-31T23:59:59"},
        {"customer_id": "a4", "signup_date": "2024-06-01T00:00:00", "cancel_date": None},
    ]
    orders = [{"customer_id": c, "ordered_at": "2024-05-20", "amount": 5.0} for c in ("a1", "a3", "a4")]
    events = [{"customer_id": "a2", "timestamp": "2024-05-25"}]
    folder = write_source(tmp_path, {"customers": customers, "orders": orders, "events": events})
    got, spine = standing(folder, ["2024-06-01"], {"label": {"horizon_days": H, "kind": "inactivity",
                                                             "activity_tables": ["orders"]}})
    assert {c: s for (c, _), s in got.items()} == {
        "a1": "active", "a2": "no_history", "a3": "cancelled", "a4": "not_yet_customer"}
    assert spine == {("a1", "2024-06-01")}


def test_contractual_current_customers_are_all_active(tmp_path):
    customers = [
        {"customer_id": "010", "signup_date": "2023-01-01", "cancel_date": None},  # no activity at all
        {"customer_id": "011", "signup_date": "2023-01-01", "cancel_date": "2024-06-01T00:00:00"},  # cancels at as_of
        {"customer_id": "012", "signup_date": "2023-01-01", "cancel_date": "2024-05-31"},
        {"customer_id": "013", "signup_date": "2024-06-01T00:00:00", "cancel_date": None},
        {"customer_id": "014", "signup_date": "2024-05-31T23:59:59", "cancel_date": "2024-09-01"},
    ]
    events = [{"customer_id": "011", "timestamp": "2023-02-01"}]
    folder = write_source(tmp_path, {"customers": customers, "events": events})
    got, spine = standing(folder, ["2024-06-01"])
    assert {c: s for (c, _), s in got.items()} == {
        "010": "active", "011": "active", "012": "cancelled", "013": "not_yet_customer", "014": "active"}
    assert spine == {(c, "2024-06-01") for c in ("010", "011", "014")}
