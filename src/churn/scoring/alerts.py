"""Risk alerts: customers whose churn risk rose sharply, or who moved into a riskier tier, since the last run.

A pure step: two scored frames in (this run and the previous one), one alert frame out. Customers are
matched on `customer_id`; customers new in this run (no previous score) or gone since are not alerts.
"""

from __future__ import annotations

import pandas as pd

from churn.errors import ChurnError
from churn.scoring.plan_columns import check_columns, texts_or_none, tier_order

ALERT_COLUMNS = [
    "customer_id",
    "previous_probability",
    "current_probability",
    "probability_rise",
    "previous_tier",
    "current_tier",
    "risk_rose",
    "moved_up_tier",
    "why",
]
# Carried over from the current run when present, so an alert can be acted on without another join.
CONTEXT_COLUMNS = ["name", "email", "channel", "customer_value", "expected_loss", "reason_1"]
_REQUIRED = ("customer_id", "churn_probability", "risk_tier")


def empty_alerts(context: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
    """The alert frame with its columns (and `context` columns) and no rows."""
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "previous_probability": pd.Series(dtype=float),
            "current_probability": pd.Series(dtype=float),
            "probability_rise": pd.Series(dtype=float),
            "previous_tier": pd.Series(dtype=object),
            "current_tier": pd.Series(dtype=object),
            "risk_rose": pd.Series(dtype=bool),
            "moved_up_tier": pd.Series(dtype=bool),
            "why": pd.Series(dtype=object),
        }
    )
    for col in context:
        frame[col] = pd.Series(dtype=object)
    return frame


def _scores(frame: pd.DataFrame, which: str) -> pd.DataFrame:
    check_columns(frame, _REQUIRED, f"alerts ({which} run)")
    ids = texts_or_none(frame["customer_id"])
    if ids.isna().any():
        raise ChurnError(f"alerts ({which} run): column 'customer_id' has empty values")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ChurnError(
            f"alerts ({which} run): column 'customer_id' is not unique ({dup.nunique():,} ids repeat), "
            f"e.g. {dup.unique()[:5].tolist()}"
        )
    return pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "probability": pd.to_numeric(frame["churn_probability"], errors="coerce")
            .astype(float)
            .to_numpy(),
            "tier": texts_or_none(frame["risk_tier"]).to_numpy(),
        }
    )


def _why(row: pd.Series) -> str:
    parts = []
    if row["risk_rose"]:
        points = round(row["probability_rise"] * 100)
        parts.append(
            f"risk rose by {points} points ({row['previous_probability']:.0%} to {row['current_probability']:.0%})"
        )
    if row["moved_up_tier"]:
        parts.append(f"moved from {row['previous_tier']} to {row['current_tier']}")
    return "; ".join(parts)


def compute_alerts(
    current: pd.DataFrame, previous: pd.DataFrame | None, *, probability_rise: float
) -> pd.DataFrame:
    """Customers whose risk rose by more than `probability_rise` or who crossed into a higher tier since the previous run.

    `probability_rise` is in probability units (0.15 = 15 percentage points) and must lie in [0, 1].
    Tiers are ranked by the current run's ordered `risk_tier` categories (riskiest first); a previous tier
    the current run does not know (the tier config changed) never counts as a tier move.

    Returns one row per alert with ALERT_COLUMNS (plus name, email, channel, customer_value,
    expected_loss and reason_1 when the current run has them), largest rise first, then by customer id.
    `why` says it in words: "risk rose by 18 points (22% to 40%); moved from high to critical".
    Rises are compared in whole basis points, so a rise of exactly the threshold is not an alert.
    An empty frame with those columns when there is no previous run or nothing to report.
    """
    if not 0.0 <= float(probability_rise) <= 1.0:
        raise ChurnError(f"alerts: probability_rise must be between 0 and 1, got {probability_rise}")
    cur = _scores(current, "current")
    extra = [c for c in CONTEXT_COLUMNS if c in current.columns]
    if previous is None or len(previous) == 0:
        return empty_alerts(extra)
    prev = _scores(previous, "previous")

    order = tier_order(current["risk_tier"], current["churn_probability"])
    rank = {t: i for i, t in enumerate(order)}  # 0 = riskiest

    both = cur.merge(prev, on="customer_id", how="inner", suffixes=("_cur", "_prev"), validate="one_to_one")
    out = pd.DataFrame(
        {
            "customer_id": both["customer_id"],
            "previous_probability": both["probability_prev"],
            "current_probability": both["probability_cur"],
            "probability_rise": both["probability_cur"] - both["probability_prev"],
            "previous_tier": both["tier_prev"],
            "current_tier": both["tier_cur"],
        }
    )
    rank_cur = out["current_tier"].map(rank).astype(float)
    rank_prev = out["previous_tier"].map(rank).astype(float)
    # Compare in whole basis points so 0.45 - 0.30 counts as a rise of exactly 0.15 (not 0.1500000001).
    rise_bp = (out["probability_rise"] * 10_000).round()
    out["risk_rose"] = (rise_bp > round(float(probability_rise) * 10_000)).fillna(False).astype(bool)
    out["moved_up_tier"] = (rank_cur < rank_prev).fillna(False).astype(bool)
    out = out[out["risk_rose"] | out["moved_up_tier"]]
    if out.empty:
        return empty_alerts(extra)
    out = out.assign(why=out.apply(_why, axis=1).astype(object))
    out = out.sort_values(["probability_rise", "customer_id"], ascending=[False, True], kind="mergesort")
    out = out.reset_index(drop=True)[ALERT_COLUMNS]

    if extra:
        ctx = current[extra].copy()
        ctx.insert(0, "customer_id", texts_or_none(current["customer_id"]).to_numpy())
        out = out.merge(ctx, on="customer_id", how="left", validate="one_to_one")
    return out
