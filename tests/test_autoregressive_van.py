"""The VAN is a normalised, autoregressive distribution whose sampler draws from its own ln q."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy import stats

from qvfe.autoregressive.van import make_van


def _all_states(n):
    return jnp.asarray(list(itertools.product([-1.0, 1.0], repeat=n)))


def _random_params(van, seed=0, scale=0.7):
    # init zeroes the output weights (q uniform); perturb everything to test a generic q.
    # One jitted random draw: each separate jax.random call costs ~0.5 s of XLA compile on CPU.
    params = van.init(jax.random.key(seed))
    flat, unravel = ravel_pytree(params)
    noise = jax.jit(jax.random.normal, static_argnums=1)(jax.random.key(seed + 100), flat.shape)
    return unravel(flat + scale * noise)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("z2", [False, True])
def test_normalized_over_all_states(layers, z2):
    n = 9
    van = make_van(n, layers=layers, hidden=3, z2_symmetric=z2)
    log_q = jax.jit(van.log_prob)(_random_params(van), _all_states(n))
    assert float(jax.nn.logsumexp(log_q)) == pytest.approx(0.0, abs=1e-12)


def test_starts_uniform():
    n = 16
    van = make_van(n, layers=2, hidden=2, z2_symmetric=True)
    params = jax.jit(van.init)(jax.random.key(0))
    log_q = jax.jit(lambda p, k: van.log_prob(p, van.sample(p, k, 5)))(params, jax.random.key(1))
    np.testing.assert_allclose(log_q, -n * np.log(2.0), rtol=1e-14)


def test_z2_symmetric_is_flip_invariant():
    van = make_van(8, layers=2, hidden=2, z2_symmetric=True)
    params = _random_params(van)
    s = _all_states(8)
    log_prob = jax.jit(van.log_prob)
    np.testing.assert_allclose(log_prob(params, s), log_prob(params, -s), rtol=1e-13)


def test_autoregressive_jacobian_is_strictly_lower_triangular():
    n = 10
    van = make_van(n, layers=3, hidden=2)
    params = _random_params(van)
    s = jnp.asarray(np.random.default_rng(0).choice([-1.0, 1.0], size=n))
    jac = jax.jit(jax.jacfwd(lambda x: van.conditional_logits(params, x[None])[0]))(s)
    assert np.all(np.triu(np.asarray(jac)) == 0)  # ℓ_i independent of s_j for j >= i
    assert np.all(np.abs(np.tril(np.asarray(jac), -1)[np.tril_indices(n, -1)]) > 0)


def test_conditionals_ignore_later_spins():
    n = 12
    van = make_van(n, layers=2, hidden=3)
    params = _random_params(van)
    logits = jax.jit(van.conditional_logits)
    rng = np.random.default_rng(1)
    s = rng.choice([-1.0, 1.0], size=(50, n))
    for i in (0, 5, 11):
        t = s.copy()
        t[:, i:] = rng.choice([-1.0, 1.0], size=(50, n - i))  # change s_i and everything after
        np.testing.assert_array_equal(logits(params, s)[:, : i + 1], logits(params, t)[:, : i + 1])


@pytest.mark.parametrize("n, z2", [(5, False), (6, True), (9, False)])
def test_sample_histogram_matches_q(n, z2):
    # n = 5, 6, 9 exercise sampling blocks of 1, 2 and 3 sites.
    van = make_van(n, layers=2, hidden=3, z2_symmetric=z2)
    params = _random_params(van, seed=n)
    num = 100_000
    s = jax.jit(van.sample, static_argnums=2)(params, jax.random.key(7), num)
    assert set(np.unique(np.asarray(s))) <= {-1.0, 1.0}
    index = np.asarray(((s > 0) * 2 ** jnp.arange(n - 1, -1, -1)).sum(axis=1))
    observed = np.bincount(index, minlength=2**n)
    expected = num * np.exp(np.asarray(jax.jit(van.log_prob)(params, _all_states(n))))
    keep = expected > 5  # χ² needs populated bins; lump the rest
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    rest_o, rest_e = observed[~keep].sum(), expected[~keep].sum()
    dof = keep.sum() - 1
    if rest_e > 5:
        chi2 += (rest_o - rest_e) ** 2 / rest_e
        dof += 1
    assert stats.chi2.sf(chi2, dof) > 1e-3


@pytest.mark.parametrize("n, layers", [(256, 2), (36, 3), (7, 1)])
def test_sampler_follows_the_forward_conditionals_exactly(n, layers):
    # The sampler draws u ~ U(0,1) per site (rows 0..n−1 of one uniform array) and sets s_i = +1
    # iff u_i < σ(ℓ_i(s_<i)). Recomputing ℓ with the one-pass forward network on the returned
    # spins must reproduce every spin: an exact check of the blocked sampler at any size.
    van = make_van(n, layers=layers, hidden=2, z2_symmetric=False)
    params = _random_params(van, scale=0.3)
    key, num = jax.random.key(5), 64
    s = jax.jit(van.sample, static_argnums=2)(params, key, num)
    u = jax.random.uniform(key, (n + 1, num), s.dtype)[:n].T
    p_up = jax.nn.sigmoid(jax.jit(van.conditional_logits)(params, s))
    np.testing.assert_array_equal(s, jnp.where(u < p_up, 1.0, -1.0))


def test_sample_is_jittable_and_pure():
    van = make_van(16, layers=2, hidden=2, z2_symmetric=True)
    params = _random_params(van)
    sample = jax.jit(van.sample, static_argnums=2)
    a = sample(params, jax.random.key(3), 64)
    b = sample(params, jax.random.key(3), 64)
    c = sample(params, jax.random.key(4), 64)
    assert a.shape == (64, 16) and a.dtype == jnp.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_parameter_count():
    n, h = 4, 2
    van = make_van(n, layers=2, hidden=h)
    strict, incl = n * (n - 1) // 2, n * (n + 1) // 2
    # h0 (exclusive, 1→h), h1 (inclusive, h→h), out (inclusive, h→1), skip (exclusive, 1→1) + biases
    expected = (strict * h + incl * h * h + incl * h + strict) + (n * h + n * h + n + n)
    assert van.n_params == expected
