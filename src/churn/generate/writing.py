"""The entry points: `generate` writes a data source chunk by chunk (Parquet, swapped into place whole) and
`ground_truth` returns the hidden side of the same simulation. Arguments are checked here, once. With
retention campaigns (`churn.generate.campaigns`), `generate` also writes the contact history.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.generate.campaigns import CONTACT_HOUR, Campaign, check_campaigns, resolve_chunk
from churn.generate.planted import MECHANISMS, PLANTED, Business, Mechanism
from churn.generate.simulation import _period, _simulate_customers
from churn.generate.tables import (
    _customers_table,
    _events_table,
    _fee_changes_table,
    _id_digits,
    _ids,
    _orders_table,
    _schemas,
    _surveys_table,
    _tickets_table,
)
from churn.io import atomic_dir

CHUNK_SIZE = 50_000
"""Customers per chunk: the unit of seeding, memory and progress. Changing it changes the data."""
_PARQUET_COMPRESSION = "zstd"
CONTACT_HISTORY = "contact_history"
"""The table of contacts `generate` writes with campaigns (customer_id, contacted_at, incentive): what the
scorer's `incentives.contact_history` reads for the cool-down."""
_CONTACT_SCHEMA = pa.schema([("customer_id", pa.string()), ("contacted_at", pa.timestamp("us")),
                             ("incentive", pa.string())])


def _check(n_customers: int, start: date, end: date, seed: int, business: str,
           events_per_customer: float, mechanism: str = "default") -> tuple[date, date]:
    if isinstance(n_customers, bool) or not isinstance(n_customers, (int, np.integer)) or n_customers < 1:
        raise ChurnError(f"n_customers must be a whole number >= 1, got {n_customers!r}")
    dates = []
    for label, d in (("start", start), ("end", end)):
        if isinstance(d, datetime):
            d = d.date()
        if not isinstance(d, date):
            raise ChurnError(f"{label} must be a date, got {d!r}")
        dates.append(d)
    start, end = dates
    if end <= start:
        raise ChurnError(f"end ({end}) must be after start ({start})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ChurnError(f"seed must be a whole number >= 0, got {seed!r}")
    if business not in ("subscription", "retail"):
        raise ChurnError(f"business must be 'subscription' or 'retail', got {business!r}")
    if not (isinstance(events_per_customer, (int, float)) and math.isfinite(events_per_customer)
            and events_per_customer >= 0):
        raise ChurnError(f"events_per_customer must be a number >= 0, got {events_per_customer!r}")
    if not isinstance(mechanism, str) or mechanism not in MECHANISMS:
        raise ChurnError(f"mechanism must be one of {', '.join(MECHANISMS)}; got {mechanism!r}")
    return start, end


def _chunks(n: int) -> list[tuple[int, int, int]]:
    return [(k, lo, min(lo + CHUNK_SIZE, n)) for k, lo in enumerate(range(0, n, CHUNK_SIZE))]


def generate(
    n_customers: int,
    start: date,
    end: date,
    seed: int,
    out: str | Path,
    *,
    overwrite: bool = False,
    business: Business = "subscription",
    events_per_customer: float = 50.0,
    mechanism: Mechanism = "default",
    progress: Callable[[int, int], None] | None = None,
    campaigns: Sequence[Campaign] = (),
) -> dict[str, int]:
    """Write a synthetic data source (Parquet tables) to `out`; return row counts per table.

    Tables: customers, events, tickets, orders, surveys and, for `business="subscription"`, fee_changes
    (columns and types as in `churn.contract`). Activity lies in [start, end); a share of customers signed
    up before `start`. Retail is non-contractual: no cancel_date, no fees; churners just stop.
    The folder is written to a temporary sibling and swapped into place; an existing `out` is only
    replaced with `overwrite=True`. `progress(done_customers, total)` is called after each chunk.
    `mechanism` chooses the planted churn hazard (everything else is simulated the same way):
    "default" (tenure steps, multiplicative traits, price shocks scaled by sensitivity), "additive"
    (log-linear in the traits and price increases: no thresholds or interactions) or "interactions"
    (thresholds and interactions only: low engagement matters while tenure is young or with many
    complaints; price increases matter to price-sensitive, unengaged customers). See PLANTED and
    docs/synthetic-data.md. Same arguments give byte-identical files. Raises ChurnError for bad arguments.
    `campaigns` (`Campaign`s: retention contacts that change the contacted customers' churn hazard by the
    planted effects) adds `contact_history.parquet`; without them the files are as they always were.
    """
    start, end = _check(n_customers, start, end, seed, business, events_per_customer, mechanism)
    campaigns = check_campaigns(campaigns, start, end)
    p = PLANTED
    period = _period(start, end, business)
    schemas = _schemas(business)
    width = max(7, len(str(n_customers)))
    counts = dict.fromkeys(schemas, 0)
    with atomic_dir(out, overwrite) as tmp:
        if campaigns:
            schemas = {**schemas, CONTACT_HISTORY: _CONTACT_SCHEMA}
            counts[CONTACT_HISTORY] = 0
        writers = {
            name: pq.ParquetWriter(tmp / f"{name}.parquet", schema, compression=_PARQUET_COMPRESSION)
            for name, schema in schemas.items()
        }
        try:
            for k, lo, hi in _chunks(n_customers):
                ss = np.random.SeedSequence(seed, spawn_key=(k,))
                s_cust, s_ev, s_tk, s_or, s_sv = ss.spawn(5)
                c = _simulate_customers(s_cust, lo, hi, period, business, p, mechanism,
                                        resolve_chunk(campaigns, lo, hi, start))
                digits = _id_digits(lo, hi - lo, width)
                tables = {
                    "customers": _customers_table(c, digits, period, business, p, schemas["customers"]),
                    "events": _events_table(np.random.default_rng(s_ev), c, digits, period, business,
                                            float(events_per_customer), p, schemas["events"]),
                    "tickets": _tickets_table(np.random.default_rng(s_tk), c, digits, period, business, p,
                                              schemas["tickets"]),
                    "orders": _orders_table(np.random.default_rng(s_or), c, digits, period, business, p,
                                            schemas["orders"]),
                    "surveys": _surveys_table(np.random.default_rng(s_sv), c, digits, period, p,
                                              schemas["surveys"]),
                }
                if business == "subscription":
                    tables["fee_changes"] = _fee_changes_table(c, digits, period, p, schemas["fee_changes"])
                if campaigns:
                    tables[CONTACT_HISTORY] = _contact_table(c, digits, campaigns, start)
                for name, table in tables.items():
                    writers[name].write_table(table)
                    counts[name] += table.num_rows
                del tables, c
                if progress is not None:
                    progress(hi, n_customers)
        finally:
            for w in writers.values():
                w.close()
    return counts


def _contact_table(c, digits: np.ndarray, campaigns: tuple[Campaign, ...], start: date) -> pa.Table:
    """The chunk's contacts (held-out customers were not contacted), by customer then time."""
    log = c.contacts
    sent = np.flatnonzero(log["contacted"])
    days = np.array([(cp.day - start).days for cp in campaigns], dtype=np.int64)[log["campaign"][sent]]
    rows = log["row"][sent]
    order = np.lexsort((days, rows))
    start_us = int((np.datetime64(start, "D") - np.datetime64("1970-01-01", "D")).astype(np.int64)) * 86_400_000_000
    when = start_us + (days[order] * 86_400 + CONTACT_HOUR * 3600) * 1_000_000
    return pa.table({
        "customer_id": _ids(digits, rows[order]),
        "contacted_at": pa.array(when, pa.timestamp("us")),
        "incentive": pa.array(log["incentive"][sent][order].astype(str), pa.string()),
    }, schema=_CONTACT_SCHEMA)


def ground_truth(
    n_customers: int,
    start: date,
    end: date,
    seed: int,
    *,
    business: Business = "subscription",
    mechanism: Mechanism = "default",
    campaigns: Sequence[Campaign] = (),
) -> pd.DataFrame:
    """The hidden side of `generate` with the same arguments (mechanism included): one row per customer
    with latent traits, the simulated churn day and the decline episode. For tests and model checks; never
    a model input.

    Columns: customer_id, signup_day, churned, churn_date (NaT if none), engagement, complaint, purchase,
    price_sensitivity, happy_z, price_increases, episode ("none", "decline", "recovery"), episode_start,
    episode_days, episode_depth (days are counted from `start`).
    """
    start, end = _check(n_customers, start, end, seed, business, 0.0, mechanism)
    campaigns = check_campaigns(campaigns, start, end)
    period = _period(start, end, business)
    width = max(7, len(str(n_customers)))
    parts = []
    for k, lo, hi in _chunks(n_customers):
        s_cust = np.random.SeedSequence(seed, spawn_key=(k,)).spawn(5)[0]
        c = _simulate_customers(s_cust, lo, hi, period, business, PLANTED, mechanism,
                                resolve_chunk(campaigns, lo, hi, start))
        ids = np.arange(lo + 1, hi + 1)
        parts.append(pd.DataFrame({
            "customer_id": [f"{i:0{width}d}" for i in ids],
            "signup_day": c.signup,
            "churned": c.churned,
            "churn_date": pd.to_datetime(
                np.where(c.churned, np.datetime64(start, "D") + c.b, np.datetime64("NaT", "D"))
            ).astype("datetime64[us]"),
            "engagement": c.engagement,
            "complaint": c.complaint,
            "purchase": c.purchase,
            "price_sensitivity": c.price_sens,
            "happy_z": c.happy_z,
            "price_increases": c.applied.sum(axis=1),
            "episode": np.array(["none", "decline", "recovery"])[c.ep_kind],
            "episode_start": np.where(c.ep_kind > 0, c.ep_start, np.nan),
            "episode_days": np.where(c.ep_kind > 0, c.ep_len, np.nan),
            "episode_depth": c.ep_depth,
        }))
    return pd.concat(parts, ignore_index=True)
