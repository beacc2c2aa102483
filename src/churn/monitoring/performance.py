"""Model performance before and after the labels arrive, on the customers whose outcome the campaign does
not change: the control group and those not contacted (an offer that works lowers a contacted customer's
churn, which would count against a model that ranked them right).

- `estimate_performance`: no labels yet; the expected ROC AUC of the calibrated probabilities (CBPE, see
  `churn.monitoring.statistics`) and the expected churn rate per tier, flagged when the expected ROC AUC
  falls more than `monitoring.estimated_auc_margin` below the training holdout's;
- `realised_performance`: once the label window has passed; ROC AUC, PR AUC, lift in the riskiest 10%,
  and calibration (mean predicted against observed churn per decile of risk and per tier); retraining is
  recommended below `monitoring.retrain_below_roc_auc`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from churn.monitoring.statistics import expected_roc_auc
from churn.scoring.plan_columns import as_flag, texts_or_none, tier_order

UNAFFECTED = "control group and customers not contacted"
EVERYONE = "every scored customer (no one was contacted)"


def unaffected(plan: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(mask of the scored rows the campaign does not change, how that population is named)."""
    scored = pd.to_numeric(plan["churn_probability"], errors="coerce").notna().to_numpy()
    contact = as_flag(plan["contact"]).to_numpy() if "contact" in plan.columns else np.zeros(len(plan), bool)
    control = as_flag(plan["holdout"]).to_numpy() if "holdout" in plan.columns else np.zeros(len(plan), bool)
    treated = contact & ~control
    return scored & ~treated, (UNAFFECTED if treated.any() else EVERYONE)


def _tiers(plan: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    if "risk_tier" not in plan.columns:
        return pd.Series(None, index=plan.index, dtype=object), []
    p = pd.to_numeric(plan["churn_probability"], errors="coerce")
    return texts_or_none(plan["risk_tier"]), tier_order(plan["risk_tier"], p)


def estimate_performance(plan: pd.DataFrame, holdout_roc_auc: float | None, margin: float) -> dict[str, Any]:
    """The expected performance of this run's scores on the unaffected customers (no labels needed)."""
    mask, population = unaffected(plan)
    p = pd.to_numeric(plan["churn_probability"], errors="coerce").to_numpy(dtype=float)[mask]
    tiers, order = _tiers(plan)
    t = tiers.to_numpy()[mask]
    auc = expected_roc_auc(p)
    out: dict[str, Any] = {
        "population": population, "customers": int(mask.sum()),
        "expected_churners": float(p.sum()), "expected_churn_rate": float(p.mean()) if len(p) else None,
        "expected_roc_auc": None if np.isnan(auc) else auc,
        "holdout_roc_auc": holdout_roc_auc,
        "by_tier": [{"tier": k, "customers": int((t == k).sum()),
                     "expected_churn_rate": float(p[t == k].mean()) if (t == k).any() else None} for k in order],
        "breaches": [],
    }
    if holdout_roc_auc is not None and out["expected_roc_auc"] is not None \
            and holdout_roc_auc - auc > margin:
        out["breaches"].append(f"estimated ROC AUC {auc:.3f} on {population} is {holdout_roc_auc - auc:.3f} below "
                               f"the training holdout's {holdout_roc_auc:.3f} (margin {margin:g})")
    return out


def calibration_table(y: np.ndarray, p: np.ndarray, groups: np.ndarray, order: list[Any]) -> list[dict[str, Any]]:
    """Per group (in `order`): customers, mean predicted churn, observed churn rate."""
    rows = []
    for g in order:
        m = groups == g
        rows.append({"group": g, "customers": int(m.sum()),
                     "predicted": float(p[m].mean()) if m.any() else None,
                     "observed": float(y[m].mean()) if m.any() else None})
    return rows


def risk_deciles(p: np.ndarray) -> np.ndarray:
    """Decile of risk per row, 1 = the riskiest tenth (by rank; ties keep row order)."""
    order = np.argsort(-p, kind="mergesort")
    decile = np.empty(len(p), dtype=int)
    decile[order] = np.arange(len(p)) * 10 // max(len(p), 1) + 1
    return decile


def realised_performance(y: np.ndarray, p: np.ndarray, tiers: np.ndarray | None, tier_names: list[str],
                         retrain_below: float) -> dict[str, Any]:
    """Realised ranking, lift and calibration of probabilities `p` against outcomes `y` (0/1)."""
    from churn.training.metrics import ranking_metrics, top_share_metrics

    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    ranking = ranking_metrics(y, p)
    lift = top_share_metrics(y, p, (0.10,))["lift_top_10pct"] if len(y) else float("nan")
    out: dict[str, Any] = {
        "customers": int(len(y)), "churners": int(y.sum()),
        "observed_churn_rate": float(y.mean()) if len(y) else None,
        "mean_predicted": float(p.mean()) if len(p) else None,
        "roc_auc": finite(ranking["roc_auc"]), "pr_auc": finite(ranking["pr_auc"]), "lift_top_10pct": finite(lift),
        "calibration_by_decile": calibration_table(y, p, risk_deciles(p), list(range(1, 11))),
        "calibration_by_tier": calibration_table(y, p, tiers, tier_names) if tiers is not None else [],
    }
    auc = out["roc_auc"]
    out["retrain"] = bool(auc is not None and auc < retrain_below)
    out["retrain_why"] = (f"realised ROC AUC {auc:.3f} is below {retrain_below:g} (monitoring.retrain_below_roc_auc)"
                          if out["retrain"] else None)
    return out


def finite(x: float | None) -> float | None:
    """`x` as a float, None when missing or not finite (JSON has no NaN)."""
    return float(x) if x is not None and np.isfinite(x) else None
