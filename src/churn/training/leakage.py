"""The leakage guard: a column that alone ranks the label almost perfectly was probably computed from it.

Real exports carry such columns (a "Naive_Bayes_Classifier_Attrition_Flag..." score, a cancellation reason
filled only for churners, a closing date). A model trained with them scores 1.0 on every holdout and is
useless on the day it meets customers whose label is not yet known. Before training, every feature column
is read on its own against the label on the training rows:

- numbers: the ROC AUC of the values (missing values ranked as one group below every value), in either
  direction (1 - AUC as well);
- categories: the ROC AUC of each level's churn rate, out of fold (five folds by customer, so a level seen
  once does not explain its own row);
- missingness: the ROC AUC of "is missing" (a column filled exactly where the label is one value).

A column at or above `LEAK_AUC` (0.98) is dropped with a loud notice naming it and the figure, unless the
user keeps it (`--keep-column`, `model.keep_columns`). After training, a holdout ROC AUC at or above
`SUSPECT_AUC` (0.99) is reported as probably leaking too: a combination of columns can leak where none
does alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.features.registry import Feature
from churn.training.splits import unit_hash

LEAK_AUC = 0.98
SUSPECT_AUC = 0.99
MAX_ROWS = 200_000  # the guard reads a seeded sample of the training rows: a ranking needs no more


@dataclass(frozen=True)
class Leak:
    """A column that alone ranks the label: its ROC AUC (either direction) and what was read."""

    column: str
    auc: float
    how: str  # "values" | "missing values" | "levels"

    def describe(self) -> str:
        what = {"values": "its values", "missing values": "where it is missing",
                "levels": "its levels' churn rates"}[self.how]
        return f"'{self.column}' ({what} rank the label with ROC AUC {self.auc:.4f})"


def rank_auc(score: np.ndarray, y: np.ndarray) -> float:
    """ROC AUC of `score` for labels `y` (ties count half), by ranks: exact and O(n log n)."""
    y = np.asarray(y).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _either_way(auc: float) -> float:
    return max(auc, 1.0 - auc) if auc == auc else float("nan")


def _levels_auc(text: np.ndarray, y: np.ndarray, ids: np.ndarray, seed: int) -> float:
    """Out-of-fold churn rate of each row's level (folds by customer), then its ROC AUC."""
    fold = np.minimum((unit_hash(ids, seed, "leak-fold") * 5).astype(int), 4)
    level = pd.Series(text, dtype=object).fillna("\0missing")
    prior = float(y.mean())
    encoded = np.full(len(y), prior)
    frame = pd.DataFrame({"level": level.to_numpy(), "y": y, "fold": fold})
    for k in range(5):
        inside = frame["fold"].to_numpy() == k
        rates = frame[~inside].groupby("level")["y"].agg(["sum", "count"])
        # Shrunk towards the overall rate, so a level seen a few times is not read as 0% or 100%.
        smoothed = (rates["sum"] + 10 * prior) / (rates["count"] + 10)
        encoded[inside] = frame.loc[inside, "level"].map(smoothed).fillna(prior).to_numpy()
    return rank_auc(encoded, y)


def find_leaks(clean: pd.DataFrame, y: np.ndarray, ids: np.ndarray, features: list[Feature], *, seed: int,
               threshold: float = LEAK_AUC) -> list[Leak]:
    """The feature columns of `clean` (read as the model reads them) that alone rank `y` with ROC AUC at or
    above `threshold`, in either direction, the strongest first."""
    rows = np.arange(len(y))
    if len(rows) > MAX_ROWS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_ROWS, replace=False))
    y = np.asarray(y)[rows]
    if len(np.unique(y)) < 2:
        return []
    ids = np.asarray(ids, dtype=object)[rows]
    out: list[Leak] = []
    for f in features:
        col = clean[f.name].to_numpy()[rows]
        if f.kind == "categorical":
            auc, how = _either_way(_levels_auc(col, y, ids, seed)), "levels"
            missing = pd.isna(col)
        else:
            x = col.astype("float64")
            missing = np.isnan(x)
            filled = np.where(missing, np.nanmin(x) - 1.0 if (~missing).any() else 0.0, x)
            auc, how = _either_way(rank_auc(filled, y)), "values"
        if missing.any() and not missing.all():
            m_auc = _either_way(rank_auc(missing.astype(float), y))
            if m_auc > auc:
                auc, how = m_auc, "missing values"
        if auc == auc and auc >= threshold:
            out.append(Leak(f.name, float(auc), how))
    return sorted(out, key=lambda leak: -leak.auc)


def leak_notice(leaks: list[Leak], kept: list[str]) -> str:
    """The loud notice for the columns dropped (and those kept on the user's word)."""
    dropped = [lk for lk in leaks if lk.column not in kept]
    parts = []
    if dropped:
        parts.append(f"LIKELY LEAK OF THE LABEL: {len(dropped)} column(s) dropped, each alone ranks churn almost "
                     "perfectly, so it was probably computed from the outcome: "
                     + "; ".join(lk.describe() for lk in dropped)
                     + ". If a column is known before the outcome, keep it with --keep-column")
    held = [lk for lk in leaks if lk.column in kept]
    if held:
        parts.append("kept on your word although each alone ranks churn almost perfectly: "
                     + "; ".join(lk.describe() for lk in held))
    return ". ".join(parts)
