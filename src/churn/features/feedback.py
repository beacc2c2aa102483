"""Feedback: what customers said in surveys (NPS 0-10 or CSAT 1-5)."""

from __future__ import annotations

from churn.features.context import Ctx, days_since, in_last, per_date, window
from churn.features.registry import Feature

FAMILY = "feedback"


def score_scale(ctx: Ctx) -> tuple[float, float]:
    """(detractor_max, scale_max): NPS when any score exceeds 5, else CSAT; config overrides."""
    cfg = ctx.config.features.feedback
    # The scale is a property of the survey instrument, not of any customer, so reading it from the whole
    # table leaks nothing about anyone's future.
    top = ctx.ds.con.execute("SELECT max(score) FROM surveys").fetchone()[0] or 10
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
                reason="last gave feedback {value:.0f} days ago"),
        Feature("surveys_365d", FAMILY, "survey answers in the last 365 days", 365,
                reason="{value:.0f} survey answers in the last year"),
    ]


def build(ctx: Ctx) -> list[str]:
    """Create temp relation `f_feedback` (one pass over the answers before each as_of); return its name."""
    detractor, _ = score_scale(ctx)

    def select(as_of: str) -> str:
        # Two answers at the same instant: the higher score counts as the last (never the file's row order).
        agg = (f"SELECT t.customer_id, {as_of} AS as_of, max(t.answered_at) AS last_at, "
               "arg_max(t.score, (t.answered_at, t.score)) AS survey_last_score, count(t.score) AS n, "
               f"sum(t.score) AS total, count(*) FILTER (WHERE {in_last(365)}) AS surveys_365d "
               f"FROM {window('surveys', 'answered_at', None, as_of)} t GROUP BY t.customer_id")
        return ("SELECT c.customer_id, c.as_of, c.survey_last_score, c.total / nullif(c.n, 0) AS survey_mean_score, "
                "CASE WHEN c.n >= 2 THEN c.survey_last_score - (c.total - c.survey_last_score) / (c.n - 1) END "
                "AS survey_score_trend, "
                f"CAST(c.survey_last_score <= {detractor} AS INTEGER) AS survey_detractor, "
                f"{days_since('c.last_at', 'c.as_of')} AS days_since_last_survey, c.surveys_365d FROM ({agg}) c")

    per_date(ctx, "f_feedback", select)
    ctx.zero_fill.add("surveys_365d")
    return ["f_feedback"]
