"""Baselines the model must beat on the same holdout: the plain models a data scientist tries first.

- `logistic`: median-imputed, scaled numbers and one-hot categories in an L2 logistic regression;
- `l1_logistic`: an L1 (sparse) logistic regression on the numbers alone (per-window counts and the like),
  clipped to the training range, its penalty chosen by 3-fold cross-validation on ROC AUC: the classic
  baseline of an event log;
- `heuristic`: one column (days since the last activity: the recency rule), mapped monotonically;
- `bgnbd`: BG/NBD's P(no order within the horizon) alone, where the features have it: the classic model of
  a transaction log.

All take the read feature frame (numeric float64 with NaN, categorical text with None), as produced by
`churn.preparation.Preparation.clean`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from churn.features.registry import Feature

RECENCY_COLUMNS = ("days_since_last_event", "days_since_last_order", "days_since_last_activity")
BGNBD_COLUMN = "btyd_p_no_order"


def _fill_missing_text(X: pd.DataFrame) -> pd.DataFrame:
    return X.astype(object).where(X.notna(), "(missing)")


def logistic_baseline(features: list[Feature], seed: int = 42) -> Pipeline:
    """Impute (median + missing indicator), scale, one-hot the categoricals, logistic regression."""
    num = [f.name for f in features if f.kind != "categorical"]
    cat = [f.name for f in features if f.kind == "categorical"]
    parts = []
    if num:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True,
                                                              keep_empty_features=True), StandardScaler()), num))
    if cat:
        parts.append(("categorical", make_pipeline(
            FunctionTransformer(_fill_missing_text, feature_names_out="one-to-one"),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=30, sparse_output=False),
        ), cat))
    pre = ColumnTransformer(parts, remainder="drop")
    return Pipeline([("prepare", pre), ("logistic", LogisticRegression(max_iter=500, C=1.0, random_state=seed))])


class ClipToRange(BaseEstimator):
    """Clip each column to its 0.1%-99.9% training range, so a value far outside it scores like the edge."""

    def fit(self, X: np.ndarray, y: object = None) -> ClipToRange:
        """Learn each column's range."""
        X = np.asarray(X, dtype="float64")
        self.lo_, self.hi_ = np.nanquantile(X, 0.001, axis=0), np.nanquantile(X, 0.999, axis=0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """The columns clipped to their training range."""
        return np.clip(np.asarray(X, dtype="float64"), self.lo_, self.hi_)

    def fit_transform(self, X: np.ndarray, y: object = None) -> np.ndarray:
        """`fit`, then `transform`."""
        return self.fit(X).transform(X)


def l1_logistic_baseline(features: list[Feature], seed: int = 42) -> Pipeline:
    """Numbers only: median + missing indicator, clipped to the training range, scaled, then an L1 logistic
    regression whose penalty 3-fold cross-validation picks (ROC AUC)."""
    num = [f.name for f in features if f.kind != "categorical"]
    pre = ColumnTransformer([("numeric", make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), ClipToRange(),
        StandardScaler()), num)], remainder="drop")
    # Penalties from strong to mild: beyond C=1 liblinear's L1 crawls and barely penalises anything anyway.
    lr = LogisticRegressionCV(Cs=(0.01, 0.1, 1.0), l1_ratios=(1.0,), solver="liblinear", scoring="roc_auc",
                              cv=3, max_iter=200, tol=1e-3, random_state=seed, use_legacy_attributes=False)
    return Pipeline([("prepare", pre), ("logistic", lr)])


def pick_heuristic_feature(X: pd.DataFrame, y: np.ndarray, features: list[Feature]) -> tuple[str, str]:
    """The one column the heuristic ranks by, and why it was chosen.

    Days since last activity/order if present (the classic recency rule), else any `days_since` column, else
    the numeric feature with the best training AUC (either direction).
    """
    numeric = [f.name for f in features if f.kind != "categorical"]
    for c in RECENCY_COLUMNS:
        if c in numeric:
            return c, f"recency rule on {c}"
    for c in numeric:
        if "days_since" in c:
            return c, f"recency rule on {c} (first days_since column)"
    best, best_auc = None, -1.0
    for c in numeric:
        x = X[c].to_numpy(dtype="float64")
        x = np.where(np.isnan(x), np.nanmedian(x) if np.isfinite(x).any() else 0.0, x)
        if len(np.unique(y)) < 2 or np.nanstd(x) == 0:
            continue
        auc = roc_auc_score(y, x)
        auc = max(auc, 1 - auc)
        if auc > best_auc:
            best, best_auc = c, auc
    if best is None:
        raise ValueError("no numeric feature for the heuristic baseline")
    return best, f"best single numeric feature by training AUC ({best}, {best_auc:.3f})"


class HeuristicBaseline(ClassifierMixin, BaseEstimator):
    """Rank customers by one column (e.g. days since last activity), mapped to a probability by a one-feature
    logistic regression, so the ranking is exactly the column's (missing values take the median)."""

    def __init__(self, column: str = "days_since_last_event"):
        self.column = column

    def _x(self, X: pd.DataFrame) -> np.ndarray:
        x = X[self.column].to_numpy(dtype="float64")
        x = np.where(np.isnan(x), self.median_, x)
        return ((x - self.mean_) / self.scale_).reshape(-1, 1)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> HeuristicBaseline:
        """Learn the median, scale and the direction/slope of the one-feature logistic map."""
        x = X[self.column].to_numpy(dtype="float64")
        self.median_ = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
        x = np.where(np.isnan(x), self.median_, x)
        self.mean_, self.scale_ = float(x.mean()), float(x.std() or 1.0)
        self.logistic_ = LogisticRegression(max_iter=500).fit(self._x(X), y)
        self.classes_ = self.logistic_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """(n, 2) probabilities; column 1 is P(churn)."""
        return self.logistic_.predict_proba(self._x(X))
