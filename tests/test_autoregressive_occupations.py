"""Occupation model: exact ideal-gas start, normalisation, exact sampling, particle-number masks."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from qvfe.autoregressive.occupations import (
    MADE,
    GroundOccupations,
    Occupations,
    SpinfulOccupations,
    made_advance,
    made_logit_at,
    made_start,
    occupied_indices,
)
from qvfe.physics.ideal_fermi import boltzmann_log_prob

LEVELS = np.array([0.1, 0.35, 0.35, 0.8, 1.3, 1.45, 2.2])  # with a degenerate pair
T = 0.5


def _patterns(m, n):
    return np.array([c for c in itertools.product([0, 1], repeat=m) if sum(c) == n], np.int32)


def _perturb(params, seed, scale):
    """Add Gaussian noise to every parameter (numpy RNG: no JAX compilation needed)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda x: x + scale * rng.standard_normal(x.shape), params)


def _chi2_pvalue(samples, patterns, probs):
    """χ² goodness of fit of sampled patterns to ``probs``; bins with < 5 expected counts pooled."""
    index = {tuple(p): i for i, p in enumerate(patterns.tolist())}
    counts = np.zeros(len(patterns))
    for row in np.asarray(samples).tolist():
        counts[index[tuple(row)]] += 1
    expected = probs / probs.sum() * len(samples)
    small = expected < 5
    obs, exp = counts[~small], expected[~small]
    if small.any():
        obs, exp = np.append(obs, counts[small].sum()), np.append(exp, expected[small].sum())
    return stats.chisquare(obs, exp).pvalue


class Jitted:
    """A model with jitted init/sample/log_prob, built once per module (compiles dominate)."""

    def __init__(self, m):
        self.m = m
        self.init = jax.jit(m.init)
        self.sample = jax.jit(m.sample, static_argnums=2)
        self.log_prob = jax.jit(m.log_prob)


@pytest.fixture(scope="module")
def model():
    return Jitted(Occupations(LEVELS, 3, T, hidden=(8, 8)))


@pytest.fixture(scope="module")
def spin_model():
    return Jitted(SpinfulOccupations(LEVELS[:5], 2, 1, T, hidden=(12,), joint=True))


def test_init_is_exact_canonical_boltzmann(model):
    pats = _patterns(7, 3)
    lp = model.log_prob(model.init(jax.random.key(0)), pats)
    np.testing.assert_allclose(lp, boltzmann_log_prob(pats, LEVELS, 3, T), rtol=0, atol=1e-12)
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp)), 1.0, atol=1e-13)


@pytest.mark.parametrize("hidden", [(), (8, 8)])
def test_perturbed_model_stays_normalised(model, hidden):
    m = model if hidden == (8, 8) else Jitted(Occupations(LEVELS, 3, T, hidden=hidden))
    pats = _patterns(7, 3)
    params = _perturb(m.init(jax.random.key(1)), seed=2, scale=1.0)
    lp = m.log_prob(params, pats)
    assert np.max(np.abs(lp - boltzmann_log_prob(pats, LEVELS, 3, T))) > 0.1  # it did move
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp)), 1.0, atol=1e-12)
    # Exact score identity Σ_n p ∇ln p = ∇ Σ_n p = 0 (the baseline-free REINFORCE mean).
    score = jax.jit(jax.grad(lambda p: jnp.sum(jnp.exp(lp) * m.m.log_prob(p, pats))))
    flat = jnp.concatenate([jnp.ravel(g) for g in jax.tree_util.tree_leaves(score(params))])
    assert np.all(np.isfinite(flat)) and np.max(np.abs(flat)) < 1e-10


@pytest.mark.parametrize("perturbed", [False, True])
def test_samples_match_probabilities_chi2(model, perturbed):
    # At init against the exact Boltzmann law; perturbed against the model's own teacher-forced
    # ln p (checks that the incremental sampler and log_prob describe the same distribution).
    pats = _patterns(7, 3)
    params = model.init(jax.random.key(3))
    if perturbed:
        params = _perturb(params, seed=4, scale=0.7)
    occ = model.sample(params, jax.random.key(5), 20000)
    assert occ.shape == (20000, 7) and occ.dtype == jnp.int32
    assert np.all(np.sum(occ, axis=1) == 3)
    probs = np.exp(np.asarray(model.log_prob(params, pats)))
    assert _chi2_pvalue(occ, pats, probs) > 1e-3


def test_incremental_network_matches_full_forward():
    net = MADE(6, (5, 4), param_dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (3, 6)), jnp.float64)
    params = _perturb(jax.jit(net.init)(jax.random.key(0), x), seed=1, scale=1.0)

    @jax.jit
    def incremental_and_full(params, x):
        w = net.apply(params, method=MADE.masked_weights)
        carry = made_start(w, 3)
        logits = []
        for j in range(6):
            logits.append(made_logit_at(w, carry, j))
            carry = made_advance(w, carry, j, x[:, j])
        # Autoregressive: output j ignores inputs ≥ j.
        jac = jax.jacobian(lambda v: net.apply(params, v))(x[0])
        return jnp.stack(logits, axis=1), net.apply(params, x), jac

    inc, full, jac = incremental_and_full(params, x)
    np.testing.assert_allclose(inc, full, atol=1e-12)
    assert np.all(np.asarray(jac)[np.triu_indices(6)] == 0)
    assert np.any(np.asarray(jac)[np.tril_indices(6, -1)] != 0)


def test_mask_fixes_particle_number_for_any_parameters(model):
    params = _perturb(model.init(jax.random.key(6)), seed=7, scale=6.0)  # wild logits
    occ = model.sample(params, jax.random.key(8), 20000)
    assert np.all(np.sum(occ, axis=1) == 3) and set(np.unique(occ)) <= {0, 1}
    assert np.all(np.isfinite(model.log_prob(params, occ)))
    # Wrong particle numbers, and a count of 3 that sums right but is no fermion pattern.
    bad = np.array([[1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 1], [2, 1, 0, 0, 0, 0, 0]], np.int32)
    assert np.all(np.isneginf(model.log_prob(params, bad)))


def test_forced_particle_numbers_are_deterministic():
    # N = 0 and N = M in one spinful model, and a single level (MADE with one input) on its own.
    m = Jitted(SpinfulOccupations(LEVELS, 0, 7, T, hidden=(4,)))
    params = _perturb(m.init(jax.random.key(0)), seed=1, scale=1.0)
    up, down = m.sample(params, jax.random.key(2), 3)
    np.testing.assert_array_equal(up, np.zeros((3, 7)))
    np.testing.assert_array_equal(down, np.ones((3, 7)))
    np.testing.assert_allclose(m.log_prob(params, (up, down)), 0.0, atol=0)
    one = Jitted(Occupations(np.array([0.3]), 1, T, hidden=(4,)))
    p1 = _perturb(one.init(jax.random.key(0)), seed=1, scale=1.0)
    occ = one.sample(p1, jax.random.key(2), 2)
    np.testing.assert_array_equal(occ, [[1], [1]])
    np.testing.assert_allclose(one.log_prob(p1, occ), 0.0, atol=0)


def test_low_temperature_stays_finite():
    # β·(level spacing) ~ 2e3: the exact logits are ~±1e3; sampling and gradients must not overflow.
    m = Jitted(Occupations(LEVELS, 3, 1e-4, hidden=(8,)))
    params = m.init(jax.random.key(0))
    occ = m.sample(params, jax.random.key(1), 64)
    # Ground state: level 0 plus the degenerate pair, a single pattern.
    np.testing.assert_array_equal(occ, np.broadcast_to([1, 1, 1, 0, 0, 0, 0], occ.shape))
    lp, grads = jax.jit(jax.value_and_grad(lambda p: jnp.mean(m.m.log_prob(p, occ))))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    np.testing.assert_allclose(lp, 0.0, atol=1e-12)


def test_the_lowest_uniform_draw_takes_no_impossible_step(monkeypatch):
    # ln p(level 0 occupied) = -1000: a uniform draw of exactly 0 (once in 2^23 draws in
    # float32) took the step anyway, ln 0 = -inf being below every logit. Every draw is put at
    # the lowest value the sampler lets uniform return.
    m = Occupations(np.array([1.0, 0.0]), 1, 1e-3, hidden=())
    params = m.init(jax.random.key(0))

    def lowest(key, shape, dtype, minval=0.0, maxval=1.0):
        return jnp.full(shape, minval, dtype)

    monkeypatch.setattr(jax.random, "uniform", lowest)
    occ = m.sample(params, jax.random.key(1), 4)
    np.testing.assert_array_equal(occ, [[0, 1]] * 4)
    np.testing.assert_allclose(m.log_prob(params, occ), 0.0, atol=1e-12)


def test_bad_levels_and_particle_numbers_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        Occupations(np.array([0.0, np.nan, 1.0]), 1, T)
    with pytest.raises(ValueError, match="undefined"):
        Occupations(np.array([0.0, 1.0, 2.0]), 1, 1e-320)
    with pytest.raises(ValueError, match="1-D"):
        Occupations(np.array(1.0), 1, T)
    with pytest.raises(ValueError, match="whole number"):
        Occupations(LEVELS, 2.7, T)
    with pytest.raises(ValueError, match="n_down"):
        SpinfulOccupations(LEVELS, 2, 1.5, T)
    m = Occupations(LEVELS, 3, T, hidden=())
    with pytest.raises(ValueError, match="7 levels"):
        m.log_prob(m.init(jax.random.key(0)), np.zeros((2, 6), np.int32))
    # +inf levels are allowed: such a level is never occupied.
    inf = Occupations(np.array([0.0, np.inf, 1.0]), 1, T, hidden=())
    occ = inf.sample(inf.init(jax.random.key(0)), jax.random.key(1), 200)
    assert not np.any(np.asarray(occ)[:, 1])


def test_ground_occupations_are_the_lowest_levels_with_probability_one():
    g = GroundOccupations(LEVELS[::-1].copy(), 2, 1)
    up, down = g.sample(g.init(jax.random.key(0)), jax.random.key(1), 3)
    np.testing.assert_array_equal(up, [[0, 0, 0, 0, 1, 0, 1]] * 3)  # a tie: the first in order
    np.testing.assert_array_equal(down, [[0, 0, 0, 0, 0, 0, 1]] * 3)
    assert g.ground_energy == pytest.approx(2 * LEVELS[0] + LEVELS[1])
    shifted = np.roll(np.asarray(up), 1, axis=1)
    np.testing.assert_array_equal(g.log_prob({}, (up, down)), [0.0] * 3)
    assert np.all(np.isneginf(g.log_prob({}, (shifted, down))))
    for n_up, n_down in ((-1, 1), (2, 8)):
        with pytest.raises(ValueError, match=r"outside \[0, 7\]"):
            GroundOccupations(LEVELS, n_up, n_down)


def test_occupied_indices_ascending():
    occ = np.array([[0, 1, 0, 1, 1, 0], [1, 1, 0, 0, 0, 1]], np.int32)
    np.testing.assert_array_equal(occupied_indices(occ, 3), [[1, 3, 4], [0, 1, 5]])
    m = Occupations(np.arange(6.0), 3, 1.0, hidden=())
    np.testing.assert_array_equal(m.occupied_indices(occ), [[1, 3, 4], [0, 1, 5]])
    assert m.occupied_indices(occ).dtype == jnp.int32


def _spin_patterns():
    up, down = _patterns(5, 2), _patterns(5, 1)
    return np.repeat(up, len(down), 0), np.tile(down, (len(up), 1)), up, down


@pytest.mark.parametrize("joint", [True, False])
def test_spinful_start_normalisation_and_structure(spin_model, joint):
    levels = LEVELS[:5]
    u, d, up, down = _spin_patterns()
    m = spin_model if joint else Jitted(
        SpinfulOccupations(levels, 2, 1, T, hidden=(12,), joint=False))
    params = m.init(jax.random.key(0))
    exact = boltzmann_log_prob(u, levels, 2, T) + boltzmann_log_prob(d, levels, 1, T)
    np.testing.assert_allclose(m.log_prob(params, (u, d)), exact, atol=1e-12)

    params = _perturb(params, seed=1, scale=1.0)
    p = np.exp(np.asarray(m.log_prob(params, (u, d)))).reshape(len(up), len(down))
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-12)
    product = np.outer(p.sum(1), p.sum(0))
    if joint:  # down conditionals see the up pattern: correlated species
        assert np.max(np.abs(p - product)) > 1e-3
    else:  # masks cut up↔down: exactly a product of the marginals
        np.testing.assert_allclose(p, product, atol=1e-13)

    occ_up, occ_down = m.sample(params, jax.random.key(2), 20000)
    assert occ_up.shape == occ_down.shape == (20000, 5)
    assert np.all(occ_up.sum(1) == 2) and np.all(occ_down.sum(1) == 1)
    idx_up, idx_down = m.m.occupied_indices((occ_up, occ_down))
    assert idx_up.shape == (20000, 2) and idx_down.shape == (20000, 1)
    assert np.all(np.take_along_axis(np.asarray(occ_up), np.asarray(idx_up), 1) == 1)
    if joint:  # exact sampling of the correlated joint law
        pats = np.concatenate([u, d], axis=1)
        assert _chi2_pvalue(np.concatenate([occ_up, occ_down], 1), pats, p.ravel()) > 1e-3
