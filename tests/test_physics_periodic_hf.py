"""Periodic plane-wave Hartree–Fock: jellium's plane waves against the closed form, one electron
against the bare bands' diagonalisation (no self-interaction), invariances, the variational
minimum and its stationarity, and the screened bands against Hartree–Fock."""

import jax
import numpy as np
import pytest

from qvfe.physics import heg
from qvfe.physics.bands import ScreenedBands
from qvfe.physics.ewald import madelung_constant
from qvfe.physics.orbitals import plane_wave_orbitals
from qvfe.physics.periodic_hf import PeriodicHartreeFock
from qvfe.problems.hydrogen import box_length, lattice_positions

jax.config.update("jax_enable_x64", True)


def _orthonormal(rng, k, n):
    a = rng.normal(size=(k, n)) + 1j * rng.normal(size=(k, n))
    return np.linalg.qr(a)[0]


@pytest.fixture(scope="module")
def bcc_pair():
    """2 protons on a bcc cell at rs = 1.25 with a twist, 59 plane waves (a quick problem)."""
    L = box_length(1.25, 2)
    twist = np.array([0.25, 0.25, 0.25])
    k, _ = plane_wave_orbitals(3, L, 59, twist)
    return PeriodicHartreeFock(k, L, lattice_positions("bcc", 2, L)), L, twist


def test_jellium_plane_waves_are_the_closed_form_hf_energy():
    # 7 + 7 at the Γ point, rs = 5: QMCPACK's Slater-only reference (-0.812484(27) Ha per cell)
    L = heg.box_length(5.0, 14, 3)
    k, _ = plane_wave_orbitals(3, L, 27, np.zeros(3))
    hf = PeriodicHartreeFock(k, L, np.zeros((0, 3)))
    waves = np.eye(27)[:, :7]
    exact = heg.hf_energy([k[:7], k[:7]], L * np.eye(3)).total
    assert hf.energy((waves, waves)) == pytest.approx(exact, abs=1e-12)
    assert hf.energy((waves, waves)) == pytest.approx(-0.812484, abs=3 * 2.7e-5)
    # a closed shell of plane waves is self-consistent: the solver keeps it
    state = hf.solve(7, 7)
    assert state.energy == pytest.approx(exact, abs=1e-10)
    # polarised, with a twist, 2D-free 3D check of the exchange between different shells
    k, _ = plane_wave_orbitals(3, L, 19, np.array([0.1, 0.2, 0.3]))
    hf = PeriodicHartreeFock(k, L, np.zeros((0, 3)))
    exact = heg.hf_energy([k[:5], k[:0]], L * np.eye(3)).total
    assert hf.energy((np.eye(19)[:, :5], np.eye(19)[:, :0])) == pytest.approx(exact, abs=1e-12)


def test_one_electron_has_no_self_interaction():
    # one electron and one proton: Hartree–Fock is the one-body problem, whose Hamiltonian the
    # bare bands diagonalise (screening 'none'); J and K cancel on the occupied orbital
    L = box_length(1.25, 1)
    k, _ = plane_wave_orbitals(3, L, 81, np.zeros(3))
    proton = np.array([[0.3, 0.1, 0.2]])
    hf = PeriodicHartreeFock(k, L, proton)
    state = hf.solve(1, 0)
    bare = ScreenedBands(k, L, 1.25, 1, screening="none")
    lowest = float(bare.bands(jax.numpy.asarray(proton))[0][0])
    # two self-image terms ½ v_M (the electron's and the proton's); the tie-break ≤ 1e-7 Ha
    assert state.energy == pytest.approx(lowest + madelung_constant(L * np.eye(3)), abs=2e-7)
    c = state.coefficients[0]
    two_body = hf.fock(state.coefficients)[0] - hf.fock((np.zeros((81, 0)),) * 2)[0]
    assert np.max(np.abs(two_body @ c)) < 1e-12


def test_energy_is_invariant_under_orbital_rotations_and_translations(bcc_pair):
    hf, L, twist = bcc_pair
    rng = np.random.default_rng(0)
    c = _orthonormal(rng, 59, 1)
    e = hf.energy((c, c))
    u = np.exp(1j * 0.7)  # one orbital per spin: a phase
    assert hf.energy((c * u, c)) == pytest.approx(e, abs=1e-12)
    # two electrons in one spin: any unitary mixing of them
    hf2 = PeriodicHartreeFock(hf.k_vectors, L, hf.nuclei)
    c2 = _orthonormal(rng, 59, 2)
    mix = np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))[0]
    assert hf2.energy((c2 @ mix, np.zeros((59, 0)))) == pytest.approx(
        hf2.energy((c2, np.zeros((59, 0)))), abs=1e-12)
    # moving the nuclei by t moves the orbitals: c_a -> c_a e^{-ik_a·t}
    t = np.array([0.31, -0.12, 0.57])
    moved = PeriodicHartreeFock(hf.k_vectors, L, hf.nuclei + t)
    phase = np.exp(-1j * hf.k_vectors @ t)[:, None]
    assert moved.energy((c * phase, c * phase)) == pytest.approx(e, abs=1e-10)


def test_fock_matrix_is_the_energy_gradient(bcc_pair):
    # E from pair densities, F from the density and exchange matrices: two code paths. Along a
    # unitary path c(ε) = exp(iεA) c, dE/dε = 2 Re Σ_j (iA c_j)† F c_j (finite differences);
    # and E = ½ Σ_j ⟨c_j|h + F|c_j⟩ + the constant terms
    from scipy.linalg import expm
    hf, L, twist = bcc_pair
    rng = np.random.default_rng(2)
    c = (_orthonormal(rng, 59, 1), _orthonormal(rng, 59, 1))
    a = rng.normal(size=(59, 59)) + 1j * rng.normal(size=(59, 59))
    a = 0.5 * (a + a.conj().T)
    focks = hf.fock(c)
    predicted = sum(2 * np.real(np.vdot(1j * a @ cs, f @ cs)) for cs, f in zip(c, focks))
    h = 1e-5
    path = [hf.energy(tuple(expm(1j * e * a) @ cs for cs in c)) for e in (-h, h)]
    assert (path[1] - path[0]) / (2 * h) == pytest.approx(predicted, rel=1e-6)
    one_body = hf.fock((np.zeros((59, 0)),) * 2)[0]  # ½k² + v_ext: no electrons, no J or K
    constant = hf.nuclear_energy() + madelung_constant(L * np.eye(3))  # 2 electrons' ½ v_M
    assert hf.energy(c) == pytest.approx(sum(
        0.5 * np.real(np.vdot(cs, (one_body + f) @ cs)) for cs, f in zip(c, focks)) + constant,
        abs=1e-10)


def test_self_consistent_determinant_is_the_stationary_minimum(bcc_pair):
    hf, L, twist = bcc_pair
    state = hf.solve(1, 1)
    assert state.residual < 1e-7
    up, down = state.coefficients
    rng = np.random.default_rng(1)
    for _ in range(5):  # no determinant lies lower
        c = _orthonormal(rng, 59, 1)
        assert hf.energy((c, c)) > state.energy
    # first-order stationary: a rotation by ε into the empty orbitals changes E by O(ε²)
    virtual = np.linalg.eigh(hf.fock(state.coefficients)[0])[1][:, 1:2]
    changes = []
    for eps in (1e-2, 2e-2):
        turned = np.cos(eps) * up + np.sin(eps) * virtual
        changes.append(hf.energy((turned, down)) - state.energy)
    assert changes[0] > 0 and changes[1] / changes[0] == pytest.approx(4.0, rel=0.02)


def test_screened_bands_are_nearly_the_hartree_fock_orbitals(bcc_pair):
    # linear screening of the protons gives the self-consistent orbitals of dense hydrogen:
    # within 1e-4 Ha/atom of Hartree–Fock's energy in the same plane waves (README)
    hf, L, twist = bcc_pair
    bands = ScreenedBands(hf.k_vectors, L, 1.25, 1)
    c = np.asarray(bands.coefficients(jax.numpy.asarray(hf.nuclei)))
    e_bands = hf.energy((c, c))
    state = hf.solve(1, 1, (c, c))
    assert state.energy <= e_bands + 1e-12
    assert e_bands - state.energy < 2e-4
    # against plane waves, whose density is uniform, the bands gain a lot
    waves = np.eye(59)[:, :1]
    assert hf.energy((waves, waves)) - e_bands > 0.05


def test_bad_input_is_refused_by_name(bcc_pair):
    hf, L, twist = bcc_pair
    with pytest.raises(ValueError, match="neutral"):
        hf.energy((np.eye(59)[:, :2], np.eye(59)[:, :1]))
    with pytest.raises(ValueError, match="orthonormal"):
        hf.energy((2 * np.eye(59)[:, :1], np.eye(59)[:, :1]))
    with pytest.raises(ValueError, match="n_up must be an integer in"):
        hf.solve(60, 0)
    with pytest.raises(ValueError, match="k_vectors must be distinct"):
        PeriodicHartreeFock(np.vstack([hf.k_vectors, hf.k_vectors[:1]]), L, hf.nuclei)
    with pytest.raises(ValueError, match="one twist"):
        PeriodicHartreeFock(hf.k_vectors + np.array([0.1, 0, 0]) * np.arange(59)[:, None] / 59,
                            L, hf.nuclei)
    with pytest.raises(ValueError, match="box_length must be > 0"):
        PeriodicHartreeFock(hf.k_vectors, -1.0, hf.nuclei)
