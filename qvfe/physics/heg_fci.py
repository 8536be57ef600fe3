"""Full configuration interaction of a few same-spin electrons in a periodic jellium cube.

One job: the exact finite-temperature reference of the interacting, spin-polarised electron gas
at a few electrons (N = 3 in practice; any N the memory allows), the Hamiltonian of
``qvfe.problems.electron_gas`` (kinetic energy plus λ times the Ewald energy of the electrons and
their neutralising background) in the same cubic box with the same twist. Where
``qvfe.physics.heg_exact`` reduces two electrons to their relative motion, three or more need the
whole antisymmetric space: Slater determinants of plane waves k = 2π(m + t)/L within the sphere
|m + t| ≤ ``m_cut``, in second quantisation

    H = Σ_k k²/2 n_k + λ [ Σ_{a<b} Σ_{q≠0} (4π/(V q²)) c†_{a+q} c†_{b-q} c_b c_a + N v_M/2 ],

(Ewald pair coefficients 4π/(V q²), zero mean; v_M/2 the Madelung self-image term per electron,
as in ``qvfe.physics.heg.hf_energy``). The interaction conserves the total wavevector, so H splits
into sectors of Σ m; each sector's determinants are enumerated, H is assembled sparse with the
fermionic signs, and its low levels come from Lanczos (scipy's ``eigsh``).

Truncations, both controlled:
* the one-body sphere ``m_cut``: same-spin pairs have no cusp (their wavefunction vanishes at
  contact), so the energies converge fast; ``few_electron_thermo`` reports the change of F
  between ``m_cut - 1`` and ``m_cut`` as the truncation estimate;
* sectors and levels: every level counted lies below E_HF + ``window`` kT, E_HF the Hartree–Fock
  energy of the free ground determinant (an upper bound of the ground energy), so each one left
  out has Boltzmann weight below e^-window relative to the ground state. A sector is skipped when
  its free minimum plus the interaction's floor lies above that: the jellium energy of N point
  charges is at least -(9/10) N/rs (Onsager's smeared-charge bound: each electron replaced by a
  uniformly charged ball of radius rs; a theorem in free space, taken here for the periodic cell,
  where the test checks it against the lowest Ewald energies an optimiser finds for N = 2 and 3,
  bcc's -0.8959 per electron for N = 2 among them).

Hartree atomic units, per cell unless named per electron; numpy/scipy float64, not traced by JAX.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from qvfe.physics import heg
from qvfe.physics.ewald import madelung_constant
from qvfe.physics.heg_exact import check_cell, free_ground, thermodynamics
from qvfe.physics.orbitals import plane_waves_within

__all__ = ["ONSAGER_FLOOR", "FewElectronThermo", "sector_hamiltonian", "few_electron_levels",
           "few_electron_thermo"]

# Onsager's lower bound of the jellium Ewald energy, per electron times rs (3D).
ONSAGER_FLOOR = 0.9

# Sectors up to this size are diagonalised densely; larger ones by Lanczos.
_DENSE_LIMIT = 1500


class FewElectronThermo(NamedTuple):
    """Canonical thermodynamics of N same-spin electrons, Ha per electron (S in k_B per electron)."""

    F: float
    E: float
    S: float
    E_ground: float
    n_levels: int
    n_sectors: int
    n_orbitals: int
    truncation: float  # |change of F| between m_cut - 1 and m_cut, Ha per electron


class _Basis(NamedTuple):
    m: np.ndarray        # (M, 3) integer vectors
    k: np.ndarray        # (M, 3) wavevectors
    lookup: np.ndarray   # dense table m + offset -> index (-1 outside the sphere)
    offset: int


def _check(n: int, L: float, temperature: float, m_cut: float, twist: np.ndarray) -> None:
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n_electrons must be an integer >= 1, got {n}")
    check_cell(L, temperature, m_cut, "m_cut")
    if twist.shape != (3,):
        raise ValueError(f"twist must have 3 components, got shape {twist.shape}")


def _basis(L: float, twist: np.ndarray, m_cut: float) -> _Basis:
    unit = 2.0 * np.pi / L
    k, _ = plane_waves_within(3, L, 0.5 * (unit * m_cut) ** 2, twist)
    m = np.rint(k / unit - twist).astype(np.int64)
    offset = int(np.abs(m).max()) + 1
    lookup = np.full((2 * offset + 1,) * 3, -1, dtype=np.int64)
    lookup[tuple((m + offset).T)] = np.arange(len(m))
    return _Basis(m, k, lookup, offset)


def _index(basis: _Basis, m: np.ndarray) -> np.ndarray:
    """Orbital index of each integer vector in ``m`` (..., 3), -1 outside the sphere."""
    shifted = m + basis.offset
    size = basis.lookup.shape[0]
    inside = np.all((shifted >= 0) & (shifted < size), axis=-1)
    safe = np.where(inside[..., None], shifted, 0)
    return np.where(inside, basis.lookup[tuple(np.moveaxis(safe, -1, 0))], -1)


def _determinants(basis: _Basis, n: int, m_total: np.ndarray) -> np.ndarray:
    """Sorted orbital-index rows (D, n) of every determinant with Σ m = m_total."""
    count = len(basis.m)
    if n == 1:
        last = _index(basis, m_total[None, :])
        return last[last >= 0][:, None]
    head = np.array(list(itertools.combinations(range(count), n - 1)), dtype=np.int64)
    last = _index(basis, m_total - basis.m[head].sum(axis=1))
    keep = last > head[:, -1]
    return np.concatenate([head[keep], last[keep, None]], axis=1)


@functools.lru_cache(maxsize=8)
def _self_image(L: float) -> float:
    """v_M/2 of the cube, each electron's Madelung term (an Ewald sum: once per box, not per
    sector)."""
    return madelung_constant(L * np.eye(3)) / 2.0


def _keys(dets: np.ndarray, count: int) -> np.ndarray:
    """One integer per sorted determinant row, increasing with the rows' lexicographic order."""
    return np.sum(dets * count ** np.arange(dets.shape[1] - 1, -1, -1), axis=1)


def _pair_coefficient(q: np.ndarray, volume: float) -> np.ndarray:
    """Ewald pair coefficient 4π/(V q²), zero at q = 0 (the background cancels it)."""
    q2 = np.sum(q * q, axis=-1)
    return np.where(q2 > 1e-20, 4.0 * np.pi / np.where(q2 > 1e-20, q2, 1.0), 0.0) / volume


def sector_hamiltonian(basis: _Basis, dets: np.ndarray, L: float,
                       coupling: float) -> sparse.csr_matrix:
    """H (Ha per cell) on the determinants ``dets`` (sorted index rows of one sector, as from
    ``_determinants``), sparse and symmetric."""
    (n_dets, n), count = dets.shape, len(basis.m)
    volume = L**3
    k = basis.k
    diagonal = 0.5 * np.sum(k[dets] ** 2, axis=(1, 2)) + coupling * n * _self_image(L)
    if coupling == 0.0 or n == 1:
        return sparse.diags(diagonal).tocsr()
    keys = _keys(dets, count)  # sorted: dets are lexicographic
    rows, cols, vals = [], [], []
    c = np.arange(count)
    for i, j in itertools.combinations(range(n), 2):
        a, b = dets[:, i], dets[:, j]
        diagonal -= coupling * _pair_coefficient(k[a] - k[b], volume)  # exchange
        rest = np.delete(dets, [i, j], axis=1)
        d = _index(basis, (basis.m[a] + basis.m[b])[:, None, :] - basis.m[c][None, :, :])
        cc = np.broadcast_to(c, d.shape)
        ok = (d >= 0) & (cc < d) & ~((cc == a[:, None]) & (d == b[:, None]))
        for r in range(n - 2):
            ok &= (cc != rest[:, r:r + 1]) & (d != rest[:, r:r + 1])
        src, tgt = np.nonzero(ok)
        cs, ds = c[tgt], d[src, tgt]
        amp = (_pair_coefficient(k[cs] - k[a[src]], volume)
               - _pair_coefficient(k[ds] - k[a[src]], volume))
        # c†_c c†_d c_b c_a on the ascending determinant: annihilating a, b passes i + j - 1
        # orbitals, creating d then c passes those of the spectators below each
        below = (np.sum(rest[src] < ds[:, None], axis=1) + np.sum(rest[src] < cs[:, None], axis=1))
        sign = np.where((i + j - 1 + below) % 2 == 0, 1.0, -1.0)
        new = np.sort(np.concatenate([rest[src], cs[:, None], ds[:, None]], axis=1), axis=1)
        pos = np.searchsorted(keys, _keys(new, count))
        rows.append(pos)
        cols.append(src)
        vals.append(coupling * sign * amp)
    rows.append(np.arange(n_dets))
    cols.append(np.arange(n_dets))
    vals.append(diagonal)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(n_dets, n_dets))


def _lowest(h: sparse.csr_matrix, below: float) -> np.ndarray:
    """Every eigenvalue of h below ``below`` (ascending); at least the lowest one."""
    size = h.shape[0]
    if h.nnz <= size:  # diagonal (no interaction)
        lv = np.sort(h.diagonal())
    elif size <= _DENSE_LIMIT:
        lv = np.linalg.eigvalsh(h.toarray())
    else:
        want = 8
        while True:
            lv = np.sort(sparse_linalg.eigsh(h, k=min(want, size - 2), which="SA",
                                             return_eigenvectors=False, tol=1e-12))
            if lv[-1] >= below or want >= size - 2:
                break
            want *= 2
    return lv[: max(1, int(np.sum(lv < below)))]


def few_electron_levels(n_electrons: int, L: float, *, temperature: float,
                        twist: np.ndarray | None = None, coupling: float = 1.0,
                        m_cut: float = 4.0, window: float = 30.0
                        ) -> tuple[np.ndarray, int, int]:
    """All levels (Ha per cell) below E_HF + window·kT, the number of sectors they came from and
    the number of plane waves in the sphere."""
    twist = np.zeros(3) if twist is None else np.asarray(twist, dtype=np.float64).reshape(-1)
    _check(n_electrons, L, temperature, m_cut, twist)
    n = int(n_electrons)
    basis = _basis(L, twist, m_cut)
    if len(basis.m) < n:
        raise ValueError(f"m_cut = {m_cut} holds {len(basis.m)} plane waves, fewer than the "
                         f"{n} electrons")
    rs = heg.wigner_seitz_radius(n, L**3)
    free, hf_shift = free_ground(L, 3, n, 0, twist)
    ceiling = free + coupling * hf_shift + window * temperature
    reach = ceiling + ONSAGER_FLOOR * n / rs * abs(coupling)
    unit = 2.0 * np.pi / L
    # a sector's free minimum is at least |K|²/(2n), K = unit (m_total + n t)
    k_max = int(math.ceil(math.sqrt(2.0 * n * max(reach, 0.0)) / unit + n)) + 1
    levels, n_sectors = [], 0
    for m_total in itertools.product(range(-k_max, k_max + 1), repeat=3):
        m_total = np.asarray(m_total, dtype=np.int64)
        K = unit * (m_total + n * twist)
        if 0.5 * float(K @ K) / n > reach:
            continue
        dets = _determinants(basis, n, m_total)
        if len(dets) == 0:
            continue
        kinetic_min = 0.5 * float(np.min(np.sum(basis.k[dets] ** 2, axis=(1, 2))))
        if kinetic_min > reach:  # H >= its kinetic minimum + λ·(Onsager floor) in this sector
            continue
        h = sector_hamiltonian(basis, dets, L, coupling)
        lv = _lowest(h, ceiling if temperature > 0 else -np.inf)
        levels.append(lv)
        n_sectors += 1
    levels = np.sort(np.concatenate(levels))
    if temperature == 0:
        levels = levels[:1]
    return levels, n_sectors, len(basis.m)


def few_electron_thermo(n_electrons: int, L: float, *, temperature: float,
                        twist: np.ndarray | None = None, coupling: float = 1.0,
                        m_cut: float = 4.0, window: float = 30.0) -> FewElectronThermo:
    """Exact canonical F, E, S per electron of N same-spin electrons in the periodic cube of side
    L at ``temperature`` (Ha), with the one-body cutoff's truncation estimate."""
    kw = dict(temperature=temperature, twist=twist, coupling=coupling, window=window)
    levels, n_sectors, n_orbitals = few_electron_levels(n_electrons, L, m_cut=m_cut, **kw)
    coarse, _, _ = few_electron_levels(n_electrons, L, m_cut=m_cut - 1.0, **kw)
    F, E, S = thermodynamics(levels, temperature)
    n = int(n_electrons)
    return FewElectronThermo(F / n, E / n, S / n, float(levels[0]) / n, len(levels), n_sectors,
                             n_orbitals, abs(F - thermodynamics(coarse, temperature)[0]) / n)
