"""The statistics of a campaign against its control group: intervals, the test, and the sample-size arithmetic.

Pure functions of counts (scipy for the normal quantiles and root finding; no statsmodels):

* `wilson_interval`: the score interval for one proportion (Wilson 1927);
* `newcombe_interval`: the difference of two independent proportions, Newcombe's hybrid score interval
  ("method 10" of Newcombe 1998, Stat Med 17:873-890): with Wilson limits ``(l1, u1)`` and ``(l2, u2)``,
  ``L = d - sqrt((p1 - l1)^2 + (u2 - p2)^2)`` and ``U = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)``, ``d = p1 - p2``;
* `ratio_interval`: the ratio of two proportions by MOVER-R (Zou & Donner 2008, Stat Med 27:1693-1702;
  Donner & Zou 2012, Stat Methods Med Res 21:347-359), the same recovery of variance from Wilson limits
  applied to ``p1 - R p2 = 0``; the save rate ``1 - p_treated / p_control`` takes its interval from it;
* `two_proportion_test`: the pooled two-sided z test;
* `power`, `detectable_churn`, `controls_needed`, `recommended_control_share`: the power of that test for
  unequal groups without continuity correction (Fleiss, Levin & Paik 2003, "Statistical Methods for Rates
  and Proportions", 3rd ed., section 4.4): ``|p1 - p2| = z(1-a/2) sqrt(pbar qbar (1/n1 + 1/n2)) +
  z(power) sqrt(p1 q1 / n1 + p2 q2 / n2)``, ``pbar = (n1 p1 + n2 p2) / (n1 + n2)``.

Counts are whole numbers of customers; an empty group gives NaN limits rather than an error, because a tier
or an offer without customers on one side is a normal part of a campaign table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq
from scipy.stats import norm

ALPHA = 0.05
POWER = 0.80
NAN = float("nan")


def _z(alpha: float) -> float:
    return float(norm.ppf(1 - alpha / 2))


def wilson_interval(k: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson's score interval for the proportion `k` of `n` (NaN limits when n is 0)."""
    if n <= 0:
        return NAN, NAN
    z = _z(alpha)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score interval for the difference of two proportions."""
    if n1 <= 0 or n2 <= 0:
        return NAN, NAN, NAN
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, alpha)
    l2, u2 = wilson_interval(k2, n2, alpha)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _quadratic_root(a: float, b: float, c: float, sign: float) -> float:
    """The root ``(-b + sign sqrt(b^2 - 4ac)) / 2a`` of a x^2 + b x + c (the linear root when a is 0)."""
    if abs(a) < 1e-15:
        return -c / b if b else NAN
    disc = max(b * b - 4 * a * c, 0.0)  # rounding only: the MOVER limits always exist
    return (-b + sign * math.sqrt(disc)) / (2 * a)


def ratio_interval(k1: int, n1: int, k2: int, n2: int, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(p1 / p2, lower, upper) by MOVER-R with Wilson limits; NaN when p2 is 0 (the ratio is undefined), an
    infinite upper limit when no event is seen in group 2's interval."""
    if n1 <= 0 or n2 <= 0 or k2 == 0:
        return NAN, NAN, NAN
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, alpha)
    l2, u2 = wilson_interval(k2, n2, alpha)
    # R is in the interval where 0 lies in the MOVER interval of p1 - R p2; its ends solve
    # (p1 - R p2)^2 = (p1 - l1)^2 + R^2 (u2 - p2)^2   (lower)   and   = (u1 - p1)^2 + R^2 (p2 - l2)^2   (upper).
    lower = _quadratic_root(u2 * (2 * p2 - u2), -2 * p1 * p2, l1 * (2 * p1 - l1), -1.0)
    a_up = l2 * (2 * p2 - l2)
    upper = math.inf if a_up <= 0 else _quadratic_root(a_up, -2 * p1 * p2, u1 * (2 * p1 - u1), 1.0)
    return p1 / p2, max(lower, 0.0), upper


def two_proportion_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) of the pooled z test of p1 = p2; (0, 1) when every or no customer churned."""
    if n1 <= 0 or n2 <= 0:
        return NAN, NAN
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, float(2 * norm.sf(abs(z)))


def power(p_treated: float, p_control: float, n_treated: int, n_control: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided pooled z test to tell churn `p_treated` from `p_control` with these groups."""
    if n_treated <= 0 or n_control <= 0:
        return 0.0
    pbar = (n_treated * p_treated + n_control * p_control) / (n_treated + n_control)
    null_sd = math.sqrt(pbar * (1 - pbar) * (1 / n_treated + 1 / n_control))
    alt_sd = math.sqrt(p_treated * (1 - p_treated) / n_treated + p_control * (1 - p_control) / n_control)
    if alt_sd == 0:
        return 1.0 if p_treated != p_control else 0.0
    return float(norm.cdf((abs(p_control - p_treated) - _z(alpha) * null_sd) / alt_sd))


def detectable_churn(p_control: float, n_treated: int, n_control: int, target: float = POWER,
                     alpha: float = ALPHA) -> float:
    """The highest churn among the treated that these groups detect with `target` power when the control
    group churns at `p_control` (smaller reductions go unnoticed); NaN when not even 0 would be."""
    if not 0 < p_control < 1 or n_treated <= 0 or n_control <= 0:
        return NAN
    gap = lambda p: power(p, p_control, n_treated, n_control, alpha) - target  # noqa: E731
    if gap(0.0) < 0:
        return NAN
    if gap(p_control * (1 - 1e-9)) >= 0:  # pragma: no cover - only with astronomically many customers
        return p_control
    return float(brentq(gap, 0.0, p_control * (1 - 1e-9), xtol=1e-10))


def controls_needed(p_control: float, save_rate: float, control_share: float, target: float = POWER,
                    alpha: float = ALPHA) -> int | None:
    """How many control customers (with ``(1 - share) / share`` times as many treated) detect a save rate
    `save_rate` at control churn `p_control` with `target` power; None when the rate is 0 or undefined."""
    if not 0 < p_control < 1 or not 0 < save_rate <= 1 or not 0 < control_share < 1:
        return None
    p_treated = p_control * (1 - save_rate)
    ratio = (1 - control_share) / control_share

    def gap(n_control: float) -> float:
        return power(p_treated, p_control, max(1, round(n_control * ratio)), max(1, round(n_control)), alpha) - target

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
        if hi > 1e12:  # pragma: no cover - a save rate of a billionth
            return None
    lo = hi / 2
    while hi - lo > 0.5:  # integer search on a monotone power curve
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    return int(math.ceil(hi))


@dataclass(frozen=True)
class ControlAdvice:
    """How big the next campaign's control group in one tier must be to detect the save rate it expects."""

    customers: int  # customers in the tier's campaign (treated + control), as in the campaign measured
    control_churn: float  # churn of the control group measured
    save_rate: float  # the save rate the next campaign should be able to detect
    controls_needed: int | None  # control customers for 80% power at the current share
    current_share: float
    recommended_share: float | None  # smallest share (in steps of 1%, at most 50%) with 80% power; None: none
    campaigns_needed: int | None  # campaigns of this size to pool at the current share for 80% power


def recommended_control_share(customers: int, p_control: float, save_rate: float, current_share: float,
                              target: float = POWER, alpha: float = ALPHA) -> ControlAdvice:
    """The smallest control share (1% steps, up to 50%) that gives `target` power to detect `save_rate` in a
    campaign of `customers`, and how many campaigns of that size pooled at `current_share` would."""
    need = controls_needed(p_control, save_rate, current_share, target, alpha) if current_share > 0 else None
    share = None
    if 0 < p_control < 1 and 0 < save_rate <= 1 and customers > 0:
        for pct in range(1, 51):
            n_c = round(customers * pct / 100)
            if n_c and power(p_control * (1 - save_rate), p_control, customers - n_c, n_c, alpha) >= target:
                share = pct / 100
                break
    held = round(customers * current_share)
    campaigns = math.ceil(need / held) if need and held else None
    return ControlAdvice(customers, p_control, save_rate, need, current_share, share, campaigns)
