"""Screened-proton band orbitals against exact results and symmetries.

- Bare Coulomb (ε = 1), one proton: the lowest band plus the cell's Madelung term is the exact
  energy of one electron and one proton in the periodic cube (``periodic_atom``'s independent
  FFT diagonalisation) within the plane-wave cutoff's error.
- Weak coupling: the lowest band's energy is −Σ_G |V_G|²/(½G²) (second-order perturbation
  theory) up to O(λ³).
- Coupling 0 gives the plane waves; the coefficients are orthonormal; translating every proton
  and every position together leaves band energies and densities unchanged; the orbital values
  are the coefficients times the plane waves.
- A √flow wavefunction over the bands (hydrogen's ``model.orbitals = "screened_bands"``): the
  same ln ψ after moving an electron or a proton by a lattice vector, and the folx local energy
  equals jax.hessian's.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.physics import heg
from qvfe.physics.bands import ScreenedBands
from qvfe.physics.ewald import madelung_constant
from qvfe.physics.orbitals import plane_wave_orbitals
from qvfe.physics.periodic_atom import hydrogen_in_a_box_energy
from qvfe.problems.hydrogen import band_plane_waves, box_length


def _bands(n_protons=4, rs=1.25, n_plane_waves=57, n_bands=7, **kw):
    L = box_length(rs, n_protons)
    k, _ = plane_wave_orbitals(3, L, n_plane_waves, np.zeros(3))
    return ScreenedBands(k, L, rs, n_bands, **kw), L


def test_bare_coulomb_lowest_band_is_the_periodic_hydrogen_atom():
    L = box_length(1.25, 1)
    k = band_plane_waves(L, np.array([[2 * np.pi / L, 0.0, 0.0]]), 5.5, np.zeros(3))  # |m| ≤ 5.5
    bands = ScreenedBands(k, L, 1.25, 1, screening="none")
    energies, _ = bands.bands(jnp.zeros((1, 3)))
    ours = float(energies[0]) + madelung_constant(L * np.eye(3))
    exact = hydrogen_in_a_box_energy(L, n_grid=32)  # -1.46318 Ha, converged to 1e-5
    assert len(k) == 739
    assert ours == pytest.approx(exact, abs=5e-4)  # 3.5e-4 high: the sphere's cutoff
    assert ours > exact - 1e-5


def test_weak_coupling_lowest_band_is_second_order_perturbation_theory():
    lam = 1e-3
    bands, L = _bands(charge=lam)
    s = jax.random.uniform(jax.random.PRNGKey(0), (4, 3), maxval=L)
    energies, _ = bands.bands(s)
    k = bands.k_vectors[1:]  # G = k - 0 for the k = 0 band
    v = lam * (-4 * np.pi / (np.sum(k**2, 1) * heg.rpa_dielectric(np.linalg.norm(k, axis=1),
                                                                  1.25)))
    v_g = v / L**3 * np.sum(np.exp(-1j * k @ np.asarray(s).T), axis=1)
    second_order = -np.sum(np.abs(v_g) ** 2 / (0.5 * np.sum(k**2, 1)))
    assert abs(second_order) > 1e-8
    assert float(energies[0]) == pytest.approx(second_order, rel=1e-2)


def test_uncoupled_bands_are_plane_waves_and_coefficients_orthonormal():
    bands, L = _bands(charge=0.0)
    s = jax.random.uniform(jax.random.PRNGKey(1), (4, 3), maxval=L)
    energies, _ = bands.bands(s)
    np.testing.assert_allclose(energies, bands.energies(), atol=1e-12)
    coupled, _ = _bands()
    c = coupled.coefficients(s)
    assert c.shape == (57, 7)
    np.testing.assert_allclose(c.conj().T @ c, np.eye(7), atol=1e-12)
    h = coupled.hamiltonian(s)
    np.testing.assert_allclose(h, h.conj().T, atol=1e-14)
    # the protons lower the lowest band below the plane waves' 0 and split the first shell
    e, _ = coupled.bands(s)
    assert e[0] < -0.05 and np.ptp(np.asarray(e[1:7])) > 1e-3


def test_bands_move_with_the_protons():
    bands, L = _bands()
    s = jax.random.uniform(jax.random.PRNGKey(2), (4, 3), maxval=L)
    z = jax.random.uniform(jax.random.PRNGKey(3), (5, 3), maxval=L)
    shift = jnp.array([0.37, -1.1, 2.3])
    e0, c0 = bands.bands(s)
    e1, c1 = bands.bands(s + shift)
    np.testing.assert_allclose(e1, e0, atol=1e-10)
    np.testing.assert_allclose(bands.bands(s[::-1])[0], e0, atol=1e-10)  # labels of protons
    lowest = jnp.array([0])
    d0 = jnp.abs(bands.values(z, lowest, c0).matrix) ** 2  # the lowest band is non-degenerate
    d1 = jnp.abs(bands.values(z + shift, lowest, c1).matrix) ** 2
    np.testing.assert_allclose(d1, d0, rtol=1e-9)
    occ = jnp.array([0, 3, 5])
    v = bands.values(z, occ, c0)
    waves = jnp.exp(1j * z @ bands.k_vectors.T) / np.sqrt(L**3)
    np.testing.assert_allclose(jnp.exp(v.log_row)[:, None] * v.matrix, waves @ c0[:, occ],
                               atol=1e-12)


def test_band_plane_waves_take_whole_shells_within_the_cutoff():
    L = box_length(1.25, 16)
    k, _ = plane_wave_orbitals(3, L, 19, np.zeros(3))
    table = band_plane_waves(L, k, 2.0, np.zeros(3))
    assert len(table) == 93  # |m|² ≤ 8 on the grid
    np.testing.assert_allclose(table[:19], k)
    assert np.max(np.linalg.norm(table, axis=1)) <= 2.0 * np.linalg.norm(k[-1]) * (1 + 1e-12)


def test_wavefunction_over_bands_is_periodic_and_its_laplacian_exact():
    from qvfe.flows.backflow import Backflow
    from qvfe.flows.nuclei import ElectronNucleusFlow
    from qvfe.wavefunction import SquareRootFlowWavefunction

    bands, L = _bands(n_protons=2, rs=1.5, n_plane_waves=33)
    wf = SquareRootFlowWavefunction(
        bands, Backflow(2, 1, 3, kind="periodic", box_length=L, hidden=(4,)),
        nuclei=ElectronNucleusFlow(2, 3, kind="periodic", box_length=L, hidden=(4,)))
    params = wf.init(jax.random.PRNGKey(4))
    params = jax.tree.map(lambda a: a + 0.5 * jax.random.normal(jax.random.PRNGKey(5), a.shape),
                          params)
    pos = jax.random.uniform(jax.random.PRNGKey(6), (5, 3), maxval=L)
    x, nuc = pos[:3], pos[3:]
    up, down = jnp.array([0, 2]), jnp.array([1])
    c = bands.coefficients(nuc)
    log_psi = jax.jit(wf.log_psi)  # one compilation instead of op-by-op dispatch, three times
    re0, _ = log_psi(params, x, up, down, nuc, c)
    for dx, dn in ((jnp.zeros((3, 3)).at[1, 2].set(L), jnp.zeros((2, 3))),
                   (jnp.zeros((3, 3)), jnp.zeros((2, 3)).at[0, 0].set(-L))):
        re, _ = log_psi(params, x + dx, up, down, nuc + dn, bands.coefficients(nuc + dn))
        assert float(re) == pytest.approx(float(re0), abs=1e-10)
    # the Laplacian through the bands (no electron-nucleus flow: the coefficients alone are the
    # context, and the hessian's compilation stays short)
    plain = SquareRootFlowWavefunction(bands, wf.backflow)
    k_folx = jax.jit(plain.kinetic_energy)(params, x, up, down, c)
    k_hess = jax.jit(partial(plain.kinetic_energy, laplacian="hessian"))(params, x, up, down, c)
    np.testing.assert_allclose(k_folx, k_hess, rtol=1e-9, atol=1e-9)
    assert abs(complex(k_folx)) > 1e-3
    # the bands do change the amplitude: plane waves would give another ln ψ
    from qvfe.physics.orbital_values import PlaneWaveBasis

    pw = SquareRootFlowWavefunction(PlaneWaveBasis(bands.k_vectors[:7], L), wf.backflow,
                                    nuclei=wf.nuclei)
    re_pw, _ = pw.log_psi(params, x, up, down, nuc)
    assert abs(float(re_pw - re0)) > 1e-3


def test_bad_band_arguments_are_rejected():
    k, _ = plane_wave_orbitals(3, 5.0, 7, np.zeros(3))
    with pytest.raises(ValueError, match="n_bands"):
        ScreenedBands(k, 5.0, 1.25, 8)
    with pytest.raises(ValueError, match="screening"):
        ScreenedBands(k, 5.0, 1.25, 3, screening="tf")
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        ScreenedBands(k[:, :2], 5.0, 1.25, 3)
