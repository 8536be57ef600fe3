"""The 2D Ising ferromagnet on an L×L torus: its energy and its exact finite-lattice thermodynamics.

E(s) = −J Σ_⟨ij⟩ s_i s_j over the 2L² nearest-neighbour bonds of the torus (no field), spins ±1
stored row-major as shape (..., L*L).

The exact reference is Kaufman's (1949) partition function of the finite torus with n = m = L,

    Z = ½ (2 sinh 2K)^{N/2} (Z₁ + Z₂ + Z₃ + Z₄),          K = βJ, N = L²,
    Z₁ = Π_{k odd}  2 cosh(L γ_k / 2),   Z₂ = Π_{k odd}  2 sinh(L γ_k / 2),
    Z₃ = Π_{k even} 2 cosh(L γ_k / 2),   Z₄ = Π_{k even} 2 sinh(L γ_k / 2),

with k running over 0..2L−1, cosh γ_k = cosh 2K coth 2K − cos(π k / L) for k ≥ 1 and, the classic
pitfall, γ₀ = 2K + ln tanh K *with its sign*: γ₀ < 0 above T_c (K < K_c), so Z₄ changes sign there.
The γ₀ from the arccosh formula is only |γ₀| and gives a wrong Z above T_c.

The references are host-side constants (they are never traced), so they are computed in numpy
float64 whatever JAX's x64 setting is; only ``energy`` runs inside jitted code.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np

BETA_C = 0.5 * np.log1p(np.sqrt(2.0))  # K_c = ½ ln(1 + √2) ≈ 0.4406868


def bonds(L: int) -> np.ndarray:
    """The 2L² bonds (site, right neighbour) and (site, down neighbour) of the L×L torus, (2N, 2).

    Written out rather than taken from ``netket.graph.Square``: for L = 2 the torus has each
    neighbouring pair joined by two bonds (left and right wrap onto the same site) and Kaufman's Z
    counts both, while a graph's edge list holds each pair once.
    """
    i = np.arange(L * L).reshape(L, L)
    right = np.stack([i, np.roll(i, -1, axis=1)], axis=-1).reshape(-1, 2)
    down = np.stack([i, np.roll(i, -1, axis=0)], axis=-1).reshape(-1, 2)
    return np.concatenate([right, down])


def energy(spins: jnp.ndarray, L: int, J: float = 1.0) -> jnp.ndarray:
    """Total energy −J Σ_⟨ij⟩ s_i s_j of spins of shape (..., L*L), returned with shape (...).

    Jittable; summing each site with its right and down neighbours visits every torus bond once.
    """
    s = jnp.reshape(spins, spins.shape[:-1] + (L, L))
    pair_sum = s * (jnp.roll(s, -1, axis=-1) + jnp.roll(s, -1, axis=-2))
    return -J * jnp.sum(pair_sum, axis=(-2, -1))


def _log2cosh(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ax + np.log1p(np.exp(-2.0 * ax))


def _log_abs_2sinh(x: np.ndarray) -> np.ndarray:
    # −inf exactly at x = 0 (γ₀ = 0 at K = K_c), which the signed sum below handles.
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        return ax + np.log(-np.expm1(-2.0 * ax))


def _gammas(L: int, K: float) -> tuple[np.ndarray, np.ndarray]:
    """γ_k and dγ_k/dK for k = 0..2L−1 (γ₀ signed)."""
    s = np.sinh(2.0 * K)
    k = np.arange(2 * L)
    theta = np.pi * k / L
    # cosh γ_k − 1 = (s − 1)²/s + 2 sin²(θ/2): both terms ≥ 0 and free of cancellation, which
    # keeps γ_k accurate where cosh γ_k → 1 (near K_c at small k).
    delta = (s - 1.0) ** 2 / s + 2.0 * np.sin(0.5 * theta) ** 2
    gamma = np.log1p(delta + np.sqrt(delta * (delta + 2.0)))  # arccosh(1 + δ)
    # d cosh γ_k / dK = d(s + 1/s)/dK = 2 cosh 2K (1 − 1/s²)
    with np.errstate(divide="ignore", invalid="ignore"):
        dgamma = 2.0 * np.cosh(2.0 * K) * (1.0 - 1.0 / s**2) / np.sinh(gamma)
    gamma[0] = 2.0 * K + np.log(np.tanh(K))
    dgamma[0] = 2.0 + 2.0 / s
    return gamma, dgamma


def _log_z_and_dlogz(L: int, K: float) -> tuple[float, float]:
    """ln Z and d ln Z / dK for the ferromagnetic torus with coupling K = β|J| > 0."""
    n = L * L
    g, dg = _gammas(L, K)
    x = 0.5 * L * g
    dx = 0.5 * L * dg
    odd, even = slice(1, None, 2), slice(0, None, 2)
    lc, ls = _log2cosh(x), _log_abs_2sinh(x)
    # ln|Z_i| and sign(Z_i); only 2 sinh(x₀) (Z₄) can be negative.
    logs = np.array([lc[odd].sum(), ls[odd].sum(), lc[even].sum(), ls[even].sum()])
    signs = np.array([1.0, 1.0, 1.0, np.sign(x[0]) if x[0] != 0 else 0.0])
    # Z₁ ≥ Z₂ > 0 and Z₃ ≥ |Z₄|, so the signed sum is ≥ Z₁ + Z₂ and never cancels badly.
    m = logs[0]
    terms = signs * np.exp(logs - m)
    log_sum = m + np.log(terms.sum())
    w = terms / terms.sum()  # Z_i / ΣZ
    tanh, coth_rest = np.tanh(x), 1.0 / np.tanh(x[2::2])
    dlog = np.array([
        np.sum(tanh[odd] * dx[odd]),
        np.sum(dx[odd] / np.tanh(x[odd])),
        np.sum(tanh[even] * dx[even]),
        np.sum(coth_rest * dx[2::2]),  # k = 0 term of d ln|Z₄| added below
    ])
    dlog_sum = np.sum(w * dlog)
    # w₄ · coth(x₀) dx₀ = Z₄ coth(x₀)/ΣZ dx₀ with Z₄ coth(x₀) = Π_{k even ≠ 0} 2 sinh · 2 cosh(x₀):
    # finite also at x₀ = 0, where coth alone diverges.
    dlog_sum += np.exp(ls[2::2].sum() + lc[0] - log_sum) * dx[0]
    log_z = -np.log(2.0) + 0.5 * n * np.log(2.0 * np.sinh(2.0 * K)) + log_sum
    dlog_z = n / np.tanh(2.0 * K) + dlog_sum
    return float(log_z), float(dlog_z)


def _coupling(L: int, beta: float, J: float) -> float:
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if J < 0 and L % 2:
        raise ValueError("an antiferromagnet on an odd torus is frustrated; "
                         "Kaufman's Z does not apply")
    # An even torus is bipartite: flipping one sublattice maps J to −J, so Z(J) = Z(|J|).
    return float(beta * abs(J))


def log_z(L: int, beta: float, J: float = 1.0) -> float:
    """Exact ln Z of the L×L torus (Kaufman), float64, accurate to ~1e-14 relative.

    >>> round(log_z(4, 0.44), 9)
    15.504726539
    """
    K = _coupling(L, beta, J)
    if K == 0.0:
        return float(L * L * np.log(2.0))
    return _log_z_and_dlogz(L, K)[0]


def free_energy_per_site(L: int, beta: float, J: float = 1.0) -> float:
    """Exact f = −ln Z / (β L²) in units of J (for J = 1)."""
    return -log_z(L, beta, J) / (beta * L * L)


def energy_per_site(L: int, beta: float, J: float = 1.0) -> float:
    """Exact mean energy per site ⟨E⟩/N = −(1/N) ∂ ln Z/∂β (analytic derivative of Kaufman's Z)."""
    K = _coupling(L, beta, J)
    if K == 0.0:
        return 0.0
    return -abs(J) * _log_z_and_dlogz(L, K)[1] / (L * L)


def entropy_per_site(L: int, beta: float, J: float = 1.0) -> float:
    """Exact entropy per site in units of k_B: s = β (e − f)."""
    return beta * (energy_per_site(L, beta, J) - free_energy_per_site(L, beta, J))


def log_z_enumerate(L: int, beta: float, J: float = 1.0) -> tuple[float, float]:
    """(ln Z, mean energy per site) by summing all 2^(L²) states; the reference for tests, L ≤ 4.

    Uses the explicit bond list (not ``energy``) so that the two energy implementations check each
    other.
    """
    n = L * L
    if n > 16:
        raise ValueError(f"enumeration of 2^{n} states is too large; use L <= 4")
    spins = np.array(list(itertools.product([-1, 1], repeat=n)), dtype=np.int64)
    b = bonds(L)
    e = -J * np.sum(spins[:, b[:, 0]] * spins[:, b[:, 1]], axis=1).astype(np.float64)
    a = -beta * e
    m = a.max()
    w = np.exp(a - m)
    return float(m + np.log(w.sum())), float(np.sum(w * e) / w.sum() / n)
