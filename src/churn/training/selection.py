"""Model selection: which candidate, under which refit rule, gets registered.

1. **Evaluate** (`evaluate_candidates`): every candidate (`candidate_list`) is fitted on the training rows
   (trees stop early on the early-stopping rows; the logistic regressions pick their penalty and knots by
   cross-validation by customer; a blend stacks its parts on the validation rows), calibrated on the
   calibration rows, and predicts the holdout.
   These evaluation fits fix each candidate's settings.
2. **Read forward** (`churn.training.procedure.forward_readings`): each candidate's settings refit by each
   refit rule on rows earlier than a validation date and scored there on customers whose outcome the fit
   never saw: the registered procedure judged later than everything it was fitted on.
3. **Choose** (`choose`): the best reading; readings within `model.tie_margin` of it, or within one
   standard error of their difference with it where that is wider (a bootstrap on the same rows), are
   tied: the simplest of them (`SIMPLICITY`) is the choice, which `churn.training.average` replaces by the
   average of the tied candidates (`model.average_ties`); a rule's ties go to the fallback rule. Never on
   the holdout. A blend that puts (almost) no weight on its trees is the logistic regression, and is dropped.

The candidates: LightGBM (the configured settings, depth-1 stumps, and an Optuna search on small data), a
spline logistic regression, a sparse (L1) linear logistic regression, their blend, and BG/NBD's P(no order)
alone where the data has purchases (`btyd`), the classic model of a transaction log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.training.metrics import holdout_metrics, ranking_metrics
from churn.training.model import ChurnModel, ModelKind, sample_rows, stack_weights
from churn.training.procedure import NO_REFIT, RULES, Reading
from churn.training.splits import Split

STUMPS = {"num_leaves": 2, "max_depth": 1, "learning_rate": 0.2}  # depth-1 trees add one-feature effects
BTYD_FEATURE = "btyd_p_no_order"
# Simplest first: ties within the margin go to the earliest. One feature; a sparse line per feature; a
# curve per feature; one-feature trees; trees; searched trees; trees and curves together.
SIMPLICITY = ("btyd", "logistic_l1", "logistic", "lightgbm_stumps", "lightgbm", "lightgbm_tuned", "blend")
NEGLIGIBLE_TREE_SHARE = 0.02  # a blend whose trees move the log-odds this little (in sd) is the logistic


@dataclass
class Candidate:
    """One set of model settings to compare."""

    name: str
    kind: ModelKind
    params: dict[str, Any]
    note: str
    penalty: str = "l2"  # the logistic regression's
    knots: tuple[int, ...] | None = None  # knot counts to try (None: model.linear_knots)
    features: tuple[str, ...] | None = None  # a subset of the features (None: all)
    parts: tuple[str, ...] | None = None  # a blend's trees and logistic candidates; an average's members


@dataclass
class Evaluated:
    """A candidate's evaluation fit and its scores."""

    candidate: Candidate
    model: ChurnModel
    valid: dict[str, float]  # on the validation rows
    holdout: dict[str, float]  # of the evaluation fit (for information)
    p_holdout: np.ndarray = field(repr=False)
    p_raw_holdout: np.ndarray = field(repr=False)
    p_raw_valid: np.ndarray | None = field(default=None, repr=False)  # uncalibrated, on the validation rows
    # An average's members and the refit rule each is registered by (churn.training.average).
    members: tuple[tuple[Evaluated, str], ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.candidate.name


@dataclass
class Choice:
    """The candidate and refit rule to register, why, and the reading that chose them."""

    evaluated: Evaluated
    rule: str
    why: str
    reading: Reading
    linear_won: bool  # no candidate with trees was chosen (said loudly)
    forward: bool  # chosen on a forward reading (else on validation rows, with the fallback rule)
    tied: tuple[str, ...] = ()  # the candidates within the margin (one standard error) of the best, simplest first
    readings_text: str = ""  # what was read, and each candidate's best reading (for a `why` built elsewhere)
    pool: tuple[str, ...] = ()  # the tied, then those not significantly worse (POOL_ERRORS): what is averaged

    @property
    def name(self) -> str:
        return self.evaluated.name


def candidate_list(config: Config, tuned: dict[str, Any] | None = None,
                   features: list[Feature] | None = None) -> list[Candidate]:
    """The configured candidates, in fitting order (the tuned LightGBM joins when a search ran, `btyd`
    when the features include BG/NBD's P(no order))."""
    mc = config.model
    base = dict(mc.params)
    names = {f.name for f in features or []}
    out: list[Candidate] = []
    if "lightgbm" in mc.candidates:
        out.append(Candidate("lightgbm", "lightgbm", base, "LightGBM, the configured regularised settings"))
    if "lightgbm_stumps" in mc.candidates:
        out.append(Candidate("lightgbm_stumps", "lightgbm", {**base, **STUMPS},
                             "LightGBM of depth-1 trees: one-feature effects, suits near-additive signal"))
    if tuned is not None:
        out.append(Candidate("lightgbm_tuned", "lightgbm", tuned, "LightGBM with settings from the Optuna search"))
    if "logistic" in mc.candidates or "blend" in mc.candidates:
        out.append(Candidate("logistic", "logistic", base, "spline logistic regression"))
    if "logistic_l1" in mc.candidates:
        out.append(Candidate("logistic_l1", "logistic", base, "sparse (L1) logistic regression, one clipped line "
                             "per feature", penalty="l1", knots=(2,)))
    if "btyd" in mc.candidates and BTYD_FEATURE in names:
        out.append(Candidate("btyd", "logistic", base, "BG/NBD's probability of no order within the horizon, "
                             "alone", knots=(2,), features=(BTYD_FEATURE,)))
    if "blend" in mc.candidates and any(c.kind == "lightgbm" for c in out) and any(c.name == "logistic" for c in out):
        out.append(Candidate("blend", "blend", base, "the best LightGBM and the spline logistic regression, "
                                                      "log-odds stacked on validation (non-negative weights)"))
    return out


def build_model(config: Config, features: list[Feature], cand: Candidate, scale_pos_weight: float | None,
                source: dict[str, Any] | None, *, num_boost_round: int | None = None,
                blend_weights: tuple[float, float, float] | None = None, linear_c: float | None = None,
                linear_knots: int | None = None) -> ChurnModel:
    """An unfitted model of candidate `cand` (on its feature subset, if any)."""
    mc = config.model
    feats = [f for f in features if cand.features is None or f.name in cand.features]
    return ChurnModel(feats, cand.params, kind=cand.kind, num_boost_round=num_boost_round or mc.num_boost_round,
                      early_stopping_rounds=mc.early_stopping_rounds, calibration=mc.calibration,
                      scale_pos_weight=scale_pos_weight, seed=mc.seed, n_jobs=mc.n_jobs, blend_weights=blend_weights,
                      linear_c=linear_c or mc.linear_c[-1], linear_knots=linear_knots or (cand.knots or mc.linear_knots)[-1],
                      linear_penalty=cand.penalty, source=source, monotone=dict(mc.monotone) or None)


ISOTONIC_MIN_ROWS = 1000  # fewer calibration rows: isotonic steps overfit, Platt scaling is steadier


def calibration_method(configured: str, rows: int) -> str:
    """The calibration to fit on `rows` rows: the configured one, but sigmoid instead of isotonic below
    ISOTONIC_MIN_ROWS."""
    return "sigmoid" if configured == "isotonic" and rows < ISOTONIC_MIN_ROWS else configured


def evaluate_candidates(cands: list[Candidate], frame: pd.DataFrame, y: np.ndarray, rows: Split,
                        features: list[Feature], config: Config, *, scale_pos_weight: float | None,
                        source: dict[str, Any] | None, say: Callable[[str], None],
                        ids: np.ndarray | None = None) -> list[Evaluated]:
    """Fit each candidate on the training rows and score it on validation and holdout (module docstring).
    `ids` (each row's customer) groups the logistic regressions' cross-validation folds (default: rows)."""
    ids = np.arange(len(y)).astype(str).astype(object) if ids is None else ids
    X = frame.iloc[rows.train]
    es = (frame.iloc[rows.early_stopping], y[rows.early_stopping]) if len(rows.early_stopping) else None
    cal = (frame.iloc[rows.calibration], y[rows.calibration])
    X_ho = frame.iloc[rows.holdout]
    va = rows.validation
    X_va = frame.iloc[va]
    out: list[Evaluated] = []
    for cand in cands:
        if cand.kind == "blend":
            trees = max((e for e in out if e.candidate.kind == "lightgbm"), key=lambda e: e.valid["roc_auc"])
            linear = next(e for e in out if e.name == "logistic")
            parts = trees.model._parts(trees.model._encode(X_va))[0], linear.model._parts(linear.model._encode(X_va))[1]
            weights = stack_weights(parts, y[va])
            if _trees_negligible(parts, weights):
                say(f"candidate blend: dropped, its trees take (almost) no weight ({weights[0]:.3f}): it is the "
                    "logistic regression")
                continue
            model = ChurnModel.blend_of(trees.model, linear.model, weights)
            a, b, _ = weights
            cand = Candidate(cand.name, "blend", trees.candidate.params,
                             f"{trees.name} and the logistic regression stacked: log-odds {a:.2f} x trees + "
                             f"{b:.2f} x logistic", parts=(trees.name, linear.name))
        elif cand.kind == "logistic":
            model = _penalised(config, features, cand, X, y[rows.train], ids[rows.train], source, say)
        else:
            say(f"candidate {cand.name}: fitting on {len(rows.train):,} rows")
            model = build_model(config, features, cand, scale_pos_weight, source).fit(X, y[rows.train], eval_set=es)
        model.calibrate(model.predict_raw(cal[0]), cal[1], calibration_method(config.model.calibration, len(cal[1])))
        p_raw_valid = model.predict_raw(X_va)
        valid = ranking_metrics(y[va], p_raw_valid)
        p_raw = model.predict_raw(X_ho)
        p_ho = model.calibrator_.predict(p_raw)
        ev = Evaluated(cand, model, valid, holdout_metrics(y[rows.holdout], p_ho, p_raw), p_ho, p_raw, p_raw_valid)
        say(f"candidate {cand.name}: validation ROC AUC {valid['roc_auc']:.4f}")
        out.append(ev)
    return out


def _trees_negligible(parts: tuple[np.ndarray, np.ndarray], weights: tuple[float, float, float]) -> bool:
    """Whether a blend's trees move its log-odds by less than NEGLIGIBLE_TREE_SHARE of what the logistic
    part does (spreads of the parts' log-odds on the rows they were stacked on)."""
    a, b, _ = weights
    return bool(a <= 0 or a * np.std(parts[0]) < NEGLIGIBLE_TREE_SHARE * max(b * np.std(parts[1]), 1e-12))


# The average's members: every candidate not significantly worse than the best (two standard errors of the
# paired difference), a wider set than the one-standard-error tie that picks a single candidate.
POOL_ERRORS = 2.0

LINEAR_CV_FOLDS = 3
LINEAR_CV_MAX_ROWS = 6_000  # the settings are compared on a seeded sample of the training rows


def _penalised(config: Config, features: list[Feature], cand: Candidate, X: pd.DataFrame, y: np.ndarray,
               groups: np.ndarray, source: dict[str, Any] | None, say: Callable[[str], None]) -> ChurnModel:
    """The logistic regression at the penalty and knot count (`model.linear_c`, the candidate's knots or
    `model.linear_knots`) with the best mean ROC AUC over LINEAR_CV_FOLDS folds of the training rows by
    customer (`groups`), fitted on every training row; ties go to fewer knots and the stronger penalty.

    Cross-validated, not read on the early-stopping rows: a few hundred validation churners chose penalties
    far too strong for a sparse model (benchmarks/RESULTS.md). The preparation is fitted once: it depends on
    the rows, not on these settings: each fold fits only the regression on the prepared rows."""
    from churn.preparation import Preparation
    from churn.training.linear import SplineLogit
    from churn.training.splits import unit_hash

    mc = config.model
    knots = cand.knots or tuple(mc.linear_knots)
    settings = sorted({(k, c) for k in knots for c in mc.linear_c})
    feats = [f for f in features if cand.features is None or f.name in cand.features]
    prep = Preparation(feats, infer=True, source=source).fit(X)  # as the model's own fit will learn it
    rows = sample_rows(np.arange(len(y)), LINEAR_CV_MAX_ROWS, mc.seed)
    X_enc = prep.transform(X.iloc[rows])
    fold = np.minimum((unit_hash(groups[rows], mc.seed, "linear-cv") * LINEAR_CV_FOLDS).astype(int),
                      LINEAR_CV_FOLDS - 1)
    y_cv = y[rows]
    aucs: dict[tuple[int, float], list[float]] = {s: [] for s in settings}
    for k in dict.fromkeys(knots):
        for f in range(LINEAR_CV_FOLDS):
            fit, held = fold != f, fold == f
            if len(np.unique(y_cv[fit])) < 2 or len(np.unique(y_cv[held])) < 2:
                continue
            # A fold's blocks depend on its rows and the knots, not on the penalty: learnt once per fold.
            shared = SplineLogit(prep.categorical_index_, n_knots=k).prepare(X_enc[fit])
            for c in dict.fromkeys(mc.linear_c):
                m = SplineLogit(prep.categorical_index_, C=c, n_knots=k, penalty=cand.penalty,
                                seed=mc.seed).fit(X_enc[fit], y_cv[fit], prepared=shared)
                aucs[(k, c)].append(ranking_metrics(y_cv[held], m.decision_function(X_enc[held]))["roc_auc"])
    scores = {s: float(np.mean(aucs[s])) if aucs[s] else float("nan") for s in settings}
    for k, c in settings:
        say(f"candidate {cand.name}: {k} knots, C={c:g}: cross-validated ROC AUC {scores[(k, c)]:.4f}")
    k, c = max(settings, key=lambda s: (_finite(scores[s]), -s[0], -s[1]))
    model = build_model(config, features, cand, None, source, linear_c=c, linear_knots=k).fit(X, y)
    model.metadata_["linear_cv"] = {"churners": int(np.sum(y)), "rows": len(rows),
                                    "roc_auc": {f"{k} knots, C={c:g}": v for (k, c), v in scores.items()}}
    return model


def _simplicity(name: str) -> int:
    return SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY)


def best_rule(readings: list[Reading], candidate: str) -> Reading:
    """A candidate's best reading; ties go to the fallback rule, then to no refit."""
    order = (*RULES, NO_REFIT)
    mine = [r for r in readings if r.candidate == candidate]
    return max(mine, key=lambda r: (_finite(r.roc_auc), -order.index(r.rule)))


def _finite(v: float) -> float:
    return v if v == v else -np.inf


def margin_of(readings: dict[str, Reading], leader: str, y: np.ndarray | None, tie_margin: float,
              seed: int = 0, errors: float = 1.0) -> dict[str, float]:
    """How far below the leader each candidate may read and still count as tied: `tie_margin`, or `errors`
    standard errors of its paired difference with the leader on the same rows (bootstrap) where that is
    wider (the one-standard-error rule: on few churners, differences this size are noise)."""
    return _margins(_errors(readings, leader, y, seed), tie_margin, errors)


def _errors(readings: dict[str, Reading], leader: str, y: np.ndarray | None, seed: int) -> dict[str, float | None]:
    """Each candidate's bootstrap standard error of its paired ROC AUC difference with the leader (None for the
    leader itself, or without outcomes)."""
    from churn.training.comparison import auc_difference

    out: dict[str, float | None] = {}
    for name, r in readings.items():
        if y is None or name == leader or len(np.unique(y)) < 2:
            out[name] = None
            continue
        _, lo, hi = auc_difference(y, readings[leader].raw, r.raw, n_boot=200, seed=seed)
        out[name] = (hi - lo) / 3.92 if np.isfinite(hi - lo) else 0.0
    return out


def _margins(errors_of: dict[str, float | None], tie_margin: float, errors: float) -> dict[str, float]:
    return {n: tie_margin if se is None else max(tie_margin, errors * se) for n, se in errors_of.items()}


def choose(evaluated: list[Evaluated], readings: list[Reading], *, forward: bool, tie_margin: float, force: str | None = None, y_read: np.ndarray | None = None, seed: int = 0) -> Choice:
    """The candidate and rule to register (module docstring), or the `force`d candidate's best rule
    (model.force_candidate). `y_read` (the outcomes of the rows the readings scored) widens the tie margin
    to one standard error of each difference (`margin_of`)."""
    by_name = {e.name: e for e in evaluated}
    best = {name: best_rule(readings, name) for name in by_name if any(r.candidate == name for r in readings)}
    no_refit = any(r.rule == NO_REFIT for r in readings)
    where = ("ROC AUC of each procedure refit on rows earlier than the validation date(s) and read there on "
             "customers whose outcome it never saw" if forward else
             "validation ROC AUC of the evaluation fits (model.refit is off: they are what is registered)"
             if no_refit else
             "validation ROC AUC (no later date to read the refit on: the refit rule is the fallback, "
             f"'{RULES[0]}')")
    scores = ", ".join(f"{n} {r.roc_auc:.4f}" + (f" ({r.rule})" if forward else "") for n, r in best.items())
    if force is not None:
        if force not in best:
            raise ChurnError(f"model.force_candidate '{force}' is not among the candidates fitted: "
                             f"{', '.join(by_name)} (see model.candidates)")
        ev = by_name[force]
        return Choice(ev, best[force].rule, f"forced by model.force_candidate ({where}: {scores})", best[force],
                      ev.candidate.kind == "logistic", forward)
    leader = max(best, key=lambda n: (_finite(best[n].roc_auc), -_simplicity(n)))
    top = _finite(best[leader].roc_auc)
    errors_of = _errors(best, leader, y_read, seed)  # one bootstrap for the tie and the average's pool
    margins = _margins(errors_of, tie_margin, 1.0)

    def simplest_first(n: str) -> tuple[int, float]:
        return _simplicity(n), -_finite(best[n].roc_auc)

    near = sorted((n for n, r in best.items() if _finite(r.roc_auc) >= top - margins[n]), key=simplest_first)
    name = near[0]
    ev = by_name[name]
    why = f"best {where} ({scores})"
    if name != leader:
        why = (f"{name} is simpler and within {margins[name]:.4f} of the best ({leader} "
               f"{best[leader].roc_auc:.4f}; the margin is {tie_margin:g} or one standard error of the "
               f"difference, whichever is wider); {where} ({scores})")
    linear_won = ev.candidate.kind == "logistic" and any(e.candidate.kind != "logistic" for e in evaluated)
    if linear_won:
        why = f"NO CANDIDATE WITH LIGHTGBM BEATS THE {name.upper()} CANDIDATE: {why}"
    wide = _margins(errors_of, tie_margin, POOL_ERRORS)
    pool = tuple(near) + tuple(sorted(
        (n for n, r in best.items() if n not in near and _finite(r.roc_auc) >= top - wide[n]), key=simplest_first))
    return Choice(ev, best[name].rule, why, best[name], linear_won, forward, tuple(near), f"{where} ({scores})",
                  pool)
