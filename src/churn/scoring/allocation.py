"""Budgeted retention plan: who gets which incentive, through which channel, and who is held out.

Steps (each a pure function of in-memory frames; `plan_retention` wires them):

1. tiers (`tiers.assign_tiers`) and customer value (`value.customer_value`); ``expected_loss = p x value``;
2. contact rules (`rules.contact_blocks`): exclusions, consent, cool-down, each with a reason;
3. control group: in every tier, ``floor(control_share x contactable + 0.5)`` contactable customers are
   held out, chosen by a seeded hash of their id (order-independent, stable when customers come and go);
4. options: for every contactable customer and eligible incentive,
   ``net = p x value x save_rate[tier] - (unit_cost + cost_share_of_fee x monthly revenue + contact cost)``;
5. allocation (`solve_mckp`): at most one incentive each, maximising total net value under the budget
   and per-incentive caps; options with net <= 0 are never given;
6. the control group's ``would_be_incentive``: the same prices (budget and cap multipliers) applied to them;
7. channel and message per contacted customer (`messages.render_messages`).

The allocation is a multiple-choice knapsack. `solve_mckp` solves its Lagrangian relaxation - every
customer takes the option maximising ``net - lambda x cost - mu[incentive]`` if that is positive - with the
budget multiplier ``lambda`` found by bisection and the cap multipliers ``mu`` raised until no cap is
exceeded, then repairs to exact feasibility and spends what is left greedily by marginal
net-value-per-cost. It is vectorised numpy (a few dozen passes over an n x incentives array), so millions of
customers take seconds; on small instances it lands within about 1% of the exact optimum (see the tests,
which compare with ``scipy.optimize.milp``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churn.config import ChannelsConfig, Config, Incentive
from churn.errors import ChurnError
from churn.scoring import rules, status
from churn.scoring.messages import normalise_language, render_messages
from churn.scoring.summary import IncentiveResult, PlanSummary, TierControl, TierSize, WinBack
from churn.scoring.tiers import RiskTiers
from churn.scoring.value import value_from_revenue, value_parts

EXACT_MAX_OPTIONS = 5_000  # campaigns with at most this many worthwhile (customer, offer) pairs: exact too
REASON_NO_SCORE = status.STATUS_TEXT[status.NO_SCORE]
REASON_CONTROL = "control group"
REASON_NOT_ELIGIBLE = "not eligible for any incentive"
REASON_NOT_WORTH = "no offer worth its cost"
REASON_BUDGET = "budget exhausted"
REASON_CAP = "incentive cap reached"


# ============================================================================== the knapsack solver
@dataclass
class MCKPSolution:
    """An allocation: ``choice[i]`` is the option index given to row i, -1 for none."""

    choice: np.ndarray
    budget_multiplier: float  # lambda: net value one more unit of budget would buy, at the margin
    cap_multipliers: np.ndarray  # mu per option: value of one more place under that option's cap
    spend: float
    value: float


def _prices_choice(net: np.ndarray, cost: np.ndarray, lam: float, mu: np.ndarray) -> np.ndarray:
    """Each row's option maximising ``net - lam*cost - mu`` if positive, else -1 (ties: lowest index)."""
    if net.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    s = net - lam * cost
    s -= mu
    j = np.argmax(s, axis=1)
    best = np.take_along_axis(s, j[:, None], axis=1)[:, 0]
    return np.where(best > 0, j, -1)


def _fit_caps(
    net: np.ndarray, cost: np.ndarray, caps: np.ndarray, lam: float, stall: float, max_rounds: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """Choice at budget price `lam` with cap prices mu raised until no cap is exceeded (auction-style).

    Stops early when a round raises no price by more than `stall` (a price war over near-indifferent
    rows); the hard repair then settles the last few places."""
    k, m = net.shape
    mu = np.zeros(m)
    capped = np.isfinite(caps)
    base = net - lam * cost
    # Rows with nothing worth taking at this budget price never take anything (mu only lowers scores).
    live = np.flatnonzero(base.max(axis=1) > 0)
    base = base[live]
    full = np.full(k, -1, dtype=np.int64)
    for _ in range(max_rounds):
        s = base - mu
        j = np.argmax(s, axis=1)
        best = np.take_along_axis(s, j[:, None], axis=1)[:, 0]
        ch = np.where(best > 0, j, -1)
        if not capped.any():
            full[live] = ch
            return full, mu
        counts = np.bincount(ch[ch >= 0], minlength=m)
        over = np.flatnonzero(capped & (counts > caps))
        if over.size == 0:
            full[live] = ch
            return full, mu
        raised = 0.0
        for o in over:
            rows = s[ch == o]
            own = rows[:, o].copy()
            rows[:, o] = -np.inf
            alt = np.maximum(rows.max(axis=1), 0.0)
            margin = own - alt
            keep = int(caps[o])
            # Raise mu[o] to the (keep+1)-th largest margin: at most `keep` rows still prefer o.
            delta = np.partition(margin, margin.size - keep - 1)[margin.size - keep - 1]
            step = delta + 1e-9 * max(1.0, abs(delta))
            mu[o] += step
            raised = max(raised, step)
        if raised < stall:
            # A price war between full options over near-indifferent customers: stop and repair.
            break
    ch = _prices_choice(net, cost, lam, mu)
    return _trim_caps(net, cost, ch, caps, lam, mu), mu


def _trim_caps(
    net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, lam: float, mu: np.ndarray
) -> np.ndarray:
    """Hard cap repair: keep the `cap` rows with the best priced margin on each over-full option; the
    rest go without (the greedy fill then offers them what still has room and budget)."""
    ch = ch.copy()
    for o in np.flatnonzero(np.isfinite(caps)):
        rows = np.flatnonzero(ch == o)
        if rows.size > caps[o]:
            score = net[rows, o] - lam * cost[rows, o]
            order = np.lexsort((rows, -score))
            ch[rows[order[int(caps[o]):]]] = -1
    return ch


def _state(net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, budget: float):
    ar = np.arange(net.shape[0])
    given = ch >= 0
    cur_n = np.where(given, net[ar, np.maximum(ch, 0)], 0.0)
    cur_c = np.where(given, cost[ar, np.maximum(ch, 0)], 0.0)
    left = budget - float(cur_c.sum())
    room = caps - np.bincount(ch[given], minlength=net.shape[1])
    return cur_n, cur_c, left, room


def _swap(
    net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, budget: float, k_cand: int = 256
) -> np.ndarray | None:
    """One best 1-for-1 exchange: drop one given row, give another row an option (or a better one), where
    the pair raises total net and stays within budget and caps (the dropped row's place may be reused).
    Candidates: every move on small problems, the most promising few hundred on large ones. None if no
    exchange improves."""
    cur_n, cur_c, left, room = _state(net, cost, ch, caps, budget)
    outs = np.flatnonzero(ch >= 0)
    if outs.size == 0:
        return None
    dn = net - cur_n[:, None]
    dc = cost - cur_c[:, None]
    ins_r, ins_j = np.nonzero(dn > 1e-9)
    if ins_r.size == 0:
        return None
    gain, extra = dn[ins_r, ins_j], dc[ins_r, ins_j]
    loss, freed = cur_n[outs], cur_c[outs]
    if outs.size > 2 * k_cand:
        keep = np.union1d(np.argsort(loss, kind="stable")[:k_cand],
                          np.argsort(-(freed - loss), kind="stable")[:k_cand])
        outs, loss, freed = outs[keep], loss[keep], freed[keep]
    if ins_r.size > 2 * k_cand:
        keep = np.union1d(np.argsort(-gain, kind="stable")[:k_cand],
                          np.argsort(-(gain - extra), kind="stable")[:k_cand])
        ins_r, ins_j, gain, extra = ins_r[keep], ins_j[keep], gain[keep], extra[keep]
    val = gain[None, :] - loss[:, None]
    ok = (val > 1e-9) & (extra[None, :] - freed[:, None] <= left)
    ok &= outs[:, None] != ins_r[None, :]
    ok &= (room[ins_j] > 0)[None, :] | (ch[outs][:, None] == ins_j[None, :])
    if not ok.any():
        return None
    flat = int(np.argmax(np.where(ok, val, -np.inf)))
    a, b = divmod(flat, ins_r.size)
    new = ch.copy()
    new[outs[a]] = -1
    new[ins_r[b]] = ins_j[b]
    return new


def _totals(net: np.ndarray, cost: np.ndarray, ch: np.ndarray) -> tuple[float, float]:
    given = ch >= 0
    r = np.flatnonzero(given)
    return float(cost[r, ch[r]].sum()), float(net[r, ch[r]].sum())


def _improve(
    net: np.ndarray,
    cost: np.ndarray,
    ch: np.ndarray,
    caps: np.ndarray,
    budget: float,
    max_rounds: int = 40,
    sequential_limit: int = 20_000,
    frozen: int | None = None,
) -> np.ndarray:
    """Spend what is left: greedy moves (give an option, or switch to a better one) by best
    extra-net-per-extra-cost, never exceeding the budget or a cap. Every accepted move raises total net.
    Row `frozen` is left as it is."""
    k, m = net.shape
    ch = ch.copy()
    ar = np.arange(k)
    for _ in range(max_rounds):
        given = ch >= 0
        cur_n = np.where(given, net[ar, np.maximum(ch, 0)], 0.0)
        cur_c = np.where(given, cost[ar, np.maximum(ch, 0)], 0.0)
        left = budget - float(cur_c.sum())
        counts = np.bincount(ch[given], minlength=m)
        room = caps - counts
        dn = net - cur_n[:, None]
        dc = cost - cur_c[:, None]
        ok = (dn > 1e-9) & (dc <= left) & (room > 0)[None, :]
        if frozen is not None:
            ok[frozen] = False
        rows = np.flatnonzero(ok.any(axis=1))
        if rows.size == 0:
            break
        okr, dnr, dcr = ok[rows], dn[rows], dc[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dcr > 0, dnr / dcr, np.inf)
        free = okr & (dcr <= 0)
        j = np.where(
            free.any(axis=1),
            np.argmax(np.where(free, dnr, -np.inf), axis=1),
            np.argmax(np.where(okr, ratio, -np.inf), axis=1),
        )
        r_ratio = ratio[np.arange(rows.size), j]
        r_dn = dnr[np.arange(rows.size), j]
        r_dc = dcr[np.arange(rows.size), j]
        order = np.lexsort((rows, -r_dn, -r_ratio))  # best ratio first, then bigger gain, then row
        rows, j, r_dc = rows[order], j[order], r_dc[order]
        # Vectorised prefix: per-option rank within room, then the budget prefix.
        rank = pd.Series(j).groupby(j).cumcount().to_numpy()
        cap_ok = rank < room[j]
        cum = np.cumsum(np.where(cap_ok, r_dc, 0.0))
        bad = np.flatnonzero(cum > left)
        stop = bad[0] if bad.size else rows.size
        acc = cap_ok.copy()
        acc[stop:] = False
        ch[rows[acc]] = j[acc]
        # Then one sequential pass over the rest: skip what does not fit, take what does.
        left2 = left - float(r_dc[acc].sum())
        room2 = room - np.bincount(j[acc], minlength=m)
        taken_seq = 0
        for t in range(stop, min(rows.size, stop + sequential_limit)):
            jt = j[t]
            if r_dc[t] <= left2 and room2[jt] > 0:
                ch[rows[t]] = jt
                left2 -= r_dc[t]
                room2[jt] -= 1
                taken_seq += 1
        if not acc.any() and taken_seq == 0:
            break
    return ch


def _positive_cycle(w: np.ndarray) -> list[int] | None:
    """A cycle of positive total weight in a small dense graph (w[u, v], -inf: no edge), or None.

    Bellman-Ford on negated weights from a virtual source joined to every node."""
    k = w.shape[0]
    dist = np.zeros(k)
    pred = np.full(k, -1)
    cost = -w
    last = -1
    for _ in range(k + 1):
        last = -1
        cand = dist[:, None] + cost  # via u to v
        u = np.argmin(cand, axis=0)
        best = cand[u, np.arange(k)]
        better = best < dist - 1e-9
        if not better.any():
            return None
        dist[better] = best[better]
        pred[better] = u[better]
        last = int(np.flatnonzero(better)[0])
    v = last
    for _ in range(k):  # step back k times to land on the cycle
        v = int(pred[v])
    cycle, x = [v], int(pred[v])
    while x != v:
        cycle.append(x)
        x = int(pred[x])
    cycle.reverse()
    total = sum(w[cycle[i], cycle[(i + 1) % len(cycle)]] for i in range(len(cycle)))
    return cycle if total > 1e-9 else None


def _reassign(
    net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, budget: float, lam: float = 0.0,
    max_iter: int = 200,
) -> np.ndarray:
    """Chains of moves that keep every cap (cycle cancelling on the options graph): a customer who can
    only take a capped offer gets it while the one holding the place moves to another offer, and so on.

    Nodes are the offers plus 'none'; edge u -> v is the best single move of a customer from u to v, worth
    its change in ``net - lam x cost``. An offer with room also has a free edge to 'none' (absorbs one
    more customer). Any positive cycle is an improvement that changes no offer's head count beyond its
    cap; it is applied if it raises total net and fits the budget."""
    k, m = net.shape
    none = m
    ch = ch.copy()
    ar = np.arange(k)
    for _ in range(max_iter):
        cur_n, cur_c, _, room = _state(net, cost, ch, caps, budget)
        score = net - lam * cost
        cur_s = cur_n - lam * cur_c
        d = score - cur_s[:, None]  # gain of moving row i to option j (-inf: not allowed)
        d[ar[ch >= 0], ch[ch >= 0]] = -np.inf
        w = np.full((m + 1, m + 1), -np.inf)
        mover = np.full((m + 1, m + 1), -1)
        for u in range(m + 1):
            rows = np.flatnonzero(ch == (u if u < m else -1))
            if rows.size == 0:
                continue
            du = d[rows]
            best = np.argmax(du, axis=0)
            w[u, :m] = du[best, np.arange(m)]
            mover[u, :m] = rows[best]
            if u < m:
                out = int(np.argmin(cur_s[rows]))
                w[u, none], mover[u, none] = -cur_s[rows[out]], rows[out]
        for o in range(m):
            if room[o] > 0 and w[o, none] < 0:
                w[o, none], mover[o, none] = 0.0, -1  # absorb: one more on o, nobody moves
        w[none, none] = -np.inf
        cycle = _positive_cycle(w)
        if cycle is None:
            break
        new = ch.copy()
        for i in range(len(cycle)):
            u, v = cycle[i], cycle[(i + 1) % len(cycle)]
            row = mover[u, v]
            if row >= 0:
                new[row] = v if v < m else -1
        new_spend, new_val = _totals(net, cost, new)
        if new_spend > budget or new_val <= float(cur_n.sum()) + 1e-9:
            break
        ch = new
    return ch


def _make_room(
    net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, budget: float
) -> np.ndarray | None:
    """Make room for one offer that does not fit: withdraw the given offers with the lowest net per cost
    until it fits, if the offer is worth more than what is withdrawn (the LP's one split customer, whose
    big offer the greedy fill could never afford). None if no such move improves."""
    cur_n, cur_c, left, room = _state(net, cost, ch, caps, budget)
    given = np.flatnonzero(ch >= 0)
    if given.size == 0:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        g_ratio = np.where(cur_c[given] > 0, cur_n[given] / cur_c[given], np.inf)
    g = given[np.argsort(g_ratio, kind="stable")]
    cum_c, cum_n = np.cumsum(cur_c[g]), np.cumsum(cur_n[g])
    position = np.full(net.shape[0], np.iinfo(np.int64).max)
    position[g] = np.arange(g.size)
    dn = net - cur_n[:, None]
    dc = cost - cur_c[:, None]
    r, j = np.nonzero((dn > 1e-9) & (dc > left) & (room > 0)[None, :])
    if r.size == 0:
        return None
    need = dc[r, j] - left
    upto = np.searchsorted(cum_c, need, side="left")  # withdraw g[: upto + 1]
    ok = (upto < g.size) & (position[r] > upto)
    if not ok.any():
        return None
    r, j, upto, gain = r[ok], j[ok], upto[ok], dn[r[ok], j[ok]]
    val = gain - cum_n[upto]
    b = int(np.argmax(val))
    if val[b] <= 1e-9:
        return None
    new = ch.copy()
    new[g[: upto[b] + 1]] = -1
    new[r[b]] = j[b]
    return new


def _drop_and_refill(
    net: np.ndarray, cost: np.ndarray, ch: np.ndarray, caps: np.ndarray, budget: float, tries: int = 12
) -> np.ndarray | None:
    """Drop one given row and refill greedily (one expensive offer may be worth less than two cheaper
    ones); keep the best result if it beats the current total. Tried for the few rows whose offers cost
    the most and those with the lowest net per cost. None if nothing improves."""
    cur_n, cur_c, _, _ = _state(net, cost, ch, caps, budget)
    given = np.flatnonzero(ch >= 0)
    if given.size == 0:
        return None
    by_cost = given[np.argsort(-cur_c[given], kind="stable")[: tries // 2]]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(cur_c[given] > 0, cur_n[given] / cur_c[given], np.inf)
    by_ratio = given[np.argsort(r, kind="stable")[: tries // 2]]
    best, best_val = None, float(cur_n.sum()) + 1e-9
    for i in np.unique(np.concatenate([by_cost, by_ratio])):
        trial = ch.copy()
        trial[i] = -1
        trial = _improve(net, cost, trial, caps, budget, frozen=int(i))
        val = _totals(net, cost, trial)[1]
        if val > best_val:
            best, best_val = trial, val
    return best


def _bracket_guesses(nv: np.ndarray, c: np.ndarray, best_ratio: np.ndarray, budget: float) -> tuple[float, ...]:
    """First budget prices to try: where a greedy by each row's best net/cost ratio (caps ignored) runs
    out of budget, and a factor of 1.5 either side; they narrow the bisection in a few steps."""
    finite = np.isfinite(best_ratio) & (best_ratio > 0)
    if not finite.any():
        return ()
    r = np.flatnonzero(finite)
    j = np.argmax(np.where(np.isfinite(nv[r]) & (c[r] > 0), nv[r] / np.where(c[r] > 0, c[r], 1.0), -np.inf), axis=1)
    order = np.argsort(-best_ratio[r], kind="stable")
    cum = np.cumsum(c[r, j][order])
    at = int(np.searchsorted(cum, budget, side="right"))
    if at >= r.size:
        return ()
    lam0 = float(best_ratio[r][order][at])
    return (lam0 * 1.5, lam0 / 1.5)


def _exact_mckp(
    net: np.ndarray, cost: np.ndarray, budget: float, caps: np.ndarray, time_limit: float
) -> np.ndarray | None:
    """The exact optimum by mixed-integer programming (scipy/HiGHS), for small problems; None if the
    solver finds no feasible answer in time."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    k = net.shape[0]
    r, j = np.nonzero(np.isfinite(net))
    n = r.size
    cols = np.arange(n)
    cons = [
        LinearConstraint(csr_array((np.ones(n), (r, cols)), shape=(k, n)), -np.inf, 1.0),
        LinearConstraint(cost[r, j][None, :], -np.inf, budget),
    ]
    capped = np.flatnonzero(np.isfinite(caps))
    if capped.size:
        sel = np.isin(j, capped)
        rowmap = {o: i for i, o in enumerate(capped)}
        cap_rows = np.array([rowmap[o] for o in j[sel]], dtype=int)
        cons.append(
            LinearConstraint(
                csr_array((np.ones(int(sel.sum())), (cap_rows, cols[sel])), shape=(capped.size, n)),
                -np.inf,
                caps[capped],
            )
        )
    res = milp(-net[r, j], constraints=cons, integrality=np.ones(n), bounds=Bounds(0, 1),
               options={"time_limit": time_limit, "disp": False})
    if res.x is None:
        return None
    x = res.x > 0.5
    ch = np.full(k, -1, dtype=np.int64)
    ch[r[x]] = j[x]
    return ch


def solve_mckp(
    net: np.ndarray,
    cost: np.ndarray,
    budget: float,
    caps: np.ndarray | None = None,
    *,
    tol: float = 1e-5,
    max_bisect: int = 60,
    max_swaps: int = 50,
    exact_below: int = 0,
    exact_time_limit: float = 10.0,
) -> MCKPSolution:
    """Multiple-choice knapsack: at most one option per row, maximise total net under budget and caps.

    `net` and `cost` are (rows x options); an option that is not allowed has net -inf (or NaN). Options
    with net <= 0 are never chosen; costs must be >= 0; `caps[j]` is the most rows option j may go to
    (inf: no cap). The result is always exactly feasible.

    With ``exact_below > 0``, problems with at most that many worthwhile options are also solved exactly
    (``scipy.optimize.milp``, at most `exact_time_limit` seconds) and the better answer is kept: small
    campaigns, where one offer more or less matters, get the optimum.
    """
    net = np.asarray(net, dtype=float)
    cost = np.asarray(cost, dtype=float)
    if net.ndim != 2 or net.shape != cost.shape:
        raise ValueError("net and cost must be 2-d arrays of the same shape")
    k, m = net.shape
    caps = np.full(m, np.inf) if caps is None else np.asarray(caps, dtype=float).copy()
    caps[np.isnan(caps)] = np.inf
    budget = max(float(budget), 0.0)
    if np.any(cost[np.isfinite(net)] < 0):
        raise ValueError("option costs must not be negative")
    valid = np.isfinite(net) & (net > 0) & np.isfinite(cost) & (cost <= budget) & (caps > 0)[None, :]
    choice = np.full(k, -1, dtype=np.int64)
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return MCKPSolution(choice, 0.0, np.zeros(m), 0.0, 0.0)
    nv = np.where(valid[rows], net[rows], -np.inf)
    c = np.where(valid[rows], cost[rows], 0.0)

    stall = 1e-6 * float(np.max(nv, axis=1).mean())  # every row has a finite option here
    ch, mu = _fit_caps(nv, c, caps, 0.0, stall)
    lam = 0.0
    spend, _ = _totals(nv, c, ch)
    if spend > budget:
        # A row can only take an option at budget price lam if that option's net/cost exceeds lam, so
        # rows whose best ratio is below the lower bound drop out as the bisection narrows.
        with np.errstate(divide="ignore", invalid="ignore"):
            best_ratio = np.where(np.isfinite(nv), np.where(c > 0, nv / c, np.inf), 0.0).max(axis=1)
        finite_ratio = best_ratio[np.isfinite(best_ratio)]
        lo, hi = 0.0, (float(finite_ratio.max()) if finite_ratio.size else 1.0) * (1 + 1e-9) + 1e-12
        active = np.arange(rows.size)
        nv_a, c_a = nv, c
        ch_hi, mu_hi = np.full(rows.size, -1, dtype=np.int64), np.zeros(m)
        guesses = list(_bracket_guesses(nv, c, best_ratio, budget))
        for _ in range(max_bisect):
            mid = guesses.pop(0) if guesses else 0.5 * (lo + hi)
            if not lo < mid < hi:
                continue
            sub_ch, mu_mid = _fit_caps(nv_a, c_a, caps, mid, stall)
            ch_mid = np.full(rows.size, -1, dtype=np.int64)
            ch_mid[active] = sub_ch
            if _totals(nv, c, ch_mid)[0] <= budget:
                hi, ch_hi, mu_hi = mid, ch_mid, mu_mid
            else:
                lo = mid
                still = best_ratio[active] > lo
                if still.sum() < 0.8 * active.size:  # copy the shrunken arrays only when worth it
                    active, nv_a, c_a = active[still], nv_a[still], c_a[still]
            if hi - lo <= tol * hi:
                break
        lam, ch, mu = hi, ch_hi, mu_hi
    ch = _trim_caps(nv, c, ch, caps, lam, mu)
    ch = _improve(nv, c, ch, caps, budget)
    if np.isfinite(caps).any():
        ch = _reassign(nv, c, ch, caps, budget, lam, max_iter=200 if rows.size <= 50_000 else 20)
        ch = _improve(nv, c, ch, caps, budget)
    # Exchanges matter when few offers fit the budget; on large lists they would not move the total.
    for _ in range(max_swaps if rows.size <= 50_000 else 0):
        before = _totals(nv, c, ch)[1]
        for move in (_swap, _make_room, _drop_and_refill):
            swapped = move(nv, c, ch, caps, budget)
            if swapped is not None:
                swapped = _improve(nv, c, swapped, caps, budget)
                if _totals(nv, c, swapped)[1] > before + 1e-9:
                    break
                swapped = None
        if swapped is None:
            break
        ch = swapped
    spend, value = _totals(nv, c, ch)
    if 0 < int(np.isfinite(nv).sum()) <= exact_below:
        exact = _exact_mckp(nv, c, budget, caps, exact_time_limit)
        if exact is not None:
            e_spend, e_value = _totals(nv, c, exact)
            feasible = e_spend <= budget and np.all(np.bincount(exact[exact >= 0], minlength=m) <= caps)
            if feasible and e_value > value:
                ch, spend, value = exact, e_spend, e_value
    choice[rows] = ch
    return MCKPSolution(choice, float(lam), mu, spend, value)


# ============================================================================== the retention plan
@dataclass
class RetentionPlan:
    """Who gets which incentive: one row per customer, plus the typed summary (`summary.to_dict()` for JSON)."""

    customers: pd.DataFrame
    summary: PlanSummary = field(default_factory=PlanSummary)


def _casefold(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.casefold()


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series(pd.NA, index=df.index, dtype="string")


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


def _eligible(df: pd.DataFrame, inc: Incentive, tier: pd.Series, value: np.ndarray) -> np.ndarray:
    """Rows meeting an incentive's eligibility rules (a rule on a missing attribute is not met)."""
    e = inc.eligible
    ok = np.ones(len(df), dtype=bool)
    if e.tiers is not None:
        ok &= tier.isin(e.tiers).to_numpy()
    for attr, allowed in (("plan", e.plans), ("region", e.regions), ("country", e.countries)):
        if allowed is not None:
            vals = {str(a).strip().casefold() for a in allowed}
            ok &= _casefold(_column(df, attr)).isin(vals).fillna(False).to_numpy(dtype=bool)
    if e.min_value is not None:
        ok &= value >= e.min_value
    if e.max_value is not None:
        ok &= value <= e.max_value
    # A tier the incentive gives no save rate for is a tier it is not offered to.
    ok &= tier.isin(list(inc.save_rate)).fillna(False).to_numpy(dtype=bool)
    return ok


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
) -> RetentionPlan:
    """The retention plan for a scored list: tiers, value, rules, control group, incentives, messages.

    Rows come back in customer-id order; the input's ``channel`` (preferred channel) is kept as
    ``preferred_channel`` and ``channel`` becomes the contact channel. Same input (in any row order) and
    seed give the same plan.
    """
    check_catalogue(config)
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
        warnings.append("no 'marketing_consent' column: consent is unknown, so nobody is contacted")
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
    contact_cost = {k.strip().lower(): float(v) for k, v in inc_cfg.channels.contact_cost.items()}
    cust_contact = pd.Series(channel[rows]).map(contact_cost).fillna(0.0).to_numpy(dtype=float)
    net = np.full((rows.size, m), -np.inf)
    cost = np.zeros((rows.size, m))
    gain = np.zeros((rows.size, m))
    eligible_any = np.zeros(rows.size, dtype=bool)
    sub_tier = tier.iloc[rows].reset_index(drop=True)
    sub = sub.reset_index(drop=True)
    for j, inc in enumerate(catalogue):
        elig = _eligible(sub, inc, sub_tier, value[rows])
        if inc.max_customers == 0:
            elig[:] = False
        eligible_any |= elig
        rate = sub_tier.astype(object).map(inc.save_rate).astype(float).fillna(0.0).to_numpy()
        forced = inc.channel.strip().lower() if inc.channel else None
        ccost = contact_cost.get(forced, 0.0) if forced else cust_contact
        cost[:, j] = inc.unit_cost + inc.cost_share_of_fee * revenue[rows] + ccost
        gain[:, j] = p[rows] * value[rows] * rate
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
        would[h_idx] = _prices_choice(h_net, cost[h_idx], sol.budget_multiplier, sol.cap_multipliers)

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
    forced = np.array([(i.channel.strip().lower() if i.channel else None) for i in catalogue] + [None], dtype=object)
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
    return RetentionPlan(customers=out, summary=summary)


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
