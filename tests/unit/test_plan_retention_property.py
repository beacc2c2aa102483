"""Property tests of `plan_retention` on random campaigns (issue 16).

Random customers (risk, fee, consent, exclusions, past contacts), a random catalogue (costs, caps, forced
call channel, save rates) and random rules (budget, control share, cool-down). Whatever is drawn:

- nobody is contacted without consent, while excluded, within the cool-down, or while in the control group;
- the control group of every tier is its share of that tier's contactable customers, to within half a person;
- no incentive is given more often than its cap, and each contacted customer gets exactly one;
- spend, recomputed here from the catalogue's prices and the channel's contact cost, never exceeds the budget;
- every offer's expected net value, recomputed here (probability x fee x 24 months x the tier's save rate,
  minus its cost), is the plan's and is positive;
- a plan contacts somebody whenever some customer the rules and the control group leave free has an offer
  worth more than it costs that fits the budget and its cap: an empty plan must be the only possible one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from churn.config import ChannelsConfig, Config, Eligibility, Incentive, IncentivesConfig, ValueConfig
from churn.scoring.allocation import plan_retention

AS_OF = pd.Timestamp("2025-03-01")
TIERS = ["critical", "high", "medium", "low"]
EMAIL, CALL = 0.05, 4.0


@st.composite
def campaigns(draw: st.DrawFn) -> dict:
    """A random scored list, contact history, exclusions and incentive configuration."""
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    consent_kind = draw(st.sampled_from(["bool", "text", "mixed"]))
    consent = rng.choice([True, False, None], n, p=[0.6, 0.25, 0.15])
    if consent_kind == "text":
        consent = np.array([{True: "Yes", False: "no", None: ""}[c] for c in consent], dtype=object)
    elif consent_kind == "mixed":
        consent = np.array([{True: rng.choice(["y", "1", "TRUE"]), False: rng.choice(["n", "0"]), None: None}[c]
                            for c in consent], dtype=object)
    ids = [f"{rng.integers(0, 10**6):07d}-{i}" for i in range(n)]
    scores = pd.DataFrame({
        "customer_id": ids,
        "as_of": AS_OF,
        "churn_probability": rng.beta(2, 2, n).round(4),
        "monthly_fee": rng.choice([0.0, 20.0, 80.0, 150.0], n, p=[0.1, 0.3, 0.3, 0.3]),
        "language": "en",
        "marketing_consent": pd.Series(consent, dtype=object),
    })
    excluded = [i for i in ids if rng.random() < 0.15]
    contacted = [i for i in ids if rng.random() < 0.3]
    history = pd.DataFrame({
        "customer_id": contacted,
        # -5 .. 90 days before as_of (negative: a contact after the scoring date)
        "contacted_at": [AS_OF - pd.Timedelta(days=int(d)) for d in rng.integers(-5, 91, len(contacted))],
    })
    m = draw(st.integers(1, 4))
    catalogue = []
    for j in range(m):
        rates = {t: float(r) for t, r in zip(TIERS, rng.uniform(0, 0.6, 4)) if rng.random() < 0.85}
        catalogue.append(Incentive(
            name=f"offer_{j}", kind="discount",
            unit_cost=float(rng.choice([0.0, 1.0, 5.0, 30.0])),
            cost_share_of_fee=float(rng.choice([0.0, 0.5, 1.0])),
            save_rate=rates or {"critical": 0.3},
            max_customers=None if rng.random() < 0.4 else int(rng.integers(0, 8)),
            channel="call" if rng.random() < 0.25 else None,
            eligible=Eligibility(min_value=None if rng.random() < 0.7 else float(rng.choice([50, 500]))),
            messages={"en": "Hi {first_name}"},
        ))
    inc = IncentivesConfig(
        budget=draw(st.sampled_from([0.0, 3.0, 25.0, 200.0, 1e6])),
        control_share=draw(st.sampled_from([0.0, 0.1, 0.25, 0.5])),
        cooldown_days=draw(st.sampled_from([0, 7, 30, 60])),
        channels=ChannelsConfig(default="email", contact_cost={"email": EMAIL, "call": CALL}),
        catalogue=catalogue,
    )
    config = Config(incentives=inc, value=ValueConfig(lifetime_months=24))
    return {"scores": scores, "history": history, "excluded": excluded, "config": config, "seed": seed}


def _consented(v: object) -> bool:
    return v is True or v in ("Yes", "y", "1", "TRUE")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(campaigns())
def test_plan_respects_rules_caps_and_budget(c: dict) -> None:
    cfg: Config = c["config"]
    inc = cfg.incentives
    exclusions = pd.DataFrame({"customer_id": c["excluded"]})
    plan = plan_retention(c["scores"], cfg, contact_history=c["history"], exclusions=exclusions,
                          seed=c["seed"] % 1000).customers
    inp = c["scores"].set_index("customer_id")
    last = c["history"].groupby("customer_id")["contacted_at"].max()
    contact = plan["contact"].to_numpy(dtype=bool)
    holdout = plan["holdout"].to_numpy(dtype=bool)
    ids = plan["customer_id"]

    consent = ids.map(lambda i: _consented(inp.at[i, "marketing_consent"])).to_numpy(dtype=bool)
    excluded = ids.isin(c["excluded"]).to_numpy()
    days = ids.map(lambda i: (AS_OF - last[i]).days if i in last.index else np.nan).to_numpy(dtype=float)
    cooling = (inc.cooldown_days > 0) & ~np.isnan(days) & (days < inc.cooldown_days)
    rules_allow = consent & ~excluded & ~cooling

    # Contact rules, and the control group is never contacted.
    assert not (contact & ~consent).any()
    assert not (contact & excluded).any()
    assert not (contact & cooling).any()
    assert not (contact & holdout).any()
    assert not (holdout & ~rules_allow).any()
    # The control group: the share of each tier's contactable customers, rounded to the nearest person.
    for tier in plan["risk_tier"].dropna().unique():
        in_tier = (plan["risk_tier"] == tier).to_numpy()
        n = int((in_tier & rules_allow).sum())
        assert abs(int((in_tier & holdout).sum()) - inc.control_share * n) <= 0.5 + 1e-9

    # One incentive per contacted customer; nobody else gets one; caps hold.
    given_to = plan["incentive"].where(plan["contact"])
    assert given_to.notna().to_numpy().tolist() == contact.tolist()
    counts = given_to.value_counts()
    for offer in inc.catalogue:
        if offer.max_customers is not None:
            assert counts.get(offer.name, 0) <= offer.max_customers

    # Spend from the catalogue's prices: unit cost + share of the monthly fee + the contact's channel cost;
    # the value kept: probability x fee x 24 months (a free plan with no spend is worth nothing).
    prices = {o.name: o for o in inc.catalogue}

    def cost_of(o: Incentive, fee: float) -> float:
        return o.unit_cost + o.cost_share_of_fee * fee + (CALL if o.channel == "call" else EMAIL)

    def net_of(o: Incentive, row: int) -> float | None:
        """Expected net value of offer `o` for plan row `row`, None when it may not be offered there."""
        tier, fee = plan.at[row, "risk_tier"], float(inp.at[ids[row], "monthly_fee"])
        value = fee * 24.0 if fee > 0 else 0.0
        if tier not in o.save_rate or (o.eligible.min_value is not None and value < o.eligible.min_value):
            return None
        return float(inp.at[ids[row], "churn_probability"]) * value * o.save_rate[tier] - cost_of(o, fee)

    spend = 0.0
    for cid, name in given_to.dropna().items():
        o = prices[name]
        cost = cost_of(o, float(inp.at[ids[cid], "monthly_fee"]))
        assert abs(plan.at[cid, "incentive_cost"] - cost) < 1e-9
        assert abs(plan.at[cid, "expected_net_value"] - net_of(o, cid)) < 1e-6
        assert plan.at[cid, "expected_net_value"] > 0
        spend += cost
    assert spend <= inc.budget + 1e-9
    # An empty plan only where nothing was possible.
    free = np.flatnonzero(rules_allow & ~holdout)
    possible = any((net := net_of(o, r)) is not None and net > 1e-9
                   and cost_of(o, float(inp.at[ids[r], "monthly_fee"])) <= inc.budget
                   and (o.max_customers is None or o.max_customers > 0)
                   for r in free for o in inc.catalogue)
    assert contact.any() or not possible, "a plan that could contact somebody contacted nobody"
    # What the draws exercised (pytest --hypothesis-show-statistics): not only empty plans.
    event(f"contacted: {'none' if not contact.any() else 'some'}; control group: {'none' if not holdout.any() else 'some'}"
          f"; budget binding: {spend > 0.5 * inc.budget}")
