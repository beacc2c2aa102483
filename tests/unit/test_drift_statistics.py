"""The drift and estimation statistics on numbers worked out by hand (expectations written out, never computed
with the module's formulas), and CBPE's expected ROC AUC against a Monte Carlo simulation of the labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churn.monitoring.statistics import bin_shares, expected_roc_auc, js_distance, psi


def test_bin_shares_cut_at_the_edges_counting_ties_upwards() -> None:
    # edges 1 and 3: bins (-inf, 1), [1, 3), [3, inf); NaN left out.
    values = np.array([0.0, 1.0, 2.0, 3.0, 3.0, 7.0, np.nan])
    assert bin_shares(values, np.array([1.0, 3.0])).tolist() == [1 / 6, 2 / 6, 3 / 6]
    assert bin_shares(np.array([np.nan]), np.array([1.0])).tolist() == [0.0, 0.0]


def test_psi_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75], epsilon=0.0) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(0.0, abs=1e-12)
    # An empty bin stays finite: shares + 1e-4, renormalised.
    e, a = np.array([0.5, 0.5]) + 1e-4, np.array([1.0, 0.0]) + 1e-4
    e, a = e / e.sum(), a / a.sum()
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx((a[0] - e[0]) * math.log(a[0] / e[0])
                                                        + (a[1] - e[1]) * math.log(a[1] / e[1]))


def test_jensen_shannon_distance_by_hand() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_distance([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0)
    # P = (1/2, 1/2), Q = (1, 0), M = (3/4, 1/4): KL(P||M) = 1/2 log2(2/3) + 1/2 log2(2), KL(Q||M) = log2(4/3)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert js_distance([0.5, 0.5], [1.0, 0.0]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))
    assert js_distance([2, 2], [4, 0]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))  # counts are normalised


def test_expected_roc_auc_by_hand() -> None:
    # p = (0.9, 0.1): expected churners 1.0 and stayers 1.0; after the first row TP 0.9, FP 0.1, so the curve
    # runs (0, 0) -> (0.1, 0.9) -> (1, 1): area 0.1 x 0.45 + 0.9 x 0.95 = 0.9.
    assert expected_roc_auc(np.array([0.9, 0.1])) == pytest.approx(0.9)
    # Every row alike: one step from (0, 0) to (1, 1), a coin toss.
    assert expected_roc_auc(np.full(5, 0.3)) == pytest.approx(0.5)
    # Ties form one step: (0.8, 0.8, 0.2) -> after the tied pair TP 1.6 of 1.8, FP 0.4 of 1.2.
    tpr, fpr = 1.6 / 1.8, 0.4 / 1.2
    assert expected_roc_auc(np.array([0.8, 0.2, 0.8])) == pytest.approx(fpr * tpr / 2 + (1 - fpr) * (tpr + 1) / 2)
    assert math.isnan(expected_roc_auc(np.zeros(4))) and math.isnan(expected_roc_auc(np.array([0.5])))


def test_expected_roc_auc_matches_the_mean_realised_auc_of_labels_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(0.6, 6.0, 4000)  # a low churn rate, like ours
    realised = [roc_auc_score(rng.random(p.size) < p, p) for _ in range(200)]
    assert expected_roc_auc(p) == pytest.approx(np.mean(realised), abs=0.005)
