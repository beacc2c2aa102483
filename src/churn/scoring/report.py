"""The marketing report: one self-contained HTML file a non-technical reader understands.

`report_context` turns the retention plan, its summary and the run metadata into plain numbers and tables
(pure); `render_report` draws the charts (matplotlib, PNG, embedded as base64 data URIs) and fills the
Jinja2 template (autoescaped: every value from the data is escaped); `write_report` writes it atomically.
The numbers live in `churn.scoring.report_context`, the charts in `churn.scoring.report_charts`.
The page needs no network and no JavaScript. Identical inputs give an identical file; the only moving
part is `meta["generated_at"]`, shown only when the caller passes it.

Optional plan columns (region, plan, name, expected_loss, customer_value, incentive_cost ...) only add
sections or figures: when one is missing, the report says so instead of failing.

The summary is the plan's `PlanSummary` (optional: without one the report says no budget was set and
counts incentives from the plan): budget, budget used, currency, expected saved value, per-incentive results
and missing translations are read from its attributes. No-contact reasons and control group sizes are
counted from the plan itself, and so are the customers by `status` (scored, or why not; a plan without
the column counts every row as scored) and the win-back list (`win_back`). Tiers, shares at risk and the
region and plan breakdowns count the scored customers only. Meta keys: model_version, as_of, data_source
(or source), generated_at, warnings (shown first, under "Read this first").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.io import write_text
from churn.scoring.report_charts import chart_incentives, chart_risk_distribution, chart_tiers
from churn.scoring.report_context import report_context
from churn.scoring.summary import PlanSummary

__all__ = ["TEMPLATE_DIR", "TEMPLATE_NAME", "render_report", "report_context", "write_report"]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_NAME = "report.html.j2"


def render_report(ctx: dict[str, Any]) -> str:
    """The report as one HTML string: charts drawn and embedded, template filled and escaped."""
    charts = {"risk": chart_risk_distribution(ctx)}
    if ctx["tiers"]:
        charts["tiers"] = chart_tiers(ctx)
    if any(r["cost"] or r["saved"] for r in ctx["incentives"]):
        charts["incentives"] = chart_incentives(ctx)
    public = {k: v for k, v in ctx.items() if not k.startswith("_")}
    return _environment().get_template(TEMPLATE_NAME).render(**public, charts=charts)


@functools.cache
def _environment() -> Environment:
    """One Jinja environment per process (a cache: it holds no state of a report), so the template is compiled
    once rather than for every report; Jinja reloads it if the file changes."""
    return Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def write_report(
    plan: pd.DataFrame, summary: PlanSummary | None, meta: dict, path: Path, *, overwrite: bool = False,
    features: Sequence[Feature] = (), health: dict[str, Any] | None = None,
) -> Path:
    """A self-contained report.html a non-technical reader understands; `health` (a run's model health,
    `churn.monitoring.health.RunHealth.report()`) adds the "Model health" section.

    Refuses to replace an existing file unless `overwrite=True`; written to a temporary file and renamed.
    """
    path = Path(path)
    if path.exists() and not overwrite:  # refuse before the work, not after it
        raise ChurnError(f"{path} already exists; pass --overwrite to replace it")
    html = render_report({**report_context(plan, summary, meta, features), "health": health})
    return write_text(html, Path(path), overwrite=overwrite)
