"""The generator's retention campaigns (docs/synthetic-data.md, "Retention campaigns"): the default data left
alone, the contact history, who a random campaign reaches, and the planted truth checked against the labels
the project reads from the written tables (`churn.labels`), never against the generator's own formulas.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn.campaigns.effect import realised_labels
from churn.config import load_config
from churn.errors import ChurnError
from churn.generate import PLANTED, Campaign, campaign_truth, generate, ground_truth, offer_truth
from churn.scoring.rules import days_since_contact
from churn.validation import load_source

START, END = date(2024, 1, 1), date(2025, 1, 1)
N, SEED = 4000, 17
DAYS = (date(2024, 8, 1), date(2024, 9, 1), date(2024, 10, 1))
RANDOM = tuple(Campaign(d, reach=0.6, control_share=0.2) for d in DAYS)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaigns") / "data"
    counts = generate(N, START, END, SEED, out, events_per_customer=10.0, campaigns=RANDOM)
    return out, counts, campaign_truth(N, START, END, SEED, RANDOM)


def test_a_campaign_of_nobody_changes_no_table(tmp_path):
    generate(300, START, END, 5, tmp_path / "plain", events_per_customer=10.0)
    nobody = Campaign(DAYS[0], contacts=pd.DataFrame({"customer_id": [], "incentive": []}))
    counts = generate(300, START, END, 5, tmp_path / "nobody", events_per_customer=10.0, campaigns=[nobody])
    for f in sorted((tmp_path / "plain").glob("*.parquet")):
        assert (tmp_path / "nobody" / f.name).read_bytes() == f.read_bytes(), f.name
    assert counts["contact_history"] == 0
    assert list(pd.read_parquet(tmp_path / "nobody" / "contact_history.parquet").columns) == [
        "customer_id", "contacted_at", "incentive"]


def test_customers_never_contacted_keep_their_fate():
    plain = ground_truth(N, START, END, SEED).set_index("customer_id")
    treated = ground_truth(N, START, END, SEED, campaigns=RANDOM).set_index("customer_id")
    truth = campaign_truth(N, START, END, SEED, RANDOM)
    contacted = set(truth.loc[truth["contacted"], "customer_id"])
    left_alone = ~plain.index.isin(contacted)
    assert left_alone.sum() > N / 3
    pd.testing.assert_series_equal(plain.loc[left_alone, "churn_date"], treated.loc[left_alone, "churn_date"])
    moved = (plain["churn_date"].fillna(pd.Timestamp(0)) != treated["churn_date"].fillna(pd.Timestamp(0)))
    assert moved.sum() > 20  # the contacts did something, and only to contacted customers
    assert set(moved[moved].index) <= contacted


def test_potential_outcomes_follow_the_planted_multiplier(data):
    _, _, truth = data
    down, up, none = truth["multiplier"] < 1, truth["multiplier"] > 1, truth["multiplier"] == 1
    # A lower hazard can only postpone churn past the label window, a higher one only bring it in.
    assert (truth.loc[down, "y_treated"] <= truth.loc[down, "y_untreated"]).all()
    assert (truth.loc[up, "y_treated"] >= truth.loc[up, "y_untreated"]).all()
    assert (truth.loc[none, "y_treated"] == truth.loc[none, "y_untreated"]).all()
    saved = (truth["y_untreated"] - truth["y_treated"])
    assert (saved[down] == 1).sum() > 10 and (saved[up] == -1).sum() > 5  # persuadables and sleeping dogs
    assert set(truth.loc[truth["segment"] == "sleeping_dog", "multiplier"]) <= {
        m for m in PLANTED.campaign_effects[1]}
    assert set(truth["segment"]) == set(PLANTED.campaign_segments)


def test_the_written_labels_are_the_planted_outcomes(data):
    out, _, truth = data
    config = load_config()
    ds = load_source(str(out), config)
    try:
        for day in DAYS:
            labels = realised_labels(ds, config, pd.Timestamp(day)).set_index("customer_id")["churned"]
            cohort = truth[truth["campaign_day"] == pd.Timestamp(day)].set_index("customer_id")
            assert cohort.index.isin(labels.index).all()  # everyone in a campaign was current that day
            got = labels.reindex(cohort.index).to_numpy()
            want = np.where(cohort["contacted"], cohort["y_treated"], cohort["y_untreated"])
            assert (got == want).all(), day
            assert 0.01 < got.mean() < 0.3
    finally:
        ds.con.close()


def test_contact_history_holds_the_contacted_at_nine_on_the_campaign_day(data):
    out, counts, truth = data
    hist = pd.read_parquet(out / "contact_history.parquet")
    sent = truth[truth["contacted"]]
    assert counts["contact_history"] == len(hist) == len(sent)
    got = hist.assign(day=hist["contacted_at"].dt.normalize()).sort_values(["customer_id", "day"])
    want = sent.sort_values(["customer_id", "campaign_day"])
    assert got["customer_id"].tolist() == want["customer_id"].tolist()
    assert (got["day"].to_numpy() == want["campaign_day"].to_numpy()).all()
    assert got["incentive"].tolist() == want["incentive"].tolist()
    assert (hist["contacted_at"].dt.hour == 9).all()
    # The scorer's cool-down reads it as it is.
    one = hist.iloc[[0]]
    scores = pd.DataFrame({"customer_id": one["customer_id"], "as_of": one["contacted_at"].dt.normalize()
                           + pd.Timedelta(days=12)})
    assert days_since_contact(scores, one).tolist() == [11.0]  # 09:00 on day 0 to midnight of day 12


def test_random_campaigns_reach_consenting_current_customers_outside_the_cool_down(data):
    out, _, truth = data
    customers = pd.read_parquet(out / "customers.parquet").set_index("customer_id")
    assert customers.loc[truth["customer_id"], "marketing_consent"].all()
    sent = truth[truth["contacted"]].sort_values(["customer_id", "campaign_day"])
    gaps = sent.groupby("customer_id")["campaign_day"].diff().dropna().dt.days
    assert (gaps >= 30).all()
    for day, g in truth.groupby("campaign_day"):
        signup = customers.loc[g["customer_id"], "signup_date"]
        cancel = customers.loc[g["customer_id"], "cancel_date"]
        assert (signup < day).all() and (cancel.isna() | (cancel >= day)).all()
        held = (~g["contacted"]).mean()
        assert abs(held - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(g)), day
    assert set(truth["incentive"]) == set(Campaign(DAYS[0]).incentives)


def test_fixed_campaign_contacts_exactly_the_listed_customers_still_current():
    gt = ground_truth(400, START, END, 3).set_index("customer_id")
    gone = gt.index[gt["churn_date"] < pd.Timestamp(DAYS[0])][:2].tolist()
    stay = gt.index[gt["churn_date"].isna() & (gt["signup_day"] < 0)][:3].tolist()
    contacts = pd.DataFrame({"customer_id": gone + stay, "incentive": ["free_month"] * 2 + ["personal_call"] * 3})
    truth = campaign_truth(400, START, END, 3, [Campaign(DAYS[0], contacts=contacts)])
    assert sorted(truth["customer_id"]) == sorted(stay)  # those gone by the campaign day are skipped
    assert truth["contacted"].all() and set(truth["incentive"]) == {"personal_call"}


def test_offer_truth_at_a_campaign_day_repeats_that_campaign(data):
    _, _, truth = data
    cohort = truth[truth["campaign_day"] == pd.Timestamp(DAYS[1])].set_index("customer_id")
    offers = offer_truth(N, START, END, SEED, DAYS[1], campaigns=RANDOM).set_index("customer_id")
    assert cohort.index.isin(offers.index).all()
    rows = offers.loc[cohort.index]
    assert (rows["y_none"] == cohort["y_untreated"]).all()
    assert (rows["segment"] == cohort["segment"]).all()
    given = np.array([rows.at[cid, f"y_{inc}"] for cid, inc in cohort["incentive"].items()])
    assert (given == cohort["y_treated"].to_numpy()).all()


@pytest.mark.parametrize(("campaign", "message"), [
    (Campaign(date(2023, 6, 1)), "strictly inside"),
    (Campaign(DAYS[0], reach=0.0), "reach must be in"),
    (Campaign(DAYS[0], contacts=pd.DataFrame({"customer_id": ["0000001"]})), "missing \\['incentive'\\]"),
    (Campaign(DAYS[0], contacts=pd.DataFrame({"customer_id": ["0000001", "p9f3a"], "incentive": ["x", "y"]})),
     r"'customer_id' has 1 id\(s\) that are not generated ids, e.g. rows \[1\]: 'p9f3a'"),
    (Campaign(DAYS[0], contacts=pd.DataFrame({"customer_id": ["0000001", "0000002"], "incentive": ["x", None]})),
     r"'incentive' is empty in rows \[1\]"),
])
def test_bad_campaigns_raise_churn_error(tmp_path, campaign, message):
    with pytest.raises(ChurnError, match=message):
        generate(20, START, END, 1, tmp_path / "x", campaigns=[campaign])
    assert not (tmp_path / "x").exists()


def test_the_documented_effects_are_the_planted_ones():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "synthetic-data.md").read_text(encoding="utf-8")
    section = doc.split("## Retention campaigns", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and line[2:3].islower()][1:]
    names = [r.split("|")[1].strip().replace(" ", "_") for r in rows]
    assert names == list(PLANTED.campaign_segments)
    for row, planted in zip(rows, PLANTED.campaign_effects):
        assert [float(x) for x in row.strip("|").split("|")[2:]] == list(planted), row
