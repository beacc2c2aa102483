"""`churn score` accounts for every customer, through the command in a fresh process, on generated data:

- a retailer's bare order log (orders.csv only, customers derived, ids with leading zeros): one row per
  customer with an order before as_of; those without one in the 60 days before are lapsed, not scored;
- the same retailer with its customers table: lapsed customers with consent, and only they, form the
  win-back list;
- a subscription service: every customer signed up before as_of and not cancelled before it is scored;
  a customer list (`--customers`) gets exactly its ids, unknown ones included, in data and table modes.

Expected populations are computed here with pandas from the raw files. Real DuckDB, LightGBM and MLflow
(SQLite in tmp); the models are small.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path

import forked_cli
import pandas as pd
import pytest

from churn.config import Config
from churn.generate import generate
from churn.pipeline import train_from_data

pytestmark = pytest.mark.slow

START, END = date(2023, 1, 1), date(2024, 7, 1)
HORIZON = 60  # the default label horizon; the activity window is the 60 days before as_of


def small_config(bundle_dir: Path, **label: object) -> Config:
    """Default config with three snapshots and a small single-thread model (one candidate, no search: these
    tests are about who is scored, not how well)."""
    base = Config().model_dump()
    base["label"].update(label)
    base["snapshots"]["count"] = 3
    base["model"].update({"n_jobs": 1, "num_boost_round": 60, "bundle_dir": str(bundle_dir),
                          "candidates": ["lightgbm"], "auto_tune_max_rows": 0, "plots": False})
    return Config.model_validate(base)


@pytest.fixture(scope="module")
def work(mlflow_store):
    """A working folder with its own MLflow store (SQLite), for the module's two trainings."""
    return mlflow_store


@pytest.fixture(scope="module")
def retail(work):
    """(full data folder, order-log folder, model bundle): a model trained on the bare order log."""
    full = work / "retail"
    generate(700, START, END, 11, full, business="retail")
    log = work / "retail_log"
    log.mkdir()
    # As a shop would export it: text, ids as written (leading zeros), no customers table.
    pd.read_parquet(full / "orders.parquet").to_csv(log / "orders.csv", index=False)
    res = train_from_data(small_config(work / "models", activity_tables=["orders"]), str(log))
    return full, log, res.bundle_path


@pytest.fixture(scope="module")
def subscription(work):
    """(data folder, model bundle) of a subscription service."""
    data = work / "subscription"
    generate(600, START, END, 12, data, business="subscription")
    res = train_from_data(small_config(work / "models"), str(data))
    return data, res.bundle_path


def churn(*args: object) -> str:
    """Run the `churn` command in a process of its own; its standard output (fails on a non-zero exit)."""
    proc = forked_cli.run(args, env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def outputs(run_dir: Path) -> tuple[pd.DataFrame, dict, str]:
    """(scores, plan summary, report HTML) of a run folder."""
    scores = pd.read_parquet(run_dir / "scores.parquet")
    summary = json.loads((run_dir / "summary.json").read_text())["summary"]
    return scores, summary, (run_dir / "report.html").read_text(encoding="utf-8")


def assert_unscored_rows_are_bare(scores: pd.DataFrame) -> None:
    """No probability, tier, reasons, incentive or contact on a row that was not scored."""
    rest = scores[scores["status"] != "scored"]
    assert rest["churn_probability"].isna().all() and rest["risk_tier"].isna().all()
    assert rest["reason_1"].isna().all() and rest["incentive"].isna().all()
    assert not rest["contact"].any() and not rest["holdout"].any()
    scored = scores[scores["status"] == "scored"]
    assert scored["churn_probability"].between(0, 1).all() and scored["risk_tier"].notna().all()


def assert_counted_everywhere(scores: pd.DataFrame, summary: dict, report: str, stdout: str) -> None:
    """The status counts of the scores, in summary.json, the report and the command's output."""
    counts = scores["status"].value_counts().to_dict()
    assert summary["status_counts"] == counts and sum(counts.values()) == len(scores)
    cells = [[c.strip() for c in line.split("│")][1:3] for line in stdout.splitlines() if "│" in line]
    for status, n in counts.items():
        label = status.replace("_", " ").capitalize()
        assert re.search(rf'<td>{label}</td><td>[^<]*</td><td class="n" data-status="{status}">{n:,}</td>', report), status
        assert [status, f"{n:,}"] in cells
    assert f"scored {counts.get('scored', 0):,} of {len(scores):,} customers" in stdout


# ------------------------------------------------------------------------------------------ retail
def test_order_log_scores_one_row_per_current_customer(retail, tmp_path):
    _, log, bundle = retail
    as_of = pd.Timestamp("2024-07-01")
    stdout = churn("score", "--data", log, "--as-of", "2024-07-01", "--model", bundle, "--out", tmp_path)
    scores, summary, report = outputs(tmp_path / "2024-07-01")

    orders = pd.read_csv(log / "orders.csv", dtype={"customer_id": str}, parse_dates=["ordered_at"])
    before = orders[orders["ordered_at"] < as_of]
    current = set(before["customer_id"])
    active = set(before.loc[before["ordered_at"] >= as_of - pd.Timedelta(days=HORIZON), "customer_id"])
    assert 0 < len(active) < len(current) < orders["customer_id"].nunique() + 1

    assert scores["customer_id"].is_unique and set(scores["customer_id"]) == current
    assert scores["customer_id"].str.fullmatch(r"\d{7}").all()  # leading zeros kept
    assert set(scores.loc[scores["status"] == "scored", "customer_id"]) == active
    assert set(scores.loc[scores["status"] == "lapsed", "customer_id"]) == current - active
    assert set(scores["status"]) == {"scored", "lapsed"}
    last = before.groupby("customer_id")["ordered_at"].max()
    lapsed = scores[scores["status"] == "lapsed"].set_index("customer_id")
    assert (lapsed["last_activity_at"] == last[lapsed.index]).all()
    assert_unscored_rows_are_bare(scores)
    assert_counted_everywhere(scores, summary, report, stdout)
    # No customers table, so no consent: nobody is contacted, the win-back list is empty but written.
    assert summary["win_back"] == {"lapsed": len(current - active), "listed": 0,
                                   "not_listed": {"no marketing consent": len(current - active)}}
    assert pd.read_csv(tmp_path / "2024-07-01" / "segments" / "win_back.csv").empty


def test_a_bare_log_accounts_for_customers_seen_only_in_tickets_and_says_nobody_may_be_contacted(retail,
                                                                                                    tmp_path):
    """Orders and tickets, no customers table: a customer whose only activity before the date is a ticket
    is a known customer with no activity the label counts (`no_history`), never missing; and with no consent
    column the run says nobody may be contacted, and how to map one, where its reader looks."""
    full, log, bundle = retail
    data = tmp_path / "log_and_tickets"
    data.mkdir()
    (data / "orders.csv").write_text((log / "orders.csv").read_text())
    tickets = pd.read_parquet(full / "tickets.parquet")
    only = pd.DataFrame({"customer_id": ["9990001", "9990002"], "opened_at": pd.Timestamp("2024-05-10"),
                         "category": "billing", "is_complaint": True})
    pd.concat([tickets, only], ignore_index=True).to_csv(data / "tickets.csv", index=False)
    churn("score", "--data", data, "--as-of", "2024-07-01", "--model", bundle, "--out", tmp_path / "out")
    scores, summary, report = outputs(tmp_path / "out" / "2024-07-01")
    orders = pd.read_csv(data / "orders.csv", dtype={"customer_id": str}, parse_dates=["ordered_at"])
    t = pd.read_csv(data / "tickets.csv", dtype={"customer_id": str}, parse_dates=["opened_at"])
    as_of = pd.Timestamp("2024-07-01")
    seen = set(orders.loc[orders["ordered_at"] < as_of, "customer_id"]) | set(t.loc[t["opened_at"] < as_of,
                                                                                    "customer_id"])
    assert set(scores["customer_id"]) == seen  # every id with any activity before the date
    no_orders = seen - set(orders.loc[orders["ordered_at"] < as_of, "customer_id"])
    assert {"9990001", "9990002"} <= no_orders
    assert set(scores.loc[scores["status"] == "no_history", "customer_id"]) == no_orders
    assert_unscored_rows_are_bare(scores)
    warnings = json.loads((tmp_path / "out" / "2024-07-01" / "summary.json").read_text())["warnings"]
    assert any(w.startswith("nobody may be contacted") and "marketing_consent" in w for w in warnings)
    assert "nobody may be contacted" in report and summary["contacted"] == 0


def test_win_back_list_is_the_lapsed_with_consent(retail, tmp_path):
    full, _, bundle = retail
    as_of = pd.Timestamp("2024-07-01")
    stdout = churn("score", "--data", full, "--as-of", "2024-07-01", "--model", bundle, "--out", tmp_path)
    scores, summary, report = outputs(tmp_path / "2024-07-01")

    orders = pd.read_parquet(full / "orders.parquet")
    customers = pd.read_parquet(full / "customers.parquet").set_index("customer_id")
    before = orders[orders["ordered_at"] < as_of]
    last = before.groupby("customer_id")["ordered_at"].max()
    lapsed = set(last.index[last < as_of - pd.Timedelta(days=HORIZON)])
    consent = set(customers.index[customers["marketing_consent"].fillna(False).astype(bool)])
    assert lapsed & consent and lapsed - consent  # both kinds are there to be told apart

    assert set(scores.loc[scores["status"] == "lapsed", "customer_id"]) == lapsed
    win_back = pd.read_csv(tmp_path / "2024-07-01" / "segments" / "win_back.csv", dtype=str, encoding="utf-8-sig")
    assert win_back["customer_id"].is_unique and set(win_back["customer_id"]) == lapsed & consent
    assert win_back["email"].tolist() == customers.loc[win_back["customer_id"], "email"].tolist()
    days = pd.to_datetime(win_back["last_activity"])
    assert days.is_monotonic_decreasing  # the most recently active first
    assert (days.to_numpy() == last[win_back["customer_id"]].dt.normalize().to_numpy()).all()
    assert summary["win_back"]["listed"] == len(lapsed & consent)
    assert summary["win_back"]["not_listed"] == {"no marketing consent": len(lapsed - consent)}
    assert f"win-back list: {len(lapsed & consent):,} of {len(lapsed):,} lapsed customers" in stdout
    assert_unscored_rows_are_bare(scores)
    assert_counted_everywhere(scores, summary, report, stdout)
    # Retention offers go to scored customers with consent only.
    contacted = set(scores.loc[scores["contact"], "customer_id"])
    assert contacted and contacted <= consent - lapsed


# ------------------------------------------------------------------------------------ subscription
def current_subscribers(data: Path, as_of: pd.Timestamp) -> tuple[pd.DataFrame, set]:
    """(customers table, ids signed up before as_of and not cancelled before it)."""
    c = pd.read_parquet(data / "customers.parquet")
    now = (c["signup_date"] < as_of) & (c["cancel_date"].isna() | (c["cancel_date"] >= as_of))
    return c, set(c.loc[now, "customer_id"])


def test_subscription_scores_every_current_customer(subscription, tmp_path):
    data, bundle = subscription
    stdout = churn("score", "--data", data, "--as-of", "2024-03-01", "--model", bundle, "--out", tmp_path)
    scores, summary, report = outputs(tmp_path / "2024-03-01")
    customers, current = current_subscribers(data, pd.Timestamp("2024-03-01"))
    assert len(current) < len(customers)  # some cancelled, some not yet signed up
    assert scores["customer_id"].is_unique and set(scores["customer_id"]) == current
    assert (scores["status"] == "scored").all()
    assert_counted_everywhere(scores, summary, report, stdout)


def customer_list(data: Path, as_of: pd.Timestamp, path: Path) -> dict[str, str]:
    """Write a list of ids of every kind to `path`; {id: expected status}."""
    customers, current = current_subscribers(data, as_of)
    c = customers.set_index("customer_id")
    cancelled = sorted(c.index[c["cancel_date"] < as_of])[:2]
    not_yet = sorted(c.index[c["signup_date"] >= as_of])[:2]
    expected = {i: "scored" for i in sorted(current)[:5]}
    expected |= {i: "cancelled" for i in cancelled} | {i: "not_yet_customer" for i in not_yet}
    # Unknown: an id that is not there, and a known id without its leading zeros.
    expected |= {"9999999": "unknown", str(int(sorted(current)[0])): "unknown"}
    pd.DataFrame({"customer_id": list(expected)}).to_csv(path, index=False)
    return expected


def test_customer_list_gets_exactly_its_ids(subscription, tmp_path):
    data, bundle = subscription
    as_of = pd.Timestamp("2024-03-01")
    expected = customer_list(data, as_of, tmp_path / "list.csv")
    stdout = churn("score", "--data", data, "--as-of", "2024-03-01", "--model", bundle, "--out", tmp_path / "out",
                   "--customers", tmp_path / "list.csv")
    scores, summary, report = outputs(tmp_path / "out" / "2024-03-01")
    assert dict(zip(scores["customer_id"], scores["status"])) == expected
    assert len(scores) == len(expected)
    assert_unscored_rows_are_bare(scores)
    assert_counted_everywhere(scores, summary, report, stdout)


def test_customer_list_in_table_mode(subscription, tmp_path):
    data, bundle = subscription
    as_of = pd.Timestamp("2024-03-01")
    expected = customer_list(data, as_of, tmp_path / "list.csv")
    table = tmp_path / "features.parquet"
    churn("features", "--data", data, "--as-of", "2024-03-01", "--out", table)
    stdout = churn("score", "--table", table, "--id", "customer_id", "--as-of", "2024-03-01", "--model", bundle,
                   "--out", tmp_path / "out", "--customers", tmp_path / "list.csv")
    scores, summary, report = outputs(tmp_path / "out" / "2024-03-01")
    # A feature table holds current customers only: the cancelled and the not yet signed up are unknown to it.
    want = {i: ("scored" if s == "scored" else "unknown") for i, s in expected.items()}
    assert dict(zip(scores["customer_id"], scores["status"])) == want
    assert_unscored_rows_are_bare(scores)
    assert_counted_everywhere(scores, summary, report, stdout)


def test_customer_list_errors_are_the_users(subscription, tmp_path):
    data, bundle = subscription
    bad = tmp_path / "list.csv"
    bad.write_text("customer_id\n0000001\n0000002\n0000001\n")
    proc = forked_cli.run(["score", "--data", data, "--as-of", "2024-03-01", "--model", bundle, "--out",
                           tmp_path / "out", "--customers", bad], env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{bad}, column 'customer_id': 1 id(s) listed more than once" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out" / "2024-03-01").exists()
