"""Error bars: i.i.d. and autocorrelated chains against their exact standard errors."""

import numpy as np
import pytest

from qvfe.stats import log_mean_exp_estimate, mean_and_error, summarize_chunks


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


def test_a_constant_observable_is_exact():
    est = summarize_chunks({"S": np.full((10, 64), 0.25)})["S"]
    assert est.mean == 0.25 and est.error == 0.0


def test_log_mean_exp_of_equal_weights():
    log_mean, err, ess = log_mean_exp_estimate(np.full(100, -3.0))
    assert log_mean == pytest.approx(-3.0) and err == 0.0 and ess == pytest.approx(100)
