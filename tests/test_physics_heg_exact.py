"""Exact diagonalisation of two electrons in a jellium cell (qvfe.physics.heg_exact).

What the reference rests on, each against something independent of the diagonalisation:
- λ = 0: F, E, S equal the exact canonical ideal gas (qvfe.physics.ideal_fermi) on the same
  plane waves, ↑↑ and ↑↓, 2D and 3D, with a twist;
- the pair coefficients 4π/(V q²) (3D) and 2π/(A q) (2D) are the Fourier transform of qvfe's own
  Ewald energy of two electrons (real-space quadrature), and that energy has the Madelung term as
  its cell mean: the two codes describe the same Hamiltonian;
- first order in λ at a non-degenerate ground state: the Hartree–Fock energy (heg.hf_energy);
- the Wigner-crystal floor the sector selection relies on is a lower bound of the Ewald energy;
- the Γ-point ↑↑ ground state is the 6-fold multiplet of the cubic cell (S → ln 6 per pair),
  the basis cutoff is converged at the default, and bad input is refused by name.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.physics import heg, heg_exact
from qvfe.physics.ewald import madelung_constant, make_ewald
from qvfe.physics.ideal_fermi import spinful_thermo
from qvfe.physics.orbitals import plane_wave_orbitals

TWIST3 = np.array([0.05, 0.1, 0.3])
TWIST2 = np.array([0.1, 0.3])


@pytest.mark.parametrize("dim,polarized", [(3, True), (3, False), (2, True), (2, False)])
def test_ideal_gas_limit(dim, polarized):
    # hundreds of levels in tens of sectors carry the weight here (seconds in 3D)
    rs, theta, p_cut = (4.0, 0.25, 5.0) if dim == 3 else (2.0, 0.5, 7.0)
    L = heg.box_length(rs, 2, dim)
    T = heg.gas_temperature(theta, rs, 2 if polarized else 1, 0 if polarized else 1, dim)
    twist = TWIST3 if dim == 3 else TWIST2
    got = heg_exact.two_electron_thermo(L, dim, polarized=polarized, temperature=T, twist=twist,
                                        coupling=0.0, p_cut=p_cut)
    assert got.n_levels > 150 and got.n_sectors > 30
    _, levels = plane_wave_orbitals(dim, L, 4000 if dim == 3 else 1500, twist)
    n_up, n_down = (2, 0) if polarized else (1, 1)
    ex = spinful_thermo(np.asarray(levels), n_up, n_down, T)
    for key in ("F", "E", "S"):
        assert getattr(got, key) == pytest.approx(float(ex[key]) / 2, abs=1e-9), key


def _ewald_pair(dim, L):
    """phi(r) + v_M: qvfe's Ewald energy of two electrons a vector r apart (Ha per cell)."""
    ewald = make_ewald(L * np.eye(dim), n_particles=2)
    return jax.jit(jax.vmap(lambda r: ewald.energy(jnp.stack([jnp.zeros(dim), r]))))


@pytest.mark.parametrize("dim", [3, 2])
def test_pair_coefficients_are_the_fourier_transform_of_the_ewald_energy(dim):
    L = 7.0
    n_grid = 40 if dim == 3 else 200
    h = L / n_grid
    axes = [h * (np.arange(n_grid) + 0.5)] * dim  # midpoints: never on the singular r = 0
    r = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, dim)
    phi = np.asarray(_ewald_pair(dim, L)(jnp.asarray(r))) - madelung_constant(L * np.eye(dim))
    volume = L**dim
    # the mean over the cell is zero: no Hartree term, the Madelung term is the whole constant
    assert abs(np.mean(phi)) * volume < 0.02 * 4 * np.pi
    for m in [(1, 0, 0), (1, 1, 0), (2, 1, 0)]:
        q = 2 * np.pi * np.asarray(m[:dim]) / L
        transform = float(np.sum(phi * np.cos(r @ q))) * h**dim
        qn = np.linalg.norm(q)
        expected = 4 * np.pi / qn**2 if dim == 3 else 2 * np.pi / qn
        # the midpoint rule's error near the 1/r singularity: a percent on these grids
        assert transform == pytest.approx(expected, rel=0.02), m


@pytest.mark.parametrize("dim,twist", [(3, TWIST3), (2, TWIST2)])
def test_first_order_is_hartree_fock(dim, twist):
    L = heg.box_length(4.0, 2, dim)
    free, first = heg_exact.free_ground(L, dim, 2, 0, twist)
    for lam in (1e-3, 2e-3):
        e0 = heg_exact.two_electron_thermo(L, dim, polarized=True, temperature=0.0, twist=twist,
                                           coupling=lam, p_cut=5.0).E_ground * 2
        # non-degenerate ground state: E(λ) = E_free + λ <V>_HF + O(λ²), second order negative
        assert e0 <= free + lam * first + 1e-12
        assert (free + lam * first - e0) / lam**2 == pytest.approx(
            (free + 1e-3 * first - heg_exact.two_electron_thermo(
                L, dim, polarized=True, temperature=0.0, twist=twist, coupling=1e-3,
                p_cut=5.0).E_ground * 2) / 1e-6, rel=0.05)
    hf = heg.hf_energy([2 * np.pi / L * (np.array([[0.0] * dim, [0.0] * (dim - 1) + [-1.0]])
                                         + twist), np.zeros((0, dim))], L * np.eye(dim))
    assert free + first == pytest.approx(hf.total, abs=1e-12)


@pytest.mark.parametrize("dim", [3, 2])
def test_wigner_crystal_floor_bounds_the_ewald_energy(dim):
    rs = 3.0
    L = heg.box_length(rs, 2, dim)
    floor = -2.0 * heg_exact.WIGNER_CRYSTAL_MADELUNG[dim] / rs
    pair = _ewald_pair(dim, L)
    r = jax.random.uniform(jax.random.PRNGKey(0), (4000, dim), jnp.float64, 0.0, L)
    centre = jnp.full((1, dim), L / 2)
    assert float(jnp.min(pair(r))) > floor
    assert float(pair(centre)[0]) == pytest.approx(floor, abs=1e-8)


def test_gamma_point_ground_state_is_the_cubic_multiplet():
    rs, theta = 10.0, 0.0625
    L = heg.box_length(rs, 2, 3)
    T = heg.gas_temperature(theta, rs, 2, 0, 3)
    got = heg_exact.two_electron_thermo(L, 3, polarized=True, temperature=T, p_cut=6.0)
    assert got.S == pytest.approx(0.5 * math.log(6.0), abs=1e-6)  # k = 0 plus one of 6 k's
    assert got.truncation < 1e-7  # ↑↑ converges fast in the relative cutoff
    hf = heg_exact.free_ground(L, 3, 2, 0, np.zeros(3))
    assert got.E_ground < 0.5 * sum(hf) - 1e-3  # correlation energy of a dilute pair: > 1 mHa/e


def test_polarized_levels_are_odd_states_of_the_distinguishable_ones():
    L = heg.box_length(2.0, 2, 2)
    both = heg_exact.sector_levels(np.array([1, 0]), L, polarized=False, twist=TWIST2,
                                   coupling=1.0, p_cut=6.0)
    odd = heg_exact.sector_levels(np.array([1, 0]), L, polarized=True, twist=TWIST2,
                                  coupling=1.0, p_cut=6.0)
    # the exchange of the two electrons commutes with H: the ↑↑ levels are a subset of ↑↓'s
    assert np.all(np.min(np.abs(both[:, None] - odd[None, :]), axis=0) < 1e-10)
    assert len(both) > len(odd)


@pytest.mark.parametrize("kwargs,field", [
    (dict(dim=4), "dim"), (dict(L=0.0), "box length"), (dict(temperature=-1.0), "temperature"),
    (dict(p_cut=0.5), "p_cut")])
def test_bad_input_is_refused_by_name(kwargs, field):
    args = dict(L=5.0, dim=3, temperature=0.01, p_cut=4.0) | kwargs
    with pytest.raises(ValueError, match=field):
        heg_exact.two_electron_thermo(args.pop("L"), args.pop("dim"), polarized=True, **args)
