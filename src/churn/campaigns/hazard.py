"""An offer's effect on each customer as a hazard ratio on the churn model's own prediction, learned from the
contacted customers (many) rather than from the control groups (small).

A contact multiplies a customer's churn hazard over the label window by ``m(x)``. With ``p`` the churn
probability without a contact, churn with it is ``1 - (1 - p)^m``: on the complementary log-log scale,
``cloglog(q) = cloglog(p) + log m(x)``. `HazardRatio` fits, per offer, ``log m(x) = b0 + z(x) . b`` on the
offer's contacted customers by penalised maximum likelihood, with each customer's churn probability at the
campaign as the offset. That probability is first recalibrated on the campaign's control group (one shift per
campaign: a month that churns more than the model expects is not taken for an effect). ``z`` are the numeric
and yes/no features (text columns are left out), standardised on the contacted customers; the L2 penalty is
chosen by leaving each campaign out in turn (the one that best predicts the contacted customers' churn in the
campaign left out).

Why this works with small control groups: the two-model and X-learner (`churn.campaigns.uplift`) learn what
happens *without* the offer from the controls, a few hundred customers a campaign; here that comes from the
churn model, trained on every customer, and the controls only set each campaign's level.

What it assumes: the churn model is right for a customer nobody contacts, up to the campaign's level. Where it
is wrong for some kind of customer (a price rise it did not see), the contacted customers of that kind deviate
from it whatever the offer does, and that is taken for an effect of the offer; the held-out check in
`learn_uplift` does not catch it, because the error recurs in the next campaign. Keep the churn model current.
`correct_with_controls=True` fits the same regression on the control customers (every offer's: without a
contact the offer does not matter; penalty chosen on their own held-out campaigns, up to one that leaves
nothing of it) and subtracts it from the effect. It is off by default: with monthly campaigns and a contact's
effect lasting longer than the cool-down, a campaign's controls may have been contacted the month before, so
their deviation holds earlier offers' effects as well as the churn model's error, and on generated campaigns
subtracting it cost value (benchmarks/RESULTS.md). The control fit is recorded either way
(`control_penalty_`, below `NO_CORRECTION` when the controls' fit predicts each campaign left out better
than the churn model alone: a sign to look at the churn model).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from churn.errors import ChurnError

BASELINE = "churn_probability"  # the churn model's probability at the campaign (the customer's own risk)
CAMPAIGN = "campaign"  # which campaign a row is from (its control group sets the campaign's level)
PENALTIES = (100.0, 300.0, 1000.0, 3000.0, 10000.0)  # L2 weights tried on held-out campaigns
DEFAULT_PENALTY = 1000.0  # with one campaign nothing can be held out
NO_CORRECTION = 1e6  # a control-side penalty at which the controls' fit is nothing: the churn model as it is
_EDGE = 1e-6  # probabilities kept inside (0, 1) for the link
_ETA = 50.0  # |eta| beyond which exp(eta) is 0 or every probability 1 to double precision
KIND = "hazard_ratio"  # the effects file's name for this model
RESERVED = ("customer_id", "as_of")  # never effect covariates (nor the `inputs`)
MIN_CONTROLS = 30  # a campaign's controls needed (with churners and stayers among them) to set its level


def cloglog(p: np.ndarray) -> np.ndarray:
    """The complementary log-log of a probability, ``log(-log(1 - p))``."""
    q = np.clip(np.asarray(p, dtype=float), _EDGE, 1 - _EDGE)
    return np.log(-np.log1p(-q))


def log_likelihood(eta: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Each row's Bernoulli log-likelihood of `churned` with churn probability ``1 - exp(-exp(eta))``."""
    h = np.exp(np.clip(eta, -_ETA, _ETA))
    y = np.asarray(churned, dtype=float)
    return y * np.log(-np.expm1(-h) + 1e-300) - (1 - y) * h


def fit_cloglog(Z: np.ndarray, offset: np.ndarray, churned: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
    """``(b0, b)`` maximising the log-likelihood of ``cloglog(P(churn)) = offset + b0 + Z b`` minus
    ``penalty / 2 |b|^2`` (the intercept is not penalised); L-BFGS with the exact gradient."""
    y = np.asarray(churned, dtype=float)
    d = Z.shape[1]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        eta = offset + w[0] + Z @ w[1:]
        h = np.exp(np.clip(eta, -_ETA, _ETA))
        ll = log_likelihood(eta, y)
        # d ll / d eta: y h e^-h / (1 - e^-h) - (1 - y) h
        r = y * h * np.exp(-h) / (-np.expm1(-h) + 1e-300) - (1 - y) * h
        grad = np.concatenate([[-r.sum()], -(Z.T @ r) + penalty * w[1:]])
        return float(-ll.sum() + 0.5 * penalty * (w[1:] @ w[1:])), grad

    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B")
    if not np.all(np.isfinite(res.x)) or not np.isfinite(res.fun):
        raise ChurnError(f"the hazard-ratio fit did not converge ({res.message})")
    return float(res.x[0]), res.x[1:]


def campaign_shifts(baseline: np.ndarray, churned: np.ndarray, treated: np.ndarray,
                    campaign: np.ndarray) -> dict[Any, float]:
    """Per campaign, the shift on the cloglog scale that makes its control group's predicted churn match its
    realised churn; 0 (the churn model as it is) for a campaign with fewer than `MIN_CONTROLS` controls or
    whose controls all churned or all stayed (the shift would run off to infinity)."""
    t, y = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=float)
    out = {}
    off = cloglog(baseline)
    for k in pd.unique(campaign):
        m = (campaign == k) & ~t
        enough = m.sum() >= MIN_CONTROLS and 0 < y[m].sum() < m.sum()
        out[k] = fit_cloglog(np.zeros((int(m.sum()), 0)), off[m], y[m], 0.0)[0] if enough else 0.0
    return out


class HazardRatio:
    """Per-customer hazard ratio of one offer (see the module docstring); the scikit-learn contract: settings
    in the constructor, learnt state ending in ``_``. `fit` reads the features and the `inputs` columns."""

    inputs = (BASELINE, CAMPAIGN)

    def __init__(self, *, penalty: float | None = None, penalties: tuple[float, ...] = PENALTIES,
                 correct_with_controls: bool = False, seed: int = 0, n_jobs: int = 1) -> None:
        self.penalty, self.penalties, self.correct_with_controls = penalty, penalties, correct_with_controls
        self.seed, self.n_jobs = seed, n_jobs  # kept for the common constructor; the fit is deterministic

    def fit(self, X: pd.DataFrame, treated: np.ndarray, churned: np.ndarray) -> HazardRatio:
        """Learn from the contacted rows (`treated`) and, for each campaign's level, the control rows."""
        t, y = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=float)
        if not t.any():
            raise ChurnError("the hazard-ratio model learns from contacted customers; none were given")
        baseline = _baseline(X)
        campaign = X[CAMPAIGN].to_numpy() if CAMPAIGN in X.columns else np.zeros(len(X), dtype=int)
        if pd.isna(campaign).any():
            raise ChurnError(f"column '{CAMPAIGN}' is empty in {int(pd.isna(campaign).sum())} row(s)")
        self.shifts_ = campaign_shifts(baseline, y, t, campaign)
        offset = cloglog(baseline) + np.array([self.shifts_[k] for k in campaign])
        self.columns_ = [c for c in X.columns if c not in self.inputs and pd.api.types.is_numeric_dtype(X[c])]
        numbers = X.loc[t, self.columns_].astype(float)
        self.mean_ = numbers.mean().fillna(0.0).to_numpy()
        self.scale_ = numbers.std().fillna(0.0).replace(0.0, 1.0).to_numpy()
        Z = self._z(X)
        self.penalty_ = self.penalty if self.penalty is not None else self._choose_penalty(Z, offset, y, t, campaign,
                                                                                           self.penalties)
        b0, b = fit_cloglog(Z[t], offset[t], y[t], self.penalty_)
        # What the controls show of the churn model's error by kind of customer (see the module docstring); its
        # penalty is chosen on the controls' own held-out campaigns, up to one that leaves nothing of it (a few
        # hundred controls mostly show noise, and subtracting noise adds it to the effect).
        if (~t).sum() < MIN_CONTROLS:  # too few to show anything: the churn model as it is
            self.control_penalty_, c0, c = NO_CORRECTION, 0.0, np.zeros_like(b)
        else:
            self.control_penalty_ = (self.penalty if self.penalty is not None and self.correct_with_controls else
                                     self._choose_penalty(Z, offset, y, ~t, campaign,
                                                          (*self.penalties, NO_CORRECTION)))
            c0, c = fit_cloglog(Z[~t], offset[~t], y[~t], self.control_penalty_)
        self.control_coef_ = c
        self.intercept_, self.coef_ = (b0 - c0, b - c) if self.correct_with_controls else (b0, b)
        return self

    def _z(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ChurnError(f"the hazard-ratio model needs feature column(s) {missing[:5]}, missing here")
        numbers = X[self.columns_].astype(float).to_numpy()
        # Missing is the contacted customers' average; beyond 5 standard deviations adds nothing but leverage.
        return np.nan_to_num(np.clip((numbers - self.mean_) / self.scale_, -5.0, 5.0), nan=0.0)

    @staticmethod
    def _choose_penalty(Z: np.ndarray, offset: np.ndarray, y: np.ndarray, t: np.ndarray, campaign: np.ndarray,
                        penalties: tuple[float, ...]) -> float:
        """Of `penalties`, the one whose fits on the rows `t`, each on all campaigns but one, best predict those
        rows' churn in the campaign left out (summed log-likelihood); the default with fewer than two
        campaigns."""
        kept = pd.unique(campaign[t])
        if len(kept) < 2:
            return DEFAULT_PENALTY
        scores = []
        for penalty in penalties:
            total = 0.0
            for k in kept:
                fit, test = t & (campaign != k), t & (campaign == k)
                b0, b = fit_cloglog(Z[fit], offset[fit], y[fit], penalty)
                total += float(log_likelihood(offset[test] + b0 + Z[test] @ b, y[test]).sum())
            scores.append(total)
        return float(penalties[int(np.argmax(scores))])

    def multiplier(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's hazard ratio with the offer (below 1: it keeps them; above 1: contact drives them away)."""
        return np.exp(self.intercept_ + self._z(X) @ self.coef_)

    def churn_with_offer(self, X: pd.DataFrame, shift: float = 0.0) -> np.ndarray:
        """Each row's churn probability if contacted with the offer, its baseline shifted by `shift`."""
        eta = cloglog(_baseline(X)) + shift + self.intercept_ + self._z(X) @ self.coef_
        return -np.expm1(-np.exp(np.clip(eta, -_ETA, _ETA)))

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """The drop in churn probability the offer brings each row: ``p - (1 - (1 - p)^m(x))`` (0 where p is 0
        or 1: nothing to change)."""
        raw = _baseline(X)
        p = np.clip(raw, _EDGE, 1 - _EDGE)
        return np.where((raw <= 0) | (raw >= 1), 0.0, p - self.churn_with_offer(X))

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain numbers and names (the effects file's form; no pickle)."""
        return {"kind": KIND, "columns": list(self.columns_), "mean": [float(v) for v in self.mean_],
                "scale": [float(v) for v in self.scale_], "intercept": float(self.intercept_),
                "coef": [float(v) for v in self.coef_], "penalty": float(self.penalty_),
                "control_penalty": float(self.control_penalty_),
                "control_coef": [float(v) for v in self.control_coef_],
                "correct_with_controls": bool(self.correct_with_controls),
                "shifts": {str(k): float(v) for k, v in self.shifts_.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "hazard-ratio model") -> HazardRatio:
        """A fitted model back from `to_dict`'s form, checked: a ChurnError names the key that is wrong."""
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ChurnError(f"{where}: expected a mapping with kind {KIND!r}")
        columns = data.get("columns")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ChurnError(f"{where}.columns: expected a list of column names")
        reserved = sorted(set(columns) & {*RESERVED, *cls.inputs})
        if reserved or len(set(columns)) < len(columns):
            raise ChurnError(f"{where}.columns: feature names must be unique and not {sorted({*RESERVED, *cls.inputs})}"
                             f"; got {columns[:10]}")

        def numbers(key: str) -> np.ndarray:
            v = data.get(key)
            if not isinstance(v, list) or len(v) != len(columns) or not all(_finite(x) for x in v):
                raise ChurnError(f"{where}.{key}: expected {len(columns)} finite number(s), one per column")
            return np.asarray(v, dtype=float)

        for key in ("intercept", "penalty", "control_penalty"):
            if not _finite(data.get(key)):
                raise ChurnError(f"{where}.{key}: expected a finite number, got {data.get(key)!r}")
        correct = data.get("correct_with_controls", False)
        shifts = data.get("shifts", {})
        shifts = {} if shifts is None else shifts
        if not isinstance(correct, bool):
            raise ChurnError(f"{where}.correct_with_controls: expected true or false, got {correct!r}")
        if not isinstance(shifts, dict) or not all(_finite(v) for v in shifts.values()):
            raise ChurnError(f"{where}.shifts: expected a mapping campaign -> finite number")
        model = cls(correct_with_controls=correct)
        model.columns_, model.mean_, model.scale_, model.coef_ = columns, numbers("mean"), numbers("scale"), numbers("coef")
        if (model.scale_ <= 0).any():
            raise ChurnError(f"{where}.scale: every scale must be above 0")
        model.intercept_, model.penalty_ = float(data["intercept"]), float(data["penalty"])
        model.control_penalty_ = float(data["control_penalty"])
        model.control_coef_ = numbers("control_coef")
        model.shifts_ = {k: float(v) for k, v in shifts.items()}
        return model


def _finite(x: Any) -> bool:
    """A JSON number that is a finite float (not a bool, not an integer too large for a float)."""
    try:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    except OverflowError:
        return False


def _baseline(X: pd.DataFrame) -> np.ndarray:
    """The churn model's probabilities of `X`, checked: present, known and within [0, 1]."""
    if BASELINE not in X.columns:
        raise ChurnError(f"the hazard-ratio model needs column '{BASELINE}' (the churn model's probability)")
    p = pd.to_numeric(X[BASELINE], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        rows = [int(r) for r in np.flatnonzero(bad)[:3]]
        raise ChurnError(f"column '{BASELINE}' must be a probability in [0, 1]; {int(bad.sum())} row(s) are not, "
                         f"e.g. rows {rows}")
    return p


def held_out_gain(model: HazardRatio, held: pd.DataFrame, rate: np.ndarray, shift: float, *,
                  resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """How the model predicts the held-out campaign's contacted customers (`held`, all treated) against the
    tier rates (`rate`, each row's tier-level save rate), both on the same baseline shifted by the held-out
    campaign's own `shift`: (mean log-likelihood gain per customer, share of paired bootstrap resamples in
    which the model's summed log-likelihood is higher)."""
    if "churned" not in held.columns:
        raise ChurnError("the held-out campaign needs column 'churned' (0/1)")
    y = held["churned"].to_numpy(dtype=float)

    def bernoulli(q: np.ndarray) -> np.ndarray:
        q = np.clip(q, 1e-12, 1 - 1e-12)
        return y * np.log(q) + (1 - y) * np.log1p(-q)

    base = -np.expm1(-np.exp(cloglog(_baseline(held)) + shift))
    gain = bernoulli(model.churn_with_offer(held, shift)) - bernoulli(base * (1 - np.asarray(rate, dtype=float)))
    if not len(gain):
        return float("nan"), 0.0
    rng = np.random.default_rng(seed)
    wins = np.mean([gain[rng.integers(0, len(gain), len(gain))].sum() > 0 for _ in range(resamples)])
    return float(gain.mean()), float(wins)
