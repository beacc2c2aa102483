"""Retention campaigns in the simulated business: who is contacted on which day with which offer, and what the
contact does to their churn hazard, with the planted truth to check a measurement against.

A contacted customer's daily churn hazard is multiplied by ``PLANTED.campaign_effects[segment][incentive]``
for ``campaign_effect_days`` from the contact day (several contacts multiply where their windows overlap).
The segment is read at the contact day (see `Planted`): lost causes, sleeping dogs (a multiplier above one:
contact makes them leave), sure things, two kinds of persuadables and the ordinary rest.

The churn time keeps its Exponential(1) draw (common random numbers): a customer nobody contacts keeps
exactly the fate they have without campaigns, and a contacted one churns when the cumulative hazard with
the contacts' multipliers first reaches the same draw. So both potential outcomes of every customer are
known: whether they would churn with and without a contact (`labels_under`). The planted effect of a
contact on a group is the mean of ``churn without - churn with`` over it (`campaign_truth`, `offer_truth`).
(Hazard-based probabilities would be wrong here: a segment such as "already declining towards churn" says
something about the draw itself.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.generate.planted import Planted
from churn.generate.simulation import _Customers

CONTACT_HOUR = 9  # contacts go out at 09:00 of the campaign day (contacted_at in the contact history)


@dataclass(frozen=True)
class Campaign:
    """One retention campaign of the simulated business on `day` (the as-of date of the plan behind it).

    With `contacts` (a frame with customer_id and incentive, e.g. the contacted customers of a retention
    plan): exactly those customers are contacted, with that offer; ids not current at `day` are skipped.
    Without it, a random campaign: `reach` of the customers who are current, consent to marketing and were not
    contacted in the last `cooldown_days` are drawn, `control_share` of them are held out, and each gets an
    offer drawn uniformly from `incentives` (held-out customers keep theirs as the offer they would have got).
    """

    day: date
    contacts: pd.DataFrame | None = None
    reach: float = 0.5
    control_share: float = 0.1
    incentives: tuple[str, ...] = ("discount_20_3m", "free_month", "plan_upgrade", "thank_you_gift",
                                   "loyalty_points_500", "personal_call")
    cooldown_days: int = 30


@dataclass(frozen=True)
class _ChunkCampaign:
    """A campaign resolved for one chunk: the day in days after start and, for a fixed campaign, the rows."""

    index: int
    day: int
    spec: Campaign
    rows: np.ndarray | None = None  # fixed campaign: chunk rows of the contacted customers
    offers: np.ndarray | None = None  # their incentives (object array)


@dataclass
class _Log:
    """Who was in each campaign: chunk row, contacted or held out, offer (given or would-be), segment."""

    campaign: list[np.ndarray] = field(default_factory=list)
    row: list[np.ndarray] = field(default_factory=list)
    contacted: list[np.ndarray] = field(default_factory=list)
    incentive: list[np.ndarray] = field(default_factory=list)
    segment: list[np.ndarray] = field(default_factory=list)
    multiplier: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: object) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return {"campaign": cat(self.campaign, np.int64), "row": cat(self.row, np.int64),
                "contacted": cat(self.contacted, bool), "incentive": cat(self.incentive, object),
                "segment": cat(self.segment, np.int64), "multiplier": cat(self.multiplier, float)}


def check_campaigns(campaigns: Sequence[Campaign], start: date, end: date) -> tuple[Campaign, ...]:
    """The campaigns in day order, each checked: inside the period, shares in range, contacts well formed."""
    out = []
    for i, cp in enumerate(campaigns):
        where = f"campaign {i + 1} ({getattr(cp, 'day', '?')})"
        if not isinstance(cp, Campaign):
            raise ChurnError(f"{where}: expected a churn.generate.Campaign, got {type(cp).__name__}")
        if not start < cp.day < end:
            raise ChurnError(f"{where}: the day must fall strictly inside [{start}, {end})")
        if cp.contacts is not None:
            missing = [c for c in ("customer_id", "incentive") if c not in cp.contacts.columns]
            if missing:
                raise ChurnError(f"{where}: contacts need columns customer_id and incentive; missing {missing}")
            ids = cp.contacts["customer_id"].astype(str).str.strip()
            bad = ~ids.str.fullmatch(r"\d+")
            if bad.any():
                raise ChurnError(f"{where}: contacts column 'customer_id' has {int(bad.sum())} id(s) that are "
                                 f"not generated ids, e.g. rows {[int(r) for r in np.flatnonzero(bad.to_numpy())[:3]]}: "
                                 f"{', '.join(map(repr, ids[bad].head(3)))}")
            if cp.contacts["incentive"].isna().any():
                rows = [int(r) for r in np.flatnonzero(cp.contacts["incentive"].isna().to_numpy())[:3]]
                raise ChurnError(f"{where}: contacts column 'incentive' is empty in rows {rows}")
        else:
            if not 0.0 < cp.reach <= 1.0 or not 0.0 <= cp.control_share < 1.0:
                raise ChurnError(f"{where}: reach must be in (0, 1] and control_share in [0, 1); got "
                                 f"{cp.reach}, {cp.control_share}")
            if not cp.incentives:
                raise ChurnError(f"{where}: a random campaign needs at least one incentive")
        out.append(cp)
    return tuple(sorted(out, key=lambda c: c.day))


def resolve_chunk(campaigns: tuple[Campaign, ...], lo: int, hi: int, start: date) -> tuple[_ChunkCampaign, ...]:
    """Each campaign for the chunk of customers [lo, hi): its day and, for fixed ones, this chunk's rows."""
    out = []
    for k, cp in enumerate(campaigns):
        day = (cp.day - start).days
        if cp.contacts is None:
            out.append(_ChunkCampaign(k, day, cp))
            continue
        index = cp.contacts["customer_id"].astype(str).str.strip().astype(np.int64).to_numpy() - 1
        mine = (index >= lo) & (index < hi)
        rows = index[mine] - lo
        offers = cp.contacts["incentive"].astype(str).to_numpy(dtype=object)[mine]
        rows, first = np.unique(rows, return_index=True)  # one contact per customer and campaign
        out.append(_ChunkCampaign(k, day, cp, rows, offers[first]))
    return tuple(out)


def segments_at(c: _Customers, rows: np.ndarray, day: int, p: Planted, b_natural: np.ndarray,
                kind_natural: np.ndarray) -> np.ndarray:
    """Each customer's segment code (index into `p.campaign_segments`) on `day`, the first that applies;
    `b_natural` and `kind_natural` are the churn day and episode kind without any campaign."""
    eng, comp = c.eng_z[rows], c.comp_z[rows]
    lost = ((kind_natural[rows] == 1) & (c.ep_start[rows] <= day) & (day < b_natural[rows])
            & (c.ep_depth[rows] >= p.lost_cause_depth))
    dog = (eng < p.sleeping_dog_engagement_z) & (day - c.signup[rows] >= p.young_tenure_days)
    sure = eng > p.sure_thing_engagement_z
    price = c.price_sens[rows] > p.persuadable_sensitivity
    service = comp > p.persuadable_complaint_z
    return np.select([lost, dog, sure, price, service], [0, 1, 2, 3, 4], default=5).astype(np.int64)


def multipliers(segment: np.ndarray, incentive: np.ndarray, p: Planted) -> np.ndarray:
    """The planted hazard multiplier of each (segment code, incentive name); unknown names take `other`."""
    cols = {name: j for j, name in enumerate(p.campaign_incentives)}
    other = cols["other"]
    j = np.array([cols.get(str(x), other) for x in incentive], dtype=np.int64)
    return np.array(p.campaign_effects, dtype=float)[segment, j] if len(segment) else np.zeros(0)


def _with_windows(c: _Customers, rows: np.ndarray, windows: list[tuple[int, np.ndarray]], T: int,
                  p: Planted) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bounds, daily hazard, cumulative hazard at the bounds) of `rows` with the contact windows applied.

    `windows`: (contact day, multiplier per row; 1 where the row was not contacted then)."""
    bounds0, rate0 = c.hz_bounds[rows], c.hz_rate[rows]
    a = c.a[rows].astype(np.float64)
    extra = []
    for day, _ in windows:
        extra += [np.full(rows.size, float(day)), np.full(rows.size, float(day + p.campaign_effect_days))]
    bounds = np.sort(np.clip(np.column_stack([bounds0, *extra]), a[:, None], float(T)), axis=1)
    mid = (bounds[:, :-1] + bounds[:, 1:]) / 2
    # The original segment each new one lies in: how many original inner bounds lie at or before its middle.
    seg = np.minimum((bounds0[:, None, 1:-1] <= mid[:, :, None]).sum(axis=2), rate0.shape[1] - 1)
    rate = np.take_along_axis(rate0, seg, axis=1)
    for day, m in windows:
        inside = (mid >= day) & (mid < day + p.campaign_effect_days)
        rate = rate * np.where(inside, m[:, None], 1.0)
    cum = np.concatenate([np.zeros((rows.size, 1)), np.cumsum(np.diff(bounds, axis=1) * rate, axis=1)], axis=1)
    return bounds, rate, cum


def _fate(c: _Customers, rows: np.ndarray, windows: list[tuple[int, np.ndarray]], T: int,
          p: Planted) -> tuple[np.ndarray, np.ndarray]:
    """(end of activity b, churned) of `rows` under the contact windows, from the same Exponential draw."""
    bounds, rate, cum = _with_windows(c, rows, windows, T, p)
    e = c.hz_draw[rows]
    mass = np.diff(cum, axis=1)
    seg = np.minimum((cum[:, 1:] < e[:, None]).sum(axis=1), mass.shape[1] - 1)
    r = np.arange(rows.size)
    crossed = cum[:, -1] >= e
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = bounds[r, seg] + (e - cum[r, seg]) / rate[r, seg]
    tau = np.where(crossed, tau, float(T))
    churn_day = np.maximum(np.floor(tau).astype(np.int64) + 1, c.a[rows] + 1)
    churned = crossed & (churn_day < T)
    return np.where(churned, churn_day, T).astype(np.int64), churned


def run_campaigns(c: _Customers, campaigns: tuple[_ChunkCampaign, ...], ss: np.random.SeedSequence, T: int,
                  p: Planted) -> None:
    """Run the chunk's campaigns in day order: pick who is in each, apply the contacts' effect to their
    churn day, and log everyone in a campaign (contacted or held out) in `c.contacts`. Changes `c` in place."""
    # Draws of random campaigns come from their own stream, so the customers' own draws never move.
    rng = np.random.default_rng(ss.spawn(1)[0])
    b_natural, kind_natural = c.b.copy(), c.ep_kind.copy()
    n = c.size
    mult_by_campaign: list[tuple[int, np.ndarray]] = []
    last_contact = np.full(n, -(10**9), dtype=np.int64)
    log = _Log()
    for cc in campaigns:
        current = (c.signup < cc.day) & (c.b >= cc.day)
        if cc.rows is not None:
            keep = current[cc.rows]
            rows, offers = cc.rows[keep], cc.offers[keep]
            contacted = np.ones(rows.size, dtype=bool)
        else:
            spec = cc.spec
            pool = np.flatnonzero(current & c.consent & (cc.day - last_contact >= spec.cooldown_days))
            u = rng.random(pool.size)
            rows = pool[u < spec.reach]
            offers = np.array(spec.incentives, dtype=object)[rng.integers(0, len(spec.incentives), rows.size)]
            contacted = rng.random(rows.size) >= spec.control_share
        seg = segments_at(c, rows, cc.day, p, b_natural, kind_natural)
        m_rows = multipliers(seg, offers, p)
        m = np.ones(n)
        m[rows[contacted]] = m_rows[contacted]
        mult_by_campaign.append((cc.day, m))
        last_contact[rows[contacted]] = cc.day
        for part, values in ((log.campaign, np.full(rows.size, cc.index)), (log.row, rows),
                             (log.contacted, contacted), (log.incentive, offers), (log.segment, seg),
                             (log.multiplier, m_rows)):
            part.append(values)
        touched = np.flatnonzero(np.any([mm != 1.0 for _, mm in mult_by_campaign], axis=0))
        if touched.size:
            windows = [(day, mm[touched]) for day, mm in mult_by_campaign]
            c.b[touched], c.churned[touched] = _fate(c, touched, windows, T, p)
    moved = np.flatnonzero(c.b != b_natural)
    # A decline that no longer ends in churn (or ends later) becomes a decline the customer recovered from.
    was_decline = c.ep_kind[moved] == 1
    still = c.churned[moved] & (c.b[moved] <= b_natural[moved])
    c.ep_kind[moved] = np.where(was_decline & ~still, 2, c.ep_kind[moved]).astype(np.int8)
    c.contacts = log.arrays()
    c.contacts["b_natural"], c.contacts["kind_natural"] = b_natural, kind_natural


def labels_under(c: _Customers, rows: np.ndarray, windows: list[tuple[int, np.ndarray]], day: int,
                 horizon_days: int, T: int, p: Planted) -> np.ndarray:
    """The churn label at as-of `day` (cancel date in [day, day + horizon)) of each row had the contacts been
    `windows`: the potential outcome, exact because the churn time's draw is fixed."""
    b, churned = _fate(c, rows, windows, T, p)
    return (churned & (b >= day) & (b < day + horizon_days)).astype(np.int8)
