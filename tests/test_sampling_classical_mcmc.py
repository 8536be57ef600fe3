"""Metropolis sampling of exp(-beta E) and the Coulomb-trap free energies built on it, checked
statistically (within 3 autocorrelation-aware standard errors) against exact values."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics import coulomb_trap as ct
from qvfe.sampling import classical_mcmc as mc
from qvfe.stats import mean_and_error


def _within(est, exact, n_sigma=3.0):
    assert abs(est.mean - exact) < n_sigma * est.error, (est.as_dict(), exact)


def test_harmonic_particle_moments_adaptation_and_frozen_width():
    """N = 1, E = |x|^2: <|x|^2> = d / (2 beta) exactly; burn-in tunes the width to ~50% acceptance
    and production leaves it alone."""
    beta, dim, walkers = 2.0, 3, 64

    def energy_fn(x):
        return jnp.sum(x * x)

    @jax.jit
    def chain(key):
        k0, k1 = jax.random.split(key)
        x0 = jax.random.normal(k0, (walkers, 1, dim), dtype=jnp.float64)
        state = mc.burn_in(mc.init(k1, x0, energy_fn, 3.0), energy_fn, beta, 400)
        width = state.step_size
        state, r2 = mc.run(state, energy_fn, beta, 400, 3, observable=energy_fn)
        return r2, width, state.step_size, mc.acceptance(state)

    r2, width_burned, width_end, acc = chain(jax.random.PRNGKey(3))
    assert r2.shape == (400, walkers) and r2.dtype == jnp.float64
    _within(mean_and_error(np.asarray(r2).T), dim / (2 * beta))
    assert float(width_end) == float(width_burned)  # frozen after burn-in
    assert 0.45 < float(acc) < 0.55
    assert float(width_burned) < 3.0  # adapted away from the much too wide start


def test_two_particle_energy_matches_exact():
    """N = 2, d = 2, beta = 1: <E> and <V_C> per particle against the radial quadrature. Also checks
    the documented row order of sample_boltzmann (step-major) and that it jits deterministically."""
    beta, dim, walkers, records = 1.0, 2, 128, 300
    sampler = jax.jit(
        functools.partial(mc.sample_boltzmann, energy_fn=ct.energy, beta=beta, n_particles=2,
                          dim=dim, n_samples=walkers * records, n_walkers=walkers, burn_in=500,
                          thin=4))
    x = sampler(jax.random.PRNGKey(7))
    assert x.shape == (walkers * records, 2, dim) and x.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(sampler(jax.random.PRNGKey(7))), np.asarray(x))
    exact = ct.exact_free_energy_two_particles(beta, dim)
    chains = lambda f: np.asarray(jax.vmap(f)(x)).reshape(records, walkers).T / 2  # noqa: E731
    _within(mean_and_error(chains(ct.energy)), exact.E)
    _within(mean_and_error(chains(ct.coulomb_energy)), exact.coulomb)


def test_step_rejects_nonfinite_energies():
    """Moves into regions where the energy is NaN or +inf are rejected, never accepted."""

    def energy_fn(x):
        r = jnp.sum(x * x)
        return jnp.where(x[0, 0] > 0.5, jnp.nan, jnp.where(x[0, 0] < -0.5, jnp.inf, r))

    x0 = jnp.zeros((32, 1, 1), dtype=jnp.float64)
    state = mc.init(jax.random.PRNGKey(0), x0, energy_fn, 1.0)
    state = jax.jit(lambda s: jax.lax.fori_loop(0, 50, lambda _, t: mc.step(t, energy_fn, 1.0), s))(
        state)
    assert np.all(np.abs(np.asarray(state.x)) <= 0.5)
    assert np.all(np.isfinite(np.asarray(state.energy)))
    assert 0.0 < float(mc.acceptance(state)) < 1.0


def test_coupling_quadrature_on_exact_two_particle_integrand():
    """The node scheme alone (no sampling): integrating the exact N = 2 <V_C>_lambda reproduces the
    exact F to far below any statistical error, at the trap's hard end beta = 10 too."""
    for beta, n_nodes, tol in ((1.0, 6, 1e-7), (10.0, 8, 2e-6), (10.0, 10, 1e-7)):
        lam, w = mc.coupling_nodes(n_nodes)
        v = np.array([ct.exact_free_energy_two_particles(beta, 2, lk).coulomb for lk in lam])
        f = ct.harmonic_free_energy(beta, 2, 2) / 2 + np.sum(w * v)
        assert abs(f - ct.exact_free_energy_two_particles(beta, 2).F) < tol
    lam, w = mc.coupling_nodes(7)
    assert np.all((lam > 0) & (lam < 1)) and math.isclose(np.sum(w), 1.0, rel_tol=1e-13)


def test_coupling_integration_two_particles_within_3_sigma():
    beta, dim = 1.0, 2
    r = mc.coupling_integration_free_energy(
        jax.random.PRNGKey(11), 2, dim, beta, 6, n_walkers=64, burn_in=300, n_records=150, thin=4)
    exact = ct.exact_free_energy_two_particles(beta, dim)
    assert 0 < r.error < 0.01
    assert abs(r.F - exact.F) < 3 * r.error, (r.F, r.error, exact.F)
    assert np.all(np.abs(r.acceptance - 0.5) < 0.05)


def test_annealed_importance_two_particles_within_3_sigma():
    beta, dim = 1.0, 2
    a = mc.annealed_importance_free_energy(
        jax.random.PRNGKey(12), 2, dim, beta, 100, n_walkers=256, steps_per_stage=2,
        pilot_nodes=3, pilot_steps=200)
    exact = ct.exact_free_energy_two_particles(beta, dim)
    assert 0 < a.error < 0.01 and a.ess > 128
    assert abs(a.F - exact.F) < 3 * a.error, (a.F, a.error, exact.F)
