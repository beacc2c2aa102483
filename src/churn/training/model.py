"""ChurnModel: a calibrated LightGBM churn-risk classifier that follows the scikit-learn estimator contract.

The model owns everything needed to score a frame identically later: the feature order, the categorical
levels fixed at fit (unseen levels become missing, never an error), the booster, the calibrator and the
metadata (library versions, label horizon, training dates, metrics). It pickles with joblib as one object.

Inputs are pandas frames with one column per feature: numeric columns as numbers (NaN for missing; text
that parses as a number, like "1.5", is accepted), categorical columns as text (None for missing).
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

from churn.errors import ChurnError, DataValidationError, Problem
from churn.features.registry import Feature
from churn.training.calibration import ProbabilityCalibrator

if TYPE_CHECKING:
    from churn.training.explain import PathExplainer

log = logging.getLogger(__name__)

MAX_EXAMPLES = 3


# ----------------------------------------------------------------------------------- input handling
@dataclass
class InputReport:
    """What validating a scoring frame found that is not an error."""

    n_rows: int
    extra_columns: list[str] = field(default_factory=list)  # present but not used by the model
    unseen_levels: dict[str, int] = field(default_factory=dict)  # column -> rows with a level unseen at fit


def _examples(s: pd.Series, mask: np.ndarray) -> list[str]:
    idx = np.flatnonzero(mask)[:MAX_EXAMPLES]
    return [f"row {s.index[i]!r}: {s.iloc[i]!r}" for i in idx]


def _as_numeric(s: pd.Series, name: str, problems: list[Problem]) -> np.ndarray:
    """A numeric feature column as float64 (NaN = missing); text must parse as a plain number."""
    if ptypes.is_bool_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if ptypes.is_numeric_dtype(s):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if ptypes.is_datetime64_any_dtype(s) or ptypes.is_timedelta64_dtype(s):
        problems.append(Problem("model input", f"is a date/time column ({s.dtype}) but the model expects a "
                                "number", column=name, count=len(s)))
        return np.full(len(s), np.nan)
    obj = s.astype(object)
    null = obj.isna().to_numpy()
    text = obj.where(~null, "").astype(str).str.strip()
    blank = null | (text == "").to_numpy()
    conv = pd.to_numeric(text.where(~blank), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(conv) & ~blank
    if bad.any():
        problems.append(Problem("model input", "holds text where the model expects a number", column=name,
                                count=int(bad.sum()), examples=_examples(s, bad)))
    return conv


def _as_category(s: pd.Series) -> np.ndarray:
    """A categorical feature column as an object array of str (None = missing; blanks are missing).

    Numbers become text the same way at fit and at predict (1, 1.0 -> "1"), so plan codes stored as
    numbers in one file and as text in another still match. Each distinct value is converted once.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    codes, uniques = pd.factorize(s, use_na_sentinel=True)
    values = uniques.tolist() if isinstance(uniques, np.ndarray) else list(uniques)
    if ptypes.is_bool_dtype(s):
        texts = [str(bool(v)) for v in values]
    elif ptypes.is_numeric_dtype(s):
        texts = [str(int(v)) if float(v).is_integer() else repr(float(v)) for v in values]
    else:
        texts = [None if pd.isna(v) else (str(v).strip() or None) for v in values]
    return np.array([*texts, None], dtype=object)[codes]


def coerce_frame(X: pd.DataFrame, features: list[Feature]) -> tuple[pd.DataFrame, list[str]]:
    """The feature columns of `X` in model order and canonical types, and the names of unused columns.

    Numeric features come back as float64 (NaN missing), categorical ones as object str (None missing).
    Raises DataValidationError (a ChurnError) listing every missing column and every column holding values
    of the wrong type, with example rows.
    """
    cols, extra = coerce_columns(X, features)
    frame = pd.DataFrame({k: pd.Series(v, index=X.index, dtype=v.dtype, copy=False) for k, v in cols.items()})
    return frame, extra


def coerce_columns(X: pd.DataFrame, features: list[Feature]) -> tuple[dict[str, np.ndarray], list[str]]:
    """`coerce_frame` as a dict of arrays (no frame to assemble: the scoring path encodes straight away)."""
    if not isinstance(X, pd.DataFrame):
        raise ChurnError(f"model input must be a table (pandas DataFrame), got {type(X).__name__}")
    names = [f.name for f in features]
    problems: list[Problem] = []
    missing = [n for n in names if n not in X.columns]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        problems.append(Problem("model input", f"is missing {len(missing)} column(s) the model needs: {shown}"))
    dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]} & set(names))
    if dup:
        problems.append(Problem("model input", f"has duplicated column(s): {', '.join(dup)}"))
    if problems:
        raise DataValidationError(problems)
    cols: dict[str, Any] = {}
    for f in features:
        s = X[f.name]
        cols[f.name] = _as_category(s) if f.kind == "categorical" else _as_numeric(s, f.name, problems)
    if problems:
        raise DataValidationError(problems)
    extra = [str(c) for c in X.columns if c not in set(names)]
    return cols, extra


class FrameEncoder(TransformerMixin, BaseEstimator):
    """Turns a feature frame into the float matrix LightGBM reads; categorical levels are fixed at fit.

    Categorical columns become integer codes of the levels seen at fit (the `max_categories` most frequent;
    rarer and unseen levels become missing), numeric columns float64 with NaN for missing.
    """

    def __init__(self, features: list[Feature] | None = None, max_categories: int = 256):
        self.features = features
        self.max_categories = max_categories

    def fit(self, X: pd.DataFrame, y: Any = None) -> FrameEncoder:
        """Learn the feature order and each categorical column's levels."""
        feats = list(self.features or [])
        if not feats:
            raise ChurnError("the model needs at least one feature")
        return self.fit_clean(coerce_frame(X, feats)[0])

    def fit_clean(self, clean: pd.DataFrame) -> FrameEncoder:
        """`fit` on a frame already passed through `coerce_frame`."""
        feats = list(self.features or [])
        self.features_ = feats
        self.feature_names_ = [f.name for f in feats]
        self.categorical_levels_: dict[str, list[str]] = {}
        for f in feats:
            if f.kind != "categorical":
                continue
            counts = pd.Series(clean[f.name]).dropna().value_counts()
            # Deterministic: most frequent first, ties by name; then sorted so codes read alphabetically.
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: self.max_categories]
            self.categorical_levels_[f.name] = sorted(str(k) for k, _ in ordered)
        self.categorical_index_ = [i for i, f in enumerate(feats) if f.kind == "categorical"]
        return self

    def transform_clean(self, clean: pd.DataFrame | dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, int]]:
        """Encode an already-coerced frame; also count rows per column whose level was unseen at fit."""
        # Column by column into a column-major buffer (strided row-major writes were most of the cost).
        n = len(clean) if isinstance(clean, pd.DataFrame) else len(next(iter(clean.values()), ()))
        out = np.empty((n, len(self.feature_names_)), dtype="float64", order="F")
        unseen: dict[str, int] = {}
        for j, name in enumerate(self.feature_names_):
            if name in self.categorical_levels_:
                # Match distinct values to the levels, then spread: cheap however many rows there are.
                seen, uniques = pd.factorize(np.asarray(clean[name], dtype=object), use_na_sentinel=True)
                level = pd.Index(self.categorical_levels_[name], dtype=object)
                codes = np.append(level.get_indexer(pd.Index(uniques, dtype=object)), -1)[seen]
                col = codes.astype("float64")
                col[codes < 0] = np.nan
                n_unseen = int(((codes < 0) & (seen >= 0)).sum())
                if n_unseen:
                    unseen[name] = n_unseen
                out[:, j] = col
            else:
                out[:, j] = np.asarray(clean[name], dtype="float64")
        return out, unseen

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The float matrix for `X` (columns in model order)."""
        clean, _ = coerce_frame(X, self.features_)
        return self.transform_clean(clean)[0]


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
    """Calibrated LightGBM churn classifier: `predict_risk(X)` is the calibrated probability of churn.

    Parameters are settings only; `fit` learns `encoder_`, `booster_`, `best_iteration_`, `calibrator_`,
    `features_`, `feature_names_`, `categorical_levels_` and `metadata_`.
    """

    def __init__(self, features: list[Feature] | None = None, params: dict[str, Any] | None = None, *,
                 num_boost_round: int = 2000, early_stopping_rounds: int = 100,
                 calibration: str = "isotonic", scale_pos_weight: float | None = None, seed: int = 42,
                 n_jobs: int = 2, max_categories: int = 256):
        self.features = features
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.scale_pos_weight = scale_pos_weight
        self.seed = seed
        self.n_jobs = n_jobs
        self.max_categories = max_categories

    # -- fitting
    def fit(self, X: pd.DataFrame, y: Any, *, eval_set: tuple[pd.DataFrame, Any] | None = None,
            calibration_set: tuple[pd.DataFrame, Any] | None = None) -> ChurnModel:
        """Fit the trees on (X, y), stop early on `eval_set`, fit the calibrator on `calibration_set`.

        The calibration rows must be rows the trees did not see; without them the model is uncalibrated
        (identity calibrator) and says so in `metadata_["calibration"]`.
        """
        if not self.features:
            raise ChurnError("the model needs at least one feature")
        clean, _ = coerce_frame(X, list(self.features))
        self.encoder_ = FrameEncoder(self.features, self.max_categories).fit_clean(clean)
        self.features_ = self.encoder_.features_
        self.feature_names_ = self.encoder_.feature_names_
        self.categorical_levels_ = self.encoder_.categorical_levels_
        self.classes_ = np.array([0, 1])
        y_arr = _labels(y, "training")
        X_enc = self.encoder_.transform_clean(clean)[0]
        del clean
        X_es = y_es = None
        if eval_set is not None:
            X_es = self.encoder_.transform(eval_set[0])
            y_es = _labels(eval_set[1], "early-stopping")
        self.lgb_params_ = lightgbm_params(self.params or {}, seed=self.seed, n_jobs=self.n_jobs,
                                           scale_pos_weight=self.scale_pos_weight)
        self.booster_, self.best_iteration_, self.best_score_ = train_booster(
            X_enc, y_arr, X_es, y_es, params=self.lgb_params_, categorical_index=self.encoder_.categorical_index_,
            feature_names=self.feature_names_, num_boost_round=self.num_boost_round,
            early_stopping_rounds=self.early_stopping_rounds,
        )
        method = self.calibration if calibration_set is not None else "none"
        self.calibrator_ = ProbabilityCalibrator(method=method)
        if calibration_set is not None:
            p_cal = self._raw_from_encoded(self.encoder_.transform(calibration_set[0]))
            self.calibrator_.fit(p_cal, _labels(calibration_set[1], "calibration"))
        else:
            self.calibrator_.fit(np.array([0.0, 1.0]), np.array([0, 1]))
        self.metadata_: dict[str, Any] = {
            "versions": library_versions(),
            "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "calibration": method,
            "n_fit_rows": len(y_arr),
            "fit_positive_rate": float(y_arr.mean()) if len(y_arr) else None,
            "best_iteration": int(self.best_iteration_),
            "lightgbm_params": dict(self.lgb_params_),
        }
        return self

    # -- inputs
    def validate_input(self, X: pd.DataFrame) -> InputReport:
        """Check a scoring frame: raises ChurnError naming missing columns and wrongly typed values (with
        example rows); returns the columns it will ignore and the rows whose levels were unseen at fit."""
        return self.encode(X)[1]

    def encode(self, X: pd.DataFrame) -> tuple[np.ndarray, InputReport]:
        """Validate a scoring frame (errors as in `validate_input`) and return its float matrix and report."""
        clean, extra = coerce_columns(X, self.features_)
        enc, unseen = self.encoder_.transform_clean(clean)
        return enc, InputReport(n_rows=len(X), extra_columns=extra, unseen_levels=unseen)

    def _encode(self, X: pd.DataFrame) -> np.ndarray:
        enc, report = self.encode(X)
        if report.extra_columns:
            log.debug("ignoring %d column(s) the model does not use: %s", len(report.extra_columns),
                      report.extra_columns[:10])
        if report.unseen_levels:
            log.info("levels unseen at training, scored as missing: %s", report.unseen_levels)
        return enc

    # -- predictions
    def _raw_from_encoded(self, X_enc: np.ndarray) -> np.ndarray:
        return self.booster_.predict(X_enc, num_iteration=self.best_iteration_, num_threads=self.n_jobs)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated P(churn) from the trees (what the calibrator maps)."""
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

        `treeshap`: LightGBM `pred_contrib` (exact SHAP values; ~0.4 ms/row for a few hundred trees).
        `path`: decision-path attribution (`churn.training.explain`; as cheap as a prediction), for
        scoring millions of rows. Either way each row sums to the uncalibrated log-odds; use them to rank
        reasons, they are not in probability units.
        """
        contrib = self.contributions_encoded(self._encode(X), method)
        df = pd.DataFrame(contrib[:, :-1], columns=self.feature_names_, index=X.index)
        df["bias"] = contrib[:, -1]
        return df

    def contributions_encoded(self, enc: np.ndarray, method: str = "treeshap") -> np.ndarray:
        """`contributions` of an already encoded matrix (from `encode`), as (n, features + 1) with the bias last."""
        if method == "path":
            return self.path_explainer().contributions(enc)
        if method == "treeshap":
            return self.booster_.predict(enc, num_iteration=self.best_iteration_, pred_contrib=True,
                                         num_threads=self.n_jobs)
        raise ValueError(f"unknown contribution method {method!r}; use 'treeshap' or 'path'")

    def path_explainer(self) -> PathExplainer:
        """The fitted decision-path explainer of this model (built on first use, then kept)."""
        explainer = getattr(self, "path_explainer_", None)
        if explainer is None:
            from churn.training.explain import PathExplainer

            explainer = PathExplainer(num_iteration=self.best_iteration_, n_jobs=self.n_jobs).fit(self.booster_)
            self.path_explainer_ = explainer
        return explainer

    @property
    def bias(self) -> float:
        """The expected raw log-odds (the `bias` column of `contributions`)."""
        zero = np.full((1, len(self.feature_names_)), np.nan)
        return float(self.booster_.predict(zero, num_iteration=self.best_iteration_, pred_contrib=True)[0, -1])

    def feature_importance(self, kind: str = "gain") -> pd.Series:
        """Total gain (or split count) per feature, largest first."""
        imp = self.booster_.feature_importance(importance_type=kind, iteration=self.best_iteration_)
        return pd.Series(imp, index=self.feature_names_, name=kind).sort_values(ascending=False)


def _labels(y: Any, what: str) -> np.ndarray:
    arr = np.asarray(pd.Series(y).to_numpy(), dtype="float64")
    if np.isnan(arr).any() or not np.isin(arr, (0.0, 1.0)).all():
        raise ChurnError(f"the {what} labels must be 0/1 without blanks")
    return arr.astype(int)
