"""The average of the candidates the forward reading cannot tell apart (`model.average_ties`).

On small data (a few hundred churners at the forward dates) the readings of several candidates sit within
one standard error of each other: which of them leads is noise, and the candidate that reads best, or the
simplest of the tied ones, is often not the one that does best at a later date (benchmarks/RESULTS.md,
issue 20). Averaging models that read alike keeps what each gets right and halves what is noise in any
one of them, so the registered model is the mean log-odds of the candidates not significantly worse than the
best (`Choice.pool`: the tied ones and those within two standard errors of the paired difference), each
refit by the rule its own reading chose (`churn.training.procedure`), calibrated on the average of their
forward readings.

Only candidates on the full feature list join (BG/NBD alone reads one feature); with fewer than two, when
the best tied reading is one that cannot join, or when the average reads below every member, the choice
stands as `choose` made it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.training.metrics import holdout_metrics, ranking_metrics
from churn.training.model import ChurnModel
from churn.training.procedure import MEMBERS_RULE, Reading, mean_raw
from churn.training.selection import Candidate, Choice, Evaluated, best_rule, calibration_method
from churn.training.splits import Split

AVERAGE = "average"


def averaged(choice: Choice, evaluated: list[Evaluated], readings: list[Reading], frame: pd.DataFrame,
             y: np.ndarray, split: Split, calibration: str) -> Choice:
    """The average of `choice.pool` (or `choice.tied` when no pool was read; module docstring), or `choice`
    itself when it does not apply: not a forward reading, fewer than two pooled candidates on the full
    feature list, the best reading among them one that cannot join (BG/NBD alone), or an average that reads
    below every one of its members (then averaging lost what they agree on). `frame` and `y` are every
    row's (the forward, calibration, validation and holdout rows are read); `calibration` the configured
    method (`model.calibration`)."""
    by_name = {e.name: e for e in evaluated}
    best = {n: best_rule(readings, n) for n in (choice.pool or choice.tied) if n in by_name}
    names = [n for n in best if by_name[n].candidate.features is None]
    if len(names) < 2 or not choice.forward or max(best.values(), key=lambda r: r.roc_auc).candidate not in names:
        return choice
    members = [(by_name[n], best[n]) for n in names]
    raw = mean_raw([r.raw for _, r in members])
    m = ranking_metrics(y[split.forward_valid], raw)
    if m["roc_auc"] < min(r.roc_auc for _, r in members):
        return choice
    reading = Reading(AVERAGE, MEMBERS_RULE, m["roc_auc"], m["pr_auc"], 0, raw)
    # The evaluation fits' average, calibrated on the calibration rows as each candidate's evaluation fit is
    # (its holdout row in the candidates table is for information; the registered average is calibrated on
    # its forward reading).
    model = ChurnModel.average_of([e.model for e, _ in members], names)
    cal = split.calibration
    model.calibrate(model.predict_raw(frame.iloc[cal]), y[cal], calibration_method(calibration, len(cal)))
    p_raw_valid = mean_raw([e.p_raw_valid for e, _ in members]) if all(
        e.p_raw_valid is not None for e, _ in members) else None
    valid = ranking_metrics(y[split.validation], p_raw_valid) if p_raw_valid is not None else \
        {"roc_auc": float("nan"), "pr_auc": float("nan")}
    p_raw_ho = mean_raw([e.p_raw_holdout for e, _ in members])
    p_ho = model.calibrator_.predict(p_raw_ho)
    cand = Candidate(AVERAGE, "average", {}, "the mean log-odds of " + ", ".join(names), parts=tuple(names))
    ev = Evaluated(cand, model, valid, holdout_metrics(y[split.holdout], p_ho, p_raw_ho), p_ho, p_raw_ho,
                   p_raw_valid, members=tuple((e, r.rule) for e, r in members))
    rules = ", ".join(f"{e.name} ({r.rule})" for e, r in members)
    why = (f"the average of {rules}: their readings are not significantly worse than the best, too close to "
           f"choose between (the average reads {reading.roc_auc:.4f}); {choice.readings_text}")
    linear_won = all(e.candidate.kind == "logistic" for e, _ in members) and any(
        e.candidate.kind != "logistic" for e in evaluated)
    if linear_won:
        why = f"NO CANDIDATE WITH LIGHTGBM BEATS THE LOGISTIC REGRESSIONS: {why}"
    return Choice(ev, MEMBERS_RULE, why, reading, linear_won, choice.forward, choice.tied, choice.readings_text,
                  choice.pool)
