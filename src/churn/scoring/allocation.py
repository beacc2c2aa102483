"""Budgeted retention plan: who gets which incentive, through which channel, and who is held out.

Steps (each a pure function of in-memory frames; `plan_retention` wires them):

1. tiers (`tiers.RiskTiers`) and customer value (`value.value_parts`, `value.value_from_revenue`);
   ``expected_loss = p x value``;
2. contact rules (`rules.contact_blocks`): exclusions, consent, cool-down, each with a reason;
3. control group (`control_group`): in every tier, ``floor(control_share x contactable + 0.5)`` contactable
   customers are held out, chosen by a seeded hash of their id (order-independent, stable when customers
   come and go);
4. options: for every contactable customer and eligible incentive (`rules.offer_eligible`),
   ``net = p x value x save_rate[tier] - (unit_cost + cost_share_of_fee x monthly revenue + contact cost)``
   (`offers.save_rates`, `offers.contact_costs`);
5. allocation (`knapsack.solve_mckp`): at most one incentive each, maximising total net value under the
   budget and per-incentive caps; options with net <= 0 are never given;
6. the control group's ``would_be_incentive``: the same prices (budget and cap multipliers) applied to them
   (`knapsack.prices_choice`);
7. channel (`customer_channels`) and message per contacted customer (`messages.render_messages`).

Steps 1, 2 and 4 read one customer at a time (`churn.scoring.plan_rows`); steps 1's cut points, 3 and 5 look
at everyone at once: given as `Decisions` when the rows are a part of a larger list (a Spark partition,
`churn.spark.plan`), they make the same plan. The catalogue is checked first (`offers.check_catalogue`); save rates measured in past campaigns (`effects`,
`churn.campaigns.learning`) replace the catalogue's where measured (`offers.with_measured_rates`), and an
uplift model's per-customer rates (`customer_save_rates`) replace the tier's rate for the offers it priced;
neither touches the contact rules or the control group. The summary (`summary.PlanSummary`) is built last.
The allocation is a multiple-choice knapsack, solved in `churn.scoring.knapsack` (see its docstring).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.scoring import offers, status
from churn.scoring.knapsack import MCKPSolution, prices_choice, solve_mckp
from churn.scoring.messages import render_messages
from churn.scoring.plan_rows import REASON_NO_SCORE, customer_channels, plan_rows  # noqa: F401 - re-exported
from churn.scoring.summary import IncentiveResult, PlanSummary, SaveRateUsed, TierControl, TierSize, WinBack
from churn.scoring.tiers import RiskTiers

EXACT_MAX_OPTIONS = 5_000  # campaigns with at most this many worthwhile (customer, offer) pairs: exact too
REASON_CONTROL = "control group"
REASON_NOT_ELIGIBLE = "not eligible for any incentive"
REASON_NOT_WORTH = "no offer worth its cost"
REASON_BUDGET = "budget exhausted"
REASON_CAP = "incentive cap reached"


@dataclass
class RetentionPlan:
    """Who gets which incentive: one row per customer, plus the typed summary (`summary.to_dict()` for JSON)."""

    customers: pd.DataFrame
    summary: PlanSummary = field(default_factory=PlanSummary)


def control_group(
    customer_id: pd.Series, tier_code: np.ndarray, contactable: np.ndarray, share: float, seed: int
) -> np.ndarray:
    """Hold out ``floor(share x n + 0.5)`` contactable customers in every tier (n: contactable in that tier).

    Who: the lowest values of a seeded 64-bit hash of ``seed`` and the customer id (ties by id), so the
    draw depends on neither row order nor on which other customers are in the list, and a customer's
    chance of landing in the control group is the same in every tier.
    """
    holdout = np.zeros(len(customer_id), dtype=bool)
    if share <= 0 or not contactable.any():
        return holdout
    h = control_keys(customer_id, seed)
    ids = customer_id.astype(str).to_numpy(dtype=object)
    for t in np.unique(tier_code[contactable]):
        rows = np.flatnonzero(contactable & (tier_code == t))
        k = math.floor(share * rows.size + 0.5)
        if k:
            order = np.lexsort((ids[rows], h[rows]))
            holdout[rows[order[:k]]] = True
    return holdout

def control_keys(customer_id: pd.Series, seed: int) -> np.ndarray:
    """Each customer's draw for the control group: a seeded 64-bit hash of ``seed`` and the id (uint64)."""
    keyed = (f"{int(seed)}\x1f" + customer_id.astype(str)).to_numpy(dtype=object)
    return pd.util.hash_array(keyed, categorize=False)


def held_out(customer_id: pd.Series, tier_code: np.ndarray, contactable: np.ndarray, seed: int,
             cuts: dict[int, tuple[int, str]]) -> np.ndarray:
    """`control_group` when the cut of every tier is known (a part of a larger list, on Spark): the
    contactable customers whose (draw, id) is at most their tier's cut, the last pair held out."""
    holdout = np.zeros(len(customer_id), dtype=bool)
    if not cuts or not contactable.any():
        return holdout
    h = control_keys(customer_id, seed)
    ids = customer_id.astype(str).to_numpy(dtype=object)
    for t, (h_cut, id_cut) in cuts.items():
        rows = np.flatnonzero(contactable & (tier_code == t))
        below = (h[rows] < np.uint64(h_cut)) | ((h[rows] == np.uint64(h_cut)) & (ids[rows] <= id_cut))
        holdout[rows[below]] = True
    return holdout


@dataclass
class Decisions:
    """The plan's steps that look at every customer at once, decided for the whole list when the rows at
    hand are only a part of it (a Spark partition): the tiers' cut points, each tier's control-group cut
    (`held_out`), the allocation's choice per customer and its prices, and how many customers each offer
    went to."""

    tiers: RiskTiers
    control_cuts: dict[int, tuple[int, str]]  # tier code -> (draw, id) of the last customer held out
    choice: dict[str, int]  # customer id -> index of the offer given (treated customers given one)
    solution: MCKPSolution  # its prices (budget and cap multipliers), spend and value; `choice` unused
    given: np.ndarray  # customers per offer in the whole plan


def _reason_group(reason: str | None) -> str | None:
    """Cool-down reasons carry a day count; the summary counts them together."""
    if isinstance(reason, str) and reason.startswith("contacted "):
        return "recently contacted (cool-down)"
    return reason


def plan_retention(
    scores: pd.DataFrame,
    config: Config,
    *,
    contact_history: pd.DataFrame | None = None,
    exclusions: pd.DataFrame | None = None,
    seed: int = 42,
    effects: Any | None = None,
    customer_save_rates: pd.DataFrame | None = None,
    decisions: Decisions | None = None,
) -> RetentionPlan:
    """The retention plan for a scored list: tiers, value, rules, control group, incentives, messages.

    Rows come back in customer-id order; the input's ``channel`` (preferred channel) is kept as
    ``preferred_channel`` and ``channel`` becomes the contact channel. Same input (in any row order) and
    seed give the same plan. `effects` (`churn.campaigns.learning.Effects`) and `customer_save_rates`
    (customer_id and one column per offer: a save rate per customer, NaN for none) change what offers are
    expected to save; the summary's `save_rates` then says which rates were measured and which assumed.
    `decisions`: the steps across all customers decided for a larger list these rows are part of.
    """
    r = plan_rows(scores, config, tiers=decisions.tiers if decisions else None, contact_history=contact_history,
                  exclusions=exclusions, effects=effects, customer_save_rates=customer_save_rates)
    df, n, m, rows, reason, contactable = r.df, r.n, len(r.catalogue), r.rows, r.reason, r.contactable

    # 3. control group
    if decisions is None:
        holdout = control_group(df["customer_id"], r.tier_code, contactable, r.config.incentives.control_share,
                                seed)
    else:
        holdout = held_out(df["customer_id"], r.tier_code, contactable, seed, decisions.control_cuts)
    reason[holdout] = REASON_CONTROL
    net, cost, gain = r.net, r.cost, r.gain
    caps = np.array([np.inf if i.max_customers is None else float(i.max_customers) for i in r.catalogue])

    # 5. allocation for the treated; 6. the control group's would-be incentive at the same prices
    treated = ~holdout[rows]
    t_idx = np.flatnonzero(treated)
    h_idx = np.flatnonzero(~treated)
    budget = max(float(r.config.incentives.budget), 0.0)
    choice = np.full(rows.size, -1, dtype=np.int64)
    if decisions is not None:
        sol = decisions.solution
        picked = df["customer_id"].iloc[rows[t_idx]].map(decisions.choice)
        choice[t_idx] = picked.fillna(-1).to_numpy(dtype=np.int64)
        counts = np.asarray(decisions.given, dtype=np.int64)
    else:
        sol = solve_mckp(net[t_idx], cost[t_idx], budget, caps, exact_below=EXACT_MAX_OPTIONS) if m else (
            MCKPSolution(np.full(t_idx.size, -1), 0.0, np.zeros(0), 0.0, 0.0))
        choice[t_idx] = sol.choice
        counts = np.bincount(choice[choice >= 0], minlength=m) if m else np.zeros(0, dtype=int)
    would = choice.copy()
    if m and h_idx.size:
        h_net = np.where(cost[h_idx] <= budget, net[h_idx], -np.inf)
        would[h_idx] = prices_choice(h_net, cost[h_idx], sol.budget_multiplier, sol.cap_multipliers)

    # Reasons for contactable, treated customers who get nothing.
    positive = (net > 0).any(axis=1)
    full = counts >= caps
    open_option = ((net > 0) & ~full[None, :]).any(axis=1) if m else np.zeros(rows.size, dtype=bool)
    left_out = treated & (choice < 0)
    reason[rows[left_out & ~r.eligible_any]] = REASON_NOT_ELIGIBLE
    reason[rows[left_out & r.eligible_any & ~positive]] = REASON_NOT_WORTH
    reason[rows[left_out & positive & ~open_option]] = REASON_CAP
    reason[rows[left_out & positive & open_option]] = REASON_BUDGET

    # 7. assemble: incentive, channel, money columns
    catalogue, channel = r.catalogue, r.channel
    names = np.array([i.name for i in catalogue] + [None], dtype=object)  # index -1 -> None
    forced = np.array([offers.forced_channel(i) for i in catalogue] + [None], dtype=object)
    incentive = np.full(n, None, dtype=object)
    would_be = np.full(n, None, dtype=object)
    out_channel = np.full(n, None, dtype=object)
    inc_cost = np.zeros(n)
    saved = np.zeros(n)
    net_val = np.zeros(n)
    given = choice >= 0
    incentive[rows[given]] = names[choice[given]]
    would_be[rows] = names[would]
    has_would = would >= 0
    ch_rows = rows[has_would]
    f = forced[would[has_would]]
    out_channel[ch_rows] = np.where(pd.isna(f), channel[ch_rows], f)
    out_channel[r.win_back] = channel[r.win_back]
    gi = np.flatnonzero(given)
    inc_cost[rows[gi]] = cost[gi, choice[gi]]
    saved[rows[gi]] = gain[gi, choice[gi]]
    net_val[rows[gi]] = net[gi, choice[gi]]
    contact = np.zeros(n, dtype=bool)
    contact[rows[given]] = True

    out = df
    out["status"] = pd.Series(r.row_status, index=out.index, dtype=object)
    out["risk_tier"] = r.tier.array
    out["customer_value"] = r.value
    out["value_basis"] = pd.Series(r.basis.to_numpy(dtype=object), index=out.index, dtype=object)
    out["expected_loss"] = r.expected_loss
    out["incentive"] = pd.Series(incentive, index=out.index, dtype=object)
    out["would_be_incentive"] = pd.Series(would_be, index=out.index, dtype=object)
    out["channel"] = pd.Series(out_channel, index=out.index, dtype=object)
    out["contact"] = contact
    out["holdout"] = holdout
    out["incentive_cost"] = inc_cost
    out["expected_saved_value"] = saved
    out["expected_net_value"] = net_val
    out["no_contact_reason"] = pd.Series(reason, index=out.index, dtype=object)
    out["win_back"] = r.win_back

    inc_cfg = r.config.incentives
    rendered = render_messages(
        out.loc[contact],
        {i.name: i.messages for i in catalogue},
        default_language=inc_cfg.default_language,
        currency=inc_cfg.currency,
    )
    message = np.full(n, None, dtype=object)
    language = np.full(n, None, dtype=object)
    message[contact] = rendered.message.to_numpy(dtype=object)
    language[contact] = rendered.language.to_numpy(dtype=object)
    out["offer_message"] = pd.Series(message, index=out.index, dtype=object)
    out["message_language"] = pd.Series(language, index=out.index, dtype=object)

    grouped = np.array([_reason_group(x) for x in reason], dtype=object)
    summary = _summary(out, r.config, r.tiers, sol, rendered, catalogue, caps, contactable, r.warnings,
                       status_counts=status.status_counts(r.row_status),
                       win_back=status.win_back_summary(r.row_status, r.win_back, grouped))
    if r.used_rates:
        summary = replace(summary, save_rates=_rates_used(r.used_rates, r.own, r.tier, contactable))
    return RetentionPlan(customers=out, summary=summary)


def _rates_used(used: dict, own: dict[str, np.ndarray], tier: pd.Series, contactable: np.ndarray
                ) -> dict[str, dict[str, SaveRateUsed]]:
    """The summary's save_rates: per offer and tier the rate used (`offers.with_measured_rates`), the
    catalogue's, the source and measurement, and how many contactable customers of the tier were priced
    with a rate of their own."""
    tiers = tier.astype(object).to_numpy()
    out: dict[str, dict[str, SaveRateUsed]] = {}
    for inc, by_tier in used.items():
        for t, r in by_tier.items():
            mine = own.get(inc)
            priced = int((np.isfinite(mine) & contactable & (tiers == t)).sum()) if mine is not None else 0
            out.setdefault(inc, {})[t] = SaveRateUsed(
                r.rate, r.assumed, r.source, priced, r.measured, r.measured_low, r.measured_high, r.treated,
                r.control, r.data_weight, r.detectable_save_rate)
    return out


def _summary(out, config, tiers, sol, rendered, catalogue, caps, contactable, warnings, *,
             status_counts: dict[str, int], win_back: WinBack) -> PlanSummary:
    """Budget, per-incentive results, reasons, control group and message problems (plain Python numbers)."""
    inc_cfg = config.incentives
    contact = out["contact"].to_numpy()
    holdout = out["holdout"].to_numpy()
    per_incentive: dict[str, IncentiveResult] = {}
    for j, inc in enumerate(catalogue):
        sel = contact & (out["incentive"] == inc.name).to_numpy()
        per_incentive[inc.name] = IncentiveResult(
            customers=int(sel.sum()),
            cost=float(out.loc[sel, "incentive_cost"].sum()),
            expected_saved_value=float(out.loc[sel, "expected_saved_value"].sum()),
            expected_net_value=float(out.loc[sel, "expected_net_value"].sum()),
            max_customers=None if not np.isfinite(caps[j]) else int(caps[j]),
            control_group_would_get=int((holdout & (out["would_be_incentive"] == inc.name).to_numpy()).sum()),
        )
    reasons: Counter = Counter()
    for r, k in out["no_contact_reason"].value_counts(dropna=True).items():
        reasons[_reason_group(r)] += int(k)
    tier_names = list(tiers.tier_names_)
    tier_vals = out["risk_tier"].astype(object).to_numpy()
    by_tier = {t: TierControl(contactable=int((contactable & (tier_vals == t)).sum()),
                              holdout=int((holdout & (tier_vals == t)).sum())) for t in tier_names}
    tier_sizes = {
        t: TierSize(customers=int((tier_vals == t).sum()), min_probability=float(th) if np.isfinite(th) else None)
        for t, th in zip(tier_names, tiers.thresholds_)
    }
    problems = {
        "unknown_placeholders": rendered.unknown_placeholders,
        "template_errors": rendered.template_errors,
        "incentives_without_messages": rendered.incentives_without_messages,
    }
    return PlanSummary(
        currency=inc_cfg.currency,
        budget=float(inc_cfg.budget),
        budget_used=float(out["incentive_cost"].sum()),
        budget_multiplier=float(sol.budget_multiplier),
        customers=len(out),
        contactable=int(contactable.sum()),
        control_group=int(holdout.sum()),
        contacted=int(contact.sum()),
        expected_saved_value=float(out["expected_saved_value"].sum()),
        expected_net_value=float(out["expected_net_value"].sum()),
        incentives=per_incentive,
        no_contact_reasons=dict(sorted(reasons.items())),
        control_group_by_tier=by_tier,
        tiers=tier_sizes,
        channels={str(k): int(v) for k, v in out.loc[contact, "channel"].value_counts().sort_index().items()},
        missing_translations={str(k): int(v) for k, v in sorted(rendered.missing_translations.items())},
        warnings=warnings,
        message_problems={k: v for k, v in problems.items() if v},
        status_counts=status_counts,
        win_back=win_back,
    )