"""The training reference a scoring run is compared with, stored with the model as `drift_reference_`.

`DriftReference` follows the scikit-learn estimator contract: the constructor keeps settings (`bins`),
`fit` learns, per feature, the reference quantile edges and bin shares (numbers) or the category shares
(categories, matched as the model's preparation matches levels: case and surrounding spaces ignored) and
the missing share; the churn probability's edges, bin shares and mean; and the tier shares. Everything
learnt ends in `_` and is plain numbers, lists and dicts, so the model still pickles, clones and loads from
a bundle's allow-list.

The trainer builds it with `reference_for(model, rows, scores, config)` and sets it on the model it
registers (`model.drift_reference_ = ...`); scoring reads it with `getattr(model, "drift_reference_", None)`
(a model trained before it exists is scored without drift, with a notice).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.monitoring.statistics import bin_shares

MISSING = "(missing)"


def numbers(values: Any) -> np.ndarray:
    """A column as float64 (NaN missing, text that is no number missing)."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def categories(values: Any) -> pd.Series:
    """A categorical column as folded text (None missing), so "Gold" and " gold" are one level; each distinct
    value is folded once (millions of rows, a handful of levels)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    folded = [str(v).strip().casefold() or None for v in uniques.tolist()]
    return pd.Series(np.array([*folded, None], dtype=object)[codes], dtype=object)


def category_shares(values: Any, fold: bool = True) -> dict[str, float]:
    """{level: share of the non-missing rows}, levels sorted by name; `fold=False` keeps values as written
    (tier names are ours)."""
    text = categories(values) if fold else pd.Series(values, dtype=object)
    text = text.dropna().astype(str)
    if text.empty:
        return {}
    return {k: float(v / len(text)) for k, v in sorted(text.value_counts().items())}


def missing_share(values: Any, categorical: bool) -> float:
    """Share of missing rows of a column (0.0 for an empty column)."""
    miss = categories(values).isna() if categorical else pd.Series(np.isnan(numbers(values)))
    return float(miss.mean()) if len(miss) else 0.0


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """The distinct inner quantile edges cutting `values` into `bins` equal-count bins (fewer when tied)."""
    x = values[~np.isnan(values)]
    if not len(x):
        return np.array([], dtype=float)
    return np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))


class DriftReference(BaseEstimator):
    """What training data and training scores looked like, to compare every scoring run with.

    `fit` learns `features_` (name -> "numeric" or "categorical"), `edges_` and `shares_` (numeric
    features: quantile edges and the share of non-missing rows per bin), `levels_` (categorical features:
    share per level), `missing_` (share missing per feature), `score_edges_`, `score_shares_`,
    `score_mean_`, `tier_shares_` and `n_rows_`.
    """

    def __init__(self, bins: int = 10):
        self.bins = bins

    def fit(self, clean: pd.DataFrame, features: Sequence[Feature], scores: np.ndarray,
            tiers: Sequence[Any] | pd.Series | None = None) -> DriftReference:
        """Learn the reference from the feature columns `clean` (read as the model reads them), the calibrated
        churn probabilities `scores` of the same rows and, optionally, their risk tiers."""
        if self.bins < 2:
            raise ChurnError(f"drift reference: bins must be at least 2, got {self.bins}")
        missing = [f.name for f in features if f.name not in clean.columns]
        if missing:
            raise ChurnError(f"drift reference: the reference rows lack feature column(s) {', '.join(missing)}")
        p = numbers(scores)
        if len(p) != len(clean):
            raise ChurnError(f"drift reference: {len(p):,} scores for {len(clean):,} rows")
        if not len(p) or np.isnan(p).all():
            raise ChurnError("drift reference: no reference rows with a score")
        self.features_ = {f.name: ("categorical" if f.kind == "categorical" else "numeric") for f in features}
        self.edges_: dict[str, list[float]] = {}
        self.shares_: dict[str, list[float]] = {}
        self.levels_: dict[str, dict[str, float]] = {}
        self.missing_: dict[str, float] = {}
        for name, kind in self.features_.items():
            col = clean[name].to_numpy()
            self.missing_[name] = missing_share(col, kind == "categorical")
            if kind == "categorical":
                self.levels_[name] = category_shares(col)
            else:
                x = numbers(col)
                edges = quantile_edges(x, self.bins)
                self.edges_[name] = edges.tolist()
                self.shares_[name] = bin_shares(x, edges).tolist()
        edges = quantile_edges(p, self.bins)
        self.score_edges_ = edges.tolist()
        self.score_shares_ = bin_shares(p, edges).tolist()
        self.score_mean_ = float(np.nanmean(p))
        self.tier_shares_ = {} if tiers is None else category_shares(tiers, fold=False)
        self.n_rows_ = int(len(p))
        return self


def reference_for(model: Any, rows: pd.DataFrame, scores: np.ndarray | None = None, config: Any = None, *,
                  raw: bool = False) -> DriftReference:
    """The drift reference of a fitted `model` on reference `rows` (raw or cleaned feature columns, e.g. the
    newest training snapshot): what the trainer stores as `model.drift_reference_`.

    `scores`: the rows' calibrated churn probabilities (with `raw=True`, uncalibrated ones, mapped through
    the model's calibrator); None: the model's own `predict_risk(rows)`. `config` (a `churn.config.Config`)
    gives the tier rules and the number of bins; None: the defaults."""
    from churn.config.schema import Config
    from churn.scoring.tiers import RiskTiers

    cfg = config if config is not None else Config()
    clean = model.preparation_.clean(rows)  # reading clean columns again changes nothing
    if scores is None:
        p = np.asarray(model.predict_risk(rows), dtype=float)
    else:
        p = numbers(scores)
        if raw:
            p = np.asarray(model.calibrator_.predict(p), dtype=float)
    tiers = RiskTiers(cfg.tiers).fit(pd.Series(p)).transform(pd.Series(p))
    return DriftReference(bins=cfg.monitoring.bins).fit(clean, model.features_, p, tiers)
