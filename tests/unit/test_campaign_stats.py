"""The campaign statistics against published values and arithmetic written out by hand (never the module's
own formulas): Wilson and Newcombe from Newcombe (1998), MOVER-R and the z test by hand, and the
sample-size arithmetic of issue 24 (a 10% control group detects 50% -> 37.5% with 135 controls, but
20% -> 17.6% only with about 2,300).
"""

from __future__ import annotations

import math

import pytest

from churn.campaigns import stats


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Stat Med 17:857, Table I
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_interval_matches_newcombe_1998(k, n, low, high):
    lo, hi = stats.wilson_interval(k, n)
    assert (round(lo, 4), round(hi, 4)) == (low, high)


@pytest.mark.parametrize(("counts", "low", "high"), [
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", Stat Med
    # 17:873, Table II, method 10 (hybrid score), examples (a)-(h); (c) also by hand: Wilson 6/7 =
    # (0.48687, 0.97432), 2/7 = (0.08222, 0.64107), L = 0.57143 - sqrt(0.37027^2 + 0.35535^2) = 0.05823
    ((56, 70, 48, 80), 0.0524, 0.3339),
    ((9, 10, 3, 10), 0.1705, 0.8090),
    ((6, 7, 2, 7), 0.0582, 0.8062),
    ((5, 56, 0, 29), -0.0381, 0.1926),
    ((0, 10, 0, 20), -0.1611, 0.2775),
    ((0, 10, 0, 10), -0.2775, 0.2775),
    ((10, 10, 0, 20), 0.6791, 1.0000),
    ((10, 10, 0, 10), 0.6075, 1.0000),
])
def test_newcombe_interval_matches_the_published_table(counts, low, high):
    d, lo, hi = stats.newcombe_interval(*counts)
    assert d == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (round(lo, 4), round(hi, 4)) == (low, high)


def test_a_small_campaign_table_by_hand():
    # 8 of 40 contacted churned, 20 of 40 held out: pooled 28/80 = 0.35,
    # se = sqrt(0.35 x 0.65 x (1/40 + 1/40)) = sqrt(0.011375) = 0.106654, z = -0.3 / 0.106654 = -2.81284,
    # p = 2 x Phi(-2.81284) = 0.004911.
    z, p = stats.two_proportion_test(8, 40, 20, 40)
    assert z == pytest.approx(-2.81284, abs=1e-5)
    assert p == pytest.approx(0.004911, abs=1e-6)
    # Wilson 8/40 = (0.10500, 0.34757), 20/40 = (0.35200, 0.64800):
    # L = -0.3 - sqrt(0.095^2 + 0.148^2) = -0.47587, U = -0.3 + sqrt(0.14757^2 + 0.148^2) = -0.09099
    d, lo, hi = stats.newcombe_interval(8, 40, 20, 40)
    assert (d, round(lo, 4), round(hi, 4)) == (pytest.approx(-0.3), -0.4759, -0.0910)


def test_save_rate_interval_by_mover_r_by_hand():
    # 30/300 treated vs 50/250 control: ratio 0.1 / 0.2 = 0.5, save rate 0.5.
    # Wilson: treated (0.070948, 0.139166), control (0.155124, 0.253956).
    # Lower end of the ratio solves a R^2 + b R + c = 0 with a = u2 (2 p2 - u2) = 0.037089, b = -2 p1 p2 = -0.04,
    # c = l1 (2 p1 - l1) = 0.009156: R = (0.04 - sqrt(0.0016 - 4 x 0.037089 x 0.009156)) / (2 x 0.037089)
    # = (0.04 - 0.015547) / 0.074178 = 0.32966. Upper: a = l2 (2 p2 - l2) = 0.037986, c = u1 (2 p1 - u1) =
    # 0.008466: R = (0.04 + sqrt(0.0016 - 0.0012864)) / 0.075972 = 0.75961. Save rate 1 - R: (0.2404, 0.6703).
    r, lo, hi = stats.ratio_interval(30, 300, 50, 250)
    assert r == pytest.approx(0.5)
    assert (round(lo, 4), round(hi, 4)) == (0.3297, 0.7596)


def test_edge_counts_give_open_or_missing_limits():
    assert all(math.isnan(v) for v in stats.ratio_interval(3, 10, 0, 10))  # no control churner: no ratio
    r, lo, hi = stats.ratio_interval(0, 100, 10, 100)
    assert (r, lo) == (0.0, 0.0) and 0 < hi < 1
    assert all(math.isnan(v) for v in stats.newcombe_interval(1, 0, 1, 5))
    assert stats.two_proportion_test(0, 10, 0, 10) == (0.0, 1.0)


def test_detectable_difference_of_issue_24_by_hand():
    # Critical tier, 10% control: 135 controls and 1,215 treated, control churn 50%. At treated churn 37.5%:
    # pbar = (1215 x 0.375 + 135 x 0.5) / 1350 = 0.3875; 1.959964 x sqrt(0.3875 x 0.6125 x (1/1215 + 1/135))
    # = 0.08663; 0.841621 x sqrt(0.375 x 0.625 / 1215 + 0.25 / 135) = 0.03806; total 0.12469 ~ the gap 0.125,
    # so 37.5% is (just) detectable with 80% power.
    assert stats.power(0.375, 0.5, 1215, 135) == pytest.approx(0.802, abs=0.001)
    assert stats.detectable_churn(0.5, 1215, 135) == pytest.approx(0.375, abs=0.001)
    # Medium tier: control churn 20%, 2,300 controls and 20,700 treated: pbar = 0.17843,
    # 1.959964 x sqrt(0.17843 x 0.82157 x 0.00048309) = 0.016492, 0.841621 x sqrt(7.006e-6 + 6.957e-5) =
    # 0.007364; total 0.02386 ~ 0.2 - 0.176 = 0.024.
    assert stats.detectable_churn(0.2, 20_700, 2_300) == pytest.approx(0.176, abs=0.001)
    # So a 12% save rate at 20% churn needs about 2,300 controls at a 10% share; 25% at 50% needs 135.
    assert 2_250 <= stats.controls_needed(0.2, 0.12, 0.10) <= 2_300
    assert stats.controls_needed(0.5, 0.25, 0.10) == 135


def test_recommended_control_share():
    # 1,350 customers at 50% churn expecting a 25% save rate: the usual 10% is just enough.
    big = stats.recommended_control_share(1_350, 0.5, 0.25, 0.10)
    assert (big.recommended_share, big.controls_needed, big.campaigns_needed) == (0.10, 135, 1)
    # 5,000 at 20% churn expecting 12%: no share up to 50% is enough in one campaign; at 10% it takes
    # ceil(2,273 / 500) = 5 campaigns pooled.
    small = stats.recommended_control_share(5_000, 0.2, 0.12, 0.10)
    assert small.recommended_share is None and small.campaigns_needed == 5
    # In between, a larger share does it: 12,000 customers, 20% churn, 12% expected.
    mid = stats.recommended_control_share(12_000, 0.2, 0.12, 0.10)
    assert mid.recommended_share is not None and 0.10 < mid.recommended_share <= 0.5
    n_c = round(12_000 * mid.recommended_share)
    assert stats.power(0.176, 0.2, 12_000 - n_c, n_c) >= 0.8
    n_c = round(12_000 * (mid.recommended_share - 0.01))
    assert stats.power(0.176, 0.2, 12_000 - n_c, n_c) < 0.8  # and one point less is not
