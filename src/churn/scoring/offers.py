"""The incentive catalogue as the retention plan reads it, once: checked before any work, then what an offer
saves and costs.

For a customer of tier ``t`` with monthly revenue ``r`` contacted through a channel priced ``c``, incentive
``i`` saves ``save_rate[t]`` of the churners (`save_rates`) and costs
``unit_cost + cost_share_of_fee x r + c`` (`contact_costs`; an incentive that forces a channel, such as a
personal call, is priced at that channel). The plan (`churn.scoring.allocation`) prices every
(customer, offer) pair with these; `tier_terms` summarises them per tier for training's profit curve
(`churn.training.metrics.incentive_economics`), so both read the catalogue the same way.

Save rates measured in past campaigns (an effects file, `churn.campaigns.learning`) replace the catalogue's
here too (`with_measured_rates`), so the plan, its summary and the profit curve read one catalogue; an
uplift model's per-customer rates enter through `save_rates`' `per_customer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.config import ChannelsConfig, Config, Incentive
from churn.errors import ChurnError
from churn.scoring.rules import offered_in_tier

if TYPE_CHECKING:
    from churn.campaigns.learning import Effects, LearnedRate


def check_catalogue(config: Config) -> None:
    """Catch catalogue mistakes before any work: duplicate names, unknown tiers, negative costs."""
    inc = config.incentives
    tiers = [lv.name for lv in config.tiers.levels]
    where = "incentives"
    problems: list[str] = []
    if not 0.0 <= inc.control_share < 1.0:
        problems.append(f"control_share must be in [0, 1), got {inc.control_share}")
    if inc.budget < 0:
        problems.append(f"budget must not be negative, got {inc.budget}")
    for ch, cost in inc.channels.contact_cost.items():
        if cost < 0:
            problems.append(f"channels.contact_cost.{ch} must not be negative, got {cost}")
    names = [i.name for i in inc.catalogue]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"incentive names must be unique; repeated: {dupes}")
    for i in inc.catalogue:
        if i.unit_cost < 0 or i.cost_share_of_fee < 0:
            problems.append(f"incentive '{i.name}': unit_cost and cost_share_of_fee must not be negative")
        if i.max_customers is not None and i.max_customers < 0:
            problems.append(f"incentive '{i.name}': max_customers must not be negative")
        unknown = sorted(set(i.save_rate) - set(tiers))
        if unknown:
            problems.append(f"incentive '{i.name}': save_rate names unknown tier(s) {unknown}; tiers are {tiers}")
        bad = {k: v for k, v in i.save_rate.items() if not 0.0 <= v <= 1.0}
        if bad:
            problems.append(f"incentive '{i.name}': save_rate values must be in [0, 1], got {bad}")
        if i.eligible.tiers is not None:
            unknown = sorted(set(i.eligible.tiers) - set(tiers))
            if unknown:
                problems.append(f"incentive '{i.name}': eligible.tiers names unknown tier(s) {unknown}")
    if problems:
        raise ChurnError(f"{where}: the catalogue is invalid:\n" + "\n".join(f"  - {p}" for p in problems))


def channel_prices(channels: ChannelsConfig) -> dict[str, float]:
    """The price of one contact per channel, keyed by channel name (stripped, lower case)."""
    return {k.strip().lower(): float(v) for k, v in channels.contact_cost.items()}


def forced_channel(inc: Incentive) -> str | None:
    """The channel an incentive must go through (a personal call is a call), or None: the customer's own."""
    return inc.channel.strip().lower() if inc.channel else None


def save_rates(inc: Incentive, tier: pd.Series, per_customer: np.ndarray | None = None) -> np.ndarray:
    """The incentive's save rate for each row's tier; 0 where it names none for that tier. `per_customer`
    (a rate per row, NaN where there is none; from an uplift model) replaces the tier's rate where given and
    the tier has one, clipped to [0, 1]."""
    rates = tier.astype(object).map(inc.save_rate).astype(float).fillna(0.0).to_numpy()
    if per_customer is not None:
        own = np.asarray(per_customer, dtype=float)
        use = np.isfinite(own) & tier.astype(object).isin(list(inc.save_rate)).to_numpy()
        rates = np.where(use, np.clip(np.nan_to_num(own), 0.0, 1.0), rates)
    return rates


def with_measured_rates(config: Config, effects: Effects | None
                        ) -> tuple[Config, dict[str, dict[str, LearnedRate]]]:
    """(config whose catalogue carries the measured save rates, {incentive: {tier: the rate used and where
    it comes from}}).

    Only the rates the catalogue already names are replaced, and only by measured ones (clipped to [0, 1]:
    an offer that does harm is simply never worth its cost); everything else is the catalogue's, "assumed"."""
    from churn.campaigns.learning import applied_rates, catalogue_rates

    used = applied_rates(effects, catalogue_rates(config))
    catalogue = [i.model_copy(update={"save_rate": {**i.save_rate, **{t: u.rate for t, u in used.get(i.name, {}).items()}}})
                 for i in config.incentives.catalogue]
    incentives = config.incentives.model_copy(update={"catalogue": catalogue})
    return config.model_copy(update={"incentives": incentives}), used


def contact_costs(inc: Incentive, revenue: np.ndarray, channel_price: np.ndarray | float,
                  prices: dict[str, float]) -> np.ndarray:
    """What giving the incentive costs per row: unit cost + cost_share_of_fee x monthly `revenue` + the
    contact's price: the forced channel's (from `prices`), else each customer's own (`channel_price`)."""
    forced = forced_channel(inc)
    contact = prices.get(forced, 0.0) if forced else channel_price
    return inc.unit_cost + inc.cost_share_of_fee * np.asarray(revenue, dtype=float) + contact


@dataclass(frozen=True)
class TierTerms:
    """What contacting one customer of a tier saves and costs, over the offers the plan may give there."""

    save_rate: float  # mean save rate of those offers for the tier
    cost: float  # mean cost of one contact: unit cost + the contact's price (customer on the default channel)
    cost_share_of_fee: float  # mean share of the customer's monthly revenue the offers cost on top
    offers: tuple[str, ...]


def tier_terms(config: Config) -> dict[str, TierTerms]:
    """Per risk tier (riskiest first), the save rate and cost of the offers the plan may give there
    (`rules.offered_in_tier`), read with `save_rates` and `contact_costs` as the plan reads them; a customer's
    channel is taken to be the default one. Tiers no offer is open to are left out."""
    inc = config.incentives
    prices = channel_prices(inc.channels)
    default_price = prices.get(inc.channels.default.strip().lower(), 0.0)
    out: dict[str, TierTerms] = {}
    for level in config.tiers.levels:
        offers = [i for i in inc.catalogue if offered_in_tier(i, level.name)]
        if not offers:
            continue
        tier = pd.Series([level.name])
        rates = [float(save_rates(i, tier)[0]) for i in offers]
        costs = [float(contact_costs(i, np.zeros(1), default_price, prices)[0]) for i in offers]
        out[level.name] = TierTerms(float(np.mean(rates)), float(np.mean(costs)),
                                    float(np.mean([i.cost_share_of_fee for i in offers])),
                                    tuple(i.name for i in offers))
    return out
