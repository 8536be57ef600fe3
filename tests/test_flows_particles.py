"""Proton flow densities (backflow and spline coupling): uniform at init, normalised, exact samples,
invariance and periodicity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.particles import PeriodicCouplingDensity, PeriodicParticleDensity

L = 2.0
BACKFLOW = PeriodicParticleDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=2)
COUPLING = PeriodicCouplingDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=3, bins=4)


def perturbed(params, key, scale):
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])


PERTURBED = {"backflow": (BACKFLOW, perturbed(BACKFLOW.init(jax.random.PRNGKey(0)),
                                               jax.random.PRNGKey(1), 3.0)),
             "coupling": (COUPLING, perturbed(COUPLING.init(jax.random.PRNGKey(0)),
                                              jax.random.PRNGKey(1), 0.3))}


def to_uniform(q, params, s):
    """G(S), the map from a configuration to its uniform variable."""
    if isinstance(q, PeriodicCouplingDensity):
        return q.forward(params, s)[0]
    return q.flow.forward(params, s)


@pytest.fixture(params=sorted(PERTURBED))
def flow(request):
    return PERTURBED[request.param]


def test_uniform_at_init(flow):
    q, params = flow
    s = q.sample(q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(2), 5)
    lp = q.log_prob(q.init(jax.random.PRNGKey(0)), s)
    np.testing.assert_allclose(np.asarray(lp), -3 * 2 * np.log(L), atol=1e-12)


def test_normalised(flow):
    """E_{S ~ uniform}[q(S) V^n] = 1 (importance sampling of the normalisation, 4 sigma)."""
    q, params = flow
    s = L * jax.random.uniform(jax.random.PRNGKey(3), (40000, 3, 2))
    w = np.exp(np.asarray(q.log_prob(params, s)) + 3 * 2 * np.log(L))
    assert w.std() > 0.05  # far from uniform
    assert abs(w.mean() - 1.0) < 4 * w.std() / np.sqrt(len(w))


def test_samples_follow_q(flow):
    """Samples are exact: G(S) is uniform, i.e. the flow maps them back onto uniform U."""
    q, params = flow
    s = q.sample(params, jax.random.PRNGKey(4), 2000)
    assert float(jnp.min(s)) >= 0.0 and float(jnp.max(s)) < L
    u = jax.vmap(lambda one: to_uniform(q, params, one))(s)
    frac = np.mod(np.asarray(u), L).reshape(-1) / L
    # Kolmogorov-Smirnov against uniform on [0, 1), 1% level
    frac.sort()
    ks = np.max(np.abs(frac - (np.arange(1, len(frac) + 1) / len(frac))))
    assert ks < 1.63 / np.sqrt(len(frac))
    # and the fixed point is exact: forward of the sample gives back the drawn U
    u0 = L * jax.random.uniform(jax.random.PRNGKey(4), (2000, 3, 2))
    diff = np.mod(np.asarray(u) - np.asarray(u0) + L / 2, L) - L / 2
    assert np.max(np.abs(diff)) < 1e-10


def test_log_prob_density_of_samples(flow):
    """Histogram of a one-particle marginal coordinate agrees with q integrated by importance
    weights (a check that ln q and the samples describe the same density)."""
    q, params = flow
    s = np.asarray(q.sample(params, jax.random.PRNGKey(5), 20000))
    u = L * jax.random.uniform(jax.random.PRNGKey(6), (20000, 3, 2))
    w = np.exp(np.asarray(q.log_prob(params, u)) + 6 * np.log(L))
    bins = np.linspace(0, L, 5)
    h_s, _ = np.histogram(s[:, 0, 0], bins)
    h_w, _ = np.histogram(np.asarray(u)[:, 0, 0], bins, weights=w)
    p_s, p_w = h_s / h_s.sum(), h_w / w.sum()
    err = np.sqrt(p_s * (1 - p_s) / len(s)) + np.sqrt(p_w / len(w)) * w.std()
    assert np.all(np.abs(p_s - p_w) < 5 * err)


def test_permutation_invariant_and_periodic(flow):
    q, params = flow
    s = L * jax.random.uniform(jax.random.PRNGKey(7), (1, 3, 2))
    lp = q.log_prob(params, s)
    np.testing.assert_allclose(np.asarray(q.log_prob(params, s[:, ::-1])), np.asarray(lp),
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(q.log_prob(params, s.at[0, 1, 0].add(L))),
                               np.asarray(lp), atol=1e-12)


def test_coupling_log_det_matches_slogdet_and_one_layer_moves_a_particle_anywhere():
    s = L * jax.random.uniform(jax.random.PRNGKey(8), (3, 2))
    params = PERTURBED["coupling"][1]
    _, logdet = COUPLING.forward(params, s)
    jac = jax.jacfwd(lambda x: COUPLING.forward(params, x)[0])(s).reshape(6, 6)
    np.testing.assert_allclose(float(logdet), float(jnp.linalg.slogdet(jac)[1]), atol=1e-10)
    # the shift of one layer is unbounded: no contraction limits a displacement
    layer = params["layers"][0]
    w, b = layer["out"][-1]
    big = dict(layer, out=layer["out"][:-1] + [(w, b.at[-1].add(0.7 * L))])
    moved, _ = COUPLING._layer(big, 0, s)
    shift = np.mod(np.asarray(moved - COUPLING._layer(layer, 0, s)[0])[:, 0], L)
    np.testing.assert_allclose(shift, 0.7 * L, atol=1e-10)


def test_coupling_learns_particles_in_a_periodic_potential():
    """Two particles in V(S) = Σ_i a cos(2π x_i / L), trained by the score-function gradient of the
    free energy (as hydrogen's protons are): the exact F = −kT [n ln(L^d I0(βa)) − ln n!], so the
    variational F must lie above it and come within 0.002 kT per particle (the uniform q's gap is
    ln I0(2) = 0.82 kT per particle)."""
    import optax
    from scipy.special import i0

    n, beta_a, batch = 2, 2.0, 512
    q = PeriodicCouplingDensity(n=n, dim=2, box_length=L, hidden=(8,), n_layers=2, bins=8)

    def free_energy_terms(params, s):  # β(V + kT ln q) per configuration
        return beta_a * jnp.sum(jnp.cos(2 * np.pi * s[..., 0] / L), -1) + q.log_prob(params, s)

    def surrogate(params, key):
        s = q.sample(params, key, batch)
        f = jax.lax.stop_gradient(free_energy_terms(params, s))
        return jnp.mean((f - jnp.mean(f)) * q.log_prob(params, s))

    opt = optax.adam(optax.cosine_decay_schedule(0.03, 300))
    params = q.init(jax.random.PRNGKey(0))
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        updates, state = opt.update(jax.grad(surrogate)(params, key), state)
        return optax.apply_updates(params, updates), state

    for key in jax.random.split(jax.random.PRNGKey(1), 300):
        params, state = step(params, state, key)
    f = np.asarray(free_energy_terms(params, q.sample(params, jax.random.PRNGKey(2), 20000)))
    f_var, f_err = (f.mean() + np.log(2.0)) / n, f.std() / np.sqrt(f.size) / n  # + ln n!
    f_exact = -(n * np.log(L**2 * i0(beta_a)) - np.log(2.0)) / n
    assert f_var > f_exact - 3 * f_err
    assert f_var - f_exact < 0.002, (f_var, f_exact, f_err)
