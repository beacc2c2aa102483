"""Drift of one scoring run against the model's training reference: a pure step, arrays in, a report out.

Per feature: PSI on the reference's quantile bins (numbers), Jensen-Shannon distance of the category shares
and the share of rows in categories training never saw (categories), and the change of the missing share.
For the model's output, directly: PSI of the churn probability, the change of its mean and of every tier's
share (PSI alone barely moves when a low churn rate rises by a fifth: docs/monitoring.md). Each threshold
of `monitoring` crossed is a breach, said in a sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config.schema import MonitoringConfig
from churn.monitoring.reference import DriftReference, category_shares, missing_share, numbers
from churn.monitoring.statistics import bin_shares, js_distance, psi

MAX_LEVELS_NAMED = 5


@dataclass
class FeatureDrift:
    """How one feature moved since training."""

    feature: str
    kind: str  # numeric or categorical
    psi: float | None = None  # numeric features
    js_distance: float | None = None  # categorical features
    unseen_share: float | None = None  # categorical: share of rows in levels training never saw
    unseen_levels: list[str] = field(default_factory=list)  # the most frequent of those (a few)
    missing_reference: float = 0.0
    missing_now: float = 0.0
    breaches: list[str] = field(default_factory=list)


@dataclass
class DriftReport:
    """The drift of one run: per feature, the score, the tiers, and every breach in words."""

    n_rows: int  # scored customers (the score and tier figures)
    feature_rows: int  # customers whose inputs were compared (all, or a sample of a large run)
    reference_rows: int
    features: list[FeatureDrift]
    score_psi: float
    mean_reference: float
    mean_now: float
    mean_change: float  # relative: 0.19 = the mean probability rose by 19%
    tiers: list[dict[str, Any]]  # {tier, reference, now, change} shares of scored customers
    breaches: list[str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (drift.json, MLflow)."""
        return asdict(self)


def _feature_drift(ref: DriftReference, name: str, values: np.ndarray, cfg: MonitoringConfig) -> FeatureDrift:
    kind = ref.features_[name]
    d = FeatureDrift(name, kind, missing_reference=ref.missing_[name],
                     missing_now=missing_share(values, kind == "categorical"))
    if kind == "categorical":
        known = ref.levels_[name]
        now = category_shares(values)
        levels = sorted(set(known) | set(now))
        d.js_distance = js_distance(np.array([known.get(k, 0.0) for k in levels]),
                                    np.array([now.get(k, 0.0) for k in levels])) if now and known else 0.0
        unseen = {k: v for k, v in now.items() if k not in known}
        d.unseen_share = float(sum(unseen.values()))
        d.unseen_levels = [k for k, _ in sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))][:MAX_LEVELS_NAMED]
        if d.js_distance > cfg.js_threshold:
            d.breaches.append(f"{name}: category shares moved (Jensen-Shannon distance {d.js_distance:.2f}, "
                              f"threshold {cfg.js_threshold:g})")
        if d.unseen_share > cfg.unseen_share_threshold:
            d.breaches.append(f"{name}: {d.unseen_share:.1%} of customers in categories training never saw "
                              f"(e.g. {', '.join(repr(v) for v in d.unseen_levels)})")
    else:
        x = numbers(values)
        d.psi = psi(ref.shares_[name], bin_shares(x, np.asarray(ref.edges_[name]))) if (~np.isnan(x)).any() else 0.0
        if d.psi > cfg.psi_threshold:
            d.breaches.append(f"{name}: distribution shifted (PSI {d.psi:.2f}, threshold {cfg.psi_threshold:g})")
    if abs(d.missing_now - d.missing_reference) > cfg.missing_share_change:
        d.breaches.append(f"{name}: missing in {d.missing_now:.0%} of customers (training: {d.missing_reference:.0%})")
    return d


def measure_drift(reference: DriftReference, clean: pd.DataFrame, scores: np.ndarray,
                  tiers: Any, config: MonitoringConfig) -> DriftReport:
    """Compare the scored rows (`clean`: their feature columns as the model reads them; `scores`: calibrated
    churn probabilities; `tiers`: their risk tiers) with `reference`; thresholds from `config`."""
    feats = [_feature_drift(reference, name, clean[name].to_numpy() if name in clean.columns
                            else np.full(len(clean), np.nan), config) for name in reference.features_]
    feats.sort(key=lambda d: (-len(d.breaches), -(d.psi if d.psi is not None else d.js_distance or 0.0),
                              d.feature))
    p = numbers(scores)
    score_psi = psi(reference.score_shares_, bin_shares(p, np.asarray(reference.score_edges_)))
    mean_now = float(np.nanmean(p)) if (~np.isnan(p)).any() else float("nan")
    change = mean_now / reference.score_mean_ - 1 if reference.score_mean_ > 0 else float("nan")
    now = category_shares(tiers, fold=False)
    tier_rows = [{"tier": t, "reference": reference.tier_shares_.get(t, 0.0), "now": now.get(t, 0.0),
                  "change": now.get(t, 0.0) - reference.tier_shares_.get(t, 0.0)}
                 for t in _tier_order(tiers, reference.tier_shares_, now)]
    breaches = [b for d in feats for b in d.breaches]
    if score_psi > config.score_psi_threshold:
        breaches.append(f"churn probability: distribution shifted (PSI {score_psi:.2f}, threshold "
                        f"{config.score_psi_threshold:g})")
    if np.isfinite(change) and abs(change) > config.mean_probability_change:
        breaches.append(f"mean predicted churn {reference.score_mean_:.1%} in training, {mean_now:.1%} now "
                        f"({change:+.0%}; threshold ±{config.mean_probability_change:.0%})")
    for r in tier_rows:
        if abs(r["change"]) > config.tier_share_change:
            breaches.append(f"tier {r['tier']}: {r['now']:.1%} of scored customers (training: {r['reference']:.1%})")
    return DriftReport(int(len(p)), int(len(clean)), int(reference.n_rows_), feats, score_psi, reference.score_mean_, mean_now,
                       change, tier_rows, breaches)


def _tier_order(tiers: Any, reference: dict[str, float], now: dict[str, float]) -> list[str]:
    """Tier names riskiest first when `tiers` is an ordered categorical, else the reference's then new ones."""
    s = pd.Series(tiers)
    if isinstance(s.dtype, pd.CategoricalDtype):
        order = [str(c) for c in s.cat.categories]
        return order + sorted(set(reference) - set(order))
    return list(reference) + sorted(set(now) - set(reference))
