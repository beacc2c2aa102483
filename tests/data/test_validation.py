"""Validation: every kind of bad input is reported clearly (file, column, count, example rows), all at once.

Each test starts from a small valid source and breaks one thing; `test_every_problem_at_once` breaks many.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import load, make_config, write_source

from churn.config import load_config
from churn.errors import ChurnError, DataValidationError, Problem


def valid() -> dict[str, list[dict[str, Any]]]:
    return {
        "customers": [{"customer_id": "001", "signup_date": "2024-01-01", "cancel_date": None},
                      {"customer_id": "002", "signup_date": "2024-01-05", "cancel_date": "2024-03-01"}],
        "events": [{"customer_id": "001", "timestamp": "2024-02-01T10:00:00", "event_type": "login"},
                   {"customer_id": "002", "timestamp": "2024-02-02T10:00:00+01:00", "event_type": "login"}],
        "orders": [{"customer_id": "001", "ordered_at": "2024-02-03", "amount": 10}],
        "tickets": [{"customer_id": "002", "opened_at": "2024-02-01", "closed_at": "2024-02-02", "satisfaction": 4}],
    }


def failures(folder: Path, tables: dict[str, Any], fmt: str = "csv", overrides: dict | None = None
             ) -> DataValidationError:
    write_source(folder, tables, fmt)
    with pytest.raises(DataValidationError) as info:
        load(folder, make_config(overrides))
    return info.value


def only(err: DataValidationError) -> Problem:
    assert len(err.problems) == 1, str(err)
    return err.problems[0]


def test_the_valid_source_loads(tmp_path):
    ds = load(write_source(tmp_path, valid()))
    try:
        assert ds.con.execute("SELECT count(*) FROM events").fetchone()[0] == 2
    finally:
        ds.con.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_raw_column_named_like_ours_does_not_shadow_the_mapped_one(tmp_path, fmt):
    """Events whose time is `event_ts`, beside an unrelated, mostly empty `timestamp` column: every event
    with an `event_ts` is kept, timed by it."""
    tables = valid()
    tables["events"] = [{"customer_id": "001", "event_ts": "2024-02-01T10:00:00", "timestamp": None},
                        {"customer_id": "002", "event_ts": "2024-02-02T10:00:00", "timestamp": "2020-01-01"},
                        {"customer_id": "001", "event_ts": "2024-02-03T10:00:00", "timestamp": None}]
    config = make_config({"sources": {"tables": {"events": {"columns": {"timestamp": "event_ts"}}}}})
    ds = load(write_source(tmp_path, tables, fmt), config)
    try:
        got = ds.con.execute("SELECT CAST(timestamp AS VARCHAR) FROM events ORDER BY 1").fetchall()
    finally:
        ds.con.close()
    assert [r[0] for r in got] == ["2024-02-01 10:00:00", "2024-02-02 10:00:00", "2024-02-03 10:00:00"]


def test_missing_required_column(tmp_path):
    tables = valid()
    tables["events"] = [{"customer_id": "001", "event_type": "login"}]  # no timestamp
    p = only(failures(tmp_path, tables))
    assert p.file == str(tmp_path / "events.csv") and p.column == "timestamp"
    assert "required column 'timestamp' is missing" in p.message and "customer_id, event_type" in p.message
    assert str(tmp_path / "events.csv") in p.render()


def test_missing_mapped_column_names_the_configured_name(tmp_path):
    p = only(failures(tmp_path, valid(), overrides={"sources": {"tables": {"orders": {"columns": {
        "ordered_at": "order_date"}}}}}))
    assert p.column == "ordered_at" and "configured as 'order_date'" in p.message


def test_mapping_to_an_absent_optional_column_or_an_unknown_one(tmp_path):
    """A typo in a column mapping is reported, not silently ignored (it would drop a feature)."""
    err = failures(tmp_path, valid(), overrides={"sources": {"tables": {"orders": {"columns": {
        "discount": "disc", "amout": "Revenue"}}}}})
    by_col = {p.column: p for p in err.problems}
    assert set(by_col) == {"discount", "amout"}, str(err)
    assert "configured as 'disc'" in by_col["discount"].message
    assert "not a column of table 'orders'" in by_col["amout"].message


def test_missing_files(tmp_path):
    write_source(tmp_path, valid())
    cfg = make_config({"sources": {"tables": {"orders": {"path": "exports/orders.csv"},
                                              "surveys": {"path": str(tmp_path / "nps.parquet")}}}})
    with pytest.raises(ChurnError) as info:
        load(tmp_path, cfg)
    msg = str(info.value)
    assert "exports/orders.csv: file for table 'orders' does not exist" in msg
    assert "nps.parquet: file for table 'surveys' does not exist" in msg  # both, not just the first


def test_missing_folder_and_no_activity_table(tmp_path):
    with pytest.raises(ChurnError, match="does not exist"):
        load(tmp_path / "nowhere")
    write_source(tmp_path, {"customers": valid()["customers"]})
    with pytest.raises(ChurnError, match="no activity table"):
        load(tmp_path)


def test_unparseable_dates(tmp_path):
    tables = valid()
    tables["events"] += [{"customer_id": "001", "timestamp": "2024-13-45", "event_type": "login"},
                         {"customer_id": "001", "timestamp": "yesterday", "event_type": "login"},
                         {"customer_id": "001", "timestamp": "2024-02-30", "event_type": "login"}]
    p = only(failures(tmp_path, tables))
    assert (p.table, p.column, p.count) == ("events", "timestamp", 3)
    assert "unparseable date/time" in p.message and "date_format" in p.message
    # CSV line numbers count the header: data rows 3-5 are lines 4-6.
    assert p.examples == ["line 4: timestamp='2024-13-45'", "line 5: timestamp='yesterday'",
                          "line 6: timestamp='2024-02-30'"]


def test_date_format_reads_other_layouts(tmp_path):
    tables = valid()
    # Slashed dates read day first unless the data or the config says otherwise (a notice says so).
    tables["orders"] = [{"customer_id": "001", "ordered_at": "03/02/2024", "amount": 10}]
    ds = load(write_source(tmp_path / "a", tables))
    try:
        assert str(ds.con.execute("SELECT ordered_at FROM orders").fetchone()[0]) == "2024-02-03 00:00:00"
        assert any("day first" in n and "orders.day_first" in n for n in ds.notices)
    finally:
        ds.con.close()
    for settings, expected in (({"date_format": "%d/%m/%Y"}, "2024-02-03"), ({"day_first": False}, "2024-03-02")):
        ds = load(write_source(tmp_path / str(len(expected) + len(settings)) / next(iter(settings)), tables),
                  make_config({"sources": {"tables": {"orders": settings}}}))
        try:
            assert str(ds.con.execute("SELECT ordered_at FROM orders").fetchone()[0]) == f"{expected} 00:00:00"
        finally:
            ds.con.close()
    # A layout none of the known ones reads is still an error that points at date_format.
    tables["orders"] = [{"customer_id": "001", "ordered_at": "2024/02/03 noon", "amount": 10}]
    with pytest.raises(DataValidationError, match="unparseable.*date_format"):
        load(write_source(tmp_path / "c", tables))


def test_negative_amounts_and_other_ranges(tmp_path):
    tables = valid()
    tables["orders"] += [{"customer_id": "001", "ordered_at": "2024-02-04", "amount": -5},
                         {"customer_id": "001", "ordered_at": "2024-02-05", "amount": "12.50 EUR"}]
    tables["tickets"][0]["satisfaction"] = 7
    err = failures(tmp_path, tables)
    by = {(p.column, p.message.split(" (")[0]): p for p in err.problems}
    assert set(by) == {("amount", "value below 0"), ("amount", "not a number"), ("satisfaction", "value above 5")}
    assert by[("amount", "value below 0")].examples == ["line 3: amount='-5'"]
    assert by[("amount", "not a number")].examples == ["line 4: amount='12.50 EUR'"]
    assert by[("satisfaction", "value above 5")].file == str(tmp_path / "tickets.csv")


def test_duplicate_customer_ids(tmp_path):
    tables = valid()
    tables["customers"] += [{"customer_id": "001", "signup_date": "2024-02-01"},
                            {"customer_id": "001", "signup_date": "2024-02-02"},
                            {"customer_id": None, "signup_date": "2024-02-02"},
                            {"customer_id": None, "signup_date": "2024-02-03"}]
    err = failures(tmp_path, tables)
    dup = next(p for p in err.problems if "duplicate" in p.message)
    assert dup.column == "customer_id" and dup.count == 3 and "1 ids" in dup.message
    assert dup.examples == ["id '001' appears 3 times"]  # empty ids are reported as empty, not as a duplicate
    empty = next(p for p in err.problems if "empty" in p.message)
    assert empty.count == 2


def test_leading_zero_ids_are_distinct(tmp_path):
    tables = valid()
    tables["customers"].append({"customer_id": "01", "signup_date": "2024-01-01"})
    tables["customers"].append({"customer_id": "1", "signup_date": "2024-01-01"})
    for fmt in ("csv", "parquet"):
        ds = load(write_source(tmp_path / fmt, tables, fmt))
        try:
            ids = [r[0] for r in ds.con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchall()]
        finally:
            ds.con.close()
        assert ids == ["001", "002", "01", "1"]


def test_padded_ids_are_trimmed_and_clean_ids_are_used_as_they_are(tmp_path):
    """Ids with spaces around them (in any table) still match their customer; only tables whose ids
    need no normalising skip it."""
    tables = valid()
    tables["events"].append({"customer_id": " 001 ", "timestamp": "2024-02-03T10:00:00", "event_type": "login"})
    ds = load(write_source(tmp_path, tables, "parquet"))
    try:
        assert ds.tables["customers"].clean_ids and ds.tables["orders"].clean_ids
        assert not ds.tables["events"].clean_ids
        n = ds.con.execute("SELECT count(*) FROM events WHERE customer_id = '001'").fetchone()[0]
        assert n == 2
    finally:
        ds.con.close()
    tables["customers"][0]["customer_id"] = "001 "  # now the customers table needs trimming too
    tables["events"][-1]["customer_id"] = "001"
    ds = load(write_source(tmp_path / "b", tables, "parquet"))
    try:
        assert not ds.tables["customers"].clean_ids and ds.tables["events"].clean_ids
        assert ds.con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchall() == [("001",), ("002",)]
    finally:
        ds.con.close()


def test_activity_for_unknown_customers(tmp_path):
    tables = valid()
    tables["events"] += [{"customer_id": "404", "timestamp": "2024-02-01", "event_type": "login"},
                         {"customer_id": "1", "timestamp": "2024-02-01", "event_type": "login"},  # not "001"
                         {"customer_id": "404", "timestamp": "2024-02-02", "event_type": "login"}]
    tables["orders"].append({"customer_id": "777", "ordered_at": "2024-02-03", "amount": 1})
    err = failures(tmp_path, tables, "parquet")
    ev = next(p for p in err.problems if p.table == "events")
    assert ev.column == "customer_id" and ev.count == 3 and "2 unknown ids" in ev.message
    assert ev.examples == ["row 3: customer_id='404'", "row 4: customer_id='1'", "row 5: customer_id='404'"]
    assert ev.file == str(tmp_path / "events.parquet")
    od = next(p for p in err.problems if p.table == "orders")
    assert od.count == 1 and "1 unknown ids" in od.message


def test_timestamps_in_the_future(tmp_path):
    """Now is 2025-01-01 in these tests, with the default tolerance of one day."""
    tables = valid()
    tables["events"] += [{"customer_id": "001", "timestamp": "2025-01-02T00:00:00", "event_type": "login"},  # ok
                         {"customer_id": "001", "timestamp": "2025-01-02T00:00:01", "event_type": "login"}]
    tables["customers"][0]["cancel_date"] = "2026-01-01"
    err = failures(tmp_path, tables)
    assert {(p.table, p.column) for p in err.problems} == {("events", "timestamp"), ("customers", "cancel_date")}
    ev = next(p for p in err.problems if p.table == "events")
    assert "future (after 2025-01-02)" in ev.message and ev.examples == ["line 5: timestamp='2025-01-02T00:00:01'"]


def test_ticket_closed_before_opened_and_cancel_before_signup(tmp_path):
    tables = valid()
    tables["tickets"].append({"customer_id": "001", "opened_at": "2024-02-10T12:00:00",
                              "closed_at": "2024-02-10T11:59:59"})
    tables["customers"][1]["cancel_date"] = "2024-01-04"
    err = failures(tmp_path, tables)
    by = {p.column: p for p in err.problems}
    assert set(by) == {"closed_at", "cancel_date"}
    assert "closed before it was opened" in by["closed_at"].message
    assert by["closed_at"].examples == ["line 3: opened_at='2024-02-10T12:00:00', closed_at='2024-02-10T11:59:59'"]
    assert "cancellation before signup" in by["cancel_date"].message


def test_every_problem_at_once(tmp_path):
    tables = valid()
    tables["customers"].append({"customer_id": "002", "signup_date": "01/02/24 noon"})
    tables["events"].append({"customer_id": "999", "timestamp": "2024-13-01", "event_type": "login"})
    tables["orders"].append({"customer_id": "001", "ordered_at": "2024-02-03", "amount": -1})
    tables["tickets"].append({"customer_id": "001", "opened_at": "2024-02-03", "closed_at": "2024-02-01"})
    tables["surveys"] = [{"customer_id": "001", "score": 9}]  # no answered_at
    err = failures(tmp_path, tables)
    got = {(p.table, p.column) for p in err.problems}
    assert got == {("customers", "signup_date"), ("customers", "customer_id"), ("events", "timestamp"),
                   ("events", "customer_id"), ("orders", "amount"), ("tickets", "closed_at"),
                   ("surveys", "answered_at")}, str(err)
    text = str(err)
    assert text.startswith(f"input data failed validation ({len(err.problems)} problem(s))")
    for name in ("customers.csv", "events.csv", "orders.csv", "tickets.csv", "surveys.csv"):
        assert name in text
    assert "line 4: customer_id='999'" in text


def test_bad_config_key_names_the_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("features:\n  engagment:\n    windows: [7]\nlabel:\n  horizon_days: 30\n")
    with pytest.raises(ChurnError) as info:
        load_config(path)
    assert "features.engagment" in str(info.value) and str(path) in str(info.value)


def test_bad_config_values_name_the_key(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("sources:\n  tables:\n    order: {path: x.csv}\nlabel:\n  horizon_days: 0\n")
    with pytest.raises(ChurnError) as info:
        load_config(path)
    msg = str(info.value)
    assert "sources.tables" in msg and "'order'" in msg
    assert "label.horizon_days" in msg  # both problems reported


@pytest.mark.parametrize("fmt", ["parquet", "parquet-naive"])
def test_typed_parquet_finds_what_csv_finds(tmp_path, fmt):
    """Typed Parquet columns are checked rule by rule (row-group statistics settle clean ones without a
    scan); the problems, counts and row examples must be those of the same data as CSV."""
    tables = valid()
    tables["orders"] += [{"customer_id": "001", "ordered_at": "2024-02-04", "amount": -5},
                         {"customer_id": "002", "ordered_at": "2024-02-05", "amount": -1}]
    tables["events"].append({"customer_id": "001", "timestamp": "2025-01-03T00:00:00", "event_type": "login"})
    tables["tickets"].append({"customer_id": "001", "opened_at": "2024-02-10T12:00:00",
                              "closed_at": "2024-02-10T11:59:59"})
    tables["tickets"][0]["satisfaction"] = 7
    tables["customers"].append({"customer_id": " ", "signup_date": "2024-01-02"})

    def summary(err):
        return sorted((p.table, p.column, p.message.split(" (")[0], p.count, [e.split(":")[0].split()[-1] for e in p.examples])
                      for p in err.problems)

    got = summary(failures(tmp_path / "p", tables, fmt))
    want = summary(failures(tmp_path / "c", tables, "csv"))
    # CSV examples are file lines (header = line 1); Parquet's are row numbers.
    want = [(t, c, m, n, [str(int(x) - 1) for x in ex]) for t, c, m, n, ex in want]
    assert got == want
    assert {(t, c) for t, c, *_ in got} == {("orders", "amount"), ("events", "timestamp"), ("tickets", "closed_at"),
                                            ("tickets", "satisfaction"), ("customers", "customer_id")}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_implausibly_large_numbers_either_sign_and_not_finite_ones(tmp_path, fmt):
    """Magnitudes above 1e12 are refused whatever their sign (1e12 itself is allowed); NaN and infinities are
    their own problem, not also "implausibly large"."""
    tables = valid()
    extra = [3e12, -4e12, 1e12, -1e12, float("inf"), 12.5]
    tables["events"] = [dict(tables["events"][0], value=v) for v in extra]
    err = failures(tmp_path, tables, fmt)
    by = {p.message.split(" (")[0]: p for p in err.problems}
    assert set(by) == {"implausibly large number", "not a finite number"}, str(err)
    assert by["implausibly large number"].count == 2 and by["implausibly large number"].column == "value"
    assert by["not a finite number"].count == 1
