"""Risk tiers: calibrated churn probabilities cut into named tiers, riskiest first.

Two methods (``tiers.method`` in the config):

* ``probability`` - fixed cut points on the calibrated probability: a customer is in the first tier whose
  ``min_probability`` they reach (``p >= min_probability``). Cut points must be listed from high to low.
* ``quantile`` - cut points learnt from the scored list: a level's ``top_share`` is the *cumulative* share
  of the riskiest customers that this tier and every riskier tier hold together (critical 0.05, high 0.20
  means the top 5% are critical and the next 15% high). The cut point is the probability of the
  ``k``-th riskiest customer, ``k = floor(top_share * n + 0.5)`` (round half up), so customers with the
  same probability always share a tier (with ties a tier may hold a few more than its share). A level may
  also keep a fixed ``min_probability`` under this method; both kinds of cut point may be mixed (a
  learnt cut point that lands above a riskier tier's leaves that tier empty).

The last tier catches everyone, whatever its own rule says (loading a config refuses a last rule other than
0 or 1, and two tiers sharing a cut point: `churn.config.checks`). A missing probability gets a missing tier.

`RiskTiers` follows the scikit-learn estimator contract: the constructor only stores the config, `fit`
learns ``thresholds_`` (one cut point per tier, the last is ``-inf``) and `transform` applies them, so a
list scored later can be tiered with the cut points learnt today.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from churn.config import TiersConfig
from churn.errors import ChurnError


class RiskTiers:
    """Learns tier cut points (``thresholds_``) and maps probabilities to an ordered tier categorical."""

    def __init__(self, config: TiersConfig | None = None):
        self.config = config

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, probability: pd.Series) -> RiskTiers:
        """Learn one cut point per tier from `probability` (quantile levels) or the config (fixed ones)."""
        p = pd.to_numeric(pd.Series(probability), errors="coerce").to_numpy(dtype=float)
        p = np.sort(p[~np.isnan(p)])[::-1]  # riskiest first
        return self.fit_ranked(len(p), lambda k: float(p[k - 1]))

    def fit_ranked(self, n: int, kth: Callable[[int], float]) -> RiskTiers:
        """`fit` for a list of `n` probabilities that is not in memory: `kth(k)` gives the k-th highest
        (1-based); it is asked only for the quantile levels' ranks (a Spark run finds them exactly)."""
        cfg = self.config if self.config is not None else TiersConfig()
        levels = cfg.levels
        if not levels:
            raise ChurnError("tiers: the config lists no tier levels")
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ChurnError(f"tiers: tier names must be unique, got {names}")

        thresholds: list[float] = []
        last_share = 0.0
        for i, lv in enumerate(levels):
            if i == len(levels) - 1:
                thresholds.append(-math.inf)  # the last tier catches everyone
                break
            if lv.top_share is not None:
                if cfg.method == "probability":
                    raise ChurnError(
                        f"tiers: method is 'probability' but tier '{lv.name}' gives top_share; "
                        "give min_probability or set tiers.method: quantile"
                    )
                if not 0.0 <= lv.top_share <= 1.0 or lv.top_share < last_share:
                    raise ChurnError(
                        f"tiers: tier '{lv.name}' top_share {lv.top_share} must be in [0, 1] and not below "
                        "the riskier tier's share (shares are cumulative, riskiest first)"
                    )
                last_share = lv.top_share
                k = math.floor(lv.top_share * n + 0.5)
                thresholds.append(kth(k) if k >= 1 else math.inf)
            else:
                thresholds.append(float(lv.min_probability))  # type: ignore[arg-type]
        fixed = [lv.top_share is None for lv in levels]
        for i in range(1, len(thresholds)):
            if thresholds[i] > thresholds[i - 1]:
                if fixed[i] and fixed[i - 1]:
                    raise ChurnError(
                        f"tiers: min_probability must fall from the riskiest tier down; tier "
                        f"'{levels[i].name}' starts at {thresholds[i]:g}, above the riskier tier's "
                        f"{thresholds[i - 1]:g}"
                    )
                # A learnt cut point above a riskier tier's: this tier is simply empty on this list.
                thresholds[i] = thresholds[i - 1]
        self.tier_names_ = names
        self.thresholds_ = np.asarray(thresholds, dtype=float)
        self.n_fitted_ = n
        return self

    # ------------------------------------------------------------------------------------ transform
    def transform(self, probability: pd.Series) -> pd.Series:
        """Tier per customer: an ordered categorical whose categories run riskiest first."""
        if not hasattr(self, "thresholds_"):
            raise ChurnError("tiers: call fit before transform")
        s = pd.Series(probability)
        p = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        # First tier i with p >= thresholds_[i]; thresholds fall, so -thresholds rise and searchsorted works.
        codes = np.searchsorted(-self.thresholds_, -p, side="left")
        codes = np.where(np.isnan(p), -1, np.minimum(codes, len(self.tier_names_) - 1))
        cat = pd.Categorical.from_codes(codes, categories=self.tier_names_, ordered=True)
        return pd.Series(cat, index=s.index, name="risk_tier")

    def fit_transform(self, probability: pd.Series) -> pd.Series:
        """`fit` then `transform` on the same list."""
        return self.fit(probability).transform(probability)

    def thresholds(self) -> dict[str, float]:
        """Learnt cut points by tier name (for summaries and reports)."""
        return {n: float(t) for n, t in zip(self.tier_names_, self.thresholds_)}

    def __repr__(self) -> str:
        return f"RiskTiers(method={self.config.method if self.config else 'probability'!r})"


def assign_tiers(probability: pd.Series, config: TiersConfig) -> pd.Series:
    """Tier per customer, with cut points learnt from this very list (quantile) or fixed (probability)."""
    return RiskTiers(config).fit_transform(probability)
