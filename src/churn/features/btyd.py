"""BG/NBD ("buy till you die") purchase model: fit on RFM summaries, predict per-customer churn signals.

The beta-geometric / negative-binomial model of Fader, Hardie & Lee (2005), "Counting Your Customers the
Easy Way", in numpy/scipy. Used by the point-in-time purchase-feature builder: at every ``as_of`` it is
fitted on the purchases strictly before ``as_of`` and turned into per-customer features.

Model (per customer, after their first purchase at time 0):

* while alive, repeat purchases arrive as a Poisson process with rate ``lambda ~ Gamma(r, rate=alpha)``;
* right after each *repeat* purchase the customer drops out for good with probability
  ``p ~ Beta(a, b)``. Nobody drops out at their first purchase.

Inputs follow the literature and the ``lifetimes`` package:

* ``frequency`` x: number of *repeat* purchases (purchases after the first), in ``(0, T]``;
* ``recency`` t_x: time of the last purchase minus time of the first purchase (0 when x = 0);
* ``T``: ``as_of`` minus time of the first purchase (the customer's age).

The time unit is the caller's (days, weeks, ...). Predictions take ``t`` in the same unit, and ``alpha``
is reported in it (``alpha`` scales with the unit, ``r, a, b`` do not). Internally the optimiser works in
a time unit equal to repeat buyers' mean gap between purchases (sum of t_x / sum of x), so it sees
``alpha = O(1)`` whatever the caller's unit; ``alpha`` is converted back afterwards. The ``penalizer`` (an
L2 term added to the mean negative log-likelihood) is applied to the parameters with time scaled so that
``max(T) = 1``, exactly as ``lifetimes``' ``penalizer_coef``, so penalised fits match lifetimes too.

Customers with no purchase at all are outside the model; the caller handles them.

Which output to use as a churn score
------------------------------------
Because dropout can only happen right after a repeat purchase, ``prob_alive`` is exactly 1 for every
customer with x = 0, however long ago their only purchase was. It is therefore a poor churn score for
one-time buyers (often the majority). :meth:`BetaGeo.prob_no_purchase` (probability of no purchase in the
next ``t``) and :meth:`BetaGeo.expected_purchases` do fall with T for one-time buyers, through the
posterior of the purchase rate, and are the better features.

Failure handling
----------------
:meth:`BetaGeo.fit` raises :class:`BTYDFitError` (a ``ValueError``) when the model cannot be fitted:
fewer than ``min_customers`` customers, no repeat buyers, or an optimiser that does not converge (nor
reach a near-zero gradient) or ends on a non-finite likelihood. The feature builder catches it
and emits missing values. Malformed input (negative counts, recency > T, ...) raises a plain
``ValueError``. A fitted model always has ``converged_ == True``.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numba
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, log1p
from threadpoolctl import threadpool_limits

from churn.compiled import kernel_input

__all__ = ["BGParams", "BTYDFitError", "BetaGeo", "NotFittedError", "compress_rfm", "rfm_summary"]

# Bounds on log-parameters (internal time unit): exp(+-12) ~ 1.6e5 / 6e-6. They keep the search finite
# when the likelihood is maximised only in a limit (nobody drops out => a -> 0 or b -> inf; no
# heterogeneity in purchase rates => r, alpha -> inf); the bounded optimum is then a fine stand-in for
# that limiting model, and the parameters concerned are listed in ``params_at_bound_``.
_LOG_BOUND = 12.0
# |a - 1| below this is nudged away from the removable singularity of the expected-purchases formula.
_A_ONE_EPS = 1e-7


class NotFittedError(ValueError, AttributeError):
    """A prediction was asked of a model that was not fitted (the same bases as scikit-learn's)."""


class _EstimatorParams:
    """scikit-learn's estimator contract (get_params / set_params, so `sklearn.base.clone` works) without
    importing scikit-learn: inheriting BaseEstimator cost every feature build 1.2 s of imports."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params: Any) -> _EstimatorParams:
        """Set constructor parameters; returns self."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


class BTYDFitError(ValueError):
    """The BG/NBD model could not be fitted on this data; callers fall back to missing values."""


class BGParams(NamedTuple):
    """Fitted BG/NBD parameters; ``alpha`` is in the caller's time unit."""

    r: float
    alpha: float
    a: float
    b: float


# ----------------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------------


def _as_1d(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _check_rfm(frequency, recency, T, *, what: str = "input") -> tuple[np.ndarray, ...]:
    """Broadcast and validate (x, t_x, T); raise ValueError naming the problem and example rows."""
    x, tx, tt = np.broadcast_arrays(
        np.asarray(frequency, dtype=np.float64),
        np.asarray(recency, dtype=np.float64),
        np.asarray(T, dtype=np.float64),
    )
    problems = {
        "non-finite frequency, recency or T": ~(np.isfinite(x) & np.isfinite(tx) & np.isfinite(tt)),
        "frequency must be a whole number >= 0": (x < 0) | (x != np.floor(x)),
        "recency must be >= 0": tx < 0,
        "recency must be <= T": tx > tt,
        "recency must be 0 when frequency is 0": (x == 0) & (tx != 0),
    }
    for message, bad in problems.items():
        if np.any(bad):
            idx = np.flatnonzero(np.atleast_1d(bad))
            xs, rs, ts = (np.atleast_1d(v) for v in (x, tx, tt))
            examples = "; ".join(
                f"row {i}: frequency={xs[i]:g}, recency={rs[i]:g}, T={ts[i]:g}" for i in idx[:3]
            )
            raise ValueError(f"BG/NBD {what}: {message} ({idx.size:,} rows); e.g. {examples}")
    return x, tx, tt


def compress_rfm(
    frequency, recency, T, weights=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Collapse identical (x, t_x, T) rows into unique rows with summed weights.

    Returns ``(x, t_x, T, w)`` sorted by (x, t_x, T), so x = 0 rows come first. With whole-day recency
    and T, a million customers typically collapse to far fewer rows; the likelihood is a weighted sum,
    so fitting on the unique rows is exact.
    """
    x = _as_1d("frequency", frequency)
    tx = _as_1d("recency", recency)
    tt = _as_1d("T", T)
    if not (x.size == tx.size == tt.size):
        raise ValueError(f"frequency, recency and T differ in length: {x.size}, {tx.size}, {tt.size}")
    w = np.ones_like(x) if weights is None else _as_1d("weights", weights)
    if w.size != x.size:
        raise ValueError(f"weights has length {w.size}, frequency has {x.size}")
    if x.size == 0:
        return x, tx, tt, w
    key = _row_key(x, tx, tt)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    first = order[starts]
    return x[first], tx[first], tt[first], np.add.reduceat(w[order], starts)


def _row_key(x: np.ndarray, tx: np.ndarray, tt: np.ndarray) -> np.ndarray:
    """An int64 key per row, equal for equal rows and ordered like (x, t_x, T)."""
    cols = [x, tx, tt]
    finite = all(np.isfinite(c).all() for c in cols)
    lo = [c.min() for c in cols] if finite else None
    span = [c.max() - m + 1 for c, m in zip(cols, lo)] if finite else None
    whole = finite and all(((c == np.floor(c)).all()) for c in cols)
    if whole and float(span[0]) * float(span[1]) * float(span[2]) < 2.0**62:
        # Whole numbers (counts, whole days): the key is the mixed-radix number itself, no factorising.
        codes = [(c - m).astype(np.int64) for c, m in zip(cols, lo)]
        sizes = [np.int64(s) for s in span]
    else:
        # General case: factorise each column (1-D sorts), then combine the codes.
        factorised = [np.unique(c, return_inverse=True) for c in cols]
        codes = [inv.astype(np.int64) for _, inv in factorised]
        sizes = [np.int64(u.size) for u, _ in factorised]
    return (codes[0] * sizes[1] + codes[1]) * sizes[2] + codes[2]


# ----------------------------------------------------------------------------------------------------
# likelihood
# ----------------------------------------------------------------------------------------------------


class _NegLogLik:
    """Mean weighted negative log-likelihood of BG/NBD and its gradient, in log-parameter space.

    Per customer (Fader, Hardie & Lee 2005, eq. 6)::

        L = B(a, b+x)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+T)^(r+x))
            + [x>0] B(a+1, b+x-1)/B(a, b) * G(r+x) alpha^r / (G(r) (alpha+t_x)^(r+x))

    computed in logs with a log-sum-exp of the two terms. Terms that depend only on x (gammaln, betaln,
    digamma) are evaluated once per distinct x, and log(alpha + T), log(alpha + t_x) once per distinct
    T and t_x, then gathered; x = 0 rows (the second term vanishes) are handled separately. Time
    values must already be scaled.
    """

    def __init__(self, x, tx, tt, w, penalizer: float, alpha_to_penalized: float = 1.0):
        zero = x == 0
        self.penalizer = penalizer
        # The penalty is on (r, alpha * alpha_to_penalized, a, b): lets the optimiser use one time scale
        # while the penalty keeps lifetimes' meaning (time scaled so that max T = 1).
        self.pen_scale = np.array([1.0, alpha_to_penalized, 1.0, 1.0])
        self.W = w.sum()
        # x = 0 rows: only T and the weight matter; aggregate the weight per distinct T.
        self.T0, inv0 = np.unique(tt[zero], return_inverse=True)
        self.w0 = np.bincount(inv0, weights=w[zero], minlength=self.T0.size)
        # x > 0 rows, as indices into tables of distinct x, T and t_x.
        pos = ~zero
        self.ux, self.xi = np.unique(x[pos], return_inverse=True)
        self.uT, self.iT = np.unique(tt[pos], return_inverse=True)
        self.utx, self.itx = np.unique(tx[pos], return_inverse=True)
        self.w1 = w[pos]
        self.wx1 = self.w1 * x[pos]
        # Weight, and weight times x, per distinct T (for the sums over rows of log(alpha+T) terms).
        self.w1_T = np.bincount(self.iT, weights=self.w1, minlength=self.uT.size)
        self.wx1_T = np.bincount(self.iT, weights=self.wx1, minlength=self.uT.size)
        # Weight per distinct x (including x = 0) for the x-only terms.
        self.allx, inv = np.unique(x, return_inverse=True)
        self.Wx = np.bincount(inv, weights=w)

    def __call__(self, log_params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params = np.exp(log_params)
        W, ux, xi = self.W, self.ux, self.xi

        # Terms that depend on x only, summed with the weight of each x.
        X, Wx = self.allx, self.Wx
        s_x = Wx @ (gammaln(r + X) - gammaln(r) + betaln(a, b + X) - betaln(a, b))
        g_r = Wx @ (digamma(r + X) - digamma(r))
        dig_ab = digamma(a + b)
        dig_abx = digamma(a + b + X)
        g_a = Wx @ (dig_ab - dig_abx)
        g_b = Wx @ (digamma(b + X) - dig_abx - digamma(b) + dig_ab)

        ll = s_x + W * r * np.log(alpha)
        g_r += W * np.log(alpha)
        g_alpha = W * r / alpha

        # x = 0 rows: log-term is -r log(alpha + T).
        if self.T0.size:
            lt0 = np.log(alpha + self.T0)
            ll -= r * (self.w0 @ lt0)
            g_r -= self.w0 @ lt0
            g_alpha -= r * (self.w0 @ (1.0 / (alpha + self.T0)))

        # x > 0 rows: log( (alpha+T)^-(r+x) + a/(b+x-1) (alpha+t_x)^-(r+x) ) = B2 + softplus(B3 - B2).
        # Everything per distinct x, T or t_x is computed here; the per-row part is one compiled loop
        # (17 -> ~6 ms an evaluation on 300k rows against ~20 vectorised passes with their temporaries).
        if self.w1.size:
            inv_bx1_x = 1.0 / (b + ux - 1.0)
            lt_u = np.log(alpha + self.uT)
            inv_T_u = 1.0 / (alpha + self.uT)
            ll_rows, gr_rows, ga_rows, w3_sum, gb_rows = _x_positive_rows(
                *(kernel_input(v, np.intp) for v in (xi, self.itx, self.iT)),
                *(kernel_input(v, np.float64) for v in (self.w1, r + ux, np.log(alpha + self.utx), lt_u,
                                                       np.log(a) + np.log(inv_bx1_x), 1.0 / (alpha + self.utx),
                                                       inv_T_u, inv_bx1_x)))
            # sum_rows w1 k lt, via per-T aggregates: sum w1 (r + x) lt = r W1_T.lt + WX1_T.lt
            w1_lt = self.w1_T @ lt_u
            ll += -(r * w1_lt + self.wx1_T @ lt_u) + ll_rows
            g_r -= w1_lt + gr_rows
            g_alpha -= r * (self.w1_T @ inv_T_u) + self.wx1_T @ inv_T_u + ga_rows
            g_a += w3_sum / a
            g_b -= gb_rows

        pen_params = params * self.pen_scale
        f = -ll / W + self.penalizer * np.sum(pen_params**2)
        grad_log = -np.array([g_r, g_alpha, g_a, g_b]) / W * params + 2.0 * self.penalizer * pen_params**2
        return float(f), grad_log  # gradient with respect to the log-parameters


_CHUNKS = 32  # fixed row chunks, summed in order: the same fit whatever the number of threads


@numba.njit(parallel=True, cache=True, nogil=True)
def _x_positive_rows(xi, itx, iT, w1, k_x, log_tx, log_T, base_x, inv_tx, inv_T, inv_bx):  # pragma: no cover
    """Sums over the x > 0 rows of the log-likelihood term and its gradient parts (see `_NegLogLik`).

    Per row: d = B3 - B2 = log(a / (b + x - 1)) - (r + x) (log(alpha + t_x) - log(alpha + T)); the term is
    max(d, 0) + log(1 + exp(-|d|)), and w3 = P(dropped out after the last purchase) = sigmoid(d).
    """
    n = xi.shape[0]
    parts = np.zeros((_CHUNKS, 5))
    for c in numba.prange(_CHUNKS):
        ll = g_r = g_alpha = w3_sum = g_b = 0.0
        for j in range(n * c // _CHUNKS, n * (c + 1) // _CHUNKS):
            x, t, T = xi[j], itx[j], iT[j]
            dlog = log_tx[t] - log_T[T]
            diff = base_x[x] - k_x[x] * dlog
            e = np.exp(-abs(diff))
            ll += w1[j] * (max(diff, 0.0) + np.log(1.0 + e))
            ww3 = w1[j] * (1.0 if diff >= 0.0 else e) / (1.0 + e)
            g_r += ww3 * dlog
            g_alpha += ww3 * k_x[x] * (inv_tx[t] - inv_T[T])
            w3_sum += ww3
            g_b += ww3 * inv_bx[x]
        parts[c, 0], parts[c, 1], parts[c, 2], parts[c, 3], parts[c, 4] = ll, g_r, g_alpha, w3_sum, g_b
    total = np.zeros(5)
    for c in range(_CHUNKS):
        total += parts[c]
    return total[0], total[1], total[2], total[3], total[4]


def warm_up() -> None:
    """Load the compiled likelihood loop (numba's cache, or compile it once): run in the background while
    DuckDB works, so the first fit does not wait for it."""
    idx, one = kernel_input(np.zeros(1, np.intp), np.intp), kernel_input(np.ones(1), np.float64)
    _x_positive_rows(idx, idx, idx, one, one, one, one, one, one, one, one)


# ----------------------------------------------------------------------------------------------------
# estimator
# ----------------------------------------------------------------------------------------------------


class BetaGeo(_EstimatorParams):
    """BG/NBD model with the sklearn estimator contract.

    Parameters
    ----------
    penalizer:
        L2 penalty on the parameters (in scaled time, max T = 1), added to the mean negative
        log-likelihood; same meaning as ``lifetimes.BetaGeoFitter(penalizer_coef=...)``. 0 = plain MLE.
    max_iter:
        Maximum L-BFGS-B iterations.
    tol:
        Convergence tolerance: the largest projected-gradient component of the mean negative
        log-likelihood with respect to the log-parameters.
    min_customers:
        Fewer customers (sum of weights) than this raises :class:`BTYDFitError`.

    Attributes (after ``fit``)
    --------------------------
    params_: BGParams
        ``(r, alpha, a, b)``, alpha in the caller's time unit.
    converged_: bool
        Always True on a returned fit (failures raise :class:`BTYDFitError`).
    n_customers_: float
        Customers fitted on (sum of weights).
    n_unique_rows_: int
        Distinct (x, t_x, T) rows the likelihood was evaluated on.
    log_likelihood_: float
        Mean log-likelihood per customer at the optimum (without penalty).
    n_iter_: int
        Optimiser iterations.
    params_at_bound_: tuple[str, ...]
        Parameters whose optimum lies at the edge of the search range (the likelihood keeps improving
        towards a limit, e.g. ``a`` when nobody drops out); usually empty. Predictions stay valid.
    time_scale_: float
        The internal time unit, in the caller's unit (repeat buyers' mean gap between purchases).
    """

    def __init__(
        self, penalizer: float = 0.0, max_iter: int = 500, tol: float = 1e-7, min_customers: int = 30
    ):
        self.penalizer = penalizer
        self.max_iter = max_iter
        self.tol = tol
        self.min_customers = min_customers

    # -- fitting -------------------------------------------------------------------------------------

    def fit(self, frequency, recency, T, weights=None) -> BetaGeo:
        """Fit by maximum likelihood on the distinct (x, t_x, T) rows; returns self.

        ``weights`` (optional) counts how many customers each row stands for; a weighted fit on unique
        rows equals the unweighted fit on all rows. Raises :class:`BTYDFitError` when the data cannot
        support a fit (see module docstring), ``ValueError`` on malformed input.
        """
        if self.penalizer < 0:
            raise ValueError(f"penalizer must be >= 0, got {self.penalizer}")
        x, tx, tt, w = compress_rfm(frequency, recency, T, weights)
        _check_rfm(x, tx, tt, what="fit input")
        if np.any(~np.isfinite(w) | (w < 0)):
            raise ValueError("BG/NBD fit input: weights must be finite and >= 0")
        keep = w > 0
        x, tx, tt, w = x[keep], tx[keep], tt[keep], w[keep]

        n_customers = float(w.sum())
        if n_customers < self.min_customers:
            raise BTYDFitError(
                f"BG/NBD needs at least {self.min_customers} customers to fit, got {n_customers:g}"
            )
        if not np.any(x > 0):
            raise BTYDFitError(
                "BG/NBD cannot be fitted: no customer has a repeat purchase (all frequency = 0)"
            )
        max_T = float(tt.max())
        if max_T <= 0:
            raise BTYDFitError("BG/NBD cannot be fitted: every customer has T = 0 (no time observed)")
        # Optimise in a time unit close to repeat buyers' mean gap between purchases, sum(t_x)/sum(x),
        # so that alpha ~ r = O(1) whatever the caller's unit or the length of history.
        rep = x > 0
        gap = float(w[rep] @ tx[rep]) / float(w[rep] @ x[rep])
        scale = gap if gap > 0 else max_T

        objective = _NegLogLik(x, tx / scale, tt / scale, w, float(self.penalizer), scale / max_T)
        x0 = np.full(4, 0.1)  # deterministic start (as lifetimes)
        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
        # One BLAS thread: the dot products are memory-bound, and OpenBLAS threads spinning on a busy
        # machine cost far more than they save.
        with np.errstate(over="ignore", under="ignore"), threadpool_limits(limits=1, user_api="blas"):
            res = minimize(
                objective,
                x0,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": int(self.max_iter), "gtol": float(self.tol), "ftol": 1e-15, "maxls": 50},
            )
            f_opt, g_opt = objective(res.x)

        grad_ok = bool(np.all(np.isfinite(g_opt)) and np.max(np.abs(g_opt)) <= max(100 * self.tol, 1e-5))
        if not np.isfinite(f_opt) or not (res.success or grad_ok):
            raise BTYDFitError(
                f"BG/NBD fit did not converge after {res.nit} iterations ({res.message}); try penalizer > 0"
            )
        on_bound = np.abs(res.x) >= _LOG_BOUND - 1e-6
        self.params_at_bound_ = tuple(n for n, hit in zip(BGParams._fields, on_bound) if hit)

        r, alpha_s, a, b = np.exp(res.x)
        self.params_ = BGParams(float(r), float(alpha_s * scale), float(a), float(b))
        self.converged_ = True
        self.n_customers_ = n_customers
        self.n_unique_rows_ = int(x.size)
        self.time_scale_ = scale
        self.n_iter_ = int(res.nit)
        # Mean log-likelihood in the caller's time unit (scaling times by c shifts it by -log c per
        # repeat purchase: the density of t_x carries a Jacobian).
        penalty = self.penalizer * float(np.sum((np.exp(res.x) * objective.pen_scale) ** 2))
        self.log_likelihood_ = float(-(f_opt - penalty) - (w @ x) / n_customers * np.log(scale))
        return self

    @classmethod
    def from_params(cls, params: BGParams | dict[str, float]) -> BetaGeo:
        """A model that predicts with given parameters (e.g. frozen at training), without fitting."""
        p = BGParams(**params) if isinstance(params, dict) else BGParams(*params)
        if not all(np.isfinite(v) and v > 0 for v in p):
            raise ValueError(f"BG/NBD parameters must be finite and positive, got {p._asdict()}")
        model = cls()
        model.params_ = BGParams(*(float(v) for v in p))
        return model

    # -- predictions ---------------------------------------------------------------------------------

    def _fitted_params(self) -> BGParams:
        if not hasattr(self, "params_"):
            raise NotFittedError("BetaGeo is not fitted yet; call fit(frequency, recency, T) first")
        return self.params_

    def _log_odds_dead(self, x, tx, tt) -> np.ndarray:
        """log P(dropped out at last purchase | data) - log P(alive | data); -inf for x = 0."""
        r, alpha, a, b = self._fitted_params()
        with np.errstate(divide="ignore"):
            out = (
                (r + x) * (np.log(alpha + tt) - np.log(alpha + tx))
                + np.log(a)
                - np.log(b + np.maximum(x, 1) - 1)
            )
        return np.where(x == 0, -np.inf, out)

    def prob_alive(self, frequency, recency, T) -> np.ndarray:
        """P(customer is still alive at T | x, t_x, T).

        ``1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``. Exactly 1 for x = 0 (no dropout
        before the first repeat purchase), so not a churn score for one-time buyers.
        """
        x, tx, tt = _check_rfm(frequency, recency, T, what="prob_alive input")
        return expit(-self._log_odds_dead(x, tx, tt))

    def prob_no_purchase(self, t, frequency, recency, T) -> np.ndarray:
        """P(no purchase in (T, T+t] | x, t_x, T).

        A dead customer never buys; an alive one drops out only right after a purchase, so "no purchase
        in the interval" means "stayed alive and the Poisson clock did not tick". Given alive, the rate
        has posterior Gamma(r + x, alpha + T), whence E[exp(-lambda t)] = ((alpha+T)/(alpha+T+t))^(r+x)::

            P = (1 - P_alive) + P_alive * ((alpha + T) / (alpha + T + t)) ** (r + x)

        computed as ``1 - P_alive * (1 - q)`` with ``1 - q = -expm1(-(r+x) log1p(t/(alpha+T)))``.
        """
        x, tx, tt = _check_rfm(frequency, recency, T, what="prob_no_purchase input")
        t = np.asarray(t, dtype=np.float64)
        if np.any(~np.isfinite(t) | (t < 0)):
            raise ValueError("BG/NBD prob_no_purchase: t must be finite and >= 0")
        r, alpha, _, _ = self._fitted_params()
        p_alive = expit(-self._log_odds_dead(x, tx, tt))
        p_buy_if_alive = -np.expm1(-(r + x) * log1p(t / (alpha + tt)))
        return np.clip(1.0 - p_alive * p_buy_if_alive, 0.0, 1.0)

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """E[number of purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10).

        ``c/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; c; z)] * P_alive`` with ``c = a+b+x-1`` and
        ``1-z = (alpha+T)/(alpha+T+t)``. The term ``(1-z)^(r+x) 2F1(r+x, b+x; c; z)`` is evaluated either
        as written or through Euler's transformation ``(1-z)^(a-1) 2F1(a+b-1-r, a-1; c; z)``, whichever
        hypergeometric series converges at z = 1 (the first when ``a-1-r-x > 0``), so it stays finite for
        large x, t or T. ``a`` within 1e-7 of 1 and ``a+b`` within 1e-7 of 1 (removable singularities /
        a pole at c = 0 for x = 0) are nudged off by 1e-7.
        """
        x, tx, tt = _check_rfm(frequency, recency, T, what="expected_purchases input")
        t = np.asarray(t, dtype=np.float64)
        if np.any(~np.isfinite(t) | (t < 0)):
            raise ValueError("BG/NBD expected_purchases: t must be finite and >= 0")
        r, alpha, a, b = self._fitted_params()
        if abs(a - 1.0) < _A_ONE_EPS:
            a = 1.0 + np.copysign(_A_ONE_EPS, a - 1.0)
        if abs(a + b - 1.0) < _A_ONE_EPS:
            b = b + 2 * _A_ONE_EPS
        c = a + b + x - 1.0
        log1m_z = -log1p(t / (alpha + tt))  # log(1 - z)
        z = -np.expm1(log1m_z)
        direct = (a - 1.0 - r - x) > 0
        hyp = hyp2f1(np.where(direct, r + x, a + b - 1.0 - r), np.where(direct, b + x, a - 1.0), c, z)
        power = np.where(direct, r + x, a - 1.0)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            bracket = 1.0 - np.exp(power * log1m_z) * hyp
            out = c / (a - 1.0) * bracket * expit(-self._log_odds_dead(x, tx, tt))
        return np.where(t == 0, 0.0, np.maximum(out, 0.0))


# ----------------------------------------------------------------------------------------------------
# RFM summary from purchases
# ----------------------------------------------------------------------------------------------------


def rfm_summary(
    purchases: pd.DataFrame,
    as_of,
    customer_col: str = "customer_id",
    time_col: str = "purchased_at",
    unit_days: float = 1.0,
) -> pd.DataFrame:
    """Per-customer (frequency, recency, T) from purchases strictly before ``as_of``.

    Purchases are bucketed to calendar days (several purchases on one day count once, as in lifetimes'
    ``summary_data_from_transaction_data(freq="D")``). The last observable day is the day of the last
    instant before ``as_of``; with a midnight ``as_of`` that is ``as_of - 1 day``. Then, in days divided
    by ``unit_days``: frequency = distinct purchase days - 1, recency = last day - first day,
    T = last observable day - first day. Customers without a purchase before ``as_of`` are absent.

    Returns a frame indexed by customer with float columns ``frequency``, ``recency``, ``T``.
    """
    as_of = pd.Timestamp(as_of)
    times = pd.to_datetime(purchases[time_col])
    if getattr(times.dt, "tz", None) is not None and as_of.tzinfo is None:
        raise ValueError(f"rfm_summary: column '{time_col}' is timezone-aware but as_of is naive")
    before = times < as_of
    frame = pd.DataFrame(
        {
            "customer": purchases.loc[before, customer_col].to_numpy(),
            "day": times[before].dt.floor("D").to_numpy(),
        }
    ).drop_duplicates()
    last_day = (as_of - pd.Timedelta(1, "ns")).floor("D")
    g = frame.groupby("customer", sort=True)["day"].agg(["min", "max", "count"])
    one_unit = pd.Timedelta(days=1) * unit_days
    out = pd.DataFrame(
        {
            "frequency": (g["count"] - 1).astype(np.float64),
            "recency": (g["max"] - g["min"]) / one_unit,
            "T": (last_day - g["min"]) / one_unit,
        }
    )
    out.index.name = customer_col
    return out
