"""The average of the candidates the forward reading cannot tell apart (`model.average_ties`).

On small data (a few hundred churners at the forward dates) the readings of several candidates sit within
one standard error of each other: which of them leads is noise, and the candidate that reads best, or the
simplest of the tied ones, is often not the one that does best at a later date (benchmarks/RESULTS.md,
issue 20). Averaging models that read alike keeps what each gets right and halves what is noise in any
one of them, so the registered model is the mean log-odds of the tied candidates, each refit by the rule its
own reading chose (`churn.training.procedure`), calibrated on the average of their forward readings.

Only candidates on the full feature list join (BG/NBD alone reads one feature); with fewer than two, the
choice stands as `choose` made it.
"""

from __future__ import annotations

import numpy as np

from churn.training.metrics import holdout_metrics, ranking_metrics
from churn.training.model import ChurnModel
from churn.training.procedure import MEMBERS_RULE, Reading, mean_raw
from churn.training.selection import Candidate, Choice, Evaluated, best_rule
from churn.training.splits import Split

AVERAGE = "average"


def averaged(choice: Choice, evaluated: list[Evaluated], readings: list[Reading], y: np.ndarray, split: Split,
             ) -> Choice:
    """The average of `choice.tied` (module docstring), or `choice` itself when fewer than two of them can
    join. `y` is every row's label (the forward rows', validation's and holdout's are read)."""
    by_name = {e.name: e for e in evaluated}
    names = [n for n in choice.tied if n in by_name and by_name[n].candidate.features is None
             and by_name[n].candidate.kind != AVERAGE]
    if len(names) < 2 or not choice.forward:
        return choice
    members = [(by_name[n], best_rule(readings, n)) for n in names]
    raw = mean_raw([r.raw for _, r in members])
    m = ranking_metrics(y[split.forward_valid], raw)
    reading = Reading(AVERAGE, MEMBERS_RULE, m["roc_auc"], m["pr_auc"], 0, raw)
    p_raw_valid = mean_raw([e.p_raw_valid for e, _ in members]) if all(
        e.p_raw_valid is not None for e, _ in members) else None
    valid = ranking_metrics(y[split.validation], p_raw_valid) if p_raw_valid is not None else \
        {"roc_auc": float("nan"), "pr_auc": float("nan")}
    p_raw_ho = mean_raw([e.p_raw_holdout for e, _ in members])
    # The evaluation fits' average is for information only (the registered average is calibrated on its
    # forward reading): its holdout figures are of its uncalibrated probabilities.
    holdout = holdout_metrics(y[split.holdout], p_raw_ho, p_raw_ho)
    cand = Candidate(AVERAGE, "average", {}, "the mean log-odds of " + ", ".join(names), parts=tuple(names))
    ev = Evaluated(cand, ChurnModel.average_of([e.model for e, _ in members]), valid, holdout, p_raw_ho, p_raw_ho,
                   p_raw_valid, members=tuple((e, r.rule) for e, r in members))
    rules = ", ".join(f"{e.name} ({r.rule})" for e, r in members)
    why = (f"the average of {rules}: their readings are within the margin of the best, too close to choose "
           f"between (the average reads {reading.roc_auc:.4f}); {choice.readings_text}")
    linear = all(e.candidate.kind == "logistic" for e, _ in members)
    return Choice(ev, MEMBERS_RULE, why, reading, linear and any(e.candidate.kind != "logistic" for e in evaluated),
                  choice.forward, choice.tied)
