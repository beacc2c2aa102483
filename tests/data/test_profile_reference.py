"""Profile features (tenure, who the customer is, the fee and plan in force) against a plain pandas reference.

The engine reads the customers once, lists each customer's fee changes once and orders each list itself
(`profile_kernel`); this checks every profile column, at several as_of dates built together, against the
definitions written the obvious way. The fee history is made to hit the edges: changes exactly at an as_of
or 90/365 days before one, several changes at the same instant (the higher fee, then the later plan in
text order, is in force), changes without a plan, histories long enough to be sorted the long way, and
rows in no order in the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import frame, make_config, write_source

AS_OF = ["2024-03-01", "2024-05-01", "2024-05-31"]
DAY = pd.Timedelta(days=1)
N = 40
PLANS = ["basic", "Basic", "premium", "standard", "été"]


def _when(rng: np.random.Generator) -> pd.Timestamp:
    r = rng.random()
    anchor = pd.Timestamp(AS_OF[int(rng.integers(0, 3))])
    if r < 0.1:
        return anchor
    if r < 0.2:  # exactly 90 or 365 days before an as_of, or a microsecond either side
        return anchor - DAY * int(rng.choice([90, 365])) + pd.Timedelta(microseconds=int(rng.integers(-1, 2)))
    return pd.Timestamp("2022-06-01") + pd.Timedelta(seconds=int(rng.integers(0, 730 * 86_400)))


def _tables(seed: int) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    customers, changes = [], []
    for i in range(N):
        cid = f"{i:03d}"
        signup = pd.Timestamp("2022-01-01") + DAY * int(rng.integers(0, 880)) + pd.Timedelta(hours=int(rng.integers(0, 24)))
        customers.append({
            "customer_id": cid, "signup_date": signup.isoformat(), "cancel_date": None,
            "plan": None if rng.random() < 0.2 else str(rng.choice(PLANS)),
            "region": None if rng.random() < 0.2 else str(rng.choice(["North", "South"])),
            "monthly_fee": None if rng.random() < 0.3 else float(rng.integers(500, 3000)) / 100,
        })
        n = int(rng.choice([0, 1, 2, 5, 30]))  # 30: past the short-list sort
        for _ in range(n):
            at = _when(rng)
            plan = None if rng.random() < 0.25 else str(rng.choice(PLANS))
            changes.append({"customer_id": cid, "changed_at": at.isoformat(),
                            "monthly_fee": float(rng.integers(5, 40)), "plan": plan})
            if rng.random() < 0.3:  # another change at the same instant: a different fee, or the same fee
                fee = changes[-1]["monthly_fee"] + (float(rng.integers(-3, 4)) if rng.random() < 0.5 else 0.0)
                changes.append(dict(changes[-1], monthly_fee=fee,
                                    plan=None if rng.random() < 0.3 else str(rng.choice(PLANS))))
    order = rng.permutation(len(changes))  # the file's row order must not matter
    # A source needs some activity; the profile does not read it.
    events = [{"customer_id": "000", "timestamp": "2023-01-05T00:00:00", "event_type": "login"}]
    return {"customers": customers, "fee_changes": [changes[k] for k in order], "events": events}


def _reference(c: pd.DataFrame, f: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, dict]:
    # SQL's order: time, fee, then plan as text with missing plans last.
    f = f.assign(_plan=f.plan.fillna("\U0010ffff")).sort_values(["changed_at", "monthly_fee", "_plan"], kind="stable")
    f["prev_fee"] = f.groupby("customer_id").monthly_fee.shift()
    out = {}
    for row in c.itertuples():
        if row.signup_date >= as_of:
            continue
        g = f[(f.customer_id == row.customer_id) & (f.changed_at < as_of)]
        named = g[g.plan.notna()]
        before = g[g.changed_at < as_of - 90 * DAY]
        fee_now = g.monthly_fee.iloc[-1] if len(g) else np.nan
        out[row.customer_id] = {
            "tenure_days": (as_of - row.signup_date) / DAY,
            "plan": named.plan.iloc[-1] if len(named) else row.plan,
            "region": row.region,
            "monthly_fee": fee_now if len(g) else row.monthly_fee,
            "fee_change_90d": fee_now - before.monthly_fee.iloc[-1] if len(before) else 0.0,
            "fee_increases_365d": float(((g.changed_at >= as_of - 365 * DAY) & (g.monthly_fee > g.prev_fee)).sum()),
            "days_since_fee_change": (as_of - g.changed_at.iloc[-1]) / DAY if len(g) else np.nan,
        }
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_profile_matches_pandas_reference(tmp_path, seed):
    folder = write_source(tmp_path, _tables(seed), "parquet-naive")
    cfg = make_config({"features": {"families": ["profile"], "profile": {"categoricals": ["plan", "region"]}}})
    got = frame(folder, AS_OF, cfg)
    c = pd.read_parquet(folder / "customers.parquet")
    f = pd.read_parquet(folder / "fee_changes.parquet")
    checked = 0
    for d in AS_OF:
        as_of = pd.Timestamp(d)
        at = got.xs(as_of, level="as_of")
        ref = _reference(c, f, as_of)
        assert sorted(at.index) == sorted(ref)
        for cid, row in ref.items():
            for col, want in row.items():
                have = at.loc[cid, col]
                if want is None or (isinstance(want, float) and np.isnan(want)):
                    assert pd.isna(have), (d, cid, col, have)
                elif isinstance(want, str):
                    assert have == want, (d, cid, col, have, want)
                else:
                    assert have == pytest.approx(want, rel=1e-12, abs=1e-12), (d, cid, col, have, want)
                checked += 1
    assert checked > 500
    # The edges were hit: same-instant changes decided by fee or plan, changes without a plan, long lists.
    assert f.duplicated(["customer_id", "changed_at"]).any() and f.plan.isna().any()
    assert f.customer_id.value_counts().max() > 16
