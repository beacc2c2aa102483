"""Probability calibration: maps the trees' raw P(churn) to probabilities that match observed rates.

Fitted on rows the trees did not see. Two methods:

- ``isotonic``: scikit-learn ``IsotonicRegression``, then linear interpolation between the centres of its
  constant blocks (centred isotonic regression). Plain isotonic output is a step function that gives whole
  blocks of customers the same risk; interpolating keeps it monotone and calibrated while preserving the
  ranking inside blocks, so AUC is not lost to ties. Beyond the outer centres (the riskiest and safest
  customers, often a tenth of the list on small data) the map would be flat and tie them all; there it rises
  by TAIL_SLOPE per unit of raw probability instead, so calibration never changes the ranking.
- ``sigmoid``: Platt scaling, a ``LogisticRegression`` on the raw log-odds.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

EPS = 1e-6
TAIL_SLOPE = 1e-4  # beyond the outer block centres: keeps the order, moves a probability by at most 1e-4


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities (clipped away from 0 and 1)."""
    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    return np.log(p / (1 - p))


class ProbabilityCalibrator(BaseEstimator):
    """Monotone map from raw to calibrated probability: method 'isotonic', 'sigmoid' or 'none'."""

    def __init__(self, method: str = "isotonic"):
        self.method = method

    def fit(self, p: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        """Learn the map from raw probabilities `p` to outcomes `y` (0/1)."""
        p = np.asarray(p, dtype="float64")
        y = np.asarray(y, dtype="float64")
        if self.method not in {"isotonic", "sigmoid", "none"}:
            raise ValueError(f"unknown calibration method {self.method!r}")
        self.n_fit_rows_ = len(p)
        if self.method == "none":
            return self
        if len(np.unique(y)) < 2:
            raise ValueError("calibration needs both churners and non-churners")
        if self.method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000)
            lr.fit(logit(p).reshape(-1, 1), y)
            self.coef_ = float(lr.coef_[0, 0])
            self.intercept_ = float(lr.intercept_[0])
            return self
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y)
        order = np.argsort(p, kind="mergesort")
        xs, fitted = p[order], iso.predict(p[order])
        # Constant blocks of the fitted step function -> (mean raw probability, fitted rate) per block.
        starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
        sums = np.add.reduceat(xs, starts)
        counts = np.diff(np.r_[starts, len(xs)])
        self.x_knots_ = sums / counts
        # Kept clear of the output clip by more than the tails can move, so the tails never tie there.
        self.y_knots_ = np.clip(fitted[starts], EPS + 2 * TAIL_SLOPE, 1 - EPS - 2 * TAIL_SLOPE)
        return self

    def predict(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw probabilities `p`, within [1e-6, 1 - 1e-6]."""
        p = np.asarray(p, dtype="float64")
        if self.method == "none":
            out = p
        elif self.method == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-(self.coef_ * logit(p) + self.intercept_)))
        else:
            out = np.interp(p, self.x_knots_, self.y_knots_)
            out = out + TAIL_SLOPE * (np.minimum(p - self.x_knots_[0], 0.0) + np.maximum(p - self.x_knots_[-1], 0.0))
        return np.clip(out, EPS, 1 - EPS)
