"""Learning from campaigns: measured save rates, shrunk towards the catalogue's assumption by their uncertainty,
written to an effects file that the next plan reads (`churn score --effects FILE`).

The shrinkage is Beta-binomial empirical Bayes on both arms of every (tier, incentive) cell:

* the control group's churn has the prior ``Beta(k m_c, k (1 - m_c))`` with ``m_c`` the tier's pooled
  control churn (over all its offers and campaigns);
* the treated group's churn has the prior ``Beta(k m_t, k (1 - m_t))`` with ``m_t = m_c (1 - s)``, ``s`` the
  catalogue's save rate for the cell: the assumption, written as a churn rate;
* ``k``, the prior's weight in customers, is chosen by maximising the Beta-binomial likelihood of every
  cell's two arms (empirical Bayes): when cells differ from the assumption by more than chance, ``k`` is
  small and the measurement wins; when they agree with it, ``k`` is large;
* the learned rate is ``1 - E[p_t] / E[p_c]`` with the posterior means ``(k m + churned) / (k + customers)``.

A cell without customers in both groups keeps the catalogue's rate ("assumed"); an offer the catalogue does
not make in a tier is never given one. The effects file records, per offer and tier, the learned rate, the
assumption, the raw measurement and its interval, the counts and the data's weight ``n / (n + k)`` (``n`` the
smaller of the two groups, whose churn is the less certain).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import betabinom

from churn.campaigns.effect import ALL, CampaignEffect, _clean
from churn.campaigns.stats import detectable_churn, ratio_interval
from churn.errors import ChurnError

EFFECTS_KIND = "churn-effects"
EFFECTS_VERSION = 1
STRENGTH_BOUNDS = (1.0, 100_000.0)  # prior weight in customers: from "barely any" to "the assumption rules"
MEASURED, ASSUMED = "measured", "assumed"


@dataclass(frozen=True)
class Cell:
    """One (tier, incentive) cell pooled over campaigns: customers and churners in both groups."""

    tier: str
    incentive: str
    treated: int
    treated_churned: int
    control: int
    control_churned: int


@dataclass(frozen=True)
class LearnedRate:
    """The save rate one offer gets in one tier in the next plan, and where it comes from."""

    rate: float  # what the plan uses
    assumed: float  # the catalogue's
    source: str  # "measured" (shrunk measurement) or "assumed" (no measurement: the catalogue's)
    measured: float | None = None  # 1 - churn treated / churn control, unshrunk
    measured_low: float | None = None  # its 95% interval (MOVER-R)
    measured_high: float | None = None
    treated: int = 0
    treated_churned: int = 0
    control: int = 0
    control_churned: int = 0
    data_weight: float = 0.0  # n / (n + k), n the smaller group: how much of the rate is measurement
    detectable_save_rate: float | None = None  # the smallest save rate these groups detect with 80% power


@dataclass
class Effects:
    """What the next plan reads: learned save rates {incentive: {tier: LearnedRate}} and how they were learned.
    `to_dict()` is the effects file; `read_effects` reads it back."""

    save_rates: dict[str, dict[str, LearnedRate]] = field(default_factory=dict)
    prior_strength: float = 0.0
    prior_strength_estimated: bool = True
    learned_from: list[dict[str, Any]] = field(default_factory=list)  # run, as_of, horizon_days per campaign
    uplift: dict[str, Any] = field(default_factory=dict)  # per offer: evaluation and use (churn.campaigns.uplift)

    def rate(self, incentive: str, tier: str) -> LearnedRate | None:
        """The learned rate of one offer in one tier, if the file has one."""
        return self.save_rates.get(incentive, {}).get(tier)

    def to_dict(self) -> dict[str, Any]:
        """The effects file's JSON form."""
        return _clean({"kind": EFFECTS_KIND, "version": EFFECTS_VERSION, **asdict(self)})


def pool_cells(effects: Sequence[CampaignEffect]) -> list[Cell]:
    """The (tier, incentive) cells of several measured campaigns, counts added up (margins left out)."""
    totals: dict[tuple[str, str], list[int]] = {}
    for ce in effects:
        for e in ce.estimates:
            if e.tier == ALL or e.incentive == ALL:
                continue
            t = totals.setdefault((e.tier, e.incentive), [0, 0, 0, 0])
            for i, v in enumerate((e.treated, e.treated_churned, e.control, e.control_churned)):
                t[i] += v
    return [Cell(tier, inc, *v) for (tier, inc), v in totals.items()]


def _tier_control_churn(cells: Sequence[Cell]) -> dict[str, float]:
    """Each tier's pooled control churn; 0 or 1 (no churner or only churners) is moved half a customer in,
    so the prior stays a proper Beta distribution."""
    out = {}
    for tier in dict.fromkeys(c.tier for c in cells):
        n = sum(c.control for c in cells if c.tier == tier)
        k = sum(c.control_churned for c in cells if c.tier == tier)
        if n:
            out[tier] = k / n if 0 < k < n else (k + 0.5) / (n + 1)
    return out


def _prior_means(cells: Sequence[Cell], assumed: dict[str, dict[str, float]]) -> list[tuple[Cell, float, float]]:
    """(cell, prior mean control churn, prior mean treated churn) for the cells that can be measured: both
    groups have customers and the catalogue has a rate for the cell."""
    m_c = _tier_control_churn(cells)
    out = []
    for c in cells:
        s = assumed.get(c.incentive, {}).get(c.tier)
        if s is None or not c.treated or not c.control or c.tier not in m_c:
            continue
        mt = min(max(m_c[c.tier] * (1 - s), 1e-6), 1 - 1e-6)
        out.append((c, m_c[c.tier], mt))
    return out


def prior_strength(cells: Sequence[Cell], assumed: dict[str, dict[str, float]]) -> float:
    """The prior weight k (customers) that makes the cells' counts most likely (Beta-binomial marginal
    likelihood of both arms, searched on log k within STRENGTH_BOUNDS); the upper bound without cells."""
    measured = _prior_means(cells, assumed)
    if not measured:
        return STRENGTH_BOUNDS[1]

    def neg_log_lik(log_k: float) -> float:
        k = math.exp(log_k)
        total = 0.0
        for c, mc, mt in measured:
            total += betabinom.logpmf(c.control_churned, c.control, k * mc, k * (1 - mc))
            total += betabinom.logpmf(c.treated_churned, c.treated, k * mt, k * (1 - mt))
        return -total

    lo, hi = (math.log(b) for b in STRENGTH_BOUNDS)
    res = minimize_scalar(neg_log_lik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(res.x))


def shrink(cells: Sequence[Cell], assumed: dict[str, dict[str, float]], strength: float | None = None,
           learned_from: list[dict[str, Any]] | None = None) -> Effects:
    """Learned save rates for every (incentive, tier) the catalogue (`assumed`: {incentive: {tier: rate}})
    names: the cell's measurement shrunk towards the assumption (Beta-binomial, both arms, prior weight
    `strength` customers, estimated from the cells when None), or the assumption where nothing was measured."""
    k = prior_strength(cells, assumed) if strength is None else float(strength)
    if not k > 0:
        raise ChurnError(f"the prior strength must be a positive number of customers, got {strength!r}")
    rates: dict[str, dict[str, LearnedRate]] = {
        inc: {tier: LearnedRate(rate=float(s), assumed=float(s), source=ASSUMED) for tier, s in by_tier.items()}
        for inc, by_tier in assumed.items()
    }
    for c, mc, mt in _prior_means(cells, assumed):
        pc = (k * mc + c.control_churned) / (k + c.control)
        pt = (k * mt + c.treated_churned) / (k + c.treated)
        raw = ratio_interval(c.treated_churned, c.treated, c.control_churned, c.control)
        p_control = c.control_churned / c.control
        detect = detectable_churn(p_control, c.treated, c.control)
        rates[c.incentive][c.tier] = LearnedRate(
            rate=1 - pt / pc, assumed=assumed[c.incentive][c.tier], source=MEASURED,
            measured=1 - raw[0], measured_low=1 - raw[2], measured_high=1 - raw[1],
            treated=c.treated, treated_churned=c.treated_churned, control=c.control,
            control_churned=c.control_churned, data_weight=min(c.treated, c.control) / (min(c.treated, c.control) + k),
            detectable_save_rate=None if math.isnan(detect) else 1 - detect / p_control,
        )
    return Effects(rates, k, strength is None, list(learned_from or []))


def catalogue_rates(config: Any) -> dict[str, dict[str, float]]:
    """The catalogue's save rates {incentive: {tier: rate}} for the tiers each offer is made in."""
    from churn.scoring.rules import offered_in_tier

    return {i.name: {t: float(r) for t, r in i.save_rate.items() if offered_in_tier(i, t)}
            for i in config.incentives.catalogue}


def _number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= float(value) <= high:
        raise ChurnError(f"{where}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)


def read_effects(path: str | Path) -> Effects:
    """Read and check an effects file (written by `churn campaign-effect`); a ChurnError names the file and
    the key that is wrong."""
    p = Path(path)
    if not p.is_file():
        raise ChurnError(f"{p}: no such effects file (write one with `churn campaign-effect`)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChurnError(f"{p}: not a JSON effects file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != EFFECTS_KIND:
        raise ChurnError(f"{p}: not an effects file: key 'kind' must be {EFFECTS_KIND!r}")
    if data.get("version") != EFFECTS_VERSION:
        raise ChurnError(f"{p}: effects file version {data.get('version')!r}; this churn reads {EFFECTS_VERSION}")
    rates = data.get("save_rates")
    if not isinstance(rates, dict):
        raise ChurnError(f"{p}: key 'save_rates' must map incentive -> tier -> rate")
    out: dict[str, dict[str, LearnedRate]] = {}
    known = set(LearnedRate.__dataclass_fields__)
    for inc, by_tier in rates.items():
        if not isinstance(by_tier, dict):
            raise ChurnError(f"{p}: save_rates.{inc} must map tier -> rate")
        for tier, r in by_tier.items():
            where = f"{p}: save_rates.{inc}.{tier}"
            if not isinstance(r, dict) or not known.issuperset(r) or "rate" not in r:
                raise ChurnError(f"{where}: expected keys among {sorted(known)} with at least 'rate'")
            rate = _number(r["rate"], f"{where}.rate", high=1.0)
            assumed = _number(r.get("assumed", rate), f"{where}.assumed", 0.0, 1.0)
            source = r.get("source", MEASURED)
            if source not in (MEASURED, ASSUMED):
                raise ChurnError(f"{where}.source: expected 'measured' or 'assumed', got {source!r}")
            out.setdefault(str(inc), {})[str(tier)] = LearnedRate(**{**r, "rate": rate, "assumed": assumed,
                                                                     "source": source})
    strength = data.get("prior_strength", 0.0)
    return Effects(out, _number(strength, f"{p}: prior_strength", 0.0), bool(data.get("prior_strength_estimated",
                                                                                       True)),
                   list(data.get("learned_from") or []), dict(data.get("uplift") or {}))


def applied_rates(effects: Effects | None, assumed: dict[str, dict[str, float]]
                  ) -> dict[str, dict[str, LearnedRate]]:
    """{incentive: {tier: the rate the plan uses}} for every rate of the catalogue (`assumed`): the effects
    file's measured rate where it has one, clipped to [0, 1] (a harmful offer is simply not worth making),
    else the catalogue's ("assumed"). Rates the catalogue does not make are never added."""
    out: dict[str, dict[str, LearnedRate]] = {}
    for inc, by_tier in assumed.items():
        for tier, s in by_tier.items():
            learned = effects.rate(inc, tier) if effects else None
            if learned is None or learned.source != MEASURED or not np.isfinite(learned.rate):
                out.setdefault(inc, {})[tier] = LearnedRate(rate=float(s), assumed=float(s), source=ASSUMED)
            else:
                out.setdefault(inc, {})[tier] = replace(learned, rate=float(min(max(learned.rate, 0.0), 1.0)),
                                                        assumed=float(s))
    return out
