"""Holdout metrics: ranking, probability quality, top-of-list lift and capture, and expected profit.

The profit curve values customers and reads the incentive catalogue as the retention plan does
(`churn.scoring.value`, `churn.scoring.offers`), so training's expected profit and the plan's expected saved
value rest on the same numbers.

Pure functions of labels `y` (0/1) and predicted churn probabilities `p`. Rankings break ties by row order
(a stable sort), so the same inputs always give the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from churn.config import Config
from churn.scoring.offers import tier_terms
from churn.scoring.value import value_from_revenue, value_parts

TOP_SHARES = (0.05, 0.10, 0.20)
DEFAULT_SAVE_RATE = 0.2
DEFAULT_CONTACT_COST = 5.0


def _arrays(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype="float64").ravel()
    p = np.asarray(p, dtype="float64").ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in length ({len(y)} vs {len(p)})")
    return y, p


def top_k(n: int, share: float) -> int:
    """How many rows the top `share` of a list of `n` holds (at least one when n > 0)."""
    return min(n, max(1, math.ceil(share * n))) if n else 0


def risk_order(p: np.ndarray) -> np.ndarray:
    """Row indices from riskiest to safest; ties keep row order."""
    return np.argsort(-np.asarray(p, dtype="float64"), kind="mergesort")


def ranking_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC and PR AUC (average precision); NaN when the labels hold one class only."""
    y, p = _arrays(y, p)
    if len(np.unique(y)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p))}


def probability_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Log loss and Brier score (lower is better)."""
    y, p = _arrays(y, p)
    if not len(y):
        return {"log_loss": float("nan"), "brier": float("nan")}
    pc = np.clip(p, 1e-15, 1 - 1e-15)
    return {"log_loss": float(log_loss(y, pc, labels=[0, 1])), "brier": float(brier_score_loss(y, p))}


def top_share_metrics(y: np.ndarray, p: np.ndarray, shares: tuple[float, ...] = TOP_SHARES) -> dict[str, float]:
    """For the riskiest 5/10/20%: precision (churn rate there), lift over the base rate, and capture (share
    of all churners found there, i.e. recall)."""
    y, p = _arrays(y, p)
    out: dict[str, float] = {}
    n, pos = len(y), y.sum()
    base = pos / n if n else float("nan")
    ys = y[risk_order(p)]
    for s in shares:
        k = top_k(n, s)
        tag = f"top_{round(s * 100)}pct"
        hit = ys[:k].sum()
        prec = hit / k if k else float("nan")
        out[f"precision_{tag}"] = float(prec)
        out[f"lift_{tag}"] = float(prec / base) if base else float("nan")
        out[f"capture_{tag}"] = float(hit / pos) if pos else float("nan")
    return out


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Precision and recall when everyone with P(churn) >= threshold is flagged."""
    y, p = _arrays(y, p)
    flag = p >= threshold
    tp = float((flag & (y == 1)).sum())
    return {
        "precision": float(tp / flag.sum()) if flag.sum() else float("nan"),
        "recall": float(tp / y.sum()) if y.sum() else float("nan"),
    }


def holdout_metrics(y: np.ndarray, p: np.ndarray, p_raw: np.ndarray | None = None) -> dict[str, float]:
    """Everything reported on a holdout: ranking, log loss/Brier (and before calibration with `_raw`),
    precision/recall at 0.5, top-share precision/lift/capture, base rate and counts."""
    y, p = _arrays(y, p)
    m: dict[str, float] = {"n_rows": float(len(y)), "n_churners": float(y.sum()),
                           "base_rate": float(y.mean()) if len(y) else float("nan")}
    m.update(ranking_metrics(y, p))
    m.update(probability_metrics(y, p))
    m.update(threshold_metrics(y, p))
    m.update(top_share_metrics(y, p))
    m["mean_predicted"] = float(p.mean()) if len(p) else float("nan")
    if p_raw is not None:
        raw = {**ranking_metrics(y, p_raw), **probability_metrics(y, p_raw)}
        m.update({f"{k}_raw": v for k, v in raw.items()})
        m["mean_predicted_raw"] = float(np.mean(p_raw)) if len(p_raw) else float("nan")
    return m


# ------------------------------------------------------------------------------------------- profit
@dataclass(frozen=True)
class Economics:
    """What contacting a customer costs, what share of churners it saves, and where the numbers came from."""

    save_rate: float
    cost: float
    source: str


def incentive_economics(config: Config) -> Economics:
    """Save rate and cost of one contact for the profit curve, read from the catalogue as the retention plan
    reads it (`churn.scoring.offers.tier_terms`): per tier, the offers the plan may give there, their save
    rate for that tier and their unit cost plus the contact's price; then the mean over those tiers.
    Defaults 0.2 / 5.0 when no offer is open to any tier (an empty catalogue).

    A share of the monthly fee (`cost_share_of_fee`) depends on each customer's revenue and is not in the
    single cost the curve takes; the source sentence says so when the catalogue has one."""
    terms = tier_terms(config)
    if not terms:
        return Economics(DEFAULT_SAVE_RATE, DEFAULT_CONTACT_COST,
                         f"defaults (no incentive in the catalogue is offered in any tier): save rate "
                         f"{DEFAULT_SAVE_RATE}, cost {DEFAULT_CONTACT_COST} per contact")
    save = float(np.mean([t.save_rate for t in terms.values()]))
    cost = float(np.mean([t.cost for t in terms.values()]))
    per_tier = "; ".join(f"{name} {t.save_rate:.2f} / {t.cost:.2f}" for name, t in terms.items())
    source = f"catalogue as the plan reads it, mean over {len(terms)} tier(s) (save rate / cost: {per_tier})"
    if any(t.cost_share_of_fee for t in terms.values()):
        source += "; cost_share_of_fee is not included (it depends on each customer's revenue)"
    return Economics(save, cost, source)


def customer_value(frame: pd.DataFrame, config: Config) -> tuple[np.ndarray, str]:
    """Value of keeping each customer, exactly as the retention plan values it, and a sentence saying how.

    One rule, `churn.scoring.value` (see its docstring): monthly revenue on the configured basis (the fee, or
    spend annualised over the window or a shorter tenure) x lifetime months x margin; a customer with neither
    basis known is worth 0 (the plan never offers them a paid incentive, so the profit curve gains nothing
    from contacting them either). Never NaN.
    """
    v = config.value
    revenue, basis = value_parts(frame, v)
    value = value_from_revenue(revenue, v).to_numpy(dtype="float64")
    counts = basis.value_counts()
    known = ", ".join(f"{k} for {int(counts[k]):,}" for k in ("fee", "spend") if counts.get(k, 0))
    unknown = int(counts.get("unknown", 0))
    rule = (f"monthly revenue ({v.method}) x {float(v.lifetime_months):g} lifetime months x margin "
            f"{float(v.margin):g}, as the retention plan values customers")
    if not known:
        return value, f"no customer value known for any of {len(frame):,} rows (0 each): {rule}"
    return value, f"{rule}: {known}" + (f", unknown (0) for {unknown:,}" if unknown else "")


def profit_curve(y: np.ndarray, p: np.ndarray, value: np.ndarray, save_rate: float, cost: float) -> pd.DataFrame:
    """Expected profit of contacting the riskiest k customers, for every k from 0 to n.

    profit(k) = sum over the top k of (y_i x value_i x save_rate - cost): a saved churner is worth its value,
    every contact costs. Columns: contacted, share, profit.
    """
    y, p = _arrays(y, p)
    value = np.asarray(value, dtype="float64")
    order = risk_order(p)
    gain = y[order] * value[order] * save_rate - cost
    profit = np.r_[0.0, np.cumsum(gain)]
    k = np.arange(len(y) + 1)
    return pd.DataFrame({"contacted": k, "share": k / max(len(y), 1), "profit": profit})


def profit_summary(curve: pd.DataFrame) -> dict[str, float]:
    """The profit-maximising contact share and its profit, and the profit of contacting everyone."""
    i = int(np.argmax(curve["profit"].to_numpy()))
    return {
        "profit_best": float(curve["profit"].iloc[i]),
        "profit_best_share": float(curve["share"].iloc[i]),
        "profit_best_contacted": float(curve["contacted"].iloc[i]),
        "profit_contact_all": float(curve["profit"].iloc[-1]),
    }


def reliability_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Observed churn rate against mean predicted probability per quantile bin (sklearn calibration_curve)."""
    from sklearn.calibration import calibration_curve

    y, p = _arrays(y, p)
    obs, pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": pred, "observed_rate": obs})
