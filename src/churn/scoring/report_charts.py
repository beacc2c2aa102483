"""The report's charts, drawn with matplotlib from the report context (`report_context`) and returned as PNG
data URIs (no timestamp or software tag, so identical inputs give identical images); and the tier colours,
red for the riskiest tier through to green for the safest.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from churn.scoring.plan_columns import NO_INCENTIVE

_TIER_RAMP = LinearSegmentedColormap.from_list("tiers", ["#b2182b", "#ef8a3c", "#f2c14e", "#4d9221"])


def tier_colours(tiers: list[str]) -> dict[str, str]:
    """Red for the riskiest tier through orange and yellow to green for the safest."""
    n = len(tiers)
    return {t: to_hex(_TIER_RAMP(i / (n - 1) if n > 1 else 0.0)) for i, t in enumerate(tiers)}


# ------------------------------------------------------------------------------------------ charts
def _png(fig: Figure) -> str:
    """A figure as a PNG data URI (no timestamp or software tag in the file, so output is reproducible)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=9)


def chart_risk_distribution(ctx: dict[str, Any]) -> str:
    """Histogram of churn probabilities, stacked by risk tier."""
    fig = Figure(figsize=(8.5, 3.4), layout="tight")
    ax = fig.add_subplot()
    bins = np.linspace(0.0, 1.0, 21)
    p, tier_of = ctx["_probabilities"], ctx["_tier_of"]
    data, labels, colours = [], [], []
    for row in ctx["tiers"]:
        vals = p[(tier_of == row["tier"]) & ~np.isnan(p)]
        data.append(np.clip(vals, 0.0, 1.0))
        labels.append(f"{row['tier']} ({row['customers']:,})")
        colours.append(row["colour"])
    if data:
        ax.hist(data, bins=bins, stacked=True, color=colours, label=labels, edgecolor="white", linewidth=0.5)
        ax.legend(title="Risk tier", fontsize=8, title_fontsize=9, frameon=False)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlim(0, 1)
    ax.set_xlabel("Chance of leaving (churn probability)")
    ax.set_ylabel("Customers")
    _style(ax)
    return _png(fig)


def chart_tiers(ctx: dict[str, Any]) -> str:
    """Customers per tier, and expected revenue at risk per tier when customer value is known."""
    rows = ctx["tiers"][::-1]  # riskiest on top
    names = [r["tier"] for r in rows]
    colours = [r["colour"] for r in rows]
    panels = 2 if ctx["has_loss"] else 1
    fig = Figure(figsize=(8.5, 0.5 * len(rows) + 1.3), layout="tight")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    counts = [r["customers"] for r in rows]
    bars = ax.barh(names, counts, color=colours)
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=8)
    ax.set_title("Customers", fontsize=10)
    ax.set_xlim(0, max(counts + [1]) * 1.2)
    _style(ax)
    if panels == 2:
        ax2 = axes[1]
        money = ctx["money"]
        losses = [r["loss"] or 0.0 for r in rows]
        bars = ax2.barh(names, losses, color=colours)
        ax2.bar_label(bars, labels=[money(v) for v in losses], padding=3, fontsize=8)
        ax2.set_title(f"Expected revenue at risk ({ctx['currency']})", fontsize=10)
        ax2.set_xlim(0, max(losses + [1.0]) * 1.3)
        ax2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        _style(ax2)
    return _png(fig)


def chart_incentives(ctx: dict[str, Any]) -> str:
    """Cost per incentive next to the value it is expected to save."""
    rows = [r for r in ctx["incentives"] if r["name"] != NO_INCENTIVE or r["cost"]][::-1]
    names = [r["name"] for r in rows]
    y = np.arange(len(rows))
    fig = Figure(figsize=(8.5, 0.55 * len(rows) + 1.4), layout="tight")
    ax = fig.add_subplot()
    cost = [r["cost"] or 0.0 for r in rows]
    saved = [r["saved"] or 0.0 for r in rows]
    h = 0.38
    ax.barh(y + h / 2, cost, height=h, color="#6c8ebf", label="Cost of the offers")
    if any(r["saved"] is not None for r in rows):
        ax.barh(y - h / 2, saved, height=h, color="#4d9221", label="Expected value saved")
    ax.set_yticks(y, names)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel(ctx["currency"])
    ax.legend(fontsize=8, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2)
    _style(ax)
    return _png(fig)
