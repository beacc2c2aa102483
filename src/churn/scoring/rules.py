"""Who may get which offer: the contact rules applied before any incentive is allocated (exclusions, consent,
cool-down), then each incentive's own eligibility rules.

Each blocked customer gets one plain-language reason, checked in this order (the first that applies):

1. ``excluded``                - the customer id is on the exclusion list (a table with ``customer_id``);
2. ``no marketing consent``    - ``marketing_consent`` is not true. Unknown (null, or no such column at
   all) counts as no consent: the customer is still scored and tiered, just not contacted;
3. ``contacted 12 days ago (cool-down 30 days)`` - the latest contact in the contact history
   (``customer_id``, ``contacted_at``) falls within ``cooldown_days`` before the customer's ``as_of``.
   A contact on or after ``as_of`` (the list is older than the last campaign) also blocks, reported as
   ``contacted after the scoring date``.

A customer the rules allow to be contacted may get an incentive only where `offer_eligible` says so: a save
rate given for the customer's tier, its tiers, plans, regions, countries and value range, and a cap above
zero (`offered_in_tier` is the tier part, which training's profit curve reads too).

Pure functions on in-memory frames; reading the tables from files happens in the I/O layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.config import Incentive
from churn.errors import ChurnError
from churn.yesno import TRUE_WORDS

REASON_EXCLUDED = "excluded"
REASON_NO_CONSENT = "no marketing consent"
NO_CONSENT_COLUMN = ("nobody may be contacted: the customers table has no 'marketing_consent' column, and consent "
                     "that is unknown counts as no. Map your consent column to it in the config (sources: tables: "
                     "customers: columns: {marketing_consent: <your column>}); the budget stays unspent until then")


def has_consent(scores: pd.DataFrame) -> np.ndarray:
    """True where marketing consent is explicitly given; null, unknown text or no column is False."""
    # Consent is given only by an explicit yes in one of the common encodings (churn.yesno.TRUE_WORDS, any
    # case, surrounded by spaces). Blank, no/false/0 and anything unrecognised mean no consent: contacting
    # without consent is the costly mistake, so doubt never counts as a yes.
    if "marketing_consent" not in scores.columns:
        return np.zeros(len(scores), dtype=bool)
    col = scores["marketing_consent"]
    if pd.api.types.is_bool_dtype(col):
        return col.fillna(False).astype(bool).to_numpy()
    if pd.api.types.is_numeric_dtype(col):
        return (pd.to_numeric(col, errors="coerce") == 1).fillna(False).to_numpy(dtype=bool)
    words = col.astype("string").str.strip().str.lower()
    yes = words.isin(TRUE_WORDS).fillna(False).to_numpy(dtype=bool)
    # Numbers written as text by spreadsheets ("1.00", "01"): equal to one is a yes.
    numeric = pd.to_numeric(words.where(words.str.fullmatch(r"[+]?\d+(\.\d+)?").fillna(False)), errors="coerce")
    return yes | (numeric == 1).fillna(False).to_numpy(dtype=bool)


def _label(frame: pd.DataFrame, what: str) -> str:
    """How errors name a table: its file (set by `churn.io.read_table`) and what it is for."""
    source = frame.attrs.get("source")
    return f"{source} ({what})" if source else what


def _ids(frame: pd.DataFrame, table: str) -> pd.Series:
    if "customer_id" not in frame.columns:
        raise ChurnError(f"{table}: needs a 'customer_id' column; it has {list(frame.columns)[:10]}")
    return frame["customer_id"].astype("string").str.strip()


def is_excluded(scores: pd.DataFrame, exclusions: pd.DataFrame | None) -> np.ndarray:
    """True where the customer id is on the exclusion list."""
    if exclusions is None or len(exclusions) == 0:
        return np.zeros(len(scores), dtype=bool)
    ids = set(_ids(exclusions, _label(exclusions, "exclusions")).dropna())
    return scores["customer_id"].astype("string").str.strip().isin(ids).fillna(False).to_numpy(dtype=bool)


def _utc_naive(values: pd.Series, table: str, column: str) -> pd.Series:
    """Timestamps as naive UTC (naive input is taken as UTC); unreadable ones are an error."""
    from churn.readers import parse_dates

    # ISO 8601 in any mix of precision and offsets, then day-first layouts: as data folders are read.
    out = parse_dates(values)
    blank = values.astype("string").str.strip().fillna("") == ""
    bad = out.isna() & ~blank
    if bad.any():
        ex = [repr(v) for v in values[bad].astype(str).head(3)]
        raise ChurnError(
            f"{table}: column '{column}' has {int(bad.sum()):,} value(s) that are not dates; e.g. {', '.join(ex)}"
        )
    return out.dt.tz_localize(None)


def days_since_contact(scores: pd.DataFrame, contact_history: pd.DataFrame | None) -> pd.Series:
    """Whole days from the latest contact to the customer's as_of (negative: after as_of); NaN if none."""
    nan = pd.Series(np.nan, index=scores.index, dtype=float)
    if contact_history is None or len(contact_history) == 0:
        return nan
    table = _label(contact_history, "contact history")
    if "contacted_at" not in contact_history.columns:
        raise ChurnError(f"{table}: needs a 'contacted_at' column; it has {list(contact_history.columns)[:10]}")
    if "as_of" not in scores.columns:
        raise ChurnError("scores: an 'as_of' column is needed to apply the contact cool-down")
    hist = pd.DataFrame(
        {
            "customer_id": _ids(contact_history, table),
            "contacted_at": _utc_naive(contact_history["contacted_at"], table, "contacted_at"),
        }
    ).dropna()
    if hist.empty:  # only blank contact times (found by the loader fuzz: an all-NaT column crashed below)
        return nan
    last = hist.groupby("customer_id", sort=False)["contacted_at"].max()
    ids = scores["customer_id"].astype("string").str.strip()
    last_contact = pd.Series(ids.map(last).to_numpy(), index=scores.index)
    as_of = _utc_naive(scores["as_of"], "scores", "as_of")
    delta = (as_of - pd.to_datetime(last_contact)) / pd.Timedelta(days=1)
    return np.floor(delta.astype(float))


def cooldown_reason(days: float, cooldown_days: int) -> str:
    """The no-contact reason for a customer contacted `days` before as_of."""
    if days < 0:
        return f"contacted after the scoring date (cool-down {cooldown_days} days)"
    d = int(days)
    when = "today" if d == 0 else ("1 day ago" if d == 1 else f"{d} days ago")
    return f"contacted {when} (cool-down {cooldown_days} days)"


def contact_blocks(
    scores: pd.DataFrame,
    *,
    cooldown_days: int,
    contact_history: pd.DataFrame | None = None,
    exclusions: pd.DataFrame | None = None,
) -> pd.Series:
    """Why each customer may not be contacted (None where they may), first rule that applies wins."""
    reason = np.full(len(scores), None, dtype=object)
    excluded = is_excluded(scores, exclusions)
    no_consent = ~has_consent(scores) & ~excluded
    reason[excluded] = REASON_EXCLUDED
    reason[no_consent] = REASON_NO_CONSENT
    if cooldown_days > 0:
        days = days_since_contact(scores, contact_history).to_numpy()
        cool = ~excluded & ~no_consent & ~np.isnan(days) & (days < cooldown_days)
        for d in np.unique(days[cool]):
            reason[cool & (days == d)] = cooldown_reason(float(d), cooldown_days)
    return pd.Series(reason, index=scores.index, name="no_contact_reason", dtype=object)


# ------------------------------------------------------------------------------ offer eligibility
def _casefold(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().str.casefold()


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    if name in df.columns:
        return df[name]
    return pd.Series(pd.NA, index=df.index, dtype="string")


def offered_in_tier(inc: Incentive, tier: str) -> bool:
    """Whether the plan may give the incentive to a customer of `tier` at all: it names a save rate for the
    tier (a tier without one is a tier it is not offered to), the tier is among `eligible.tiers` when those
    are listed, and its cap is not zero."""
    return (tier in inc.save_rate and (inc.eligible.tiers is None or tier in inc.eligible.tiers)
            and inc.max_customers != 0)


def offer_eligible(df: pd.DataFrame, inc: Incentive, tier: pd.Series, value: np.ndarray) -> np.ndarray:
    """Rows meeting an incentive's eligibility rules (a rule on a missing attribute is not met): the tier
    (`offered_in_tier`), plan, region, country and value range."""
    e = inc.eligible
    open_tiers = [t for t in inc.save_rate if offered_in_tier(inc, t)]
    ok = tier.isin(open_tiers).fillna(False).to_numpy(dtype=bool, copy=True)
    for attr, allowed in (("plan", e.plans), ("region", e.regions), ("country", e.countries)):
        if allowed is not None:
            vals = {str(a).strip().casefold() for a in allowed}
            ok &= _casefold(_column(df, attr)).isin(vals).fillna(False).to_numpy(dtype=bool)
    if e.min_value is not None:
        ok &= value >= e.min_value
    if e.max_value is not None:
        ok &= value <= e.max_value
    return ok
