"""Feedback: what customers said in surveys (NPS 0-10 or CSAT 1-5)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.config import Config
from churn.features.context import Ctx, epoch_us, list_per_customer, per_date_columns, scaled_int
from churn.features.registry import Feature

FAMILY = "feedback"


def score_scale(ctx: Ctx) -> tuple[float, float]:
    """(detractor_max, scale_max): NPS when any score exceeds 5, else CSAT; config overrides."""
    if ctx.survey_scale is not None:  # frozen for the whole data (a bucket's own surveys must not decide it)
        return ctx.survey_scale
    # The scale is a property of the survey instrument, not of any customer, so reading it from the whole
    # table leaks nothing about anyone's future.
    return scale_of(ctx.ds.con.execute("SELECT max(score) FROM surveys").fetchone()[0], ctx.config)


def scale_of(top: float | None, config: Config) -> tuple[float, float]:
    """`score_scale` given the highest score in the surveys (None: no score)."""
    cfg = config.features.feedback
    top = top or 10
    nps = top > 5
    detractor = cfg.detractor_max if cfg.detractor_max is not None else (6.0 if nps else 2.0)
    return detractor, (10.0 if nps else 5.0)


def declare(ctx: Ctx) -> list[Feature]:
    """The feedback features."""
    _, top = score_scale(ctx)
    return [
        Feature("survey_last_score", FAMILY, f"score given in the last survey (0-{top:.0f})",
                reason=f"last survey score {{value:.0f}} out of {top:.0f}"),
        Feature("survey_mean_score", FAMILY, "average survey score", reason="average survey score {value:.1f}"),
        Feature("survey_score_trend", FAMILY, "last survey score minus the average of earlier ones",
                reason="survey score {value:+.1f} points vs earlier answers"),
        Feature("survey_detractor", FAMILY, "1 if the last survey answer was a detractor score",
                reason="answered the last survey as a detractor"),
        Feature("days_since_last_survey", FAMILY, "days since the last survey answer",
                reason="0: gave feedback today || last gave feedback {value:.0f day|days} ago"),
        Feature("surveys_365d", FAMILY, "survey answers in the last 365 days", 365,
                reason="0: no survey answers in the last year || "
                       "{value:.0f survey answer|survey answers} in the last year"),
    ]


def build(ctx: Ctx) -> None:
    """List each customer's answers once (DuckDB) and declare the per-date columns of the compiled pass over
    them (`feedback_kernel`)."""
    # Here, not at the top: numba takes ~1 s to import and load; the engine starts that in the background.
    from churn.features import feedback_kernel as fk

    detractor, _ = score_scale(ctx)
    rows, offsets, (answered, score) = list_per_customer(ctx, "surveys", "answered_at", {
        "t": "epoch_us(answered_at)", "s": f"coalesce({scaled_int('score', fk.DIGITS)}, {fk.NO_SCORE})"})

    def columns(when: pd.Timestamp, rows: np.ndarray) -> dict[str, np.ndarray]:
        """One date's columns from the pass, for these list rows."""
        return fk.compute(offsets, answered, score, epoch_us(when), detractor, rows)

    per_date_columns(ctx, rows, columns)
    ctx.zero_fill.add("surveys_365d")
