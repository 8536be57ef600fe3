"""Error bars: i.i.d. and autocorrelated chains against their exact standard errors."""

import numpy as np
import pytest
from scipy.signal import lfilter

from qvfe.problem import Estimate
from qvfe.stats import (drift_z, integrated_time, log_mean_exp_estimate, mean_and_error,
                        mean_of_runs, split_r_hat, summarize_chunks)


def test_iid_error_is_the_standard_error_of_the_mean():
    x = np.random.default_rng(0).normal(1.0, 2.0, size=4000)
    est = mean_and_error(x)
    assert est.mean == pytest.approx(x.mean())
    assert est.error == pytest.approx(x.std(ddof=1) / np.sqrt(x.size))


def test_ar1_chains_error_accounts_for_autocorrelation():
    # AR(1) with rho = 0.9: tau_int = (1 + rho)/(1 - rho) / 2 = 9.5, so the naive error is
    # sqrt(2 tau) = 4.4 times too small
    rng = np.random.default_rng(1)
    rho, n_chains, n = 0.9, 32, 4000
    x = np.zeros((n_chains, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho**2) * rng.normal(size=n_chains)
    est = mean_and_error(x)
    exact = np.sqrt((1 + rho) / (1 - rho) / (n_chains * n))
    assert est.error == pytest.approx(exact, rel=0.25)
    assert abs(est.mean) < 4 * exact


def _ar1_chains(rng, rho, n_chains, n):
    """Stationary AR(1) chains of unit variance: tau_int = (1 + rho) / (2 (1 - rho))."""
    noise = rng.normal(size=(n_chains, n)) * np.sqrt(1 - rho**2)
    noise[:, 0] = rng.normal(size=n_chains)  # stationary start
    return lfilter([1.0], [1.0, -rho], noise, axis=1)


def _exact_error(rho, n_chains, n):
    """The exact standard deviation of the grand mean of such chains."""
    lag = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    return np.sqrt(np.sum(rho**lag) / n**2 / n_chains)


@pytest.mark.parametrize("n_chains, n, tau", [(32, 64, 10), (31, 64, 10), (16, 64, 20),
                                              (8, 64, 10), (4, 512, 5), (1, 4096, 10),
                                              (64, 3, 20)])
def test_error_bars_are_right_for_any_number_of_walkers(n_chains, n, tau):
    """The rms error bar over 200 repetitions against the exact standard error, within 15 %
    (its own sampling error is about 2 %): netket.stats, used before, was 3 times too small at
    31 walkers (blocks of 2 steps within each chain), 4 times at 16 walkers with tau = 20, and
    ignored the correlation of 2 or 3 consecutive chunks (64 x 3: 0.59 of the exact)."""
    rng = np.random.default_rng(4)
    rho = (2 * tau - 1) / (2 * tau + 1)  # tau_int = tau
    errors = np.array([mean_and_error(_ar1_chains(rng, rho, n_chains, n)).error
                       for _ in range(200)])
    assert 0.85 < np.sqrt(np.mean(errors**2)) / _exact_error(rho, n_chains, n) < 1.15


def test_integrated_time_and_split_r_hat():
    rng = np.random.default_rng(5)
    rho = 19.0 / 21.0  # tau_int = 10
    assert integrated_time(_ar1_chains(rng, rho, 8, 8192)) == pytest.approx(10.0, rel=0.1)
    assert integrated_time(rng.normal(size=(8, 4096))) == pytest.approx(0.5, rel=0.1)
    # BDA3: halves' means against their within-half variance; mixed i.i.d. chains give 1,
    # chains stuck at different levels far more
    assert split_r_hat(rng.normal(size=(16, 1000))) == pytest.approx(1.0, abs=0.01)
    stuck = rng.normal(size=(4, 100)) + np.arange(4)[:, None]
    halves = np.concatenate([stuck[:, :50], stuck[:, 50:]])
    w, b = halves.var(axis=1, ddof=1).mean(), halves.mean(axis=1).var(ddof=1)
    assert split_r_hat(stuck) == pytest.approx(np.sqrt((49 / 50 * w + b) / w), rel=1e-12)
    assert split_r_hat(stuck) > 1.5


def test_short_stationary_chains_cover_the_mean_and_show_no_drift():
    """32 walkers' chains of 64 chunks with tau_int = 10 (an evaluation at N = 33): split-R_hat
    is about 1.3 although nothing is wrong, the walker-mean error bars still cover the exact
    mean 0 in about 68 % of 400 repetitions, and the drift z stays a t with 31 degrees of
    freedom (standard deviation 1.03)."""
    rng = np.random.default_rng(2)
    rho = 19.0 / 21.0  # tau_int = (1 + rho) / (2 (1 - rho)) = 10
    ests = [mean_and_error(_ar1_chains(rng, rho, 32, 64)) for _ in range(400)]
    coverage = np.mean([abs(e.mean) < e.error for e in ests])
    assert 0.60 < coverage < 0.76  # binomial sd 0.023 about 0.68
    assert 1.2 < np.median([e.extra["R_hat"] for e in ests]) < 1.45
    z = np.array([e.extra["drift"] for e in ests])
    assert abs(z.mean()) < 0.2 and 0.9 < z.std() < 1.17  # sd of the sd: 0.036
    assert ests[0].extra["chains"] == 32


def test_a_common_transient_is_seen_as_drift():
    """Walkers that start 3 standard deviations high and relax with the chains' own time
    (tau_int = 10 chunks), a bias of 0.5 in the first half's mean: the paired halves differ by
    about 5 standard errors."""
    rng = np.random.default_rng(3)
    rho = 19.0 / 21.0
    x = _ar1_chains(rng, rho, 32, 64) + 3.0 * rho ** np.arange(64)
    assert drift_z(x) < -3.5
    assert np.isnan(drift_z(x[:1]))


def test_a_constant_observable_is_exact():
    est = summarize_chunks({"S": np.full((10, 64), 0.25)})["S"]
    assert est.mean == 0.25 and est.error == 0.0


def test_log_mean_exp_of_equal_weights():
    log_mean, err, ess = log_mean_exp_estimate(np.full(100, -3.0))
    assert log_mean == pytest.approx(-3.0) and err == 0.0 and ess == pytest.approx(100)


def test_mean_of_runs_takes_the_larger_of_propagated_error_and_scatter():
    # scattered beyond their errors: the scatter's standard error, std(ddof=1)/sqrt(k) = 1
    est = mean_of_runs([Estimate(1.0, 0.1), Estimate(3.0, 0.1)])
    assert est.mean == pytest.approx(2.0) and est.error == pytest.approx(1.0)
    assert est.extra["scatter"] == pytest.approx(np.sqrt(2.0))
    # agreeing within their errors: the propagated sqrt(0.3^2 + 0.4^2)/2 = 0.25
    est = mean_of_runs([Estimate(1.0, 0.3), Estimate(1.1, 0.4)])
    assert est.mean == pytest.approx(1.05) and est.error == pytest.approx(0.25)
    assert mean_of_runs([Estimate(2.0, 0.5)]) == Estimate(2.0, 0.5)
    with pytest.raises(ValueError, match="at least one"):
        mean_of_runs([])
