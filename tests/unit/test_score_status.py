"""Every customer accounted for, in memory: the customer list, statuses through the retention plan, the
win-back list (contact rules apply) in the segments and the report's counts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook

from churn.config import ChannelsConfig, Config, Incentive, IncentivesConfig, ValueConfig
from churn.errors import ChurnError
from churn.scoring.allocation import plan_retention
from churn.scoring.population import read_customer_list
from churn.scoring.report import report_context
from churn.scoring.segments import write_segments
from churn.scoring.status import counts_from_summary
from churn.scoring.summary import PlanSummary, WinBack

AS_OF = pd.Timestamp("2025-03-01")


# --------------------------------------------------------------------------------------- customer list
def test_customer_list_keeps_ids_as_text(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("customer_id\n007\n 0042 \n1e3\n", encoding="utf-8")
    assert read_customer_list(path).tolist() == ["007", "0042", "1e3"]


def test_customer_list_column_choice(tmp_path):
    only = tmp_path / "only.csv"
    only.write_text("Kundennummer\n001\n002\n")
    assert read_customer_list(only).tolist() == ["001", "002"]
    named = tmp_path / "named.csv"
    named.write_text("name,cid\nAna,001\nLuka,003\n")
    assert read_customer_list(named, "cid").tolist() == ["001", "003"]
    with pytest.raises(ChurnError, match=r"named\.csv: no id column 'customer_id' among 2 columns.*--id"):
        read_customer_list(named)


def test_customer_list_from_parquet_numbers(tmp_path):
    path = tmp_path / "list.parquet"
    pd.DataFrame({"customer_id": np.array([7, 12], dtype="int64")}).to_parquet(path)
    assert read_customer_list(path).tolist() == ["7", "12"]
    pd.DataFrame({"customer_id": [7.0, 7.5]}).to_parquet(path)
    with pytest.raises(ChurnError, match=r"column 'customer_id' holds numbers that are not whole ids, rows 2"):
        read_customer_list(path)


def test_customer_list_errors_name_file_column_and_rows(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("customer_id\n001\n\n002\n001\n", encoding="utf-8")
    # pandas skips the blank line; a blank cell in a two-column file is a row of its own
    with pytest.raises(ChurnError, match=r"list\.csv, column 'customer_id': 1 id\(s\) listed more than once, "
                                         r"e\.g\. '001'; rows 1, 3"):
        read_customer_list(path)
    path.write_text("customer_id,note\n001,a\n,b\n003,c\n", encoding="utf-8")
    with pytest.raises(ChurnError, match=r"list\.csv, column 'customer_id': 1 blank id\(s\), rows 2"):
        read_customer_list(path)
    path.write_text("customer_id\n", encoding="utf-8")
    with pytest.raises(ChurnError, match="holds no ids"):
        read_customer_list(path)


# ------------------------------------------------------------------------------------ plan and win-back
def config(**kw) -> Config:
    offer = Incentive(name="discount", kind="discount", unit_cost=1.0,
                      save_rate={"critical": 0.3, "high": 0.2, "medium": 0.1, "low": 0.05},
                      messages={"en": "Hi {first_name}, an offer."})
    inc = {"budget": 1e6, "control_share": 0.0, "cooldown_days": 30,
           "channels": ChannelsConfig(contact_cost={"email": 0.02}), "catalogue": [offer], **kw}
    return Config(incentives=IncentivesConfig(**inc), value=ValueConfig(lifetime_months=24))


def rows() -> tuple[pd.DataFrame, np.ndarray]:
    """Two scored customers and seven that are not, the lapsed ones with every kind of contact rule."""
    df = pd.DataFrame({
        "customer_id": ["001", "002", "010", "011", "012", "013", "014", "015", "016", "099"],
        "as_of": AS_OF,
        "churn_probability": [0.7, 0.2] + [np.nan] * 8,
        "reason_1": ["fewer orders", "fewer orders"] + [None] * 8,
        "monthly_fee": [20.0, 20.0] + [np.nan] * 8,
        "marketing_consent": [True, True, True, "yes", False, None, True, True, True, True],
        "language": "en", "name": ["A", "B", "Ana", "Bo", "Cy", "Di", "Ed", "Fi", "Gu", "Hu"],
        "last_activity_at": pd.to_datetime([None, None, "2024-12-01", "2024-12-20", "2024-11-01", "2024-10-01",
                                            "2024-09-01", "2024-12-20", None, None]),
    })
    status = np.array(["scored", "scored", "lapsed", "lapsed", "lapsed", "lapsed", "lapsed", "lapsed",
                       "cancelled", "unknown"], dtype=object)
    return df.assign(status=status), status


@pytest.fixture(scope="module")
def plan():
    df, _ = rows()
    history = pd.DataFrame({"customer_id": ["015"], "contacted_at": ["2025-02-20"]})
    exclusions = pd.DataFrame({"customer_id": ["014"]})
    return plan_retention(df, config(), contact_history=history, exclusions=exclusions)


def test_unscored_rows_get_no_score_no_tier_no_incentive(plan):
    c = plan.customers.set_index("customer_id")
    unscored = c.index[c["status"] != "scored"]
    assert len(unscored) == 8
    assert c.loc[unscored, "churn_probability"].isna().all() and c.loc[unscored, "risk_tier"].isna().all()
    assert c.loc[unscored, "incentive"].isna().all() and c.loc[unscored, "would_be_incentive"].isna().all()
    assert not c.loc[unscored, "contact"].any() and not c.loc[unscored, "holdout"].any()
    assert (c.loc[unscored, "incentive_cost"] == 0).all()
    assert c.loc["001", "contact"] and c.loc["001", "incentive"] == "discount"


def test_win_back_list_respects_every_contact_rule(plan):
    c = plan.customers.set_index("customer_id")
    assert sorted(c.index[c["win_back"]]) == ["010", "011"]  # consent True / "yes"; nothing else blocks
    assert c.loc[["010", "011"], "no_contact_reason"].tolist() == ["lapsed: on the win-back list"] * 2
    assert c.loc["012", "no_contact_reason"] == "no marketing consent"
    assert c.loc["013", "no_contact_reason"] == "no marketing consent"  # unknown consent is no consent
    assert c.loc["014", "no_contact_reason"] == "excluded"
    assert c.loc["015", "no_contact_reason"] == "contacted 9 days ago (cool-down 30 days)"
    assert c.loc["016", "no_contact_reason"] == "not scored: cancelled before the scoring date"
    assert c.loc["099", "no_contact_reason"] == "not scored: not in the data"
    assert c.loc[["010", "011"], "channel"].tolist() == ["email", "email"]


def test_summary_counts_every_status_once(plan):
    s = plan.summary
    assert counts_from_summary(s) == {"scored": 2, "lapsed": 6, "cancelled": 1, "unknown": 1}
    assert sum(counts_from_summary(s).values()) == s.customers == 10
    assert s.win_back == WinBack(lapsed=6, listed=2, not_listed={
        "excluded": 1, "no marketing consent": 2, "recently contacted (cool-down)": 1})
    assert s.contacted == 2 and s.budget_used == pytest.approx(2 * (1.0 + 0.02))  # offer + email
    # summary.json's form: the same keys as before the summary was typed, and it reads back equal
    as_json = json.loads(json.dumps(s.to_dict()))
    assert list(as_json) == [
        "currency", "budget", "budget_used", "budget_left", "budget_multiplier", "customers", "contactable",
        "control_group", "contacted", "expected_saved_value", "expected_net_value", "incentives",
        "no_contact_reasons", "control_group_by_tier", "tiers", "channels", "missing_translations", "warnings",
        "message_problems", "status_counts", "win_back"]
    assert as_json["win_back"] == {"lapsed": 6, "listed": 2, "not_listed": {
        "excluded": 1, "no marketing consent": 2, "recently contacted (cool-down)": 1}}
    assert counts_from_summary(as_json) == counts_from_summary(s)
    assert PlanSummary.from_dict(as_json) == s


def test_plan_without_status_column_counts_rows_with_a_probability_as_scored():
    df, _ = rows()
    plan = plan_retention(df.iloc[:3].drop(columns="status"), config())
    assert counts_from_summary(plan.summary) == {"scored": 2, "no_score": 1}
    assert plan.customers.set_index("customer_id").loc["010", "no_contact_reason"] == "no score"


def test_win_back_segment_file_and_sheet(plan, tmp_path):
    files = write_segments(plan.customers, tmp_path, summary=plan.summary)
    wb_file = tmp_path / "segments" / "win_back.csv"
    assert wb_file in files
    wb = pd.read_csv(wb_file, dtype=str, encoding="utf-8-sig")
    assert wb["customer_id"].tolist() == ["011", "010"]  # most recently active first
    assert wb["last_activity"].tolist() == ["2024-12-20", "2024-12-01"]
    assert "churn_probability" not in wb.columns and "customer_value" not in wb.columns
    book = load_workbook(tmp_path / "segments.xlsx")
    sheet = book["Win-back"]
    assert [r[0] for r in sheet.iter_rows(min_row=2, values_only=True)] == ["011", "010"]
    summary = [r for r in book["Summary"].iter_rows(values_only=True)]
    i = summary.index(("Customers by status", None, None, None, None))
    assert summary[i + 2][:2] == ("scored", 2) and summary[i + 3][:2] == ("lapsed", 6)
    assert ("Total", 10, None, None, None) in summary
    # the win-back list is not an incentive row
    assert not any(r[0] == "win-back" for r in summary)


def test_no_win_back_file_without_lapsed_customers(tmp_path):
    df, _ = rows()
    plan = plan_retention(df.iloc[:2].assign(status="scored"), config())
    files = write_segments(plan.customers, tmp_path)
    assert not (tmp_path / "segments" / "win_back.csv").exists()
    assert [f.name for f in files] == ["critical__discount.csv", "medium__discount.csv", "segments.xlsx"]


def test_report_counts_statuses_and_shares_of_the_scored(plan):
    ctx = report_context(plan.customers, plan.summary, {"as_of": "2025-03-01"})
    assert [(r["status"], r["count"]) for r in ctx["statuses"]["rows"]] == [
        ("scored", 2), ("lapsed", 6), ("cancelled", 1), ("unknown", 1)]
    assert ctx["statuses"]["total"] == 10 and ctx["statuses"]["unscored"] == 8
    assert ctx["statuses"]["win_back"] == 2 and ctx["statuses"]["lapsed"] == 6
    assert ctx["headline"]["scored"] == 2
    assert sum(t["share"] for t in ctx["tiers"]) == pytest.approx(1.0)  # of the scored, not of all rows
