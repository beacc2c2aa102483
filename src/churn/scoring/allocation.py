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

The catalogue is checked first (`offers.check_catalogue`); save rates measured in past campaigns (`effects`,
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

from churn.config import ChannelsConfig, Config
from churn.errors import ChurnError
from churn.scoring import offers, rules, status
from churn.scoring.knapsack import MCKPSolution, prices_choice, solve_mckp
from churn.scoring.messages import normalise_language, render_messages
from churn.scoring.summary import IncentiveResult, PlanSummary, SaveRateUsed, TierControl, TierSize, WinBack
from churn.scoring.tiers import RiskTiers
from churn.scoring.value import value_from_revenue, value_parts

EXACT_MAX_OPTIONS = 5_000  # campaigns with at most this many worthwhile (customer, offer) pairs: exact too
REASON_NO_SCORE = status.STATUS_TEXT[status.NO_SCORE]
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


def _prepare(scores: pd.DataFrame) -> pd.DataFrame:
    """Validate the scored list and put it in customer-id order (so row order never matters)."""
    missing = [c for c in ("customer_id", "churn_probability") if c not in scores.columns]
    if missing:
        raise ChurnError(f"scores: missing column(s) {missing}; has {list(scores.columns)[:15]}")
    df = scores.copy(deep=False)  # adds columns only; copy-on-write protects the caller's frame
    if df["customer_id"].isna().any():
        raise ChurnError(f"scores: column 'customer_id' has {int(df['customer_id'].isna().sum()):,} empty value(s)")
    df["customer_id"] = df["customer_id"].astype(str).str.strip()
    dup = df["customer_id"].duplicated(keep=False)
    if dup.any():
        ex = ", ".join(df.loc[dup, "customer_id"].drop_duplicates().head(3))
        raise ChurnError(
            f"scores: column 'customer_id' repeats {int(dup.sum()):,} row(s); one row per customer, e.g. {ex}"
        )
    p = pd.to_numeric(df["churn_probability"], errors="coerce")
    bad = p.notna() & ((p < 0) | (p > 1))
    if bad.any():
        ex = ", ".join(f"{c}={v}" for c, v in zip(df.loc[bad, "customer_id"].head(3), p[bad].head(3)))
        raise ChurnError(
            f"scores: column 'churn_probability' must lie in [0, 1]; {int(bad.sum()):,} row(s) do not, e.g. {ex}"
        )
    df["churn_probability"] = p.astype(float)
    if "channel" in df.columns:
        df = df.rename(columns={"channel": "preferred_channel"})
    df = df.sort_values("customer_id", kind="stable").reset_index(drop=True)
    return df


def _map_unique(values: pd.Series, fn) -> np.ndarray:
    """Apply `fn` to each distinct value only (millions of rows, a handful of languages or regions)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([fn(u) for u in uniques] + [None], dtype=object)
    return mapped[codes]  # code -1 (missing) picks the trailing None


def customer_channels(df: pd.DataFrame, channels: ChannelsConfig) -> np.ndarray:
    """Contact channel per customer: preferred channel, else by language, else by region, else default."""
    n = len(df)
    out = np.full(n, channels.default.strip().lower(), dtype=object)
    if channels.by_region and "region" in df.columns:
        table = {str(k).strip().casefold(): v.strip().lower() for k, v in channels.by_region.items()}
        hit = _map_unique(df["region"], lambda r: table.get(str(r).strip().casefold()))
        m = pd.notna(hit)
        out[m] = hit[m]
    if channels.by_language and "language" in df.columns:
        table = {normalise_language(k): v.strip().lower() for k, v in channels.by_language.items()}

        def by_language(lang: object) -> str | None:
            key = normalise_language(lang)
            if key is None:
                return None
            return table.get(key) or table.get(key.split("-")[0])

        hit = _map_unique(df["language"], by_language)
        m = pd.notna(hit)
        out[m] = hit[m]
    if "preferred_channel" in df.columns:
        hit = _map_unique(df["preferred_channel"], lambda c: str(c).strip().lower() or None)
        m = pd.notna(hit)
        out[m] = hit[m]
    return out


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
    keyed = (f"{int(seed)}\x1f" + customer_id.astype(str)).to_numpy(dtype=object)
    h = pd.util.hash_array(keyed, categorize=False)
    ids = customer_id.astype(str).to_numpy(dtype=object)
    for t in np.unique(tier_code[contactable]):
        rows = np.flatnonzero(contactable & (tier_code == t))
        k = math.floor(share * rows.size + 0.5)
        if k:
            order = np.lexsort((ids[rows], h[rows]))
            holdout[rows[order[:k]]] = True
    return holdout

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
) -> RetentionPlan:
    """The retention plan for a scored list: tiers, value, rules, control group, incentives, messages.

    Rows come back in customer-id order; the input's ``channel`` (preferred channel) is kept as
    ``preferred_channel`` and ``channel`` becomes the contact channel. Same input (in any row order) and
    seed give the same plan. `effects` (`churn.campaigns.learning.Effects`) and `customer_save_rates`
    (customer_id and one column per offer: a save rate per customer, NaN for none) change what offers are
    expected to save; the summary's `save_rates` then says which rates were measured and which assumed.
    """
    offers.check_catalogue(config)
    used_rates: dict = {}
    if effects is not None or customer_save_rates is not None:
        config, used_rates = offers.with_measured_rates(config, effects)
    inc_cfg = config.incentives
    df = _prepare(scores)
    n = len(df)
    p = df["churn_probability"].to_numpy(dtype=float)
    warnings: list[str] = []

    # 1. tiers and value
    tiers = RiskTiers(config.tiers).fit(df["churn_probability"])
    tier = tiers.transform(df["churn_probability"])
    tier_code = tier.cat.codes.to_numpy()
    revenue_s, basis = value_parts(df, config.value)
    value = value_from_revenue(revenue_s, config.value).to_numpy(dtype=float)
    revenue = revenue_s.to_numpy(dtype=float)
    expected_loss = np.nan_to_num(p * value, nan=0.0)

    # 2. contact rules; rows without a score get none of the retention plan, and lapsed ones that the
    # rules allow to be contacted form the win-back list
    reason = rules.contact_blocks(
        df, cooldown_days=inc_cfg.cooldown_days, contact_history=contact_history, exclusions=exclusions
    ).to_numpy(dtype=object, copy=True)
    row_status = status.statuses_of(df, p)
    reason[np.isnan(p) & (row_status == status.SCORED)] = REASON_NO_SCORE
    reason, win_back = status.unscored_reasons(row_status, reason)
    if "marketing_consent" not in df.columns:
        warnings.append(rules.NO_CONSENT_COLUMN)
    contactable = np.array([r is None for r in reason], dtype=bool)

    # 3. control group
    holdout = control_group(df["customer_id"], tier_code, contactable, inc_cfg.control_share, seed)
    reason[holdout] = REASON_CONTROL

    # 4. options for contactable customers: net value and cost per incentive
    catalogue = inc_cfg.catalogue
    m = len(catalogue)
    rows = np.flatnonzero(contactable)
    sub = df.iloc[rows]
    channel = customer_channels(df, inc_cfg.channels)
    contact_cost = offers.channel_prices(inc_cfg.channels)
    cust_contact = pd.Series(channel[rows]).map(contact_cost).fillna(0.0).to_numpy(dtype=float)
    net = np.full((rows.size, m), -np.inf)
    cost = np.zeros((rows.size, m))
    gain = np.zeros((rows.size, m))
    eligible_any = np.zeros(rows.size, dtype=bool)
    sub_tier = tier.iloc[rows].reset_index(drop=True)
    sub = sub.reset_index(drop=True)
    own = _own_rates(df["customer_id"], customer_save_rates, [i.name for i in catalogue])
    for j, inc in enumerate(catalogue):
        elig = rules.offer_eligible(sub, inc, sub_tier, value[rows])
        eligible_any |= elig
        cost[:, j] = offers.contact_costs(inc, revenue[rows], cust_contact, contact_cost)
        mine = own[inc.name][rows] if inc.name in own else None
        gain[:, j] = p[rows] * value[rows] * offers.save_rates(inc, sub_tier, mine)
        net[:, j] = np.where(elig, gain[:, j] - cost[:, j], -np.inf)
    caps = np.array([np.inf if i.max_customers is None else float(i.max_customers) for i in catalogue])

    # 5. allocation for the treated; 6. the control group's would-be incentive at the same prices
    treated = ~holdout[rows]
    t_idx = np.flatnonzero(treated)
    h_idx = np.flatnonzero(~treated)
    budget = max(float(inc_cfg.budget), 0.0)
    sol = solve_mckp(net[t_idx], cost[t_idx], budget, caps, exact_below=EXACT_MAX_OPTIONS) if m else MCKPSolution(
        np.full(t_idx.size, -1), 0.0, np.zeros(0), 0.0, 0.0
    )
    choice = np.full(rows.size, -1, dtype=np.int64)
    choice[t_idx] = sol.choice
    would = choice.copy()
    if m and h_idx.size:
        h_net = np.where(cost[h_idx] <= budget, net[h_idx], -np.inf)
        would[h_idx] = prices_choice(h_net, cost[h_idx], sol.budget_multiplier, sol.cap_multipliers)

    # Reasons for contactable, treated customers who get nothing.
    positive = (net > 0).any(axis=1)
    counts = np.bincount(choice[choice >= 0], minlength=m) if m else np.zeros(0, dtype=int)
    full = counts >= caps
    open_option = ((net > 0) & ~full[None, :]).any(axis=1) if m else np.zeros(rows.size, dtype=bool)
    left_out = treated & (choice < 0)
    reason[rows[left_out & ~eligible_any]] = REASON_NOT_ELIGIBLE
    reason[rows[left_out & eligible_any & ~positive]] = REASON_NOT_WORTH
    reason[rows[left_out & positive & ~open_option]] = REASON_CAP
    reason[rows[left_out & positive & open_option]] = REASON_BUDGET

    # 7. assemble: incentive, channel, money columns
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
    out_channel[win_back] = channel[win_back]
    gi = np.flatnonzero(given)
    inc_cost[rows[gi]] = cost[gi, choice[gi]]
    saved[rows[gi]] = gain[gi, choice[gi]]
    net_val[rows[gi]] = net[gi, choice[gi]]
    contact = np.zeros(n, dtype=bool)
    contact[rows[given]] = True

    out = df
    out["status"] = pd.Series(row_status, index=out.index, dtype=object)
    out["risk_tier"] = tier.array
    out["customer_value"] = value
    out["value_basis"] = pd.Series(basis.to_numpy(dtype=object), index=out.index, dtype=object)
    out["expected_loss"] = expected_loss
    out["incentive"] = pd.Series(incentive, index=out.index, dtype=object)
    out["would_be_incentive"] = pd.Series(would_be, index=out.index, dtype=object)
    out["channel"] = pd.Series(out_channel, index=out.index, dtype=object)
    out["contact"] = contact
    out["holdout"] = holdout
    out["incentive_cost"] = inc_cost
    out["expected_saved_value"] = saved
    out["expected_net_value"] = net_val
    out["no_contact_reason"] = pd.Series(reason, index=out.index, dtype=object)
    out["win_back"] = win_back

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

    grouped = np.array([_reason_group(r) for r in reason], dtype=object)
    summary = _summary(out, config, tiers, sol, rendered, catalogue, caps, contactable, warnings,
                       status_counts=status.status_counts(row_status),
                       win_back=status.win_back_summary(row_status, win_back, grouped))
    if used_rates:
        summary = replace(summary, save_rates=_rates_used(used_rates, own, tier, contactable))
    return RetentionPlan(customers=out, summary=summary)


def _own_rates(ids: pd.Series, table: pd.DataFrame | None, names: list[str]) -> dict[str, np.ndarray]:
    """Per offer, each customer's own save rate from `table` (customer_id + a column per offer) aligned to
    `ids`; NaN where the table has none. Offers without a column are left out."""
    if table is None:
        return {}
    if "customer_id" not in table.columns:
        raise ChurnError(f"customer save rates: need a 'customer_id' column; have {list(table.columns)[:10]}")
    keyed = table.assign(customer_id=table["customer_id"].astype(str).str.strip()).drop_duplicates("customer_id")
    keyed = keyed.set_index("customer_id").reindex(ids.astype(str).to_numpy())
    return {n: pd.to_numeric(keyed[n], errors="coerce").to_numpy(dtype=float) for n in names if n in keyed.columns}


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