"""Engagement features against a plain pandas reference on random events.

The engine packs each event into one integer (type, day, milliseconds) and computes every window in one
compiled pass per customer; this checks each feature, at several as_of dates built together, against the
definitions written the obvious way (filter the window, count, sum, count distinct days and weeks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import frame, make_config, write_source

AS_OF = ["2024-03-01", "2024-05-01", "2024-05-31"]
TYPES = ["login", "view", "buy"]  # configured; events also carry "other" and no type at all


def _events(seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    customers = [{"customer_id": f"{i:03d}", "signup_date": "2023-01-01", "cancel_date": None} for i in range(30)]
    start = pd.Timestamp("2023-06-01")
    rows = []
    for i in range(30):
        # Some customers quiet for months, some busy, one with no events at all.
        n = 0 if i == 0 else int(rng.integers(1, 60))
        for _ in range(n):
            seconds = int(rng.integers(0, 400 * 86_400))
            if rng.random() < 0.1:  # exactly on a day boundary, often an as_of itself
                seconds = seconds // 86_400 * 86_400
            ts = start + pd.Timedelta(seconds=seconds)
            # Millisecond precision (the engine's): rounding finer values is covered by the hand-made tests.
            dur = None if rng.random() < 0.2 else int(rng.integers(0, 5_000_000)) / 1000
            kind = rng.choice([*TYPES, "other", ""])
            rows.append({"customer_id": f"{i:03d}", "timestamp": ts.isoformat(), "event_type": kind or None,
                         "duration_s": dur})
    return customers, rows


def _reference(events: pd.DataFrame, as_of: pd.Timestamp, windows: list[int], weeks: int) -> pd.DataFrame:
    """Every engagement feature of every customer with an event before as_of, the obvious way."""
    e = events[events.timestamp < as_of].copy()
    e["d"] = (as_of - e.timestamp.dt.floor("D")).dt.days - 1  # 0 = the last day before as_of
    out = {}
    for cid, g in e.groupby("customer_id"):
        row = {"days_since_last_event": float(g.d.min() + 1)}
        for w in windows:
            gw = g[g.d < w]
            row[f"events_{w}d"] = len(gw)
            row[f"active_days_{w}d"] = gw.d.nunique()
            row[f"duration_hours_{w}d"] = gw.duration_s.fillna(0).sum() / 3600
            for t in TYPES:
                row[f"events_{t}_{w}d"] = int((gw.event_type == t).sum())
        e30, prev, e90 = (g.d < 30).sum(), ((g.d >= 30) & (g.d < 60)).sum(), (g.d < 90).sum()
        active90 = g[g.d < 90].d.nunique()
        row["event_gap_typical_days"] = 90 / active90 if active90 else np.nan
        row["events_trend_30d"] = (e30 + 1) / (prev + 1) - 1
        row["events_30d_vs_90d"] = e30 * 3 / e90 if e90 else np.nan
        row["weeks_active_share"] = (g[g.d < weeks * 7].d // 7).nunique() / weeks
        out[cid] = row
    return pd.DataFrame.from_dict(out, orient="index")


@pytest.mark.parametrize(("seed", "windows", "weeks"), [(1, [7, 30, 90], 12), (2, [14, 120], 20), (3, [1, 365], 4)])
def test_engagement_matches_pandas_reference(tmp_path, seed, windows, weeks):
    customers, events = _events(seed)
    folder = write_source(tmp_path, {"customers": customers, "events": events}, "parquet-naive")
    cfg = make_config({"features": {"families": ["engagement"],
                                    "engagement": {"event_types": TYPES, "windows": windows, "weeks_active": weeks}}})
    got = frame(folder, AS_OF, cfg)
    ev = pd.read_parquet(folder / "events.parquet")
    checked = 0
    for d in AS_OF:
        as_of = pd.Timestamp(d)
        ref = _reference(ev, as_of, windows, weeks)
        at = got.xs(as_of, level="as_of")
        for cid, row in ref.iterrows():
            for col, want in row.items():
                have = at.loc[cid, col]
                if np.isnan(want):
                    assert np.isnan(have), (d, cid, col, have)
                else:
                    assert have == pytest.approx(want, rel=1e-12, abs=1e-12), (d, cid, col, have, want)
                checked += 1
        # Customers with no event before as_of: counts 0, recency unknown.
        quiet = at.index.difference(ref.index)
        assert (at.loc[quiet, f"events_{windows[0]}d"] == 0).all()
        assert at.loc[quiet, "days_since_last_event"].isna().all()
    assert checked > 500
