"""Values of single-particle orbitals at particle positions, shaped for Slater determinants.

One job: given positions ``z`` of shape ``(n, d)`` and the descriptors of ``m`` chosen orbitals
(oscillator quantum numbers ``(m, d)`` int, or plane-wave vectors ``(m, d)`` float), return the
``(n, m)`` matrix ``A[i, j] = phi_j(z_i)``; for m = n its determinant is the (unnormalised)
Slater determinant. Which orbitals are chosen (the energy-ordered lists, the occupations) is decided
elsewhere (``qvfe.physics.orbitals``, ``qvfe.autoregressive.occupations``).

Log-domain convention. Every orbital of a given particle shares a factor that depends only on that
particle (the Gaussian ``exp(-omega |z|^2 / 2)`` of the oscillator, ``1/sqrt(V)`` of plane waves).
It is returned separately as ``log_row[i]`` so that

    det[phi_j(z_i)] = exp(sum_i log_row[i]) * det(matrix)

holds exactly. Keeping the Gaussian out of the matrix avoids underflow of the determinant for
particles far out in the trap (``exp(-z^2/2)`` underflows at |z| ~ 38 while its log is harmless) and
makes the row factor's contribution to ln psi an exact, cheap polynomial.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

__all__ = [
    "OrbitalValues",
    "hermite_polynomials",
    "hermite_functions",
    "harmonic_orbital_values",
    "plane_wave_orbital_values",
    "polar_harmonic_orbital_values",
    "harmonic_energies",
    "HarmonicBasis",
    "PolarHarmonicBasis",
    "PlaneWaveBasis",
]

_PI_QUARTER = np.pi ** -0.25


class OrbitalValues(NamedTuple):
    """``det[phi_j(z_i)] = exp(log_row.sum()) * det(matrix)``.

    log_row: (n,) real, the per-particle factor shared by all orbitals, in log form.
    matrix: (n, m) real (oscillator) or complex (plane waves).
    """

    log_row: jax.Array
    matrix: jax.Array


def hermite_polynomials(x: jax.Array, n_max: int) -> jax.Array:
    """Normalised Hermite polynomial parts ``p_n(x)``, n = 0..n_max, shape ``(*x.shape, n_max+1)``.

    ``p_n(x) exp(-x^2/2)`` is the orthonormal Hermite function ``h_n(x)``. The three-term recurrence
    is written for the normalised functions,
        p_0 = pi^(-1/4),  p_1 = sqrt(2) x p_0,
        p_{n+1} = sqrt(2/(n+1)) x p_n - sqrt(n/(n+1)) p_{n-1},
    so no factorial or power of two ever appears and nothing overflows for the n used in practice.
    """
    if n_max < 0:
        raise ValueError(f"n_max must be >= 0, got {n_max}")
    x = jnp.asarray(x)
    p0 = jnp.full_like(x, _PI_QUARTER)
    values = [p0]
    if n_max >= 1:
        values.append(np.sqrt(2.0) * x * p0)
    for n in range(1, n_max):
        values.append(np.sqrt(2.0 / (n + 1)) * x * values[n] - np.sqrt(n / (n + 1)) * values[n - 1])
    return jnp.stack(values, axis=-1)


def hermite_functions(x: jax.Array, n_max: int) -> jax.Array:
    """Orthonormal Hermite functions ``h_n(x)`` on the real line, shape ``(*x.shape, n_max+1)``.

    >>> import jax.numpy as jnp
    >>> round(float(hermite_functions(jnp.array(0.0), 0)[0]), 6)  # pi^(-1/4)
    0.751126
    """
    x = jnp.asarray(x)
    return hermite_polynomials(x, n_max) * jnp.exp(-0.5 * x**2)[..., None]


def harmonic_orbital_values(
    z: jax.Array, quantum_numbers: jax.Array, omega: float, n_max: int
) -> OrbitalValues:
    """Oscillator orbitals ``phi_n(z) = prod_a omega^(1/4) h_{n_a}(sqrt(omega) z_a)``.

    Args:
        z: positions, shape (n, d).
        quantum_numbers: (m, d) int, the chosen orbitals (may be traced, e.g. gathered from a
            table with sampled indices).
        omega: trap frequency.
        n_max: static upper bound on every entry of ``quantum_numbers`` (the recurrence depth).
    Returns:
        OrbitalValues with ``log_row[i] = -omega |z_i|^2 / 2`` and the polynomial matrix (n, m).
    """
    n, d = z.shape
    u = np.sqrt(omega) * z
    poly = hermite_polynomials(u, n_max) * omega**0.25  # (n, d, n_max+1)
    qn = jnp.asarray(quantum_numbers)  # (m, d)
    # gather p_{n_ja}(u_ia): for each particle i, dimension a and orbital j
    per_dim = jnp.take_along_axis(
        poly[:, None, :, :], jnp.broadcast_to(qn[None, :, :, None], (n, qn.shape[0], d, 1)), axis=-1
    )[..., 0]  # (n, m, d)
    matrix = jnp.prod(per_dim, axis=-1)
    log_row = -0.5 * jnp.sum(u**2, axis=-1)
    return OrbitalValues(log_row, matrix)


def polar_harmonic_orbital_values(
    z: jax.Array, quantum_numbers: jax.Array, omega: float, n_max: int, m_max: int
) -> OrbitalValues:
    """Real 2D oscillator orbitals of definite |m| (``qvfe.physics.orbitals.polar_harmonic_orbitals``).

    ``phi_{n,m}(z) = c_{n,|m|} sqrt(omega) L_n^{|m|}(|u|^2) {Re, Im}(u_x + i u_y)^{|m|} e^{-|u|^2/2}``
    with ``u = sqrt(omega) z``, ``c = sqrt(2 n! / (pi (n+|m|)!))`` (``sqrt(1/pi)`` for m = 0), Re for
    m ≥ 0 and Im for m < 0. Every factor but the Gaussian is a polynomial in z (``r^|m| cos(mφ)`` is
    ``Re (x + i y)^|m|``), so the matrix is smooth at the origin, as the Cartesian one is.

    Args:
        z: positions, shape (n, 2).
        quantum_numbers: (M, 2) int rows ``(n_r, m)``, the chosen orbitals (may be traced).
        omega: trap frequency.
        n_max, m_max: static bounds on n_r and |m| (recurrence depths).
    Returns:
        OrbitalValues with ``log_row[i] = -omega |z_i|^2 / 2`` and the polynomial matrix (n, M).
    """
    u = np.sqrt(omega) * z
    rho2 = jnp.sum(u**2, axis=-1)  # (n,)
    alpha = jnp.arange(m_max + 1, dtype=z.dtype)  # generalized Laguerre L_k^alpha for all |m|
    lag = [jnp.ones(rho2.shape + alpha.shape, z.dtype)]
    if n_max >= 1:
        lag.append(1.0 + alpha - rho2[:, None])
    for k in range(1, n_max):
        lag.append(((2 * k + 1 + alpha - rho2[:, None]) * lag[k] - (k + alpha) * lag[k - 1])
                   / (k + 1))
    lag = jnp.stack(lag, axis=1)  # (n, n_max+1, m_max+1)
    # (u_x + i u_y)^k by a running product of real and imaginary parts (no complex dtype)
    re, im = [jnp.ones_like(rho2)], [jnp.zeros_like(rho2)]
    for _ in range(m_max):
        re, im = (re + [re[-1] * u[:, 0] - im[-1] * u[:, 1]],
                  im + [re[-1] * u[:, 1] + im[-1] * u[:, 0]])
    re, im = jnp.stack(re, axis=1), jnp.stack(im, axis=1)  # (n, m_max+1)
    qn = jnp.asarray(quantum_numbers)
    n_r, m = qn[:, 0], qn[:, 1]
    am = jnp.abs(m)
    angular = jnp.where(m >= 0, re[:, am], im[:, am])  # (n, M)
    # c_{n,|m|} for every (n_r, |m|) within the static bounds, tabulated once at trace time and
    # indexed by the (possibly traced) quantum numbers
    nn, aa = np.meshgrid(np.arange(n_max + 1), np.arange(m_max + 1), indexing="ij")
    norm = np.exp(0.5 * (gammaln(nn + 1.0) - gammaln(nn + aa + 1.0) - np.log(np.pi)
                         + np.log(omega)))
    c = jnp.asarray(norm, z.dtype)[n_r, am] * jnp.where(m == 0, 1.0, np.sqrt(2.0))
    matrix = c * lag[:, n_r, am] * angular
    return OrbitalValues(-0.5 * rho2, matrix)


def plane_wave_orbital_values(z: jax.Array, k_vectors: jax.Array, volume: float) -> OrbitalValues:
    """Plane waves ``exp(i k . z) / sqrt(V)``.

    Args:
        z: positions, shape (n, d).
        k_vectors: (m, d) float wave vectors (include any twist).
        volume: box volume (area in 2D), a positive Python/NumPy float.
    Returns:
        OrbitalValues with ``log_row[i] = -ln(V)/2`` and the complex matrix ``exp(i z_i . k_j)``.
    """
    phase = z @ jnp.asarray(k_vectors).T  # (n, m)
    # cos + i sin rather than exp(1j * phase): keeps the real input real for forward-mode tools
    matrix = jax.lax.complex(jnp.cos(phase), jnp.sin(phase))
    log_row = jnp.full(z.shape[:1], -0.5 * np.log(volume), dtype=phase.dtype)
    return OrbitalValues(log_row, matrix)


def harmonic_energies(quantum_numbers: np.ndarray, omega: float) -> np.ndarray:
    """Single-particle energies ``omega * sum_a (n_a + 1/2)`` of oscillator orbitals, shape (m,)."""
    qn = np.asarray(quantum_numbers)
    return omega * (qn.sum(axis=-1) + 0.5 * qn.shape[-1])


@dataclass(frozen=True, eq=False)
class HarmonicBasis:
    """A table of oscillator orbitals; ``values(z, occ)`` evaluates the rows ``occ`` of the table.

    Attributes:
        quantum_numbers: (M, d) int table (e.g. the energy-ordered list of
            ``qvfe.physics.orbitals``).
        omega: trap frequency.
    """

    quantum_numbers: np.ndarray
    omega: float
    is_complex: bool = False

    def __post_init__(self) -> None:
        qn = np.asarray(self.quantum_numbers)
        if qn.ndim != 2 or not np.issubdtype(qn.dtype, np.integer) or (qn < 0).any():
            raise ValueError("HarmonicBasis.quantum_numbers must be a (M, d) array of ints >= 0")
        if not self.omega > 0:
            raise ValueError(f"HarmonicBasis.omega must be > 0, got {self.omega}")
        object.__setattr__(self, "quantum_numbers", qn)

    def values(self, z: jax.Array, occ: jax.Array) -> OrbitalValues:
        """Orbital values of the table rows ``occ`` (int, (n,)) at positions ``z`` (n, d)."""
        n_max = int(self.quantum_numbers.max(initial=0))
        qn = jnp.asarray(self.quantum_numbers)[occ]
        return harmonic_orbital_values(z, qn, self.omega, n_max)

    def energies(self) -> np.ndarray:
        return harmonic_energies(self.quantum_numbers, self.omega)

    @property
    def dim(self) -> int:
        return int(self.quantum_numbers.shape[1])

    @property
    def n_orbitals(self) -> int:
        return int(self.quantum_numbers.shape[0])


@dataclass(frozen=True, eq=False)
class PolarHarmonicBasis:
    """A table of real 2D oscillator orbitals of definite |m|, rows ``(n_r, m)``.

    The same space per shell as ``HarmonicBasis`` in d = 2 (same energies); see
    ``polar_harmonic_orbital_values`` for the functions and why they matter with interactions.
    """

    quantum_numbers: np.ndarray
    omega: float
    is_complex: bool = False

    def __post_init__(self) -> None:
        qn = np.asarray(self.quantum_numbers)
        if (qn.ndim != 2 or qn.shape[1] != 2 or not np.issubdtype(qn.dtype, np.integer)
                or (qn[:, 0] < 0).any()):
            raise ValueError("PolarHarmonicBasis.quantum_numbers must be a (M, 2) int array of "
                             "(n_r >= 0, m) rows")
        if not self.omega > 0:
            raise ValueError(f"PolarHarmonicBasis.omega must be > 0, got {self.omega}")
        object.__setattr__(self, "quantum_numbers", qn)

    def values(self, z: jax.Array, occ: jax.Array) -> OrbitalValues:
        """Orbital values of the table rows ``occ`` (int, (n,)) at positions ``z`` (n, 2)."""
        qn = self.quantum_numbers
        n_max = int(qn[:, 0].max(initial=0))
        m_max = int(np.abs(qn[:, 1]).max(initial=0))
        return polar_harmonic_orbital_values(z, jnp.asarray(qn)[occ], self.omega, n_max, m_max)

    def energies(self) -> np.ndarray:
        qn = self.quantum_numbers
        return self.omega * (2 * qn[:, 0] + np.abs(qn[:, 1]) + 1.0)

    @property
    def dim(self) -> int:
        return 2

    @property
    def n_orbitals(self) -> int:
        return int(self.quantum_numbers.shape[0])


@dataclass(frozen=True, eq=False)
class PlaneWaveBasis:
    """A table of plane waves ``exp(i k.z)/sqrt(V)`` in a cubic box of side ``box_length``.

    Attributes:
        k_vectors: (M, d) float table (``2 pi (m + twist) / L``, from ``qvfe.physics.orbitals``).
        box_length: side L; the volume is ``L**d``.
    """

    k_vectors: np.ndarray
    box_length: float
    is_complex: bool = True

    def __post_init__(self) -> None:
        k = np.asarray(self.k_vectors, dtype=float)
        if k.ndim != 2:
            raise ValueError("PlaneWaveBasis.k_vectors must be a (M, d) array")
        if not self.box_length > 0:
            raise ValueError(f"PlaneWaveBasis.box_length must be > 0, got {self.box_length}")
        object.__setattr__(self, "k_vectors", k)

    @property
    def volume(self) -> float:
        return float(self.box_length ** self.k_vectors.shape[1])

    def values(self, z: jax.Array, occ: jax.Array) -> OrbitalValues:
        """Orbital values of the table rows ``occ`` (int, (n,)) at positions ``z`` (n, d)."""
        k = jnp.asarray(self.k_vectors, dtype=z.dtype)[occ]
        return plane_wave_orbital_values(z, k, self.volume)

    def energies(self) -> np.ndarray:
        return 0.5 * np.sum(self.k_vectors**2, axis=-1)

    @property
    def dim(self) -> int:
        return int(self.k_vectors.shape[1])

    @property
    def n_orbitals(self) -> int:
        return int(self.k_vectors.shape[0])
