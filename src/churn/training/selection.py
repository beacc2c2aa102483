"""Model selection on out-of-time validation, then a refit of the chosen settings on all data.

1. **Evaluate**: every candidate (`candidate_list`) is fitted on the training rows (trees stop early on
   the early-stopping rows, a blend picks its weight there), calibrated on the calibration rows, and
   predicts the calibration rows and the holdout.
2. **Choose** on validation, never on the holdout: ROC AUC on every validation row (the early-stopping
   and calibration rows: at a few hundred churners, halving them would double the noise of the choice;
   the early-stopping round reads the first half, a small advantage to the trees, and the blend's three
   stacking weights read them all, said here). The best candidate with LightGBM in it is chosen; the logistic regression only where it
   beats all of them, and then loudly.
3. **Refit** (`refit_all`): the chosen settings on every row, holdout and validation included, with the
   boosting rounds scaled to the number of rows, calibrated on out-of-fold predictions of the same
   settings (folds by customer), so the registered model has seen every snapshot.

The holdout metrics reported are those of the chosen candidate's evaluation fit, which never saw it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.features.registry import Feature
from churn.training.metrics import holdout_metrics, ranking_metrics
from churn.training.model import ChurnModel, ModelKind, stack_weights
from churn.training.splits import Split

STUMPS = {"num_leaves": 2, "max_depth": 1, "learning_rate": 0.2}  # depth-1 trees add one-feature effects
TREE_CANDIDATES = ("lightgbm", "lightgbm_stumps", "lightgbm_tuned")


@dataclass
class Candidate:
    """One set of model settings to compare."""

    name: str
    kind: ModelKind
    params: dict[str, Any]
    note: str


@dataclass
class Evaluated:
    """A candidate's evaluation fit and its scores."""

    candidate: Candidate
    model: ChurnModel
    valid: dict[str, float]  # on the validation rows: what selection reads
    holdout: dict[str, float]
    p_holdout: np.ndarray = field(repr=False)
    p_raw_holdout: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return self.candidate.name


def candidate_list(config: Config, tuned: dict[str, Any] | None = None) -> list[Candidate]:
    """The configured candidates (the tuned LightGBM joins when a search ran)."""
    mc = config.model
    base = dict(mc.params)
    out: list[Candidate] = []
    for name in mc.candidates:
        if name == "lightgbm":
            out.append(Candidate("lightgbm", "lightgbm", base, "LightGBM, the configured regularised settings"))
        elif name == "lightgbm_stumps":
            out.append(Candidate("lightgbm_stumps", "lightgbm", {**base, **STUMPS},
                                 "LightGBM of depth-1 trees: one-feature effects, suits near-additive signal"))
    if tuned is not None:
        out.append(Candidate("lightgbm_tuned", "lightgbm", tuned, "LightGBM with settings from the Optuna search"))
    if "logistic" in mc.candidates or "blend" in mc.candidates:
        out.append(Candidate("logistic", "logistic", base, "spline logistic regression"))
    if "blend" in mc.candidates and any(c.kind == "lightgbm" for c in out):
        out.append(Candidate("blend", "blend", base, "the best LightGBM and the logistic regression, log-odds "
                                                      "stacked on validation (non-negative weights)"))
    return out


def _model(config: Config, features: list[Feature], cand: Candidate, scale_pos_weight: float | None,
           source: dict[str, Any] | None, *, num_boost_round: int | None = None,
           blend_weights: tuple[float, float, float] | None = None, linear_c: float | None = None,
           linear_knots: int | None = None) -> ChurnModel:
    mc = config.model
    return ChurnModel(features, cand.params, kind=cand.kind, num_boost_round=num_boost_round or mc.num_boost_round,
                      early_stopping_rounds=mc.early_stopping_rounds, calibration=mc.calibration,
                      scale_pos_weight=scale_pos_weight, seed=mc.seed, n_jobs=mc.n_jobs, blend_weights=blend_weights,
                      linear_c=linear_c or mc.linear_c[-1], linear_knots=linear_knots or mc.linear_knots[-1],
                      source=source)


ISOTONIC_MIN_ROWS = 1000  # fewer calibration rows: isotonic steps overfit, Platt scaling is steadier


def calibration_method(configured: str, rows: int) -> str:
    """The calibration to fit on `rows` rows: the configured one, but sigmoid instead of isotonic below
    ISOTONIC_MIN_ROWS."""
    return "sigmoid" if configured == "isotonic" and rows < ISOTONIC_MIN_ROWS else configured


def _scores(model: ChurnModel, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    return ranking_metrics(y, model.predict_raw(X))


def evaluate_candidates(cands: list[Candidate], frame: pd.DataFrame, y: np.ndarray, rows: Split,
                        features: list[Feature], config: Config, *, scale_pos_weight: float | None,
                        source: dict[str, Any] | None, say: Callable[[str], None]) -> list[Evaluated]:
    """Fit each candidate on the training rows and score it on validation and holdout (module docstring)."""
    X = frame.iloc[rows.train]
    es = (frame.iloc[rows.early_stopping], y[rows.early_stopping]) if len(rows.early_stopping) else None
    cal = (frame.iloc[rows.calibration], y[rows.calibration])
    X_ho = frame.iloc[rows.holdout]
    va = np.sort(np.concatenate([rows.early_stopping, rows.calibration]))
    X_va = frame.iloc[va]
    out: list[Evaluated] = []
    for cand in cands:
        if cand.kind == "blend":
            trees = max((e for e in out if e.candidate.kind == "lightgbm"), key=lambda e: e.valid["roc_auc"])
            linear = next(e for e in out if e.candidate.kind == "logistic")
            model = _blend_of(trees.model, linear.model, (X_va, y[va]))
            a, b, _ = model.blend_weights_
            cand = Candidate(cand.name, "blend", trees.candidate.params,
                             f"{trees.name} and the logistic regression stacked: log-odds {a:.2f} x trees + "
                             f"{b:.2f} x logistic")
        elif cand.kind == "logistic":
            model = _penalised(config, features, cand, X, y[rows.train], es or cal, source, say)
        else:
            say(f"candidate {cand.name}: fitting on {len(rows.train):,} rows")
            model = _model(config, features, cand, scale_pos_weight, source).fit(X, y[rows.train], eval_set=es)
        model.calibrate(model.predict_raw(cal[0]), cal[1], calibration_method(config.model.calibration, len(cal[1])))
        valid = _scores(model, X_va, y[va])
        p_raw = model.predict_raw(X_ho)
        p_ho = model.calibrator_.predict(p_raw)
        ev = Evaluated(cand, model, valid, holdout_metrics(y[rows.holdout], p_ho, p_raw), p_ho, p_raw)
        say(f"candidate {cand.name}: validation ROC AUC {valid['roc_auc']:.4f}, holdout {ev.holdout['roc_auc']:.4f}")
        out.append(ev)
    return out


def _penalised(config: Config, features: list[Feature], cand: Candidate, X: pd.DataFrame, y: np.ndarray,
               held: tuple[pd.DataFrame, np.ndarray], source: dict[str, Any] | None,
               say: Callable[[str], None]) -> ChurnModel:
    """The logistic regression at each configured penalty and knot count (`model.linear_c`,
    `model.linear_knots`), the one with the lowest log loss on the `held` rows kept. The preparation is
    fitted once: it depends on the rows, not on these settings."""
    settings = [(knots, c) for knots in config.model.linear_knots for c in config.model.linear_c]
    first = _model(config, features, cand, None, source, linear_c=settings[0][1],
                   linear_knots=settings[0][0]).fit(X, y)
    X_enc, held_enc = first.preparation_.transform(X), first._encode(held[0])
    best, best_loss = None, np.inf
    for knots, c in settings:
        model = first if (knots, c) == settings[0] else first.with_linear(c, knots, X_enc, y)
        z = model.log_odds_encoded(held_enc)
        loss = float(np.mean(np.logaddexp(0.0, z) - np.asarray(held[1]) * z))
        say(f"candidate {cand.name}: {knots} knots, C={c:g}: early-stopping log loss {loss:.5f}")
        if loss < best_loss:
            best, best_loss = model, loss
    return best


def _blend_of(trees: ChurnModel, linear: ChurnModel, held: tuple[pd.DataFrame, np.ndarray]) -> ChurnModel:
    """The blend of two evaluation fits on the same rows (same preparation), stacked on `held` rows."""
    model = copy.copy(trees)
    model.kind = "blend"
    model.linear_ = linear.linear_
    model.linear_c, model.linear_knots = linear.linear_c, linear.linear_knots
    model.metadata_ = dict(trees.metadata_, kind="blend")
    enc = model._encode(held[0])
    model.blend_weights_ = stack_weights(model._parts(enc), held[1])
    model.blend_weights = model.blend_weights_
    model.metadata_["blend_weights"] = list(model.blend_weights_)
    return model


def choose(evaluated: list[Evaluated], force: str | None = None) -> tuple[Evaluated, str, bool]:
    """(the chosen candidate, why, whether the logistic regression won) on validation ROC AUC, or the
    `force`d candidate (model.force_candidate)."""
    if force is not None:
        named = [e for e in evaluated if e.name == force]
        if not named:
            from churn.errors import ChurnError

            raise ChurnError(f"model.force_candidate '{force}' is not among the candidates fitted: "
                             f"{', '.join(e.name for e in evaluated)} (see model.candidates)")
        scores = ", ".join(f"{e.name} {e.valid['roc_auc']:.4f}" for e in evaluated)
        return named[0], f"forced by model.force_candidate (validation ROC AUC: {scores})", False
    with_trees = [e for e in evaluated if e.candidate.kind != "logistic"]
    linear = [e for e in evaluated if e.candidate.kind == "logistic"]
    if not with_trees:
        return linear[0], "the only candidate configured", True
    # Ties go to the earlier candidate (the configured LightGBM first).
    best = max(with_trees, key=lambda e: e.valid["roc_auc"])
    scores = ", ".join(f"{e.name} {e.valid['roc_auc']:.4f}" for e in evaluated)
    if linear and linear[0].valid["roc_auc"] > best.valid["roc_auc"]:
        return linear[0], (f"NO CANDIDATE WITH LIGHTGBM BEATS THE LOGISTIC REGRESSION on validation ROC AUC "
                           f"({scores})"), True
    return best, f"best validation ROC AUC among the candidates ({scores})", False


def scaled_rounds(best_iteration: int, fit_rows: int, rows: int, most: int) -> int:
    """Boosting rounds for `rows` rows, from the early-stopped round on `fit_rows` (grown with the data)."""
    return int(min(max(1, round(best_iteration * rows / max(fit_rows, 1))), most))


def refit_all(chosen: Evaluated, frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray, features: list[Feature],
              config: Config, *, fit_rows: int, scale_pos_weight: float | None, source: dict[str, Any] | None,
              fold_of: np.ndarray, say: Callable[[str], None]) -> tuple[ChurnModel, dict[str, Any]]:
    """The chosen settings fitted on every row, calibrated on out-of-fold predictions (folds by customer).

    `fold_of` gives each row's fold (all rows of a customer share one). Returns the model and what the refit
    did (rows, rounds, folds) for the run's parameters.
    """
    mc = config.model
    cand, w, c, knots = chosen.candidate, chosen.model.blend_weights_, chosen.model.linear_c, chosen.model.linear_knots
    most = 2 * mc.num_boost_round
    n = len(y)
    rounds = scaled_rounds(chosen.model.best_iteration_, fit_rows, n, most)
    oof = np.full(n, np.nan)
    folds = np.unique(fold_of)
    for k in folds:
        held = fold_of == k
        r = scaled_rounds(chosen.model.best_iteration_, fit_rows, int((~held).sum()), most)
        say(f"refit: calibration fold {int(k) + 1}/{len(folds)} ({int((~held).sum()):,} rows, {r} rounds)")
        m = _model(config, features, cand, scale_pos_weight, source, num_boost_round=r, blend_weights=w, linear_c=c,
                   linear_knots=knots)
        m.fit(frame.iloc[np.flatnonzero(~held)], y[~held])
        oof[held] = m.predict_raw(frame.iloc[np.flatnonzero(held)])
    say(f"refit: {cand.name} on all {n:,} rows" + (f" ({rounds} rounds)" if cand.kind != "logistic" else ""))
    model = _model(config, features, cand, scale_pos_weight, source, num_boost_round=rounds, blend_weights=w,
                   linear_c=c, linear_knots=knots)
    model.fit(frame, y)
    model.calibrate(oof, y, calibration_method(mc.calibration, n))
    info = {"rows": n, "rounds": rounds if cand.kind != "logistic" else 0, "calibration_folds": len(folds),
            "customers": int(len(pd.unique(ids))), "oof_roc_auc": ranking_metrics(y, oof)["roc_auc"]}
    return model, info
