"""Learning from campaigns: measured save rates, shrunk towards the catalogue's assumption by their uncertainty,
written to an effects file that the next plan reads (`churn score --effects FILE`).

The shrinkage is Beta-binomial empirical Bayes on both arms of every (tier, incentive) cell:

* the control group's churn has the prior ``Beta(k_c m_c, k_c (1 - m_c))``. ``m_c`` is what the cell's
  customers would churn without a contact: the churn model's mean probability for them, recalibrated on
  the tier's control groups (their churners over their predicted churn), so a cell of riskier customers
  than the tier's average expects more churn; without probabilities, the tier's pooled control churn;
* the treated group's churn has the prior ``Beta(k_t m_t, k_t (1 - m_t))`` with ``m_t = m_c (1 - s)``, ``s``
  the catalogue's save rate for the cell: the assumption, written as a churn rate;
* ``k_c``, the control arm's prior weight in customers, maximises its Beta-binomial likelihood over every
  cell (empirical Bayes): when control groups churn as the model expects, ``k_c`` is large and a small
  control group borrows strength from the model and the other cells;
* ``k_t``, the catalogue's weight in customers, is chosen by what the next plan needs: rates that hold in a
  campaign they were not learnt from. With two or more campaigns that measured some of the same cells, each
  campaign in turn is held out, the rates are learnt from the others, and ``k_t`` maximises the held-out
  campaigns' likelihood of their treated churn in those cells (given their own expected control churn).
  An offer's effect that moves from month to month (a different mix of persuadable customers, a price
  change) makes yesterday's measurement a poor guide however precise it is, and the held-out campaigns
  show it: the catalogue keeps more weight. With one campaign (or campaigns that measured different cells)
  nothing can be held out, and ``k_t`` maximises the treated arm's Beta-binomial likelihood over the
  cells, as ``k_c`` does (how far the campaign is from the assumption beyond chance);
* the learned rate is ``1 - E[p_t] / E[p_c]`` with the posterior means ``(k m + churned) / (k + customers)``.

A cell without customers in both groups keeps the catalogue's rate ("assumed"); an offer the catalogue does
not make in a tier is never given one. The effects file records, per offer and tier, the learned rate, the
assumption, the raw measurement and its interval, the counts and the data's weight in the rate.
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

from churn.campaigns.effect import ALL, CampaignEffect, Counts, Estimate, _clean
from churn.campaigns.stats import detectable_churn, ratio_interval
from churn.errors import ChurnError

EFFECTS_KIND = "churn-effects"
EFFECTS_VERSION = 1
STRENGTH_BOUNDS = (1.0, 100_000.0)  # prior weight in customers: from "barely any" to "the assumption rules"
HELD_OUT_GRID = 41  # catalogue weights tried on held-out campaigns, log-spaced over STRENGTH_BOUNDS
MEASURED, ASSUMED = "measured", "assumed"
HELD_OUT, MARGINAL, GIVEN = "held-out campaigns", "marginal likelihood", "given"


@dataclass(frozen=True)
class Cell(Counts):
    """One (tier, incentive) cell pooled over campaigns: customers and churners in both groups, and the churn
    the model predicted for each group (sum of probabilities; NaN when the plans had none)."""

    treated_predicted: float = float("nan")
    control_predicted: float = float("nan")


@dataclass(frozen=True)
class LearnedRate:
    """The save rate one offer gets in one tier in the next plan, and where it comes from."""

    rate: float  # what the plan uses
    assumed: float  # the catalogue's
    source: str  # "measured" (shrunk measurement) or "assumed" (no measurement: the catalogue's)
    expected_control_churn: float | None = None  # the control prior's mean m_c (None: assumed)
    measured: float | None = None  # 1 - churn treated / churn control, unshrunk
    measured_low: float | None = None  # its 95% interval (MOVER-R)
    measured_high: float | None = None
    treated: int = 0
    treated_churned: int = 0
    control: int = 0
    control_churned: int = 0
    data_weight: float = 0.0  # treated / (treated + k_t): how much of the treated churn is measurement
    detectable_save_rate: float | None = None  # the smallest save rate these groups detect with 80% power


@dataclass
class Effects:
    """What the next plan reads: learned save rates {incentive: {tier: LearnedRate}} and how they were learned.
    `to_dict()` is the effects file; `read_effects` reads it back."""

    save_rates: dict[str, dict[str, LearnedRate]] = field(default_factory=dict)
    prior_strength: float = 0.0  # k_t: the catalogue's weight in customers (treated arm)
    prior_strength_estimated: bool = True
    prior_strength_method: str = MARGINAL  # how k_t was chosen: held-out campaigns, marginal likelihood, given
    control_prior_strength: float = 0.0  # k_c: the expected churn's weight in customers (control arm)
    learned_from: list[dict[str, Any]] = field(default_factory=list)  # run, as_of, horizon_days per campaign
    # Per-customer effects (`churn.campaigns.uplift.uplift_record`): the churn model they were learned on and,
    # per offer, the held-out evaluation, why, and the chosen model's numbers.
    uplift: dict[str, Any] = field(default_factory=dict)

    def rate(self, incentive: str, tier: str) -> LearnedRate | None:
        """The learned rate of one offer in one tier, if the file has one."""
        return self.save_rates.get(incentive, {}).get(tier)

    def uplift_models(self, where: str = "uplift") -> dict[str, Any]:
        """{offer: fitted uplift model} the plan prices those offers with, customer by customer."""
        from churn.campaigns.uplift import uplift_models

        return uplift_models(self.uplift, where)

    def to_dict(self) -> dict[str, Any]:
        """The effects file's JSON form."""
        return _clean({"kind": EFFECTS_KIND, "version": EFFECTS_VERSION, **asdict(self)})


def pool_cells(effects: Sequence[CampaignEffect | Sequence[Estimate]]) -> list[Cell]:
    """The (tier, incentive) cells of several measured campaigns (or their estimates), counts and predicted
    churn added up (margins left out)."""
    return _add_cells([[Cell(e.tier, e.incentive, e.treated, e.treated_churned, e.control, e.control_churned,
                             e.predicted_churn_treated * e.treated if e.treated else 0.0,
                             e.predicted_churn_control * e.control if e.control else 0.0)
                        for e in (ce.estimates if isinstance(ce, CampaignEffect) else ce)
                        if e.tier != ALL and e.incentive != ALL] for ce in effects])


def _inside(m: float) -> float:
    """A prior mean kept strictly inside (0, 1), so the Beta prior is proper."""
    return min(max(m, 1e-6), 1 - 1e-6)


def _control_means(cells: Sequence[Cell]) -> dict[tuple[str, str], float]:
    """Each cell's expected control churn m_c: the model's mean probability over its customers (both groups:
    the same customers, split at random) times the tier's calibration (control churners / their predicted
    churn); the tier's pooled control churn where a cell or tier has no probabilities. A tier without any
    control churner is moved half a customer in."""
    out: dict[tuple[str, str], float] = {}
    for tier in dict.fromkeys(c.tier for c in cells):
        mine = [c for c in cells if c.tier == tier and c.control]
        n = sum(c.control for c in mine)
        if not n:
            continue
        k = sum(c.control_churned for c in mine)
        churners = k if 0 < k < n else k + 0.5
        pooled = churners / (n + (0 if 0 < k < n else 1))
        predicted = sum(c.control_predicted for c in mine)
        factor = churners / predicted if predicted > 0 and math.isfinite(predicted) else None
        for c in mine:
            p = (c.treated_predicted + c.control_predicted) / (c.treated + c.control)
            out[(tier, c.incentive)] = _inside(p * factor if factor and math.isfinite(p) else pooled)
    return out


def _prior_means(cells: Sequence[Cell], assumed: dict[str, dict[str, float]]) -> list[tuple[Cell, float, float]]:
    """(cell, prior mean control churn, prior mean treated churn) for the cells that can be measured: both
    groups have customers and the catalogue has a rate for the cell."""
    m_c = _control_means(cells)
    out = []
    for c in cells:
        s = assumed.get(c.incentive, {}).get(c.tier)
        if s is None or not c.treated or not c.control or (c.tier, c.incentive) not in m_c:
            continue
        mc = m_c[(c.tier, c.incentive)]
        out.append((c, mc, _inside(mc * (1 - s))))
    return out


def _strength(counts: list[tuple[int, int, float]]) -> float:
    """The Beta-binomial prior weight k maximising the likelihood of (churned, customers, prior mean) over
    cells, searched on log k within STRENGTH_BOUNDS; the upper bound without cells."""
    if not counts:
        return STRENGTH_BOUNDS[1]

    def neg_log_lik(log_k: float) -> float:
        k = math.exp(log_k)
        return -sum(float(betabinom.logpmf(y, n, k * m, k * (1 - m))) for y, n, m in counts)

    lo, hi = (math.log(b) for b in STRENGTH_BOUNDS)
    res = minimize_scalar(neg_log_lik, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(math.exp(res.x))


def prior_strength(cells: Sequence[Cell], assumed: dict[str, dict[str, float]]) -> tuple[float, float]:
    """(k_c, k_t): each arm's prior weight (customers) that makes the cells' counts most likely."""
    measured = _prior_means(cells, assumed)
    return (_strength([(c.control_churned, c.control, mc) for c, mc, _ in measured]),
            _strength([(c.treated_churned, c.treated, mt) for c, _, mt in measured]))


def _rates_at(measurable: list[tuple[Cell, float, float]], k_c: float, k_t: float) -> dict[tuple[str, str], float]:
    """{(incentive, tier): learned rate} of measurable cells (`_prior_means`) at prior weights (k_c, k_t)."""
    out = {}
    for c, mc, mt in measurable:
        pc = (k_c * mc + c.control_churned) / (k_c + c.control)
        pt = (k_t * mt + c.treated_churned) / (k_t + c.treated)
        out[(c.incentive, c.tier)] = 1 - pt / pc
    return out


def _held_out_folds(campaigns: Sequence[Sequence[Cell]], assumed: dict[str, dict[str, float]]
                    ) -> list[tuple[list[tuple[Cell, float, float]], float, list[tuple[Cell, float, float]]]]:
    """For each campaign in turn: the other campaigns' measurable cells (pooled), their control weight k_c,
    and the held-out campaign's cells that the others measured too (a cell nobody else measured is
    predicted by the catalogue whatever the weight, so it says nothing about the weight). Folds with no
    such cell are left out."""
    kept = _measurable(campaigns, assumed)
    folds = []
    for j, held in enumerate(kept):
        others = _add_cells([cells for i, cells in enumerate(kept) if i != j])
        learnt = _prior_means(others, assumed)
        keys = {(c.incentive, c.tier) for c, _, _ in learnt}
        predicted = [h for h in _prior_means(held, assumed) if (h[0].incentive, h[0].tier) in keys]
        if predicted:
            folds.append((learnt, prior_strength(others, assumed)[0], predicted))
    return folds


def held_out_strength(campaigns: Sequence[Sequence[Cell]], assumed: dict[str, dict[str, float]]) -> float:
    """The catalogue's weight k_t whose rates, learnt from all campaigns but one, best predict the one left
    out: the sum over held-out campaigns and their cells measured by the others too of the binomial
    log-likelihood of the treated churners at p = m_c x (1 - learned rate), m_c the held-out cell's own
    expected control churn (the model's, recalibrated on that campaign's control groups), p kept inside
    (0, 1); each fold's control weight k_c from its own campaigns. Maximised on a log-spaced grid over
    STRENGTH_BOUNDS (ties: the larger weight). Needs two campaigns whose cells the others measured too."""
    folds = _held_out_folds(campaigns, assumed)
    if len(folds) < 2:
        raise ValueError("held-out campaigns need two campaigns with cells the other campaigns measured too")
    return _best_weight(folds)


def _best_weight(folds: list[tuple[list[tuple[Cell, float, float]], float, list[tuple[Cell, float, float]]]]
                 ) -> float:
    """The grid weight with the largest held-out log-likelihood over `folds` (`held_out_strength`)."""
    from scipy.stats import binom

    grid = np.exp(np.linspace(*(math.log(b) for b in STRENGTH_BOUNDS), HELD_OUT_GRID))
    best, best_ll = float(grid[-1]), -math.inf
    for k in grid[::-1]:  # from the catalogue's side: a tie keeps the larger weight
        ll = 0.0
        for learnt, k_c, predicted in folds:
            rates = _rates_at(learnt, k_c, float(k))
            for c, mc, _ in predicted:
                p = _inside(mc * (1 - rates[(c.incentive, c.tier)]))
                ll += float(binom.logpmf(c.treated_churned, c.treated, p))
        if ll > best_ll + 1e-9:
            best, best_ll = float(k), ll
    return best


def _measurable(campaigns: Sequence[Sequence[Cell]], assumed: dict[str, dict[str, float]]) -> list[list[Cell]]:
    """The campaigns with at least one cell that can be measured (both groups, a catalogue rate)."""
    return [list(cells) for cells in campaigns if _prior_means(cells, assumed)]


def _counts(cells: Sequence[Cell]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    return {(c.tier, c.incentive): (c.treated, c.treated_churned, c.control, c.control_churned) for c in cells}


def _add_cells(campaigns: Sequence[Sequence[Cell]]) -> list[Cell]:
    """Cells of several campaigns added up per (tier, incentive), as `pool_cells` adds measured campaigns."""
    totals: dict[tuple[str, str], Cell] = {}
    for cells in campaigns:
        for c in cells:
            t = totals.get((c.tier, c.incentive))
            totals[(c.tier, c.incentive)] = c if t is None else Cell(
                c.tier, c.incentive, t.treated + c.treated, t.treated_churned + c.treated_churned,
                t.control + c.control, t.control_churned + c.control_churned,
                t.treated_predicted + c.treated_predicted, t.control_predicted + c.control_predicted)
    return list(totals.values())


def shrink(cells: Sequence[Cell], assumed: dict[str, dict[str, float]], strength: float | None = None,
           learned_from: list[dict[str, Any]] | None = None,
           campaigns: Sequence[Sequence[Cell]] | None = None) -> Effects:
    """Learned save rates for every (incentive, tier) the catalogue (`assumed`: {incentive: {tier: rate}})
    names: the cell's measurement shrunk towards the assumption (Beta-binomial on both arms), or the
    assumption where nothing was measured. The prior weights: `strength` customers for both arms when given;
    else the control arm's by marginal likelihood and the catalogue's by held-out campaigns when
    `campaigns` (each campaign's own cells; `cells` is their pool) holds two or more, by marginal likelihood
    otherwise (the module docstring says why)."""
    if strength is not None and not (isinstance(strength, (int, float)) and strength > 0):
        raise ChurnError(f"the prior strength must be a positive number of customers, got {strength!r}")
    if campaigns is not None and _counts(_add_cells(campaigns)) != _counts(cells):
        raise ValueError("`cells` must be the pool of `campaigns`")
    if strength is not None:
        k_c, k_t, method = float(strength), float(strength), GIVEN
    else:
        k_c, k_t = prior_strength(cells, assumed)
        method = MARGINAL
        folds = _held_out_folds(campaigns, assumed) if campaigns is not None else []
        if len(folds) >= 2:
            k_t, method = _best_weight(folds), HELD_OUT
    rates: dict[str, dict[str, LearnedRate]] = {
        inc: {tier: LearnedRate(rate=float(s), assumed=float(s), source=ASSUMED) for tier, s in by_tier.items()}
        for inc, by_tier in assumed.items()
    }
    learnt = _prior_means(cells, assumed)
    rate_of = _rates_at(learnt, k_c, k_t)
    for c, mc, _ in learnt:
        raw = ratio_interval(c.treated_churned, c.treated, c.control_churned, c.control)
        p_control = c.control_churned / c.control
        detect = detectable_churn(p_control, c.treated, c.control)
        rates[c.incentive][c.tier] = LearnedRate(
            rate=rate_of[(c.incentive, c.tier)], assumed=assumed[c.incentive][c.tier], expected_control_churn=mc,
            source=MEASURED,
            measured=1 - raw[0], measured_low=1 - raw[2], measured_high=1 - raw[1],
            treated=c.treated, treated_churned=c.treated_churned, control=c.control,
            control_churned=c.control_churned, data_weight=c.treated / (c.treated + k_t),
            detectable_save_rate=None if math.isnan(detect) else 1 - detect / p_control,
        )
    return Effects(rates, prior_strength=k_t, prior_strength_estimated=strength is None,
                   prior_strength_method=method, control_prior_strength=k_c,
                   learned_from=list(learned_from or []))


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
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSONDecodeError, or a number too long
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
    uplift = data.get("uplift", {})
    uplift = {} if uplift is None else uplift
    if not isinstance(uplift, dict):
        raise ChurnError(f"{p}: key 'uplift' must be a mapping")
    effects = Effects(out, prior_strength=_number(strength, f"{p}: prior_strength", 0.0),
                      prior_strength_estimated=bool(data.get("prior_strength_estimated", True)),
                      prior_strength_method=_method(data, p),
                      control_prior_strength=_number(data.get("control_prior_strength", 0.0),
                                                     f"{p}: control_prior_strength", 0.0),
                      learned_from=list(data.get("learned_from") or []), uplift=dict(uplift))
    effects.uplift_models(f"{p}: uplift")  # a damaged model is refused here, before any scoring work
    return effects


def _method(data: dict[str, Any], p: Path) -> str:
    """How an effects file's catalogue weight was chosen (files written before it was recorded: estimated
    weights by marginal likelihood, the others given)."""
    method = data.get("prior_strength_method",
                      MARGINAL if bool(data.get("prior_strength_estimated", True)) else GIVEN)
    if method not in (HELD_OUT, MARGINAL, GIVEN):
        raise ChurnError(f"{p}: prior_strength_method must be one of {HELD_OUT!r}, {MARGINAL!r}, {GIVEN!r}, "
                         f"got {method!r}")
    return method


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
