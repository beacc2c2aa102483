"""The retention plan's steps that read one customer at a time (`plan_rows`): the scored list checked and put
in customer-id order, each customer's tier (from cut points learnt on the whole list), value, contact rules
and status, channel, and every offer's net value, cost and expected saving. `churn.scoring.allocation`
wires them with the steps that look at everyone at once (the tiers' cut points, the control group, the
budgeted allocation); on Spark the same function runs per partition (`churn.spark.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import ChannelsConfig, Config, Incentive
from churn.errors import ChurnError
from churn.scoring import offers, rules, status
from churn.scoring.messages import normalise_language
from churn.scoring.tiers import RiskTiers
from churn.scoring.value import value_from_revenue, value_parts

REASON_NO_SCORE = status.STATUS_TEXT[status.NO_SCORE]


@dataclass
class PlanRows:
    """Steps 1, 2 and 4 of the plan (see `churn.scoring.allocation`) for every row of `df`."""

    df: pd.DataFrame  # the list in customer-id order
    config: Config  # with measured save rates in place when an effects file was given
    catalogue: list[Incentive]
    tiers: RiskTiers
    tier: pd.Series  # ordered categorical
    tier_code: np.ndarray
    value: np.ndarray
    revenue: np.ndarray
    basis: pd.Series
    expected_loss: np.ndarray
    reason: np.ndarray  # why each row may not be contacted (None: it may)
    row_status: np.ndarray
    win_back: np.ndarray
    contactable: np.ndarray
    rows: np.ndarray  # positions of the contactable rows
    channel: np.ndarray
    net: np.ndarray  # (contactable rows x offers): -inf where not eligible
    cost: np.ndarray
    gain: np.ndarray
    eligible_any: np.ndarray
    own: dict[str, np.ndarray] = field(default_factory=dict)
    used_rates: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.df)


def plan_rows(scores: pd.DataFrame, config: Config, *, tiers: RiskTiers | None = None,
              contact_history: pd.DataFrame | None = None, exclusions: pd.DataFrame | None = None,
              effects: Any | None = None, customer_save_rates: pd.DataFrame | None = None) -> PlanRows:
    """Each row's tier (cut points `tiers`, else learnt from these rows), value, contact rules, channel and
    offer values (`plan_retention`'s arguments)."""
    offers.check_catalogue(config)
    used_rates: dict = {}
    if effects is not None or customer_save_rates is not None:
        config, used_rates = offers.with_measured_rates(config, effects)
    inc_cfg = config.incentives
    df = _prepare(scores)
    p = df["churn_probability"].to_numpy(dtype=float)
    warnings: list[str] = []
    if customer_save_rates is None and effects is not None:
        # The effects file's uplift models price their offers customer by customer, here, so every path
        # (one machine, each Spark partition, the Python API) prices them alike.
        from churn.campaigns.uplift import priced_by_models

        customer_save_rates, missing = priced_by_models(effects.uplift_models(), df,
                                                        (effects.uplift or {}).get("churn_model_version"))
        warnings += missing

    # 1. tiers and value
    tiers = tiers if tiers is not None else RiskTiers(config.tiers).fit(df["churn_probability"])
    tier = tiers.transform(df["churn_probability"])
    revenue_s, basis = value_parts(df, config.value)
    value = value_from_revenue(revenue_s, config.value).to_numpy(dtype=float)
    revenue = revenue_s.to_numpy(dtype=float)

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

    # 4. options for contactable customers: net value and cost per incentive
    catalogue = inc_cfg.catalogue
    m = len(catalogue)
    rows = np.flatnonzero(contactable)
    channel = customer_channels(df, inc_cfg.channels)
    contact_cost = offers.channel_prices(inc_cfg.channels)
    cust_contact = pd.Series(channel[rows]).map(contact_cost).fillna(0.0).to_numpy(dtype=float)
    net = np.full((rows.size, m), -np.inf)
    cost = np.zeros((rows.size, m))
    gain = np.zeros((rows.size, m))
    eligible_any = np.zeros(rows.size, dtype=bool)
    sub_tier = tier.iloc[rows].reset_index(drop=True)
    sub = df.iloc[rows].reset_index(drop=True)
    own = _own_rates(df["customer_id"], customer_save_rates, [i.name for i in catalogue])
    for j, inc in enumerate(catalogue):
        elig = rules.offer_eligible(sub, inc, sub_tier, value[rows])
        eligible_any |= elig
        cost[:, j] = offers.contact_costs(inc, revenue[rows], cust_contact, contact_cost)
        mine = own[inc.name][rows] if inc.name in own else None
        gain[:, j] = p[rows] * value[rows] * offers.save_rates(inc, sub_tier, mine)
        net[:, j] = np.where(elig, gain[:, j] - cost[:, j], -np.inf)
    return PlanRows(df, config, list(catalogue), tiers, tier, tier.cat.codes.to_numpy(), value, revenue, basis,
                    np.nan_to_num(p * value, nan=0.0), reason, row_status, win_back, contactable, rows, channel,
                    net, cost, gain, eligible_any, own, used_rates, warnings)


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


