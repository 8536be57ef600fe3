"""Flow densities: normalization by quadrature, agreement of the two directions, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_flows_base import flow_params

from qvfe.flows import (
    ContinuousFlow,
    FlowDensity,
    StandardNormal,
    masked_autoregressive_flow,
    real_nvp,
)

# Midpoint rule on [-10, 10]² with h = 0.2: for smooth integrands it converges exponentially fast,
# so the error is the mass outside the window. The test flows use tanh networks, whose bounded
# shifts keep the tails Gaussian (measured: |mass − 1| ≤ 4e-8 for these three); silu conditioners
# shift linearly in x, which shears the density into tails a window this size would cut.
GRID_HALF_WIDTH, GRID_POINTS, NORMALIZATION_TOL = 10.0, 100, 1e-6


def grid():
    h = 2 * GRID_HALF_WIDTH / GRID_POINTS
    ticks = -GRID_HALF_WIDTH + h * (jnp.arange(GRID_POINTS) + 0.5)
    return jnp.stack(jnp.meshgrid(ticks, ticks, indexing="ij"), axis=-1), h


@pytest.mark.parametrize(
    "name, bijection, base, scale",
    [
        ("real_nvp", real_nvp(4, hidden=(6,), activation=jnp.tanh), StandardNormal(2), 0.3),
        (
            "maf",
            masked_autoregressive_flow(2, hidden=(6,), activation=jnp.tanh),
            StandardNormal(2, scale=0.7),
            0.4,
        ),
        ("cnf", ContinuousFlow(hidden=(6,)), StandardNormal(2), 0.5),
    ],
    ids=["real_nvp", "maf", "cnf"],
)
def test_density_integrates_to_one_and_directions_agree(name, bijection, base, scale):
    q = FlowDensity(bijection, base)
    params = flow_params(bijection, 2, seed=3, scale=scale)
    points, h = grid()

    @jax.jit
    def run(params):
        x, log_q = q.sample_and_log_prob(params, jax.random.key(0), 64)
        # One log_prob call (one traced ODE solve for the CNF) for the grid and the samples.
        log_q_all = q.log_prob(params, jnp.concatenate([points.reshape(-1, 2), x]))
        return log_q_all[:-64].reshape(points.shape[:-1]), x, log_q, log_q_all[-64:]

    log_q_grid, x, log_q, log_q_inverse = run(params)
    # Leading batch dims are kept (shape-only evaluation: nothing to compile).
    assert jax.eval_shape(q.log_prob, params, points[:2, :3]).shape == (2, 3)
    mass = float(jnp.sum(jnp.exp(log_q_grid)) * h**2)
    assert abs(mass - 1.0) < NORMALIZATION_TOL, mass
    # The density really differs from the base (the check would be vacuous otherwise).
    assert float(jnp.max(jnp.abs(log_q_grid - base.log_prob(points)))) > 0.1
    assert x.shape == (64, 2) and log_q.shape == (64,)
    # Sampling (forward) and density evaluation (inverse) give the same log q.
    np.testing.assert_allclose(log_q, log_q_inverse, atol=1e-6 if name == "cnf" else 1e-10)


def test_standard_normal():
    base = StandardNormal(3, scale=2.0)
    z = jnp.array([[0.5, -1.0, 2.0]])
    expected = np.sum(-0.5 * (np.asarray(z) / 2.0) ** 2 - 0.5 * np.log(2 * np.pi * 4.0), axis=-1)
    np.testing.assert_allclose(base.log_prob(z), expected, atol=1e-12)
    samples = base.sample(jax.random.key(0), 4000)
    assert samples.shape == (4000, 3) and samples.dtype == jnp.float64
    np.testing.assert_allclose(jnp.std(samples, axis=0), 2.0, rtol=0.05)
    with pytest.raises(ValueError):
        StandardNormal(0)


def test_reparameterised_gradient_of_the_free_energy():
    # F_q = E_q[E(x) + log q(x)] for E(x) = |x|²/2 with x = f(z); the gradient through
    # sample_and_log_prob (fixed key) must match finite differences of the same estimate.
    q = FlowDensity(real_nvp(2, hidden=(4,)), StandardNormal(2))
    params = flow_params(q.bijection, 2, seed=5)
    direction = flow_params(q.bijection, 2, seed=6)
    key = jax.random.key(1)

    def free_energy(params):
        x, log_q = q.sample_and_log_prob(params, key, 32)
        return jnp.mean(0.5 * jnp.sum(x**2, axis=-1) + log_q)

    @jax.jit
    def run(params, direction):
        shifted = jax.vmap(
            lambda eps: free_energy(jax.tree.map(lambda p, d: p + eps * d, params, direction))
        )(jnp.array([1e-6, -1e-6]))
        grad = jax.grad(free_energy)(params)
        ad = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
        return (shifted[0] - shifted[1]) / 2e-6, ad

    fd, ad = run(params, direction)
    np.testing.assert_allclose(ad, fd, rtol=1e-6)


def test_init_checks_dim_and_hutchinson_key_is_split_per_sample():
    q = FlowDensity(ContinuousFlow(hidden=(4,), divergence="hutchinson"), StandardNormal(2))
    assert q.dim == 2
    with pytest.raises(ValueError, match="dim=3"):
        q.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="key="):
        q.log_prob(flow_params(q.bijection, 2), jnp.zeros((4, 2)))
