"""Exact diagonalisation of two electrons in a periodic jellium cell: levels and canonical F, E, S.

One job: the exact finite-temperature reference of the interacting electron gas at N = 2 (↑↑ or
↑↓), the same Hamiltonian as ``qvfe.problems.electron_gas`` (kinetic energy plus λ times the
Ewald energy of the two electrons and their neutralising background) in the same square or cubic
box with the same twist. It plays the role ``qvfe.physics.dot_exact`` plays for the quantum dot.

Two electrons with wavevectors k1 = 2π(m1 + t)/L and k2 = 2π(m2 + t)/L keep their total
K = k1 + k2 under the Coulomb interaction, so H splits into sectors of K. Within a sector the
basis is the relative wavevector p = (k1 - k2)/2 = 2π(m1 - m_K/2)/L (the twist drops out of p),
kinetic energy K²/4 + p², and the Ewald pair potential (zero mean, Fourier coefficients
4π/(V q²) in 3D, 2π/(A q) in 2D; ``qvfe.physics.heg.hf_energy``) couples p to p + q for every
reciprocal vector q ≠ 0; each electron also carries the Madelung self-image term v_M/2. For ↑↑
the states are odd under p → -p, for ↑↓ the basis is the whole sphere (singlet and triplet).

Truncations, both controlled:
* the relative basis is the sphere |p| ≤ ``p_cut`` (in units of 2π/L). The ↑↑ energies converge
  fast (no cusp: the pair wavefunction vanishes at contact); ↑↓ ones slowly (the Kato cusp),
  so only ↑↑ is offered by default as a reference (``two_electron_thermo`` reports the change
  between two cutoffs as the truncation estimate);
* sectors: the two-electron Ewald energy is bounded below by the two-electron Wigner crystal
  (the second electron at the cell centre: bcc in the cubic cell, the centred square lattice in
  the square cell), V ≥ -2 c / rs, and the ground energy is at most the Hartree–Fock energy of
  the free ground state. A sector whose free minimum K²/4 + min p² exceeds
  E_HF + 2 λ c/rs + ``window`` kT cannot hold a level below E_HF + window·kT, whose Boltzmann
  weight is e^-window; such sectors are skipped.

Hartree atomic units, per cell unless named per electron; numpy/scipy float64, not traced by JAX.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from qvfe.physics import heg
from qvfe.physics.ewald import half_space, madelung_constant
from qvfe.physics.orbitals import plane_wave_orbitals

__all__ = ["WIGNER_CRYSTAL_MADELUNG", "TwoElectronThermo", "check_cell", "free_ground",
           "sector_levels", "thermodynamics", "two_electron_levels", "two_electron_thermo"]

# Madelung energies per electron (times rs) of the Wigner crystals the second electron at the cell
# centre makes: bcc in 3D (-0.895929/rs), the square lattice in 2D (-1.100244/rs). Issue #5's
# values, reproduced by tests/test_physics_ewald.py.
WIGNER_CRYSTAL_MADELUNG = {3: 0.895929255682, 2: 1.100244420}


class TwoElectronThermo(NamedTuple):
    """Canonical thermodynamics of two electrons, Ha per electron (S in k_B per electron)."""

    F: float
    E: float
    S: float
    E_ground: float
    n_levels: int
    n_sectors: int
    truncation: float  # |change of F| between p_cut - 1 and p_cut, Ha per electron


def check_cell(L: float, temperature: float, cutoff: float, cutoff_name: str) -> None:
    """Refuse a box, temperature or plane-wave cutoff (units of 2π/L) out of range, by name."""
    if not L > 0:
        raise ValueError(f"box length L must be > 0, got {L}")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not cutoff >= 1:
        raise ValueError(f"{cutoff_name} must be >= 1 (units of 2π/L), got {cutoff}")


def _check(dim: int, L: float, temperature: float, p_cut: float) -> None:
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    check_cell(L, temperature, p_cut, "p_cut")


def _relative_basis(m_total: np.ndarray, p_cut: float, antisymmetric: bool) -> np.ndarray:
    """Integer m1 of the sector's basis, |m1 - m_K/2| ≤ p_cut; for ↑↑ one of each ±p pair."""
    dim = len(m_total)
    half = m_total / 2.0
    r = int(math.ceil(p_cut)) + 1
    lo = np.floor(half).astype(int) - r
    grid = np.stack(np.meshgrid(*[np.arange(l, l + 2 * r + 2) for l in lo], indexing="ij"),
                    -1).reshape(-1, dim)
    p = grid - half
    keep = np.sum(p * p, axis=1) <= p_cut**2 + 1e-9
    if antisymmetric:  # p and -p are one state (2p is an integer vector); p = 0 is even
        keep &= half_space(np.rint(2 * p).astype(np.int64))
    return grid[keep]


def sector_levels(m_total: np.ndarray, L: float, *, polarized: bool, twist: np.ndarray,
                  coupling: float, p_cut: float) -> np.ndarray:
    """Eigenvalues (Ha per cell, ascending) of the sector of total wavevector
    K = 2π(m_total + 2 twist)/L, relative basis |p| ≤ p_cut (2π/L units)."""
    m_total = np.asarray(m_total, dtype=np.int64)
    dim = len(m_total)
    unit = 2.0 * np.pi / L
    m1 = _relative_basis(m_total, p_cut, antisymmetric=polarized)
    if len(m1) == 0:
        return np.zeros(0)
    K = unit * (m_total + 2.0 * np.asarray(twist, dtype=np.float64))
    p = unit * (m1 - m_total / 2.0)
    h = np.diag(0.25 * float(K @ K) + np.sum(p * p, axis=1))
    if coupling != 0.0:
        volume = L**dim

        def pair_coefficient(q: np.ndarray) -> np.ndarray:
            qn = np.linalg.norm(q, axis=-1)
            safe = np.where(qn > 1e-12, qn, 1.0)
            c = 4 * np.pi / safe**2 if dim == 3 else 2 * np.pi / safe
            return np.where(qn > 1e-12, c, 0.0) / volume

        v = pair_coefficient(p[:, None, :] - p[None, :, :])
        if polarized:
            # |p>_A = (|p> - |-p>)/√2: the exchange term couples p' to -p
            v = v - pair_coefficient(p[:, None, :] + p[None, :, :])
        h = h + coupling * (v + madelung_constant(L * np.eye(dim)) * np.eye(len(p)))
    return np.linalg.eigvalsh(h)


def _sector_minimum(m_total: np.ndarray, L: float, twist: np.ndarray, polarized: bool) -> float:
    """Lowest free energy K²/4 + p² of a sector (p ≠ 0 for ↑↑)."""
    unit = 2.0 * np.pi / L
    K = unit * (m_total + 2.0 * twist)
    frac = np.abs(m_total / 2.0 - np.round(m_total / 2.0))  # 0 or 1/2 per component
    p2 = float(np.sum(frac**2))
    if polarized and p2 == 0.0:
        p2 = 1.0  # p = 0 is even; the lowest odd state has one unit of p
    return 0.25 * float(K @ K) + unit**2 * p2


def free_ground(L: float, dim: int, n_up: int, n_down: int, twist: np.ndarray
                ) -> tuple[float, float]:
    """(kinetic energy of the free ground determinant, its HF energy per cell at unit coupling
    minus it): the lowest plane waves of each spin occupied."""
    k, _ = plane_wave_orbitals(dim, L, max(n_up, n_down), twist)
    hf = heg.hf_energy([k[:n_up], k[:n_down]], L * np.eye(dim))
    return hf.kinetic, hf.exchange + hf.madelung


def two_electron_levels(L: float, dim: int, *, polarized: bool, temperature: float,
                        twist: np.ndarray | None = None, coupling: float = 1.0,
                        p_cut: float = 8.0, window: float = 40.0
                        ) -> tuple[np.ndarray, int]:
    """All levels (Ha per cell) that can carry Boltzmann weight above e^-window at
    ``temperature``, and the number of K sectors they came from."""
    _check(dim, L, temperature, p_cut)
    twist = np.zeros(dim) if twist is None else np.asarray(twist, dtype=np.float64)
    rs = heg.wigner_seitz_radius(2, L**dim, dim)
    free, hf_shift = free_ground(L, dim, 2 if polarized else 1, 0 if polarized else 1, twist)
    e_hf = free + coupling * hf_shift
    floor = -2.0 * WIGNER_CRYSTAL_MADELUNG[dim] / rs * abs(coupling)
    reach = e_hf - floor + window * temperature  # a sector's free minimum must stay below this
    unit = 2.0 * np.pi / L
    k_max = int(math.ceil(2.0 * math.sqrt(max(reach, 0.0)) / unit)) + 2
    levels, n_sectors = [], 0
    for m_total in itertools.product(range(-k_max, k_max + 1), repeat=dim):
        m_total = np.asarray(m_total)
        if _sector_minimum(m_total, L, twist, polarized) > reach:
            continue
        lv = sector_levels(m_total, L, polarized=polarized, twist=twist, coupling=coupling,
                           p_cut=p_cut)
        keep = lv <= e_hf + window * temperature if temperature > 0 else lv <= lv[0] + 1e-9
        levels.append(lv[keep] if temperature > 0 else lv[:1])
        n_sectors += 1
    levels = np.sort(np.concatenate(levels))
    return levels, n_sectors


def thermodynamics(levels: np.ndarray, temperature: float) -> tuple[float, float, float]:
    """Canonical (F, E, S) of the given levels (Ha; S in k_B) at ``temperature`` (Ha)."""
    e0 = float(levels[0])
    if temperature == 0:
        return e0, e0, 0.0
    x = -(levels - e0) / temperature
    log_z = float(special.logsumexp(x))
    w = np.exp(x - log_z)
    F = e0 - temperature * log_z
    E = float(np.sum(w * levels))
    return F, E, (E - F) / temperature


def two_electron_thermo(L: float, dim: int, *, polarized: bool, temperature: float,
                        twist: np.ndarray | None = None, coupling: float = 1.0,
                        p_cut: float = 8.0, window: float = 40.0) -> TwoElectronThermo:
    """Exact canonical F, E, S per electron of two electrons (↑↑ if ``polarized``, else ↑↓) in the
    periodic box of side L at ``temperature`` (Ha), with the cutoff's truncation estimate."""
    kw = dict(polarized=polarized, temperature=temperature, twist=twist, coupling=coupling,
              window=window)
    levels, n_sectors = two_electron_levels(L, dim, p_cut=p_cut, **kw)
    coarse, _ = two_electron_levels(L, dim, p_cut=p_cut - 1.0, **kw)
    F, E, S = thermodynamics(levels, temperature)
    F_coarse = thermodynamics(coarse, temperature)[0]
    return TwoElectronThermo(F / 2, E / 2, S / 2, float(levels[0]) / 2, len(levels), n_sectors,
                             abs(F - F_coarse) / 2)
