"""Continuous normalizing flow: ODE map, integrated divergence (exact and Hutchinson), velocity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_flows_base import check_bijection, flow_params

from qvfe.flows import AffineCoupling, Chain, ContinuousFlow, MaskedAutoregressive

X3 = jnp.array([0.4, -0.9, 1.1])


def cnf3():
    """The flow the eager (un-jitted) calls below share: diffrax caches one compiled solve per
    equal flow and input shape, so each of those calls after the first costs no compile."""
    return ContinuousFlow(hidden=(4,), adjoint="forward")


@pytest.mark.parametrize("in_chain", [True, False], ids=["chain-jit", "alone-nojit"])
def test_exact_log_det_matches_slogdet_of_the_ode_map(in_chain):
    # adjoint="forward" so that jacfwd can differentiate through the solve; the slogdet of the
    # solver's Jacobian and the integrated divergence agree to the ODE tolerance (rtol 1e-8).
    flow = cnf3()
    if in_chain:
        flow = Chain((AffineCoupling(hidden=(4,)), flow, MaskedAutoregressive(hidden=(4,))))
    params = flow_params(flow, 3, scale=0.6)
    check_bijection(flow, params, X3, use_jit=in_chain, atol=1e-6)


def test_hutchinson_log_det_is_unbiased():
    rademacher = ContinuousFlow(hidden=(4,), divergence="hutchinson", probe="rademacher")
    gaussian = ContinuousFlow(hidden=(4,), divergence="hutchinson", probe="gaussian")
    params = flow_params(cnf3(), 3, scale=0.6)  # the three share the velocity network
    keys = jax.random.split(jax.random.key(0), 1000)
    y, ldj = cnf3().forward_and_log_det(params, X3)

    @jax.jit
    def run(params, keys):
        estimates = [
            jax.vmap(lambda k, f=f: f.forward_and_log_det(params, X3, key=k))(keys)
            for f in (rademacher, gaussian)
        ]
        x_back, inv_ldj = rademacher.inverse_and_log_det(params, estimates[0][0][0], key=keys[0])
        return estimates, x_back, inv_ldj

    estimates, x_back, inv_ldj = run(params, keys)
    assert abs(float(ldj)) > 0.1
    for ys, lds in estimates:
        # The state ODE does not see the probe: the map is the exact one for every key.
        np.testing.assert_allclose(ys, jnp.broadcast_to(y, ys.shape), atol=1e-12)
        assert float(jnp.std(lds)) > 1e-3  # genuinely stochastic
        stderr = float(jnp.std(lds)) / np.sqrt(len(lds))
        assert abs(float(jnp.mean(lds)) - float(ldj)) < 4 * stderr
    # Same key both ways: same probe, so the estimates cancel along the (common) path.
    np.testing.assert_allclose(x_back, X3, atol=1e-7)
    np.testing.assert_allclose(inv_ldj, -estimates[0][1][0], atol=1e-7)


def test_constant_velocity_translates():
    params = jax.tree.map(jnp.zeros_like, flow_params(cnf3(), 3))
    shift = jnp.array([0.5, -1.0, 2.0])
    params["params"]["Dense_1"]["bias"] = shift  # v(x, t) = shift
    y, ldj = cnf3().forward_and_log_det(params, X3)
    np.testing.assert_allclose(y, X3 + shift, atol=1e-12)  # forward integrates t: 0 -> 1
    assert float(ldj) == 0.0


def test_fixed_steps_and_parameter_gradients():
    # Fixed steps make the map a smooth function of params, so reverse-mode gradients through
    # the solver (the default adjoint, used in training) can be compared to finite differences.
    fixed = ContinuousFlow(hidden=(4,), steps=24)
    params = flow_params(fixed, 3, scale=0.6)
    direction = flow_params(fixed, 3, seed=1)

    def solve(params):
        y, ldj = fixed.forward_and_log_det(params, X3)
        return jnp.sum(jnp.sin(y)) + ldj, (y, ldj)

    @jax.jit
    def run(params, direction):
        def along(eps):
            return solve(jax.tree.map(lambda p, d: p + eps * d, params, direction))

        # One vmapped solve gives the centred difference and the unperturbed map.
        values, (ys, ldjs) = jax.vmap(along)(jnp.array([1e-5, -1e-5, 0.0]))
        fd = (values[0] - values[1]) / 2e-5
        grad = jax.grad(lambda p: solve(p)[0])(params)
        ad = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
        return (ys[2], ldjs[2]), fd, ad

    (y_fixed, l_fixed), fd, ad = run(params, direction)
    y_adaptive, l_adaptive = cnf3().forward_and_log_det(params, X3)
    np.testing.assert_allclose(y_fixed, y_adaptive, atol=1e-6)  # Tsit5, h = 1/24: O(h^5)
    np.testing.assert_allclose(l_fixed, l_adaptive, atol=1e-6)
    np.testing.assert_allclose(ad, fd, rtol=1e-6)


def test_velocity_supports_flow_matching():
    flow = ContinuousFlow(hidden=(4,))
    params = flow_params(flow, 2)
    k0, k1, kt = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k0, (16, 2))
    x1 = jax.random.normal(k1, (16, 2)) + 2.0
    t = jax.random.uniform(kt, (16,))

    @jax.jit
    def loss(params):
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        v = jax.vmap(flow.velocity, (None, 0, 0))(params, xt, t)
        return jnp.mean(jnp.sum((v - (x1 - x0)) ** 2, axis=-1))

    value, grad = jax.value_and_grad(loss)(params)
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))
    assert float(jnp.max(jnp.abs(grad["params"]["Dense_1"]["bias"]))) > 0


def test_configuration_errors():
    with pytest.raises(ValueError, match="key="):
        ContinuousFlow(divergence="hutchinson").forward_and_log_det(
            flow_params(ContinuousFlow(), 2), jnp.zeros(2))
    for bad in (dict(divergence="trace"), dict(probe="sphere"), dict(solver="rk45"),
                dict(adjoint="magic"), dict(steps=0)):
        with pytest.raises(ValueError):
            ContinuousFlow(**bad)
