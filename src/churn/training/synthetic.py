"""A synthetic training frame with a planted churn signal, for tests, benchmarks and demos.

Monthly snapshots of the same customers; churn probability is a logistic function of recency, activity,
complaints, plan and fee, plus a customer-level effect. More complaints always raise the true risk, more
recent activity always lowers it. Extra columns (`n_noise` numeric, `n_extra_categorical` text) are weak
or pure noise, to reach a realistic width.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.features.registry import Feature

PLANS = np.array(["basic", "standard", "premium"])
REGIONS = np.array(["north", "south", "east", "west"])


def true_logit(days_since: np.ndarray, events_30d: np.ndarray, complaints_90d: np.ndarray, plan: np.ndarray,
               monthly_fee: np.ndarray, customer_effect: np.ndarray) -> np.ndarray:
    """The planted log-odds of churn within the horizon (non-linear: a recency cliff at 45 days, saturating
    activity, complaints hurting more on the basic plan)."""
    ds = np.where(np.isnan(days_since), 90.0, np.minimum(days_since, 120.0))
    plan_eff = np.select([plan == "basic", plan == "premium"], [0.35, -0.45], 0.0)
    c = np.minimum(complaints_90d, 6)
    return (-1.8 + 0.012 * ds + 1.1 * (ds > 45) - 0.6 * np.log1p(np.minimum(events_30d, 30)) + 0.45 * c
            + 0.35 * c * (plan == "basic") + plan_eff + 0.01 * (monthly_fee - 30.0) + customer_effect)


def synthetic_training_frame(n_customers: int = 1500, n_snapshots: int = 5, *, seed: int = 0, n_noise: int = 0,
                             n_extra_categorical: int = 0, start: str = "2025-01-01",
                             logit_shift: float = 0.0) -> tuple[pd.DataFrame, list[Feature]]:
    """(frame, features): customer_id, as_of, churned and the features, one row per customer and snapshot."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:07d}" for i in range(n_customers)], dtype=object)
    plan = rng.choice(PLANS, n_customers, p=[0.45, 0.35, 0.20]).astype(object)
    region = rng.choice(REGIONS, n_customers).astype(object)
    region[rng.random(n_customers) < 0.03] = None
    fee_base = np.select([plan == "basic", plan == "premium"], [19.0, 59.0], 35.0)
    engagement = rng.gamma(2.0, 1.0, n_customers)
    effect = rng.normal(0, 0.5, n_customers)
    tenure0 = rng.integers(30, 2000, n_customers)
    extra_cat_levels = [np.array([f"v{j}_{k}" for k in range(3 + 7 * j)]) for j in range(n_extra_categorical)]
    extra_cat_cust = [rng.choice(lv, n_customers).astype(object) for lv in extra_cat_levels]
    dates = pd.date_range(start, periods=n_snapshots, freq="MS")
    parts = []
    for t, as_of in enumerate(dates):
        eng = engagement * rng.lognormal(0, 0.35, n_customers)
        events_30d = rng.poisson(3.0 * eng).astype("float64")
        days_since = rng.exponential(30.0 / (0.3 + eng))
        days_since[rng.random(n_customers) < 0.04] = np.nan  # never active
        complaints = rng.poisson(0.25 + 0.15 * (eng < 1.0)).astype("float64")
        fee = np.round(fee_base * rng.uniform(0.95, 1.05, n_customers), 2)
        lg = true_logit(days_since, events_30d, complaints, plan, fee, effect) + logit_shift
        churned = (rng.random(n_customers) < 1 / (1 + np.exp(-lg))).astype(int)
        cols: dict[str, object] = {
            "customer_id": ids,
            "as_of": np.full(n_customers, as_of),
            "churned": churned,
            "days_since_last_event": days_since,
            "events_30d": events_30d,
            "complaints_90d": complaints,
            "tenure_days": (tenure0 + 30 * t).astype("float64"),
            "monthly_fee": fee,
            "spend_365d": np.round(fee * 12 * rng.uniform(0.8, 1.2, n_customers), 2),
            "plan": plan,
            "region": region,
        }
        for j in range(n_noise):
            x = rng.normal(0, 1, n_customers) + (0.05 * lg if j % 5 == 0 else 0.0)
            x[rng.random(n_customers) < 0.02] = np.nan
            cols[f"signal_{j:02d}"] = x
        for j, lv in enumerate(extra_cat_cust):
            cols[f"attribute_{j}"] = lv
        parts.append(pd.DataFrame(cols))
    frame = pd.concat(parts, ignore_index=True)
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    features = [
        Feature("days_since_last_event", "engagement", "days since the customer's last activity",
                kind="numeric", reason="no activity in {value:.0f} days"),
        Feature("events_30d", "engagement", "activity events in the last 30 days", window_days=30),
        Feature("complaints_90d", "support", "complaints in the last 90 days", window_days=90,
                reason="{value:.0f} complaints in the last 90 days"),
        Feature("tenure_days", "profile", "days since signup"),
        Feature("monthly_fee", "profile", "current monthly fee"),
        Feature("spend_365d", "purchases", "spend in the last 365 days", window_days=365),
        Feature("plan", "profile", "subscription plan", kind="categorical"),
        Feature("region", "profile", "customer region", kind="categorical"),
    ]
    features += [Feature(f"signal_{j:02d}", "other", f"synthetic signal {j}") for j in range(n_noise)]
    features += [Feature(f"attribute_{j}", "profile", f"synthetic attribute {j}", kind="categorical")
                 for j in range(n_extra_categorical)]
    return frame, features
