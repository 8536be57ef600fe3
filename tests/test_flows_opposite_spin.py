"""Opposite-spin coupling flow: identity at init, exact block log-det, bijectivity, the
configuration-independent contraction bound, symmetries, periodicity and folx's Laplacian."""

import folx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.opposite_spin import OppositeSpinFlow

from helpers import perturbed

L = 3.0
FLOW = OppositeSpinFlow(n_up=3, n_down=2, dim=3, box_length=L, length_scale=0.8, hidden=(8,),
                        n_layers=2)
# compiled once and shared by the tests (eagerly, every call dispatched the flow op by op)
forward_and_log_det = jax.jit(FLOW.forward_and_log_det)
inverse = jax.jit(FLOW.inverse)


@pytest.fixture(scope="module")
def case():
    params = perturbed(FLOW.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 3), minval=0.0, maxval=L)
    return params, x


def test_identity_at_init():
    x = jnp.arange(15.0).reshape(5, 3) / 7
    z, ld = forward_and_log_det(FLOW.init(jax.random.PRNGKey(0)), x)
    np.testing.assert_array_equal(np.asarray(z), np.asarray(x))
    assert float(ld) == 0.0


def test_log_det_matches_dense_jacobian(case):
    params, x = case
    _, ld = forward_and_log_det(params, x)
    jac = jax.jacfwd(lambda v: forward_and_log_det(params, v.reshape(x.shape))[0]
                     .reshape(-1))(x.reshape(-1))
    sign, ref = jnp.linalg.slogdet(jac)
    assert float(sign) == 1.0
    np.testing.assert_allclose(float(ld), float(ref), rtol=0, atol=1e-12)
    assert abs(float(ld)) > 1e-2  # the perturbed flow is far from the identity


def test_forward_alone_is_forward_and_log_dets_z(case):
    """forward (no log-det) feeds the Hutchinson kinetic energy: it must be the same map."""
    params, x = case
    z, _ = forward_and_log_det(params, x)
    np.testing.assert_allclose(np.asarray(jax.jit(FLOW.forward)(params, x)), np.asarray(z),
                               rtol=0, atol=1e-13)
    assert float(jnp.max(jnp.abs(z - x))) > 1e-2


def test_inverse_recovers_x(case):
    params, x = case
    z, _ = forward_and_log_det(params, x)
    np.testing.assert_allclose(np.asarray(inverse(params, z)), np.asarray(x), atol=1e-10)


def test_every_electrons_map_is_a_contraction_however_crowded_the_other_spin():
    """The bound that makes each half-step a bijection: |dg/dx|_2 <= contraction for any number of
    the other spin at any distance. Many down electrons (12) crowded within 0.05–1 box lengths of
    one up electron, with large random weights; the largest norm found must stay below 0.9, and
    come within a factor 10 of it (the bound is not vacuous)."""
    flow = OppositeSpinFlow(n_up=1, n_down=12, dim=3, box_length=L, length_scale=0.5,
                            hidden=(8,), n_layers=1)
    jacobians = jax.jit(jax.vmap(jax.jacfwd(flow._displacement, argnums=1), (None, 0, 0)))
    worst = 0.0
    for seed in range(6):
        params = perturbed(flow.init(jax.random.PRNGKey(seed)), jax.random.PRNGKey(seed + 10), 10.0)
        mlp = params["layers"][0]["up"]
        for spread in (0.05, 0.2, 1.0):
            keys = jax.random.split(jax.random.PRNGKey(100 + seed), 64)
            xs = jax.vmap(lambda k: jax.random.uniform(k, (3,), maxval=L))(keys)
            others = xs[:, None, :] + spread * L * jax.random.normal(
                jax.random.PRNGKey(seed), (64, 12, 3))
            jac = jacobians(mlp, xs, others)
            worst = max(worst, float(jnp.max(jnp.linalg.norm(jac, ord=2, axis=(1, 2)))))
    assert 0.09 < worst < flow.contraction


def test_spin_permutation_equivariance(case):
    params, x = case
    z, ld = forward_and_log_det(params, x)
    perm = np.array([2, 0, 1, 4, 3])  # within each spin
    z2, ld2 = forward_and_log_det(params, x[perm])
    np.testing.assert_allclose(np.asarray(z2), np.asarray(z[perm]), atol=1e-12)
    np.testing.assert_allclose(float(ld2), float(ld), atol=1e-12)


def test_periodic_in_every_electron(case):
    params, x = case
    z, ld = forward_and_log_det(params, x)
    for i, axis in ((0, 1), (4, 2)):  # an up and a down electron
        shift = jnp.zeros_like(x).at[i, axis].set(L)
        z2, ld2 = forward_and_log_det(params, x + shift)
        np.testing.assert_allclose(np.asarray(z2), np.asarray(z + shift), atol=1e-11)
        np.testing.assert_allclose(float(ld2), float(ld), atol=1e-11)


def test_forward_laplacian_equals_hessian(case):
    """What the kinetic energy uses: z through a periodic function plus half the log-det."""
    params, x = case

    def f(v):
        z, ld = FLOW.forward_and_log_det(params, v.reshape(x.shape))
        return jnp.sum(jnp.sin(2 * np.pi * z / L) * jnp.array([0.3, -0.7, 1.1])) + 0.5 * ld

    v = x.reshape(-1)
    out = jax.jit(folx.forward_laplacian(f))(v)
    hess = jax.jit(jax.hessian(f))(v)
    np.testing.assert_allclose(float(out.laplacian), float(jnp.trace(hess)), rtol=1e-10)


def test_invalid_configuration():
    params = FLOW.init(jax.random.PRNGKey(0))
    for call in (FLOW.forward, FLOW.forward_and_log_det, FLOW.inverse):
        with pytest.raises(ValueError, match=r"x of shape \(5, 3\)"):
            call(params, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="both spins"):
        OppositeSpinFlow(n_up=3, n_down=0, dim=3, box_length=L)
    with pytest.raises(ValueError, match="contraction"):
        OppositeSpinFlow(n_up=1, n_down=1, dim=3, box_length=L, contraction=1.0)
