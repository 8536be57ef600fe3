"""Proton flow density: uniform at init, normalised, exact samples, invariance and periodicity."""

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.particles import PeriodicParticleDensity

L = 2.0
Q = PeriodicParticleDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=2)


def perturbed(params, key, scale):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])


PARAMS = perturbed(Q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)


def test_uniform_at_init():
    s = Q.sample(Q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(2), 5)
    lp = Q.log_prob(Q.init(jax.random.PRNGKey(0)), s)
    np.testing.assert_allclose(np.asarray(lp), -3 * 2 * np.log(L), atol=1e-12)


def test_normalised():
    """E_{S ~ uniform}[q(S) V^n] = 1 (importance sampling of the normalisation, 4 sigma)."""
    s = L * jax.random.uniform(jax.random.PRNGKey(3), (40000, 3, 2))
    w = np.exp(np.asarray(Q.log_prob(PARAMS, s)) + 3 * 2 * np.log(L))
    assert w.std() > 0.05  # far from uniform
    assert abs(w.mean() - 1.0) < 4 * w.std() / np.sqrt(len(w))


def test_samples_follow_q():
    """Samples are exact: G(S) is uniform, i.e. the flow maps them back onto uniform U."""
    s = Q.sample(PARAMS, jax.random.PRNGKey(4), 2000)
    assert float(jnp.min(s)) >= 0.0 and float(jnp.max(s)) < L
    u = jax.vmap(lambda one: Q.flow.forward(PARAMS, one))(s)
    frac = np.mod(np.asarray(u), L).reshape(-1) / L
    # Kolmogorov-Smirnov against uniform on [0, 1), 1% level
    frac.sort()
    ks = np.max(np.abs(frac - (np.arange(1, len(frac) + 1) / len(frac))))
    assert ks < 1.63 / np.sqrt(len(frac))
    # and the fixed point is exact: forward of the sample gives back the drawn U
    u0 = L * jax.random.uniform(jax.random.PRNGKey(4), (2000, 3, 2))
    diff = np.mod(np.asarray(u) - np.asarray(u0) + L / 2, L) - L / 2
    assert np.max(np.abs(diff)) < 1e-10


def test_log_prob_density_of_samples():
    """Histogram of a one-particle marginal coordinate agrees with q integrated by importance
    weights (a check that ln q and the samples describe the same density)."""
    s = np.asarray(Q.sample(PARAMS, jax.random.PRNGKey(5), 20000))
    u = L * jax.random.uniform(jax.random.PRNGKey(6), (20000, 3, 2))
    w = np.exp(np.asarray(Q.log_prob(PARAMS, u)) + 6 * np.log(L))
    bins = np.linspace(0, L, 5)
    h_s, _ = np.histogram(s[:, 0, 0], bins)
    h_w, _ = np.histogram(np.asarray(u)[:, 0, 0], bins, weights=w)
    p_s, p_w = h_s / h_s.sum(), h_w / w.sum()
    err = np.sqrt(p_s * (1 - p_s) / len(s)) + np.sqrt(p_w / len(w)) * w.std()
    assert np.all(np.abs(p_s - p_w) < 5 * err)


def test_permutation_invariant_and_periodic():
    s = L * jax.random.uniform(jax.random.PRNGKey(7), (1, 3, 2))
    lp = Q.log_prob(PARAMS, s)
    np.testing.assert_allclose(np.asarray(Q.log_prob(PARAMS, s[:, ::-1])), np.asarray(lp),
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(Q.log_prob(PARAMS, s.at[0, 1, 0].add(L))),
                               np.asarray(lp), atol=1e-12)
