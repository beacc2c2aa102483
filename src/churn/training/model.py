"""ChurnModel: a calibrated churn-risk classifier that follows the scikit-learn estimator contract.

One model is one of four kinds, chosen by its registered procedure's forward reading (`churn.training.selection`):
`lightgbm` (gradient-boosted trees), `blend` (the trees' and a spline logistic regression's log-odds,
weighted), `logistic` (the spline logistic regression alone, `churn.training.linear`) or `average` (the mean
log-odds of several fitted models of the other kinds on the same features: the candidates the forward
reading could not tell apart, `average_of`). The model owns
everything needed to score raw rows identically later: the fitted preparation (`churn.preparation`: how
each column is read, category levels), the booster and/or the logistic regression, the blend weight, the
calibrator and the metadata (library versions, label horizon, training dates, metrics). It pickles with
joblib as one object.
"""

from __future__ import annotations


import logging
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.preparation import Preparation
from churn.training.calibration import ProbabilityCalibrator
from churn.training.linear import SplineLogit

if TYPE_CHECKING:
    from churn.training.explain import PathExplainer

log = logging.getLogger(__name__)

ModelKind = Literal["lightgbm", "blend", "logistic", "average"]
LINEAR_MAX_ROWS = 30_000  # the logistic regression fits on a seeded sample of at most this many rows


# ----------------------------------------------------------------------------------- input handling
@dataclass
class InputReport:
    """What validating a scoring frame found that is not an error."""

    n_rows: int
    extra_columns: list[str] = field(default_factory=list)  # present but not used by the model
    unseen_levels: dict[str, int] = field(default_factory=dict)  # column -> rows with a level unseen at fit


# ------------------------------------------------------------------------------------------ booster
def lightgbm_params(params: dict[str, Any], *, seed: int, n_jobs: int,
                    scale_pos_weight: float | None = None) -> dict[str, Any]:
    """The full LightGBM parameter set: config params plus binary objective, log loss and determinism."""
    p = {k: v for k, v in (params or {}).items() if k not in {"n_jobs", "num_threads", "seed", "random_state"}}
    p.update(
        objective="binary",
        metric="binary_logloss",
        verbosity=-1,
        seed=int(seed),
        num_threads=int(n_jobs),
        deterministic=True,
        force_row_wise=True,
        feature_pre_filter=False,
    )
    if scale_pos_weight is not None and scale_pos_weight != 1.0:
        p["scale_pos_weight"] = float(scale_pos_weight)
    return p


def monotone_constraints(feature_names: list[str], directions: dict[str, int] | None,
                         categorical: list[int] | tuple[int, ...] = ()) -> list[int] | None:
    """LightGBM's `monotone_constraints` for these columns: +1 where the churn risk may only rise with the
    feature, -1 where it may only fall, 0 for the others and for the `categorical` columns (positions; LightGBM
    aborts the process on a constrained category, and a ready table's text column may carry a constrained
    name); None when no column is constrained.

    Example:
        >>> monotone_constraints(["tenure_days", "days_since_last_event"], {"days_since_last_event": 1})
        [0, 1]
    """
    skip = set(categorical)
    out = [0 if i in skip else int((directions or {}).get(name, 0)) for i, name in enumerate(feature_names)]
    return out if any(out) else None


def train_booster(X: np.ndarray, y: np.ndarray, X_es: np.ndarray | None, y_es: np.ndarray | None, *,
                  params: dict[str, Any], categorical_index: list[int], feature_names: list[str],
                  num_boost_round: int, early_stopping_rounds: int) -> tuple[lgb.Booster, int, float | None]:
    """Fit a booster with early stopping on the validation log loss; returns (booster, best round, best loss)."""
    ds = lgb.Dataset(X, label=y, feature_name=feature_names, categorical_feature=categorical_index,
                     free_raw_data=True, params={"verbosity": -1, "feature_pre_filter": False})
    callbacks = []
    valid_sets = []
    if X_es is not None and y_es is not None and len(y_es):
        # With scale_pos_weight the trees fit a reweighted problem: weight the validation churners the same
        # way, or early stopping on plain log loss would stop a balanced model after a few rounds.
        spw = float(params.get("scale_pos_weight", 1.0))
        w_es = np.where(np.asarray(y_es) == 1, spw, 1.0) if spw != 1.0 else None
        valid_sets = [lgb.Dataset(X_es, label=y_es, weight=w_es, reference=ds,
                                  categorical_feature=categorical_index, feature_name=feature_names)]
        callbacks.append(lgb.early_stopping(int(early_stopping_rounds), first_metric_only=True, verbose=False))
    booster = lgb.train(params, ds, num_boost_round=int(num_boost_round), valid_sets=valid_sets,
                        valid_names=["validation"] if valid_sets else None, callbacks=callbacks)
    if valid_sets:
        best = int(booster.best_iteration) or booster.current_iteration()
        score = booster.best_score.get("validation", {}).get("binary_logloss")
        return booster, best, None if score is None else float(score)
    return booster, booster.current_iteration(), None


def library_versions() -> dict[str, str]:
    """Versions of the libraries a saved model depends on."""
    import joblib
    import sklearn

    import churn

    return {
        "churn": churn.__version__,
        "lightgbm": lgb.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------- the model
class ChurnModel(ClassifierMixin, BaseEstimator):
    """Calibrated churn classifier: `predict_risk(X)` is the calibrated probability of churn.

    Parameters are settings only. `fit` learns `preparation_`, `booster_`, `best_iteration_`, `best_score_`
    and `lgb_params_` (kinds lightgbm and blend), `linear_` (blend and logistic), `blend_weights_` ((trees,
    logistic, intercept): log-odds = trees x a + logistic x b + c; (1, 0, 0) for lightgbm, (0, 1, 0) for
    logistic), `features_`, `feature_names_`, `categorical_levels_`, `metadata_` and an identity
    `calibrator_`; an average (`average_of`) holds its fitted models in `members_` instead of a booster or a
    regression. Three later steps of training complete the registered model, each a method rather than
    an attribute set while predicting: `calibrate` (`calibrator_`, on rows the model did not see),
    `fit_explainer` (`path_explainer_`), and the trainer's drift reference (`drift_reference_`,
    `churn.monitoring.reference`).
    """

    # Models pickled before this setting existed have no such attribute: scikit-learn's get_params (repr,
    # clone) reads it.
    monotone: dict[str, int] | None = None

    def __init__(self, features: list[Feature] | None = None, params: dict[str, Any] | None = None, *,
                 kind: ModelKind = "lightgbm", num_boost_round: int = 2000, early_stopping_rounds: int = 100,
                 calibration: str = "isotonic", scale_pos_weight: float | None = None, seed: int = 42,
                 n_jobs: int = 2, max_categories: int = 256,
                 blend_weights: tuple[float, float, float] | float | None = None,
                 linear_c: float = 0.5, linear_knots: int = 5, linear_penalty: str = "l2",
                 source: dict[str, Any] | None = None, monotone: dict[str, int] | None = None):
        self.features = features
        self.params = params
        self.kind = kind
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.scale_pos_weight = scale_pos_weight
        self.seed = seed
        self.n_jobs = n_jobs
        self.max_categories = max_categories
        self.blend_weights = blend_weights
        self.linear_c = linear_c
        self.linear_knots = linear_knots
        self.linear_penalty = linear_penalty
        self.source = source
        self.monotone = monotone

    # -- fitting
    def fit(self, X: pd.DataFrame, y: Any, *, eval_set: tuple[pd.DataFrame, Any] | None = None,
            calibration_set: tuple[pd.DataFrame, Any] | None = None) -> ChurnModel:
        """Fit on raw feature columns `X` and labels `y`.

        The trees stop early on `eval_set` (without it they grow `num_boost_round` rounds); a blend
        without fixed `blend_weights` (a float w means (w, 1 - w, 0)) stacks its parts on `eval_set`. The calibrator is fitted on
        `calibration_set`, rows the model did not see; without them the model is uncalibrated (identity)
        until `calibrate` is called, and says so in `metadata_["calibration"]`.
        """
        if not self.features:
            raise ChurnError("the model needs at least one feature")
        if self.kind == "average":
            raise ChurnError("an average is built from fitted models (ChurnModel.average_of), not fitted itself")
        if self.kind not in ("lightgbm", "blend", "logistic"):
            raise ValueError(f"unknown model kind {self.kind!r}")
        self.preparation_ = Preparation(self.features, infer=True, max_categories=self.max_categories,
                                        source=self.source).fit(X)
        self.features_ = self.preparation_.features_
        self.feature_names_ = self.preparation_.feature_names_
        self.categorical_levels_ = self.preparation_.categorical_levels_
        self.classes_ = np.array([0, 1])
        y_arr = _labels(y, "training")
        X_enc = self.preparation_.transform(X)
        es = None if eval_set is None else (self.preparation_.transform(eval_set[0]), _labels(eval_set[1], "early-stopping"))
        self.lgb_params_ = lightgbm_params(self.params or {}, seed=self.seed, n_jobs=self.n_jobs,
                                           scale_pos_weight=self.scale_pos_weight)
        constraints = monotone_constraints(self.feature_names_, self.monotone, self.preparation_.categorical_index_)
        if constraints:
            self.lgb_params_["monotone_constraints"] = constraints
        self.booster_, self.best_iteration_, self.best_score_ = None, 0, None
        if self.kind != "logistic":
            self.booster_, self.best_iteration_, self.best_score_ = train_booster(
                X_enc, y_arr, *(es or (None, None)), params=self.lgb_params_,
                categorical_index=self.preparation_.categorical_index_, feature_names=self.feature_names_,
                num_boost_round=self.num_boost_round, early_stopping_rounds=self.early_stopping_rounds)
        self.linear_ = None
        if self.kind != "lightgbm":
            self._fit_linear(X_enc, y_arr)
        fixed = {"lightgbm": (1.0, 0.0, 0.0), "logistic": (0.0, 1.0, 0.0)}.get(self.kind, self.blend_weights)
        if isinstance(fixed, int | float):
            fixed = (float(fixed), 1.0 - float(fixed), 0.0)
        if fixed is None:
            if es is None:
                raise ChurnError("a blend needs an eval_set to stack its parts, or fixed blend_weights")
            fixed = stack_weights(self._parts(es[0]), es[1])
        self.blend_weights_ = tuple(float(v) for v in fixed)
        del X_enc
        self.path_explainer_ = None  # `fit_explainer` fits it: only the registered model needs one
        self.calibrator_ = ProbabilityCalibrator(method="none").fit(np.array([0.0, 1.0]), np.array([0, 1]))
        self.metadata_: dict[str, Any] = {
            "versions": library_versions(),
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "kind": self.kind,
            "blend_weights": list(self.blend_weights_),
            "calibration": "none",
            "n_fit_rows": len(y_arr),
            "fit_positive_rate": float(y_arr.mean()) if len(y_arr) else None,
            "best_iteration": int(self.best_iteration_),
            "lightgbm_params": dict(self.lgb_params_),
        }
        if calibration_set is not None:
            self.calibrate(self.predict_raw(calibration_set[0]), _labels(calibration_set[1], "calibration"))
        return self

    def _fit_linear(self, X_enc: np.ndarray, y_arr: np.ndarray) -> None:
        """The logistic-regression part on the prepared training matrix (a seeded sample of at most
        LINEAR_MAX_ROWS rows)."""
        rows = sample_rows(np.arange(len(y_arr)), LINEAR_MAX_ROWS, self.seed)
        self.linear_ = SplineLogit(self.preparation_.categorical_index_, C=self.linear_c, n_knots=self.linear_knots,
                                   penalty=self.linear_penalty, seed=self.seed).fit(X_enc[rows], y_arr[rows])

    def calibrate(self, raw: np.ndarray, y: np.ndarray, method: str | None = None) -> ChurnModel:
        """Fit the calibrator on raw probabilities of rows the model did not see (held-out or out-of-fold)."""
        method = method or self.calibration
        self.calibrator_ = ProbabilityCalibrator(method=method).fit(raw, np.asarray(y))
        self.metadata_["calibration"] = method
        self.metadata_["calibration_rows"] = len(raw)
        return self

    # -- inputs
    @classmethod
    def blend_of(cls, trees: ChurnModel, linear: ChurnModel, weights: tuple[float, float, float]) -> ChurnModel:
        """The blend of two models fitted on the same rows (so with one preparation): a new model whose
        settings say what it is (kind blend, these weights, the linear part's penalty and knots) and whose
        fitted parts are the two models'. Uncalibrated until `calibrate` is called."""
        if trees.booster_ is None or linear.linear_ is None:
            raise ValueError("a blend needs a fitted LightGBM model and a fitted logistic regression")
        model = cls(trees.features, trees.params, kind="blend", num_boost_round=trees.num_boost_round,
                    early_stopping_rounds=trees.early_stopping_rounds, calibration=trees.calibration,
                    scale_pos_weight=trees.scale_pos_weight, seed=trees.seed, n_jobs=trees.n_jobs,
                    max_categories=trees.max_categories, blend_weights=tuple(weights), linear_c=linear.linear_c,
                    linear_knots=linear.linear_knots, linear_penalty=linear.linear_penalty, source=trees.source,
                    monotone=trees.monotone)
        for attr in ("preparation_", "features_", "feature_names_", "categorical_levels_", "classes_", "lgb_params_",
                     "booster_", "best_iteration_", "best_score_", "path_explainer_"):
            setattr(model, attr, getattr(trees, attr))
        model.linear_ = linear.linear_
        model.blend_weights_ = tuple(float(v) for v in weights)
        model.calibrator_ = ProbabilityCalibrator(method="none").fit(np.array([0.0, 1.0]), np.array([0, 1]))
        model.metadata_ = dict(trees.metadata_, kind="blend", blend_weights=list(model.blend_weights_),
                               calibration="none")
        return model

    @classmethod
    def average_of(cls, members: list[ChurnModel], names: list[str] | None = None) -> ChurnModel:
        """The mean log-odds of `members` (called `names` in its metadata), models fitted on the same rows
        and features (so with one preparation: the first's encodes for all): its reasons are the mean of
        theirs, which sum to its log-odds as each member's sum to its own. Uncalibrated until `calibrate` is
        called."""
        if len(members) < 2:
            raise ValueError("an average needs at least two models")
        first = members[0]
        if any(m.kind == "average" or m.feature_names_ != first.feature_names_
               or m.categorical_levels_ != first.categorical_levels_ for m in members):
            raise ValueError("an average's members are fitted models of one feature list and the same category "
                             "levels (fitted on the same rows), not averages")
        model = cls(first.features, {}, kind="average", num_boost_round=first.num_boost_round,
                    early_stopping_rounds=first.early_stopping_rounds, calibration=first.calibration,
                    scale_pos_weight=first.scale_pos_weight, seed=first.seed, n_jobs=first.n_jobs,
                    max_categories=first.max_categories, source=first.source, monotone=first.monotone)
        for attr in ("preparation_", "features_", "feature_names_", "categorical_levels_", "classes_"):
            setattr(model, attr, getattr(first, attr))
        model.members_ = list(members)
        model.booster_, model.linear_, model.best_iteration_, model.best_score_ = None, None, 0, None
        model.lgb_params_, model.blend_weights_, model.path_explainer_ = {}, (), None
        model.calibrator_ = ProbabilityCalibrator(method="none").fit(np.array([0.0, 1.0]), np.array([0, 1]))
        own = {"best_iteration", "lightgbm_params", "linear_cv", "calibration_rows"}  # each member's, not the average's
        model.metadata_ = {k: v for k, v in first.metadata_.items() if k not in own} | {
            "kind": "average", "calibration": "none", "blend_weights": [],
            "members": list(names) if names else [m.kind for m in members]}
        return model

    @property
    def source_settings(self) -> dict[str, Any]:
        """The raw-data build settings the model was trained with (empty for bring-your-own tables)."""
        return dict(self.preparation_.source or {})

    def validate_input(self, X: pd.DataFrame) -> InputReport:
        """Check a scoring frame: raises ChurnError naming missing columns and unreadable values (with
        example rows); returns the columns it will ignore and the rows whose levels were unseen at fit."""
        return self.encode(X)[1]

    def encode(self, X: pd.DataFrame) -> tuple[np.ndarray, InputReport]:
        """Validate raw rows (errors as in `validate_input`) and return the prepared matrix and the report."""
        enc, unseen = self.preparation_.encode(self.preparation_.read_columns(X))
        return enc, InputReport(n_rows=len(X), extra_columns=self.preparation_.extra_columns(X),
                                unseen_levels=unseen)

    def _encode(self, X: pd.DataFrame) -> np.ndarray:
        enc, report = self.encode(X)
        if report.unseen_levels:
            log.info("levels unseen at training, scored as missing: %s", report.unseen_levels)
        return enc

    # -- predictions
    def _parts(self, enc: np.ndarray, num_iteration: int | None = None
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(trees' log-odds, logistic regression's log-odds) of a prepared matrix; None for a missing part.
        `num_iteration` reads the trees' first rounds only (default: the fitted `best_iteration_`)."""
        trees = None if self.booster_ is None else self.booster_.predict(
            enc, num_iteration=num_iteration or self.best_iteration_, raw_score=True, num_threads=self.n_jobs)
        return trees, None if self.linear_ is None else self.linear_.decision_function(enc)

    def log_odds_encoded(self, enc: np.ndarray, num_iteration: int | None = None) -> np.ndarray:
        """The uncalibrated log-odds of churn of a prepared matrix (the blend of the parts, or the mean of an
        average's members); `num_iteration` as in `_parts`."""
        if self.kind == "average":
            if num_iteration is not None:
                raise ValueError("an average's members are read at their own rounds")
            return np.mean([m.log_odds_encoded(enc) for m in self.members_], axis=0)
        return blend_log_odds(self._parts(enc, num_iteration), self.blend_weights_)

    def _raw_from_encoded(self, enc: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.log_odds_encoded(enc)))

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated P(churn) (what the calibrator maps)."""
        return self._raw_from_encoded(self._encode(X))

    def predict_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn) within the label horizon, one value per row."""
        return self.calibrator_.predict(self.predict_raw(X))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated class probabilities, shape (n, 2): [P(stay), P(churn)]."""
        p = self.predict_risk(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """0/1 at calibrated probability 0.5 (sklearn contract; downstream code should use probabilities)."""
        return (self.predict_risk(X) >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame, method: str = "treeshap") -> pd.DataFrame:
        """Per-row, per-feature contributions to the raw log-odds, plus a `bias` column.

        Trees: `treeshap` (LightGBM `pred_contrib`, exact SHAP values) or `path` (decision-path attribution,
        `churn.training.explain`, as cheap as a prediction). Logistic regression: coefficient x (value -
        training mean), exact either way. A blend weighs the two like its log-odds. Each row sums to the
        uncalibrated log-odds; use them to rank reasons, they are not in probability units.
        """
        contrib = self.contributions_encoded(self._encode(X), method)
        df = pd.DataFrame(contrib[:, :-1], columns=self.feature_names_, index=X.index)
        df["bias"] = contrib[:, -1]
        return df

    def contributions_encoded(self, enc: np.ndarray, method: str = "treeshap") -> np.ndarray:
        """`contributions` of a prepared matrix (from `encode`), as (n, features + 1) with the bias last."""
        if method not in ("path", "treeshap"):
            raise ValueError(f"unknown contribution method {method!r}; use 'treeshap' or 'path'")
        if self.kind == "average":
            return np.mean([m.contributions_encoded(enc, method) for m in self.members_], axis=0)
        a, b, c = self.blend_weights_
        out = np.zeros((enc.shape[0], enc.shape[1] + 1))
        if self.booster_ is not None and a != 0:
            trees = self.path_explainer().contributions(enc) if method == "path" else self.booster_.predict(
                enc, num_iteration=self.best_iteration_, pred_contrib=True, num_threads=self.n_jobs)
            out = trees if (a, b) == (1.0, 0.0) else out + a * trees
        if self.linear_ is not None and b != 0:
            lin = self.linear_.contributions(enc)
            out = lin if (a, b) == (0.0, 1.0) else out + b * lin
        if c:
            out[:, -1] += c  # the stack's intercept is part of the bias
        return out

    def _explainer(self) -> PathExplainer | None:
        if self.booster_ is None:
            return None
        from churn.training.explain import PathExplainer

        return PathExplainer(num_iteration=self.best_iteration_, n_jobs=self.n_jobs).fit(self.booster_)

    def fit_explainer(self) -> ChurnModel:
        """Fit the trees' decision-path explainer (`path_explainer_`, what fast reason codes read; an
        average's members' each): done for the model that gets registered, not for the many fits that choose
        it (it walks every tree)."""
        for m in getattr(self, "members_", None) or []:
            m.fit_explainer()
        self.path_explainer_ = self._explainer()
        return self

    def path_explainer(self) -> PathExplainer:
        """The fitted decision-path explainer (`fit_explainer`); a model without one builds it here, without
        keeping it (nothing is fitted while predicting)."""
        explainer = getattr(self, "path_explainer_", None)
        return explainer if explainer is not None else self._explainer()

    @property
    def bias(self) -> float:
        """The expected raw log-odds (the `bias` column of `contributions`)."""
        zero = np.full((1, len(self.feature_names_)), np.nan)
        return float(self.contributions_encoded(zero, "treeshap")[0, -1])

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """The trees' total gain (or split count) per feature, largest first; for a logistic model, the
        spread of each feature's contribution on the training rows; for an average, the mean of its members'
        shares (each member's importances as shares of their sum, since gains and spreads differ in units)."""
        if self.kind == "average":
            shares = [imp / imp.sum() if imp.sum() > 0 else imp for imp in
                      (m.feature_importance(kind).reindex(self.feature_names_) for m in self.members_)]
            return pd.concat(shares, axis=1).mean(axis=1).rename("share").sort_values(ascending=False)
        if self.booster_ is None:
            return pd.Series(self.linear_.importance_, index=self.feature_names_, name="contribution_sd") \
                .sort_values(ascending=False)
        imp = self.booster_.feature_importance(importance_type=kind, iteration=self.best_iteration_)
        return pd.Series(imp, index=self.feature_names_, name=kind).sort_values(ascending=False)


def blend_log_odds(parts: tuple[np.ndarray | None, np.ndarray | None],
                   weights: tuple[float, float, float]) -> np.ndarray:
    """a x trees' log-odds + b x the logistic regression's + c (a part with weight 0 may be missing)."""
    (trees, linear), (a, b, c) = parts, weights
    out = np.full(len(trees if trees is not None else linear), float(c))
    if a:
        out += a * trees
    if b:
        out += b * linear
    return out


def stack_weights(parts: tuple[np.ndarray, np.ndarray], y: np.ndarray) -> tuple[float, float, float]:
    """(a, b, c) of a logistic regression of held-out outcomes `y` on the two parts' log-odds, with a, b >= 0
    (a part that would take a negative weight is dropped and the other refitted alone)."""
    from sklearn.linear_model import LogisticRegression

    Z = np.column_stack(parts)
    y = np.asarray(y)
    keep = [0, 1]
    while keep:
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(Z[:, keep], y)
        coef = lr.coef_[0]
        if (coef > 0).all() or len(keep) == 1:
            w = [0.0, 0.0]
            for k, v in zip(keep, coef, strict=True):
                w[k] = float(max(v, 0.0))
            return w[0], w[1], float(lr.intercept_[0])
        keep = [keep[int(np.argmax(coef))]]
    raise AssertionError("unreachable")


def sample_rows(idx: np.ndarray, most: int, seed: int) -> np.ndarray:
    """At most `most` of the row positions `idx`, drawn without replacement (seeded), in order."""
    if len(idx) <= most:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, most, replace=False))


def _labels(y: Any, what: str) -> np.ndarray:
    arr = np.asarray(pd.Series(y).to_numpy(), dtype="float64")
    if np.isnan(arr).any() or not np.isin(arr, (0.0, 1.0)).all():
        raise ChurnError(f"the {what} labels must be 0/1 without blanks")
    return arr.astype(int)
