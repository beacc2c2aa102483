"""The planted truth of retention campaigns: what each contact did, and what each offer would do.

`campaign_truth` gives, for everyone in a past campaign (contacted or held out), the churn label at the
campaign day with and without that contact (both potential outcomes: the simulation fixes each customer's
draw, see `churn.generate.campaigns`), all other contacts as they happened; the planted effect of the
campaign on a group is the mean of the difference over the group. `offer_truth` gives, for every customer
current at a date, the label without a contact and with each offer: what a plan made that day achieves. Both re-run the customers' part of `generate` with the same arguments (cheap:
no activity is simulated).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import numpy as np
import pandas as pd

from churn.generate.campaigns import Campaign, check_campaigns, multipliers, resolve_chunk, segments_at, labels_under
from churn.generate.planted import PLANTED, Business, Mechanism
from churn.generate.simulation import _Customers, _period, _simulate_customers
from churn.generate.writing import _check, _chunks


def _simulated(n_customers: int, start: date, end: date, seed: int, business: Business, mechanism: Mechanism,
               campaigns: tuple[Campaign, ...]) -> Iterator[tuple[int, _Customers, list[str], int]]:
    """(first index, customers, their ids, days in the period) per chunk, as `generate` simulates them."""
    period = _period(start, end, business)
    width = max(7, len(str(n_customers)))
    for k, lo, hi in _chunks(n_customers):
        s_cust = np.random.SeedSequence(seed, spawn_key=(k,)).spawn(5)[0]
        c = _simulate_customers(s_cust, lo, hi, period, business, PLANTED, mechanism,
                                resolve_chunk(campaigns, lo, hi, start))
        yield lo, c, [f"{i:0{width}d}" for i in range(lo + 1, hi + 1)], period.days


def _windows(c: _Customers, days: list[int]) -> list[tuple[int, np.ndarray]]:
    """Every campaign's contact window over the chunk: (day, multiplier per row; 1 where not contacted)."""
    log = c.contacts
    out = []
    for k, day in enumerate(days):
        m = np.ones(c.size)
        sel = (log["campaign"] == k) & log["contacted"]
        m[log["row"][sel]] = log["multiplier"][sel]
        out.append((day, m))
    return out


def campaign_truth(n_customers: int, start: date, end: date, seed: int, campaigns: Sequence[Campaign], *,
                   horizon_days: int = 60, business: Business = "subscription",
                   mechanism: Mechanism = "default") -> pd.DataFrame:
    """One row per customer in each campaign: campaign day, customer_id, incentive (given or would-be),
    contacted, segment, hazard multiplier of that offer, and `y_untreated` / `y_treated`: the churn label at
    the campaign day without / with that contact (0/1; other contacts as they happened). The planted effect
    of a contact on a group is ``mean(y_untreated - y_treated)`` over it."""
    start, end = _check(n_customers, start, end, seed, business, 0.0, mechanism)
    campaigns = check_campaigns(campaigns, start, end)
    days = [(cp.day - start).days for cp in campaigns]
    parts = []
    for _, c, ids, T in _simulated(n_customers, start, end, seed, business, mechanism, campaigns):
        log, windows = c.contacts, _windows(c, days)
        for k, day in enumerate(days):
            sel = np.flatnonzero(log["campaign"] == k)
            rows = log["row"][sel]
            others = [(d, m[rows]) for j, (d, m) in enumerate(windows) if j != k]
            base = labels_under(c, rows, [*others, (day, np.ones(rows.size))], day, horizon_days, T, PLANTED)
            treated = labels_under(c, rows, [*others, (day, log["multiplier"][sel])], day, horizon_days, T,
                                         PLANTED)
            parts.append(pd.DataFrame({
                "campaign_day": pd.Timestamp(campaigns[k].day), "customer_id": np.array(ids, dtype=object)[rows],
                "incentive": log["incentive"][sel].astype(str), "contacted": log["contacted"][sel],
                "segment": np.array(PLANTED.campaign_segments, dtype=object)[log["segment"][sel]],
                "multiplier": log["multiplier"][sel], "y_untreated": base, "y_treated": treated,
            }))
    cols = ["campaign_day", "customer_id", "incentive", "contacted", "segment", "multiplier", "y_untreated",
            "y_treated"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def offer_truth(n_customers: int, start: date, end: date, seed: int, at: date, *,
                campaigns: Sequence[Campaign] = (), incentives: Sequence[str] | None = None,
                horizon_days: int = 60, business: Business = "subscription",
                mechanism: Mechanism = "default") -> pd.DataFrame:
    """Every customer current at `at` (signed up before it, not cancelled before it): customer_id, segment,
    `y_none` (the churn label at `at` without a contact, 0/1) and `y_<incentive>` (with that offer) for each
    offer (default: the planted ones), the campaigns' contacts as they happened (a contact on `at` itself is
    replaced by the one asked about)."""
    start, end = _check(n_customers, start, end, seed, business, 0.0, mechanism)
    campaigns = check_campaigns(campaigns, start, end)
    names = list(incentives) if incentives is not None else [i for i in PLANTED.campaign_incentives if i != "other"]
    day = (at - start).days
    days = [(cp.day - start).days for cp in campaigns]
    parts = []
    for _, c, ids, T in _simulated(n_customers, start, end, seed, business, mechanism, campaigns):
        rows = np.flatnonzero((c.signup < day) & (c.b >= day))
        past = [(d, m[rows]) for d, m in _windows(c, days) if d != day] if campaigns else []
        natural = (c.contacts["b_natural"], c.contacts["kind_natural"]) if campaigns else (c.b, c.ep_kind)
        seg = segments_at(c, rows, day, PLANTED, *natural)
        frame = {"customer_id": np.array(ids, dtype=object)[rows],
                 "segment": np.array(PLANTED.campaign_segments, dtype=object)[seg],
                 "y_none": labels_under(c, rows, [*past, (day, np.ones(rows.size))], day, horizon_days, T,
                                              PLANTED)}
        for name in names:
            m = multipliers(seg, np.full(rows.size, name, dtype=object), PLANTED)
            frame[f"y_{name}"] = labels_under(c, rows, [*past, (day, m)], day, horizon_days, T, PLANTED)
        parts.append(pd.DataFrame(frame))
    return pd.concat(parts, ignore_index=True)
