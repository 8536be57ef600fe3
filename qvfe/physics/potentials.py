"""Potential energies of particle configurations in open space (no periodic images).

One job: pure functions ``x (n, d) -> scalar`` for one sample, and factories that close over the
constants so that ``SquareRootFlowWavefunction.local_energy`` gets a one-argument potential. The
periodic (Ewald) interaction lives elsewhere.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "harmonic_trap",
    "coulomb_open",
    "coulomb_charges",
    "make_quantum_dot_potential",
]


def harmonic_trap(x: jax.Array, omega: float) -> jax.Array:
    """``omega^2 / 2 * sum_i |x_i|^2`` for x of shape (n, d)."""
    return 0.5 * omega**2 * jnp.sum(x**2)


def _pair_distances(x: jax.Array) -> tuple[jax.Array, np.ndarray, np.ndarray]:
    """Distances of the pairs i < j only. Leaving the diagonal out (rather than masking it) keeps
    sqrt away from 0, whose derivative would turn gradients and Laplacians into NaN."""
    i, j = np.triu_indices(x.shape[0], k=1)
    diff = x[i] - x[j]
    return jnp.sqrt(jnp.sum(diff**2, axis=-1)), i, j


def coulomb_open(x: jax.Array, coupling: float = 1.0) -> jax.Array:
    """``coupling * sum_{i<j} 1/|x_i - x_j|`` for equal unit charges; 0 for a single particle."""
    r, _, _ = _pair_distances(x)
    return coupling * jnp.sum(1.0 / r)


def coulomb_charges(x: jax.Array, charges: jax.Array) -> jax.Array:
    """``sum_{i<j} q_i q_j / |x_i - x_j|`` for charges ``q`` of shape (n,) (e.g. protons +1,
    electrons -1 for hydrogen); 0 for a single particle."""
    r, i, j = _pair_distances(x)
    q = jnp.asarray(charges)
    return jnp.sum(q[i] * q[j] / r)


def make_quantum_dot_potential(omega: float, coupling: float) -> Callable[[jax.Array], jax.Array]:
    """``V(x) = omega^2/2 sum_i r_i^2 + coupling sum_{i<j} 1/r_ij`` (DESIGN.md §2, quantum_dot)."""

    def potential(x: jax.Array) -> jax.Array:
        v = harmonic_trap(x, omega)
        if coupling != 0.0 and x.shape[0] > 1:
            v = v + coulomb_open(x, coupling)
        return v

    return potential
