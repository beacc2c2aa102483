"""The registered procedure against the baselines and against chance, with the noise of the holdout.

A few hundred holdout churners leave about +-0.015 of ROC AUC to chance, so every verdict here comes with
a 95% bootstrap interval (row weights drawn from a multinomial; the scores are sorted once, not per
resample):

- `beats_baselines`: per baseline, `worse` when the whole interval of the difference is below zero,
  `better` when above, else `within noise`;
- `chance_verdict`: `inverted` when the model's interval lies below 0.5 (it ranks churners *below*
  non-churners: a mislabelled target, a leak read backwards), `chance` when it contains 0.5 (no better
  than a coin), `suspect` at ROC AUC >= 0.99 (the data probably leaks the label), else `ok`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from churn.training.leakage import SUSPECT_AUC


def _weighted_auc(order: np.ndarray, ties: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC with row weights `w`, from the rows' score order and tie-group starts (computed once)."""
    ys, ws = y[order], w[order]
    neg, pos = ws * (ys == 0), ws * (ys == 1)
    # Per tie group: negatives strictly below it, and half of its own negatives.
    group_neg = np.add.reduceat(neg, ties)
    below = np.cumsum(group_neg) - group_neg
    group_pos = np.add.reduceat(pos, ties)
    denom = pos.sum() * neg.sum()
    return float((group_pos * (below + 0.5 * group_neg)).sum() / denom) if denom > 0 else np.nan


def _prepared(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    return order, np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])


def _draws(n: int, n_boot: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.multinomial(n, np.full(n, 1.0 / n)).astype(float) for _ in range(n_boot)]


def auc_difference(y: np.ndarray, p: np.ndarray, q: np.ndarray, *, n_boot: int = 300,
                   seed: int = 0) -> tuple[float, float, float]:
    """ROC AUC of `p` minus that of `q` on the same rows, and its 95% paired-bootstrap interval."""
    y = np.asarray(y).astype(int)
    prepared = [_prepared(np.asarray(s, dtype=float)) for s in (p, q)]
    ones = np.ones(len(y))
    diff = _weighted_auc(*prepared[0], y, ones) - _weighted_auc(*prepared[1], y, ones)
    draws = [d for w in _draws(len(y), n_boot, seed)
             if np.isfinite(d := _weighted_auc(*prepared[0], y, w) - _weighted_auc(*prepared[1], y, w))]
    lo, hi = np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan)
    return float(diff), float(lo), float(hi)


def auc_interval(y: np.ndarray, p: np.ndarray, *, n_boot: int = 300, seed: int = 0) -> tuple[float, float, float]:
    """ROC AUC of `p` and its 95% bootstrap interval."""
    y = np.asarray(y).astype(int)
    prepared = _prepared(np.asarray(p, dtype=float))
    auc = _weighted_auc(*prepared, y, np.ones(len(y)))
    draws = [a for w in _draws(len(y), n_boot, seed) if np.isfinite(a := _weighted_auc(*prepared, y, w))]
    lo, hi = np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan)
    return float(auc), float(lo), float(hi)


def beats_baselines(y: np.ndarray, p: np.ndarray, baselines: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The model against each baseline on the holdout's ROC AUC (module docstring): verdicts, a line each,
    and whether none is `worse`."""
    verdicts, lines = {}, []
    for name, q in baselines.items():
        if len(np.unique(y)) < 2:
            verdicts[name] = "undefined"
            continue
        d, lo, hi = auc_difference(y, p, q, seed=seed)
        verdicts[name] = "worse" if hi < 0 else "better" if lo > 0 else "within noise"
        lines.append(f"ROC AUC {d:+.4f} vs {name} (95% interval {lo:+.4f} to {hi:+.4f}): {verdicts[name]}")
    ok = "worse" not in verdicts.values()
    return {"ok": ok, "verdicts": verdicts, "detail": "; ".join(lines),
            "check": "FAILED" if not ok else "passed" if set(verdicts.values()) == {"better"} else "within noise"}


def chance_verdict(y: np.ndarray, p: np.ndarray, seed: int) -> dict[str, Any]:
    """`inverted`, `chance`, `suspect` or `ok` (module docstring), with the figure and a sentence."""
    if len(np.unique(y)) < 2:
        return {"verdict": "undefined", "roc_auc": float("nan"), "low": float("nan"), "high": float("nan"),
                "detail": "the holdout holds one class: no ROC AUC"}
    auc, lo, hi = auc_interval(y, p, seed=seed)
    figure = f"holdout ROC AUC {auc:.4f} (95% interval {lo:.4f} to {hi:.4f}, {int(np.sum(y))} churners)"
    if hi < 0.5:
        verdict, say = "inverted", (f"THE MODEL RANKS CHURNERS BELOW NON-CHURNERS: {figure}. Check what the target "
                                    "means (--churn-value) and the label settings")
    elif lo <= 0.5:
        verdict, say = "chance", (f"THE MODEL IS NO BETTER THAN CHANCE: {figure} includes 0.5. Its scores are not "
                                  "worth acting on; it cannot be promoted")
    elif auc >= SUSPECT_AUC:
        verdict, say = "suspect", (f"THE DATA PROBABLY LEAKS THE LABEL: {figure}; no churn model ranks real "
                                   "customers this well. Look for columns written after the outcome")
    else:
        verdict, say = "ok", figure
    return {"verdict": verdict, "roc_auc": auc, "low": lo, "high": hi, "detail": say}
