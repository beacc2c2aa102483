"""A regularised logistic regression with real preparation, on the prepared matrix the trees read.

Each feature becomes a block of columns: numbers a cubic B-spline basis on knots at their quantiles
(clipped at the outer knots, so an extreme value at scoring acts like the largest seen) or, with two
knots or too few distinct values for a curve, one standardised column clipped to the training range; a missing-value indicator where training had
missing values; categories one column per level seen at least `min_level_share` of the rows, the rest one
"rare" column, missing its own. A penalised logistic regression (L2, or L1 for a sparse model) fits all blocks.

Contributions are exact: each feature's is coefficient x (its block's value - the block's training
mean), and the bias is the intercept plus the coefficients times the means, so bias + contributions is
the log-odds, row by row. The blocks are computed one feature at a time, so scoring a million rows never
holds the whole design matrix.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import SplineTransformer


@dataclass
class _Block:
    """How one feature column becomes design columns."""

    kind: str  # spline | linear | levels
    median: float = 0.0
    mean: float = 0.0
    scale: float = 1.0
    missing: bool = False  # an indicator column for missing values
    spline: SplineTransformer | None = None
    lo: float = 0.0
    hi: float = 0.0
    levels: np.ndarray | None = None  # categorical codes with a column of their own

    @property
    def width(self) -> int:
        if self.kind == "levels":
            return len(self.levels) + 2  # levels, rare, missing
        base = self.spline.n_features_out_ if self.kind == "spline" else 1
        return base + int(self.missing)

    def design(self, x: np.ndarray) -> np.ndarray:
        """This feature's design columns for values `x` (NaN = missing)."""
        miss = np.isnan(x)
        if self.kind == "levels":
            out = np.zeros((len(x), self.width))
            idx = np.searchsorted(self.levels, np.where(miss, -1, x))
            known = ~miss & (idx < len(self.levels))
            known[known] = self.levels[idx[known]] == x[known]
            out[np.flatnonzero(known), idx[known]] = 1.0
            out[~miss & ~known, len(self.levels)] = 1.0
            out[miss, len(self.levels) + 1] = 1.0
            return out
        filled = np.where(miss, self.median, x)
        if self.kind == "spline":
            cols = self.spline.transform(np.clip(filled, self.lo, self.hi).reshape(-1, 1))
        else:  # clipped to the training range too: a value far outside it acts like the extreme seen
            cols = ((np.clip(filled, self.lo, self.hi) - self.mean) / self.scale).reshape(-1, 1)
        return np.column_stack([cols, miss.astype(float)]) if self.missing else cols


def _block_contribution(block: _Block, x: np.ndarray, w: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """w . (design(x) - mean), without building the design: a spline block's weighted basis is one B-spline
    whose coefficients are the weights (scipy evaluates it in compiled code), so a million rows cost one
    pass per feature instead of a (rows x basis) matrix."""
    if block.kind != "spline":
        return block.design(x) @ w - float(w @ mean)
    from scipy.interpolate import BSpline

    miss = np.isnan(x)
    n_basis = block.spline.n_features_out_
    base = block.spline.bsplines_[0]
    curve = BSpline(base.t, w[:n_basis], base.k, extrapolate=False)
    out = curve(np.clip(np.where(miss, block.median, x), block.lo, block.hi))
    if block.missing:
        out = out + w[n_basis] * miss
    return out - float(w @ mean)


def _fit_block(x: np.ndarray, categorical: bool, n_knots: int, min_level_share: float) -> _Block:
    miss = np.isnan(x)
    vals = x[~miss]
    if categorical:
        codes, counts = np.unique(vals, return_counts=True)
        keep = codes[counts >= max(1.0, min_level_share * len(x))]
        return _Block("levels", levels=np.sort(keep))
    median = float(np.median(vals)) if len(vals) else 0.0
    filled = np.where(miss, median, x)
    knots = np.unique(np.quantile(vals, np.linspace(0, 1, n_knots))) if len(vals) else np.array([])
    if len(knots) >= 3:
        lo, hi = float(knots[0]), float(knots[-1])
        spline = SplineTransformer(knots=knots.reshape(-1, 1), degree=3, extrapolation="constant")
        spline.fit(np.clip(filled, lo, hi).reshape(-1, 1))
        return _Block("spline", median=median, missing=bool(miss.any()), spline=spline, lo=lo, hi=hi)
    mean, scale = float(filled.mean()), float(filled.std() or 1.0)
    return _Block("linear", median=median, mean=mean, scale=scale, missing=bool(miss.any()),
                  lo=float(filled.min()) if len(filled) else 0.0, hi=float(filled.max()) if len(filled) else 0.0)


@dataclass(frozen=True)
class Prepared:
    """Blocks learnt on some rows and those rows' design matrix, with the settings they were learnt with."""

    blocks: list[_Block]
    design: np.ndarray
    n_knots: int
    min_level_share: float
    categorical_index: tuple[int, ...]
    rows: bytes  # a digest of the rows they were learnt on: fitting on other rows is refused


def _rows_digest(X: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(X).tobytes(), digest_size=16).digest() + bytes(str(X.shape), "ascii")


class SplineLogit(ClassifierMixin, BaseEstimator):
    """Logistic regression over per-feature spline / level blocks of the prepared matrix.

    Settings: `categorical_index` (columns holding level codes), `n_knots`, `min_level_share`, `C` (inverse
    penalty strength), `penalty` (l2, or l1: a sparse model), `seed`. `fit` learns `blocks_`, `coef_blocks_`, `means_` and `intercept_`.
    """

    def __init__(self, categorical_index: tuple[int, ...] | list[int] = (), *, n_knots: int = 5,
                 min_level_share: float = 0.005, C: float = 0.5, penalty: str = "l2", seed: int = 42,
                 max_iter: int = 300):
        self.categorical_index = categorical_index
        self.n_knots = n_knots
        self.min_level_share = min_level_share
        self.C = C
        self.penalty = penalty
        self.seed = seed
        self.max_iter = max_iter

    def prepare(self, X: np.ndarray) -> Prepared:
        """Each feature's block learnt on `X` (it depends on the rows, the knots and the level share, not on the
        penalty) and the rows' design matrix: `fit(X, y, prepared=...)` reuses them for every penalty tried."""
        X = np.asarray(X, dtype="float64")
        cats = set(self.categorical_index)
        blocks = [_fit_block(X[:, j], j in cats, self.n_knots, self.min_level_share) for j in range(X.shape[1])]
        design = np.hstack([b.design(X[:, j]) for j, b in enumerate(blocks)])
        design.setflags(write=False)  # shared by every model fitted on it
        return Prepared(blocks, design, self.n_knots, self.min_level_share, tuple(self.categorical_index),
                        _rows_digest(X))

    def fit(self, X: np.ndarray, y: np.ndarray, prepared: Prepared | None = None) -> SplineLogit:
        """Learn each feature's block (or take them from `prepared`, made by `prepare` on the same `X`), then
        the penalised logistic regression over all blocks."""
        X = np.asarray(X, dtype="float64")
        if prepared is None:
            prepared = self.prepare(X)
        elif (prepared.rows != _rows_digest(X)
              or (prepared.n_knots, prepared.min_level_share, prepared.categorical_index)
              != (self.n_knots, self.min_level_share, tuple(self.categorical_index))):
            raise ValueError("the prepared blocks were learnt on other rows or with other settings")
        self.blocks_ = list(prepared.blocks)
        Z = prepared.design
        if self.penalty not in ("l1", "l2"):
            raise ValueError(f"unknown penalty {self.penalty!r}; use 'l1' or 'l2'")
        # L1 (sparse: most blocks get no weight) needs liblinear; L2 fits faster with lbfgs.
        lr = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed,
                                **({"solver": "liblinear", "l1_ratio": 1.0, "tol": 1e-3} if self.penalty == "l1" else {}))
        with warnings.catch_warnings():
            # lbfgs stopping a little short of its tolerance changes nothing a ranking can see.
            warnings.simplefilter("ignore", ConvergenceWarning)
            lr.fit(Z, np.asarray(y))
        bounds = np.cumsum([0] + [b.width for b in self.blocks_])
        w = lr.coef_[0]
        self.coef_blocks_ = [w[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.means_ = [Z[:, a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.intercept_ = float(lr.intercept_[0])
        self.classes_ = lr.classes_
        # Spread of each feature's contribution on the training rows: its importance.
        self.importance_ = np.array([float(np.std(Z[:, a:b] @ wb)) for (a, b), wb in
                                     zip(zip(bounds[:-1], bounds[1:], strict=True), self.coef_blocks_, strict=True)])
        return self

    @property
    def bias_(self) -> float:
        """The log-odds of a row at every block's training mean (the contributions' reference)."""
        return self.intercept_ + float(sum(w @ m for w, m in zip(self.coef_blocks_, self.means_, strict=True)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, features + 1): each feature's log-odds contribution, the bias last; rows sum to the log-odds."""
        X = np.asarray(X, dtype="float64")
        out = np.empty((X.shape[0], len(self.blocks_) + 1))
        for j, (b, w, m) in enumerate(zip(self.blocks_, self.coef_blocks_, self.means_, strict=True)):
            out[:, j] = _block_contribution(b, X[:, j], w, m)
        out[:, -1] = self.bias_
        return out

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The log-odds of churn per row."""
        return self.contributions(X).sum(axis=1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, 2) probabilities; column 1 is P(churn)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])
