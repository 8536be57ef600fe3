"""The collective (density-wave) flow: its closed-form Jacobian and log-determinant against
autodiff, the bound that makes it a bijection, the inverse, its symmetries, and the long-range
Jastrow factor it makes to first order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.collective import CollectiveFlow
from qvfe.physics.orbitals import reciprocal_half_shells

L = 4.0


def _params(flow, seed, scale=1.5):
    keys = jax.random.split(jax.random.PRNGKey(seed), flow.n_layers)
    return {"layers": [{"theta": scale * jax.random.normal(k, (flow.shells,))} for k in keys]}


@pytest.mark.parametrize("dim, strength", [(3, 1.0), (3, 4.0), (2, 1.0)])
def test_jacobian_and_log_det_are_autodiffs(dim, strength):
    flow = CollectiveFlow(5, dim, L, shells=3, n_layers=2, strength=strength)
    params = _params(flow, seed=dim)
    x = L * jax.random.uniform(jax.random.PRNGKey(1), (5, dim))
    layer = params["layers"][0]
    def step(v):
        v = v.reshape(5, dim)
        return (v + flow._displacement(flow._waves_at(layer, v))).reshape(-1)

    auto = jax.jacfwd(step)(x.reshape(-1))
    np.testing.assert_allclose(flow._jacobian(flow._waves_at(layer, x)), auto, atol=1e-12)
    z, logdet = flow.forward_and_log_det(params, x)
    full = jax.jacfwd(lambda v: flow.forward(params, v.reshape(5, dim)).reshape(-1))(x.reshape(-1))
    sign, expected = jnp.linalg.slogdet(full)
    assert float(sign) == 1.0 and abs(float(expected)) > 1e-3
    assert float(logdet) == pytest.approx(float(expected), abs=1e-12)
    np.testing.assert_allclose(z, flow.forward(params, x), atol=1e-14)


def test_identity_at_init_and_inverse_round_trip():
    flow = CollectiveFlow(6, 3, L, shells=4, n_layers=2)
    x = L * jax.random.uniform(jax.random.PRNGKey(2), (6, 3))
    z, logdet = flow.forward_and_log_det(flow.init(), x)
    np.testing.assert_array_equal(z, x)
    assert float(logdet) == 0.0
    params = _params(flow, seed=3, scale=3.0)
    z = flow.forward(params, x)
    assert float(jnp.max(jnp.abs(z - x))) > 1e-3
    np.testing.assert_allclose(flow.inverse(params, z), x, atol=1e-10)


@pytest.mark.parametrize("dim", [2, 3])
def test_jacobian_stays_positive_definite_for_any_configuration(dim):
    # At strength 1 the Jacobian is symmetric with its lowest eigenvalue >= 1 - contraction, for
    # every amplitude in range and every configuration, clustered ones included.
    flow = CollectiveFlow(8, dim, L, shells=5, contraction=0.9)
    configurations = [L * jax.random.uniform(jax.random.PRNGKey(s), (8, dim)) for s in range(4)]
    configurations += [jnp.full((8, dim), 0.7),
                       0.7 + 0.05 * jax.random.normal(jax.random.PRNGKey(9), (8, dim))]
    lowest = []
    for theta in (jnp.full(5, 30.0), jnp.full(5, -30.0), 30.0 * jnp.array([1, -1, 1, -1, 1])):
        for x in configurations:
            jac = flow._jacobian(flow._waves_at({"theta": theta}, x))
            np.testing.assert_allclose(jac, jac.T, atol=1e-13)
            lowest.append(float(jnp.linalg.eigvalsh(jac)[0]))
    assert min(lowest) >= 0.1 - 1e-12
    # All electrons at one point: P = (sum_s a_s sum_k |k|^2 / d)(I - 11^T/n) ⊗ I, so at the
    # negative end of the range (a_s -> -A) the lowest eigenvalue is 1 - contraction * strength / d.
    for strength in (1.0, 8.0):
        strong = CollectiveFlow(8, dim, L, shells=5, strength=strength)
        jac = strong._jacobian(strong._waves_at({"theta": jnp.full(5, -30.0)},
                                                configurations[4]))
        assert float(jnp.linalg.eigvalsh(jac)[0]) == pytest.approx(1 - 0.9 * strength / dim,
                                                                    rel=1e-10)
    amplitudes = flow.amplitudes({"theta": jnp.array([-30.0, 0.0, 30.0, 0.0, 0.0])})
    k, _ = reciprocal_half_shells(dim, 5, L)
    A = 0.9 / np.sum(k * k)
    np.testing.assert_allclose(amplitudes[:3], [-A, 0.0, A / 2], rtol=1e-12, atol=1e-15)


def test_periodic_and_equivariant():
    flow = CollectiveFlow(5, 3, L, shells=3, n_layers=2, strength=2.0)
    params = _params(flow, seed=4)
    x = L * jax.random.uniform(jax.random.PRNGKey(5), (5, 3))
    z, logdet = flow.forward_and_log_det(params, x)
    lattice = jnp.zeros((5, 3)).at[1].set(jnp.array([L, 0.0, -2 * L]))
    z1, ld1 = flow.forward_and_log_det(params, x + lattice)
    np.testing.assert_allclose(z1, z + lattice, atol=1e-12)
    assert float(ld1) == pytest.approx(float(logdet), abs=1e-12)
    shift = jnp.array([0.3, -1.7, 2.2])
    z2, ld2 = flow.forward_and_log_det(params, x + shift)
    np.testing.assert_allclose(z2, z + shift, atol=1e-12)
    assert float(ld2) == pytest.approx(float(logdet), abs=1e-12)
    perm = jnp.array([3, 0, 4, 1, 2])
    z3, ld3 = flow.forward_and_log_det(params, x[perm])
    np.testing.assert_allclose(z3, z[perm], atol=1e-12)
    assert float(ld3) == pytest.approx(float(logdet), abs=1e-12)


def test_to_first_order_the_jacobian_factor_is_the_long_range_jastrow():
    # ln det = sum_k a_s |k|^2 (|rho_k|^2 - n) / n + O(a^2), rho_k over the half shells.
    flow = CollectiveFlow(6, 3, L, shells=3)
    x = L * jax.random.uniform(jax.random.PRNGKey(6), (6, 3))
    k, shell = reciprocal_half_shells(3, 3, L)
    phase = np.asarray(x) @ k.T
    power = np.sum(np.cos(phase), 0) ** 2 + np.sum(np.sin(phase), 0) ** 2 - 6
    theta = jnp.array([0.3, -0.2, 0.1])
    for eps in (1e-2, 1e-3):
        params = {"layers": [{"theta": eps * theta}]}
        a = np.asarray(flow.amplitudes(params["layers"][0]))[shell]
        first_order = float(np.sum(a * np.sum(k * k, 1) * power) / 6)
        _, logdet = flow.forward_and_log_det(params, x)
        assert float(logdet) == pytest.approx(first_order, rel=20 * eps)
    assert abs(first_order) > 1e-5


def test_bad_arguments_are_named():
    for kw, what in (({"n_particles": 1}, "two particles"), ({"dim": 1}, "dim"),
                     ({"box_length": 0.0}, "box_length"), ({"shells": 0}, "shells"),
                     ({"shells": 13}, "shells"), ({"n_layers": -1}, "n_layers"),
                     ({"strength": 0.0}, "strength"), ({"contraction": 1.0}, "contraction")):
        args = {"n_particles": 4, "dim": 3, "box_length": L, **kw}
        with pytest.raises(ValueError, match=what):
            CollectiveFlow(**args)
    flow = CollectiveFlow(4, 3, L)
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        flow.forward_and_log_det(flow.init(), jnp.zeros((3, 3)))
