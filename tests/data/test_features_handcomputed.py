"""Every feature family against values worked out by hand on a tiny, hand-written data set.

as_of is 2024-06-01 (exclusive: facts strictly before it count). The customers, each an edge case:
- "001": a regular customer with history in every table, an open ticket (opened before as_of, closed after
  it, its rating unseen), an order and a survey exactly at as_of (excluded), a fee history with a change at
  as_of (excluded).
- "003": one order only (gaps unknown; BG/NBD inputs x = 0, t_x = 0), one survey.
- "004": signed up yesterday evening, no activity.
- "005": cancelled before as_of: not in the snapshot.
- "006": events exactly at as_of (excluded), one second before (included), and with time-zone offsets
  either side of as_of; a ticket that is still open with no closing date.
- "007": no activity at all; the id keeps its leading zeros.
Day arithmetic (2024 is a leap year) is spelled out next to each expectation.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import assert_frames_identical, build, frame, make_config, write_source

from churn.errors import ChurnError

AS_OF = pd.Timestamp("2024-06-01")

CUSTOMERS = [
    {"customer_id": "001", "signup_date": "2023-01-01", "cancel_date": None, "plan": "basic", "monthly_fee": 40,
     "region": "north", "language": "en", "channel": "email"},
    {"customer_id": "007", "signup_date": "2024-01-01", "cancel_date": None, "plan": "basic", "monthly_fee": 10,
     "region": "south", "language": "de", "channel": "sms"},
    {"customer_id": "003", "signup_date": "2023-06-01", "cancel_date": None, "plan": "basic", "monthly_fee": 10,
     "region": "south", "language": "en", "channel": "email"},
    {"customer_id": "004", "signup_date": "2024-05-31T18:00:00", "cancel_date": None, "plan": "plus",
     "monthly_fee": 15, "region": "north", "language": "fa", "channel": "app_push"},
    {"customer_id": "005", "signup_date": "2023-01-01", "cancel_date": "2024-05-15", "plan": "basic",
     "monthly_fee": 10, "region": "north", "language": "en", "channel": "email"},
    {"customer_id": "006", "signup_date": "2024-01-15", "cancel_date": "2024-07-01", "plan": "plus",
     "monthly_fee": None, "region": "north", "language": "en", "channel": "email"},
]
EVENTS = [
    {"customer_id": "001", "timestamp": "2024-05-31T10:00:00", "event_type": "login", "duration_s": 600},
    {"customer_id": "001", "timestamp": "2024-05-31T12:00:00", "event_type": "feature_use", "duration_s": 1200},
    {"customer_id": "001", "timestamp": "2024-05-25T09:00:00", "event_type": "login", "duration_s": 1800},
    {"customer_id": "001", "timestamp": "2024-05-10T09:00:00", "event_type": "login", "duration_s": 3600},
    {"customer_id": "001", "timestamp": "2024-04-15T09:00:00", "event_type": "login", "duration_s": 0},
    {"customer_id": "001", "timestamp": "2024-03-20T09:00:00", "event_type": "login", "duration_s": None},
    {"customer_id": "001", "timestamp": "2024-01-10T09:00:00", "event_type": "login", "duration_s": 60},
    {"customer_id": "006", "timestamp": "2024-06-01T00:00:00", "event_type": "login", "duration_s": 60},  # at as_of
    {"customer_id": "006", "timestamp": "2024-05-31T23:59:59", "event_type": "login", "duration_s": None},
    # 2024-06-01 01:30 UTC: after as_of although its local date is the 31st.
    {"customer_id": "006", "timestamp": "2024-05-31T23:30:00-02:00", "event_type": "login", "duration_s": 60},
    # 2024-05-31 23:00 UTC: before as_of although its local date is the 1st.
    {"customer_id": "006", "timestamp": "2024-06-01T01:00:00+02:00", "event_type": "login", "duration_s": 1800},
]
TICKETS = [
    # Open at as_of: closed after it, so neither its resolution nor its rating (1) is known yet.
    {"customer_id": "001", "opened_at": "2024-05-20T10:00:00", "closed_at": "2024-06-03T10:00:00",
     "is_complaint": True, "satisfaction": 1},
    {"customer_id": "001", "opened_at": "2024-04-01T00:00:00", "closed_at": "2024-04-03T12:00:00",
     "is_complaint": False, "satisfaction": 4},
    {"customer_id": "001", "opened_at": "2024-03-01T00:00:00", "closed_at": "2024-03-02T00:00:00",
     "is_complaint": True, "satisfaction": 2},
    {"customer_id": "001", "opened_at": "2023-10-01T00:00:00", "closed_at": "2023-10-05T00:00:00",
     "is_complaint": False, "satisfaction": 5},
    {"customer_id": "006", "opened_at": "2024-05-30T00:00:00", "closed_at": None, "is_complaint": False,
     "satisfaction": None},
]
ORDERS = [
    {"customer_id": "001", "ordered_at": "2024-05-15T10:00:00", "amount": 50, "discount": 10},
    {"customer_id": "001", "ordered_at": "2024-05-15T18:00:00", "amount": 30, "discount": 0},
    {"customer_id": "001", "ordered_at": "2024-04-15T12:00:00", "amount": 40, "discount": None},
    {"customer_id": "001", "ordered_at": "2024-01-16T12:00:00", "amount": 100, "discount": 20},
    {"customer_id": "001", "ordered_at": "2023-11-17T12:00:00", "amount": 60, "discount": 0},
    {"customer_id": "001", "ordered_at": "2024-06-01T00:00:00", "amount": 999, "discount": 0},  # at as_of
    {"customer_id": "003", "ordered_at": "2024-03-01T08:00:00", "amount": 25, "discount": None},
]
SURVEYS = [
    {"customer_id": "001", "answered_at": "2023-12-01T00:00:00", "score": 9},
    {"customer_id": "001", "answered_at": "2024-03-15T00:00:00", "score": 7},
    {"customer_id": "001", "answered_at": "2024-05-30T12:00:00", "score": 3},
    {"customer_id": "001", "answered_at": "2024-06-01T00:00:00", "score": 10},  # at as_of
    {"customer_id": "003", "answered_at": "2024-02-01T00:00:00", "score": 8},
]
FEES = [
    {"customer_id": "001", "changed_at": "2023-01-01", "monthly_fee": 20, "plan": "basic"},
    {"customer_id": "001", "changed_at": "2024-01-01", "monthly_fee": 25, "plan": "basic"},
    {"customer_id": "001", "changed_at": "2024-04-01", "monthly_fee": 30, "plan": "plus"},
    {"customer_id": "001", "changed_at": "2024-06-01", "monthly_fee": 40, "plan": "plus"},  # at as_of
]
TABLES = {"customers": CUSTOMERS, "events": EVENTS, "tickets": TICKETS, "orders": ORDERS, "surveys": SURVEYS,
          "fee_changes": FEES}

SNAPSHOT = ["001", "003", "004", "006", "007"]  # 005 cancelled before as_of

# ------------------------------------------------------------------------------------- expectations
# "001" events by day (before as_of): 05-31 x2 (0.5 h), 05-25 (0.5 h), 05-10 (1 h), 04-15 (0 h),
# 03-20 (no duration), 01-10. Windows: 7d >= 05-25, 30d >= 05-02, 90d >= 03-03, 84d (12 weeks) >= 03-09.
ENGAGEMENT = {
    "001": {
        "events_7d": 3, "active_days_7d": 2, "duration_hours_7d": 1.0,
        "events_login_7d": 2, "events_feature_use_7d": 1,
        "events_30d": 4, "active_days_30d": 3, "duration_hours_30d": 2.0,
        "events_login_30d": 3, "events_feature_use_30d": 1,
        "events_90d": 6, "active_days_90d": 5, "duration_hours_90d": 2.0,  # 03-20 has no duration
        "events_login_90d": 5, "events_feature_use_90d": 1,
        "days_since_last_event": 1.0,  # last active day 05-31
        "event_gap_typical_days": 90 / 5,
        "events_trend_30d": (4 + 1) / (1 + 1) - 1,  # 30 days before that: 04-15 only
        "events_30d_vs_90d": 4 * 3 / 6,
        # days back 1 (05-31), 7 (05-25), 22 (05-10), 47 (04-15), 73 (03-20): weeks 0, 0, 3, 6, 10
        "weeks_active_share": 4 / 12,
    },
    # Only 05-31 23:59:59 and 05-31 23:00 UTC (written 06-01 01:00+02:00) are before as_of.
    "006": {
        "events_7d": 2, "active_days_7d": 1, "duration_hours_7d": 0.5,
        "events_login_7d": 2, "events_feature_use_7d": 0,
        "events_30d": 2, "active_days_30d": 1, "duration_hours_30d": 0.5,
        "events_90d": 2, "active_days_90d": 1, "events_login_90d": 2,
        "days_since_last_event": 1.0, "event_gap_typical_days": 90.0,
        "events_trend_30d": (2 + 1) / (0 + 1) - 1, "events_30d_vs_90d": 2 * 3 / 2,
        "weeks_active_share": 1 / 12,
    },
}
# "001" tickets: T1 opened 05-20 10:00, open at as_of (closes 06-03), complaint; T2 04-01 -> 04-03 12:00
# (2.5 days, rated 4); T3 03-01 -> 03-02 (1 day, complaint, rated 2); T4 2023-10-01 (outside 180 days).
# Windows: 30d >= 05-02, 90d >= 03-03, 180d >= 2023-12-04.
SUPPORT = {
    "001": {
        "tickets_30d": 1, "complaints_30d": 1, "tickets_90d": 2, "complaints_90d": 1,
        "tickets_180d": 3, "complaints_180d": 2,
        "open_tickets": 1, "open_complaints": 1, "oldest_open_ticket_days": 11 + 14 / 24,
        "resolution_days_mean_180d": (2.5 + 1.0) / 2, "resolution_days_max_180d": 2.5,
        "satisfaction_last": 4.0,  # T1's rating comes after as_of
        "satisfaction_mean_180d": (4 + 2) / 2,
        "days_since_last_ticket": 11 + 14 / 24, "days_since_last_complaint": 11 + 14 / 24,
        "repeat_complainer": 0,  # one complaint in 90 days (T3 is 92 days back)
    },
    "006": {
        "tickets_30d": 1, "complaints_30d": 0, "tickets_180d": 1, "open_tickets": 1, "open_complaints": 0,
        "oldest_open_ticket_days": 2.0, "resolution_days_mean_180d": None, "resolution_days_max_180d": None,
        "satisfaction_last": None, "satisfaction_mean_180d": None, "days_since_last_ticket": 2.0,
        "days_since_last_complaint": None, "repeat_complainer": 0,
    },
}
# "001" order days: 05-15 (2 orders, 80, discount 10), 04-15 (40), 01-16 (100, discount 20), 2023-11-17 (60);
# the 999 order at as_of is excluded. Gaps 60, 90, 30 days. Windows 30 >= 05-02, 90 >= 03-03,
# 180 >= 2023-12-04, 365 >= 2023-06-02; spend 90 days before the last 90: [2023-12-04, 03-03) = 100.
PURCHASES = {
    "001": {
        "orders_30d": 2, "spend_30d": 80, "orders_90d": 3, "spend_90d": 120,
        "orders_180d": 4, "spend_180d": 220, "orders_365d": 5, "spend_365d": 280,
        "avg_order_value_365d": 280 / 5, "spend_trend_90d": 120 / 100 - 1,
        "days_since_last_order": 17.0, "orders_lifetime": 4,  # order days
        "order_gap_mean_days": 60.0, "order_gap_std_days": math.sqrt((0 + 30**2 + 30**2) / 3),
        "order_overdue_ratio": 17 / 60, "discount_share_365d": 30 / (280 + 30),
    },
    "003": {
        "orders_30d": 0, "orders_90d": 0, "spend_90d": 0,  # 03-01 is 92 days back
        "orders_180d": 1, "spend_180d": 25, "orders_365d": 1, "spend_365d": 25,
        "avg_order_value_365d": 25.0, "spend_trend_90d": -1.0,
        "days_since_last_order": 92.0, "orders_lifetime": 1,
        "order_gap_mean_days": None, "order_gap_std_days": None, "order_overdue_ratio": None,
        "discount_share_365d": 0.0,
    },
}
# BG/NBD inputs in days: x = repeat order days, t_x = last - first order day, T = as_of - first order day.
BTYD_INPUTS = {"001": (3, 180, 197), "003": (0, 0, 92)}
# "001" surveys before as_of: 9, 7, 3 (05-30 12:00); the 10 at as_of is excluded. NPS scale: detractor <= 6.
FEEDBACK = {
    "001": {"survey_last_score": 3, "survey_mean_score": (9 + 7 + 3) / 3, "survey_score_trend": 3 - (9 + 7) / 2,
            "survey_detractor": 1, "days_since_last_survey": 1.5, "surveys_365d": 3},
    "003": {"survey_last_score": 8, "survey_mean_score": 8, "survey_score_trend": None, "survey_detractor": 0,
            "days_since_last_survey": 121.0, "surveys_365d": 1},  # 02-01 -> 06-01: 29 + 31 + 30 + 31 days
}
# Fees of "001": 20 (2023-01-01), 25 (2024-01-01), 30 (2024-04-01, plan plus), 40 at as_of (excluded).
PROFILE = {
    "001": {"tenure_days": 365 + 152, "plan": "plus", "region": "north", "language": "en", "channel": "email",
            "monthly_fee": 30.0, "fee_change_90d": 30 - 25,  # fee on 03-03 was 25
            "fee_increases_365d": 2, "days_since_fee_change": 30 + 31},
    # No fee history: the customer table's fee and plan.
    "003": {"tenure_days": 366, "plan": "basic", "monthly_fee": 10.0, "fee_change_90d": 0,
            "fee_increases_365d": 0, "days_since_fee_change": None},
    "004": {"tenure_days": 0.25, "plan": "plus", "language": "fa", "channel": "app_push", "monthly_fee": 15.0},
    "006": {"tenure_days": 17 + 29 + 31 + 30 + 31, "monthly_fee": None},
    "007": {"tenure_days": 152, "region": "south", "monthly_fee": 10.0},
}
# Counts that are 0 (not unknown) for a customer without any activity; every other activity feature is NaN.
ZERO_WHEN_NO_ACTIVITY = {
    "events_7d", "active_days_7d", "duration_hours_7d", "events_login_7d", "events_feature_use_7d",
    "events_30d", "active_days_30d", "duration_hours_30d", "events_login_30d", "events_feature_use_30d",
    "events_90d", "active_days_90d", "duration_hours_90d", "events_login_90d", "events_feature_use_90d",
    "events_trend_30d", "weeks_active_share",
    "tickets_30d", "complaints_30d", "tickets_90d", "complaints_90d", "tickets_180d", "complaints_180d",
    "open_tickets", "open_complaints", "repeat_complainer",
    "orders_30d", "spend_30d", "orders_90d", "spend_90d", "orders_180d", "spend_180d", "orders_365d",
    "spend_365d", "spend_trend_90d", "orders_lifetime", "surveys_365d",
}


def check(row: pd.Series, expected: dict[str, object]) -> None:
    """Each expected value: None means missing (NaN), floats to 1e-9, text exactly."""
    for name, want in expected.items():
        got = row[name]
        if want is None:
            assert pd.isna(got), f"{row.name} {name}: expected missing, got {got!r}"
        elif isinstance(want, str):
            assert got == want, f"{row.name} {name}: expected {want!r}, got {got!r}"
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"{row.name} {name}: expected {want}, got {got}"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The feature set at as_of (CSV source) and its frame, indexed by customer."""
    folder = write_source(tmp_path_factory.mktemp("hand") / "csv", TABLES, "csv")
    fs = build(folder, [str(AS_OF.date())])
    df = fs.to_pandas().set_index("customer_id")
    inputs = fs.ds.con.execute(
        # The date's table (still registered after the query above): -1 = no order before as_of.
        "SELECT s.customer_id, p._x, p._t_x, p._T FROM spine s LEFT JOIN "
        f"(SELECT * FROM f_date_{AS_OF:%Y%m%d} WHERE _x >= 0) p USING (customer_id)"
    ).df().set_index("customer_id")
    yield fs, df, inputs
    fs.ds.con.close()


@pytest.fixture(scope="module")
def hand(built) -> pd.DataFrame:
    return built[1]


def test_snapshot_population_and_ids(hand):
    assert list(hand.index) == SNAPSHOT  # "007" keeps its zeros; "005" cancelled before as_of
    assert (hand["as_of"] == AS_OF).all()


def test_every_feature_is_in_the_registry_and_the_frame(built):
    fs, df, _ = built
    assert list(df.columns) == ["as_of", *fs.registry.names]
    assert {f.family for f in fs.registry} == {"engagement", "support", "purchases", "feedback", "profile"}
    for f in fs.registry:
        assert f.description, f.name


@pytest.mark.parametrize("family,expected", [
    ("engagement", ENGAGEMENT), ("support", SUPPORT), ("purchases", PURCHASES), ("feedback", FEEDBACK),
    ("profile", PROFILE),
])
def test_family_matches_hand_computation(hand, family, expected):
    for cid, values in expected.items():
        check(hand.loc[cid], values)


def test_customers_without_activity(hand, built):
    """No activity: counts are 0, recencies, averages and ratios are unknown (NaN)."""
    registry = built[0].registry
    activity = [f.name for f in registry if f.family != "profile"]
    for cid in ("007", "004"):
        row = hand.loc[cid]
        for name in activity:
            if name in ZERO_WHEN_NO_ACTIVITY:
                assert row[name] == 0, (cid, name)
            else:
                assert pd.isna(row[name]), (cid, name, row[name])


def test_btyd_inputs(built):
    inputs = built[2]
    for cid, (x, t_x, big_t) in BTYD_INPUTS.items():
        assert tuple(inputs.loc[cid, ["_x", "_t_x", "_T"]]) == (x, t_x, big_t)
    assert inputs.loc[["004", "006", "007"]].isna().all().all()  # no purchases: outside the model


def test_events_at_as_of_and_time_zones(tmp_path):
    """One second before as_of counts, as_of itself does not; offsets are converted to UTC first."""
    rows = [
        ("2024-05-31T23:59:59", 1), ("2024-06-01T00:00:00", 0),
        ("2024-05-31T23:30:00-02:00", 0),  # 2024-06-01 01:30 UTC
        ("2024-06-01T01:00:00+02:00", 1),  # 2024-05-31 23:00 UTC
        ("2024-06-01T00:00:00+00:00", 0), ("2024-05-31T23:59:59Z", 1),
    ]
    customers = [{"customer_id": str(i), "signup_date": "2024-01-01", "cancel_date": None} for i in range(len(rows))]
    events = [{"customer_id": str(i), "timestamp": t} for i, (t, _) in enumerate(rows)]
    for fmt in ("csv", "parquet", "parquet-naive"):
        folder = write_source(tmp_path / fmt, {"customers": customers, "events": events}, fmt)
        df = frame(folder, ["2024-06-01"]).droplevel("as_of")
        assert [df.loc[str(i), "events_7d"] for i in range(len(rows))] == [n for _, n in rows], fmt


@pytest.mark.parametrize("fmt", ["csv", "parquet-naive"])
def test_naive_timestamps_use_the_configured_time_zone(tmp_path, fmt):
    """Naive times are local times of sources.timezone: 2024-06-01 01:00 in Berlin is 05-31 23:00 UTC."""
    folder = write_source(tmp_path, {
        "customers": [{"customer_id": "a", "signup_date": "2024-01-01", "cancel_date": None}],
        "events": [{"customer_id": "a", "timestamp": "2024-06-01T01:00:00"}],
    }, fmt)
    utc = frame(folder, ["2024-06-01"]).droplevel("as_of")
    berlin = frame(folder, ["2024-06-01"], make_config({"sources": {"timezone": "Europe/Berlin"}})).droplevel("as_of")
    assert utc.loc["a", "events_7d"] == 0
    assert berlin.loc["a", "events_7d"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "parquet-naive"])
def test_csv_and_parquet_give_identical_features(tmp_path, fmt):
    csv = frame(write_source(tmp_path / "csv", TABLES, "csv"), ["2024-05-01", "2024-06-01"])
    pq = frame(write_source(tmp_path / fmt, TABLES, fmt), ["2024-05-01", "2024-06-01"])
    assert_frames_identical(csv, pq)
    assert "007" in csv.index.get_level_values("customer_id")


def test_column_mapping_from_config(tmp_path):
    """orders.ordered_at read from the user's `order_date` (and amount from `Revenue`) via the config."""
    plain = frame(write_source(tmp_path / "plain", TABLES), ["2024-06-01"])
    mapped_cfg = make_config({"sources": {"tables": {"orders": {"columns": {
        "ordered_at": "order_date", "amount": "Revenue"}}}}})
    folder = write_source(tmp_path / "mapped", TABLES, rename={"orders": {"ordered_at": "order_date",
                                                                           "amount": "Revenue"}})
    assert "order_date" in (folder / "orders.csv").read_text().splitlines()[0]
    mapped = frame(folder, ["2024-06-01"], mapped_cfg)
    assert_frames_identical(plain, mapped)


def test_missing_tables_drop_their_families_with_a_notice(tmp_path):
    folder = write_source(tmp_path, {k: v for k, v in TABLES.items() if k in ("customers", "events", "orders")})
    fs = build(folder, ["2024-06-01"])
    try:
        families = {f.family for f in fs.registry}
        assert families == {"engagement", "purchases", "profile"}
        assert any("'support' skipped" in n and "'tickets'" in n for n in fs.notices), fs.notices
        assert any("'feedback' skipped" in n and "'surveys'" in n for n in fs.notices), fs.notices
        df = fs.to_pandas().set_index("customer_id")
        check(df.loc["001"], {**ENGAGEMENT["001"], **PURCHASES["001"]})
        # Without a fee history the profile shows the customer table's (current) fee and plan.
        check(df.loc["001"], {"monthly_fee": 40.0, "plan": "basic"})
        assert "fee_change_90d" not in df.columns
    finally:
        fs.ds.con.close()


def test_customers_table_absent_derives_customers_from_activity(tmp_path):
    """Signup = first activity in any activity table; churn then means inactivity."""
    tables = {k: v for k, v in TABLES.items() if k in ("events", "orders", "tickets", "surveys")}
    folder = write_source(tmp_path, tables)
    fs = build(folder, ["2024-06-01"])
    try:
        assert fs.label == "inactivity"
        assert any("derived from activity" in n for n in fs.notices), fs.notices
        df = fs.to_pandas().set_index("customer_id")
        # Inactivity snapshot: orders/events in the 60 days (the horizon) before as_of. "003"'s only order
        # (03-01) is 92 days back; "001" and "006" were active.
        assert list(df.index) == ["001", "006"]
        # "001": first activity is the ticket of 2023-10-01; "006": 2024-05-30 (ticket).
        check(df.loc["001"], {"tenure_days": 244.0, **SUPPORT["001"], **FEEDBACK["001"]})
        check(df.loc["006"], {"tenure_days": 2.0, **ENGAGEMENT["006"]})
        assert "plan" not in df.columns and "monthly_fee" not in df.columns
    finally:
        fs.ds.con.close()


def test_fee_history_point_in_time(tmp_path):
    """Fee at as_of = latest change strictly before it; changes over 90 days; increases over 365 days."""
    fees = [
        {"customer_id": "a", "changed_at": "2023-05-01", "monthly_fee": 10},
        {"customer_id": "a", "changed_at": "2023-08-01", "monthly_fee": 12},  # increase, 305 days back
        {"customer_id": "a", "changed_at": "2024-01-01", "monthly_fee": 11},  # decrease
        {"customer_id": "a", "changed_at": "2024-03-03", "monthly_fee": 14},  # increase, exactly 90 days back
        {"customer_id": "a", "changed_at": "2024-05-31T23:59:59", "monthly_fee": 20},  # increase, 1 s before
        {"customer_id": "a", "changed_at": "2024-06-01", "monthly_fee": 99},  # at as_of: not yet
        {"customer_id": "b", "changed_at": "2024-06-01", "monthly_fee": 5},  # first change at as_of
    ]
    customers = [{"customer_id": "a", "signup_date": "2023-01-01", "cancel_date": None, "monthly_fee": 99},
                 {"customer_id": "b", "signup_date": "2023-01-01", "cancel_date": None, "monthly_fee": 7}]
    events = [{"customer_id": "a", "timestamp": "2024-01-01"}]
    folder = write_source(tmp_path, {"customers": customers, "events": events, "fee_changes": fees})
    df = frame(folder, ["2024-06-01", "2024-03-03", "2024-03-04"]).reset_index()
    at = {(r.customer_id, str(r.as_of.date())): r for r in df.itertuples()}
    a = at[("a", "2024-06-01")]
    assert a.monthly_fee == 20
    assert a.fee_change_90d == 20 - 11  # fee in force just before 2024-03-03 was 11
    assert a.fee_increases_365d == 3  # 2023-08-01, 2024-03-03, 2024-05-31 (the 2023-05-01 fee is no change)
    assert a.days_since_fee_change == pytest.approx(1 / 86400)
    # On 2024-03-03 itself the change of that day is not yet in force; the next day it is.
    assert at[("a", "2024-03-03")].monthly_fee == 11 and at[("a", "2024-03-04")].monthly_fee == 14
    assert at[("a", "2024-03-03")].fee_increases_365d == 1
    b = at[("b", "2024-06-01")]
    assert b.monthly_fee == 7 and b.fee_change_90d == 0 and b.fee_increases_365d == 0
    assert math.isnan(b.days_since_fee_change)


AS_OFS = ["2023-12-01", "2024-03-01", "2024-03-03", "2024-05-01", "2024-05-31", "2024-06-01", "2024-07-01"]


def test_several_as_of_dates_at_once_equal_one_at_a_time(tmp_path):
    """The bucket/cumulative pattern must give each as_of exactly what a build for it alone gives."""
    folder = write_source(tmp_path, TABLES)
    together = frame(folder, AS_OFS)
    alone = pd.concat([frame(folder, [d]) for d in AS_OFS])
    assert_frames_identical(together, alone)
    assert together.index.get_level_values("as_of").nunique() == len(AS_OFS)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_written_table_is_the_frame_in_as_of_then_customer_order(tmp_path, suffix):
    """Several dates are written date by date; the file holds every row once, sorted, nothing left over."""
    fs = build(write_source(tmp_path / "src", TABLES), AS_OFS)
    try:
        want = fs.to_pandas()
        out = fs.write(tmp_path / f"features{suffix}")
    finally:
        fs.ds.con.close()
    got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, dtype={"customer_id": str},
                                                                        parse_dates=["as_of"])
    assert list(zip(got["as_of"], got["customer_id"])) == sorted(zip(want["as_of"], want["customer_id"]))
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    num = [c for c in want.columns if c not in ("customer_id", "as_of") and want[c].dtype == "float64"]
    pd.testing.assert_frame_equal(got[num].astype("float64"), want[num], check_exact=False, rtol=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features" + suffix, "src"]  # no parts left


def test_later_as_of_sees_what_was_excluded(tmp_path):
    """The rows at 2024-06-01 that were excluded there count the day after."""
    df = frame(write_source(tmp_path, TABLES), ["2024-06-02"]).droplevel("as_of")
    assert df.loc["001", "orders_30d"] == 3 and df.loc["001", "spend_30d"] == 80 + 999
    assert df.loc["001", "survey_last_score"] == 10 and df.loc["001", "monthly_fee"] == 40
    assert df.loc["006", "events_7d"] == 4  # all four events of 05-31/06-01 (UTC)
    assert df.loc["001", "open_tickets"] == 1  # closes 06-03


def test_btyd_features_when_enabled(tmp_path):
    """BG/NBD on: fitted per as_of from purchase summaries; buyers get values, non-buyers stay unknown."""
    import numpy as np

    rng = np.random.default_rng(7)
    customers, orders = [], []
    for i in range(60):
        cid = f"{i:03d}"
        customers.append({"customer_id": cid, "signup_date": "2023-01-01", "cancel_date": None})
        if i >= 50:
            continue  # ten customers never buy
        day = pd.Timestamp("2023-01-02") + pd.Timedelta(days=int(rng.integers(0, 120)))
        for _ in range(int(rng.integers(1, 8))):
            orders.append({"customer_id": cid, "ordered_at": day.isoformat(), "amount": 10})
            day += pd.Timedelta(days=int(rng.integers(5, 80)))
    folder = write_source(tmp_path, {"customers": customers, "orders": orders})
    cfg = make_config({"features": {"families": ["purchases"]}}, btyd=True)
    fs = build(folder, ["2024-01-01"], cfg)
    try:
        assert {"btyd_expected_orders", "btyd_p_no_order"} <= set(fs.registry.names)
        df = fs.to_pandas().set_index("customer_id")
        buyers = df["orders_lifetime"] > 0
        assert df.loc[buyers, "btyd_expected_orders"].notna().all(), fs.notices
        assert (df.loc[buyers, "btyd_expected_orders"] >= 0).all()
        assert df.loc[buyers, "btyd_p_no_order"].between(0, 1).all()
        assert df.loc[~buyers, ["btyd_expected_orders", "btyd_p_no_order"]].isna().all().all()
    finally:
        fs.ds.con.close()


def test_btyd_skipped_with_a_notice_when_too_few_buyers(tmp_path):
    fs = build(write_source(tmp_path, TABLES), ["2024-06-01"], make_config(btyd=True))
    try:
        df = fs.to_pandas()
        assert df[["btyd_expected_orders", "btyd_p_no_order"]].isna().all().all()
        assert any("BG/NBD skipped" in n for n in fs.notices), fs.notices
    finally:
        fs.ds.con.close()


def test_explicit_event_types_override_discovery(tmp_path):
    folder = write_source(tmp_path, TABLES)
    fs = build(folder, ["2024-06-01"], make_config({"features": {"engagement": {"event_types": ["feature_use"]}}}))
    try:
        names = fs.registry.names
        assert "events_feature_use_7d" in names and "events_login_7d" not in names
        assert fs.event_types == ["feature_use"]
    finally:
        fs.ds.con.close()


def test_largest_window_features_use_their_own_window(tmp_path):
    """With purchase windows [30, 90], avg_order_value_90d and discount_share_90d see 90 days, not 180."""
    cfg = make_config({"features": {"purchases": {"windows": [30, 90]}}})
    df = frame(write_source(tmp_path, TABLES), ["2024-06-01"], cfg).droplevel("as_of")
    # "001" within 90 days (>= 03-03): 05-15 (50 + 30, discount 10), 04-15 (40); 01-16 (100, discount 20)
    # is 137 days back and must not count.
    check(df.loc["001"], {"avg_order_value_90d": 120 / 3, "discount_share_90d": 10 / (120 + 10),
                          "spend_trend_90d": 120 / 100 - 1})
    check(df.loc["003"], {"avg_order_value_90d": None, "discount_share_90d": None})  # 03-01: 92 days back


def test_event_types_without_an_event_type_column_is_a_clear_error(tmp_path):
    folder = write_source(tmp_path, {"customers": CUSTOMERS[:1], "events": [
        {"customer_id": "001", "timestamp": "2024-05-01"}]})
    with pytest.raises(ChurnError, match="event_type"):
        build(folder, ["2024-06-01"], make_config({"features": {"engagement": {"event_types": ["login"]}}}))
    # Discovered (not configured) event types: no column simply means no per-type features.
    fs = build(folder, ["2024-06-01"])
    try:
        assert fs.event_types == [] and "events_7d" in fs.registry
    finally:
        fs.ds.con.close()


def test_building_again_on_the_same_connection_replaces_the_table(tmp_path):
    """One date makes a view, several a table; a second build on the same source replaces either."""
    from churn.features.engine import build_features

    fs = build(write_source(tmp_path, TABLES), AS_OFS[:1])
    try:
        cfg = make_config()
        many = build_features(fs.ds, [pd.Timestamp(d) for d in AS_OFS], cfg)
        assert many.to_pandas()["as_of"].nunique() == len(AS_OFS)
        one = build_features(fs.ds, [pd.Timestamp(AS_OFS[0])], cfg)
        assert one.to_pandas()["as_of"].nunique() == 1
    finally:
        fs.ds.con.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet-naive"])
def test_discovered_event_types_are_the_most_frequent_blanks_aside(tmp_path, fmt) -> None:
    """Most frequent first, ties by name; a blank type is no type, however frequent (CSV and Parquet alike:
    Parquet's raw values are counted before they are normalised)."""
    customers = [{"customer_id": "a", "signup_date": "2024-01-01", "cancel_date": None}]
    counts = {"view": 3, "login": 2, "share": 2, "": 4}
    events = [{"customer_id": "a", "timestamp": f"2024-05-{i + 1:02d}", "event_type": t}
              for i, t in enumerate(t for t, n in counts.items() for _ in range(n))]
    folder = write_source(tmp_path, {"customers": customers, "events": events}, fmt)
    for most, want in ((2, ["view", "login"]), (5, ["view", "login", "share"])):
        fs = build(folder, ["2024-06-01"], make_config({"features": {"engagement": {"max_event_types": most}}}))
        try:
            assert fs.event_types == want
        finally:
            fs.ds.con.close()
