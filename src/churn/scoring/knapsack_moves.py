"""Improving a feasible knapsack allocation (`churn.scoring.knapsack`): every move keeps the budget and the
caps and is taken only when it raises total net value.

`_improve` spends what is left greedily by extra net per extra cost; `_reassign` cancels positive cycles of
moves between capped options; `_swap`, `_make_room` and `_drop_and_refill` try the exchanges a greedy fill
cannot find. All take (rows x options) arrays ``net`` and ``cost``, the current choice per row (-1: none),
the caps and the budget, and return a new choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


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
