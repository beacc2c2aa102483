"""The one time rule: as_of dates are whole days, features see [as_of - d, as_of), the label [as_of, as_of + h)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import duckdb
import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.timeline import (
    days_between_sql,
    label_complete,
    label_window_sql,
    parse_as_of,
    snapshot_dates,
    window_sql,
)

T = pd.Timestamp


# ------------------------------------------------------------------------------------------- parse_as_of
@pytest.mark.parametrize("value", [
    "2024-06-01", date(2024, 6, 1), datetime(2024, 6, 1), T("2024-06-01"), "2024-06-01T00:00:00",
    "2024-06-01T02:00:00+02:00",  # midnight UTC written in another zone
    datetime(2024, 5, 31, 20, 0, tzinfo=timezone(pd.Timedelta(hours=-4).to_pytimedelta())),
    T("2024-06-01", tz="UTC"),
])
def test_parse_as_of_gives_naive_utc_midnight(value):
    got = parse_as_of(value)
    assert got == T("2024-06-01") and got.tzinfo is None and isinstance(got, pd.Timestamp)


@pytest.mark.parametrize("value", [
    "2024-06-01 10:00", "2024-06-01T00:00:01", datetime(2024, 6, 1, 0, 0, 0, 1),
    "2024-06-01T00:00:00+02:00",  # 2024-05-31 22:00 UTC: converted first, then it has a time of day
])
def test_parse_as_of_rejects_a_time_of_day(value):
    with pytest.raises(ChurnError, match="time of day"):
        parse_as_of(value)


@pytest.mark.parametrize("value", [
    "", "June", "2024-13-01", "2024-02-30", None,
    # Partial or locale-dependent text is refused rather than guessed (pandas reads "1/2/2024" as Jan 2,
    # "2024" as Jan 1 and "June" as year 1).
    "2024", "2024-06", "June 2024", "1/2/2024", "01.06.2024",
])
def test_parse_as_of_rejects_non_dates(value):
    with pytest.raises(ChurnError, match="not a date"):
        parse_as_of(value)


# --------------------------------------------------------------------------------------------- windows
@pytest.fixture(scope="module")
def con():
    c = duckdb.connect()
    yield c
    c.close()


def _holds(con, condition: str, ts: str) -> bool:
    return con.execute(f"SELECT {condition} FROM (SELECT TIMESTAMP '{ts}' AS ts, "
                       "TIMESTAMP '2024-06-01' AS as_of)").fetchone()[0]


@pytest.mark.parametrize("ts,in_7d,in_all,in_label", [
    ("2024-06-01 00:00:00", False, False, True),  # as_of itself belongs to the label, never the features
    ("2024-05-31 23:59:59", True, True, False),
    ("2024-05-25 00:00:00", True, True, False),  # as_of - 7 days: inside a 7-day window
    ("2024-05-24 23:59:59", False, True, False),
    ("2020-01-01 00:00:00", False, True, False),
    ("2024-06-30 23:59:59", False, False, True),  # last second of a 30-day label window
    ("2024-07-01 00:00:00", False, False, False),  # as_of + horizon: outside
])
def test_feature_and_label_windows(con, ts, in_7d, in_all, in_label):
    assert _holds(con, window_sql("ts", "as_of", 7), ts) is in_7d
    assert _holds(con, window_sql("ts", "as_of", None), ts) is in_all
    assert _holds(con, label_window_sql("ts", "as_of", 30), ts) is in_label


def test_days_between(con):
    sql = days_between_sql("TIMESTAMP '2024-02-28 12:00:00'", "TIMESTAMP '2024-03-01 00:00:00'")
    assert con.execute(f"SELECT {sql}").fetchone()[0] == pytest.approx(1.5)  # 2024 is a leap year


# -------------------------------------------------------------------------------------- label_complete
def test_label_complete_needs_the_whole_window():
    end = T("2024-07-16")  # exclusive: the data covers days up to 2024-07-15
    assert label_complete(T("2024-06-16"), 30, end)  # window [06-16, 07-16) fully observed
    assert not label_complete(T("2024-06-17"), 30, end)
    assert label_complete(T("2024-01-01"), 30, end)


# -------------------------------------------------------------------------------------- snapshot_dates
def dates(**kw) -> list[str]:
    args = {"explicit": None, "count": 3, "every_days": None, "end": None, "data_start": T("2023-01-01"),
            "data_end": T("2024-07-16"), "horizon_days": 30, "min_history_days": 90} | kw
    return [str(d.date()) for d in snapshot_dates(**args)]


def test_month_starts_back_from_the_last_complete_window():
    # Last complete as_of: 07-16 - 30 days = 06-16; month starts from there back.
    assert dates() == ["2024-04-01", "2024-05-01", "2024-06-01"]


def test_the_last_complete_date_itself_when_it_is_a_month_start():
    assert dates(data_end=T("2024-07-01")) == ["2024-04-01", "2024-05-01", "2024-06-01"]
    assert dates(data_end=T("2024-06-30")) == ["2024-03-01", "2024-04-01", "2024-05-01"]


def test_min_history_drops_early_dates():
    # History from 2024-01-15 + 90 days = 2024-04-14: 04-01 is too early.
    assert dates(data_start=T("2024-01-15"), count=8) == ["2024-05-01", "2024-06-01"]
    # Exactly min_history days of history is enough.
    assert dates(data_start=T("2024-01-02"), count=8, min_history_days=90) == [
        "2024-04-01", "2024-05-01", "2024-06-01"]
    assert dates(data_start=T("2024-01-03"), count=8, min_history_days=90) == ["2024-05-01", "2024-06-01"]


def test_every_days_and_end():
    assert dates(every_days=7) == ["2024-06-02", "2024-06-09", "2024-06-16"]
    assert dates(end=date(2024, 5, 15)) == ["2024-03-01", "2024-04-01", "2024-05-01"]
    assert dates(end=date(2024, 5, 15), every_days=14) == ["2024-04-17", "2024-05-01", "2024-05-15"]


def test_explicit_dates_are_parsed_sorted_and_deduplicated():
    explicit = [date(2024, 5, 1), "2024-03-01", T("2024-05-01")]
    assert dates(explicit=explicit) == ["2024-03-01", "2024-05-01"]
    with pytest.raises(ChurnError, match="time of day"):
        dates(explicit=["2024-03-01 12:00"])


def test_error_when_nothing_fits():
    with pytest.raises(ChurnError, match="no as-of date fits") as info:
        dates(data_start=T("2024-05-01"), data_end=T("2024-07-16"))
    assert "2024-05-01 to 2024-07-16" in str(info.value) and "30 days" in str(info.value)
