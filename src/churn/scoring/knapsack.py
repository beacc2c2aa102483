"""The multiple-choice knapsack behind the retention plan: at most one option per row, maximising total net
value under a budget and per-option caps.

`solve_mckp` solves its Lagrangian relaxation - every row takes the option maximising
``net - lambda x cost - mu[option]`` if that is positive - with the budget multiplier ``lambda`` found by
bisection and the cap multipliers ``mu`` raised until no cap is exceeded, then repairs to exact feasibility
and spends what is left greedily by marginal net-value-per-cost (the moves in `churn.scoring.knapsack_moves`).
It is vectorised numpy (a few dozen passes over an n x options array), so millions of rows take seconds; on
small instances it lands within about 1% of the exact optimum (see the tests, which compare with
``scipy.optimize.milp``), and small enough problems can be solved exactly too (`exact_below`).

Pure numpy on (rows x options) arrays: it knows nothing of customers, incentives or money.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn.scoring.knapsack_moves import _drop_and_refill, _improve, _make_room, _reassign, _swap, _totals


@dataclass
class MCKPSolution:
    """An allocation: ``choice[i]`` is the option index given to row i, -1 for none."""

    choice: np.ndarray
    budget_multiplier: float  # lambda: net value one more unit of budget would buy, at the margin
    cap_multipliers: np.ndarray  # mu per option: value of one more place under that option's cap
    spend: float
    value: float


def prices_choice(net: np.ndarray, cost: np.ndarray, lam: float, mu: np.ndarray) -> np.ndarray:
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
    ch = prices_choice(net, cost, lam, mu)
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

