"""The retention plan: budgeted allocation, caps, contact rules, control group, channels, determinism,
and the knapsack solver against the exact optimum from scipy's MILP solver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import Bounds, LinearConstraint, milp

from churn.config import ChannelsConfig, Config, Eligibility, Incentive, IncentivesConfig, ValueConfig
from churn.errors import ChurnError
from churn.scoring.allocation import plan_retention, solve_mckp
from churn.scoring.summary import TierControl

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
AS_OF = pd.Timestamp("2025-03-01")
ALL_TIERS = {"critical": 0.3, "high": 0.2, "medium": 0.1, "low": 0.05}


def scores(n: int = 400, seed: int = 0, **overrides) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "as_of": AS_OF,
            "churn_probability": rng.beta(1.3, 3.0, n),
            "reason_1": "fewer logins", "reason_2": "complaint", "reason_3": "fee rise",
            "model_version": "churn/1",
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "region": rng.choice(["DACH", "Slovenia", "Baltics"], n),
            "country": rng.choice(["DE", "SI", "LV"], n),
            "language": rng.choice(["en", "de", "sl", "fa"], n),
            "marketing_consent": True,
            "monthly_fee": rng.choice([9.99, 19.99, 29.99], n),
            "name": rng.choice(["Ana Novak", "Jürgen Groß", "سارا احمدی"], n),
        }
    )
    for k, v in overrides.items():
        df[k] = v
    return df


def incentive(name: str = "discount", **kw) -> Incentive:
    base = {"name": name, "kind": "discount", "unit_cost": 1.0, "save_rate": dict(ALL_TIERS),
            "messages": {"en": "Hi {first_name}, an offer for {plan}."}}
    base.update(kw)
    return Incentive(**base)


def config(catalogue=None, **kw) -> Config:
    inc = {"budget": 1e9, "control_share": 0.0, "cooldown_days": 30,
           "channels": ChannelsConfig(contact_cost={"email": 0.02, "sms": 0.05, "call": 4.0}),
           "catalogue": catalogue if catalogue is not None else [incentive()]}
    inc.update(kw)
    return Config(incentives=IncentivesConfig(**inc), value=ValueConfig(lifetime_months=24))


# ------------------------------------------------------------------------------------ money and limits
def test_cost_and_net_value_of_an_offer():
    df = scores(1, churn_probability=0.6, monthly_fee=20.0, language="en")
    cat = [incentive(unit_cost=2.0, cost_share_of_fee=0.6, save_rate={"critical": 0.25})]
    c = plan_retention(df, config(cat)).customers.iloc[0]
    value = 20.0 * 24
    cost = 2.0 + 0.6 * 20.0 + 0.02  # unit + share of fee + email
    assert c["customer_value"] == pytest.approx(value)
    assert c["expected_loss"] == pytest.approx(0.6 * value)
    assert c["incentive_cost"] == pytest.approx(cost)
    assert c["expected_saved_value"] == pytest.approx(0.6 * value * 0.25)
    assert c["expected_net_value"] == pytest.approx(0.6 * value * 0.25 - cost)
    assert c["contact"] and c["incentive"] == "discount" and c["channel"] == "email"
    assert c["no_contact_reason"] is None


def test_lower_budget_fewer_contacts_never_over_budget():
    df = scores(600)
    cat = [incentive("cheap", unit_cost=1.0, save_rate={t: r / 2 for t, r in ALL_TIERS.items()}),
           incentive("rich", unit_cost=8.0, cost_share_of_fee=1.0)]
    plans = {b: plan_retention(df, config(cat, budget=b)) for b in (1e9, 2000.0, 500.0, 50.0)}
    contacted = [int(p.customers["contact"].sum()) for p in plans.values()]
    assert contacted == sorted(contacted, reverse=True) and contacted[-1] < contacted[0]
    for b, p in plans.items():
        used = p.customers["incentive_cost"].sum()
        assert used <= b + 1e-6
        assert p.summary.budget_used == pytest.approx(used)
        if b < 1e9:  # binding budget: nearly all of it is spent, the rest is "budget exhausted"
            assert used >= b - 30.0
            assert p.summary.no_contact_reasons.get("budget exhausted", 0) > 0
    net_small = plans[500.0].customers["expected_net_value"].sum()
    net_big = plans[2000.0].customers["expected_net_value"].sum()
    assert net_small < net_big


def test_caps_are_respected_and_reported():
    df = scores(500)
    cat = [incentive("call", kind="personal_call", unit_cost=5.0, channel="call", max_customers=7,
                     save_rate={"critical": 0.6, "high": 0.5, "medium": 0.4, "low": 0.3}),
           incentive("gift", kind="gift", unit_cost=3.0, max_customers=11)]
    plan = plan_retention(df, config(cat))
    c = plan.customers
    assert (c["incentive"] == "call").sum() == 7 and (c["incentive"] == "gift").sum() == 11
    assert (c.loc[c["incentive"] == "call", "channel"] == "call").all()  # a personal call is a call
    assert plan.summary.incentives["call"].max_customers == 7
    assert plan.summary.no_contact_reasons["incentive cap reached"] > 0


def test_offers_not_worth_their_cost_are_never_made():
    df = scores(300)
    df.loc[:149, "monthly_fee"] = 0.5  # worth 12 over the lifetime: no 5.0 offer pays back
    plan = plan_retention(df, config([incentive(unit_cost=5.0)]))
    c = plan.customers
    assert (c.loc[c["contact"], "expected_net_value"] > 0).all()
    low = c[c["customer_id"].isin(df.loc[:149, "customer_id"])]
    assert not low["contact"].any()
    assert (low["no_contact_reason"] == "no offer worth its cost").all()


def test_eligibility_rules():
    df = scores(300)
    cat = [incentive("upgrade", kind="upgrade", unit_cost=0.5,
                     eligible=Eligibility(plans=["BASIC"], regions=["dach"], countries=["DE", "SI"], min_value=200,
                                          tiers=["critical", "high", "medium", "low"]))]
    c = plan_retention(df, config(cat)).customers
    got = c[c["incentive"] == "upgrade"]
    assert len(got) > 0
    assert (got["plan"] == "basic").all() and (got["region"] == "DACH").all()
    assert got["country"].isin(["DE", "SI"]).all() and (got["customer_value"] >= 200).all()
    assert (c.loc[c["plan"] != "basic", "no_contact_reason"] == "not eligible for any incentive").all()


def test_tiers_without_a_save_rate_are_not_offered():
    df = scores(300)
    c = plan_retention(df, config([incentive(save_rate={"critical": 0.5})])).customers
    assert set(c.loc[c["contact"], "risk_tier"]) == {"critical"}


# ------------------------------------------------------------------------------------------ rules
def test_consent_cooldown_and_exclusions_block_contact_with_reasons():
    df = scores(8, churn_probability=0.8)
    df["marketing_consent"] = pd.array([True, False, None, True, True, True, True, False], dtype="boolean")
    history = pd.DataFrame(
        {
            "customer_id": ["C00003", "C00003", "C00004", "C00005", "C00006"],
            "contacted_at": ["2024-12-01", "2025-02-17", "2025-01-30", "2025-03-05", "2025-02-28T23:00:00Z"],
        }
    )
    exclusions = pd.DataFrame({"customer_id": ["C00006", "C00007"]})
    plan = plan_retention(df, config(), contact_history=history, exclusions=exclusions)
    why = dict(zip(plan.customers["customer_id"], plan.customers["no_contact_reason"]))
    assert why["C00000"] is None
    assert why["C00001"] == "no marketing consent"
    assert why["C00002"] == "no marketing consent"  # unknown consent is no consent
    assert why["C00003"] == "contacted 12 days ago (cool-down 30 days)"  # the latest contact counts
    assert why["C00004"] is None  # 30 days ago: the cool-down is over
    assert why["C00005"] == "contacted after the scoring date (cool-down 30 days)"
    assert why["C00006"] == "excluded" and why["C00007"] == "excluded"  # exclusion is reported first
    blocked = plan.customers[plan.customers["no_contact_reason"].notna()]
    assert not blocked["contact"].any() and blocked["incentive"].isna().all()
    assert blocked["risk_tier"].notna().all() and blocked["churn_probability"].notna().all()  # still scored
    assert plan.summary.no_contact_reasons["recently contacted (cool-down)"] == 2


def test_no_consent_column_means_nobody_is_contacted():
    df = scores(20).drop(columns=["marketing_consent"])
    plan = plan_retention(df, config())
    assert not plan.customers["contact"].any()
    [said] = [w for w in plan.summary.warnings if "marketing_consent" in w]
    assert said.startswith("nobody may be contacted") and "columns: {marketing_consent: <your column>}" in said
    assert set(plan.customers["no_contact_reason"]) == {"no marketing consent"}


def test_consent_as_text_from_csv():
    df = scores(4, marketing_consent=["yes", "TRUE", "0", ""], churn_probability=0.9)
    c = plan_retention(df, config()).customers
    assert c["contact"].tolist() == [True, True, False, False]


# --------------------------------------------------------------------------------- control group
def test_control_group_is_stratified_by_tier_with_half_up_rounding():
    df = scores(2000, seed=4)
    df.loc[df.index % 7 == 0, "marketing_consent"] = False
    plan = plan_retention(df, config(control_share=0.1), seed=11)
    c = plan.customers
    contactable = c["marketing_consent"].astype(bool)
    for tier, grp in c[contactable].groupby("risk_tier", observed=True):
        expected = int(np.floor(0.1 * len(grp) + 0.5))
        assert grp["holdout"].sum() == expected, tier
        assert plan.summary.control_group_by_tier[tier] == TierControl(contactable=len(grp), holdout=expected)
    held = c[c["holdout"]]
    assert not held["contact"].any() and (held["no_contact_reason"] == "control group").all()
    assert held["incentive"].isna().all() and held["would_be_incentive"].notna().any()
    assert not c.loc[~contactable, "holdout"].any()  # only contactable customers are held out
    treated = c[c["contact"]]
    assert (treated["would_be_incentive"] == treated["incentive"]).all()


def test_control_group_depends_on_seed_only_through_the_hash():
    df = scores(1000)
    a = plan_retention(df, config(control_share=0.2), seed=1).customers
    b = plan_retention(df, config(control_share=0.2), seed=2).customers
    assert a["holdout"].sum() == b["holdout"].sum()
    assert (a["holdout"] != b["holdout"]).any()


# ------------------------------------------------------------------------------------- determinism
def test_same_plan_whatever_the_row_order():
    df = scores(800, seed=9)
    df["marketing_consent"] = pd.array(df.index % 5 != 0, dtype="boolean")
    df.loc[df.index % 5 == 0, "marketing_consent"] = pd.NA
    cat = [incentive("a", unit_cost=2.0, max_customers=40), incentive("b", unit_cost=6.0, cost_share_of_fee=0.5)]
    cfg = config(cat, budget=900.0, control_share=0.1)
    one = plan_retention(df, cfg, seed=5)
    two = plan_retention(df.sample(frac=1.0, random_state=1).reset_index(drop=True), cfg, seed=5)
    pd.testing.assert_frame_equal(one.customers, two.customers)
    assert one.summary == two.summary
    assert one.customers["customer_id"].is_monotonic_increasing


# ---------------------------------------------------------------------------------------- channels
def test_channel_forced_then_preferred_then_language_then_region_then_default():
    df = scores(5, churn_probability=0.9)
    df["channel"] = ["sms", None, None, None, "App_Push"]
    df["language"] = ["en", "tr", "en", "en", "en"]
    df["region"] = ["DACH", "DACH", "Baltics", "DACH", "DACH"]
    ch = ChannelsConfig(default="email", by_language={"tr": "sms"}, by_region={"baltics": "app_push"},
                        contact_cost={"email": 0.02, "sms": 0.05, "app_push": 0.01})
    plan = plan_retention(df, config(channels=ch))
    c = plan.customers
    assert c["channel"].tolist() == ["sms", "sms", "app_push", "email", "app_push"]
    assert c["preferred_channel"].tolist()[0] == "sms"  # the input's channel is kept under this name
    assert c["incentive_cost"].tolist() == pytest.approx([1.05, 1.05, 1.01, 1.02, 1.01])
    forced = plan_retention(df, config([incentive(channel="call")], channels=ch)).customers
    assert (forced["channel"] == "call").all()


# ---------------------------------------------------------------------------------------- messages
def test_messages_rendered_in_language_with_missing_translations_counted():
    df = scores(6, churn_probability=0.9)
    df["language"] = ["en", "de", "fa", "sl", "sl", None]
    df["name"] = ["Emma Brown", "Jürgen Groß", "سارا احمدی", "Luka", "Ana", "Kim"]
    msgs = {"en": "Hi {first_name}, 20% off {plan}.", "de": "Hallo {first_name}, 20 % Rabatt.",
            "fa": "سلام {name}، ۲۰٪ تخفیف"}
    plan = plan_retention(df, config([incentive(messages=msgs)]))
    c = plan.customers.set_index("customer_id")
    assert c.loc["C00001", "offer_message"] == "Hallo Jürgen, 20 % Rabatt."
    assert c.loc["C00002", "offer_message"] == "سلام سارا احمدی، ۲۰٪ تخفیف"
    assert c.loc["C00003", "message_language"] == "en"
    assert plan.summary.missing_translations == {"sl": 2}


# ------------------------------------------------------------------------------------- bad input
def test_input_and_catalogue_errors_are_user_errors():
    with pytest.raises(ChurnError, match="repeats"):
        plan_retention(pd.concat([scores(3), scores(3)]), config())
    with pytest.raises(ChurnError, match=r"\[0, 1\]"):
        plan_retention(scores(3, churn_probability=1.5), config())
    with pytest.raises(ChurnError, match="missing column"):
        plan_retention(scores(3).drop(columns=["churn_probability"]), config())
    with pytest.raises(ChurnError, match="unknown tier"):
        plan_retention(scores(3), config([incentive(save_rate={"critcal": 0.3})]))
    with pytest.raises(ChurnError, match="unique"):
        plan_retention(scores(3), config([incentive("x"), incentive("x")]))


def test_example_catalogue_loads_and_plans():
    raw = yaml.safe_load((CONFIGS / "incentives.yaml").read_text(encoding="utf-8"))
    inc = IncentivesConfig.model_validate(raw)
    kinds = {i.kind for i in inc.catalogue}
    assert kinds == {"discount", "free_month", "upgrade", "gift", "loyalty_points", "personal_call"}
    for i in inc.catalogue:
        assert set(i.messages) >= {"en", "de", "sl", "lv", "tr", "fa"}, i.name
    df = scores(3000, seed=2, plan=np.random.default_rng(2).choice(["basic", "standard", "premium"], 3000))
    plan = plan_retention(df, Config(incentives=inc))
    assert plan.customers["contact"].any()
    assert plan.summary.budget_used <= inc.budget
    fa = plan.customers[plan.customers["contact"] & (plan.customers["language"] == "fa")]
    assert (fa["message_language"] == "fa").all()


# ====================================================================== the solver vs the exact optimum
def exact_optimum(net: np.ndarray, cost: np.ndarray, budget: float, caps: np.ndarray) -> float:
    k, m = net.shape
    valid = np.isfinite(net) & (net > 0)
    idx = np.argwhere(valid)
    n = len(idx)
    if n == 0:
        return 0.0
    one = np.zeros((k, n))
    one[idx[:, 0], np.arange(n)] = 1
    cap = np.zeros((m, n))
    cap[idx[:, 1], np.arange(n)] = 1
    cons = [LinearConstraint(one, -np.inf, 1), LinearConstraint(cost[valid][None, :], -np.inf, budget)]
    fin = np.isfinite(caps)
    if fin.any():
        cons.append(LinearConstraint(cap[fin], -np.inf, caps[fin]))
    res = milp(-net[valid], constraints=cons, integrality=np.ones(n), bounds=Bounds(0, 1))
    return -res.fun


def random_instance(rng: np.random.Generator):
    """Customers x offers shaped like a campaign: value x risk x save rate against unit, fee and channel
    costs, some offers ineligible, some capped, a budget that binds."""
    k, m = int(rng.integers(40, 150)), int(rng.integers(2, 7))
    p, v = rng.beta(2, 3, k), rng.lognormal(5, 0.7, k)
    sr = rng.uniform(0.03, 0.4, m)
    unit, share = rng.choice([0.0, 2.0, 5.0, 12.0], m), rng.choice([0.0, 0.6, 1.0], m)
    fee = rng.choice([9.99, 19.99, 29.99], k)
    cost = unit[None, :] + share[None, :] * fee[:, None] + rng.choice([0.02, 0.05, 4.0], (k, 1))
    net = p[:, None] * v[:, None] * sr[None, :] - cost
    net[rng.random((k, m)) < 0.25] = -np.inf
    caps = np.where(rng.random(m) < 0.4, rng.integers(1, max(2, k // 4), m), np.inf).astype(float)
    worth = np.where(np.isfinite(net) & (net > 0), cost, 0).max(axis=1).sum()
    return net, cost, worth * rng.uniform(0.1, 0.9), caps


def assert_feasible(sol, net, cost, budget, caps):
    ch = sol.choice
    r = np.flatnonzero(ch >= 0)
    assert cost[r, ch[r]].sum() <= budget + 1e-9
    assert np.all(np.bincount(ch[r], minlength=net.shape[1]) <= caps)
    assert np.all(net[r, ch[r]] > 0)
    assert sol.value == pytest.approx(net[r, ch[r]].sum())


def test_solver_is_near_optimal_against_milp():
    rng = np.random.default_rng(20251123)
    ratios = []
    for _ in range(60):
        net, cost, budget, caps = random_instance(rng)
        sol = solve_mckp(net, cost, budget, caps)  # the heuristic alone (no exact fallback)
        assert_feasible(sol, net, cost, budget, caps)
        opt = exact_optimum(net, cost, budget, caps)
        if opt > 0:
            ratios.append(sol.value / opt)
    ratios = np.array(ratios)
    print(f"\nsolver / optimum over {ratios.size} instances: worst {ratios.min():.4f}, mean {ratios.mean():.5f}")
    assert ratios.min() >= 0.97
    assert ratios.mean() >= 0.995


def test_small_problems_are_solved_exactly_when_asked():
    rng = np.random.default_rng(3)
    for _ in range(10):
        net, cost, budget, caps = random_instance(rng)
        sol = solve_mckp(net, cost, budget, caps, exact_below=5_000)
        assert_feasible(sol, net, cost, budget, caps)
        assert sol.value == pytest.approx(exact_optimum(net, cost, budget, caps), rel=1e-6)


@settings(max_examples=settings.default.max_examples * 2 // 5)
@given(
    k=st.integers(1, 30), m=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
    budget_share=st.floats(0.0, 1.2), capped=st.booleans(),
)
def test_solver_is_always_exactly_feasible(k, m, seed, budget_share, capped):
    rng = np.random.default_rng(seed)
    cost = rng.choice([0.0, 0.5, 3.0, 10.0], (k, m)) * rng.uniform(0.5, 1.5, (k, m))
    net = rng.normal(2.0, 6.0, (k, m))
    net[rng.random((k, m)) < 0.2] = -np.inf
    caps = rng.integers(0, 4, m).astype(float) if capped else np.full(m, np.inf)
    budget = float(cost.sum(axis=1).max() * k * budget_share / 2)
    sol = solve_mckp(net, cost, budget, caps)
    assert_feasible(sol, net, cost, budget, caps)


def test_budget_multiplier_prices_the_control_group_like_the_treated():
    df = scores(3000, seed=8)
    cat = [incentive("a", unit_cost=3.0), incentive("b", unit_cost=9.0, cost_share_of_fee=1.0)]
    plan = plan_retention(df, config(cat, budget=1500.0, control_share=0.2), seed=3)
    c = plan.customers
    assert plan.summary.budget_multiplier > 0
    share_treated = c.loc[~c["holdout"] & c["marketing_consent"], "incentive"].notna().mean()
    share_held = c.loc[c["holdout"], "would_be_incentive"].notna().mean()
    assert abs(share_treated - share_held) < 0.08  # the control group would have been offered alike


# ---------------------------------------------------------------------------------------- scale
@pytest.mark.slow
def test_a_hundred_thousand_customers_keep_every_rule():
    """A hundred thousand customers (enough for the caps and the budget to bind): consent, one offer each,
    caps and the budget hold at scale. A million customers, and how long planning takes, are measured by
    benchmarks/score.py, not here."""
    n = 100_000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "customer_id": np.char.add("C", np.arange(n).astype(str)),
            "as_of": AS_OF,
            "churn_probability": rng.beta(1.2, 5.0, n),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "country": rng.choice(["DE", "SI", "LV", "TR"], n),
            "language": rng.choice(["en", "de", "sl", "lv", "tr", "fa"], n),
            "marketing_consent": rng.random(n) < 0.8,
            "monthly_fee": rng.choice([9.99, 19.99, 29.99], n),
        }
    )
    raw = yaml.safe_load((CONFIGS / "incentives.yaml").read_text(encoding="utf-8"))
    raw["budget"] = 20_000
    cfg = Config(incentives=IncentivesConfig.model_validate(raw))
    plan = plan_retention(df, cfg)
    c = plan.customers
    assert len(c) == n and c["customer_id"].is_unique
    sent = c["contact"].to_numpy(dtype=bool) & ~c["holdout"].to_numpy(dtype=bool)
    assert int(sent.sum()) == plan.summary.contacted > 1_000
    got = c[sent]
    assert got["marketing_consent"].all()
    offers = {o.name: o for o in cfg.incentives.catalogue}
    assert got["incentive"].isin(list(offers)).all() and c.loc[~sent, "incentive"].isna().all()
    for name, k in got["incentive"].value_counts().items():
        assert offers[name].max_customers is None or k <= offers[name].max_customers, name
    # Spend recomputed from the catalogue's prices and the channels' contact costs, not the plan's own column.
    unit = got["incentive"].map({k: o.unit_cost for k, o in offers.items()})
    share = got["incentive"].map({k: o.cost_share_of_fee for k, o in offers.items()})
    contact = got["channel"].map(cfg.incentives.channels.contact_cost).fillna(0.0)
    spend = float((unit + share * got["monthly_fee"] + contact).sum())
    assert spend <= 20_000 + 1e-6
    assert spend == pytest.approx(plan.summary.budget_used, rel=1e-9)
