"""The registered procedure, and its readings at a later date than everything it was fitted on.

What gets registered is not a candidate's evaluation fit but a procedure: the candidate's settings (its
early-stopped rounds, blend weights, penalty and knots), refit on more rows by a *refit rule*, then
calibrated. The rules say how many boosting rounds the refit grows from the `r0` the evaluation fit stopped
at:

- `customers`: r0 x (customers refit on / customers the evaluation fit saw): snapshots of one customer
  are near copies of each other, so rows overstate how much there is to learn (the fallback);
- `same`: r0 (more data, the same rounds);
- `rows`: r0 x (rows refit on / rows the evaluation fit saw);
- `none`: no refit (`model.refit: false`): the evaluation fit itself is registered.

A *forward reading* fits the procedure on rows earlier than a validation date (`Split.forward_fits`: the
rows whose labels had closed by then, or every earlier row but the scored customers' overlapping ones) and
scores customers at that date (`Split.forward_valids`), fit by fit. The trees are grown once per fold, to the most rounds any rule asks for, and read at each rule's
rounds. Selection compares candidates and
rules by these readings (`churn.training.selection`); the registered model is the chosen candidate's
procedure on every row (`register_procedure`); the holdout figure is the same procedure fitted on the rows
before the holdout date and scored on the holdout (`holdout_procedure`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from churn.config import Config
from churn.features.registry import Feature
from churn.training.metrics import ranking_metrics
from churn.training.model import ChurnModel
from churn.training.splits import Split

if TYPE_CHECKING:
    from churn.training.selection import Evaluated

RULES = ("customers", "same", "rows")  # refit rules, the fallback first (it wins ties)
NO_REFIT = "none"
MEMBERS_RULE = "members"  # an average's: each member refit by its own rule (churn.training.average)


def mean_raw(raws: list[np.ndarray]) -> np.ndarray:
    """P(churn) from the mean log-odds of several models' uncalibrated probabilities of the same rows (what
    an average model predicts)."""
    return expit(np.mean([logit(np.clip(r, 1e-15, 1 - 1e-15)) for r in raws], axis=0))


@dataclass(frozen=True)
class Rows:
    """How many rows and distinct customers a fit saw (what the refit rules scale by)."""

    rows: int
    customers: int

    @classmethod
    def of(cls, ids: np.ndarray, positions: np.ndarray) -> Rows:
        return cls(len(positions), int(pd.Series(ids[positions]).nunique()))


def rule_rounds(rule: str, r0: int, fitted: Rows, refit: Rows, most: int) -> int:
    """Boosting rounds for a refit on `refit` under `rule`, from `r0` early-stopped on `fitted`."""
    ratio = {"same": 1.0, "customers": refit.customers / max(fitted.customers, 1),
             "rows": refit.rows / max(fitted.rows, 1)}[rule]
    return int(min(max(1, round(r0 * ratio)), most))


@dataclass
class Reading:
    """One candidate's procedure under one refit rule, fitted before the forward date and scored at it."""

    candidate: str
    rule: str
    roc_auc: float
    pr_auc: float
    rounds: int  # 0 for a model without trees
    raw: np.ndarray = field(repr=False)  # uncalibrated P(churn) of the forward rows (calibrates the refit)


LINEAR_RECHOOSE_CHURNERS = 500  # fewer churners behind a regression's settings: each refit chooses them again


def refit(ev: Evaluated, frame: pd.DataFrame, y: np.ndarray, rows: np.ndarray, config: Config,
          features: list[Feature], *, rounds: int, scale_pos_weight: float | None,
          source: dict[str, Any] | None, ids: np.ndarray | None = None,
          settings: tuple[float, int] | None = None) -> ChurnModel:
    """The candidate's settings fitted on `rows` with `rounds` boosting rounds (no early stopping);
    uncalibrated. A logistic regression chosen from fewer than LINEAR_RECHOOSE_CHURNERS training churners
    chooses its penalty and knots again on `rows` (with `ids`, the customers the folds go by): they are part
    of its procedure, and a young business's training snapshots alone are too few to choose them well.
    `settings` (penalty, knots) fixes the regression's instead."""
    from churn.training.selection import _penalised, build_model

    m = ev.model
    cv = m.metadata_.get("linear_cv") or {}
    if (settings is None and ids is not None and ev.candidate.kind == "logistic"
            and cv.get("churners", np.inf) < LINEAR_RECHOOSE_CHURNERS):
        return _penalised(config, features, ev.candidate, frame.iloc[rows], y[rows], ids[rows], source,
                          lambda msg: None)
    c, knots = settings or (m.linear_c, m.linear_knots)
    model = build_model(config, features, ev.candidate, scale_pos_weight, source, num_boost_round=max(rounds, 1),
                        blend_weights=m.blend_weights_, linear_c=c, linear_knots=knots)
    return model.fit(frame.iloc[rows], y[rows])


def forward_readings(evaluated: list[Evaluated], frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray,
                     split: Split, config: Config, features: list[Feature], *, scale_pos_weight: float | None,
                     source: dict[str, Any] | None, say: Callable[[str], None],
                     with_refit: bool = True) -> list[Reading]:
    """Every candidate's procedure under every refit rule, read at the forward date (module docstring); with
    several fits (folds, dates), each scores its own rows and a reading pools them (`Split.forward_valid`
    order).

    Without a later date to read (a split by customer), or without a refit (`with_refit` false, from
    `model.refit`: the evaluation fits are what is registered), each candidate's evaluation fit is read on
    the validation rows, under the fallback rule or `none`."""
    out: list[Reading] = []

    def read(name: str, rule: str, raw: np.ndarray, rounds: int, y_read: np.ndarray) -> None:
        m = ranking_metrics(y_read, raw)
        out.append(Reading(name, rule, m["roc_auc"], m["pr_auc"], rounds, raw))

    if not split.forward or not with_refit:
        va = split.validation
        for ev in evaluated:
            read(ev.name, RULES[0] if with_refit else NO_REFIT, ev.model.predict_raw(frame.iloc[va]),
                 ev.model.best_iteration_, y[va])
        return out
    y_fv = y[split.forward_valid]
    fitted = Rows.of(ids, split.train)
    most = 2 * config.model.num_boost_round
    raws: dict[tuple[str, str], list[np.ndarray]] = {}
    rounds_of: dict[tuple[str, str], int] = {}
    for fold, (fit_rows, valid_rows) in enumerate(zip(split.forward_fits, split.forward_valids, strict=True)):
        X_v = frame.iloc[valid_rows]
        target = Rows.of(ids, fit_rows)
        fits: dict[str, tuple[ChurnModel, np.ndarray]] = {}  # this fold's refits, by candidate
        for ev in evaluated:
            kind, r0 = ev.candidate.kind, ev.model.best_iteration_
            rounds = {rule: rule_rounds(rule, r0, fitted, target, most) for rule in RULES} if kind != "logistic" \
                else {RULES[0]: 0}
            for rule, r in rounds.items():
                rounds_of.setdefault((ev.name, rule), r)
            if kind == "blend":
                # The blend's parts: this fit's refit of its trees candidate, read at each rule's rounds, and a
                # logistic regression at the blend's own penalty and knots (what its registered refit fits),
                # with the blend's stacking weights.
                trees_name, linear_name = ev.candidate.parts  # type: ignore[misc]
                (trees, enc_t), (linear, enc_l) = fits[trees_name], fits[linear_name]
                if (linear.linear_c, linear.linear_knots) != (ev.model.linear_c, ev.model.linear_knots):
                    part = next(e for e in evaluated if e.name == linear_name)
                    linear = refit(part, frame, y, fit_rows, config, features, rounds=0,
                                   scale_pos_weight=scale_pos_weight, source=source, settings=(
                                       ev.model.linear_c, ev.model.linear_knots))
                    enc_l = linear._encode(X_v)
                a, b, c = ev.model.blend_weights_
                lin = linear.linear_.decision_function(enc_l)
                for rule, r in rounds.items():
                    t = trees.log_odds_encoded(enc_t, num_iteration=min(r, trees.booster_.current_iteration()))
                    raws.setdefault((ev.name, rule), []).append(1.0 / (1.0 + np.exp(-(a * t + b * lin + c))))
                continue
            if kind != "logistic":
                say(f"forward reading: {ev.name} refit on {len(fit_rows):,} rows (fold {fold + 1}/"
                    f"{len(split.forward_fits)}, up to {max(rounds.values())} rounds)")
            model = refit(ev, frame, y, fit_rows, config, features, rounds=max(rounds.values()),
                          scale_pos_weight=scale_pos_weight, source=source, ids=ids)
            enc = model._encode(X_v)
            fits[ev.name] = (model, enc)
            for rule, r in rounds.items():
                z = model.log_odds_encoded(enc, num_iteration=r or None)
                raws.setdefault((ev.name, rule), []).append(1.0 / (1.0 + np.exp(-z)))
    for (name, rule), parts in raws.items():
        read(name, rule, np.concatenate(parts), rounds_of[(name, rule)], y_fv)
    return out


def calibrated(model: ChurnModel, raw: np.ndarray, y: np.ndarray, method: str) -> ChurnModel:
    """`model` calibrated on raw probabilities `raw` of rows it did not see, with outcomes `y`."""
    from churn.training.selection import calibration_method

    return model.calibrate(raw, y, calibration_method(method, len(y)))


def register_procedure(ev: Evaluated, rule: str, frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray,
                       split: Split, config: Config, features: list[Feature], *, scale_pos_weight: float | None,
                       source: dict[str, Any] | None, say: Callable[[str], None]) -> tuple[ChurnModel, dict[str, Any]]:
    """The registered model: the chosen candidate's procedure under `rule` on every row (uncalibrated when
    refit), and what the refit did; an average's members each by their own rule, then averaged."""
    if ev.members:
        fits = [register_procedure(m, r, frame, y, ids, split, config, features, scale_pos_weight=scale_pos_weight,
                                   source=source, say=say) for m, r in ev.members]
        first = fits[0][1]
        return ChurnModel.average_of([m for m, _ in fits], [m.name for m, _ in ev.members]), {
            "rule": MEMBERS_RULE, "rows": first["rows"], "customers": first.get("customers"), "rounds": 0,
            "members": {m.name: info for (m, _), (_, info) in zip(ev.members, fits, strict=True)}}
    every = np.arange(len(y))
    if rule == NO_REFIT:
        return ev.model, {"rule": NO_REFIT, "rows": len(split.train), "rounds": ev.model.best_iteration_}
    fitted, target = Rows.of(ids, split.train), Rows.of(ids, every)
    r = rule_rounds(rule, ev.model.best_iteration_, fitted, target, 2 * config.model.num_boost_round)
    say(f"refit: {ev.name} on all {len(every):,} rows" + (f" ({r} rounds, rule '{rule}')"
                                                           if ev.candidate.kind != "logistic" else ""))
    model = refit(ev, frame, y, every, config, features, rounds=r, scale_pos_weight=scale_pos_weight,
                  source=source, ids=ids)
    return model, {"rule": rule, "rows": len(every), "customers": target.customers,
                   "rounds": r if ev.candidate.kind != "logistic" else 0}


def holdout_procedure(ev: Evaluated, rule: str, frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray,
                      split: Split, config: Config, features: list[Feature], *, scale_pos_weight: float | None,
                      source: dict[str, Any] | None, say: Callable[[str], None]) -> np.ndarray:
    """Uncalibrated P(churn) of the holdout rows from the procedure fitted on the rows before the holdout
    date (every non-holdout customer's); an average's, from its members'."""
    if ev.members:
        return mean_raw([holdout_procedure(m, r, frame, y, ids, split, config, features,
                                           scale_pos_weight=scale_pos_weight, source=source, say=say)
                         for m, r in ev.members])
    if rule == NO_REFIT:
        return ev.p_raw_holdout
    rows = split.before_holdout
    r = rule_rounds(rule, ev.model.best_iteration_, Rows.of(ids, split.train), Rows.of(ids, rows),
                    2 * config.model.num_boost_round)
    say(f"holdout: the procedure refit on the {len(rows):,} rows before the holdout")
    model = refit(ev, frame, y, rows, config, features, rounds=r, scale_pos_weight=scale_pos_weight, source=source,
                  ids=ids)
    return model.predict_raw(frame.iloc[split.holdout])


def out_of_fold_raw(ev: Evaluated, rule: str, frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray, split: Split,
                    config: Config, features: list[Feature], *, rows: np.ndarray, scale_pos_weight: float | None,
                    source: dict[str, Any] | None, say: Callable[[str], None]) -> np.ndarray:
    """Each of `rows`' uncalibrated P(churn) from the procedure under `rule` fitted on the other `rows`
    without that row's customer (`model.calibration_folds` folds by customer, seeded): what calibrates a
    refit that has no later date to be calibrated on. An average's, from its members'."""
    from churn.training.splits import unit_hash

    if ev.members:
        return mean_raw([out_of_fold_raw(m, r, frame, y, ids, split, config, features, rows=rows,
                                         scale_pos_weight=scale_pos_weight, source=source, say=say)
                         for m, r in ev.members])
    k = config.model.calibration_folds
    fold = np.minimum((unit_hash(ids[rows], config.model.seed, "refit-fold") * k).astype(int), k - 1)
    fitted = Rows.of(ids, split.train)
    oof = np.full(len(rows), np.nan)
    for f in range(k):
        held = fold == f
        fit_rows = rows[~held]
        r = rule_rounds(rule, ev.model.best_iteration_, fitted, Rows.of(ids, fit_rows),
                        2 * config.model.num_boost_round)
        say(f"refit: calibration fold {f + 1}/{k} ({len(fit_rows):,} rows)")
        model = refit(ev, frame, y, fit_rows, config, features, rounds=r, scale_pos_weight=scale_pos_weight,
                      source=source, ids=ids)
        oof[held] = model.predict_raw(frame.iloc[rows[held]])
    return oof
