"""Orthonormal one-electron orbitals for electrons around clamped protons, from Gaussian basis sets.

One job: for protons clamped at ``centers`` in open space (the H atom, H2, small H clusters), build
an orthonormal, energy-ordered table of molecular orbitals that serve as base states of Slater
determinants, and evaluate it at electron positions in the ``OrbitalValues`` convention of
``qvfe.physics.orbital_values``.

Basis. Every proton carries the same normalised s-type Gaussians
``g(r) = (2a/pi)^(3/4) exp(-a |r - R_I|^2)`` and, optionally, normalised p-type Gaussians
``(4a)^(1/2) (2a/pi)^(3/4) (x - R_x) exp(-a |r - R_I|^2)`` (and y, z). The default s set
(``DEFAULT_EXPONENTS``) is even-tempered, 12 exponents ``0.02 * 2.6^k`` from 0.02 to 734 bohr^-2:
the H atom's 1s energy is -0.4999972 Ha (2.8e-6 above -1/2), H2 at R = 1.4 bohr has the RHF energy
-1.1285313 Ha (1e-5 above the s-only limit -1.128541, 5.1e-3 above the HF limit -1.1336296).
p functions (``p_exponents``, e.g. ``POLARISATION_EXPONENTS``) polarise bonds. All integrals
(overlap S, kinetic T, nuclear attraction V = sum_I -1/|r - R_I|, electron repulsion (ab|cd)) are
analytic (McMurchie-Davidson Hermite expansion, Boys function), in numpy float64, computed once.

Orbitals. ``method="core"`` diagonalises h = T + V in the basis; ``method="rhf"`` runs a
closed-shell restricted Hartree-Fock SCF (DIIS) for an even number of electrons and returns the
eigenvectors of the converged Fock operator (occupied and virtual). Both solve the generalised
eigenproblem with S after canonical orthogonalisation: combinations whose overlap eigenvalue is
below 1e-10 (near linear dependence of diffuse functions on neighbouring centres) are dropped, so
``n_orbitals`` can be a few less than the number of basis functions. Orbitals are real,
orthonormal (C^T S C = 1), ordered by orbital energy, and have a fixed sign (their largest
coefficient is positive).

Two electrons. ``orbital_integrals`` transforms h and (ab|cd) to the orbitals, and ``pair_fci``
diagonalises the two-electron Hamiltonian in the table's whole singlet space (full configuration
interaction): the basis-set bound that a geminal base state reaches without a flow.

Units: Hartree atomic units (lengths in bohr, energies in hartree).

Convention for ``values``: ``log_row`` is zero and ``matrix[i, j] = phi_{occ[j]}(z_i)``. All values
underflow to 0 beyond ~sqrt(745 / min(exponents)) from every proton (~190 bohr by default).

>>> import numpy as np
>>> mo = molecular_orbitals(np.zeros((1, 3)), method="core")
>>> round(float(mo.energies()[0]), 5)
-0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gamma, gammainc

from qvfe.physics.orbital_values import OrbitalValues

__all__ = [
    "DEFAULT_EXPONENTS",
    "POLARISATION_EXPONENTS",
    "GaussianIntegrals",
    "MolecularOrbitalBasis",
    "boys",
    "gaussian_integrals",
    "molecular_orbitals",
    "nuclear_repulsion",
    "orbital_integrals",
    "pair_fci",
    "rhf_energy",
]

DEFAULT_EXPONENTS = 0.02 * 2.6 ** np.arange(12)
"""Even-tempered s exponents per proton (bohr^-2), 0.02 to 734: H-atom 1s at -0.4999972 Ha."""

POLARISATION_EXPONENTS = np.array([0.3, 0.9, 2.7])
"""p exponents per proton (bohr^-2) that polarise H2: RHF at R = 1.4 bohr gives -1.1335407 Ha
(HF limit -1.1336296). Too tight to describe the H atom's bound 2p states."""

OVERLAP_CUTOFF = 1e-8
"""Eigenvalues of S below this are dropped by canonical orthogonalisation (at 1e-10 an
eigenvalue of 2e-10, protons 0.002 bohr apart, kept the RHF iteration from converging; at
ordinary separations the smallest is above 1e-5)."""

_METHODS = ("rhf", "core")


# ---- Boys function and Hermite expansions ------------------------------------------------------
def boys(n_max: int, t: np.ndarray) -> np.ndarray:
    """Boys functions ``F_n(t) = int_0^1 u^(2n) exp(-t u^2) du``, n = 0..n_max.

    Returns an array of shape (n_max + 1, *t.shape).

    ``F_n(t) = Gamma(n+1/2) P(n+1/2, t) / (2 t^(n+1/2))`` with P the regularised lower incomplete
    gamma function (for n = 0 this is ``sqrt(pi/t) erf(sqrt t) / 2``); below t = 1e-8 the Taylor
    series ``1/(2n+1) - t/(2n+3)`` is used, exact to double precision and finite at t = 0.
    """
    t = np.asarray(t, dtype=np.float64)
    small = t < 1e-8
    ts = np.where(small, 1.0, t)
    out = np.empty((n_max + 1,) + t.shape)
    for n in range(n_max + 1):
        a = n + 0.5
        direct = gamma(a) * gammainc(a, ts) / (2.0 * ts**a)
        out[n] = np.where(small, 1.0 / (2 * n + 1) - t / (2 * n + 3), direct)
    return out


def _hermite_e(i_max: int, j_max: int, p: np.ndarray, xpa: np.ndarray, xpb: np.ndarray):
    """1D Hermite expansion coefficients ``E[i, j, t]`` of ``x_A^i x_B^j`` (Gaussian factor apart).

    Returns an array (i_max+1, j_max+1, i_max+j_max+1, *p.shape) from the recurrences
    E^{i+1,j}_t = E^{ij}_{t-1}/(2p) + X_PA E^{ij}_t + (t+1) E^{ij}_{t+1} (and the same for j with
    X_PB), starting from E^{00}_0 = 1.
    """
    t_max = i_max + j_max
    e = np.zeros((i_max + 1, j_max + 1, t_max + 2) + p.shape)  # one spare t slot, always zero
    half = 0.5 / p

    def step(prev, x):
        new = np.zeros_like(prev)
        new[0] = x * prev[0] + prev[1]
        for t in range(1, t_max + 1):
            new[t] = half * prev[t - 1] + x * prev[t] + (t + 1) * prev[t + 1]
        return new

    e[0, 0, 0] = 1.0
    for i in range(i_max + 1):
        if i > 0:
            e[i, 0] = step(e[i - 1, 0], xpa)
        for j in range(1, j_max + 1):
            e[i, j] = step(e[i, j - 1], xpb)
    return e[:, :, : t_max + 1]


def _hermite_indices(order: int) -> list[tuple[int, int, int]]:
    return [
        (t, u, v)
        for t in range(order + 1)
        for u in range(order + 1 - t)
        for v in range(order + 1 - t - u)
    ]


def _hermite_r(order: int, alpha: np.ndarray, pc: np.ndarray) -> dict:
    """Hermite Coulomb integrals ``R_tuv(alpha, PC)`` for t+u+v <= order, a dict of arrays.

    R^n_000 = (-2 alpha)^n F_n(alpha |PC|^2);
    R^n_{t+1,u,v} = t R^{n+1}_{t-1,u,v} + X_PC R^{n+1}_{tuv} (same for u with Y, v with Z).
    """
    f = boys(order, alpha * np.sum(pc**2, axis=-1))
    memo: dict = {}

    def r(n, t, u, v):
        key = (n, t, u, v)
        if key in memo:
            return memo[key]
        if t < 0 or u < 0 or v < 0:
            return 0.0
        if t > 0:
            val = (t - 1) * r(n + 1, t - 2, u, v) + pc[..., 0] * r(n + 1, t - 1, u, v)
        elif u > 0:
            val = (u - 1) * r(n + 1, t, u - 2, v) + pc[..., 1] * r(n + 1, t, u - 1, v)
        elif v > 0:
            val = (v - 1) * r(n + 1, t, u, v - 2) + pc[..., 2] * r(n + 1, t, u, v - 1)
        else:
            val = (-2.0 * alpha) ** n * f[n]
        memo[key] = val
        return val

    return {idx: r(0, *idx) for idx in _hermite_indices(order)}


# ---- integrals ---------------------------------------------------------------------------------
class GaussianIntegrals(NamedTuple):
    """Integrals over normalised Cartesian Gaussians (n = number of basis functions).

    overlap, kinetic, nuclear: (n, n); repulsion: (n, n, n, n) in chemists' notation (ab|cd).
    """

    overlap: np.ndarray
    kinetic: np.ndarray
    nuclear: np.ndarray
    repulsion: np.ndarray


class _Pairs(NamedTuple):
    p: np.ndarray  # (m,) total exponent
    centre: np.ndarray  # (m, 3) Gaussian product centre P
    e3: np.ndarray  # (m, 3, 3, 3) Hermite coefficients E_tuv incl. K_ab and norms (t, u, v <= 2)
    order: np.ndarray  # (m,) l_a + l_b


def _normalisation(exponents: np.ndarray, powers: np.ndarray) -> np.ndarray:
    # (2a/pi)^(3/4) (4a)^(L/2) / sqrt(prod (2l-1)!!); only l <= 1 occurs, where (2l-1)!! = 1
    return (2 * exponents / np.pi) ** 0.75 * (4 * exponents) ** (0.5 * powers.sum(axis=-1))


def _pairs(centres, exponents, powers, i, j) -> tuple[_Pairs, tuple[list, np.ndarray]]:
    """Gaussian-product data of the function pairs (i[k], j[k]); also the 1D E tables (up to
    i = 1, j = 3, for the kinetic integrals) and the prefactors K_ab * norms."""
    a, b = exponents[i], exponents[j]
    p = a + b
    pc = (a[:, None] * centres[i] + b[:, None] * centres[j]) / p[:, None]
    kab = np.exp(-(a * b / p) * np.sum((centres[i] - centres[j]) ** 2, axis=-1))
    norms = _normalisation(exponents[i], powers[i]) * _normalisation(exponents[j], powers[j])
    e1 = [_hermite_e(1, 3, p, pc[:, x] - centres[i, x], pc[:, x] - centres[j, x]) for x in range(3)]
    rows = np.arange(len(p))
    ex = [e1[x][powers[i, x], powers[j, x], :3, rows] for x in range(3)]  # (m, 3) each, over t
    e3 = (
        ex[0][:, :, None, None] * ex[1][:, None, :, None] * ex[2][:, None, None, :]
    ) * (kab * norms)[:, None, None, None]
    order = powers[i].sum(axis=-1) + powers[j].sum(axis=-1)
    return _Pairs(p, pc, e3, order), (e1, kab * norms)


def gaussian_integrals(
    centres: np.ndarray, exponents: np.ndarray, powers: np.ndarray, nuclei: np.ndarray
) -> GaussianIntegrals:
    """S, T, V and (ab|cd) over normalised Cartesian Gaussians ``x^lx y^ly z^lz exp(-a r^2)``.

    Args:
        centres: (n, 3) centre of each basis function.
        exponents: (n,) Gaussian exponents a > 0.
        powers: (n, 3) int Cartesian powers, each 0 or 1 (s and p functions).
        nuclei: (P, 3) positions of the unit point charges of V = sum_I -1/|r - R_I|.
    Memory is (n^2)^2 doubles for the repulsion tensor.
    """
    centres = np.asarray(centres, dtype=np.float64)
    exponents = np.asarray(exponents, dtype=np.float64)
    powers = np.asarray(powers, dtype=np.int64)
    nuclei = np.asarray(nuclei, dtype=np.float64).reshape(-1, 3)
    if powers.size and (powers.min() < 0 or powers.max() > 1):
        raise ValueError("powers must be 0 or 1 (s and p functions only)")
    n = len(exponents)

    # one-electron integrals over all ordered pairs
    i, j = (idx.ravel() for idx in np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    pairs, (e1, pref) = _pairs(centres, exponents, powers, i, j)
    p, b = pairs.p, exponents[j]
    rows = np.arange(len(p))
    s1 = [e1[x][:, :, 0, :] * np.sqrt(np.pi / p) for x in range(3)]  # (2, 4, m): <x^i|x^j>_1D

    def s1d(x, li, lj):
        out = np.zeros(len(p))
        ok = lj >= 0
        out[ok] = s1[x][li[ok], lj[ok], rows[ok]]
        return out

    ov = [s1d(x, powers[i, x], powers[j, x]) for x in range(3)]
    overlap = pref * ov[0] * ov[1] * ov[2]
    kinetic = np.zeros(len(p))
    for x in range(3):
        li, lj = powers[i, x], powers[j, x]
        # d^2/dx^2 x^l e^{-b x^2} = l(l-1) x^{l-2} - 2b(2l+1) x^l + 4b^2 x^{l+2}
        d2 = (
            lj * (lj - 1) * s1d(x, li, lj - 2)
            - 2 * b * (2 * lj + 1) * s1d(x, li, lj)
            + 4 * b**2 * s1d(x, li, lj + 2)
        )
        kinetic += -0.5 * pref * d2 * ov[(x + 1) % 3] * ov[(x + 2) % 3]
    l_max = int(pairs.order.max())
    nuclear = np.zeros(len(p))
    for c in nuclei:
        r = _hermite_r(l_max, p, pairs.centre - c)
        acc = sum(pairs.e3[:, t, u, v] * r[(t, u, v)] for (t, u, v) in _hermite_indices(l_max))
        nuclear -= 2 * np.pi / p * acc

    return GaussianIntegrals(
        overlap.reshape(n, n),
        kinetic.reshape(n, n),
        nuclear.reshape(n, n),
        _repulsion(centres, exponents, powers),
    )


def _repulsion(centres, exponents, powers) -> np.ndarray:
    """(ab|cd) for all quadruples, from the unordered pairs a <= b grouped by l_a + l_b."""
    n = len(exponents)
    i, j = np.triu_indices(n)
    pairs, _ = _pairs(centres, exponents, powers, i, j)
    packed = np.empty((len(i), len(i)))
    groups = [np.flatnonzero(pairs.order == order) for order in range(3)]
    for order1, g1 in enumerate(groups):
        for order2, g2 in enumerate(groups):
            if len(g1) == 0 or len(g2) == 0:
                continue
            p, q = pairs.p[g1][:, None], pairs.p[g2][None, :]
            alpha = p * q / (p + q)
            pq = pairs.centre[g1][:, None, :] - pairs.centre[g2][None, :, :]
            r = _hermite_r(order1 + order2, alpha, pq)
            block = np.zeros((len(g1), len(g2)))
            for tau, nu, phi in _hermite_indices(order2):
                e_ket = (-1.0) ** (tau + nu + phi) * pairs.e3[g2, tau, nu, phi]
                if not e_ket.any():
                    continue
                bra = sum(
                    pairs.e3[g1, t, u, v][:, None] * r[(t + tau, u + nu, v + phi)]
                    for (t, u, v) in _hermite_indices(order1)
                )
                block += bra * e_ket[None, :]
            packed[np.ix_(g1, g2)] = 2 * np.pi**2.5 / (p * q * np.sqrt(p + q)) * block
    index = np.empty((n, n), dtype=np.int64)
    index[i, j] = np.arange(len(i))
    index[j, i] = np.arange(len(i))
    return packed[index[:, :, None, None], index[None, None, :, :]]


def nuclear_repulsion(centers: np.ndarray) -> float:
    """``sum_{I<J} 1/|R_I - R_J|`` for unit charges at ``centers`` (P, 3)."""
    c = np.asarray(centers, dtype=np.float64)
    i, j = np.triu_indices(len(c), k=1)
    return float(np.sum(1.0 / np.linalg.norm(c[i] - c[j], axis=-1)))


# ---- SCF ---------------------------------------------------------------------------------------
def _orthogonaliser(overlap: np.ndarray) -> np.ndarray:
    """Canonical orthogonalisation X (n, m) with X^T S X = 1, dropping S eigenvalues < cutoff."""
    s, u = np.linalg.eigh(overlap)
    keep = s > OVERLAP_CUTOFF
    return u[:, keep] / np.sqrt(s[keep])


def _diagonalise(f: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eps, c = np.linalg.eigh(x.T @ f @ x)
    return eps, x @ c


def _rhf(h, eri, overlap, x, n_occ, *, tol=1e-10, max_iter=200, n_diis=8):
    """Closed-shell RHF with Pulay DIIS. Returns (electronic energy, orbital energies, C)."""
    n = h.shape[0]
    # F = h + G D with G_{pq,rs} = (pq|rs) - (pr|qs)/2 and D = 2 C_occ C_occ^T
    g = eri.reshape(n * n, n * n) - 0.5 * eri.transpose(0, 2, 1, 3).reshape(n * n, n * n)
    eps, c = _diagonalise(h, x)
    energy, history = np.inf, []
    for _ in range(max_iter):
        d = 2 * c[:, :n_occ] @ c[:, :n_occ].T
        f = h + (g @ d.ravel()).reshape(n, n)
        new_energy = 0.5 * np.sum(d * (h + f))
        err = x.T @ (f @ d @ overlap - overlap @ d @ f) @ x
        if abs(new_energy - energy) < tol and np.abs(err).max() < 1e-7:
            eps, c = _diagonalise(f, x)
            return new_energy, eps, c
        energy = new_energy
        history = (history + [(f, err)])[-n_diis:]
        k = len(history)
        b = -np.ones((k + 1, k + 1))
        b[k, k] = 0.0
        for a in range(k):
            for bb in range(k):
                b[a, bb] = np.sum(history[a][1] * history[bb][1])
        rhs = np.zeros(k + 1)
        rhs[k] = -1.0
        weights = np.linalg.lstsq(b, rhs, rcond=None)[0][:k]
        f = sum(w * fh for w, (fh, _) in zip(weights, history))
        eps, c = _diagonalise(f, x)
    raise RuntimeError(f"RHF did not converge to {tol} Ha in {max_iter} iterations")


# ---- the basis ---------------------------------------------------------------------------------
def _basis_functions(centers, exponents, p_exponents):
    """(centre, exponent, powers) of every basis function: per proton, s then p (x, y, z)."""
    cs, es, ls = [], [], []
    for c in centers:
        for a in exponents:
            cs.append(c), es.append(a), ls.append((0, 0, 0))
        for a in p_exponents:
            for axis in np.eye(3, dtype=np.int64):
                cs.append(c), es.append(a), ls.append(tuple(axis))
    return np.array(cs, dtype=np.float64), np.array(es), np.array(ls, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class MolecularOrbitalBasis:
    """A table of real orthonormal molecular orbitals; ``values(z, occ)`` evaluates rows ``occ``.

    Attributes:
        centers: (P, 3) proton positions (bohr); every one carries the same Gaussians.
        exponents: (K,) s exponents per proton.
        coefficients: (n_basis_functions, n_orbitals) orbital coefficients over the normalised
            Gaussians (per proton: K s functions, then x, y, z for each p exponent).
        orbital_energies: (n_orbitals,) ascending (hartree).
        p_exponents: (Kp,) p exponents per proton (empty: s only).
        scf_energy: total energy (electronic + nuclear repulsion, hartree) of the determinant the
            orbitals come from (RHF or core), if known.
    """

    centers: np.ndarray
    exponents: np.ndarray
    coefficients: np.ndarray
    orbital_energies: np.ndarray
    p_exponents: np.ndarray = field(default_factory=lambda: np.zeros(0))
    is_complex: bool = False
    scf_energy: float | None = None

    def __post_init__(self) -> None:
        centers = _check_centers(self.centers)
        exponents = _check_exponents(self.exponents, "exponents", allow_empty=False)
        p_exponents = _check_exponents(self.p_exponents, "p_exponents", allow_empty=True)
        coeffs = np.asarray(self.coefficients, dtype=np.float64)
        n_basis = len(centers) * (len(exponents) + 3 * len(p_exponents))
        if coeffs.ndim != 2 or coeffs.shape[0] != n_basis:
            raise ValueError(
                f"coefficients must have shape ({n_basis}, n_orbitals), got {coeffs.shape}"
            )
        energies = np.asarray(self.orbital_energies, dtype=np.float64)
        if energies.shape != (coeffs.shape[1],):
            raise ValueError(
                f"orbital_energies must have shape ({coeffs.shape[1]},), got {energies.shape}"
            )
        for name, value in (
            ("centers", centers), ("exponents", exponents), ("p_exponents", p_exponents),
            ("coefficients", coeffs), ("orbital_energies", energies),
        ):
            object.__setattr__(self, name, value)

    @property
    def dim(self) -> int:
        return 3

    @property
    def n_orbitals(self) -> int:
        return self.coefficients.shape[1]

    @cached_property
    def basis_functions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres (n, 3), exponents (n,), Cartesian powers (n, 3)) of the basis functions."""
        return _basis_functions(self.centers, self.exponents, self.p_exponents)

    def values(self, z: jax.Array, occ: jax.Array) -> OrbitalValues:
        """Orbitals ``occ`` (int, (m,)) at ``z`` (n, 3): ``matrix[i, j] = phi_{occ[j]}(z_i)``.

        Pure jnp and smooth everywhere (no square roots), so it can be differentiated twice.
        """
        centres, exps, powers = self.basis_functions
        d = z[:, None, :] - jnp.asarray(centres, dtype=z.dtype)  # (n, n_basis, 3)
        r2 = jnp.sum(d * d, axis=-1)
        norms = jnp.asarray(_normalisation(exps, powers), dtype=z.dtype)
        g = norms * jnp.exp(-jnp.asarray(exps, dtype=z.dtype) * r2)
        if powers.any():
            # x^l with l in {0, 1}, as a select: no 0 * x^(-1) in the derivatives of x^0
            g = g * jnp.prod(jnp.where(powers.astype(bool), d, 1.0), axis=-1)
        c = jnp.asarray(self.coefficients, dtype=z.dtype)[:, occ]
        return OrbitalValues(jnp.zeros(z.shape[:1], dtype=z.dtype), g @ c)

    def energies(self) -> np.ndarray:
        """Orbital energies (hartree), ascending, e.g. for Boltzmann logits of occupations."""
        return self.orbital_energies.copy()


# ---- factory -----------------------------------------------------------------------------------
def _check_centers(centers) -> np.ndarray:
    c = np.asarray(centers, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] == 0:
        raise ValueError(f"centers must be a (P, 3) array with P >= 1, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("centers must be finite")
    i, j = np.triu_indices(len(c), k=1)
    if len(i) and np.linalg.norm(c[i] - c[j], axis=-1).min() < 1e-6:
        raise ValueError("centers must be distinct (two protons closer than 1e-6 bohr)")
    return c


def _check_exponents(exponents, name: str, *, allow_empty: bool) -> np.ndarray:
    e = np.asarray(exponents, dtype=np.float64).reshape(-1)
    if e.size == 0 and not allow_empty:
        raise ValueError(f"{name} must not be empty")
    if not (np.isfinite(e) & (e > 0)).all():
        raise ValueError(f"{name} must be finite and > 0, got {e}")
    return e


class _Solution(NamedTuple):
    total_energy: float
    orbital_energies: np.ndarray
    coefficients: np.ndarray


def _solve(centers, n_electrons, method, exponents, p_exponents) -> _Solution:
    centers = _check_centers(centers)
    exponents = _check_exponents(
        DEFAULT_EXPONENTS if exponents is None else exponents, "exponents", allow_empty=False
    )
    p_exponents = _check_exponents(
        np.zeros(0) if p_exponents is None else p_exponents, "p_exponents", allow_empty=True
    )
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if n_electrons is None:
        n_electrons = len(centers)  # neutral
    if int(n_electrons) != n_electrons or n_electrons < 1:
        raise ValueError(f"n_electrons must be an integer >= 1, got {n_electrons}")
    n_electrons = int(n_electrons)
    if method == "rhf" and n_electrons % 2:
        raise ValueError(
            f"n_electrons must be even for method='rhf' (closed shell), got {n_electrons}; "
            "use method='core' for odd electron counts"
        )
    fc, fe, fl = _basis_functions(centers, exponents, p_exponents)
    ints = gaussian_integrals(fc, fe, fl, centers)
    x = _orthogonaliser(ints.overlap)
    if 2 * x.shape[1] < n_electrons:
        raise ValueError(
            f"n_electrons={n_electrons} exceeds twice the {x.shape[1]} linearly independent "
            "orbitals of the basis"
        )
    h = ints.kinetic + ints.nuclear
    if method == "core":
        eps, c = _diagonalise(h, x)
        n_occ = (n_electrons + 1) // 2
        occupation = np.minimum(n_electrons - 2 * np.arange(n_occ), 2)
        electronic = float(np.sum(occupation * eps[:n_occ]))  # no electron repulsion
    else:
        electronic, eps, c = _rhf(h, ints.repulsion, ints.overlap, x, n_electrons // 2)
    c = c * np.where(c[np.abs(c).argmax(axis=0), np.arange(c.shape[1])] < 0, -1.0, 1.0)
    return _Solution(electronic + nuclear_repulsion(centers), eps, c)


def molecular_orbitals(
    centers: np.ndarray,
    n_electrons: int | None = None,
    method: str = "rhf",
    exponents: np.ndarray | None = None,
    n_orbitals: int | None = None,
    *,
    p_exponents: np.ndarray | None = None,
) -> MolecularOrbitalBasis:
    """Energy-ordered orthonormal orbitals of electrons around protons at ``centers``.

    Args:
        centers: (P, 3) proton positions in bohr.
        n_electrons: number of electrons for the SCF (default: P, neutral). Must be even for
            ``method="rhf"``; for ``"core"`` it is only checked against the number of orbitals.
        method: ``"rhf"`` (closed-shell Hartree-Fock orbitals) or ``"core"`` (eigenfunctions of
            T + V, no electron repulsion).
        exponents: s exponents per proton (default ``DEFAULT_EXPONENTS``).
        n_orbitals: keep the lowest n_orbitals (default: all linearly independent ones).
        p_exponents: p exponents per proton (default: none, s only); see
            ``POLARISATION_EXPONENTS``.
    """
    if n_orbitals is not None and (int(n_orbitals) != n_orbitals or n_orbitals < 1):
        raise ValueError(f"n_orbitals must be an integer >= 1, got {n_orbitals}")
    sol = _solve(centers, n_electrons, method, exponents, p_exponents)
    available = sol.coefficients.shape[1]
    if n_orbitals is None:
        n_orbitals = available
    if n_orbitals > available:
        raise ValueError(
            f"n_orbitals={n_orbitals} exceeds the {available} linearly independent orbitals"
        )
    return MolecularOrbitalBasis(
        centers=np.asarray(centers, dtype=np.float64),
        exponents=DEFAULT_EXPONENTS if exponents is None else exponents,
        coefficients=sol.coefficients[:, : int(n_orbitals)],
        orbital_energies=sol.orbital_energies[: int(n_orbitals)],
        p_exponents=np.zeros(0) if p_exponents is None else p_exponents,
        scf_energy=sol.total_energy,
    )


def rhf_energy(
    centers: np.ndarray,
    n_electrons: int | None = None,
    exponents: np.ndarray | None = None,
    *,
    p_exponents: np.ndarray | None = None,
) -> float:
    """Closed-shell RHF total energy (electronic + nuclear repulsion, hartree) in the basis.

    >>> round(rhf_energy([[0, 0, -0.7], [0, 0, 0.7]]), 4)  # H2 at R = 1.4 bohr, s only
    -1.1285
    """
    return float(_solve(centers, n_electrons, "rhf", exponents, p_exponents).total_energy)


def orbital_integrals(basis: MolecularOrbitalBasis) -> tuple[np.ndarray, np.ndarray]:
    """One- and two-electron integrals over the orbitals of ``basis``.

    Returns ``h`` (M, M), ``<a| -1/2 nabla^2 + V |b>``, and ``eri`` (M, M, M, M), ``(ab|cd)`` in
    chemists' order; M = ``basis.n_orbitals``.
    """
    ints = gaussian_integrals(*basis.basis_functions, basis.centers)
    c = basis.coefficients
    h = c.T @ (ints.kinetic + ints.nuclear) @ c
    eri = np.einsum("pqrs,pa,qb,rc,sd->abcd", ints.repulsion, c, c, c, c, optimize=True)
    return h, eri


def pair_fci(basis: MolecularOrbitalBasis) -> tuple[float, np.ndarray]:
    """Full CI of two electrons (a singlet) in the orbitals of ``basis``.

    The spatial ground state ``sum_ab C_ab phi_a(r1) phi_b(r2)`` is the lowest eigenvector of
    ``H[(ab), (cd)] = h_ac d_bd + d_ac h_bd + (ac|bd)`` on all M^2 products (the ground state of two
    distinguishable particles is symmetric, so it is the singlet's). Returns the total energy
    (with the nuclear repulsion, hartree) and C (M, M), symmetric with unit Frobenius norm.

    >>> import numpy as np
    >>> e, c = pair_fci(molecular_orbitals([[0, 0, -0.7], [0, 0, 0.7]]))  # s only
    >>> round(e, 4)
    -1.1549
    """
    h, eri = orbital_integrals(basis)
    m = h.shape[0]
    eye = np.eye(m)
    ham = (np.einsum("ac,bd->abcd", h, eye) + np.einsum("ac,bd->abcd", eye, h)
           + eri.transpose(0, 2, 1, 3))
    energies, vectors = np.linalg.eigh(ham.reshape(m * m, m * m))
    c = vectors[:, 0].reshape(m, m)
    c = 0.5 * (c + c.T)
    c = c * np.sign(np.trace(c)) / np.linalg.norm(c)
    return float(energies[0]) + nuclear_repulsion(basis.centers), c
