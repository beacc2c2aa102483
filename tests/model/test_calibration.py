"""Calibration: fitted on unseen rows, it makes predicted probabilities match observed churn rates."""

from __future__ import annotations

import numpy as np
import pytest

from churn.training.calibration import ProbabilityCalibrator
from churn.training.metrics import probability_metrics, ranking_metrics
from churn.training.model import ChurnModel
from churn.training.train import split_out_of_time


def _distorted(n: int, seed: int):
    """True probabilities, outcomes, and a badly calibrated but well-ranked score (over-confident, shifted)."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(1.2, 4.0, n)
    y = (rng.random(n) < p_true).astype(int)
    lo = np.log(p_true / (1 - p_true))
    score = 1 / (1 + np.exp(-(2.2 * lo + 1.5)))
    return p_true, y, score


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_bins_match_observed_rates(method):
    _, y, s = _distorted(160_000, seed=3)
    fit, test = slice(0, 80_000), slice(80_000, None)
    cal = ProbabilityCalibrator(method).fit(s[fit], y[fit])
    p = cal.predict(s[test])
    yt = y[test]
    before, after = probability_metrics(yt, s[test]), probability_metrics(yt, p)
    assert after["brier"] < before["brier"] and after["log_loss"] < before["log_loss"]
    near = (p > 0.27) & (p < 0.33)
    assert near.sum() > 1000  # about 5,000 rows: the observed rate's standard error is ~0.007
    assert abs(yt[near].mean() - 0.30) < 0.02, yt[near].mean()
    # monotone: ranking is kept
    assert ranking_metrics(yt, p)["roc_auc"] == pytest.approx(ranking_metrics(yt, s[test])["roc_auc"], abs=2e-3)


def test_isotonic_is_monotone_and_bounded():
    _, y, s = _distorted(20_000, seed=4)
    cal = ProbabilityCalibrator("isotonic").fit(s, y)
    grid = np.linspace(0, 1, 2001)
    out = cal.predict(grid)
    assert (np.diff(out) >= 0).all() and out.min() > 0 and out.max() < 1


def test_balanced_weighting_is_undone_by_calibration(synthetic):
    """scale_pos_weight inflates raw probabilities; calibration brings Brier back down on the holdout."""
    frame, features = synthetic
    s = split_out_of_time(frame["customer_id"].to_numpy(dtype=object), frame["as_of"], holdout_snapshots=1,
                          valid_snapshots=1, calibration_share=0.5, holdout_customer_share=0.3, seed=42,
                          valid_customer_share=0.3)
    y = frame["churned"].to_numpy()
    spw = (y[s.train] == 0).sum() / y[s.train].sum()
    m = ChurnModel(features, {"learning_rate": 0.1, "num_leaves": 15}, num_boost_round=300,
                   early_stopping_rounds=20, scale_pos_weight=spw, calibration="sigmoid", n_jobs=1)
    m.fit(frame.iloc[s.train], y[s.train], eval_set=(frame.iloc[s.early_stopping], y[s.early_stopping]),
          calibration_set=(frame.iloc[s.calibration], y[s.calibration]))
    ho = frame.iloc[s.holdout]
    raw, cal = m.predict_raw(ho), m.predict_risk(ho)
    yh = y[s.holdout]
    assert raw.mean() > 2 * yh.mean()  # the weighting shifted the raw scores
    assert probability_metrics(yh, cal)["brier"] <= probability_metrics(yh, raw)["brier"]
    assert abs(cal.mean() - yh.mean()) < abs(raw.mean() - yh.mean()) / 3
