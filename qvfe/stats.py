"""Error bars for Monte Carlo averages: autocorrelation-aware means (via ``netket.stats``)."""

from __future__ import annotations

import os

import numpy as np

from qvfe.problem import Estimate

_netket_stats = None

# netket.stats takes the error from the spread of the chains' means when it has at least this many
# chains (its batch estimator), and from blocks within each chain otherwise
BATCH_ESTIMATOR_CHAINS = 32


def _nk_stats():
    """Import netket.stats without letting it change global JAX settings behind the user's back:
    it switches on x64, and (unless ``NETKET_SHARDING`` says otherwise) installs a global mesh."""
    global _netket_stats
    if _netket_stats is None:
        import jax

        x64 = jax.config.jax_enable_x64
        unset = "NETKET_SHARDING" not in os.environ
        if unset:  # read once, when netket is first imported
            os.environ["NETKET_SHARDING"] = "0"
        try:
            import netket.stats as nks
        finally:
            if unset:
                del os.environ["NETKET_SHARDING"]
        jax.config.update("jax_enable_x64", x64)
        _netket_stats = nks
    return _netket_stats


def mean_and_error(chains: np.ndarray) -> Estimate:
    """Mean and standard error of ``chains`` (shape (n_chains, n_steps), or (n,) for i.i.d. data).

    A 2-D array is read as independent Markov chains along its rows; the error then accounts for
    the integrated autocorrelation time. A 1-D array is treated as independent samples.
    """
    x = np.asarray(chains, dtype=np.float64)
    if x.ndim == 1:
        n = x.size
        err = x.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        return Estimate(float(x.mean()), float(err))
    if np.all(x == x.flat[0]):
        # a constant (e.g. S of a single allowed occupation, V of the ideal gas): exact, and
        # netket's autocorrelation time would be 0/0
        return Estimate(float(x.flat[0]), 0.0)
    if x.shape[1] < 4:
        # too short to see an autocorrelation: treat all entries as independent
        return mean_and_error(x.reshape(-1))
    s = _nk_stats().statistics(x)
    extra = {"tau": float(s.tau_corr)}
    if np.isfinite(s.R_hat):
        extra["R_hat"] = float(s.R_hat)
    extra["chains"] = x.shape[0]
    drift = drift_z(x)
    if np.isfinite(drift):
        extra["drift"] = drift
    return Estimate(float(np.real(s.mean)), float(s.error_of_mean), extra)


def drift_z(chains: np.ndarray) -> float:
    """How far the chains' second half lies from their first, in standard errors (a paired z).

    Each chain gives the difference of its two halves' means; across independent stationary
    chains these scatter about 0 whatever the autocorrelation time, so their mean over its
    standard error is about a Student t with n_chains − 1 degrees of freedom. A common drift
    (walkers still equilibrating to the final parameters) moves it away from 0; no error bar
    from the chains includes that bias, and split-R_hat cannot tell it from chains that are
    merely short against their autocorrelation time. NaN for fewer than 2 chains of 2 entries.
    """
    x = np.asarray(chains, dtype=np.float64)
    n_chains, n = x.shape
    half = n // 2
    if n_chains < 2 or half < 1:
        return float("nan")
    d = x[:, n - half:].mean(axis=1) - x[:, :half].mean(axis=1)
    se = d.std(ddof=1) / np.sqrt(n_chains)
    if se == 0:
        return 0.0 if d.mean() == 0 else float(np.copysign(np.inf, d.mean()))
    return float(d.mean() / se)


def summarize_chunks(samples: dict[str, np.ndarray]) -> dict[str, Estimate]:
    """Default summary: each per-sample observable stacked as (n_chunks, batch) -> Estimate.

    Columns (walkers) are chains in time, so the array is transposed to (batch, n_chunks).
    """
    return {k: mean_and_error(np.asarray(v).T) for k, v in samples.items()}


def mean_of_runs(estimates: list[Estimate]) -> Estimate:
    """The mean of independent runs of one calculation (seeds), with the larger of two errors:
    their statistical errors propagated, and the standard error of their scatter.

    Runs that optimise a model differ by more than their evaluations' error bars when the
    optimisation has not converged (dense hydrogen's N = 16 seeds: E −0.411 ± 0.006 and
    −0.429 ± 0.006 Ha/atom), and only the scatter sees that. ``extra["scatter"]`` holds the
    runs' standard deviation (ddof = 1).
    """
    if not estimates:
        raise ValueError("mean_of_runs needs at least one estimate")
    means = np.array([e.mean for e in estimates], dtype=np.float64)
    errors = np.array([e.error for e in estimates], dtype=np.float64)
    k = means.size
    propagated = float(np.sqrt(np.sum(errors**2)) / k)
    if k == 1:
        return Estimate(float(means[0]), propagated)
    scatter = float(means.std(ddof=1))
    return Estimate(float(means.mean()), max(propagated, scatter / np.sqrt(k)),
                    {"scatter": scatter})


def log_mean_exp_estimate(log_w: np.ndarray) -> tuple[float, float, float]:
    """ln E[w] from i.i.d. log-weights, its delta-method standard error, and the effective sample size.

    Used for the importance-sampled free energy F = -T ln E_q[exp(-beta E - ln q)].
    """
    lw = np.asarray(log_w, dtype=np.float64).reshape(-1)
    m = lw.max()
    w = np.exp(lw - m)
    mean_w = w.mean()
    n = lw.size
    log_mean = m + np.log(mean_w)
    # std error of ln(mean w) = std(w) / (sqrt(n) mean w)
    err = w.std(ddof=1) / (np.sqrt(n) * mean_w)
    ess = w.sum() ** 2 / np.sum(w**2)
    return float(log_mean), float(err), float(ess)
