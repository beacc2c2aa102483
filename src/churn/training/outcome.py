"""What a training run decided and measured, in one typed value: the steps of `churn.training.train`
produce it, and the MLflow logging (`churn.training.run_log`) and the run's metadata read it, never
recomputing anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.features.registry import Feature
from churn.training.leakage import Leak
from churn.training.model import ChurnModel
from churn.training.procedure import Reading
from churn.training.selection import Choice, Evaluated
from churn.training.splits import Split


@dataclass
class Keys:
    """The training frame's key columns."""

    id_col: str
    time_col: str | None  # None when the frame has no time column
    label_col: str


@dataclass
class Outcome:
    """Everything a training run decided and measured (see the module docstring)."""

    config: Config
    keys: Keys
    features: list[Feature]  # after the leakage guard
    clean: pd.DataFrame = field(repr=False)  # every row's features as the model reads them
    frame: pd.DataFrame = field(repr=False)
    y: np.ndarray = field(repr=False)
    split: Split = field(repr=False)
    evaluated: list[Evaluated]
    readings: list[Reading]
    choice: Choice
    model: ChurnModel  # the registered model
    refit: dict[str, Any]
    leaks: list[Leak]
    kept_leaks: list[str]
    scale_pos_weight: float | None
    n_pos: int
    n_neg: int
    p_holdout: np.ndarray = field(repr=False)  # the registered procedure's, calibrated
    p_raw_holdout: np.ndarray = field(repr=False)
    metrics: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> holdout metrics (+ notes)
    baseline_scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    beaten: dict[str, Any] = field(default_factory=dict)
    chance: dict[str, Any] = field(default_factory=dict)
    curve: pd.DataFrame | None = field(default=None, repr=False)
    value_source: str = ""
    economics: Any = None
    tuned: dict[str, Any] | None = None
    tune_trials: int = 0
    tune_minutes: float | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    extra_metadata: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def y_holdout(self) -> np.ndarray:
        return self.y[self.split.holdout]

    @property
    def chosen(self) -> Evaluated:
        return self.choice.evaluated

    def candidates_table(self) -> dict[str, dict[str, float]]:
        """Per candidate: its forward reading (the best rule's), validation ROC AUC and the evaluation fit's
        holdout metrics."""
        from churn.training.selection import best_rule

        rows = [(e, best_rule(self.readings, e.name) if any(r.candidate == e.name for r in self.readings) else None)
                for e in self.evaluated]
        if self.chosen.members:  # the average of tied candidates: chosen, though not a candidate fitted alone
            rows.append((self.chosen, self.choice.reading))
        return {e.name: {**e.holdout, "valid_roc_auc": e.valid["roc_auc"],
                         "forward_roc_auc": best.roc_auc if best else float("nan"),
                         **({"forward_rule": best.rule} if best else {})} for e, best in rows}
