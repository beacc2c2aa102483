"""BG/NBD model: agreement with lifetimes and the published CDNOW fit, Monte Carlo checks of the
conditional predictions, weighting, unit invariance, edge cases and the estimator contract."""

from __future__ import annotations

import importlib.util
import itertools
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats
from sklearn.base import clone

from churn.features.btyd import BetaGeo, BGParams, BTYDFitError, NotFittedError, compress_rfm, rfm_summary

# Fader, Hardie & Lee (2005), CDNOW sample (2357 customers, weeks): published MLE and log-likelihood.
PUBLISHED = BGParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PUBLISHED_LL = -9582.4


def _lifetimes_dir() -> Path:
    """The installed lifetimes package folder, found without importing it (in case it breaks)."""
    spec = importlib.util.find_spec("lifetimes")
    assert spec is not None and spec.submodule_search_locations, "lifetimes (dev extra) is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """The CDNOW summary lifetimes ships, read straight from its CSV (frequency, recency, T in weeks)."""
    return pd.read_csv(_lifetimes_dir() / "datasets" / "cdnow_customers_summary.csv", index_col=0)


@pytest.fixture(scope="module")
def fitted(cdnow) -> BetaGeo:
    return BetaGeo().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


@pytest.fixture(scope="module")
def reference(cdnow):
    """lifetimes' BetaGeoFitter on the same data (lifetimes 0.11.3 imports and fits under pandas 3)."""
    import lifetimes  # a pinned dev dependency: missing is a failure, not a skip

    return lifetimes.BetaGeoFitter().fit(cdnow["frequency"], cdnow["recency"], cdnow["T"])


def _rfm(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return df["frequency"].to_numpy(float), df["recency"].to_numpy(float), df["T"].to_numpy(float)


def _with_params(params) -> BetaGeo:
    """A model carrying given parameters (to compare formulas at identical parameters)."""
    return BetaGeo.from_params(BGParams(*map(float, params)))


def simulate_bgnbd(params: BGParams, T: np.ndarray, horizon: float, rng: np.random.Generator):
    """Draw customers from BG/NBD: their (x, t_x) over (0, T], whether alive at T, and their purchases
    in (T, T + horizon].

    A customer with rate lambda and dropout probability p drops out right after repeat purchase number
    K ~ Geometric(p); with N Poisson(lambda T) would-be purchases in (0, T], x = min(N, K), and t_x is the
    x-th of N uniform arrival times: T * Beta(x, N - x + 1).
    """
    n = T.size
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    K = rng.geometric(p)
    N1 = rng.poisson(lam * T)
    x = np.minimum(N1, K)
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(N1 - x + 1, 1)), 0.0)
    alive = N1 < K
    future = np.where(alive, np.minimum(rng.poisson(lam * horizon), K - N1), 0)
    return x.astype(float), tx, alive, future


# ------------------------------------------------------------------------------------------------------
# Against the published fit and lifetimes
# ------------------------------------------------------------------------------------------------------


def test_fit_matches_published_cdnow_parameters(cdnow, fitted):
    assert fitted.converged_
    assert fitted.n_customers_ == len(cdnow) == 2357
    assert fitted.n_unique_rows_ < len(cdnow)
    np.testing.assert_allclose(fitted.params_, PUBLISHED, atol=5e-4)  # published to 3 decimals
    assert fitted.log_likelihood_ * fitted.n_customers_ == pytest.approx(PUBLISHED_LL, abs=0.05)


@pytest.mark.parametrize("penalizer", [0.0, 0.1])
def test_fit_matches_lifetimes(cdnow, penalizer):
    import lifetimes  # a pinned dev dependency: missing is a failure, not a skip

    x, tx, T = _rfm(cdnow)
    ours = BetaGeo(penalizer=penalizer).fit(x, tx, T)
    ref = lifetimes.BetaGeoFitter(penalizer_coef=penalizer).fit(x, tx, T)
    # Both stop within ~1e-8 of a zero gradient in a flat direction; parameters agree to ~1e-6.
    np.testing.assert_allclose(ours.params_, ref.params_[["r", "alpha", "a", "b"]].to_numpy(), rtol=1e-5)


def test_predictions_match_lifetimes(cdnow, fitted, reference):
    x, tx, T = _rfm(cdnow)
    np.testing.assert_allclose(
        fitted.prob_alive(x, tx, T), reference.conditional_probability_alive(x, tx, T), rtol=1e-5, atol=1e-7
    )
    for t in [1.0, 10.0, 39.0, 100.0]:
        np.testing.assert_allclose(
            fitted.expected_purchases(t, x, tx, T),
            reference.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T),
            rtol=1e-5,
            atol=1e-8,
        )


def test_formulas_match_lifetimes_at_identical_parameters(cdnow, reference):
    """Same parameters in, same numbers out (to rounding), including lifetimes' unconditional P(X(t)=0)."""
    x, tx, T = _rfm(cdnow)
    model = _with_params(reference.params_[["r", "alpha", "a", "b"]])
    np.testing.assert_allclose(
        model.prob_alive(x, tx, T), reference.conditional_probability_alive(x, tx, T), rtol=1e-12
    )
    for t in [0.5, 1.0, 39.0, 1e3, 1e5]:
        np.testing.assert_allclose(
            model.expected_purchases(t, x, tx, T),
            reference.conditional_expected_number_of_purchases_up_to_time(t, x, tx, T),
            rtol=1e-9,
        )
        # A brand-new customer (x = t_x = T = 0): conditional == unconditional.
        assert model.prob_no_purchase(t, 0, 0, 0) == pytest.approx(
            reference.probability_of_n_purchases_up_to_time(t, 0), rel=1e-12
        )
        assert model.expected_purchases(t, 0, 0, 0) == pytest.approx(
            reference.expected_number_of_purchases_up_to_time(t), rel=1e-9
        )


# ------------------------------------------------------------------------------------------------------
# Predictions against the model itself (no lifetimes)
# ------------------------------------------------------------------------------------------------------


def test_predictions_match_monte_carlo_simulation():
    """Simulate BG/NBD customers, then compare, per frequency group, the mean predicted P(alive),
    P(no purchase in the next t) and E[purchases in the next t] with what the simulated customers did.
    By the tower property the group mean of E[. | x, t_x, T] equals the group's expected outcome."""
    rng = np.random.default_rng(20240607)
    n, horizon = 300_000, 26.0
    T = rng.uniform(5.0, 80.0, n)
    x, tx, alive, future = simulate_bgnbd(PUBLISHED, T, horizon, rng)
    model = _with_params(PUBLISHED)
    predicted = {
        "alive": (model.prob_alive(x, tx, T), alive.astype(float)),
        "no_purchase": (model.prob_no_purchase(horizon, x, tx, T), (future == 0).astype(float)),
        "purchases": (model.expected_purchases(horizon, x, tx, T), future.astype(float)),
    }
    groups = {"x=0": x == 0, "x=1": x == 1, "x=2": x == 2, "x=3-5": (x >= 3) & (x <= 5), "x>5": x > 5}
    for name, (pred, actual) in predicted.items():
        for group, mask in groups.items():
            se = actual[mask].std() / np.sqrt(mask.sum())
            assert abs(pred[mask].mean() - actual[mask].mean()) < 4 * se + 1e-3, (name, group)


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize(
    "params",
    [
        PUBLISHED,
        BGParams(0.23, 4.2, 0.13, 0.27),  # a + b < 1: c < 0 for x = 0
        BGParams(5.0, 1.0, 2.0, 20.0),
        BGParams(0.05, 4.0, 50.0, 0.5),  # a - 1 - r - x > 0: the un-transformed series
        BGParams(0.01, 4.0, 150.0, 0.3),
    ],
)
def test_expected_purchases_matches_numerical_integral(params):
    """E[X | data] = P(alive) * E_p[(1 - (1 + p t/(alpha+T))^-(r+x)) / p], p ~ Beta(a, b + x): the rate's
    posterior given alive is Gamma(r + x, alpha + T), and an alive customer with (lambda, p) expects
    (1 - exp(-lambda p t)) / p purchases. Checks the hypergeometric formula in both of its branches."""
    model = _with_params(params)
    r, alpha, a, b = params
    for x, tx, T, t in [(0, 0, 30, 10), (1, 5, 30, 10), (3, 20, 30, 200), (40, 29, 30, 52), (2, 1, 2, 1e4)]:
        k, tau = r + x, t / (alpha + T)
        log_norm = special.betaln(a, b + x)

        def integrand(p, k=k, tau=tau, bx=b + x, log_norm=log_norm):
            log_pdf = (a - 1) * np.log(p) + (bx - 1) * np.log1p(-p) - log_norm
            return -np.expm1(-k * np.log1p(p * tau)) / p * np.exp(log_pdf)

        cuts = np.unique(np.r_[0.0, stats.beta(a, b + x).ppf([1e-9, 0.1, 0.5, 0.9]), 1.0])
        value = sum(
            integrate.quad(integrand, lo, hi, limit=200, epsabs=0, epsrel=1e-9)[0]
            for lo, hi in itertools.pairwise(cuts)
        )
        expected = model.prob_alive(x, tx, T) * value
        assert model.expected_purchases(t, x, tx, T) == pytest.approx(expected, rel=1e-6), (x, tx, T, t)


def test_prob_no_purchase_limits_and_consistency(cdnow, fitted):
    x, tx, T = _rfm(cdnow)
    p_alive = fitted.prob_alive(x, tx, T)
    np.testing.assert_allclose(fitted.prob_no_purchase(0.0, x, tx, T), 1.0)
    np.testing.assert_allclose(fitted.prob_no_purchase(1e300, x, tx, T), 1.0 - p_alive, atol=1e-12)
    previous = np.ones_like(x)
    for t in [1.0, 5.0, 26.0, 104.0]:
        p0 = fitted.prob_no_purchase(t, x, tx, T)
        assert np.all(p0 <= previous + 1e-15)
        # Markov: P(X >= 1) <= E[X].
        assert np.all(1.0 - p0 <= fitted.expected_purchases(t, x, tx, T) + 1e-12)
        previous = p0


def test_one_time_buyers_prob_alive_is_one_but_no_purchase_rises_with_age(fitted):
    T = np.array([1.0, 10.0, 40.0, 400.0])
    zeros = np.zeros_like(T)
    np.testing.assert_array_equal(fitted.prob_alive(zeros, zeros, T), 1.0)
    assert np.all(np.diff(fitted.prob_no_purchase(13.0, zeros, zeros, T)) > 0)
    assert np.all(np.diff(fitted.expected_purchases(13.0, zeros, zeros, T)) < 0)


@settings(max_examples=settings.default.max_examples * 3 // 10)
@given(
    x=st.integers(0, 300),
    recency_share=st.floats(0.0, 1.0),
    T=st.floats(0.0, 1e6),
    t1=st.floats(0.0, 1e6),
    dt=st.floats(0.0, 1e6),
)
def test_predictions_are_bounded_and_monotone_in_t(fitted, x, recency_share, T, t1, dt):
    tx = 0.0 if x == 0 else recency_share * T
    p1, p2 = fitted.prob_no_purchase(t1, x, tx, T), fitted.prob_no_purchase(t1 + dt, x, tx, T)
    e1, e2 = fitted.expected_purchases(t1, x, tx, T), fitted.expected_purchases(t1 + dt, x, tx, T)
    assert 0.0 <= p2 <= p1 + 1e-12 <= 1.0 + 1e-12
    assert 0.0 <= e1 <= e2 * (1 + 1e-9) + 1e-12 and np.isfinite(e2)
    assert 0.0 <= fitted.prob_alive(x, tx, T) <= 1.0


# ------------------------------------------------------------------------------------------------------
# Weights, units
# ------------------------------------------------------------------------------------------------------


def test_weighted_fit_on_unique_rows_equals_fit_on_all_rows(cdnow, fitted):
    counts = cdnow.groupby(["frequency", "recency", "T"]).size().reset_index(name="n")
    weighted = BetaGeo().fit(counts["frequency"], counts["recency"], counts["T"], weights=counts["n"])
    np.testing.assert_allclose(weighted.params_, fitted.params_, rtol=1e-10)
    assert weighted.n_customers_ == fitted.n_customers_
    assert weighted.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-12)

    # Duplicated rows with split weights and zero-weight rows change nothing either.
    dup = pd.concat([counts.assign(n=counts["n"] / 2)] * 2 + [counts.assign(n=0.0, T=counts["T"] + 1)])
    split = BetaGeo().fit(dup["frequency"], dup["recency"], dup["T"], weights=dup["n"])
    np.testing.assert_allclose(split.params_, fitted.params_, rtol=1e-8)


def test_compress_rfm_sums_weights_of_identical_rows():
    x, tx, T, w = compress_rfm([1, 0, 1, 1, 0], [2.0, 0, 2.0, 3.0, 0], [5.0, 5, 5, 5, 6], [1, 2, 3, 4, 5])
    assert list(zip(x, tx, T, w)) == [(0, 0, 5, 2), (0, 0, 6, 5), (1, 2, 5, 4), (1, 3, 5, 4)]
    # Fractional times take the general (factorising) path; output is sorted by (x, t_x, T).
    x, tx, T, w = compress_rfm([2, 1, 2, 1], [0.5, 0.25, 0.5, 0.25], [1.5, 1.5, 1.5, 2.5])
    assert list(zip(x, tx, T, w)) == [(1, 0.25, 1.5, 1), (1, 0.25, 2.5, 1), (2, 0.5, 1.5, 2)]


def test_fit_is_invariant_to_the_time_unit(cdnow, fitted):
    x, tx, T = _rfm(cdnow)
    in_days = BetaGeo().fit(x, tx * 7, T * 7)
    r, alpha, a, b = fitted.params_
    np.testing.assert_allclose(in_days.params_, [r, alpha * 7, a, b], rtol=1e-5)
    np.testing.assert_allclose(
        in_days.prob_no_purchase(28.0, x, tx * 7, T * 7), fitted.prob_no_purchase(4.0, x, tx, T), rtol=1e-5
    )
    np.testing.assert_allclose(
        in_days.log_likelihood_, fitted.log_likelihood_ - np.mean(x) * np.log(7), rtol=1e-9
    )


# ------------------------------------------------------------------------------------------------------
# Edge cases and failures
# ------------------------------------------------------------------------------------------------------


def test_all_one_time_buyers_raise_fit_error():
    T = np.linspace(1, 100, 500)
    with pytest.raises(BTYDFitError, match="no customer has a repeat purchase"):
        BetaGeo().fit(np.zeros(500), np.zeros(500), T)


def test_too_few_customers_raise_fit_error_which_is_a_value_error():
    with pytest.raises(ValueError, match="at least 30 customers"):
        BetaGeo().fit([1, 0, 2, 0, 3], [1.0, 0, 4, 0, 2], [5.0, 5, 6, 7, 8])
    assert issubclass(BTYDFitError, ValueError)


def test_optimiser_failure_raises_fit_error(cdnow):
    with pytest.raises(BTYDFitError, match="did not converge"):
        BetaGeo(max_iter=1).fit(*_rfm(cdnow))


def test_nobody_dropping_out_fits_the_limiting_model():
    """With p = 0 for everyone the likelihood is maximised only as a/(a+b) -> 0: the fit stops at a
    near-zero dropout model with finite, sensible predictions."""
    rng = np.random.default_rng(3)
    T = np.full(2000, 50.0)
    lam = rng.gamma(1.0, 1 / 5.0, T.size)
    x = rng.poisson(lam * T).astype(float)  # p = 0: nobody ever drops out
    tx = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    model = BetaGeo().fit(x, tx, T)
    a, b = model.params_.a, model.params_.b
    assert a / (a + b) < 1e-4
    assert model.prob_alive(x, tx, T).min() > 0.99
    assert np.all(np.isfinite(model.expected_purchases(10.0, x, tx, T)))
    assert model.params_at_bound_ in [(), ("a",), ("b",), ("a", "b")]


def test_small_sample_and_single_repeat_buyer_give_finite_predictions():
    rng = np.random.default_rng(11)
    T = rng.uniform(1, 39, 40)
    x, tx, _, _ = simulate_bgnbd(PUBLISHED, T, 1.0, rng)
    if not np.any(x > 0):  # pragma: no cover - the seed gives repeat buyers
        pytest.skip("seed produced no repeat buyer")
    single = (np.r_[1.0, np.zeros(99)], np.r_[3.0, np.zeros(99)], np.full(100, 10.0))
    for data in [(x, tx, T), single]:
        model = BetaGeo().fit(*data)
        for t in [0.0, 1.0, 1e3, 1e7]:
            for predict in (model.expected_purchases, model.prob_no_purchase):
                assert np.all(np.isfinite(predict(t, *data)))


def test_huge_T_and_large_frequencies_give_finite_outputs():
    rng = np.random.default_rng(5)
    T = rng.uniform(1, 1e6, 3000)  # e.g. very long histories, or T in seconds
    x, tx, _, _ = simulate_bgnbd(BGParams(0.5, 30.0, 0.8, 3.0), T, 1.0, rng)
    model = BetaGeo().fit(x, tx, T)
    np.testing.assert_allclose(model.params_, [0.5, 30.0, 0.8, 3.0], rtol=0.15)
    x_big = np.r_[x, 5000.0, 1e5]
    tx_big, T_big = np.r_[tx, 9e5, 1e6], np.r_[T, 1e6, 1e6]
    for t in [0.0, 1.0, 1e4, 1e8]:
        for predict in (model.expected_purchases, model.prob_no_purchase):
            assert np.all(np.isfinite(predict(t, x_big, tx_big, T_big)))
    assert np.all(np.isfinite(model.prob_alive(x_big, tx_big, T_big)))


@pytest.mark.parametrize(
    "frequency, recency, T, message",
    [
        ([1.0], [5.0], [4.0], "recency must be <= T"),
        ([-1.0], [0.0], [4.0], "whole number"),
        ([1.5], [1.0], [4.0], "whole number"),
        ([0.0], [1.0], [4.0], "recency must be 0 when frequency is 0"),
        ([1.0], [np.nan], [4.0], "non-finite"),
    ],
)
def test_malformed_input_raises_value_error_naming_rows(fitted, frequency, recency, T, message):
    with pytest.raises(ValueError, match=message):
        BetaGeo().fit(frequency * 40, recency * 40, T * 40)
    with pytest.raises(ValueError, match="row 0"):
        fitted.prob_alive(frequency, recency, T)


def test_predict_before_fit_raises_not_fitted():
    from sklearn.exceptions import NotFittedError as SklearnNotFitted

    with pytest.raises(NotFittedError, match="not fitted"):
        BetaGeo().prob_alive([1], [1.0], [2.0])
    # Callers catching scikit-learn's exception types still catch it.
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert set(SklearnNotFitted.__bases__) <= set(NotFittedError.__bases__)


def test_set_params_and_repr():
    model = BetaGeo().set_params(penalizer=0.5)
    assert model.penalizer == 0.5 and repr(model).startswith("BetaGeo(penalizer=0.5")
    with pytest.raises(ValueError, match="invalid parameter 'alpha'"):
        model.set_params(alpha=1)


def test_estimator_contract(cdnow, fitted):
    model = BetaGeo(penalizer=0.01, tol=1e-8)
    assert not any(k.endswith("_") for k in vars(model))  # constructor does no work
    assert model.get_params() == {"penalizer": 0.01, "max_iter": 500, "tol": 1e-8, "min_customers": 30}
    x, tx, T = _rfm(cdnow)
    assert model.fit(x, tx, T) is model
    assert not hasattr(clone(model), "params_")
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.params_ == fitted.params_
    np.testing.assert_array_equal(restored.prob_alive(x, tx, T), fitted.prob_alive(x, tx, T))


# ------------------------------------------------------------------------------------------------------
# rfm_summary
# ------------------------------------------------------------------------------------------------------


def test_rfm_summary_matches_lifetimes_and_excludes_as_of():
    import lifetimes.utils as lifetimes_utils  # a pinned dev dependency: missing is a failure, not a skip

    tx = pd.read_csv(_lifetimes_dir() / "datasets" / "example_transactions.csv", parse_dates=["date"])
    as_of = pd.Timestamp("2014-10-01")
    ours = rfm_summary(tx, as_of, customer_col="id", time_col="date")
    ref = lifetimes_utils.summary_data_from_transaction_data(
        tx[tx["date"] < as_of], "id", "date", observation_period_end=as_of - pd.Timedelta(days=1)
    )
    pd.testing.assert_frame_equal(ours, ref[["frequency", "recency", "T"]].sort_index(), check_dtype=False)


def test_rfm_summary_day_buckets_and_strict_as_of():
    purchases = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "c"],
            "purchased_at": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 18:00",
                    "2024-01-08 10:00",
                    "2024-01-09 23:59",
                    "2024-01-10 00:00",
                ]
            ),
        }
    )
    out = rfm_summary(purchases, "2024-01-10")
    assert list(out.index) == ["a", "b"]  # c bought exactly at as_of: excluded
    assert out.loc["a"].tolist() == [1.0, 7.0, 8.0]  # two purchases on day 1 count once
    assert out.loc["b"].tolist() == [0.0, 0.0, 0.0]
    weeks = rfm_summary(purchases, "2024-01-10", unit_days=7.0)
    assert weeks.loc["a", "recency"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------
# Recovery from whole-day times (how long a million-customer fit takes: benchmarks/features.py)
# ------------------------------------------------------------------------------------------------------


def test_fit_recovers_the_parameters_from_whole_day_times():
    rng = np.random.default_rng(0)
    T = rng.integers(1, 731, 200_000).astype(float)
    x, tx, _, _ = simulate_bgnbd(BGParams(0.5, 30.0, 0.8, 3.0), T, 1.0, rng)
    model = BetaGeo().fit(x, np.floor(tx), T)
    np.testing.assert_allclose(model.params_, [0.5, 30.0, 0.8, 3.0], rtol=0.05)
