"""Data as unusual businesses really hand it over (issues 25 and 26), through `churn` (Typer's runner, real
DuckDB) and the Python API: every table listed by `validate`, whole-number ids read alike in every file
type, event types that differ only in spelling, non-ASCII event types, a missing table said once, a
business with only tickets, and explicit as-of dates checked as the default ones are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from conftest import load, make_config, write_source
from typer.testing import CliRunner

import churn
from churn.cli import app
from churn.errors import ChurnError


def run(*args: object) -> Any:
    """`churn <args>` in-process; the result (exit code, output)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def ok(*args: object) -> str:
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    return res.output


def config_file(folder: Path, sections: dict[str, Any] | None = None) -> Path:
    """A config YAML with one DuckDB thread, BG/NBD off and `sections` merged in."""
    base: dict[str, Any] = {"engine": {"threads": 1, "memory_limit": "1GB"}, "features": {"purchases": {"btyd": False}}}
    for k, v in (sections or {}).items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(base), encoding="utf-8")
    return path


# ---------------------------------------------------------------- validate lists every table (issue 25)
def test_validate_lists_every_table_with_its_rows(tmp_path: Path) -> None:
    data = write_source(tmp_path / "data", {
        "customers": [{"customer_id": c, "signup_date": "2024-01-01"} for c in ("a", "b", "c")],
        "events": [{"customer_id": "a", "timestamp": "2024-02-01"}, {"customer_id": "b", "timestamp": "2024-02-02"}],
        "orders": [{"customer_id": "c", "ordered_at": "2024-02-03", "amount": 5}],
    })
    out = ok("validate", "--data", data, "--config", config_file(tmp_path))
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip() for line in out.splitlines()
            if line.count("│") >= 4 and "table" not in line}
    assert rows == {"customers": "3", "events": "2", "orders": "1"}
    assert "not in the data: tickets, surveys, fee_changes" in out
    report = churn.validation_report(data, make_config())
    assert report.tables.set_index("table")["rows"].to_dict() == {"customers": 3, "events": 2, "orders": 1}


def test_validate_says_when_customers_are_derived(tmp_path: Path) -> None:
    data = write_source(tmp_path / "data", {"orders": [{"customer_id": "a", "ordered_at": "2024-02-03", "amount": 5},
                                                      {"customer_id": "b", "ordered_at": "2024-02-04", "amount": 5}]})
    out = ok("validate", "--data", data, "--config", config_file(tmp_path))
    assert "(derived from activity)" in out and "customers" in out


# ------------------------------------------------------------ whole-number ids read alike (issue 25)
@pytest.mark.parametrize("events_fmt", ["parquet", "csv"])
def test_float_ids_match_integer_ids(tmp_path: Path, events_fmt: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"customer_id": [1, 2, 7], "signup_date": pd.to_datetime(["2024-01-01"] * 3)}).to_parquet(
        data / "customers.parquet")
    events = pd.DataFrame({"customer_id": [1.0, 2.0, 7.0], "timestamp": pd.to_datetime(["2024-03-01"] * 3)})
    if events_fmt == "parquet":
        events.to_parquet(data / "events.parquet")
    else:
        events.to_csv(data / "events.csv", index=False)  # pandas writes 1.0, as many exports do
    ok("validate", "--data", data, "--config", config_file(tmp_path))
    assert churn.validation_report(data, make_config()).valid
    ds = load(data)
    try:
        assert sorted(r[0] for r in ds.con.execute("SELECT DISTINCT customer_id FROM events").fetchall()) == \
            ["1", "2", "7"]
        assert sorted(r[0] for r in ds.con.execute("SELECT customer_id FROM customers").fetchall()) == ["1", "2", "7"]
    finally:
        ds.con.close()


def test_text_ids_keep_their_zeros_and_whole_numbers_lose_the_point(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"customer_id": ["007", "7", "x1.5"], "signup_date": ["2024-01-01"] * 3}).to_csv(
        data / "customers.csv", index=False)
    pd.DataFrame({"customer_id": ["007", "7.0", " 7 ", "x1.5"], "timestamp": ["2024-03-01"] * 4}).to_csv(
        data / "events.csv", index=False)
    ds = load(data)
    try:
        ids = [r[0] for r in ds.con.execute("SELECT customer_id FROM events").fetchall()]
        assert ids == ["007", "7", "7", "x1.5"]
    finally:
        ds.con.close()


# ------------------------------------------------------ event types: spellings and scripts (issue 26)
def _events_source(folder: Path, types: list[str]) -> Path:
    """Two customers; customer a has one event of each type in `types` on May 28 (in every window)."""
    return write_source(folder, {
        "customers": [{"customer_id": c, "signup_date": "2024-01-01"} for c in ("a", "b")],
        "events": [{"customer_id": "a", "timestamp": "2024-05-28T10:00:00", "event_type": t} for t in types]
        + [{"customer_id": "b", "timestamp": "2024-05-20T10:00:00", "event_type": types[0]}],
    })


def test_event_types_spelled_two_ways_are_one_type(tmp_path: Path) -> None:
    data = _events_source(tmp_path / "data", ["page_view", "Page View", "page_view", "login"])
    out_file = tmp_path / "features.csv"
    out = ok("features", "--data", data, "--as-of", "2024-06-01", "--out", out_file, "--config", config_file(tmp_path))
    assert "'page_view'" in out and "'Page View'" in out and "counted as one" in out
    feats = pd.read_csv(out_file, dtype={"customer_id": str}).set_index("customer_id")
    assert feats.loc["a", "events_page_view_7d"] == 3 and feats.loc["b", "events_page_view_7d"] == 0
    assert feats.loc["a", "events_login_7d"] == 1
    assert [c for c in feats.columns if c.startswith("events_page_view")] == [
        "events_page_view_7d", "events_page_view_30d", "events_page_view_90d"]
    api = churn.build_features(data, "2024-06-01", make_config()).set_index("customer_id")
    assert api.loc["a", "events_page_view_30d"] == 3


def test_non_ascii_event_types_get_readable_ascii_names(tmp_path: Path) -> None:
    data = _events_source(tmp_path / "data", ["Ünïcode-événement", "Straße", "покупка", "заказ"])
    out_file = tmp_path / "features.csv"
    ok("features", "--data", data, "--as-of", "2024-06-01", "--out", out_file, "--config", config_file(tmp_path))
    cols = set(pd.read_csv(out_file, nrows=0).columns)
    assert {"events_unicode_evenement_7d", "events_strasse_7d"} <= cols
    # Scripts with no ASCII reading keep distinct, stable names rather than collapsing into one.
    other = sorted(c for c in cols if c.endswith("_7d") and c.startswith("events_") and c not in
                   {"events_7d", "events_unicode_evenement_7d", "events_strasse_7d"})
    assert len(other) == 2 and all(c.isascii() for c in other), other
    fs = churn.build_features(data, ["2024-06-01"], make_config())
    assert fs.loc[fs["customer_id"] == "a", "events_unicode_evenement_7d"].item() == 1


# --------------------------------------------------------------- a missing table is said once (issue 26)
def _monthly(folder: Path, tables: tuple[str, ...] = ("orders",), customers: bool = True) -> Path:
    """Four customers active every fortnight from January to September 2024 (d stops in May), in `tables`."""
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
    time_col = {"orders": "ordered_at", "events": "timestamp", "tickets": "opened_at", "surveys": "answered_at"}
    for c in ("a", "b", "c", "d"):
        for day in pd.date_range("2024-01-03", "2024-09-20" if c != "d" else "2024-05-01", freq="14D"):
            for t in tables:
                row: dict[str, Any] = {"customer_id": c, time_col[t]: day.isoformat()}
                row |= {"orders": {"amount": 10}, "surveys": {"score": 8}}.get(t, {})
                rows[t].append(row)
    if customers:
        rows["customers"] = [{"customer_id": c, "signup_date": "2024-01-01"} for c in ("a", "b", "c", "d")]
    return write_source(folder, rows)


def test_a_missing_table_is_said_once(tmp_path: Path) -> None:
    data = _monthly(tmp_path / "data", ("orders", "events"))
    out = ok("features", "--data", data, "--as-of", "2024-06-01", "--out", tmp_path / "f.csv",
             "--config", config_file(tmp_path))
    assert out.count("'tickets'") == 1 and out.count("'surveys'") == 1, out
    assert "feature family 'support'" in out
    tf = churn.build_training_frame(data, make_config(), ["2024-05-01"])
    assert sum("'tickets'" in n for n in tf.notices) == 1, tf.notices


# ----------------------------------------------------- a support desk: only a tickets table (issue 26)
def _support_desk(folder: Path, customers: int = 300, seed: int = 5) -> Path:
    """Tickets only: each customer writes in every ~12 days from signup (the first on 2023-01-01) until
    they leave (or July 2024); customers who complain leave sooner."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    end = pd.Timestamp("2024-07-01")
    for i in range(customers):
        start = pd.Timestamp("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 270)) if i else 0)
        complains = rng.random() < 0.3
        leaves = start + pd.Timedelta(days=float(rng.exponential(200 if complains else 900)))
        t = start
        while t < min(leaves, end):
            rows.append({"customer_id": f"c{i:04d}", "opened_at": t.isoformat(),
                         "is_complaint": bool(complains and rng.random() < 0.5), "category": "billing"})
            t += pd.Timedelta(days=float(rng.exponential(12)) + 0.5)
    return write_source(folder, {"tickets": rows})


def test_a_tickets_only_business_validates_and_trains(tmp_path: Path, mlflow_env) -> None:
    data = _support_desk(tmp_path / "data")
    cfg = config_file(tmp_path, {"model": {"n_jobs": 1, "candidates": ["lightgbm"], "auto_tune_max_rows": 0,
                                           "num_boost_round": 30, "early_stopping_rounds": 10, "refit": False,
                                           "plots": False, "bundle_dir": str(tmp_path / "models")},
                                 "snapshots": {"count": 5}})
    out = ok("validate", "--data", data, "--config", cfg)
    assert "label: inactivity (no tickets within 60 days)" in out
    with mlflow_env(tmp_path / "mlflow"):
        out = ok("train", "--data", data, "--config", cfg)
    assert "registered models:/churn/1" in out
    tf = churn.build_training_frame(data, make_config({"snapshots": {"count": 5}}))
    assert tf.label == "inactivity" and 0 < tf.frame["churned"].mean() < 1
    # The label reads the tickets: a customer with a ticket in the 60 days after as_of has not churned.
    tickets = pd.read_csv(data / "tickets.csv")
    tickets["opened_at"] = pd.to_datetime(tickets["opened_at"], format="ISO8601")
    row = tf.frame.iloc[0]
    window = tickets[(tickets.customer_id == row.customer_id) & (tickets.opened_at >= row.as_of)
                     & (tickets.opened_at < row.as_of + pd.Timedelta(days=60))]
    assert row.churned == int(window.empty)
    report = churn.validation_report(data, make_config())
    assert report.label == "inactivity" and report.activity == ["tickets"]


def test_activity_tables_naming_no_table_is_said_by_validate(tmp_path: Path) -> None:
    data = _support_desk(tmp_path / "data", customers=5)
    res = run("validate", "--data", data, "--config", config_file(tmp_path, {"label": {"activity_tables": ["orders"]}}))
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "label.activity_tables ['orders'] names no table present" in res.output and "tickets" in res.output


# ------------------------------------------------- explicit as-of dates, checked as default ones (issue 26)
def test_explicit_as_of_dates_need_the_history_default_dates_need(tmp_path: Path) -> None:
    data = _support_desk(tmp_path / "data", customers=40)  # first ticket 2023-01-01
    res = run("train", "--data", data, "--config", config_file(tmp_path), "--as-of", "2023-02-01",
              "--as-of", "2023-09-01")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "2023-02-01 (31 days)" in res.output and "snapshots.min_history_days" in res.output
    assert "2023-09-01" not in res.output.split("history before them:")[1].split(";")[0]
    with pytest.raises(ChurnError, match=r"2023-02-01 \(31 days\)"):
        churn.build_training_frame(data, make_config(), ["2023-02-01", "2023-09-01"])


def test_repeated_and_close_as_of_dates_are_said(tmp_path: Path, mlflow_env) -> None:
    data = _support_desk(tmp_path / "data", customers=200)
    cfg = config_file(tmp_path, {"model": {"n_jobs": 1, "candidates": ["lightgbm"], "auto_tune_max_rows": 0,
                                           "num_boost_round": 30, "early_stopping_rounds": 10, "refit": False,
                                           "plots": False, "bundle_dir": str(tmp_path / "models")}})
    dates = ["2023-08-01", "2023-10-01", "2023-12-01", "2024-02-01", "2024-04-01", "2024-04-02", "2024-04-01"]
    with mlflow_env(tmp_path / "mlflow"):
        out = ok("train", "--data", data, "--config", cfg, *[a for d in dates for a in ("--as-of", d)])
    assert "given more than once, used once: 2024-04-01 (2 times)" in out
    assert "closer together than the 60-day label horizon: 2024-04-01 and 2024-04-02 (1 days)" in out
    assert "2024-02-01 and 2024-04-01" not in out  # 60 days apart: windows do not overlap
    tf = churn.build_training_frame(data, make_config(), dates)
    assert [str(d.date()) for d in tf.as_of] == sorted(set(dates))
    assert sum("more than once" in n for n in tf.notices) == 1 and sum("closer together" in n for n in tf.notices) == 1
