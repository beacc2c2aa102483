"""Placing a compiled family's customers on the spine: by DuckDB hash, checked against the ids, with a
fallback to the ids themselves when hashes cannot be trusted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import build, make_config, write_source

from churn.features.context import Ctx

# Ids that differ only by leading zeros or case must never be confused.
CUSTOMERS = ["007", "0007", "7", "A1", "a1", "010", "10"]


@pytest.fixture(scope="module")
def spine_ctx(tmp_path_factory):
    customers = [{"customer_id": c, "signup_date": "2024-01-01" if i % 3 else "2024-03-15", "cancel_date": None}
                 for i, c in enumerate(CUSTOMERS)]
    surveys = [{"customer_id": "007", "answered_at": "2024-02-01T10:00:00", "score": 9}]
    folder = write_source(tmp_path_factory.mktemp("spine"), {"customers": customers, "surveys": surveys})
    cfg = make_config({"features": {"families": ["profile"]}})
    fs = build(folder, ["2024-03-01", "2024-04-01"], cfg)
    ctx = Ctx(ds=fs.ds, config=cfg, horizon_days=30, dates=fs.as_of)
    yield ctx
    fs.ds.con.close()


def _hashes(ctx: Ctx, ids: pa.Array) -> np.ndarray:
    ctx.ds.con.register("_t", pa.table({"customer_id": ids}))
    try:
        return ctx.ds.con.execute("SELECT hash(CAST(customer_id AS VARCHAR)) AS h FROM _t").fetchnumpy()["h"]
    finally:
        ctx.ds.con.unregister("_t")


def _expected(ctx: Ctx, ids: pa.Array) -> np.ndarray:
    where = {c: i for i, c in enumerate(ids.to_pylist())}
    return np.array([where.get(c, -1) for c in ctx.spine()[1].to_pylist()])


def test_spine_holds_each_customer_once_per_date(spine_ctx):
    t, ids, _ = spine_ctx.spine()
    assert len(t) == len(ids) == 4 + 7  # the three signed up on 03-15 are not customers on 03-01
    # In output order: by as_of, then by id as text.
    assert list(zip(t.tolist(), ids.to_pylist(), strict=True)) == sorted(zip(t.tolist(), ids.to_pylist(), strict=True))
    assert len(set(zip(t.tolist(), ids.to_pylist(), strict=True))) == len(t)


@pytest.mark.parametrize("hashes", ["duckdb", "all equal", "another id's"])
def test_rows_are_each_customers_position_whatever_the_hashes(spine_ctx, hashes):
    ids = pa.array(["0007", "nobody", "10", "A1", "007", "7"])  # not "a1", "010": they get -1
    h = _hashes(spine_ctx, ids)
    if hashes == "all equal":  # a collision among the family's ids
        h = np.zeros_like(h)
    elif hashes == "another id's":  # a hash that points at the wrong customer
        h = np.roll(h, 1)
    rows = spine_ctx.spine_rows(ids, h)
    assert rows.tolist() == _expected(spine_ctx, ids).tolist()
    assert (rows == -1).sum() == sum(c in ("a1", "010") for c in spine_ctx.spine()[1].to_pylist())


def test_features_are_the_same_with_or_without_the_background_thread(tmp_path, monkeypatch):
    # Compiled passes run on a background thread only where numba's threading layer allows two threads at
    # once (OpenMP, TBB); with its workqueue they run inline. Both must give the same features. Which layer
    # numba picked is the machine's business, not something to assert: without a second thread there is
    # nothing to compare, which is said as a skip.
    import numba

    from churn.features import context

    if not context.background_ok():
        pytest.skip(f"numba's '{numba.threading_layer()}' threading layer runs compiled passes inline only")

    tables = {
        "customers": [{"customer_id": f"{i:04d}", "signup_date": "2024-01-01", "cancel_date": None,
                       "plan": "basic" if i % 2 else "plus", "monthly_fee": 10.0 + i} for i in range(40)],
        "events": [{"customer_id": f"{i % 40:04d}", "timestamp": f"2024-0{1 + i % 5}-{1 + i % 27:02d}T10:00:00",
                    "event_type": ["login", "view"][i % 2], "duration_s": float(i)} for i in range(400)],
        "orders": [{"customer_id": f"{i % 30:04d}", "ordered_at": f"2024-0{1 + i % 5}-{1 + i % 28:02d}T12:00:00",
                    "amount": 5.0 + i % 7} for i in range(300)],
        "fee_changes": [{"customer_id": f"{i % 20:04d}", "changed_at": f"2024-0{1 + i % 5}-15T00:00:00",
                         "monthly_fee": 9.0 + i % 4, "plan": "plus"} for i in range(50)],
    }
    folder = write_source(tmp_path, tables, "parquet-naive")
    cfg = make_config(btyd=True)
    dates = ["2024-04-01", "2024-06-01"]
    threaded = build(folder, dates, cfg)
    assert threaded.to_pandas().shape[0] > 0
    monkeypatch.setattr(context, "background_ok", lambda: False)
    inline = build(folder, dates, cfg)
    pd.testing.assert_frame_equal(threaded.to_pandas(), inline.to_pandas(), check_exact=True)
    threaded.ds.con.close()
    inline.ds.con.close()
