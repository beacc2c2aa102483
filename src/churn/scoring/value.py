"""Customer value: what keeping a customer is worth, in the config's currency.

CLV = average purchase value x purchase frequency x expected lifetime x margin. Written per month:

    value = monthly revenue x ``lifetime_months`` x ``margin``

Monthly revenue comes from one of two bases (``value.method``):

* ``fee``   - the subscription fee: ``monthly_fee`` (purchase value) x 1 purchase a month.
* ``spend`` - what the customer spent over the last ``spend_window_days`` (the feature
  ``spend_<window>d``; else ``avg_order_value x orders_<window>d``; else the longest ``spend_<n>d``
  available), turned into a monthly rate: ``spend / days x 365 / 12``. A customer younger than the window
  (``tenure_days`` known and shorter) is annualised over their tenure instead, floored at 30 days so a
  first big order in week one does not make a millionaire.
* ``auto``  - per customer: the fee when it is known and above zero, else spend. A free plan (fee 0) thus
  falls back to what the customer buys.

Unknown stays unknown only inside: the value returned is never NaN; a customer with neither basis is worth
0 (and so is never offered a paid incentive). Negative revenue (refunds) counts as 0.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from churn.config import ValueConfig

DAYS_PER_MONTH = 365.0 / 12.0
MIN_ANNUALISE_DAYS = 30


def _numeric(scores: pd.DataFrame, column: str) -> pd.Series:
    """A numeric column (text from CSV converted), all-NaN when absent."""
    if column not in scores.columns:
        return pd.Series(np.nan, index=scores.index, dtype=float)
    return pd.to_numeric(scores[column], errors="coerce").astype(float)


def _longest_spend_column(scores: pd.DataFrame, exclude: str) -> tuple[str | None, int]:
    """The longest-window ``spend_<n>d`` column other than `exclude`, and its window in days."""
    found = []
    for c in scores.columns:
        m = re.fullmatch(r"spend_(\d+)d", str(c))
        if m and c != exclude:
            found.append((int(m.group(1)), str(c)))
    if not found:
        return None, 0
    days, col = max(found)
    return col, days


def spend_per_month(scores: pd.DataFrame, config: ValueConfig) -> pd.Series:
    """Monthly spend rate from the spend features (NaN where unknown).

    Source per customer, first known wins: ``spend_<window>d``; ``avg_order_value x orders_<window>d``;
    the longest other ``spend_<n>d`` (annualised over its own window).
    """
    window = int(config.spend_window_days)
    main = f"spend_{window}d"
    spend = _numeric(scores, main)
    spend = spend.fillna(_numeric(scores, "avg_order_value") * _numeric(scores, f"orders_{window}d"))
    days = np.full(len(scores), float(window))
    col, n = _longest_spend_column(scores, exclude=main)
    if col is not None:
        other = _numeric(scores, col)
        use = (spend.isna() & other.notna()).to_numpy()
        spend = spend.where(~use, other)
        days[use] = float(n)
    tenure = _numeric(scores, "tenure_days").to_numpy()
    effective = np.where(np.isnan(tenure), np.inf, np.clip(tenure, MIN_ANNUALISE_DAYS, None))
    effective = np.minimum(effective, days)
    return pd.Series(spend.to_numpy() / effective * DAYS_PER_MONTH, index=scores.index, dtype=float)


def value_parts(scores: pd.DataFrame, config: ValueConfig) -> tuple[pd.Series, pd.Series]:
    """(monthly revenue, basis) per customer: revenue is 0 when unknown, never negative or NaN; basis is
    'fee', 'spend' or 'unknown'.

    The revenue is also the base an incentive's ``cost_share_of_fee`` applies to, so a discount for a
    customer without a subscription is priced on what they spend.
    """
    fee = _numeric(scores, "monthly_fee").to_numpy()
    spend = spend_per_month(scores, config).to_numpy()
    fee_known, spend_known = ~np.isnan(fee), ~np.isnan(spend)
    if config.method == "fee":
        use_fee, use_spend = fee_known, np.zeros(len(fee), dtype=bool)
    elif config.method == "spend":
        use_fee, use_spend = np.zeros(len(fee), dtype=bool), spend_known
    else:
        positive_fee = fee_known & (np.nan_to_num(fee) > 0)
        use_spend = ~positive_fee & spend_known
        use_fee = positive_fee | (fee_known & ~use_spend)
    rev = np.where(use_fee, fee, np.where(use_spend, spend, 0.0))
    rev = np.clip(np.nan_to_num(rev, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    basis = np.where(use_fee, "fee", np.where(use_spend, "spend", "unknown")).astype(object)
    return (
        pd.Series(rev, index=scores.index, name="monthly_revenue"),
        pd.Series(basis, index=scores.index, name="value_basis", dtype=object),
    )


def value_basis(scores: pd.DataFrame, config: ValueConfig) -> pd.Series:
    """Which basis each customer's value uses: 'fee', 'spend' or 'unknown'."""
    return value_parts(scores, config)[1]


def monthly_revenue(scores: pd.DataFrame, config: ValueConfig) -> pd.Series:
    """Monthly revenue per customer on the chosen basis; 0 when unknown, never negative or NaN."""
    return value_parts(scores, config)[0]


def value_from_revenue(revenue: pd.Series, config: ValueConfig) -> pd.Series:
    """CLV from monthly revenue: revenue x lifetime_months x margin (never NaN or negative)."""
    value = revenue * float(config.lifetime_months) * float(config.margin)
    return value.fillna(0.0).clip(lower=0.0).rename("customer_value")


def customer_value(scores: pd.DataFrame, config: ValueConfig) -> pd.Series:
    """CLV per customer: monthly revenue x expected lifetime (months) x margin; 0 when unknown, never NaN."""
    return value_from_revenue(monthly_revenue(scores, config), config)
