"""A small data source for the scale-out parity tests (per-bucket builds, Spark): generated activity plus what
the scale-out must survive, each written into the Parquet files the way real exports carry it.

- ids that need normalising: one customer's events carry "<id>\\xa0" (no-break space, which Spark's own trim
  keeps) and "\\t<id>", another's orders " <id> ": they must land with the customer's other rows;
- a heavy customer (HEAVY) with 1,500 extra events: a bucket of their own at BUCKET_ROWS;
- a lonely customer (LONELY) who cancelled early and has only events, 1,200 of them: their own bucket, in
  which nobody is active at any date and every other table is missing;
- orders' times as instants (timestamp with time zone) while every other table's are zone-less, with
  `sources.timezone` Europe/Berlin: zone-less times are local, instants are not shifted;
- fee changes' monthly fee written as text with a decimal comma ("12,50"): read through the layout
  decided from the file's first rows.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DATES = ["2024-09-01", "2025-01-01", "2025-03-01"]
BUCKET_ROWS = 10_000  # with heavy_share 0.1: a customer above 1,000 rows gets a bucket alone
HEAVY, LONELY = "0000010", "L-0001"
TIMEZONE = "Europe/Berlin"


def parity_source(folder: Path, customers: int = 300, seed: int = 7) -> Path:
    """Write the source described in the module docstring into `folder`; returns it."""
    from churn.generate import generate

    generate(customers, date(2024, 1, 1), date(2025, 7, 1), seed, folder, overwrite=True)
    rng = np.random.default_rng(seed)
    events = pq.read_table(folder / "events.parquet")
    ids = events.column("customer_id").to_pylist()
    padded_a, padded_b = "0000003", "0000005"
    ids = [i + "\xa0" if i == padded_a and k % 2 else ("\t" + i if i == padded_a else i) for k, i in enumerate(ids)]
    events = events.set_column(0, "customer_id", pa.array(ids))
    extra = []
    for who, n, start, days in ((HEAVY, 1_500, "2024-02-01", 450), (LONELY, 1_200, "2024-01-05", 25)):
        when = pd.Timestamp(start) + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D").round("s")
        extra.append(pa.table({"customer_id": [who] * n, "timestamp": pa.array(when.to_numpy(), pa.timestamp("us")),
                               "event_type": pa.array(rng.choice(["login", "page_view"], n)),
                               "duration_s": pa.array(rng.uniform(1, 900, n)), "value": pa.nulls(n, pa.float64())}))
    pq.write_table(pa.concat_tables([events, *(e.cast(events.schema) for e in extra)]), folder / "events.parquet")

    orders = pq.read_table(folder / "orders.parquet")
    oids = [" " + i + " " if i == padded_b else i for i in orders.column("customer_id").to_pylist()]
    orders = orders.set_column(0, "customer_id", pa.array(oids))
    at = orders.schema.get_field_index("ordered_at")
    instants = pc.assume_timezone(orders.column(at), "UTC")
    pq.write_table(orders.set_column(at, "ordered_at", instants), folder / "orders.parquet")

    fees = pq.read_table(folder / "fee_changes.parquet")
    k = fees.schema.get_field_index("monthly_fee")
    text = [None if v is None else f"{v:.2f}".replace(".", ",") for v in fees.column(k).to_pylist()]
    pq.write_table(fees.set_column(k, "monthly_fee", pa.array(text, pa.string())), folder / "fee_changes.parquet")

    cust = pq.read_table(folder / "customers.parquet")
    lonely = {c: [None] for c in cust.column_names}
    lonely |= {"customer_id": [LONELY], "signup_date": [pd.Timestamp("2024-01-05")],
               "cancel_date": [pd.Timestamp("2024-02-01")], "plan": ["basic"], "monthly_fee": [10.0]}
    pq.write_table(pa.concat_tables([cust, pa.table(lonely, schema=cust.schema)]), folder / "customers.parquet")
    return folder


def parity_config(**spark: object) -> object:
    """The parity tests' config: BG/NBD on, one DuckDB thread, Berlin time, small buckets, Spark local[2]
    without its UI and with two shuffle partitions."""
    from churn.config import Config

    return Config.model_validate({
        "sources": {"timezone": TIMEZONE},
        "engine": {"threads": 1, "memory_limit": "1GB",
                   "spark": {"master": "local[2]", "bucket_rows": BUCKET_ROWS, "heavy_share": 0.1, **spark,
                             "conf": {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"}}},
    })


def assert_same_features(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Every feature of every row equal: the same rows and columns, counts and text exact, other numbers
    within 1e-9, missing where missing."""
    keys = ["as_of", "customer_id"]
    got = got.sort_values(keys, kind="stable").reset_index(drop=True)
    want = want.sort_values(keys, kind="stable").reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want) and (got["customer_id"].to_numpy() == want["customer_id"].to_numpy()).all()
    assert (got["as_of"].to_numpy() == want["as_of"].to_numpy()).all()
    for col in want.columns[2:]:
        a, b = want[col], got[col]
        if not pd.api.types.is_float_dtype(a):
            assert [None if pd.isna(v) else v for v in a] == [None if pd.isna(v) else v for v in b], col
            continue
        x, y = a.to_numpy(float), b.to_numpy(float)
        known = ~np.isnan(x)
        assert (known == ~np.isnan(y)).all(), col
        if (x[known] == np.round(x[known])).all():  # a count: exact
            assert (x[known] == y[known]).all(), col
        np.testing.assert_allclose(y[known], x[known], rtol=0, atol=1e-9, err_msg=col)
