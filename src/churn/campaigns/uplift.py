"""Per-customer effects of an offer (uplift), learned from past campaigns' contacted and control customers,
and the evaluation that decides whether the plan may use them.

Written here on LightGBM (about twenty lines each) rather than taken from a library: scikit-uplift 0.5.1 runs
on our stack but is unmaintained since 2022 and its class transformation assumes equal arms (ours are
90/10); causalml is maintained but pulls xgboost, shap, statsmodels and more into the lock. Both models
follow the scikit-learn contract (settings in the constructor, learnt state ending in ``_``, seeds and
``n_jobs`` explicit):

* `TwoModel` (T-learner): churn with and without the offer, one classifier each; the uplift is the
  difference ``P(churn | x, not contacted) - P(churn | x, contacted)`` (positive: the offer keeps them);
* `XLearner` (Kunzel et al. 2019, PNAS 116:4156): the same two models, then each group's imputed effect
  (contacted: ``mu0(x) - y``; control: ``y - mu1(x)``) regressed on x, the two blended by the share
  contacted ``g``: ``tau(x) = g tau0(x) + (1 - g) tau1(x)`` (the control model weighs most when controls
  are few, because it is fitted against the treated model, which had many customers).

* `HazardRatio` (`churn.campaigns.hazard`): the offer's hazard ratio on the churn model's own probability,
  learned from the contacted customers, with the controls setting each campaign's level only.

Evaluation on a held-out campaign, ranking customers by predicted uplift: the Qini curve
``Q(k) = churned_control(k) x treated(k) / control(k) - churned_treated(k)`` (customers kept among the top k,
Radcliffe 2007), its coefficient (area between the curve and random targeting, both axes as shares of the
campaign) and uplift@k (churn of the control minus churn of the contacted in the top share k). `evaluate`
keeps an uplift model for an offer only where its Qini coefficient beats the ranking the tier-level rates
give (``p x save_rate[tier]``) on the same held-out customers, in 95% of paired bootstrap resamples. The
hazard ratio is judged instead by the held-out contacted customers' churn, predicted against the tier rates'
prediction on the same baseline (`hazard.held_out_gain`): it is used where its log-likelihood is the higher
(the better predictor, as its penalty is chosen; the tier rates face no test of their own before they replace
the catalogue's). With ~10% controls a campaign's Qini coefficients are too noisy to tell rankings apart,
while every contacted customer counts here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.campaigns.hazard import BASELINE, CAMPAIGN
from churn.campaigns.hazard import KIND as HAZARD_KIND
from churn.campaigns.hazard import HazardRatio, campaign_shifts, held_out_gain
from churn.errors import ChurnError

DEFAULT_PARAMS = {"n_estimators": 150, "learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 80,
                  "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "verbose": -1}


class _Frame:
    """How the uplift models read a feature frame: numbers as they are, text as categories with the levels
    seen at fit (unseen levels become missing), so prediction matches training."""

    def fit(self, X: pd.DataFrame) -> _Frame:
        self.columns_ = list(X.columns)
        self.levels_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in X.columns
                        if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])}
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in self.columns_:
            col = X[c] if c in X.columns else pd.Series(np.nan, index=X.index)
            if c in self.levels_:
                out[c] = pd.Categorical(col.astype("string").astype(object).where(col.notna()), categories=self.levels_[c])
            else:
                out[c] = pd.to_numeric(col, errors="coerce").astype(float)
        return pd.DataFrame(out, index=X.index)


def _classifier(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**{**DEFAULT_PARAMS, **params}, random_state=seed, n_jobs=n_jobs)


def _regressor(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from lightgbm import LGBMRegressor

    return LGBMRegressor(**{**DEFAULT_PARAMS, **params}, random_state=seed, n_jobs=n_jobs)


class TwoModel:
    """Two-model uplift: one churn classifier on the contacted, one on the control group."""

    def __init__(self, *, params: dict[str, Any] | None = None, seed: int = 0, n_jobs: int = 1) -> None:
        self.params, self.seed, self.n_jobs = params, seed, n_jobs

    def fit(self, X: pd.DataFrame, treated: np.ndarray, churned: np.ndarray) -> TwoModel:
        """Learn churn with and without the offer; `treated` and `churned` are 0/1 per row of X."""
        t, y = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=int)
        self.frame_ = _Frame().fit(X)
        Z = self.frame_.transform(X)
        self.control_model_ = _classifier(self.params or {}, self.seed, self.n_jobs).fit(Z[~t], y[~t])
        self.treated_model_ = _classifier(self.params or {}, self.seed + 1, self.n_jobs).fit(Z[t], y[t])
        return self

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """The drop in churn probability the offer brings each row (negative: it makes churn likelier)."""
        Z = self.frame_.transform(X)
        return self.control_model_.predict_proba(Z)[:, 1] - self.treated_model_.predict_proba(Z)[:, 1]


class XLearner:
    """X-learner uplift: the two-model outcome models, then the imputed effects regressed on the features."""

    def __init__(self, *, params: dict[str, Any] | None = None, seed: int = 0, n_jobs: int = 1) -> None:
        self.params, self.seed, self.n_jobs = params, seed, n_jobs

    def fit(self, X: pd.DataFrame, treated: np.ndarray, churned: np.ndarray) -> XLearner:
        """Learn both outcome models, then each group's effect against the other group's model."""
        t, y = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=float)
        self.outcomes_ = TwoModel(params=self.params, seed=self.seed, n_jobs=self.n_jobs).fit(X, t, y.astype(int))
        Z = self.outcomes_.frame_.transform(X)
        mu0 = self.outcomes_.control_model_.predict_proba(Z)[:, 1]
        mu1 = self.outcomes_.treated_model_.predict_proba(Z)[:, 1]
        self.tau_treated_ = _regressor(self.params or {}, self.seed + 2, self.n_jobs).fit(Z[t], mu0[t] - y[t])
        self.tau_control_ = _regressor(self.params or {}, self.seed + 3, self.n_jobs).fit(Z[~t], y[~t] - mu1[~t])
        self.share_treated_ = float(t.mean())
        return self

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """The drop in churn probability the offer brings each row, ``g tau0 + (1 - g) tau1``."""
        Z = self.outcomes_.frame_.transform(X)
        g = self.share_treated_
        return g * self.tau_control_.predict(Z) + (1 - g) * self.tau_treated_.predict(Z)


MODELS = {"two_model": TwoModel, "x_learner": XLearner, "hazard_ratio": HazardRatio}
# Judged on the held-out campaign by how well it predicts the contacted customers' churn (it learns from
# them), not by its Qini coefficient, which a campaign's few controls make too noisy to tell rankings apart.
BY_LIKELIHOOD = ("hazard_ratio",)


def _inputs(model: Any, features: list[str]) -> list[str]:
    """The columns a model (class or fitted instance) reads: the features, and the extra inputs it declares
    (`HazardRatio.inputs`)."""
    return list(dict.fromkeys([*features, *getattr(model, "inputs", ())]))


# ---------------------------------------------------------------------------------------- evaluation
def qini_curve(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Customers kept among the top k by `score`, for k = 1..n: churned controls scaled to the contacted
    count, minus churned contacted (0 while no control customer is among the top k). Ties in the score are
    broken by row order."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(churned, dtype=float)[order]
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    y_t, y_c = np.cumsum(y * t), np.cumsum(y * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_c > 0, y_c * n_t / np.maximum(n_c, 1), 0.0) - y_t


def qini_coefficient(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """Area between the Qini curve and random targeting (the straight line to the same end), both axes as
    shares of the customers: positive when the ranking finds the customers the offer keeps."""
    q = qini_curve(score, treated, churned)
    n = len(q)
    if n == 0:
        return float("nan")
    random = q[-1] * np.arange(1, n + 1) / n
    return float(np.mean(q - random) / n)


def uplift_at_k(score: np.ndarray, treated: np.ndarray, churned: np.ndarray, k: float = 0.3) -> float:
    """Churn of the control minus churn of the contacted among the top share `k` by score (NaN when one
    group is missing there)."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="stable")[: max(1, int(round(k * len(score))))]
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(churned, dtype=float)[order]
    if t.all() or not t.any():
        return float("nan")
    return float(y[~t].mean() - y[t].mean())


@dataclass(frozen=True)
class Evaluation:
    """How well each ranking found the customers an offer keeps, on one held-out campaign."""

    offer: str
    treated: int
    control: int
    qini: dict[str, float]  # ranking -> Qini coefficient ("tier_rates" and each model)
    uplift_at_30: dict[str, float]  # ranking -> uplift among its top 30%
    wins: dict[str, float]  # model -> share of bootstrap resamples in which it beat the tier rates (Qini, or
    #                         for BY_LIKELIHOOD models the contacted customers' held-out log-likelihood)
    chosen: str  # the model the plan uses for this offer, or "tier_rates"
    likelihood_gain: dict[str, float] = field(default_factory=dict)  # BY_LIKELIHOOD model -> mean gain a customer


def evaluate(scores: dict[str, np.ndarray], treated: np.ndarray, churned: np.ndarray, offer: str, *,
             resamples: int = 200, confidence: float = 0.95, seed: int = 0,
             judged: dict[str, tuple[float, float]] | None = None) -> Evaluation:
    """Qini and uplift@30% of every ranking in `scores` (one must be "tier_rates"). A model is chosen only
    when it beats the tier rates' Qini coefficient in at least `confidence` of `resamples` paired bootstrap
    resamples of the held-out customers (a held-out campaign is small: a lucky ranking must not win); of
    those, the one with the highest Qini. A model in `judged` ({model: (mean log-likelihood gain a contacted
    customer, share of resamples won)}, from `hazard.held_out_gain`) is judged by its gain instead: it wins
    when it predicts the held-out contacted customers better than the tier rates do (gain above 0, as the
    penalty is chosen), and is preferred when it wins; `confidence` does not apply to it. Its share of
    resamples is reported in `wins`."""
    t, y = np.asarray(treated, dtype=bool), np.asarray(churned, dtype=float)
    qini = {name: qini_coefficient(s, t, y) for name, s in scores.items()}
    at30 = {name: uplift_at_k(s, t, y, 0.3) for name, s in scores.items()}
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(t), len(t)) for _ in range(resamples)]
    base = [qini_coefficient(scores["tier_rates"][d], t[d], y[d]) for d in draws]
    wins = {}
    judged = judged or {}
    for name, s in scores.items():
        if name in judged:
            wins[name] = judged[name][1]
        elif name != "tier_rates":
            wins[name] = float(np.mean([qini_coefficient(s[d], t[d], y[d]) > b for d, b in zip(draws, base)]))
    good = [n for n, w in wins.items() if (judged[n][0] > 0 if n in judged else w >= confidence)
            and np.isfinite(qini[n])]
    # A win on the likelihood used every contacted customer; a Qini win rests on the few controls.
    chosen = max(good, key=lambda n: (n in judged, qini[n])) if good else "tier_rates"
    return Evaluation(offer, int(t.sum()), int((~t).sum()), qini, at30, wins, chosen,
                      {n: g for n, (g, _) in judged.items()})


MIN_TREATED = 200  # contacted customers with the offer needed to fit its models
MIN_HELD_OUT = 100  # contacted plus control customers with the offer in the held-out campaign to judge them


@dataclass
class OfferUplift:
    """What was learned about one offer: its held-out evaluation and, when an uplift model beat the tier
    rates there, that model refitted on every campaign."""

    evaluation: Evaluation | None
    model: Any | None = None  # TwoModel / XLearner / HazardRatio, or None: the plan keeps the tier rates
    why: str = ""


def learn_uplift(history: pd.DataFrame, features: list[str], tier_rates: dict[str, dict[str, float]], *,
                 seed: int = 0, n_jobs: int = 1,
                 models: tuple[str, ...] = ("two_model", "x_learner", "hazard_ratio")) -> dict[str, OfferUplift]:
    """Per offer: fit each uplift model on every campaign but the latest, evaluate it against the tier rates
    (`tier_rates` {offer: {tier: rate}}, learned without the latest campaign) on the latest one, and refit
    the winner on all campaigns.

    `history`: one row per customer and campaign: campaign (ordered), offer (the would-be incentive),
    treated (contacted) and churned (0/1), risk_tier, churn_probability and the `features`. An offer's
    models learn from its contacted customers and from every control customer (what happens without a
    contact does not depend on the offer one would have got; the control groups are random). The hazard-ratio
    model is judged by the held-out contacted customers' churn (`hazard.held_out_gain`), on the baseline
    recalibrated on the latest campaign's whole control group."""
    last = history["campaign"].max()
    train, test = history[history["campaign"] < last], history[history["campaign"] == last]
    # The latest campaign's level, for the models judged on its contacted customers' churn only.
    shift = campaign_shifts(test[BASELINE].to_numpy(dtype=float), test["churned"].to_numpy(dtype=float),
                            test["treated"].to_numpy(dtype=bool), test["campaign"].to_numpy())[last] \
        if set(models) & set(BY_LIKELIHOOD) else 0.0
    out: dict[str, OfferUplift] = {}
    for offer in sorted(history["offer"].dropna().unique()):
        fit_rows = train[(train["offer"] == offer) & train["treated"] | ~train["treated"]]
        held = test[test["offer"] == offer]
        n_t = int((fit_rows["treated"]).sum())
        if history["campaign"].nunique() < 2 or n_t < MIN_TREATED or len(held) < MIN_HELD_OUT \
                or held["treated"].all() or not held["treated"].any():
            out[offer] = OfferUplift(None, None, f"too little history ({n_t} contacted to learn from, "
                                                 f"{len(held)} in the held-out campaign)")
            continue
        rate = held["risk_tier"].astype(object).map(tier_rates.get(offer, {})).astype(float).fillna(0.0)
        scores = {"tier_rates": held["churn_probability"].to_numpy(dtype=float) * rate.to_numpy()}
        fitted, judged = {}, {}
        for name in models:
            fitted[name] = MODELS[name](seed=seed, n_jobs=n_jobs).fit(
                fit_rows[_inputs(MODELS[name], features)], fit_rows["treated"].to_numpy(),
                fit_rows["churned"].to_numpy())
            scores[name] = fitted[name].predict_uplift(held[_inputs(MODELS[name], features)])
            if name in BY_LIKELIHOOD:
                contacted = held["treated"].to_numpy(dtype=bool)
                judged[name] = held_out_gain(fitted[name], held[contacted], rate.to_numpy()[contacted], shift,
                                             seed=seed)
        ev = evaluate(scores, held["treated"].to_numpy(), held["churned"].to_numpy(), offer, seed=seed,
                      judged=judged)
        if ev.chosen == "tier_rates":
            out[offer] = OfferUplift(ev, None, "no uplift model beat the tier rates on the held-out campaign "
                                               "(Qini in 95% of bootstrap resamples, or the contacted customers' "
                                               "log-likelihood for the hazard ratio)")
            continue
        every = history[(history["offer"] == offer) & history["treated"] | ~history["treated"]]
        model = MODELS[ev.chosen](seed=seed, n_jobs=n_jobs).fit(
            every[_inputs(MODELS[ev.chosen], features)], every["treated"].to_numpy(), every["churned"].to_numpy())
        how = (f"held-out log-likelihood {ev.likelihood_gain[ev.chosen]:+.4f} a contacted customer"
               if ev.chosen in ev.likelihood_gain
               else f"Qini {ev.qini[ev.chosen]:.4f} against {ev.qini['tier_rates']:.4f}")
        out[offer] = OfferUplift(ev, model, f"{ev.chosen} beat the tier rates ({how})")
    return out


def _as_rate(tau: np.ndarray, p: np.ndarray) -> np.ndarray:
    """A predicted drop in churn as the plan's save rate: ``tau / p`` (so ``p x value x rate`` is ``tau x
    value``), within [0, 1] (an offer that would do harm is simply not worth making)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(p > 0, tau / p, 0.0), 0.0, 1.0)


def _priced(model: Any, frame: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """Each row's save rate under `model` (reading `cols`), NaN where the row has no churn probability."""
    p = pd.to_numeric(frame["churn_probability"], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(p) & (p >= 0) & (p <= 1)
    rate = np.full(len(frame), np.nan)
    if ok.any():
        rate[ok] = _as_rate(model.predict_uplift(frame.loc[ok, cols]), p[ok])
    return rate


def customer_save_rates(learned: dict[str, OfferUplift], frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The plan's per-customer save rates (`plan_retention(customer_save_rates=...)`): for each offer with a
    chosen model, its predicted drop in churn probability over the customer's churn probability (so the plan's
    ``p x value x rate`` is ``uplift x value``; NaN without a probability); offers without one are left out
    (they keep the tier rates). A column a model needs and `frame` lacks is an error."""
    out = pd.DataFrame({"customer_id": frame["customer_id"].astype(str).to_numpy()})
    for offer, u in learned.items():
        if u.model is None:
            continue
        # The campaign a row came from is needed to fit, not to predict.
        cols = [c for c in _inputs(u.model, features) if c != CAMPAIGN]
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise ChurnError(f"the uplift model of '{offer}' needs column(s) {missing[:5]}, missing from the frame")
        out[offer] = _priced(u.model, frame, cols)
    return out


# ------------------------------------------------------------------------- the effects file's uplift section
WRITTEN = (HAZARD_KIND,)  # the models an effects file holds: plain numbers, read without unpickling anything


def uplift_record(learned: dict[str, OfferUplift], churn_model: str | None = None,
                  churn_model_version: str | None = None) -> dict[str, Any]:
    """The effects file's ``uplift`` section: per offer the held-out evaluation, why the model was or was not
    chosen, and the chosen model's numbers; `churn_model` (and its version) names the churn model whose
    probabilities and features it was learned on. Only models in `WRITTEN` can be written (ChurnError
    otherwise)."""
    offers = {}
    for offer, u in learned.items():
        if u.model is not None and not isinstance(u.model, HazardRatio):
            raise ChurnError(f"the uplift model of '{offer}' ({type(u.model).__name__}) cannot be written to an "
                             f"effects file; only {list(WRITTEN)} can")
        offers[str(offer)] = {"chosen": u.evaluation.chosen if u.evaluation else None, "why": u.why,
                              "evaluation": asdict(u.evaluation) if u.evaluation else None,
                              "model": u.model.to_dict() if u.model is not None else None}
    return {"churn_model": churn_model, "churn_model_version": churn_model_version, "offers": offers}


def uplift_models(record: dict[str, Any], where: str = "uplift") -> dict[str, HazardRatio]:
    """The models of an effects file's ``uplift`` section ({offer: model}), checked: a ChurnError names the
    key that is wrong."""
    if not record:
        return {}
    offers = record.get("offers") if isinstance(record, dict) else None
    if not isinstance(offers, dict):
        raise ChurnError(f"{where}.offers: expected a mapping offer -> what was learned about it")
    for key in ("churn_model", "churn_model_version"):
        if not isinstance(record.get(key), (str, type(None))):
            raise ChurnError(f"{where}.{key}: expected text or null, got {record.get(key)!r}")
    out = {}
    for offer, rec in offers.items():
        if not isinstance(rec, dict):
            raise ChurnError(f"{where}.offers.{offer}: expected a mapping with keys 'chosen', 'why', 'model'")
        if rec.get("model") is not None:
            out[str(offer)] = HazardRatio.from_dict(rec["model"], f"{where}.offers.{offer}.model")
    return out


def priced_by_models(models: dict[str, HazardRatio], frame: pd.DataFrame,
                     learned_on: str | None = None) -> tuple[pd.DataFrame | None, list[str]]:
    """(per-customer save rates, warnings) of `frame` (customer_id, churn_probability and the models' feature
    columns) for the plan, as `customer_save_rates` prices them. An offer whose model needs a column the
    frame lacks, or holds as text, keeps the tier rates, and a warning says so; so does scoring with another
    churn model than the one the models were learned on (`learned_on`, its version)."""
    if not models:
        return None, []
    out = pd.DataFrame({"customer_id": frame["customer_id"].astype(str).to_numpy()})
    warnings = []
    versions = sorted(frame["model_version"].dropna().astype(str).unique()) if "model_version" in frame else []
    if learned_on and versions and versions != [learned_on]:
        warnings.append(f"the uplift models (effects file) were learned on churn model {learned_on}; these scores "
                        f"are from {', '.join(versions[:3])}: learn them again once its campaigns are measured")
    for offer, model in models.items():
        missing = [c for c in model.columns_ if c not in frame.columns]
        numbers = {c: _as_numbers(frame[c]) for c in model.columns_ if c not in missing}
        text = [c for c, v in numbers.items() if v is None]
        if missing or text:
            why = f"needs column(s) {missing[:5]} that these scores lack" if missing else \
                f"reads column(s) {text[:5]} as numbers, which hold text here"
            warnings.append(f"the uplift model of '{offer}' (effects file) {why}; '{offer}' is priced with its "
                            "tier rates")
            continue
        rows = pd.DataFrame({**numbers, BASELINE: frame[BASELINE]}, index=frame.index)
        out[offer] = _priced(model, rows, [*model.columns_, BASELINE])
    return out, warnings


def _as_numbers(col: pd.Series) -> pd.Series | None:
    """A column as numbers (yes/no as 1/0; a column of objects may hold either, as a partition of Spark
    rows can), or None when a value is text that is no number."""
    if pd.api.types.is_numeric_dtype(col):
        return col
    conv = pd.to_numeric(col, errors="coerce")
    return None if (conv.isna() & col.notna()).any() else conv
