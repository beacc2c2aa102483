"""Support, feedback and purchase features against plain pandas references on random activity.

The engine lists each customer's tickets, answers and orders once and computes every date's features in
compiled passes; this checks each feature, at several as_of dates built together, against the
definitions written the obvious way. The data is made to hit the edges: times exactly at midnight (often
an as_of itself), tickets closed exactly at as_of, several rows at the same instant, missing values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import frame, make_config, write_source

AS_OF = ["2024-03-01", "2024-05-01", "2024-05-31"]
DAY = pd.Timedelta(days=1)
N = 30


def _when(rng: np.random.Generator) -> pd.Timestamp:
    start = pd.Timestamp("2023-03-01")
    if rng.random() < 0.15:  # exactly an as_of, or midnight next to one
        return pd.Timestamp(AS_OF[int(rng.integers(0, 3))]) + DAY * int(rng.integers(-1, 2))
    seconds = int(rng.integers(0, 460 * 86_400))
    if rng.random() < 0.1:
        seconds = seconds // 86_400 * 86_400
    return start + pd.Timedelta(seconds=seconds)


def _activity(seed: int) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    customers = [{"customer_id": f"{i:03d}", "signup_date": "2023-01-01", "cancel_date": None} for i in range(N)]
    tickets, orders, surveys = [], [], []
    for i in range(1, N):  # customer 000 does nothing
        cid = f"{i:03d}"
        for _ in range(int(rng.integers(0, 15))):
            opened = _when(rng)
            r = rng.random()
            closed = None if r < 0.2 else (opened + pd.Timedelta(minutes=int(rng.integers(1, 90 * 24 * 60)))
                                           if r < 0.9 else pd.Timestamp(AS_OF[int(rng.integers(0, 3))]))
            if closed is not None and closed <= opened:
                closed = opened + pd.Timedelta(hours=1)
            tickets.append({"customer_id": cid, "opened_at": opened.isoformat(),
                            "closed_at": closed.isoformat() if closed is not None else None,
                            "is_complaint": [True, False, None][int(rng.integers(0, 3))],
                            "satisfaction": None if rng.random() < 0.3 else float(rng.choice([1, 2, 2.5, 3, 4, 5]))})
            if rng.random() < 0.15:  # another ticket at the same instant
                tickets.append(dict(tickets[-1], satisfaction=float(rng.integers(1, 6))))
        for _ in range(int(rng.integers(0, 25))):
            at = _when(rng)
            orders.append({"customer_id": cid, "ordered_at": at.isoformat(), "amount": int(rng.integers(0, 20000)) / 100,
                           "discount": None if rng.random() < 0.3 else int(rng.integers(0, 3000)) / 100})
            if rng.random() < 0.2:  # a second order the same day
                orders.append(dict(orders[-1], ordered_at=(at.floor("D") + pd.Timedelta(hours=23)).isoformat()))
        for _ in range(int(rng.integers(0, 6))):
            at = _when(rng)
            surveys.append({"customer_id": cid, "answered_at": at.isoformat(), "score": int(rng.integers(0, 11))})
            if rng.random() < 0.2:  # two answers at the same instant
                surveys.append(dict(surveys[-1], score=int(rng.integers(0, 11))))
    return {"customers": customers, "tickets": tickets, "orders": orders, "surveys": surveys}


def _days(later: pd.Timestamp, earlier: pd.Series | pd.Timestamp) -> pd.Series | float:
    return (later - earlier) / DAY


def _support(t: pd.DataFrame, as_of: pd.Timestamp, windows: list[int]) -> dict[str, dict]:
    big = max(windows)
    t = t[t.opened_at < as_of].copy()
    t["d"] = (as_of - t.opened_at.dt.floor("D")).dt.days - 1
    t["complaint"] = t.is_complaint.fillna(False).astype(bool)
    t["resolved"] = t.closed_at.notna() & (t.closed_at < as_of)
    out = {}
    for cid, g in t.groupby("customer_id"):
        row = {}
        for w in windows:
            row[f"tickets_{w}d"] = int((g.d < w).sum())
            row[f"complaints_{w}d"] = int(((g.d < w) & g.complaint).sum())
        row["repeat_complainer"] = float(((g.d < 90) & g.complaint).sum() >= 2)
        row["days_since_last_complaint"] = _days(as_of, g[g.complaint].opened_at.max()) if g.complaint.any() else np.nan
        row["days_since_last_ticket"] = _days(as_of, g.opened_at.max())
        res = g[(g.d < big) & g.resolved]
        row[f"resolution_days_mean_{big}d"] = _days(res.closed_at, res.opened_at).mean() if len(res) else np.nan
        row[f"resolution_days_max_{big}d"] = _days(res.closed_at, res.opened_at).max() if len(res) else np.nan
        still = g[~g.resolved]
        row["open_tickets"] = len(still)
        row["open_complaints"] = int(still.complaint.sum())
        row["oldest_open_ticket_days"] = _days(as_of, still.opened_at.min()) if len(still) else np.nan
        rated = g[g.resolved & g.satisfaction.notna()]
        recent = rated[rated.d < big]
        row[f"satisfaction_mean_{big}d"] = recent.satisfaction.mean() if len(recent) else np.nan
        row["satisfaction_last"] = (rated.sort_values(["closed_at", "satisfaction"]).satisfaction.iloc[-1]
                                    if len(rated) else np.nan)
        out[cid] = row
    return out


def _feedback(s: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, dict]:
    s = s[s.answered_at < as_of].copy()
    s["d"] = (as_of - s.answered_at.dt.floor("D")).dt.days - 1
    out = {}
    for cid, g in s.groupby("customer_id"):
        last = g.sort_values(["answered_at", "score"]).score.iloc[-1]
        n, total = len(g), g.score.sum()
        out[cid] = {"survey_last_score": last, "survey_mean_score": total / n,
                    "survey_score_trend": last - (total - last) / (n - 1) if n >= 2 else np.nan,
                    "survey_detractor": float(last <= 6), "days_since_last_survey": _days(as_of, g.answered_at.max()),
                    "surveys_365d": int((g.d < 365).sum())}
    return out


def _purchases(o: pd.DataFrame, as_of: pd.Timestamp, windows: list[int]) -> dict[str, dict]:
    big = max(windows)
    o = o[o.ordered_at < as_of].copy()
    o["day"] = o.ordered_at.dt.floor("D")
    o["d"] = (as_of - o.day).dt.days - 1
    out = {}
    for cid, g in o.groupby("customer_id"):
        row = {}
        for w in windows:
            row[f"orders_{w}d"] = int((g.d < w).sum())
            row[f"spend_{w}d"] = g[g.d < w].amount.sum()
        gb = g[g.d < big]
        row[f"avg_order_value_{big}d"] = gb.amount.sum() / len(gb) if len(gb) else np.nan
        disc = gb.discount.fillna(0).sum()
        row[f"discount_share_{big}d"] = disc / (gb.amount.sum() + disc) if len(gb) and gb.amount.sum() + disc else np.nan
        s90, prev = g[g.d < 90].amount.sum(), g[(g.d >= 90) & (g.d < 180)].amount.sum()
        row["spend_trend_90d"] = s90 / prev - 1 if prev > 0 else (1.0 if s90 > 0 else 0.0)
        days = np.sort(g.day.unique())
        gaps = np.diff(days) / DAY
        x = len(days) - 1
        since = _days(as_of, pd.Timestamp(days[-1]))
        mean = gaps.sum() / x if x else np.nan
        row.update({"days_since_last_order": since, "orders_lifetime": x + 1, "order_gap_mean_days": mean,
                    "order_gap_std_days": np.sqrt(max((gaps ** 2).sum() / x - mean * mean, 0)) if x >= 2 else np.nan,
                    "order_overdue_ratio": since / mean if x else np.nan})
        out[cid] = row
    return out


def _check(got: pd.DataFrame, ref: dict[str, dict], zero_when_quiet: str, unknown_when_quiet: str) -> int:
    checked = 0
    for cid, row in ref.items():
        for col, want in row.items():
            have = got.loc[cid, col]
            if np.isnan(want):
                assert np.isnan(have), (cid, col, have)
            else:
                assert have == pytest.approx(want, rel=1e-12, abs=1e-12), (cid, col, have, want)
            checked += 1
    quiet = got.index.difference(list(ref))
    assert len(quiet) >= 1  # customer 000 at least
    assert (got.loc[quiet, zero_when_quiet] == 0).all()
    assert got.loc[quiet, unknown_when_quiet].isna().all()
    return checked


@pytest.mark.parametrize(("seed", "windows"), [(1, [7, 30, 90]), (2, [14, 120, 365])])
def test_support_feedback_purchases_match_pandas_references(tmp_path, seed, windows):
    tables = _activity(seed)
    folder = write_source(tmp_path, tables, "parquet-naive")
    cfg = make_config({"features": {"families": ["support", "feedback", "purchases"],
                                    "support": {"windows": windows}, "purchases": {"windows": windows}}})
    got = frame(folder, AS_OF, cfg)
    t, o, s = (pd.read_parquet(folder / f"{n}.parquet") for n in ("tickets", "orders", "surveys"))
    checked = 0
    for d in AS_OF:
        as_of = pd.Timestamp(d)
        at = got.xs(as_of, level="as_of")
        checked += _check(at, _support(t, as_of, windows), f"tickets_{windows[0]}d", "days_since_last_ticket")
        checked += _check(at, _feedback(s, as_of), "surveys_365d", "survey_last_score")
        checked += _check(at, _purchases(o, as_of, windows), f"orders_{windows[0]}d", "days_since_last_order")
    assert checked > 2000
