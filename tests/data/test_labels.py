"""Labels and the snapshot population, on the one time rule: the label looks at [as_of, as_of + horizon).

as_of 2024-06-01 and a 30-day horizon throughout, so the label window ends (exclusive) at 2024-07-01.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import build, load, make_config, write_source

from churn.errors import ChurnError
from churn.features.engine import build_training_frame
from churn.labels import create_labels

AS_OF = "2024-06-01"
H = 30
CONFIG = {"label": {"horizon_days": H}, "features": {"families": ["profile"]}}


def labels(folder: Path, as_of: list[str], overrides: dict | None = None) -> pd.Series:
    """The label per (customer_id, as_of) of a written source."""
    cfg = make_config({**CONFIG, **(overrides or {})})
    fs = build(folder, as_of, cfg)
    try:
        create_labels(fs.ds, cfg, fs.label)
        df = fs.to_pandas(with_label=True)
        s = df.set_index(["customer_id", "as_of"])["churned"]
        s.attrs["kind"] = fs.label
        return s
    finally:
        fs.ds.con.close()


def at(s: pd.Series, as_of: str = AS_OF) -> dict[str, int]:
    return {cid: int(v) for (cid, d), v in s.items() if d == pd.Timestamp(as_of)}


CANCELLATIONS = {  # customer -> (signup, cancel_date)
    "in_window": ("2024-01-01", "2024-06-15T12:00:00"),
    "at_as_of": ("2024-01-01", "2024-06-01T00:00:00"),  # cancels at as_of: a customer then, churns in window
    "last_second": ("2024-01-01", "2024-06-30T23:59:59"),
    "at_window_end": ("2024-01-01", "2024-07-01T00:00:00"),  # as_of + horizon: outside (exclusive)
    "later": ("2024-01-01", "2024-08-01"),
    "never": ("2024-01-01", None),
    "cancelled_before": ("2024-01-01", "2024-05-31T23:59:59"),  # gone before as_of: not in the snapshot
    "signup_on_as_of": ("2024-06-01T00:00:00", None),  # not yet a customer at as_of
    "signup_last_second": ("2024-05-31T23:59:59", None),
    "tz_cancel_in_window": ("2024-01-01", "2024-07-01T01:00:00+02:00"),  # 06-30 23:00 UTC
    "tz_cancel_outside": ("2024-01-01", "2024-06-30T23:00:00-02:00"),  # 07-01 01:00 UTC
}


@pytest.fixture(scope="module")
def cancellation_labels(tmp_path_factory) -> pd.Series:
    customers = [{"customer_id": c, "signup_date": s, "cancel_date": x} for c, (s, x) in CANCELLATIONS.items()]
    events = [{"customer_id": "never", "timestamp": "2024-09-01"}]
    return labels(write_source(tmp_path_factory.mktemp("cancel"), {"customers": customers, "events": events}),
                  [AS_OF])


def test_cancellation_label(cancellation_labels):
    assert cancellation_labels.attrs["kind"] == "cancellation"
    assert at(cancellation_labels) == {
        "at_as_of": 1, "at_window_end": 0, "in_window": 1, "last_second": 1, "later": 0, "never": 0,
        "signup_last_second": 0, "tz_cancel_in_window": 1, "tz_cancel_outside": 0,
    }


def test_snapshot_excludes_the_cancelled_and_the_not_yet_signed_up(cancellation_labels):
    ids = set(at(cancellation_labels))
    assert "cancelled_before" not in ids and "signup_on_as_of" not in ids
    assert "signup_last_second" in ids and "at_as_of" in ids


def test_cancellation_label_over_several_as_of_dates(tmp_path):
    customers = [{"customer_id": "c", "signup_date": "2024-01-01", "cancel_date": "2024-06-15"}]
    events = [{"customer_id": "c", "timestamp": "2024-02-01"}]
    s = labels(write_source(tmp_path, {"customers": customers, "events": events}),
               ["2024-05-01", "2024-05-16", "2024-05-17", "2024-06-15", "2024-06-16"])
    # 05-16 + 30 days = 06-15: the window [05-16, 06-15) ends just before the cancellation.
    assert {str(d.date()): int(v) for (_, d), v in s.items()} == {
        "2024-05-01": 0, "2024-05-16": 0, "2024-05-17": 1, "2024-06-15": 1}  # gone by 06-16


# Inactivity: customers without cancel dates; activity = orders and events (tickets and surveys do not count).
INACTIVE_CUSTOMERS = ["active_in_window", "active_at_as_of", "active_at_window_end", "only_ticket",
                      "only_survey", "silent", "lapsed", "edge_of_lookback", "order_in_window", "view_only"]


@pytest.fixture(scope="module")
def inactivity_source(tmp_path_factory) -> Path:
    customers = [{"customer_id": c, "signup_date": "2024-01-01"} for c in INACTIVE_CUSTOMERS]
    # Everyone is active before as_of (the snapshot needs activity within the horizon before as_of),
    # except "lapsed" (last active one second more than 30 days before) and "edge_of_lookback" (exactly 30).
    events = [{"customer_id": c, "timestamp": "2024-05-20", "event_type": "login"}
              for c in INACTIVE_CUSTOMERS if c not in ("lapsed", "edge_of_lookback")]
    events += [
        {"customer_id": "lapsed", "timestamp": "2024-05-01T23:59:59", "event_type": "login"},
        {"customer_id": "lapsed", "timestamp": "2024-06-10", "event_type": "login"},
        {"customer_id": "edge_of_lookback", "timestamp": "2024-05-02T00:00:00", "event_type": "login"},
        {"customer_id": "active_in_window", "timestamp": "2024-06-20", "event_type": "login"},
        {"customer_id": "active_at_as_of", "timestamp": "2024-06-01T00:00:00", "event_type": "login"},
        {"customer_id": "active_at_window_end", "timestamp": "2024-07-01T00:00:00", "event_type": "login"},
        {"customer_id": "view_only", "timestamp": "2024-06-05", "event_type": "view"},
        {"customer_id": "silent", "timestamp": "2024-09-01", "event_type": "login"},
    ]
    orders = [{"customer_id": "order_in_window", "ordered_at": "2024-06-30T23:59:59", "amount": 5}]
    tickets = [{"customer_id": "only_ticket", "opened_at": "2024-06-10"}]
    surveys = [{"customer_id": "only_survey", "answered_at": "2024-06-10", "score": 9}]
    return write_source(tmp_path_factory.mktemp("inactive"), {
        "customers": customers, "events": events, "orders": orders, "tickets": tickets, "surveys": surveys})


def test_inactivity_label(inactivity_source):
    s = labels(inactivity_source, [AS_OF])
    assert s.attrs["kind"] == "inactivity"  # auto: no cancel_date column
    assert at(s) == {
        "active_in_window": 0, "active_at_as_of": 0, "active_at_window_end": 1, "only_ticket": 1,
        "only_survey": 1, "silent": 1, "edge_of_lookback": 1, "order_in_window": 0, "view_only": 0,
    }  # "lapsed" is not in the snapshot: no activity in the 30 days before as_of


def test_inactivity_label_counts_only_configured_event_types(inactivity_source):
    s = labels(inactivity_source, [AS_OF], {"label": {"horizon_days": H, "event_types": ["login"]}})
    assert at(s)["view_only"] == 1 and at(s)["active_in_window"] == 0


def test_inactivity_snapshot_uses_active_within_days(inactivity_source):
    s = labels(inactivity_source, [AS_OF], {"label": {"horizon_days": H, "active_within_days": 31}})
    assert at(s)["lapsed"] == 0  # 05-01 23:59:59 is within 31 days; active again on 06-10


def test_inactivity_can_be_forced_on_a_source_with_cancellations(tmp_path):
    customers = [{"customer_id": "a", "signup_date": "2024-01-01", "cancel_date": "2024-06-10"}]
    events = [{"customer_id": "a", "timestamp": "2024-05-30"}, {"customer_id": "a", "timestamp": "2024-06-20"}]
    folder = write_source(tmp_path, {"customers": customers, "events": events})
    assert at(labels(folder, [AS_OF])) == {"a": 1}
    assert at(labels(folder, [AS_OF], {"label": {"horizon_days": H, "kind": "inactivity"}})) == {"a": 0}


def test_cancellation_label_needs_cancel_dates(inactivity_source):
    with pytest.raises(ChurnError, match="cancel_date"):
        labels(inactivity_source, [AS_OF], {"label": {"horizon_days": H, "kind": "cancellation"}})


# ------------------------------------------------------------------------------------- training frame
def _training_source(tmp_path: Path) -> Path:
    customers = [{"customer_id": "a", "signup_date": "2024-01-01", "cancel_date": "2024-06-20"},
                 {"customer_id": "b", "signup_date": "2024-01-01", "cancel_date": None}]
    # The last activity is on 2024-07-15, so the data covers days up to 2024-07-16 (exclusive).
    events = [{"customer_id": "b", "timestamp": "2024-01-02"}, {"customer_id": "b", "timestamp": "2024-07-15T08:00"}]
    return write_source(tmp_path, {"customers": customers, "events": events})


def test_training_frame_excludes_as_of_dates_with_incomplete_label_windows(tmp_path):
    folder = _training_source(tmp_path)
    cfg = make_config(CONFIG)
    ds = load(folder, cfg)
    try:
        tf = build_training_frame(ds, cfg, as_of=["2024-06-01", "2024-06-16", "2024-06-17"])
    finally:
        ds.con.close()
    # 06-16 + 30 days = 07-16: the window is exactly covered; 06-17 would need 07-16 too.
    assert [str(d.date()) for d in tf.as_of] == ["2024-06-01", "2024-06-16"]
    assert [str(d.date()) for d in tf.excluded_as_of] == ["2024-06-17"]
    assert any("2024-06-17" in n and "excluded" in n for n in tf.notices), tf.notices
    got = {(r.customer_id, str(r.as_of.date())): r.churned for r in tf.frame.itertuples()}
    assert got == {("a", "2024-06-01"): 1, ("b", "2024-06-01"): 0, ("a", "2024-06-16"): 1, ("b", "2024-06-16"): 0}
    assert tf.fingerprint["data_end"] == "2024-07-16" and tf.label == "cancellation"


def test_training_frame_month_starts_end_at_the_last_complete_window(tmp_path):
    folder = _training_source(tmp_path)
    cfg = make_config({**CONFIG, "snapshots": {"count": 3, "min_history_days": 30}})
    ds = load(folder, cfg)
    try:
        tf = build_training_frame(ds, cfg)
    finally:
        ds.con.close()
    # Last complete as_of: 07-16 - 30 days = 06-16 -> month start 06-01; history from 01-02 + 30 days.
    assert [str(d.date()) for d in tf.as_of] == ["2024-04-01", "2024-05-01", "2024-06-01"]
    assert tf.excluded_as_of == []


def test_training_frame_without_any_complete_window_is_an_error(tmp_path):
    folder = _training_source(tmp_path)
    cfg = make_config(CONFIG)
    ds = load(folder, cfg)
    try:
        with pytest.raises(ChurnError, match="complete label window"):
            build_training_frame(ds, cfg, as_of=["2024-07-01"])
    finally:
        ds.con.close()
