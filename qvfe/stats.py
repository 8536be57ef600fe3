"""Error bars for Monte Carlo averages: i.i.d. samples and independent Markov chains (walkers).

Chains (an array ``(n_chains, n_steps)``, one row per walker) get their standard error from the
spread of the walkers' means when there are ``WALKER_MEANS_MIN_CHAINS`` or more: the walkers are
independent chains, so that is unbiased whatever the autocorrelation time and however short the
chains, and it holds any disagreement between them. Fewer walkers cannot show their spread well,
and the error comes from the integrated autocorrelation time of the chains (Sokal's automatic
window, c = 5, on their pooled autocorrelation function). Both are written here rather than taken
from ``netket.stats``, whose estimator with fewer than 32 chains takes blocks of n_steps/32 steps
within each chain: with 16 walkers of 64 chunks and tau = 20 its error bars were 4 times too
small, and 3 times too small at 31 walkers against 32 (a review's AR(1) checks, now
``tests/test_stats.py``). Next to the error: ``tau``, the integrated autocorrelation time
(variance of the mean = 2 tau var / n per chain, so 1/2 for independent steps), split-``R_hat``
in the form of Gelman et al., Bayesian Data Analysis (3rd ed.), ``chains`` and ``drift``.
"""

from __future__ import annotations

import numpy as np

from qvfe.problem import Estimate

# From this many walkers the error is the standard error of their means (a Student t with
# n_chains − 1 degrees of freedom: 8 walkers cover the mean with 65 % instead of 68 %)
WALKER_MEANS_MIN_CHAINS = 8
# Sokal's window: the smallest M with M >= SOKAL_WINDOW * tau(M)
SOKAL_WINDOW = 5.0
# shortest chains from which an autocorrelation time is estimated
MIN_STEPS_FOR_TAU = 4


def integrated_time(chains: np.ndarray) -> float:
    """Integrated autocorrelation time of independent chains (rows) of one process, in steps:
    tau = 1/2 + sum_{t>=1} rho(t) over Sokal's automatic window, rho the chains' pooled
    normalised autocorrelation function (by FFT, about the grand mean: chains that disagree raise
    it, where each row's own mean would hide their spread and halve tau on chains of 6 tau).
    1/2 for independent steps; low by O(tau/n) on short chains, as every window estimator is."""
    x = np.asarray(chains, dtype=np.float64)
    n = x.shape[1]
    y = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()  # zero padding: no wrap-around
    f = np.fft.rfft(y, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n].sum(axis=0)
    if acov[0] <= 0:
        return 0.5
    tau = np.cumsum(acov / acov[0]) - 0.5  # tau(M) = 1/2 + sum_{t=1}^{M} rho(t)
    window = np.arange(n) >= SOKAL_WINDOW * tau
    return float(max(tau[np.argmax(window)] if window.any() else tau[-1], 0.5))


def split_r_hat(chains: np.ndarray) -> float:
    """Split-R_hat (Gelman et al., BDA3 §11.4): each chain cut in two halves, then
    sqrt(((n − 1)/n W + B/n) / W) with W the mean within-half variance and B/n the variance of
    the halves' means (n the half length). 1 for mixed chains; NaN below 2 steps per half."""
    x = np.asarray(chains, dtype=np.float64)
    half = x.shape[1] // 2
    if half < 2:
        return float("nan")
    halves = np.concatenate([x[:, :half], x[:, x.shape[1] - half:]])
    w = halves.var(axis=1, ddof=1).mean()
    b_over_n = halves.mean(axis=1).var(ddof=1)
    if w == 0:
        return float("nan")
    return float(np.sqrt(((half - 1) / half * w + b_over_n) / w))


def mean_and_error(chains: np.ndarray) -> Estimate:
    """Mean and standard error of ``chains`` (shape (n_chains, n_steps), or (n,) for i.i.d. data).

    A 2-D array is read as independent Markov chains along its rows: with
    ``WALKER_MEANS_MIN_CHAINS`` or more the error is the standard error of their means, with fewer
    it comes from their integrated autocorrelation time (module docstring); ``extra`` holds
    ``tau``, ``R_hat``, ``chains`` and ``drift`` where the chains are long enough for them. A 1-D
    array is treated as independent samples.
    """
    x = np.asarray(chains, dtype=np.float64)
    if x.ndim == 1:
        n = x.size
        err = x.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        return Estimate(float(x.mean()), float(err))
    if np.all(x == x.flat[0]):
        # a constant (e.g. S of a single allowed occupation, V of the ideal gas): exact, and an
        # autocorrelation time would be 0/0
        return Estimate(float(x.flat[0]), 0.0)
    n_chains, n = x.shape
    if n_chains < 2 and n < MIN_STEPS_FOR_TAU:
        return mean_and_error(x.reshape(-1))  # one chain of a few steps: nothing to go on
    tau = integrated_time(x) if n >= MIN_STEPS_FOR_TAU else None
    if tau is None or n_chains >= WALKER_MEANS_MIN_CHAINS:
        err = x.mean(axis=1).std(ddof=1) / np.sqrt(n_chains)
    else:
        err = np.sqrt(2.0 * tau * x.var() / x.size)
    extra: dict[str, float] = {}
    if tau is not None:
        extra["tau"] = tau
        r_hat = split_r_hat(x)
        if np.isfinite(r_hat):
            extra["R_hat"] = r_hat
    extra["chains"] = n_chains
    drift = drift_z(x)
    if np.isfinite(drift):
        extra["drift"] = drift
    return Estimate(float(x.mean()), float(err), extra)


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
    runs' standard deviation (ddof = 1). With two or three runs the scatter has one or two
    degrees of freedom, so where it dominates the error covers the truth about 55 % of the time,
    not 68 %.
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

    Used for the importance-sampled free energy F = -T ln E_q[exp(-beta E - ln q)]. E[w] is
    estimated without bias, its logarithm is not: ln of the sample mean lies below ln E[w] by
    about err^2/2 (Jensen), so F_is is high by about T err^2/2, negligible where err is small.
    With heavy-tailed weights (an ESS of a few) the delta-method error is itself too small (for
    ln w ~ N(0, 3^2) and 1000 samples it covers the truth 39 % of the time instead of 68 %):
    read F_is only where the ESS is large.
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
