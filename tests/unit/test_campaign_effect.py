"""Measuring a campaign and learning from it, on small tables whose answers are worked out by hand in the
test (never with the module's formulas): per-cell and margin figures, bad plans refused with the file,
column and rows, the Beta-binomial shrinkage, and the effects file.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from churn.campaigns.effect import ALL, CampaignEffect, measure, plan_rows
from churn.campaigns.learning import (
    ASSUMED,
    MEASURED,
    Cell,
    applied_rates,
    held_out_strength,
    prior_strength,
    read_effects,
    shrink,
)
from churn.config import Config
from churn.errors import ChurnError
from churn.scoring import offers


def _group(tier, offer, treated, treated_churned, control, control_churned, cost, value, start):
    """Customers of one cell: ids from `start`, churners first in each group."""
    n = treated + control
    ids = [f"c{start + i:03d}" for i in range(n)]
    rows = pd.DataFrame({"customer_id": ids, "risk_tier": tier, "would_be_incentive": offer,
                         "contact": [True] * treated + [False] * control,
                         "holdout": [False] * treated + [True] * control,
                         "incentive_cost": [cost] * treated + [0.0] * control, "customer_value": value})
    churned = [1] * treated_churned + [0] * (treated - treated_churned) + [1] * control_churned + [0] * (
        control - control_churned)
    return rows, pd.DataFrame({"customer_id": ids, "churned": churned})


@pytest.fixture
def table():
    parts = [
        _group("critical", "discount", 10, 4, 5, 3, 6.0, 500.0, 0),
        _group("critical", "call", 4, 1, 2, 1, 10.0, 800.0, 100),
        _group("medium", "discount", 20, 2, 4, 1, 3.0, 300.0, 200),
    ]
    scores = pd.concat([p[0] for p in parts], ignore_index=True)
    labels = pd.concat([p[1] for p in parts], ignore_index=True)
    # Customers outside the campaign: neither contacted nor held out, or held out without an offer.
    scores = pd.concat([scores, pd.DataFrame({
        "customer_id": ["x1", "x2"], "risk_tier": "low", "would_be_incentive": [None, None],
        "contact": False, "holdout": [False, True], "incentive_cost": 0.0, "customer_value": 50.0})],
        ignore_index=True)
    return scores, labels


def test_cells_and_margins_by_hand(table):
    scores, labels = table
    labels = labels[labels["customer_id"] != "c009"]  # one treated, non-churning customer left the data
    est, unlabelled = measure(plan_rows(scores), labels, {"discount": {"critical": 0.25, "medium": 0.12}})
    assert unlabelled == 1
    assert [(e.tier, e.incentive) for e in est] == [
        ("critical", "call"), ("critical", "discount"), ("medium", "discount"),
        ("critical", ALL), ("medium", ALL), (ALL, "call"), (ALL, "discount"), (ALL, ALL)]
    cell = est[1]  # critical / discount: 9 treated (4 churned) against 5 held out (3 churned)
    assert (cell.treated, cell.treated_churned, cell.control, cell.control_churned) == (9, 4, 5, 3)
    assert cell.churn_treated == pytest.approx(4 / 9) and cell.churn_control == pytest.approx(0.6)
    assert cell.difference == pytest.approx(-0.155556, abs=1e-6)  # 0.444444 - 0.6
    assert cell.save_rate == pytest.approx(0.259259, abs=1e-6)  # 1 - 0.444444 / 0.6
    assert cell.assumed_save_rate == 0.25
    assert cell.saved == pytest.approx(1.4)  # 9 x 0.155556
    assert cell.cost == 54.0 and cell.cost_per_saved == pytest.approx(38.571429)  # 54 / 1.4
    assert cell.value_saved == pytest.approx(700.0)  # 1.4 x 500
    assert cell.roi == pytest.approx(11.962963, abs=1e-6)  # (700 - 54) / 54
    assert cell.difference_low < cell.difference < cell.difference_high
    tier = est[3]  # critical: 13 treated (5), 7 held out (4); mean value (9 x 500 + 4 x 800) / 13 = 592.31
    assert (tier.treated, tier.treated_churned, tier.control, tier.control_churned) == (13, 5, 7, 4)
    assert tier.saved == pytest.approx(13 * (4 / 7 - 5 / 13))  # 2.428571
    assert tier.value_saved == pytest.approx(2.428571 * 592.307692, rel=1e-5)
    assert tier.cost == 94.0 and tier.assumed_save_rate is None
    total = est[-1]  # 33 treated (7), 11 held out (5)
    assert (total.treated, total.treated_churned, total.control, total.control_churned) == (33, 7, 11, 5)
    assert total.cost == 154.0
    medium = est[2]  # 20 treated (2 churned, 10%) against 4 held out (1, 25%): 3 saved for 60
    assert medium.saved == pytest.approx(3.0) and medium.cost_per_saved == pytest.approx(20.0)
    assert medium.roi == pytest.approx((3 * 300 - 60) / 60)
    # Four controls at 25% churn cannot tell anything from no effect: nothing is detectable.
    assert math.isnan(medium.detectable_churn) and medium.assumed_detectable is None


def test_detectable_effect_with_enough_customers():
    # 1,215 contacted and 135 held out at 50% churn detect a treated churn of 37.5% (issue 24's example); with
    # 1,224 and 136 (68 churned: 50%) a hair more, so a catalogue that assumes a 25% save rate there can be
    # checked and one that assumes 20% cannot.
    scores, labels = _group("critical", "discount", 1224, 450, 136, 68, 1.0, 100.0, 0)
    [cell, *_], _ = measure(plan_rows(scores), labels, {"discount": {"critical": 0.25}})
    assert 0.375 < cell.detectable_churn < 0.3765
    assert 0.247 < cell.detectable_save_rate < 0.25
    assert cell.assumed_detectable is True
    [cell, *_], _ = measure(plan_rows(scores), labels, {"discount": {"critical": 0.20}})
    assert cell.assumed_detectable is False


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.drop(columns="would_be_incentive"), r"scores.parquet: missing column\(s\) \['would_be_incentive'\]"),
    (lambda s: s.assign(holdout=s["holdout"] | (s.index == 3)),
     r"columns 'contact' and 'holdout' are both true in 1 row\(s\), e.g. rows \[3\] \(customer_id c003\)"),
    (lambda s: s.assign(would_be_incentive=s["would_be_incentive"].where(s.index != 2)),
     r"'would_be_incentive' is empty for 1 contacted customer\(s\), e.g. rows \[2\] \(customer_id c002\)"),
])
def test_a_table_that_is_not_a_plan_is_refused_naming_file_column_and_rows(table, change, message):
    scores, _ = table
    with pytest.raises(ChurnError, match=message):
        plan_rows(change(scores), "run/scores.parquet")


def test_campaign_effect_round_trips_through_json(table):
    scores, labels = table
    est, _ = measure(plan_rows(scores), labels)
    effect = CampaignEffect("run", "2025-03-01", 60, "cancellation", "EUR", 0.1, 44, 0, est)
    as_json = json.loads(json.dumps(effect.to_dict()))  # NaN (a detectable churn that does not exist) -> null
    assert as_json["estimates"][0]["detectable_churn"] is None
    back = CampaignEffect.from_dict(as_json)
    assert back.to_dict() == effect.to_dict()
    assert math.isnan(back.cell("critical", "call").detectable_churn)
    assert back.cell("critical", "discount").saved == pytest.approx(2.0)  # 10 x (0.6 - 0.4)


# ------------------------------------------------------------------------------------------ shrinkage
def test_shrinkage_moves_a_rate_by_the_expected_amount():
    # Tier control churn m_c = 20/100 = 0.2; the catalogue assumes a 25% save rate, i.e. treated churn
    # m_t = 0.2 x 0.75 = 0.15. With k = 100: control Beta(20, 80), treated Beta(15, 85).
    # Posterior means: control (20 + 20) / (100 + 100) = 0.2, treated (15 + 90) / (100 + 900) = 0.105.
    # Learned rate 1 - 0.105 / 0.2 = 0.475: the raw 0.5 (1 - 0.1 / 0.2) moved 0.025 towards 0.25.
    cells = [Cell("critical", "discount", 900, 90, 100, 20)]
    learned = shrink(cells, {"discount": {"critical": 0.25, "high": 0.2}}, strength=100)
    r = learned.rate("discount", "critical")
    assert r.source == MEASURED and r.rate == pytest.approx(0.475)
    assert r.measured == pytest.approx(0.5) and r.assumed == 0.25
    assert r.data_weight == pytest.approx(900 / 1000)  # 900 treated against k = 100
    assert r.measured_low < 0.5 < r.measured_high
    # Nothing measured in "high": the catalogue's rate, marked assumed.
    assert learned.rate("discount", "high").source == ASSUMED and learned.rate("discount", "high").rate == 0.2
    # Ten times the customers in both groups: (20 + 200) / 1100 = 0.2, (15 + 900) / 9100 = 0.100549;
    # 1 - 0.100549 / 0.2 = 0.497253, much closer to the measurement.
    big = shrink([Cell("critical", "discount", 9000, 900, 1000, 200)], {"discount": {"critical": 0.25}}, 100)
    assert big.rate("discount", "critical").rate == pytest.approx(0.497253, abs=1e-6)


def test_the_control_prior_expects_what_the_model_predicted_for_the_cell():
    # Two offers in one tier, given to different customers: the model predicted 30% churn for the first
    # cell's customers (270 of 900 contacted, 30 of 100 held out) and 10% for the second's. Control groups
    # churned 30 and 10 of 100: the tier's calibration is (30 + 10) / (30 + 10) = 1, so m_c = 0.3 and 0.1.
    cells = [Cell("critical", "a", 900, 180, 100, 30, 270.0, 30.0), Cell("critical", "b", 900, 60, 100, 10, 90.0, 10.0)]
    learned = shrink(cells, {"a": {"critical": 0.25}, "b": {"critical": 0.25}}, strength=100)
    # a: control (100 x 0.3 + 30) / 200 = 0.3; treated prior 0.3 x 0.75 = 0.225: (22.5 + 180) / 1000 = 0.2025;
    # rate 1 - 0.2025 / 0.3 = 0.325 (raw 1 - 0.2 / 0.3 = 0.3333). With the tier's pooled control churn (0.2)
    # as the prior instead it would read (20 + 30) / 200 = 0.25 and (15 + 180) / 1000: 0.22, biased down.
    a = learned.rate("a", "critical")
    assert a.expected_control_churn == pytest.approx(0.3) and a.rate == pytest.approx(0.325)
    # b: (10 + 10) / 200 = 0.1; (7.5 + 60) / 1000 = 0.0675; rate 0.325 too (raw 1 - 0.0667 / 0.1 = 0.3333).
    assert learned.rate("b", "critical").rate == pytest.approx(0.325)


def test_prior_strength_follows_how_far_the_cells_are_from_the_assumption():
    # 12 cells exactly as assumed (control 20%, treated 15%): the likelihood wants all weight on the prior.
    agree = [Cell("critical", f"o{i}", 2000, 300, 500, 100) for i in range(12)]
    assumed = {f"o{i}": {"critical": 0.25} for i in range(12)}
    assert min(prior_strength(agree, assumed)) > 10_000
    # Same tier churn, but half the offers save 60% and half do harm (-40%): the cells disagree with the
    # 25% assumption far beyond chance, so the prior gets little weight and rates follow the measurement.
    differ = [Cell("critical", f"o{i}", 2000, 160 if i % 2 else 560, 500, 100) for i in range(12)]
    k_control, k_treated = prior_strength(differ, assumed)
    assert k_treated < 300 and k_control > 10_000  # the control groups all churn alike: they pool
    learned = shrink(differ, assumed)
    assert learned.prior_strength == pytest.approx(k_treated) and learned.prior_strength_estimated
    assert learned.control_prior_strength == pytest.approx(k_control)
    assert learned.rate("o1", "critical").rate == pytest.approx(0.6, abs=0.06)
    assert learned.rate("o0", "critical").rate == pytest.approx(-0.4, abs=0.06)


def test_the_catalogue_weight_is_what_predicts_a_campaign_left_out():
    """Three campaigns, 12 offers, control churn 20% everywhere (2,000 treated, 500 held out per cell), the
    catalogue assuming 25% for every offer. Steady effects (the same 60% / -40% every month) predict the
    campaign left out: the rates follow the measurement. Effects that flip from month to month (each offer
    saving 60% one month and harming the next) are precise in each campaign yet predict the next one badly:
    the catalogue keeps its weight and the rates stay near 25%."""
    assumed = {f"o{i}": {"critical": 0.25} for i in range(12)}

    def campaign(flip: bool) -> list[Cell]:
        return [Cell("critical", f"o{i}", 2000, 160 if (i % 2) != flip else 560, 500, 100) for i in range(12)]

    steady = [campaign(False) for _ in range(3)]
    moving = [campaign(False), campaign(True), campaign(False)]
    for months in (steady, moving):  # pooled, in-sample, both look far from the catalogue beyond chance
        assert shrink(_added(months), assumed).prior_strength < 300
    learned = shrink(_added(steady), assumed, campaigns=steady)
    assert learned.prior_strength_method == "held-out campaigns" and learned.prior_strength < 300
    assert learned.rate("o1", "critical").rate == pytest.approx(0.6, abs=0.03)
    assert learned.rate("o0", "critical").rate == pytest.approx(-0.4, abs=0.03)
    moved = shrink(_added(moving), assumed, campaigns=moving)
    assert moved.prior_strength_method == "held-out campaigns" and moved.prior_strength > 10_000
    # Measured twice saving 60% and once harming: the pool says 27%; the catalogue's 25% weighs more.
    for i in range(12):
        assert abs(moved.rate(f"o{i}", "critical").rate - 0.25) < 0.1
    # One campaign cannot be held out: the in-sample (marginal likelihood) weight, said so.
    one = shrink(steady[0], assumed, campaigns=steady[:1])
    assert one.prior_strength_method == "marginal likelihood" and one.prior_strength < 300
    with pytest.raises(ValueError, match="two campaigns"):
        held_out_strength(steady[:1], assumed)
    # Two campaigns that measured different offers: neither predicts the other, so nothing is held out.
    apart = [steady[0][:6], steady[1][6:]]
    split = shrink(_added(apart), assumed, campaigns=apart)
    assert split.prior_strength_method == "marginal likelihood" and split.prior_strength < 300
    assert split.rate("o1", "critical").rate == pytest.approx(0.6, abs=0.06)
    with pytest.raises(ValueError, match="must be the pool"):
        shrink(_added(steady[:2]), assumed, campaigns=steady)


def _added(campaigns: list[list[Cell]]) -> list[Cell]:
    """The campaigns' cells added up by hand (counts only; no predicted churn)."""
    out = {}
    for cells in campaigns:
        for c in cells:
            t = out.get(c.incentive)
            out[c.incentive] = c if t is None else Cell(c.tier, c.incentive, t.treated + c.treated,
                                                        t.treated_churned + c.treated_churned,
                                                        t.control + c.control, t.control_churned + c.control_churned)
    return list(out.values())


def test_effects_file_round_trip_and_bad_files(tmp_path):
    learned = shrink([Cell("critical", "discount", 900, 90, 100, 20)], {"discount": {"critical": 0.25}}, 100,
                     [{"run": "outputs/2025-03-01", "as_of": "2025-03-01", "horizon_days": 60}])
    path = tmp_path / "effects.json"
    path.write_text(json.dumps(learned.to_dict()))
    back = read_effects(path)
    assert back.rate("discount", "critical") == learned.rate("discount", "critical")
    assert back.learned_from == learned.learned_from
    assert back.prior_strength_method == learned.prior_strength_method == "given"
    with pytest.raises(ChurnError, match="no such effects file"):
        read_effects(tmp_path / "missing.json")
    data = learned.to_dict()
    data["save_rates"]["discount"]["critical"]["rate"] = 1.5
    path.write_text(json.dumps(data))
    with pytest.raises(ChurnError, match=r"effects.json: save_rates.discount.critical.rate: expected a number"):
        read_effects(path)
    path.write_text(json.dumps({**learned.to_dict(), "kind": "something else"}))
    with pytest.raises(ChurnError, match="key 'kind' must be 'churn-effects'"):
        read_effects(path)


def _config() -> Config:
    return Config.model_validate({"incentives": {"catalogue": [
        {"name": "discount", "kind": "discount", "cost_share_of_fee": 0.5, "save_rate": {"critical": 0.25, "high": 0.2}},
        {"name": "call", "kind": "personal_call", "unit_cost": 5.0, "save_rate": {"critical": 0.4},
         "eligible": {"tiers": ["critical"]}},
    ]}})


def test_measured_rates_enter_the_one_reading_of_the_catalogue():
    learned = shrink([Cell("critical", "discount", 900, 90, 100, 20),
                      Cell("critical", "call", 900, 180, 100, 20),  # treated churn as high as control's
                      Cell("medium", "discount", 900, 90, 100, 20)],  # a tier the catalogue does not offer it in
                     {"discount": {"critical": 0.25, "high": 0.2}, "call": {"critical": 0.4}}, strength=100)
    # The critical tier's control churn pools both offers: 40 / 200 = 0.2. The call's prior treated churn is
    # 0.2 x (1 - 0.4) = 0.12: (12 + 180) / 1000 = 0.192 against (20 + 20) / 200 = 0.2, rate 1 - 0.96 = 0.04.
    assert learned.rate("call", "critical").rate == pytest.approx(0.04)
    config, used = offers.with_measured_rates(_config(), learned)
    cat = {i.name: i for i in config.incentives.catalogue}
    assert offers.save_rates(cat["discount"], pd.Series(["critical", "high", "low"])).tolist() == [
        pytest.approx(0.475), 0.2, 0.0]
    assert used["discount"]["critical"].source == MEASURED and used["discount"]["high"].source == ASSUMED
    assert "medium" not in cat["discount"].save_rate  # never offered there: a measurement does not add it
    assert offers.tier_terms(config)["critical"].save_rate == pytest.approx((0.475 + 0.04) / 2)


def test_a_harmful_measured_rate_is_used_as_zero():
    learned = shrink([Cell("critical", "discount", 1000, 400, 1000, 200)], {"discount": {"critical": 0.25}}, 10)
    assert learned.rate("discount", "critical").rate < -0.5  # contact doubled churn
    used = applied_rates(learned, {"discount": {"critical": 0.25}})
    assert used["discount"]["critical"].rate == 0.0 and used["discount"]["critical"].source == MEASURED
    # And per customer: own rates replace the tier's where given, clipped to [0, 1].
    inc = _config().incentives.catalogue[0]
    got = offers.save_rates(inc, pd.Series(["critical", "critical", "high", "low"]),
                            np.array([0.9, np.nan, -0.3, 0.7]))
    assert got.tolist() == [0.9, 0.25, 0.0, 0.0]  # "low" is not a tier the offer is made in
