"""Orbital values: orthonormality by quadrature, the log-row convention, and table gathers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import eval_hermite, factorial

from qvfe.physics.orbital_values import (
    HarmonicBasis,
    PlaneWaveBasis,
    PolarHarmonicBasis,
    harmonic_energies,
    harmonic_orbital_values,
    hermite_functions,
    plane_wave_orbital_values,
    polar_harmonic_orbital_values,
)
from qvfe.physics.orbitals import harmonic_orbitals, polar_harmonic_orbitals


def test_hermite_functions_match_textbook_definition():
    x = np.linspace(-4, 4, 17)
    h = np.asarray(hermite_functions(jnp.asarray(x), 6))
    for n in range(7):
        norm = np.sqrt(2.0**n * factorial(n) * np.sqrt(np.pi))
        ref = eval_hermite(n, x) * np.exp(-(x**2) / 2) / norm
        np.testing.assert_allclose(h[:, n], ref, rtol=1e-12, atol=1e-14)


def test_hermite_functions_orthonormal_by_quadrature_up_to_high_order():
    # the recurrence never forms n! or 2^n: n = 120 stays finite and orthonormal
    x, dx = np.linspace(-22, 22, 8001, retstep=True)
    h = np.asarray(hermite_functions(jnp.asarray(x), 120))
    assert np.isfinite(h).all()
    overlap = h.T @ h * dx
    np.testing.assert_allclose(overlap, np.eye(121), atol=1e-10)


def test_harmonic_orbitals_orthonormal_in_2d_and_log_row_convention():
    omega = 2.5
    qn = np.array([[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 3]])
    g, dx = np.linspace(-5, 5, 161, retstep=True)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    z = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=-1))
    vals = harmonic_orbital_values(z, jnp.asarray(qn), omega, n_max=3)
    phi = np.exp(np.asarray(vals.log_row))[:, None] * np.asarray(vals.matrix)
    np.testing.assert_allclose(phi.T @ phi * dx**2, np.eye(len(qn)), atol=1e-10)
    # the row factor is the Gaussian of the scaled coordinate
    np.testing.assert_allclose(vals.log_row, -0.5 * omega * np.sum(np.asarray(z) ** 2, axis=1))
    np.testing.assert_allclose(harmonic_energies(qn, omega), omega * (qn.sum(1) + 1.0))


def test_plane_waves_orthonormal_on_box_grid():
    L, m_grid = 2.7, 8
    g = np.arange(m_grid) * L / m_grid
    xx, yy = np.meshgrid(g, g, indexing="ij")
    z = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=-1))
    # |m| < m_grid / 2: no aliasing on the grid
    ms = np.array([[a, b] for a in range(-3, 4) for b in range(-3, 4)])
    k = 2 * np.pi * ms / L
    vals = plane_wave_orbital_values(z, jnp.asarray(k), L**2)
    phi = np.exp(np.asarray(vals.log_row))[:, None] * np.asarray(vals.matrix)
    overlap = phi.conj().T @ phi * (L / m_grid) ** 2
    np.testing.assert_allclose(overlap, np.eye(len(ms)), atol=1e-12)


def test_basis_tables_gather_the_occupied_rows():
    qn = np.array([[0, 0], [1, 0], [0, 1], [2, 0]])
    basis = HarmonicBasis(qn, omega=0.7)
    z = jnp.array([[0.3, -0.2], [1.1, 0.4]])
    occ = jnp.array([3, 1])
    got = basis.values(z, occ)
    ref = harmonic_orbital_values(z, jnp.asarray(qn[[3, 1]]), 0.7, n_max=2)
    np.testing.assert_allclose(got.matrix, ref.matrix, rtol=1e-14)

    k = np.array([[0.0, 0.0], [1.0, 0.5], [-0.3, 2.0]])
    pw = PlaneWaveBasis(k, box_length=3.0)
    vals = pw.values(z, jnp.array([2, 0]))
    np.testing.assert_allclose(vals.matrix, np.exp(1j * np.asarray(z) @ k[[2, 0]].T), rtol=1e-14)
    np.testing.assert_allclose(vals.log_row, -0.5 * np.log(9.0))
    np.testing.assert_allclose(pw.energies(), 0.5 * np.sum(k**2, axis=1))


def _grid_2d(half_width, n):
    g, dx = np.linspace(-half_width, half_width, n, retstep=True)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    return jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=-1)), dx


def test_polar_orbitals_orthonormal_and_span_the_cartesian_shells():
    omega = 1.7
    qn, eps = polar_harmonic_orbitals(omega, 21)  # shells 0..5, closed
    z, dx = _grid_2d(5.0, 181)
    vals = polar_harmonic_orbital_values(z, jnp.asarray(qn), omega, n_max=2, m_max=5)
    phi = np.exp(np.asarray(vals.log_row))[:, None] * np.asarray(vals.matrix)
    np.testing.assert_allclose(phi.T @ phi * dx**2, np.eye(len(qn)), atol=1e-9)
    # same shells as the Cartesian list: projecting each Cartesian orbital on the polar ones of
    # its energy keeps all of it
    qc, ec = harmonic_orbitals(2, omega, 21)
    np.testing.assert_allclose(np.sort(eps), np.sort(ec))
    cart = harmonic_orbital_values(z, jnp.asarray(qc), omega, n_max=5)
    chi = np.exp(np.asarray(cart.log_row))[:, None] * np.asarray(cart.matrix)
    for j in range(len(qc)):
        same = eps == ec[j]
        coef = phi[:, same].T @ chi[:, j] * dx**2
        np.testing.assert_allclose(np.sum(coef**2), 1.0, atol=1e-9, err_msg=str(qc[j]))


def test_polar_orbitals_are_oscillator_eigenstates_of_definite_angular_momentum():
    omega = 0.8
    qn, eps = polar_harmonic_orbitals(omega, 15)
    basis = PolarHarmonicBasis(qn, omega)
    np.testing.assert_allclose(basis.energies(), eps)

    def phi(z2, j):
        v = basis.values(z2[None, :], jnp.array([j]))
        return jnp.exp(v.log_row[0]) * v.matrix[0, 0]

    @jax.jit
    def residuals(z2):
        """(H phi_j - eps_j phi_j, L_z^2 phi_j - m_j^2 phi_j) for every orbital j at z2."""
        def one(j):
            value = phi(z2, j)
            hess = jax.hessian(phi)(z2, j)
            grad = jax.grad(phi)(z2, j)
            h_phi = -0.5 * jnp.trace(hess) + 0.5 * omega**2 * jnp.sum(z2**2) * value
            # L_z^2 = -(x d_y - y d_x)^2: eigenvalue m^2 (cos and sin are real combinations of ±m)
            x, y = z2
            lz2 = -(x**2 * hess[1, 1] + y**2 * hess[0, 0] - 2 * x * y * hess[0, 1]
                    - x * grad[0] - y * grad[1])
            m = jnp.asarray(qn)[j, 1]
            return h_phi - jnp.asarray(eps)[j] * value, lz2 - m**2 * value, value

        return jax.vmap(one)(jnp.arange(len(qn)))

    for z2 in (jnp.array([0.37, -0.81]), jnp.array([-1.3, 0.25])):
        energy_residual, lz_residual, values = residuals(z2)
        assert np.max(np.abs(values)) > 0.1
        np.testing.assert_allclose(energy_residual, 0.0, atol=1e-11)
        np.testing.assert_allclose(lz_residual, 0.0, atol=1e-11)


def test_polar_basis_gathers_rows_and_rejects_bad_tables():
    qn, _ = polar_harmonic_orbitals(1.0, 10)
    basis = PolarHarmonicBasis(qn, 1.0)
    z = jnp.array([[0.3, -0.2], [1.1, 0.4]])
    got = basis.values(z, jnp.array([9, 4]))
    ref = polar_harmonic_orbital_values(z, jnp.asarray(qn[[9, 4]]), 1.0, n_max=1, m_max=3)
    np.testing.assert_allclose(got.matrix, ref.matrix, rtol=1e-14)
    assert basis.dim == 2 and basis.n_orbitals == 10
    with pytest.raises(ValueError, match="quantum_numbers"):
        PolarHarmonicBasis(np.array([[-1, 0]]), 1.0)
    with pytest.raises(ValueError, match="omega"):
        PolarHarmonicBasis(qn, 0.0)
