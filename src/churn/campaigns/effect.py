"""What a past campaign achieved: its contacted customers against the control group who would have got the
same offer, per risk tier and per incentive, once the run's label window has passed.

Steps (pure functions of in-memory frames; `churn.campaigns.run` reads and writes the files):

1. `plan_rows`: the run's scores (one row per customer, `churn score`'s scores.parquet) checked and reduced to
   the campaign: customers contacted (``contact``) and held out (``holdout``) with the offer they got or would
   have got (``would_be_incentive``, recorded for both by the allocation), their tier, cost and value;
2. `realised_labels` (I/O at the edge: the data source): the churn label at the run's as-of date, the same
   label training learns (`churn.labels`);
3. `measure`: per (tier, incentive) cell, and for every tier and every incentive over the others, the churn of
   both groups, the difference with Newcombe's interval, the two-proportion test, the save rate
   ``1 - churn treated / churn control`` with its MOVER-R interval (`churn.campaigns.stats`), customers saved
   (``treated x (churn control - churn treated)``), cost per saved customer, ROI
   (``(saved x mean value of the treated - cost) / cost``), and what difference the groups could detect at
   80% power;
4. `control_advice`: per tier, the control share the next campaign needs to detect the save rate it assumes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from churn.campaigns import stats
from churn.errors import ChurnError
from churn.yesno import TRUE_WORDS

PLAN_COLUMNS = ("customer_id", "risk_tier", "would_be_incentive", "contact", "holdout")
ALL = "(all)"  # the tier or incentive of a margin: every tier, every incentive


def _flag(values: pd.Series) -> np.ndarray:
    """A yes/no column as booleans (Parquet keeps them boolean; a CSV copy has text)."""
    if pd.api.types.is_bool_dtype(values):
        return values.fillna(False).to_numpy(dtype=bool)
    return values.astype("string").str.strip().str.lower().isin(TRUE_WORDS).fillna(False).to_numpy(dtype=bool)


def plan_rows(scores: pd.DataFrame, source: str = "scores") -> pd.DataFrame:
    """The campaign's customers from a run's scores: contacted or held out with a (would-be) offer.

    Columns: customer_id, tier, incentive, treated (bool), cost, value, probability (the plan's churn
    probability; NaN when the scores have none). Raises ChurnError naming `source`, the
    column and example rows when the scores are not a plan (missing columns, a customer both contacted and
    held out, a contacted customer without an offer)."""
    missing = [c for c in PLAN_COLUMNS if c not in scores.columns]
    if missing:
        raise ChurnError(f"{source}: missing column(s) {missing}: not the scores of a `churn score` run with a "
                         f"retention plan (it has {list(scores.columns)[:15]})")
    contact, holdout = _flag(scores["contact"]), _flag(scores["holdout"])
    ids = scores["customer_id"].astype(str)
    both = contact & holdout
    if both.any():
        rows = [int(r) for r in np.flatnonzero(both)[:3]]
        raise ChurnError(f"{source}: columns 'contact' and 'holdout' are both true in {int(both.sum())} row(s), "
                         f"e.g. rows {rows} (customer_id {', '.join(ids.iloc[rows])})")
    offer = scores["would_be_incentive"].astype("string").str.strip()
    no_offer = contact & offer.isna().to_numpy()
    if no_offer.any():
        rows = [int(r) for r in np.flatnonzero(no_offer)[:3]]
        raise ChurnError(f"{source}: column 'would_be_incentive' is empty for {int(no_offer.sum())} contacted "
                         f"customer(s), e.g. rows {rows} (customer_id {', '.join(ids.iloc[rows])})")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise ChurnError(f"{source}: column 'customer_id' repeats {int(dup.sum())} row(s), e.g. "
                         f"{', '.join(ids[dup].drop_duplicates().head(3))}")
    keep = (contact | holdout) & offer.notna().to_numpy()
    cost = (pd.to_numeric(scores["incentive_cost"], errors="coerce").fillna(0.0)
            if "incentive_cost" in scores.columns else pd.Series(0.0, index=scores.index))
    value = (pd.to_numeric(scores["customer_value"], errors="coerce").fillna(0.0)
             if "customer_value" in scores.columns else pd.Series(np.nan, index=scores.index))
    probability = (pd.to_numeric(scores["churn_probability"], errors="coerce")
                   if "churn_probability" in scores.columns else pd.Series(np.nan, index=scores.index))
    return pd.DataFrame({
        "customer_id": ids[keep].to_numpy(dtype=object),
        "tier": scores.loc[keep, "risk_tier"].astype("string").to_numpy(dtype=object),
        "incentive": offer[keep].to_numpy(dtype=object),
        "treated": contact[keep],
        "cost": cost[keep].to_numpy(dtype=float),
        "value": value[keep].to_numpy(dtype=float),
        "probability": probability[keep].to_numpy(dtype=float),
    })


@dataclass(frozen=True)
class Counts:
    """A (tier, incentive) cell's customers and churners, contacted and held out: what every figure is from."""

    tier: str
    incentive: str
    treated: int
    treated_churned: int
    control: int
    control_churned: int


@dataclass(frozen=True)
class Estimate(Counts):
    """One cell of a campaign: churn of the contacted against the control group, and what it is worth.

    `tier` / `incentive` are ALL for the margins. Rates and differences are NaN where a group is empty; the
    save rate also where the control group churned not at all. `difference` is churn treated - churn
    control (negative: the offer kept customers)."""

    churn_treated: float
    churn_control: float
    difference: float
    difference_low: float
    difference_high: float
    z: float
    p_value: float
    save_rate: float
    save_rate_low: float
    save_rate_high: float
    assumed_save_rate: float | None  # the catalogue's for the cell (None for margins or unknown offers)
    saved: float  # customers kept by the campaign: treated x (churn control - churn treated)
    saved_low: float
    saved_high: float
    cost: float  # what the treated customers' offers and contacts cost
    cost_per_saved: float | None  # None unless customers were saved
    value_saved: float  # saved x the treated customers' mean value
    roi: float | None  # (value saved - cost) / cost; None without cost
    detectable_churn: float  # the highest treated churn these groups detect at 80% power
    detectable_save_rate: float  # 1 - detectable_churn / churn_control
    assumed_detectable: bool | None  # whether the assumed save rate is at least the detectable one
    predicted_churn_treated: float = float("nan")  # the churn model's mean probability for each group: what
    predicted_churn_control: float = float("nan")  # it expected without a contact (a check of the draw, too)


def estimate(tier: str, incentive: str, treated: int, treated_churned: int, control: int, control_churned: int,
             *, cost: float = 0.0, mean_value: float = float("nan"), assumed: float | None = None,
             predicted: tuple[float, float] = (float("nan"), float("nan")), alpha: float = stats.ALPHA) -> Estimate:
    """Every figure of one cell from its four counts, the treated customers' cost and their mean value
    (`predicted`: the churn model's mean probability of the treated and the control customers)."""
    d, lo, hi = stats.newcombe_interval(treated_churned, treated, control_churned, control, alpha)
    z, p = stats.two_proportion_test(treated_churned, treated, control_churned, control)
    r, r_lo, r_hi = stats.ratio_interval(treated_churned, treated, control_churned, control, alpha)
    pt = treated_churned / treated if treated else math.nan
    pc = control_churned / control if control else math.nan
    saved = treated * (pc - pt) if treated and control else math.nan
    value_saved = saved * mean_value if treated and control else math.nan
    detect = stats.detectable_churn(pc, treated, control, alpha=alpha) if treated and control else math.nan
    detect_rate = 1 - detect / pc if pc and not math.isnan(detect) else math.nan
    return Estimate(
        tier, incentive, int(treated), int(treated_churned), int(control), int(control_churned), pt, pc, d, lo, hi,
        z, p, 1 - r, 1 - r_hi, 1 - r_lo, assumed, saved, -treated * hi if control else math.nan,
        -treated * lo if control else math.nan, float(cost), cost / saved if saved and saved > 0 else None,
        value_saved, (value_saved - cost) / cost if cost > 0 and not math.isnan(value_saved) else None,
        detect, detect_rate,
        None if assumed is None or math.isnan(detect_rate) else bool(assumed >= detect_rate),
        float(predicted[0]), float(predicted[1]),
    )


def realised_labels(ds: Any, config: Any, as_of: pd.Timestamp) -> pd.DataFrame:
    """customer_id and churned (0/1) at `as_of` for the customers active then: the label training learns
    (`churn.labels`: cancellation or inactivity within the horizon; which one is in ``attrs["label"]``).
    Raises ChurnError when the label window has not passed in the data yet."""
    from churn.features.engine import _asof_tables
    from churn.labels import create_labels, create_spine, data_range, label_kind
    from churn.timeline import label_complete

    _, end = data_range(ds)
    horizon = config.label.horizon_days
    if not label_complete(as_of, horizon, end):
        raise ChurnError(f"{ds.label}: the label window of the run [{as_of.date()}, "
                         f"{(as_of + pd.Timedelta(days=horizon)).date()}) has not passed: the data ends on "
                         f"{(end - pd.Timedelta(days=1)).date()}. Measure the campaign once it has")
    kind = label_kind(ds, config)
    _asof_tables(ds, [as_of])
    create_spine(ds, config, kind)
    create_labels(ds, config, kind)
    labels = ds.con.execute("SELECT customer_id, churned FROM labels").df()
    labels["customer_id"] = labels["customer_id"].astype(str)
    labels.attrs["label"] = kind
    return labels


def _cell(rows: pd.DataFrame, tier: str, incentive: str, assumed: float | None) -> Estimate:
    t = rows["treated"].to_numpy(dtype=bool)
    y = rows["churned"].to_numpy(dtype=int)
    value = rows.loc[t, "value"]
    p = rows["probability"] if "probability" in rows.columns else pd.Series(np.nan, index=rows.index)
    predicted = (float(p[t].mean()) if t.any() else math.nan, float(p[~t].mean()) if (~t).any() else math.nan)
    return estimate(tier, incentive, int(t.sum()), int(y[t].sum()), int((~t).sum()), int(y[~t].sum()),
                    cost=float(rows.loc[t, "cost"].sum()),
                    mean_value=float(value.mean()) if len(value) else math.nan, assumed=assumed, predicted=predicted)


def measure(campaign: pd.DataFrame, labels: pd.DataFrame,
            assumed: dict[str, dict[str, float]] | None = None) -> tuple[list[Estimate], int]:
    """(estimates, customers without a label): per (tier, incentive) cell in tier then name order, then per
    tier over all incentives, per incentive over all tiers, and the whole campaign (tier and incentive ALL).

    `campaign` is `plan_rows`' frame, `labels` has customer_id and churned, `assumed` the catalogue's save
    rates ({incentive: {tier: rate}}). Customers without a label (gone from the data) are left out and
    counted."""
    assumed = assumed or {}
    rows = campaign.merge(labels[["customer_id", "churned"]], on="customer_id", how="left")
    unlabelled = int(rows["churned"].isna().sum())
    rows = rows[rows["churned"].notna()]
    tiers = list(dict.fromkeys(rows["tier"].tolist()))  # the plan's order (riskiest first in scores)
    out = []
    for (tier, inc), g in sorted(rows.groupby(["tier", "incentive"], sort=False),
                                 key=lambda kv: (tiers.index(kv[0][0]), kv[0][1])):
        out.append(_cell(g, tier, inc, assumed.get(inc, {}).get(tier)))
    for tier in tiers:
        out.append(_cell(rows[rows["tier"] == tier], tier, ALL, None))
    for inc in sorted(rows["incentive"].unique()):
        out.append(_cell(rows[rows["incentive"] == inc], ALL, inc, None))
    if len(rows):
        out.append(_cell(rows, ALL, ALL, None))
    return out, unlabelled


def control_advice(estimates: list[Estimate], assumed: dict[str, dict[str, float]], control_share: float
                   ) -> dict[str, stats.ControlAdvice]:
    """Per tier: the control share the next campaign needs to detect the save rate the catalogue assumes
    there (the mean over the tier's offers, weighted by their treated customers), at the tier's measured
    control churn and campaign size."""
    out = {}
    for e in estimates:
        if e.tier == ALL or e.incentive != ALL:
            continue
        cells = [c for c in estimates if c.tier == e.tier and c.incentive != ALL
                 and c.assumed_save_rate is not None and c.treated]
        if not cells or not e.control or math.isnan(e.churn_control):
            continue
        rate = sum(c.assumed_save_rate * c.treated for c in cells) / sum(c.treated for c in cells)
        out[e.tier] = stats.recommended_control_share(e.treated + e.control, e.churn_control, rate, control_share)
    return out


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None (JSON has no NaN), numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class CampaignEffect:
    """A measured campaign: the run it was planned in, the label it was read with, the estimates per cell
    and margin, and the advice on control shares. `to_dict()` is campaign_effect.json."""

    run: str
    as_of: str
    horizon_days: int
    label: str
    currency: str
    control_share: float
    customers: int  # in the campaign (contacted or held out with an offer) and labelled
    unlabelled: int  # in the campaign but no longer in the data at the run's date
    estimates: list[Estimate] = field(default_factory=list)
    advice: dict[str, stats.ControlAdvice] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    def cell(self, tier: str, incentive: str) -> Estimate | None:
        """The estimate of one cell or margin (ALL for every tier / incentive), if measured."""
        return next((e for e in self.estimates if e.tier == tier and e.incentive == incentive), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (NaN written as null)."""
        return _clean(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CampaignEffect:
        """Read campaign_effect.json back (null read as NaN where a number is expected)."""
        nums = {f.name for f in fields(Estimate) if f.type == "float"}
        est = [Estimate(**{k: (math.nan if k in nums and v is None else v) for k, v in e.items()})
               for e in d.get("estimates", [])]
        advice = {k: stats.ControlAdvice(**v) for k, v in (d.get("advice") or {}).items()}
        return cls(**{**d, "estimates": est, "advice": advice})
