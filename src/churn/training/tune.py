"""Hyperparameter search with Optuna (TPE, fixed seed), budgeted by trials and minutes.

Each trial fits a booster with early stopping and is scored by its best validation log loss; `on_trial` is
called after each trial (the trainer logs it as a nested MLflow run). The time budget is checked between
trials, so the last trial may run past it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.preparation import Preparation

from churn.features.registry import Feature
from churn.training.model import lightgbm_params, monotone_constraints, train_booster
from churn.training.splits import VALIDATION_SHARE, Split, unit_hash

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    """The best parameters found (merged over the base ones) and a summary of the search."""

    params: dict[str, Any]
    best_value: float
    n_trials: int
    trials: list[dict[str, Any]]


def suggest(trial: Any) -> dict[str, Any]:
    """The search space."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 10, 500, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True),
    }


def tune(X: np.ndarray, y: np.ndarray, X_es: np.ndarray, y_es: np.ndarray, *, base_params: dict[str, Any],
         categorical_index: list[int], feature_names: list[str], n_trials: int, minutes: float | None, seed: int,
         n_jobs: int, num_boost_round: int, early_stopping_rounds: int, scale_pos_weight: float | None = None,
         on_trial: Callable[[int, dict[str, Any], float, int], None] | None = None,
         monotone_constraints: list[int] | None = None) -> TuneResult:
    """Search LightGBM parameters on encoded matrices, every trial under `monotone_constraints` (LightGBM's,
    one per column) when given; returns the best (merged over `base_params`)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials: list[dict[str, Any]] = []

    def objective(trial: Any) -> float:
        cand = {**base_params, **suggest(trial)}
        if cand.get("bagging_fraction", 1.0) < 1.0 and not cand.get("bagging_freq"):
            cand["bagging_freq"] = 1
        params = lightgbm_params(cand, seed=seed, n_jobs=n_jobs, scale_pos_weight=scale_pos_weight)
        if monotone_constraints:
            params["monotone_constraints"] = monotone_constraints
        _, best_iter, score = train_booster(X, y, X_es, y_es, params=params, categorical_index=categorical_index,
                                            feature_names=feature_names, num_boost_round=num_boost_round,
                                            early_stopping_rounds=early_stopping_rounds)
        value = float(score) if score is not None else float("inf")
        trial.set_user_attr("best_iteration", best_iter)
        trials.append({"number": trial.number, "params": suggest_params(trial), "valid_log_loss": value,
                       "best_iteration": best_iter})
        if on_trial is not None:
            on_trial(trial.number, suggest_params(trial), value, best_iter)
        return value

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=int(n_trials), timeout=None if minutes is None else float(minutes) * 60.0,
                   gc_after_trial=False)
    best = {**base_params, **study.best_params}
    if best.get("bagging_fraction", 1.0) < 1.0 and not best.get("bagging_freq"):
        best["bagging_freq"] = 1
    return TuneResult(params=best, best_value=float(study.best_value), n_trials=len(study.trials), trials=trials)


def suggest_params(trial: Any) -> dict[str, Any]:
    """The parameters a trial drew."""
    return dict(trial.params)


def search_training_rows(frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray, rows: Split, features: list[Feature],
          config: Config, scale_pos_weight: float | None, n_trials: int, minutes: float | None, run: Any,
          say: Callable[[str], None]) -> dict[str, Any] | None:
    """An Optuna search over LightGBM settings within the training rows (a fifth of their customers scores
    the trials), so the validation rows that choose among the candidates stay unseen by the search; each
    trial is a nested MLflow run. Its best settings join the candidates as `lightgbm_tuned`."""
    import mlflow

    mc = config.model
    inner = unit_hash(ids[rows.train], mc.seed, "tune") < VALIDATION_SHARE
    fit_rows, eval_rows = rows.train[~inner], rows.train[inner]
    if not (0 < y[eval_rows].sum() < len(eval_rows)) or not y[fit_rows].any():
        say("tuning skipped: too few churners in the training rows to score trials")
        return None
    prep = Preparation(features, infer=True).fit(frame.iloc[fit_rows])
    X, X_es = prep.transform(frame.iloc[fit_rows]), prep.transform(frame.iloc[eval_rows])
    say(f"tuning: up to {n_trials} trial(s)" + (f" or {minutes:g} minute(s)" if minutes else ""))
    exp_id = run.info.experiment_id

    def on_trial(number: int, trial_params: dict[str, Any], value: float, best_iter: int) -> None:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"trial-{number:03d}", nested=True):
            mlflow.log_params(trial_params)
            mlflow.log_metrics({"valid_log_loss": value, "best_iteration": best_iter})

    res = tune(X, y[fit_rows], X_es, y[eval_rows], base_params=dict(mc.params),
               categorical_index=prep.categorical_index_, feature_names=prep.feature_names_, n_trials=n_trials,
               minutes=minutes, seed=mc.seed, n_jobs=mc.n_jobs, num_boost_round=mc.num_boost_round,
               early_stopping_rounds=mc.early_stopping_rounds, scale_pos_weight=scale_pos_weight, on_trial=on_trial,
               # the trials search under the constraints the candidates are fitted with (ChurnModel.monotone)
               monotone_constraints=monotone_constraints(prep.feature_names_, mc.monotone, prep.categorical_index_))
    mlflow.log_metrics({"tune_best_valid_log_loss": res.best_value, "tune_trials_run": res.n_trials})
    say(f"tuning done: best validation log loss {res.best_value:.5f} after {res.n_trials} trial(s)")
    return {"best_value": res.best_value, "n_trials": res.n_trials, "best_params": res.params, "trials": res.trials}
