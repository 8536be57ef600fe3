"""Full configuration interaction of a few same-spin electrons (qvfe.physics.heg_fci).

What the reference rests on, each against something independent of it:
- λ = 0: F, E, S equal the exact canonical ideal gas (qvfe.physics.ideal_fermi) of three
  electrons on the same plane waves, twisted and at the Γ point (its 15-fold ground multiplet);
- two electrons: the levels of qvfe.physics.heg_exact, which diagonalises the relative motion
  instead (a different basis and a different truncation);
- the fermionic signs: the spectrum does not depend on the order of the one-body basis (a wrong
  sign of a spectator's passage would), and H is symmetric;
- Lanczos on a large sector finds every level below the cut, degenerate ones included;
- first order in λ at a non-degenerate ground state: the Hartree–Fock energy (heg.hf_energy);
- Onsager's floor, which the sector selection relies on, lies below the lowest Ewald energies of
  two and three electrons an optimiser finds;
- bad input is refused by name.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from qvfe.physics import heg, heg_exact, heg_fci
from qvfe.physics.ewald import make_ewald
from qvfe.physics.ideal_fermi import canonical_thermo
from qvfe.physics.orbitals import plane_wave_orbitals

TWIST = np.array([0.05, 0.1, 0.3])


@pytest.mark.parametrize("twist", [TWIST, np.zeros(3)])
def test_ideal_gas_limit(twist):
    rs, theta = 4.0, 0.25  # thousands of levels in hundreds of sectors
    L = heg.box_length(rs, 3)
    T = heg.gas_temperature(theta, rs, 3, 0)
    got = heg_fci.few_electron_thermo(3, L, temperature=T, twist=twist, coupling=0.0,
                                      m_cut=3.0, window=35.0)
    assert got.n_levels > 3000 and got.n_sectors > 200
    _, levels = plane_wave_orbitals(3, L, got.n_orbitals, twist)
    ex = canonical_thermo(np.asarray(levels), 3, T)
    for key in ("F", "E", "S"):
        # levels above E_HF + 35 kT are left out: weight below e^-35 of the ground state's
        assert getattr(got, key) == pytest.approx(float(ex[key]) / 3, abs=1e-9), key
    if not twist.any():
        cold = heg_fci.few_electron_thermo(3, L, temperature=1e-3 * T, coupling=0.0, m_cut=2.0)
        assert cold.S == pytest.approx(math.log(15.0) / 3, abs=1e-9)  # k = 0 + two of six


def test_two_electrons_agree_with_the_relative_motion_diagonalisation():
    rs, theta = 10.0, 0.0625
    L = heg.box_length(rs, 2)
    T = heg.gas_temperature(theta, rs, 2, 0)
    fci = heg_fci.few_electron_thermo(2, L, temperature=T, twist=TWIST, m_cut=5.0)
    pair = heg_exact.two_electron_thermo(L, 3, polarized=True, temperature=T, twist=TWIST,
                                         p_cut=6.0)
    assert fci.truncation < 3e-7
    for key in ("F", "E", "S", "E_ground"):
        assert getattr(fci, key) == pytest.approx(getattr(pair, key), abs=2e-7), key
    assert fci.n_levels == pair.n_levels


def _sector(L, twist, m_cut, m_total, order=None):
    basis = heg_fci._basis(L, twist, m_cut)
    if order is not None:  # the same plane waves listed in another order
        m = basis.m[order]
        lookup = np.full_like(basis.lookup, -1)
        lookup[tuple((m + basis.offset).T)] = np.arange(len(m))
        basis = heg_fci._Basis(m, basis.k[order], lookup, basis.offset)
    dets = heg_fci._determinants(basis, 3, np.asarray(m_total))
    return heg_fci.sector_hamiltonian(basis, dets, L, 1.0)


def test_spectrum_does_not_depend_on_the_order_of_the_plane_waves():
    L = heg.box_length(2.0, 3)
    for m_total in ([0, 0, 0], [1, -1, 0], [2, 1, 0]):
        h = _sector(L, TWIST, 2.5, m_total)
        assert abs(h - h.T).max() < 1e-14
        assert h.shape[0] > 100
        order = np.random.default_rng(0).permutation(len(heg_fci._basis(L, TWIST, 2.5).m))
        shuffled = _sector(L, TWIST, 2.5, m_total, order)
        np.testing.assert_allclose(np.linalg.eigvalsh(shuffled.toarray()),
                                   np.linalg.eigvalsh(h.toarray()), atol=1e-12)


def test_lanczos_finds_every_level_of_a_large_sector_with_its_multiplicity():
    # the Γ point's cubic symmetry makes degenerate levels, which Lanczos must not drop
    L = heg.box_length(10.0, 3)
    for m_total in ([0, 0, 0], [1, 0, 0]):
        h = _sector(L, np.zeros(3), 3.6, m_total)
        assert h.shape[0] > heg_fci._DENSE_LIMIT  # the sparse path
        dense = np.linalg.eigvalsh(h.toarray())
        gap = 20 + int(np.argmax(np.diff(dense[20:]) > 1e-8))  # a cut between two levels
        below = 0.5 * (dense[gap] + dense[gap + 1])
        expected = dense[dense < below]
        assert len(expected) > 8 and np.any(np.diff(expected) < 1e-10)  # grows k; degenerate
        np.testing.assert_allclose(heg_fci._lowest(h, below), expected, atol=1e-10)


def test_first_order_is_hartree_fock():
    L = heg.box_length(4.0, 3)
    free, first = heg_exact.free_ground(L, 3, 3, 0, TWIST)
    k, _ = plane_wave_orbitals(3, L, 3, TWIST)
    assert free + first == pytest.approx(heg.hf_energy([k, k[:0]], L * np.eye(3)).total,
                                         abs=1e-12)

    def ground(lam):
        return heg_fci.few_electron_thermo(3, L, temperature=0.0, twist=TWIST, coupling=lam,
                                           m_cut=2.0).E_ground * 3

    # non-degenerate ground state: E(λ) = E_free + λ <V>_HF + c λ², c < 0
    c1, c2 = [(ground(lam) - free - lam * first) / lam**2 for lam in (1e-3, 2e-3)]
    assert c1 < 0 and c2 == pytest.approx(c1, rel=0.05)


@pytest.mark.parametrize("n", [2, 3])
def test_onsager_floor_bounds_the_ewald_energy(n):
    rs = 3.0
    L = heg.box_length(rs, n)
    ewald = make_ewald(L * np.eye(3), n_particles=n)
    energy = jax.jit(lambda x: ewald.energy(x.reshape(n, 3)))
    grad = jax.jit(jax.grad(lambda x: ewald.energy(x.reshape(n, 3))))
    starts = np.random.default_rng(1).uniform(0.0, L, (6, n * 3))
    lowest = min(optimize.minimize(lambda x: float(energy(jnp.asarray(x))), x0,
                                   jac=lambda x: np.asarray(grad(jnp.asarray(x))),
                                   method="BFGS").fun for x0 in starts)
    floor = -heg_fci.ONSAGER_FLOOR * n / rs
    assert floor < lowest < floor + 0.1 * n / rs  # a bound, and not a loose one
    if n == 2:  # the optimiser found the bcc crystal of heg_exact's floor
        assert lowest == pytest.approx(-2 * heg_exact.WIGNER_CRYSTAL_MADELUNG[3] / rs, abs=1e-6)


@pytest.mark.parametrize("kwargs,field", [
    (dict(n_electrons=0), "n_electrons"), (dict(L=-1.0), "box length"),
    (dict(temperature=-1.0), "temperature"), (dict(m_cut=0.5), "m_cut"),
    (dict(twist=np.zeros(2)), "twist"), (dict(n_electrons=8, m_cut=1.0), "m_cut")])
def test_bad_input_is_refused_by_name(kwargs, field):
    args = dict(n_electrons=3, L=5.0, temperature=0.01, m_cut=2.0) | kwargs
    with pytest.raises(ValueError, match=field):
        heg_fci.few_electron_thermo(**args)
