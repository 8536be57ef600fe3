"""The classical Coulomb trap: its energy and its exact thermodynamics where they are known.

N labelled classical particles in d dimensions with

    E(X) = sum_{i<j} 1/|x_i - x_j| + sum_i |x_i|^2,

at inverse temperature beta; Z = int dX exp(-beta E) over R^{N d} (labelled: no 1/N!) and
F = -ln(Z)/beta. Exact anchors:

* the harmonic reference (Coulomb term off), Z_0 = (pi/beta)^{N d / 2};
* N = 2 with any coupling: after separating the centre of mass R = (x1 + x2)/2 and the relative
  coordinate r = x1 - x2 (|x1|^2 + |x2|^2 = 2|R|^2 + |r|^2/2, Jacobian 1),
  Z = (pi/(2 beta))^{d/2} * Omega_d * int_0^inf r^{d-1} exp(-beta (lambda/r + r^2/2)) dr,
  a one-dimensional radial integral done here by adaptive quadrature.

Per-particle results are in the trap's natural units (energy unit of E above, k_B = 1).

>>> round(exact_free_energy_two_particles(1.0, 2).F, 6)
-0.686514
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

__all__ = [
    "ExactThermo",
    "coulomb_energy",
    "energy",
    "exact_free_energy_two_particles",
    "harmonic_energy",
    "harmonic_free_energy",
    "harmonic_mean_inverse_distance",
    "solid_angle",
]


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    # Static index lists of the pairs i < j: the diagonal never enters, so the gradient stays
    # finite (no sqrt(0)) and nothing needs masking.
    return np.triu_indices(n, k=1)


def coulomb_energy(x: jax.Array) -> jax.Array:
    """sum_{i<j} 1/|x_i - x_j| for one configuration ``x`` of shape (N, d); vmap for batches."""
    i, j = _pairs(x.shape[0])
    diff = x[i] - x[j]
    return jnp.sum(1.0 / jnp.sqrt(jnp.sum(diff * diff, axis=-1)))


def harmonic_energy(x: jax.Array) -> jax.Array:
    """sum_i |x_i|^2 for one configuration ``x`` of shape (N, d)."""
    return jnp.sum(x * x)


def energy(x: jax.Array) -> jax.Array:
    """Total trap energy E(X) of one configuration ``x`` (N, d); keeps the dtype of ``x``.

    >>> float(energy(jnp.array([[1.0, 0.0], [-1.0, 0.0]])))
    2.5
    """
    return coulomb_energy(x) + harmonic_energy(x)


def solid_angle(dim: int) -> float:
    """Surface of the unit sphere in ``dim`` dimensions: 2 (1D), 2 pi (2D), 4 pi (3D)."""
    return 2.0 * math.pi ** (dim / 2) / math.gamma(dim / 2)


def harmonic_free_energy(beta: float, n_particles: int, dim: int) -> float:
    """Total F_0 = -(N d / (2 beta)) ln(pi / beta): the trap with the Coulomb term switched off."""
    return -0.5 * n_particles * dim * math.log(math.pi / beta) / beta


def harmonic_mean_inverse_distance(beta: float, dim: int) -> float:
    """<1/|x_i - x_j|> for one pair in the pure harmonic trap (finite for d >= 2 only).

    x_i - x_j is Gaussian with variance 1/beta per component, so the mean is
    sqrt(beta) * Gamma((d-1)/2) / (sqrt(2) Gamma(d/2)).
    """
    if dim < 2:
        raise ValueError("<1/r> diverges logarithmically in one dimension")
    return math.sqrt(beta) * math.gamma((dim - 1) / 2) / (math.sqrt(2.0) * math.gamma(dim / 2))


class ExactThermo(NamedTuple):
    """Per-particle free energy F, internal energy E, entropy S (units of k_B) and mean Coulomb
    energy ``coulomb`` (the lambda-derivative of F at the given coupling)."""

    F: float
    E: float
    S: float
    coulomb: float


# Unit-coupling shape g(u) = 1/u + u^2/2 has its minimum g = 3/2 at u = 1. Its excess above the
# minimum is written in factored form so that nothing cancels near the peak (the integrands are
# evaluated relative to the peak value, which is what keeps beta = 10 ... 1e4 free of underflow).
_G_MIN = 1.5


def _g_excess(u: float) -> float:
    return (u - 1.0) ** 2 * (u + 2.0) / (2.0 * u)


def _radial_moments(b: float, dim: int, rtol: float) -> tuple[float, float, float]:
    """For the unit-coupling radial weight w(u) = u^{d-1} exp(-b (g(u) - 3/2)) on u > 0 return
    (ln int w du, <g - 3/2>_w, <1/u>_w).

    Both sides of the peak fall at least as fast as exp(-b (u - 1)^2 / 2), because
    g(1 + t) - 3/2 >= t^2 / 2 for t > -1, so the domain is cut where that bound is below e^-750
    relative; breakpoints at multiples of the peak width help the adaptive rule find the mass.
    """
    cut = math.sqrt(2.0 * 750.0 / b)
    lo, hi = max(0.0, 1.0 - cut), 1.0 + cut
    width = min(1.0 / math.sqrt(3.0 * b), 1.0)  # Laplace width at large b; O(1) otherwise
    pts = sorted(
        {1.0}
        | {1.0 + s * k * width for k in (0.5, 1, 2, 4, 8, 16, 32, 64) for s in (-1, 1)
           if lo < 1.0 + s * k * width < hi}
    )

    def w(u: float) -> float:
        if u <= 0.0:
            return 0.0
        return u ** (dim - 1) * math.exp(-b * _g_excess(u))

    def quad(f) -> float:
        val, err = integrate.quad(f, lo, hi, points=pts, epsabs=0.0, epsrel=rtol, limit=1000)
        return val

    z = quad(w)
    g_mean = quad(lambda u: w(u) * _g_excess(u)) / z
    inv_u = quad(lambda u: w(u) / u if u > 0.0 else 0.0) / z
    return math.log(z), g_mean, inv_u


def exact_free_energy_two_particles(
    beta: float, dim: int, coupling: float = 1.0, *, rtol: float = 1e-13
) -> ExactThermo:
    """Exact per-particle F, E, S and mean Coulomb energy of N = 2 at inverse temperature ``beta``.

    ``coupling`` multiplies the Coulomb term (1 is the trap itself, 0 the harmonic reference); the
    radial integral for coupling lambda maps onto the unit one by r = lambda^{1/3} u, so
    Z_lambda(beta) = (pi/(2 beta))^{d/2} Omega_d lambda^{d/3} I(beta lambda^{2/3}).
    E = d(beta F)/d(beta) comes from a second quadrature (<g>), not from finite differences.
    Works for d = 1, 2, 3, ...; accurate to about ``rtol`` relative in ln Z.
    """
    beta = float(beta)
    lam = float(coupling)
    if beta <= 0.0 or lam < 0.0 or dim < 1:
        raise ValueError(f"need beta > 0, coupling >= 0, dim >= 1 (got {beta}, {lam}, {dim})")
    log_z_com = 0.5 * dim * math.log(math.pi / (2.0 * beta))
    if lam == 0.0:
        log_z_rel = 0.5 * dim * math.log(2.0 * math.pi / beta)
        e_rel = 0.5 * dim / beta
        coul = harmonic_mean_inverse_distance(beta, dim) if dim >= 2 else math.inf
    else:
        scale = lam ** (2.0 / 3.0)
        b = beta * scale
        log_i, g_excess_mean, inv_u = _radial_moments(b, dim, rtol)
        log_z_rel = (
            math.log(solid_angle(dim)) + (dim / 3.0) * math.log(lam) - b * _G_MIN + log_i
        )
        e_rel = scale * (_G_MIN + g_excess_mean)
        coul = inv_u / lam ** (1.0 / 3.0)
    f_total = -(log_z_com + log_z_rel) / beta
    e_total = 0.5 * dim / beta + e_rel
    return ExactThermo(
        F=f_total / 2, E=e_total / 2, S=beta * (e_total - f_total) / 2, coulomb=coul / 2
    )
