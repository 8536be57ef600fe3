"""Metropolis sampling of classical Boltzmann densities exp(-beta E(X)) of N particles in d
dimensions, and the Coulomb-trap free energies it yields (coupling-constant integration, AIS).

The sampler is a pair of pure functions over a ``MetropolisState`` pytree: ``init`` and ``step``
(plus ``run`` to scan many steps and record every ``thin``-th). All walkers move at once (vmapped),
each proposing a Gaussian displacement of every coordinate with one shared width. During burn-in the
width is adapted toward a target acceptance (50% by default) and then frozen, so the production
chain is a proper time-homogeneous Markov chain. The energy is a function of one configuration
``x`` of shape (N, d); callers never vmap it themselves.

>>> import jax
>>> from qvfe.physics.coulomb_trap import energy
>>> x = sample_boltzmann(jax.random.PRNGKey(0), energy, beta=1.0, n_particles=2, dim=2,
...                      n_samples=64, n_walkers=16, burn_in=100, thin=5)
>>> x.shape
(64, 2, 2)
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics import coulomb_trap
from qvfe.stats import log_mean_exp_estimate, mean_and_error

EnergyFn = Callable[[jax.Array], jax.Array]

__all__ = [
    "AISResult",
    "CouplingIntegrationResult",
    "MetropolisState",
    "acceptance",
    "annealed_importance_free_energy",
    "burn_in",
    "coupling_integration_free_energy",
    "coupling_nodes",
    "init",
    "reset_counters",
    "run",
    "sample_boltzmann",
    "step",
]


class MetropolisState(NamedTuple):
    """Walkers and everything the chain needs to continue exactly.

    x: (n_walkers, N, d) positions; energy: (n_walkers,) E(x) of each walker under the energy the
    chain is run with; step_size: () width of the Gaussian proposal per coordinate; key: PRNG key;
    accepted, proposed: () counts since the last ``reset_counters`` (floats, summed over walkers).
    """

    x: jax.Array
    energy: jax.Array
    step_size: jax.Array
    key: jax.Array
    accepted: jax.Array
    proposed: jax.Array


def init(key: jax.Array, x0: jax.Array, energy_fn: EnergyFn, step_size: float) -> MetropolisState:
    """Start walkers at ``x0`` (n_walkers, N, d) with proposal width ``step_size``."""
    dtype = x0.dtype
    return MetropolisState(
        x=x0,
        energy=jax.vmap(energy_fn)(x0),
        step_size=jnp.asarray(step_size, dtype=dtype),
        key=key,
        accepted=jnp.zeros((), dtype=dtype),
        proposed=jnp.zeros((), dtype=dtype),
    )


def step(
    state: MetropolisState,
    energy_fn: EnergyFn,
    beta: float | jax.Array,
    *,
    adapt: bool = False,
    target: float = 0.5,
    rate: float = 0.05,
) -> MetropolisState:
    """One Metropolis move of every walker (all coordinates at once).

    With ``adapt=True`` the log step width moves by ``rate * (acceptance - target)``, acceptance
    being this move's fraction over the walkers (a Robbins-Monro update: only for burn-in, because
    an adapting width breaks detailed balance of the chain as a whole).
    """
    key, k_prop, k_acc = jax.random.split(state.key, 3)
    x = state.x
    x_new = x + state.step_size * jax.random.normal(k_prop, x.shape, dtype=x.dtype)
    e_new = jax.vmap(energy_fn)(x_new)
    log_ratio = -beta * (e_new - state.energy)
    log_u = jnp.log(jax.random.uniform(k_acc, state.energy.shape, dtype=x.dtype))
    # A NaN or +inf energy (e.g. coincident particles) compares False: the move is rejected.
    accept = log_u < log_ratio
    x = jnp.where(accept[:, None, None], x_new, x)
    energy = jnp.where(accept, e_new, state.energy)
    frac = jnp.mean(accept.astype(x.dtype))
    step_size = state.step_size
    if adapt:
        step_size = step_size * jnp.exp(rate * (frac - target))
    return MetropolisState(
        x=x,
        energy=energy,
        step_size=step_size,
        key=key,
        accepted=state.accepted + jnp.sum(accept.astype(x.dtype)),
        proposed=state.proposed + accept.size,
    )


def reset_counters(state: MetropolisState) -> MetropolisState:
    """Zero the acceptance counters (e.g. after burn-in)."""
    zero = jnp.zeros_like(state.accepted)
    return state._replace(accepted=zero, proposed=zero)


def acceptance(state: MetropolisState) -> jax.Array:
    """Fraction of accepted moves since the counters were last reset."""
    return state.accepted / jnp.maximum(state.proposed, 1)


def burn_in(
    state: MetropolisState, energy_fn: EnergyFn, beta: float | jax.Array, n_steps: int, **adapt_kw
) -> MetropolisState:
    """``n_steps`` adapting moves, after which the width is frozen and the counters reset."""
    state = jax.lax.fori_loop(
        0, n_steps, lambda _, s: step(s, energy_fn, beta, adapt=True, **adapt_kw), state
    )
    return reset_counters(state)


_burn_in = burn_in  # sample_boltzmann's ``burn_in`` argument shadows the function name


def run(
    state: MetropolisState,
    energy_fn: EnergyFn,
    beta: float | jax.Array,
    n_records: int,
    thin: int = 1,
    *,
    observable: Callable[[jax.Array], Any] | None = None,
) -> tuple[MetropolisState, Any]:
    """``n_records * thin`` frozen-width moves, recording after every ``thin``-th.

    Records ``observable(x)`` per walker (default: the positions), stacked as (n_records,
    n_walkers, ...); transpose to (n_walkers, n_records) for ``qvfe.stats.mean_and_error``.
    """
    obs = jax.vmap(observable) if observable is not None else (lambda x: x)

    def body(s, _):
        s = jax.lax.fori_loop(0, thin, lambda _, t: step(t, energy_fn, beta), s)
        return s, obs(s.x)

    return jax.lax.scan(body, state, None, length=n_records)


def sample_boltzmann(
    key: jax.Array,
    energy_fn: EnergyFn,
    beta: float,
    n_particles: int,
    dim: int,
    n_samples: int,
    n_walkers: int = 256,
    burn_in: int = 2000,
    thin: int = 10,
    *,
    init_scale: float | None = None,
    dtype: Any = None,
) -> jax.Array:
    """``n_samples`` configurations (n_samples, N, d) from exp(-beta E) by Metropolis.

    Walkers start Gaussian with width ``init_scale`` (default 1/sqrt(2 beta), the width of the unit
    harmonic trap |x|^2), burn in with an adapting proposal width, then record every ``thin``-th
    step. Rows are ordered step-major: consecutive rows come from different walkers, and rows
    ``n_walkers`` apart are ``thin`` steps apart on the same walker. Jit-able with the integer
    arguments static; float64 when x64 is enabled (or pass ``dtype``).
    """
    if init_scale is None:
        init_scale = 1.0 / math.sqrt(2.0 * beta)
    dtype = dtype or jnp.result_type(float)
    k_init, k_chain = jax.random.split(key)
    x0 = init_scale * jax.random.normal(k_init, (n_walkers, n_particles, dim), dtype=dtype)
    # Start near the right width: sqrt(Nd) coordinates move at once, so ~2.4/sqrt(Nd) of the
    # marginal width is the classic optimum; the adaptation takes it from there.
    state = init(k_chain, x0, energy_fn, init_scale * 2.4 / math.sqrt(n_particles * dim))
    state = _burn_in(state, energy_fn, beta, burn_in)
    n_records = -(-n_samples // n_walkers)
    _, xs = run(state, energy_fn, beta, n_records, thin)
    return xs.reshape((-1, n_particles, dim))[:n_samples]


# ---------------------------------------------------------------------------------------------
# Free energy of the Coulomb trap from the harmonic reference, E_lambda = sum |x|^2 + lambda V_C:
# d(beta F_lambda)/d lambda = beta <V_C>_lambda, so F = F_0 + int_0^1 <V_C>_lambda d lambda.
# ---------------------------------------------------------------------------------------------


def coupling_nodes(n_nodes: int, power: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes lambda_k and weights w_k for int_0^1 f(lambda) d lambda with
    lambda = s^power.

    Why the substitution: once the Coulomb term dominates the thermal spread (lambda beyond
    ~beta^{-3/2}) the cluster size scales as lambda^{1/3}, so <V_C>_lambda ~ lambda^{-1/3} with a
    steep rise toward small lambda; with lambda = s^3 the integrand 3 s^2 <V_C>_{s^3} is ~ linear in
    s and Gauss-Legendre converges fast (checked against exact N = 2 values in the tests).
    """
    s, w = np.polynomial.legendre.leggauss(n_nodes)
    s, w = 0.5 * (s + 1.0), 0.5 * w
    return s**power, w * power * s ** (power - 1.0)


def _harmonic_samples(key: jax.Array, shape: tuple[int, ...], beta: float, dtype) -> jax.Array:
    # exact draws from exp(-beta sum |x|^2): independent Gaussians of variance 1/(2 beta)
    return jax.random.normal(key, shape, dtype=dtype) / math.sqrt(2.0 * beta)


def _coupled_energy(lam: jax.Array) -> EnergyFn:
    return lambda x: coulomb_trap.harmonic_energy(x) + lam * coulomb_trap.coulomb_energy(x)


class CouplingIntegrationResult(NamedTuple):
    """Per-particle F = F_0 + int <V_C> d lambda with its standard error, and per-node diagnostics
    (``coulomb``/``coulomb_err``/``tau`` are totals over pairs, not per particle)."""

    F: float
    error: float
    F0: float
    lam: np.ndarray
    weights: np.ndarray
    coulomb: np.ndarray
    coulomb_err: np.ndarray
    tau: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    n_samples: int


def coupling_integration_free_energy(
    key: jax.Array,
    n_particles: int,
    dim: int,
    beta: float,
    n_nodes: int = 10,
    *,
    n_walkers: int = 256,
    burn_in: int = 2000,
    n_records: int = 500,
    thin: int = 10,
    power: float = 3.0,
) -> CouplingIntegrationResult:
    """Free energy per particle of the Coulomb trap by coupling-constant thermodynamic integration.

    At each Gauss-Legendre node lambda_k (see ``coupling_nodes``) ``n_walkers`` independent chains
    start from exact samples of the harmonic trap, burn in at lambda_k (adapting the width), then
    record V_C every ``thin`` moves, ``n_records`` times. Node means carry autocorrelation-aware
    errors (walkers are independent chains); nodes are independent, so their errors add in
    quadrature with the weights. The quadrature error itself is not in ``error``: compare two
    ``n_nodes``. Needs d >= 2 (in 1D <V_C>_0 diverges and the integrand is singular at lambda = 0).
    """
    if dim < 2:
        raise ValueError("coupling integration from the harmonic trap needs dim >= 2")
    lam, weights = coupling_nodes(n_nodes, power)
    dtype = jnp.result_type(float)
    step0 = 2.4 / math.sqrt(2.0 * beta * n_particles * dim)

    @jax.jit
    def node(key, lam_k):
        k_init, k_chain = jax.random.split(key)
        e_fn = _coupled_energy(lam_k)
        x0 = _harmonic_samples(k_init, (n_walkers, n_particles, dim), beta, dtype)
        state = init(k_chain, x0, e_fn, step0)
        state = _burn_in(state, e_fn, beta, burn_in)
        state, v = run(state, e_fn, beta, n_records, thin, observable=coulomb_trap.coulomb_energy)
        return v.T, acceptance(state), state.step_size

    means, errs, taus, accs, steps = [], [], [], [], []
    for k_node, lam_k in zip(jax.random.split(key, n_nodes), lam):
        v, acc, width = node(k_node, jnp.asarray(lam_k, dtype=dtype))
        est = mean_and_error(np.asarray(v))
        means.append(est.mean)
        errs.append(est.error)
        taus.append(est.extra.get("tau", float("nan")))
        accs.append(float(acc))
        steps.append(float(width))
    means, errs = np.array(means), np.array(errs)
    f0 = coulomb_trap.harmonic_free_energy(beta, n_particles, dim)
    f_total = f0 + float(np.sum(weights * means))
    err_total = float(np.sqrt(np.sum((weights * errs) ** 2)))
    return CouplingIntegrationResult(
        F=f_total / n_particles,
        error=err_total / n_particles,
        F0=f0 / n_particles,
        lam=lam,
        weights=weights,
        coulomb=means,
        coulomb_err=errs,
        tau=np.array(taus),
        acceptance=np.array(accs),
        step_size=np.array(steps),
        n_samples=n_nodes * n_walkers * n_records,
    )


class AISResult(NamedTuple):
    """Per-particle F from annealed importance sampling, its delta-method standard error, the
    effective sample size of the final weights, and the raw log-weights ln(Z/Z_0) estimates."""

    F: float
    error: float
    ess: float
    log_weights: np.ndarray
    n_samples: int


def annealed_importance_free_energy(
    key: jax.Array,
    n_particles: int,
    dim: int,
    beta: float,
    n_stages: int = 1000,
    *,
    n_walkers: int = 512,
    steps_per_stage: int = 5,
    power: float = 3.0,
    pilot_nodes: int = 6,
    pilot_steps: int = 1000,
) -> AISResult:
    """Free energy per particle of the Coulomb trap by annealed importance sampling (Neal 2001).

    Independent walkers start as exact samples of the harmonic trap and are carried along
    lambda_k = (k / n_stages)^power, k = 1..n_stages, picking up log-weight
    -beta (lambda_k - lambda_{k-1}) V_C(x) and then ``steps_per_stage`` Metropolis moves at
    lambda_k.
    Z/Z_0 = E[w] exactly for any schedule; F = F_0 - ln(mean w)/beta. The proposal widths must not
    depend on the walkers themselves, so they come from a separate pilot (width adapted at
    ``pilot_nodes`` couplings with its own key, interpolated in s = lambda^{1/power}).
    """
    dtype = jnp.result_type(float)
    k_pilot, k_init, k_run = jax.random.split(key, 3)
    step0 = 2.4 / math.sqrt(2.0 * beta * n_particles * dim)

    @jax.jit
    def pilot(key, lam_k):
        k_init, k_chain = jax.random.split(key)
        e_fn = _coupled_energy(lam_k)
        x0 = _harmonic_samples(k_init, (64, n_particles, dim), beta, dtype)
        return _burn_in(init(k_chain, x0, e_fn, step0), e_fn, beta, pilot_steps).step_size

    s_pilot = np.linspace(0.0, 1.0, pilot_nodes)
    widths = [
        float(pilot(k, jnp.asarray(s**power, dtype=dtype)))
        for k, s in zip(jax.random.split(k_pilot, pilot_nodes), s_pilot)
    ]
    s_stage = np.arange(1, n_stages + 1) / n_stages
    lam = jnp.asarray(np.concatenate([[0.0], s_stage**power]), dtype=dtype)
    width = jnp.asarray(np.exp(np.interp(s_stage, s_pilot, np.log(widths))), dtype=dtype)

    @jax.jit
    def anneal(k_init, k_run):
        x0 = _harmonic_samples(k_init, (n_walkers, n_particles, dim), beta, dtype)
        state = init(k_run, x0, coulomb_trap.harmonic_energy, width[0])

        def stage(carry, inputs):
            state, log_w = carry
            lam_prev, lam_k, width_k = inputs
            v = jax.vmap(coulomb_trap.coulomb_energy)(state.x)
            log_w = log_w - beta * (lam_k - lam_prev) * v
            e_fn = _coupled_energy(lam_k)
            state = state._replace(
                energy=jax.vmap(coulomb_trap.harmonic_energy)(state.x) + lam_k * v,
                step_size=width_k,
            )
            state = jax.lax.fori_loop(0, steps_per_stage, lambda _, s: step(s, e_fn, beta), state)
            return (state, log_w), None

        log_w0 = jnp.zeros((n_walkers,), dtype=dtype)
        (state, log_w), _ = jax.lax.scan(stage, (state, log_w0), (lam[:-1], lam[1:], width))
        return log_w

    log_w = np.asarray(anneal(k_init, k_run))
    log_ratio, log_err, ess = log_mean_exp_estimate(log_w)
    f0 = coulomb_trap.harmonic_free_energy(beta, n_particles, dim)
    return AISResult(
        F=(f0 - log_ratio / beta) / n_particles,
        error=log_err / beta / n_particles,
        ess=ess,
        log_weights=log_w,
        n_samples=n_walkers,
    )
