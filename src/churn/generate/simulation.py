"""The customers' simulated lives: signup, latent traits, profile, price increases, the churn hazard of the
chosen mechanism and the churn day it gives, and the decline episodes before churn (or recovery).

`_simulate_customers` draws one chunk of customers from its seed; everything is vectorised numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from churn.generate.names import _markets, _name_tables
from churn.generate.planted import Business, Mechanism, Planted

_SEC_PER_DAY = 86_400
_US_PER_SEC = 1_000_000


# -------------------------------------------------------------------------------------------- period
@dataclass(frozen=True)
class _Period:
    start: date
    days: int  # T: activity lies in [0, T) days after start
    start_us: int
    weekday0: int  # weekday of start (Mon=0)
    campaigns: tuple[int, ...]  # price-increase days after start (subscription)
    day_month: np.ndarray  # calendar month (0-11) of each day in [0, T)
    day_weekday: np.ndarray  # weekday of each day in [0, T)


def _period(start: date, end: date, business: Business) -> _Period:
    days = (end - start).days
    d0 = np.datetime64(start, "D")
    day = d0 + np.arange(days)
    month = (day.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    weekday = ((day.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    campaigns: list[int] = []
    if business == "subscription":
        for k in (1, 2):
            target = start + pd.Timedelta(days=math.floor(k * days / 3))
            first = pd.Timestamp(target).to_period("M").to_timestamp()
            if first.date() < target:
                first = (pd.Timestamp(target) + pd.offsets.MonthBegin(1)).normalize()
            c = (first.date() - start).days
            if 0 < c < days - 1 and c not in campaigns:
                campaigns.append(c)
    start_us = int((d0 - np.datetime64("1970-01-01", "D")).astype(np.int64)) * _SEC_PER_DAY * _US_PER_SEC
    return _Period(start, days, start_us, start.weekday(), tuple(campaigns), month, weekday)


# --------------------------------------------------------------------------------- customer simulation
@dataclass
class _Customers:
    """One chunk's customers: attributes, latent traits and their simulated fate (days after start)."""

    first_index: int
    signup: np.ndarray  # int day; negative = before start
    a: np.ndarray  # first day activity can be recorded: max(signup, 0)
    b: np.ndarray  # end of activity: churn day, or T for customers still active at the end
    churned: np.ndarray
    eng_z: np.ndarray
    engagement: np.ndarray
    comp_z: np.ndarray
    complaint: np.ndarray
    purchase: np.ndarray
    spend: np.ndarray
    price_sens: np.ndarray
    happy_z: np.ndarray
    plan: np.ndarray
    market: np.ndarray
    region: np.ndarray
    channel: np.ndarray
    consent: np.ndarray
    first_name: np.ndarray  # index into the flattened name lists
    last_name: np.ndarray
    domain: np.ndarray
    initial_fee: np.ndarray
    increase: np.ndarray  # (C, n_campaigns) bool: selected for the campaign's price increase
    applied: np.ndarray  # increase and still a customer at the campaign
    fee: np.ndarray  # current monthly fee
    ep_start: np.ndarray  # decline episode (days); depth 0 = none
    ep_len: np.ndarray
    ep_depth: np.ndarray
    ep_kind: np.ndarray  # 0 none, 1 decline before churn, 2 decline and recovery
    # The churn hazard behind the fate (kept so retention campaigns can change it, `churn.generate.campaigns`):
    # segment bounds (C, S+1) in days, the daily hazard on each segment (C, S) and the Exponential(1) draw.
    hz_bounds: np.ndarray | None = None
    hz_rate: np.ndarray | None = None
    hz_draw: np.ndarray | None = None
    contacts: dict[str, np.ndarray] | None = None  # the campaigns' log, when there were campaigns

    @property
    def size(self) -> int:
        return len(self.signup)


def _choice(rng: np.random.Generator, probs: np.ndarray, size: int) -> np.ndarray:
    """Vectorised categorical draw from one probability vector."""
    cum = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(probs) - 1)


def _row_choice(u: np.ndarray, cum_rows: np.ndarray) -> np.ndarray:
    """Categorical draw per row: `cum_rows` (n, k) cumulative probabilities, `u` (n,) uniforms."""
    out = np.zeros(len(u), dtype=np.int64)
    for k in range(cum_rows.shape[1] - 1):
        out += u >= cum_rows[:, k]
    return out


# ------------------------------------------------------------------------------------ churn hazards
@dataclass(frozen=True)
class _Traits:
    """The per-customer inputs of a churn hazard (1-d arrays over the chunk's customers)."""

    eng_z: np.ndarray
    comp_z: np.ndarray
    price_sens: np.ndarray
    plan: np.ndarray | None  # subscription plan index; None in retail (no plan effect)


# A hazard maps (base daily hazard, traits, tenure at each segment midpoint (C, S), per campaign: segment
# is after the customer's increase (C, S), within its first price_short_days (C, S), parameters) to the
# daily hazard on each segment (C, S). Only the hazard differs between mechanisms, so every random draw
# (and hence the default output) is unchanged.
_Hazard = Callable[[float, _Traits, np.ndarray, list[np.ndarray], list[np.ndarray], Planted], np.ndarray]


def _hazard_default(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                    short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Multiplicative traits x tenure steps x plan x price shock scaled by sensitivity (the documented one)."""
    trait = base * np.exp(p.hazard_engagement * t.eng_z + p.hazard_complaint * t.comp_z)
    if t.plan is not None:
        trait = trait * np.array(p.hazard_plan)[t.plan]
    h = trait[:, None] * np.where(
        ten < p.new_tenure_days,
        p.hazard_new_tenure,
        np.where(ten < p.young_tenure_days, p.hazard_young_tenure, 1.0),
    )
    sens = t.price_sens[:, None]
    for a, s in zip(after, short, strict=True):
        mult = np.where(s, 1 + p.price_short * sens, 1 + p.price_long * sens)
        h = h * np.where(a, mult, 1.0)
    return h


def _hazard_additive(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                     short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Log-linear in the traits and the number of increases received: no thresholds, no interactions."""
    log_h = p.additive_engagement * t.eng_z + p.additive_complaint * t.comp_z
    if t.plan is not None:
        log_h = log_h + np.array(p.additive_plan)[t.plan]
    log_h = np.broadcast_to(log_h[:, None], ten.shape)
    for a in after:
        log_h = log_h + p.additive_price_increase * a
    return base * p.additive_scale * np.exp(log_h)


def _hazard_interactions(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                         short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Thresholds and interactions only: no trait has one direction of effect on its own.

    Low engagement raises the hazard while tenure is young but lowers it afterwards (established customers
    who barely use the product forget the subscription and keep paying), and raises it with many
    complaints; a price increase matters only to price-sensitive customers who are not engaged.
    """
    low = (t.eng_z < p.interactions_low_engagement_z)[:, None]
    young = ten < p.young_tenure_days
    mult = np.where(low, np.where(young, p.interactions_young_low_engagement,
                                  p.interactions_old_low_engagement), 1.0)
    complains = (t.comp_z > p.interactions_high_complaint_z)[:, None]
    mult = mult * np.where(low & complains, p.interactions_complaint_low_engagement, 1.0)
    sensitive_idle = ((t.price_sens > p.interactions_sensitive) & (t.eng_z < 0))[:, None]
    for a in after:
        mult = mult * np.where(a & sensitive_idle, p.interactions_price_sensitive, 1.0)
    return base * p.interactions_scale * mult


_HAZARDS: dict[str, _Hazard] = {
    "default": _hazard_default,
    "additive": _hazard_additive,
    "interactions": _hazard_interactions,
    "ageing": _hazard_default,
}


def _simulate_customers(
    ss: np.random.SeedSequence, lo: int, hi: int, period: _Period, business: Business, p: Planted,
    mechanism: Mechanism = "default", campaigns: tuple = (),
) -> _Customers:
    rng = np.random.default_rng(ss)
    n = hi - lo
    T = period.days

    # signups: a share existed before start, the rest arrive through [start, end) with growth
    pre = rng.random(n) < p.pre_start_share
    tenure0 = 1 + np.minimum(rng.exponential(p.pre_start_tenure_mean_days, n), p.pre_start_tenure_max_days)
    g = math.log1p(p.growth)
    new_day = np.floor(T * np.log1p(rng.random(n) * math.expm1(g)) / g)
    signup = np.where(pre, -np.floor(tenure0), np.minimum(new_day, T - 1)).astype(np.int64)
    if mechanism == "ageing":  # a burst of signups at the start, nobody before it (drawn after the rest)
        signup = np.minimum(np.floor(rng.random(n) * p.ageing_signup_days), T - 1).astype(np.int64)
    a = np.maximum(signup, 0)

    # latent traits
    eng_z = rng.standard_normal(n)
    engagement = np.exp(p.engagement_sigma * eng_z - p.engagement_sigma**2 / 2)
    comp_z = rng.standard_normal(n)
    complaint = np.exp(p.complaint_sigma * comp_z - p.complaint_sigma**2 / 2)
    r = p.purchase_engagement_corr
    buy_z = r * eng_z + math.sqrt(1 - r * r) * rng.standard_normal(n)
    purchase = np.exp(p.purchase_sigma * buy_z - p.purchase_sigma**2 / 2)
    spend = np.exp(rng.normal(0.0, 0.5, n)) * (25.0 if business == "subscription" else 45.0)
    price_sens = rng.beta(*p.price_sensitivity_beta, n)
    happy_z = 0.5 * eng_z - 0.4 * comp_z + 0.75 * rng.standard_normal(n)

    # profile
    _, _, langs, region_of, market_w = _markets(p)
    market = _choice(rng, market_w, n)
    region = region_of[market]
    ch_cum = np.cumsum(np.array([c for _, c, _ in p.region_channels]), axis=1)
    channel = _row_choice(rng.random(n), ch_cum[region])
    consent = rng.random(n) < np.array([c for _, _, c in p.region_channels])[region]
    offsets, _, _ = _name_tables()
    off = np.array([offsets[lang] for lang in langs])[market]  # (n, 4)
    first_name = off[:, 0] + np.floor(rng.random(n) * off[:, 1]).astype(np.int64)
    last_name = off[:, 2] + np.floor(rng.random(n) * off[:, 3]).astype(np.int64)
    domain = _choice(rng, np.array([0.6, 0.25, 0.15]), n)
    if business == "subscription":
        plan = _choice(rng, np.array(p.plan_shares), n)
    else:  # loyalty tier follows the purchase rate, with noise
        score = buy_z + 0.6 * rng.standard_normal(n)
        plan = (score > 0.45).astype(np.int64) + (score > 1.5).astype(np.int64)

    # price increases (subscription): selected customers with enough tenure at each campaign
    camps = np.array(period.campaigns, dtype=np.float64)
    nc = len(camps)
    increase = (signup[:, None] <= camps[None, :] - p.price_min_tenure_days) & (
        rng.random((n, nc)) < p.price_increase_share
    )
    plan_fee = np.array(p.plan_fees)[plan] if business == "subscription" else np.zeros(n)
    plan_inc = np.array(p.plan_fee_increase)[plan] if business == "subscription" else np.zeros(n)
    initial_fee = plan_fee + plan_inc * (camps[None, :] <= signup[:, None]).sum(axis=1)

    # churn hazard: piecewise constant between tenure and price-increase breakpoints
    base = (
        p.base_monthly_hazard_subscription if business == "subscription" else p.base_monthly_hazard_retail
    ) / 30.4375
    Tf = float(T)
    cols = [a.astype(np.float64), signup + p.new_tenure_days, signup + p.young_tenure_days]
    for j in range(nc):
        cols.append(np.where(increase[:, j], camps[j], Tf))
        cols.append(np.where(increase[:, j], camps[j] + p.price_short_days, Tf))
    cols.append(np.full(n, Tf))
    bounds = np.sort(np.clip(np.column_stack(cols).astype(np.float64), a[:, None], Tf), axis=1)
    mid = (bounds[:, :-1] + bounds[:, 1:]) / 2
    ten = mid - signup[:, None]
    traits = _Traits(eng_z, comp_z, price_sens, plan if business == "subscription" else None)
    # "after[j]": segment lies after campaign j and the customer was selected for its increase
    after = [increase[:, j : j + 1] & (mid >= camps[j]) for j in range(nc)]
    short = [after[j] & (mid < camps[j] + p.price_short_days) for j in range(nc)]
    h = _HAZARDS[mechanism](base, traits, ten, after, short, p)
    mass = np.diff(bounds, axis=1) * h
    cum = np.cumsum(mass, axis=1)
    e = rng.exponential(1.0, n)
    seg = np.minimum((cum < e[:, None]).sum(axis=1), mass.shape[1] - 1)
    rows = np.arange(n)
    crossed = cum[:, -1] >= e
    tau = bounds[rows, seg] + (e - (cum[rows, seg] - mass[rows, seg])) / h[rows, seg]
    churn_day = np.maximum(np.floor(tau).astype(np.int64) + 1, a + 1)
    churned = crossed & (churn_day < T)
    b = np.where(churned, churn_day, T).astype(np.int64)

    # decline episodes: before churn (most churners) or decline-and-recover (some stayers)
    length = rng.uniform(p.decline_min_days, p.decline_max_days, n)
    depth = rng.uniform(*p.decline_depth, n)
    warn = churned & (rng.random(n) < p.warning_share)
    recover = ~churned & (rng.random(n) < p.recovery_share)
    rec_start = a + rng.random(n) * (T - a)
    ep_kind = np.where(warn, 1, np.where(recover, 2, 0)).astype(np.int8)
    ep_start = np.where(warn, b - length, np.where(recover, rec_start, b.astype(np.float64)))
    ep_depth = np.where(ep_kind > 0, depth, 0.0)

    # The price increases that took effect depend on the final fate, so they come after any campaign.
    c = _Customers(
        lo, signup, a, b, churned, eng_z, engagement, comp_z, complaint, purchase, spend, price_sens,
        happy_z, plan, market, region, channel, consent, first_name, last_name, domain, initial_fee,
        increase, increase, initial_fee, ep_start, length, ep_depth, ep_kind, bounds, h, e,
    )
    if campaigns:
        from churn.generate.campaigns import run_campaigns

        run_campaigns(c, campaigns, ss, T, p)  # may move churn days: the contacts' effect
    c.applied = increase & (camps[None, :] < c.b[:, None])
    c.fee = initial_fee + plan_inc * c.applied.sum(axis=1)
    return c
