"""The forward reading's rows never leak a scored customer's outcome into the fit that scores them.

For random customers, snapshot dates, horizons and fold counts: every fit scores the rows of one
validation date V; no fit row is at or after V; no fit row of a scored customer has a label window reaching
V (`as_of + horizon > V`); holdout customers are in neither. Where at least two dates' labels had closed by
V, the fit is exactly those rows and every non-holdout customer at V is scored (as production); else it is
every earlier row but the scored customers' overlapping ones, and with several folds every non-holdout
customer at V is scored exactly once. The expectations are written from the dates themselves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from churn.training.splits import split_out_of_time


@settings(max_examples=settings.default.max_examples // 2)
@given(n=st.integers(20, 120), n_dates=st.integers(4, 9), step=st.sampled_from([7, 14, 30, 31]),
       horizon=st.sampled_from([14, 30, 60, 90, 180]), folds=st.integers(1, 4), seed=st.integers(0, 50),
       presence=st.floats(0.5, 1.0))
def test_forward_rows_respect_the_label_window(n, n_dates, step, horizon, folds, seed, presence):
    rng = np.random.default_rng(seed)
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n_dates) * step, unit="D")
    rows = [(f"c{c:04d}", d) for d in dates for c in range(n) if rng.random() < presence]
    ids = np.array([r[0] for r in rows], dtype=object)
    times = pd.Series([r[1] for r in rows])
    s = split_out_of_time(ids, times, holdout_snapshots=1, valid_snapshots=2, calibration_share=0.5,
                          holdout_customer_share=0.3, seed=seed, valid_customer_share=0.3, horizon_days=horizon,
                          forward_folds=folds)
    held = set(ids[s.holdout])
    rows = list(zip(ids, times, strict=True))
    valid_dates = dates[-3:-1] if folds > 1 else dates[-2:-1]  # small data reads every validation date
    assert s.forward and len(s.forward_fits) == len(s.forward_valids)
    by_date: dict = {}
    for fit, valid in zip(s.forward_fits, s.forward_valids, strict=True):
        [v] = set(times.iloc[valid])
        by_date.setdefault(v, []).append((fit, valid))
        scored = set(ids[valid])
        assert not scored & held and not set(ids[fit]) & held
        assert (times.iloc[fit] < v).all()
        id_fit, t_fit = ids[fit], pd.to_datetime(times.iloc[fit].to_numpy())
        assert not any(c in scored for c in id_fit[t_fit + pd.Timedelta(days=horizon) > v]), "a scored customer leaks"
        closed = {(c, t) for c, t in rows if c not in held and t + pd.Timedelta(days=horizon) <= v}
        if len({t for _, t in closed}) >= 2:  # as production: the rows whose labels had closed, everyone scored
            expected = closed
            assert scored == {c for c, t in rows if t == v and c not in held}
        else:  # every earlier row but the scored customers' overlapping ones
            expected = {(c, t) for c, t in rows if t < v and c not in held
                        and not (c in scored and t + pd.Timedelta(days=horizon) > v)}
        assert set(zip(id_fit, times.iloc[fit], strict=True)) == expected
    at = {d for d in valid_dates if any(t == d and c not in held for c, t in rows)}
    assert sorted(by_date) == sorted(at)
    for v, parts in by_date.items():  # each validation date's non-holdout customers scored exactly once
        scored_all = [c for _, valid in parts for c in ids[valid]]
        assert all(len(valid) for _, valid in parts)  # a fold with nobody to score is not fitted
        if len(parts) > 1 or folds > 1:
            assert sorted(scored_all) == sorted(c for c, t in rows if t == v and c not in held)
    h = dates[-1]  # the holdout's fit: the rows whose labels had closed by the holdout date, if two dates'
    closed_h = {(c, t) for c, t in rows if c not in held and t + pd.Timedelta(days=horizon) <= h}
    before_h = closed_h if len({t for _, t in closed_h}) >= 2 else {(c, t) for c, t in rows if t < h and c not in held}
    assert set(zip(ids[s.before_holdout], times.iloc[s.before_holdout], strict=True)) == before_h
