"""Business KPIs on tiny tables whose every figure is worked out by hand in the comments (real DuckDB, the
real population rule): churn and retention rates, revenue churn and net revenue retention on fees (with a
fee history) and on order spend, CLTV, NPS, CSAT, per region, the saved revenue of a campaign run, and
`churn kpis` writing CSV and Excel."""

from __future__ import annotations

import json
import os
from pathlib import Path

import forked_cli
import pandas as pd
import pytest

from churn.config import Config
from churn.errors import ChurnError
from churn.monitoring.kpis import campaign_savings, kpi_table, report_kpis
from churn.validation import load_source

END = pd.Timestamp("2025-04-01")  # KPIs of February and March 2025


def write(folder: Path, **tables: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text.strip() + "\n")
    return folder


@pytest.fixture(scope="module")
def subscription(tmp_path_factory) -> Path:
    """Five subscribers. c2 cancels 15 Feb, c5 on 20 Mar, c4 signs up 10 Feb; c3 cuts its fee 30 -> 20 on 10 Mar."""
    return write(
        tmp_path_factory.mktemp("kpis") / "sub",
        customers="""
customer_id,signup_date,cancel_date,plan,monthly_fee,region,acquisition_cost
c1,2024-06-01,,basic,10,north,20
c2,2024-06-01,2025-02-15,basic,10,north,20
c3,2024-09-01,,pro,20,south,40
c4,2025-02-10,,pro,30,south,40
c5,2024-10-01,2025-03-20,basic,10,south,20
""",
        fee_changes="""
customer_id,changed_at,monthly_fee
c1,2024-06-01,10
c3,2024-09-01,30
c3,2025-03-10,20
""",
        surveys="""
customer_id,answered_at,score
c1,2025-02-03,10
c2,2025-02-04,9
c3,2025-02-05,6
c5,2025-02-06,3
c1,2025-02-20,7
c3,2025-03-04,9
c4,2025-03-05,10
c1,2025-03-06,8
c1,2025-04-10,8
""",
        tickets="""
customer_id,opened_at,closed_at,satisfaction
c1,2025-02-02,2025-02-03,5
c3,2025-02-05,2025-02-06,4
c5,2025-02-10,2025-02-12,2
c2,2025-02-11,2025-02-12,3
c4,2025-03-02,2025-03-03,1
c1,2025-02-27,2025-03-02,5
c3,2025-03-14,2025-03-15,5
c3,2025-03-25,,
""",
    )


def kpis(data: Path, months: int = 2, by: tuple[str, ...] = (), savings: pd.DataFrame | None = None) -> pd.DataFrame:
    ds = load_source(str(data), Config())
    try:
        return kpi_table(ds, Config(), end=END, months=months, by=list(by), savings=savings)
    finally:
        ds.con.close()


def row(table: pd.DataFrame, month: str, group: str = "all") -> pd.Series:
    [r] = table[(table["month"] == month) & (table["group"] == group)].to_dict("records")
    return pd.Series(r)


def test_february_for_everyone(subscription: Path) -> None:
    r = row(kpis(subscription), "2025-02")
    # Active 1 Feb: c1 c2 c3 c5 (S = 4); 1 Mar: c1 c3 c4 c5 (E = 4); new: c4 (N = 1); churned: c2.
    assert (r.customers_start, r.customers_end, r.new_customers, r.churned) == (4, 4, 1, 1)
    assert r.churn_rate == pytest.approx(1 / 4) and r.retention_rate == pytest.approx((4 - 1) / 4)
    # Fees in force 1 Feb: c1 10 (history), c2 10 (no history: the customers table), c3 30, c5 10 = 60;
    # lost: c2's 10; no cut; a month later S pays 10 + 0 + 30 + 10 = 50.
    assert r.revenue_basis == "fee" and r.revenue_start == pytest.approx(60)
    assert r.revenue_churn == pytest.approx(10 / 60) and r.net_revenue_retention == pytest.approx(50 / 60)
    # CLTV: mean fee 15 x 1 a month x lifetime 1 / 0.25 = 4 months - acquisition (20 + 20 + 40 + 20) / 4 = 25.
    assert (r.avg_purchase_value, r.purchase_frequency, r.expected_lifetime_months) == pytest.approx((15, 1, 4))
    assert r.acquisition_cost == pytest.approx(25) and r.cltv == pytest.approx(15 * 1 * 4 - 25)
    # NPS: 10, 9, 6, 3, 7 -> 2 promoters, 2 detractors of 5 = 0. CSAT: closed in Feb 5, 4, 2, 3 -> 2 of 4.
    assert (r.nps, r.nps_answers) == (pytest.approx(0.0), 5)
    assert (r.csat, r.csat_answers) == (pytest.approx(0.5), 4)


def test_march_counts_a_fee_cut_as_revenue_churn(subscription: Path) -> None:
    r = row(kpis(subscription), "2025-03")
    # S = c1 c3 c4 c5; E = c1 c3 c4 (c5 cancelled 20 Mar); N = 0.
    assert (r.customers_start, r.customers_end, r.new_customers, r.churned) == (4, 3, 0, 1)
    assert r.churn_rate == pytest.approx(0.25) and r.retention_rate == pytest.approx(0.75)
    # Fees 1 Mar: 10 + 30 + 30 + 10 = 80; lost c5's 10, cut c3's 30 -> 20: (10 + 10) / 80; kept 10 + 20 + 30.
    assert r.revenue_start == pytest.approx(80)
    assert r.revenue_churn == pytest.approx(20 / 80) and r.net_revenue_retention == pytest.approx(60 / 80)
    # 20 a month x 4 months - (20 + 40 + 40 + 20) / 4.
    assert r.cltv == pytest.approx(20 * 4 - 30)
    # NPS 9, 10, 8: 2 of 3 promoters, none detractors = 66.7. CSAT closed in Mar: 1, 5, 5 -> 2 of 3 (open: none).
    assert r.nps == pytest.approx(200 / 3) and r.csat == pytest.approx(2 / 3) and r.csat_answers == 3


def test_per_region(subscription: Path) -> None:
    t = kpis(subscription, by=("region",))
    assert list(t["segment"].unique()) == ["all", "region"]
    north, south = row(t, "2025-02", "north"), row(t, "2025-02", "south")
    # North: S = c1 c2, c2 churns: 1 / 2; fees 20, lost 10; kept 10.
    assert (north.customers_start, north.churned) == (2, 1) and north.churn_rate == pytest.approx(0.5)
    assert north.revenue_churn == pytest.approx(0.5) and north.net_revenue_retention == pytest.approx(0.5)
    # South: S = c3 c5, E = c3 c4 c5, N = c4: retention (3 - 1) / 2 = 1; no churn: lifetime capped at 120.
    assert south.retention_rate == pytest.approx(1.0) and south.churn_rate == 0.0
    assert south.expected_lifetime_months == 120 and south.cltv == pytest.approx(20 * 1 * 120 - 30)
    # NPS of the south in Feb: 6 and 3 -> -100. CSAT: 4 and 2 -> 1 of 2.
    assert south.nps == pytest.approx(-100.0) and south.csat == pytest.approx(0.5)


def test_order_spend_when_there_is_no_fee(tmp_path: Path) -> None:
    """A shop (no fees, no cancellations: churn is 60 days without an order)."""
    data = write(tmp_path / "shop", customers="""
customer_id,signup_date,region
r1,2024-01-01,north
r2,2024-01-01,north
r3,2024-01-01,south
""", orders="""
customer_id,ordered_at,amount
r2,2025-01-15,70
r1,2025-02-10,100
r3,2025-02-25,60
r1,2025-03-05,50
r3,2025-03-10,40
r1,2025-03-20,30
""")
    r = row(kpis(data, months=1), "2025-03")
    # Active 1 Mar (an order in the 60 days before): r1 r2 r3; 1 Apr: r1 r3 (r2's last order 15 Jan lapsed).
    assert (r.customers_start, r.customers_end, r.churned) == (3, 2, 1) and r.churn_rate == pytest.approx(1 / 3)
    # Revenue: February's orders 100 + 0 + 60 = 160; cuts r1 100 -> 80 and r3 60 -> 40; March's 80 + 0 + 40.
    assert r.revenue_basis == "spend" and r.revenue_start == pytest.approx(160)
    assert r.revenue_churn == pytest.approx(40 / 160) and r.net_revenue_retention == pytest.approx(120 / 160)
    # CLTV: 120 over 3 orders = 40 a purchase x 3 orders / 3 customers x 3 months; no acquisition cost known.
    assert (r.avg_purchase_value, r.purchase_frequency) == pytest.approx((40, 1))
    assert pd.isna(r.acquisition_cost) and r.cltv == pytest.approx(40 * 1 * 3)
    assert pd.isna(r.nps) and pd.isna(r.csat)  # no surveys, no tickets


def test_saved_revenue_of_a_campaign(subscription: Path, tmp_path: Path) -> None:
    run = tmp_path / "out" / "2025-02-01"
    run.mkdir(parents=True)
    # Risk tier high: c1 contacted, c2 in the control group; tier low: c3 control, c5 contacted.
    pd.DataFrame({"customer_id": ["c1", "c2", "c3", "c5"], "churn_probability": [0.6, 0.7, 0.1, 0.2],
                  "risk_tier": ["high", "high", "low", "low"], "contact": [True, False, False, True],
                  "holdout": [False, True, True, False], "customer_value": [100.0, 90.0, 80.0, 50.0]}
                 ).to_parquet(run / "scores.parquet")
    (run / "summary.json").write_text(json.dumps({"meta": {"as_of": "2025-02-01"}}))
    ds = load_source(str(subscription), Config())
    try:
        savings, how = campaign_savings(run, ds, Config(), ["region"])
    finally:
        ds.con.close()
    # Churned within 60 days of 1 Feb: c2 (15 Feb) and c5 (20 Mar). High: control 1 - contacted 0 = +1, so
    # c1 saved 100 x 1; low: control 0 - contacted 1 = -1, so c5 cost 50 x -1. North: c1; south: c5.
    got = savings.set_index(["segment", "group"])["saved_revenue"]
    assert got.to_dict() == {("all", "all"): 50.0, ("region", "north"): 100.0, ("region", "south"): -50.0}
    assert set(savings["month"]) == {"2025-02"} and "high +100.0%, low -100.0%" in how
    t = kpis(subscription, by=("region",), savings=savings)
    assert row(t, "2025-02", "north").saved_revenue == 100.0 and pd.isna(row(t, "2025-03", "north").saved_revenue)


def test_an_unknown_segment_column_is_named(subscription: Path) -> None:
    with pytest.raises(ChurnError, match=r"customers.csv has no column 'owner'.*columns: .*region"):
        kpis(subscription, by=("owner",))


def test_an_acquisition_cost_that_is_no_number_is_named(subscription: Path, tmp_path: Path) -> None:
    data = write(tmp_path / "bad", customers=(subscription / "customers.csv").read_text().replace(
        "c3,2024-09-01,,pro,20,south,40", "c3,2024-09-01,,pro,20,south,forty"),
        surveys=(subscription / "surveys.csv").read_text())
    with pytest.raises(ChurnError, match=r"customers.csv, column 'acquisition_cost': 1 values are not numbers "
                                         r"\(write them like 12.5\); e.g. customer c3: 'forty'"):
        kpis(data)
    # In a scoring run's report the same problem is a notice: a KPI never fails a run.
    ds = load_source(str(data), Config())
    try:
        got = report_kpis(ds, Config(), END)
    finally:
        ds.con.close()
    assert got["rows"] == [] and got["notices"][0].startswith(
        "business KPIs left out of the report: ") and "'acquisition_cost'" in got["notices"][0]


def test_the_reports_kpis_are_everyones_months_since_the_data_starts(subscription: Path) -> None:
    ds = load_source(str(subscription), Config())
    try:
        got = report_kpis(ds, Config(), pd.Timestamp("2025-04-15"))  # Oct to Mar asked; activity starts in Feb
    finally:
        ds.con.close()
    table = kpis(subscription)
    assert got["notices"] == [] and [r["month"] for r in got["rows"]] == ["2025-02", "2025-03"]
    assert [r["churn_rate"] for r in got["rows"]] == [0.25, 0.25]
    assert got["rows"][0] == {k: (None if pd.isna(v) else v) for k, v in row(table, "2025-02").items()}


def test_the_command_writes_csv_and_excel(subscription: Path, tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    for name in ("kpis.csv", "kpis.xlsx"):
        done = forked_cli.run(["kpis", "--data", subscription, "--by", "region", "--months", "2", "--end",
                               "2025-04-01", "--out", tmp_path / name], env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "saved revenue: left out (no campaign run given" in done.stderr
    csv = pd.read_csv(tmp_path / "kpis.csv")
    xlsx = pd.read_excel(tmp_path / "kpis.xlsx", sheet_name=None)
    assert set(xlsx) == {"kpis", "notes"} and len(csv) == len(xlsx["kpis"]) == 2 * 3  # months x (all, 2 regions)
    pd.testing.assert_frame_equal(csv, xlsx["kpis"], check_dtype=False)
    assert csv.loc[(csv["month"] == "2025-02") & (csv["group"] == "all"), "churn_rate"].item() == 0.25
    # An existing output is never replaced silently.
    again = forked_cli.run(["kpis", "--data", subscription, "--out", tmp_path / "kpis.csv"], env=env, timeout=300)
    assert again.returncode == 1 and "already exists; pass --overwrite" in again.stderr
