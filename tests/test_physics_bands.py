"""Screened-proton band orbitals against exact results and symmetries.

- Bare Coulomb (ε = 1), one proton: the lowest band plus the cell's Madelung term is the exact
  energy of one electron and one proton in the periodic cube (``periodic_atom``'s independent
  FFT diagonalisation) within the plane-wave cutoff's error.
- Weak coupling: the lowest band's energy is −Σ_G |V_G|²/(½G²) (second-order perturbation
  theory) up to O(λ³).
- Coupling 0 gives the plane waves; the coefficients are orthonormal; translating every proton
  and every position together leaves band energies and densities unchanged; the orbital values
  are the coefficients times the plane waves.
- Tails (``n_exact``): at weak coupling the tail coefficients are first-order perturbation
  theory's, hence the full diagonalisation's to O(λ²); at full coupling the columns are
  orthonormal, move with the protons, and their determinant recovers most of what the full
  diagonalisation in the same plane waves gains over the low set alone (exact energies of
  ``qvfe.physics.periodic_hf``).
- A √flow wavefunction over the bands (hydrogen's ``model.orbitals = "screened_bands"``): the
  same ln ψ after moving an electron or a proton by a lattice vector, and the folx local energy
  equals jax.hessian's.
"""

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from qvfe.physics import heg
from qvfe.physics.bands import TIE_BREAK, ScreenedBands
from qvfe.physics.ewald import madelung_constant
from qvfe.physics.orbitals import plane_wave_orbitals, plane_waves_within
from qvfe.physics.periodic_atom import hydrogen_in_a_box_energy
from qvfe.problems.hydrogen import band_plane_waves, box_length, lattice_positions


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
    # the unperturbed levels: ½k² and the tie-break's diagonal (≤ 1e-7 Ha)
    level = bands.diagonal
    assert np.max(np.abs(level - 0.5 * np.sum(bands.k_vectors**2, 1))) <= TIE_BREAK
    second_order = -np.sum(np.abs(v_g) ** 2 / (level[1:] - level[0]))
    assert abs(second_order) > 1e-8
    assert float(energies[0]) - level[0] == pytest.approx(second_order, rel=1e-2)


def test_uncoupled_bands_are_plane_waves_and_coefficients_orthonormal():
    bands, L = _bands(charge=0.0)
    s = jax.random.uniform(jax.random.PRNGKey(1), (4, 3), maxval=L)
    energies, _ = bands.bands(s)
    np.testing.assert_allclose(energies, np.sort(bands.diagonal)[:7], atol=1e-12)
    np.testing.assert_allclose(energies, bands.energies(), atol=TIE_BREAK)
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


def test_a_degenerate_multiplet_at_the_last_band_is_split_the_same_way_by_any_eigensolver():
    # bcc, 16 protons, Γ: the 8th band of each spin is one of a shell of 5 at 1.374 Ha, and
    # without the tie-break jax's and numpy's eigh returned occupied projectors 0.3 apart.
    L = box_length(1.25, 16)
    k, _ = plane_wave_orbitals(3, L, 19, np.zeros(3))
    bands = ScreenedBands(band_plane_waves(L, k, 2.0, np.zeros(3)), L, 1.25, 19)
    h = np.asarray(bands.hamiltonian(jnp.asarray(lattice_positions("bcc", 16, L))))
    levels = np.linalg.eigvalsh(h)
    assert levels[11] - levels[7] < 1e-6 < levels[7] - levels[6]  # the shell of 5
    occupied = [c[:, :8] @ c[:, :8].conj().T
                for c in (np.asarray(jnp.linalg.eigh(jnp.asarray(h))[1]), np.linalg.eigh(h)[1],
                          scipy.linalg.eigh(h, driver="evr")[1])]
    for other in occupied[1:]:
        np.testing.assert_allclose(other, occupied[0], atol=1e-6)


@pytest.mark.parametrize("screening", ["none", "rpa"])
def test_twisted_cells_are_the_supercell_at_the_gamma_point(screening):
    # One proton in a cell of side L at the 8 twists {0, ½}³ is the same crystal as 8 protons in
    # the cell of side 2L at Γ: the same bands (the twist's phase convention, 1/V and the
    # structure factor all enter; the two tie-breaks differ by ≤ 2e-7 Ha).
    rs, start = 1.25, np.array([0.3, 0.7, 1.1])
    L = box_length(rs, 1)
    cutoff = 0.5 * (2.2 * 2 * np.pi / L) ** 2
    twisted = []
    for t in itertools.product([0.0, 0.5], repeat=3):
        k, _ = plane_waves_within(3, L, cutoff, np.array(t))
        twisted.append(ScreenedBands(k, L, rs, len(k), screening=screening)
                       .bands(jnp.asarray(start[None]))[0])
    twisted = np.sort(np.concatenate(twisted))
    k, _ = plane_waves_within(3, 2 * L, cutoff, np.zeros(3))
    protons = start + L * np.array(list(itertools.product([0, 1], repeat=3)))
    supercell = ScreenedBands(k, 2 * L, rs, len(k), screening=screening)
    np.testing.assert_allclose(np.sort(supercell.bands(jnp.asarray(protons))[0])[:40],
                               twisted[:40], atol=3 * TIE_BREAK)
    assert twisted[0] < -0.02 and np.ptp(twisted[:40]) > 1.0  # not a trivial spectrum


def test_bad_tables_are_refused():
    L = box_length(1.25, 4)
    k, _ = plane_wave_orbitals(3, L, 27, np.zeros(3))
    for table, length, kw, what in ((k, 1.37 * L, {}, "2π"), (k[[0, 1, 1, 2]], L, {}, "distinct"),
                                    (k, L, {"charge": np.nan}, "charge"),
                                    (k, L, {"n_bands": 2.5}, "n_bands")):
        with pytest.raises(ValueError, match=what):
            ScreenedBands(table, length, 1.25, kw.pop("n_bands", 3), **kw)
    with pytest.raises(ValueError, match="> 0"):
        ScreenedBands(k, 0.0, 1.25, 3)


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


def _tailed(n_low=33, n_all=257, **kw):
    """Bands of 4 protons (rs 1.25) over ``n_all`` plane waves, the first ``n_low`` exact."""
    L = box_length(1.25, 4)
    k, _ = plane_wave_orbitals(3, L, n_all, np.zeros(3))
    return (ScreenedBands(k, L, 1.25, 5, n_exact=n_low, **kw),
            ScreenedBands(k, L, 1.25, 5, **kw), L)


def _same_columns(a, b):
    """Each column of ``a`` against ``b``'s up to its phase (eigenvectors' arbitrary phase)."""
    overlap = np.sum(np.conj(b) * a, axis=0)
    return a * (np.abs(overlap) / overlap)[None, :].conj(), b


def test_band_tails_at_weak_coupling_are_first_order_perturbation_theory():
    lam = 1e-3
    tailed, full, L = _tailed(charge=lam)
    s = jax.random.uniform(jax.random.PRNGKey(7), (4, 3), maxval=L)
    # the lowest band is non-degenerate (k = 0); its tail coefficients are O(λ), error O(λ²)
    c_tail, c_full = _same_columns(np.asarray(tailed.coefficients(s))[:, :1],
                                   np.asarray(full.coefficients(s))[:, :1])
    tail = slice(33, None)
    assert np.max(np.abs(c_full[tail])) > 1e-6  # the tail is there, at first order in λ
    np.testing.assert_allclose(c_tail[tail], c_full[tail],
                               atol=1e-3 * np.max(np.abs(c_full[tail])))


def test_band_tails_are_orthonormal_move_with_the_protons_and_lower_the_determinant():
    from qvfe.physics.periodic_hf import PeriodicHartreeFock

    tailed, full, L = _tailed()
    s = np.asarray(jax.random.uniform(jax.random.PRNGKey(8), (4, 3), maxval=L))
    e, c = tailed.bands(jnp.asarray(s))
    assert c.shape == (257, 5)
    np.testing.assert_allclose(c.conj().T @ c, np.eye(5), atol=1e-12)
    shift = np.array([0.4, -1.3, 2.2])
    e1, c1 = tailed.bands(jnp.asarray(s + shift))
    np.testing.assert_allclose(e1, e, atol=1e-10)
    z = jax.random.uniform(jax.random.PRNGKey(9), (6, 3), maxval=L)
    lowest = jnp.array([0])
    np.testing.assert_allclose(jnp.abs(tailed.values(z + shift, lowest, c1).matrix),
                               jnp.abs(tailed.values(z, lowest, c).matrix), rtol=1e-9)
    # the low set's own bands, the tailed ones, the full diagonalisation: exact determinant
    # energies of 2 + 2 electrons
    low = np.zeros_like(c)
    low[:33] = np.asarray(ScreenedBands(full.k_vectors[:33], L, 1.25, 5).coefficients(s))
    hf = PeriodicHartreeFock(full.k_vectors, L, s)

    def energy(cols):
        return hf.energy((cols[:, :2], cols[:, :2])) / 4

    e_low, e_tail = energy(low), energy(np.asarray(c))
    e_full = energy(np.asarray(full.coefficients(s)))
    assert e_full < e_low - 0.01  # the cusps' plane waves are worth 0.01 Ha/atom and more here
    assert e_tail - e_full < 0.15 * (e_low - e_full)
    # n_exact = K is the plain diagonalisation
    np.testing.assert_allclose(ScreenedBands(full.k_vectors, L, 1.25, 5, n_exact=257)
                               .coefficients(s), full.coefficients(s), atol=1e-12)


def test_bad_band_arguments_are_rejected():
    k, _ = plane_wave_orbitals(3, 5.0, 7, np.zeros(3))
    with pytest.raises(ValueError, match="n_exact"):
        ScreenedBands(k, 5.0, 1.25, 3, n_exact=2)
    with pytest.raises(ValueError, match="n_exact"):
        ScreenedBands(k, 5.0, 1.25, 3, n_exact=8)
    with pytest.raises(ValueError, match="n_bands"):
        ScreenedBands(k, 5.0, 1.25, 8)
    with pytest.raises(ValueError, match="screening"):
        ScreenedBands(k, 5.0, 1.25, 3, screening="tf")
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        ScreenedBands(k[:, :2], 5.0, 1.25, 3)
