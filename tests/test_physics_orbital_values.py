"""Orbital values: orthonormality by quadrature, the log-row convention, and table gathers."""

import jax.numpy as jnp
import numpy as np
from scipy.special import eval_hermite, factorial

from qvfe.physics.orbital_values import (
    HarmonicBasis,
    PlaneWaveBasis,
    harmonic_energies,
    harmonic_orbital_values,
    hermite_functions,
    plane_wave_orbital_values,
)


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
