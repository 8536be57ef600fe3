"""Metropolis: samples |psi|^2 of an oscillator orbital within 3 sigma, width adaptation to ~50 %
acceptance, periodic wrapping, exact checkpoint round trip, jit without recompilation."""

import functools

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics.orbital_values import harmonic_orbital_values
from qvfe.sampling import metropolis

OMEGA = 1.5


def log_prob_excited_2d(xs):
    """2 ln|phi_(1,0)(x)| of a 2D oscillator orbital, for walkers of shape (batch, 1, 2)."""

    def one(x):
        vals = harmonic_orbital_values(x, jnp.array([[1, 0]]), OMEGA, n_max=1)
        return 2.0 * (vals.log_row[0] + jnp.log(jnp.abs(vals.matrix[0, 0])))

    return jax.vmap(one)(xs)


@functools.partial(jax.jit, static_argnames=("n_steps", "box_length", "log_prob"))
def run_chain(state, n_steps, box_length=None, log_prob=log_prob_excited_2d):
    """burn-in, then n_steps calls of step(2 sweeps) recording the walkers after each call."""
    state, _ = metropolis.burn_in(state, log_prob, 100, box_length=box_length)

    def body(state, _):
        state, acc = metropolis.step(state, log_prob, 2, box_length=box_length)
        return state, (state.walkers, acc)

    return jax.lax.scan(body, state, None, length=n_steps)


def test_samples_oscillator_orbital_density_within_3_sigma():
    # start every walker on the node x = 0 (|psi|^2 = 0): the first moves must still be accepted
    state = metropolis.init(jax.random.PRNGKey(0), jnp.zeros((256, 1, 2)), 1.0)
    state, (walkers, accs) = run_chain(state, 150)
    r2 = np.sum(np.asarray(walkers) ** 2, axis=(2, 3))  # (steps, batch)
    per_walker = r2.mean(axis=0)  # independent chains: their means carry the autocorrelation
    mean, err = per_walker.mean(), per_walker.std(ddof=1) / np.sqrt(per_walker.size)
    exact = 2.0 / OMEGA  # <x^2> = 3/(2 omega), <y^2> = 1/(2 omega)
    assert abs(mean - exact) < 3 * err, (mean, err, exact)
    assert err < 0.02 * exact
    x2 = (np.asarray(walkers)[..., 0, 0] ** 2).mean(axis=0)
    assert abs(x2.mean() - 1.5 / OMEGA) < 3 * x2.std(ddof=1) / np.sqrt(x2.size)
    assert abs(float(np.mean(accs)) - 0.5) < 0.1


def test_width_adapts_to_half_acceptance_from_far_too_small_and_too_large():
    log_prob = lambda xs: -jnp.sum(xs**2, axis=(1, 2))  # noqa: E731  (3 particles in 1D)
    burn = jax.jit(lambda s: metropolis.burn_in(s, log_prob, 60))
    step = jax.jit(lambda s: metropolis.step(s, log_prob, 5))
    for width in (1e-3, 50.0):
        state = metropolis.init(jax.random.PRNGKey(1), jnp.zeros((128, 3, 1)), width)
        state, _ = burn(state)
        accs = []
        for _ in range(5):
            state, acc = step(state)
            accs.append(float(acc))
        assert all(abs(a - 0.5) < 0.1 for a in accs), (width, accs)
        assert 0.3 < float(state.width) < 3.0
    assert step._cache_size() == 1  # no recompilation from call to call


def test_periodic_box_wraps_walkers_and_samples_a_periodic_density():
    L = 2.0
    log_prob = lambda xs: jnp.sum(  # noqa: E731  density 1 + 0.8 cos(2 pi x / L) per particle
        jnp.log1p(0.8 * jnp.cos(2 * np.pi * xs / L)), axis=(1, 2))
    # walkers start outside the box; they are wrapped in
    state = metropolis.init(jax.random.PRNGKey(2), jnp.full((128, 2, 1), 7.3), 0.3)
    state, (walkers, _) = run_chain(state, 100, box_length=L, log_prob=log_prob)
    w = np.asarray(walkers)
    assert w.min() >= 0.0 and w.max() < L
    c = np.cos(2 * np.pi * w[..., 0] / L).mean(axis=(0, 2))  # per walker
    assert abs(c.mean() - 0.4) < 3 * c.std(ddof=1) / np.sqrt(c.size)


def test_state_round_trips_through_flax_serialization_exactly():
    log_prob = lambda xs: -jnp.sum(xs**2, axis=(1, 2))  # noqa: E731
    step = jax.jit(lambda s: metropolis.step(s, log_prob, 3))
    state = metropolis.init(jax.random.PRNGKey(3), jnp.zeros((16, 2, 2)), 0.7)
    state, _ = step(state)
    blob = flax.serialization.to_bytes(state)
    template = metropolis.init(jax.random.PRNGKey(0), jnp.zeros((16, 2, 2)), 0.0)
    restored = flax.serialization.from_bytes(template, blob)
    for a, b in zip(state, restored):
        np.testing.assert_array_equal(a, b)
    # resuming from the restored state continues the identical chain
    np.testing.assert_array_equal(step(state)[0].walkers, step(restored)[0].walkers)
