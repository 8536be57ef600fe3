"""Exact thermodynamics of two electrons (1↑ + 1↓) in an isotropic harmonic dot, d = 2 or 3.

H = Σ_i (-½∇_i² + ½ω² r_i²) + λ/r_12 separates exactly into
- the centre of mass R = (r_1 + r_2)/2 (mass 2, frequency ω): an ideal d-dimensional oscillator,
  levels ω(n + d/2), closed-form partition function;
- the relative coordinate r = r_1 - r_2 (reduced mass ½): H_rel = -∇_r² + ¼ω² r² + λ/r, which
  separates further into angular-momentum channels ℓ (2D: ℓ = |m|, degeneracy 1 for m = 0 and 2
  otherwise; 3D: degeneracy 2ℓ+1) with a radial problem solved here numerically.

Which relative states count. qvfe models 1↑+1↓ as two distinguishable species (one 1×1 Slater
determinant per spin, fixed S_z = 0, no spin symmetrisation), so the reference partition function
runs over *all* relative states: even ℓ (spatially symmetric, singlet) and odd ℓ (antisymmetric,
the S_z = 0 triplet component) alike. (A spin-resolved singlet/triplet count would weight them
differently; that is not what the density-matrix model samples.)

Radial solver. In channel ℓ the radial function is R(r) = r^ℓ g(r) with g analytic in r (the cusp
makes g contain odd powers of r, so an oscillator basis in r² converges slowly). We expand
    R(r) = r^ℓ e^{-s r/2} Σ_n c_n p_n(s r),   p_n = orthonormal Laguerre polynomials L_n^{(2ℓ+d-1)},
which is orthonormal in the measure r^{d-1} dr, and compute kinetic, r² and 1/r matrix elements
*exactly* with a Gauss–Laguerre rule whose weight x^{α_w} e^{-x} absorbs the lowest power of x in
each integrand (so every integrand is a polynomial times the weight). A symmetric eigenproblem per
channel gives variational upper bounds that converge fast (≤ 1e-10 ω for the low levels at the
default basis). The basis size and the scale s are chosen from the highest level a channel needs.

Temperature cut-off. Relative states with e^{-(E-E_0)/T} < e^{-tail} (tail = 40 by default) are
dropped. Since λ/r ≥ 0 raises every level above its λ = 0 value ω(2n + ℓ + 1) (min-max), the
channels and levels that can lie below the cut are known in advance. The cost grows like T²
(number of states below E_0 + tail·T); intended for T up to a few ω.

T → 0: F → E and S → 0, with E → E_0, the nondegenerate ground state (ℓ = 0 relative motion, CM
ground state); T = 0 is accepted and returns exactly that.

Host-side numpy/scipy (float64), no JAX: a reference for tests and for the driver's comparisons.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy.special import gammaln, logsumexp, roots_genlaguerre

__all__ = [
    "relative_levels",
    "relative_spectrum",
    "two_electron_dot_ground_state",
    "two_electron_dot_free_energy",
]


def _check(omega: float, coupling: float, dim: int) -> None:
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if not omega > 0:
        raise ValueError(f"omega must be > 0, got {omega}")
    if coupling < 0:
        # The channel/level cut-offs rely on λ/r ≥ 0 raising every level (see module docstring).
        raise ValueError(f"coupling must be >= 0 (repulsive), got {coupling}")


def _default_basis(omega: float, coupling: float, ell: int, n_levels: int, dim: int
                   ) -> tuple[int, float]:
    """(basis size K, scale s) for the lowest ``n_levels`` of channel ``ell``.

    The basis spans r ∈ [0, ~(4K + 4ℓ + 2d)/s] (the largest Laguerre node over s). We make that span
    1.3 × the classical turning point of the highest level (Coulomb energy estimated as λ√ω) plus
    8 oscillator lengths, and take K = 2 n_levels + 40. Checked against the exact λ = 0 spectrum and
    a larger basis for ω ∈ [0.01, 10], λ ∈ {0, 1}, ℓ ≤ 80, n ≤ 20: error ≤ 2e-11 ω.
    """
    k = 2 * n_levels + 40
    e_top = omega * (2 * n_levels + ell + dim / 2) + coupling * math.sqrt(omega)
    span = 1.3 * 2.0 * math.sqrt(e_top) / omega + 8.0 / math.sqrt(omega)
    return k, (4 * k + 4 * ell + 2 * dim) / span


def relative_levels(
    omega: float,
    coupling: float,
    ell: int,
    n_levels: int,
    dim: int = 2,
    n_basis: int | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """Lowest ``n_levels`` eigenvalues of -∇² + ¼ω²r² + λ/r in angular channel ``ell`` (Hartree).

    2D: ``ell`` = |m|; 3D: ``ell`` = l. ``n_basis`` (≥ n_levels) and ``scale`` (s, 1/bohr) override
    the automatic choice, e.g. to study convergence. λ = 0 gives ω(2n + ℓ + d/2) exactly (n ≥ 0).
    """
    _check(omega, coupling, dim)
    k_auto, s_auto = _default_basis(omega, coupling, ell, n_levels, dim)
    k = k_auto if n_basis is None else int(n_basis)
    s = s_auto if scale is None else float(scale)
    if k < n_levels:
        raise ValueError(f"n_basis={k} < n_levels={n_levels}")
    alpha = 2 * ell + dim - 1  # Laguerre parameter: p_n orthonormal in x^α e^{-x} = overlap measure
    # Smallest power of x over all integrands (kinetic x^{2ℓ+d-3}, but x^{d-1} when ℓ = 0 since the
    # centrifugal term vanishes and (x ∂_x - x/2) p carries a factor x; 1/r: x^{2ℓ+d-2}).
    a_w = dim - 2 if ell == 0 else 2 * ell + dim - 3
    x, w = roots_genlaguerre(k + 3, a_w)  # exact for the degree ≤ 2K+2 polynomials below
    # ψ[n, i] = sqrt(w_i) p_n(x_i), by the three-term recurrence of orthonormal Laguerre
    # polynomials (started from sqrt(w) so that large nodes neither overflow nor underflow).
    psi = np.empty((k, x.size))
    psi[0] = np.sqrt(w) * math.exp(-0.5 * gammaln(alpha + 1))
    if k > 1:
        psi[1] = (1 + alpha - x) * psi[0] / math.sqrt(1 + alpha)
    for n in range(1, k - 1):
        psi[n + 1] = ((2 * n + 1 + alpha - x) * psi[n] - math.sqrt(n * (n + alpha)) * psi[n - 1]
                      ) / math.sqrt((n + 1) * (n + 1 + alpha))
    n = np.arange(k)[:, None]
    psi_prev = np.vstack([np.zeros((1, x.size)), psi[:-1]])
    # With R = r^ℓ e^{-x/2} p_n(x), x = s r:  r R' = r^ℓ e^{-x/2} A_n with
    # A_n = ℓ p_n + x p_n' - x p_n/2 and x p_n' = n p_n - sqrt(n(n+α)) p_{n-1}.
    a = (ell + n) * psi - np.sqrt(n * (n + alpha)) * psi_prev - 0.5 * x * psi

    def integral(f, g, power):  # Σ_i w_i x_i^{power - a_w} f g  =  ∫ x^power f g e^{-x} dx
        return (f * x ** (power - a_w)) @ g.T

    centrifugal = ell * (ell + dim - 2)
    # Matrix elements times s^{2ℓ+d} (common factor, the overlap is then the identity):
    # kinetic ∫ (R'² + c R²/r²) r^{d-1} dr, Coulomb ∫ R²/r r^{d-1} dr, trap ∫ r² R² r^{d-1} dr.
    kinetic = s**2 * (integral(a, a, 2 * ell + dim - 3)
                      + centrifugal * integral(psi, psi, 2 * ell + dim - 3))
    coulomb = s * integral(psi, psi, 2 * ell + dim - 2)
    trap = integral(psi, psi, 2 * ell + dim + 1) / s**2
    h = kinetic + coupling * coulomb + 0.25 * omega**2 * trap
    h = 0.5 * (h + h.T)
    return scipy.linalg.eigvalsh(h, subset_by_index=(0, n_levels - 1))


def relative_spectrum(
    omega: float, coupling: float, e_max: float, dim: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """All relative-motion levels with E ≤ ``e_max``: (energies, degeneracies), sorted by energy.

    Degeneracies count all angular states (±m in 2D, 2ℓ+1 in 3D), even and odd ℓ alike.
    """
    _check(omega, coupling, dim)
    energies, degeneracies = [], []
    ell = 0
    # Every level of channel ℓ lies at or above its λ = 0 value ω(2n + ℓ + d/2).
    while omega * (ell + dim / 2) <= e_max:
        n_levels = int((e_max / omega - ell - dim / 2) // 2) + 1
        e = relative_levels(omega, coupling, ell, n_levels, dim)
        e = e[e <= e_max]
        g = (1 if ell == 0 else 2) if dim == 2 else 2 * ell + 1
        energies.append(e)
        degeneracies.append(np.full(e.shape, g))
        ell += 1
    e = np.concatenate(energies)
    g = np.concatenate(degeneracies)
    order = np.argsort(e, kind="stable")
    return e[order], g[order]


def two_electron_dot_ground_state(omega: float, coupling: float, dim: int = 2) -> float:
    """Ground-state energy (total, Hartree): CM zero point dω/2 + lowest ℓ = 0 relative level.

    2D, ω = 1, λ = 1: 3 Ha exactly (Taut); 3D, ω = ½, λ = 1: 2 Ha exactly (Hooke's atom).
    More generally R = r^ℓ (1 + λr/(2ℓ+d-1)) e^{-ωr²/4} is the lowest relative state of channel ℓ
    when ω = λ²/(2ℓ+d-1), with E_rel = ω(ℓ + d/2 + 1).
    """
    _check(omega, coupling, dim)
    return float(dim * omega / 2 + relative_levels(omega, coupling, 0, 1, dim)[0])


def two_electron_dot_free_energy(
    omega: float, coupling: float, T: float, dim: int = 2, tail: float = 40.0
) -> dict[str, float]:
    """Exact canonical F, E, S of 1↑ + 1↓ electrons in the dot (totals; S in k_B), plus E0.

    F = -T ln(Z_cm Z_rel); divide by 2 for per-electron values. ``tail`` sets the relative-state
    cut-off e^{-tail} (see module docstring). T = 0 returns the ground state (F = E = E0, S = 0).
    """
    _check(omega, coupling, dim)
    if T < 0:
        raise ValueError(f"T must be >= 0, got {T}")
    e0_rel = float(relative_levels(omega, coupling, 0, 1, dim)[0])
    if T == 0:
        e0 = dim * omega / 2 + e0_rel
        return {"F": float(e0), "E": float(e0), "S": 0.0, "E0": float(e0)}
    beta = 1.0 / T
    e_rel, g = relative_spectrum(omega, coupling, e0_rel + tail * T, dim)
    # Measure from the ground level of *this* spectrum (its basis differs slightly from the one
    # above): then the ground state has Δ = 0 exactly and S → 0 without a β·1e-13 residue.
    e0_rel = float(e_rel[0])
    e0 = dim * omega / 2 + e0_rel
    delta = e_rel - e0_rel
    log_w = np.log(g) - beta * delta
    log_z_rel_s = logsumexp(log_w)
    mean_delta = float(np.sum(np.exp(log_w - log_z_rel_s) * delta))
    # Centre of mass, d independent oscillators; y = βω/2, Z = (2 sinh y)^{-d}.
    y = beta * omega / 2
    q = math.exp(-2 * y)
    log_z_cm_s = -dim * math.log1p(-q)          # ln Z_cm + β d ω/2
    e_cm_s = dim * omega * q / (-math.expm1(-2 * y))  # E_cm - d ω/2
    log_z_s = log_z_rel_s + log_z_cm_s               # ln Z + β E0
    energy = e0 + mean_delta + e_cm_s
    entropy = log_z_s + beta * (mean_delta + e_cm_s)
    return {"F": float(e0 - T * log_z_s), "E": float(energy), "S": float(entropy), "E0": float(e0)}
