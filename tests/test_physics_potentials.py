"""Open-boundary potentials against explicit loops; finite derivatives (no sqrt(0) on the diagonal).
"""

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics.potentials import (
    coulomb_charges,
    coulomb_open,
    harmonic_trap,
    make_quantum_dot_potential,
)


def _loop_coulomb(x, q):
    e = 0.0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            e += q[i] * q[j] / np.linalg.norm(x[i] - x[j])
    return e


def test_potentials_match_explicit_sums():
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_allclose(harmonic_trap(jnp.asarray(x), 1.7), 0.5 * 1.7**2 * np.sum(x**2))
    ones = np.ones(5)
    np.testing.assert_allclose(coulomb_open(jnp.asarray(x), 0.4), 0.4 * _loop_coulomb(x, ones))
    q = np.array([1.0, 1.0, -1.0, -1.0, 2.0])
    np.testing.assert_allclose(coulomb_charges(jnp.asarray(x), jnp.asarray(q)), _loop_coulomb(x, q))
    v = make_quantum_dot_potential(omega=0.5, coupling=2.0)
    np.testing.assert_allclose(
        v(jnp.asarray(x)), 0.5 * 0.25 * np.sum(x**2) + 2.0 * _loop_coulomb(x, np.ones(5))
    )


def test_single_particle_and_zero_coupling():
    x = jnp.array([[0.3, -0.1]])
    assert float(coulomb_open(x)) == 0.0
    assert float(coulomb_charges(x, jnp.array([1.0]))) == 0.0
    np.testing.assert_allclose(make_quantum_dot_potential(1.0, 1.0)(x), 0.5 * 0.1)
    x2 = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(make_quantum_dot_potential(2.0, 0.0)(x2), 2.0)


def test_h2_nuclear_electron_energy_and_finite_gradient():
    # H2 at R = 1.4, electrons 0.1 off the bond centre: proton-proton, electron-electron and
    # four equal proton-electron terms
    R = 1.4
    x = jnp.array([[-R / 2, 0, 0], [R / 2, 0, 0], [0, 0.1, 0], [0, -0.1, 0]])
    q = jnp.array([1.0, 1.0, -1.0, -1.0])
    d_pe = np.hypot(R / 2, 0.1)
    expected = 1 / R + 1 / 0.2 - 4 / d_pe
    np.testing.assert_allclose(coulomb_charges(x, q), expected, rtol=1e-13)
    g = jax.jit(jax.grad(coulomb_charges))(x, q)
    assert np.isfinite(np.asarray(g)).all()
    # the Coulomb potential is harmonic away from coincidences: its Laplacian vanishes (d = 3)
    hess = jax.jit(jax.hessian(lambda v: coulomb_charges(v.reshape(4, 3), q)))
    lap = jnp.trace(hess(x.reshape(-1)))
    np.testing.assert_allclose(lap, 0.0, atol=1e-9)
