"""Exact canonical thermodynamics of non-interacting fermions on a finite list of levels.

For N fermions of one species on levels ε_1..ε_M at temperature T the canonical partition function
is the elementary symmetric polynomial Z_N = e_N(x_1..x_M) of the Boltzmann factors x_k = e^{-βε_k}:
each occupation pattern with N ones contributes Π_{k occupied} x_k. It is computed by the recursion
over levels e_r(x_1..x_k) = e_r(x_1..x_{k-1}) + x_k e_{r-1}(x_1..x_{k-1}), carried out in log space
(log-sum-exp) on energies shifted by the lowest level, so nothing overflows or underflows even for
β·(level spacing) ~ 1e3 and beyond.

This is the reference for the ideal gas (interaction switched off) and the source of the exact
conditionals that initialise the occupation model (``qvfe.autoregressive.occupations``), which uses
the suffix table from ``log_esp_suffix``.

JAX functions here are pure and differentiable in the energies and T; the particle numbers are
Python ints (static under ``jit``). Nothing here calls ``jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "log_esp",
    "log_esp_suffix",
    "log_partition",
    "canonical_thermo",
    "spinful_thermo",
    "occupation_numbers",
    "boltzmann_log_prob",
    "ground_state_energy",
]

# Stands in for ln 0 inside the JAX recursion. A finite value keeps gradients finite: with -inf,
# logaddexp(-inf, -inf) has NaN derivatives which would poison ∂ ln Z even though those entries
# carry zero weight. Any real entry is > -1e30 by hundreds of orders of magnitude in e^(.), so the
# impossible entries contribute exactly 0 after exponentiation.
_LOG_ZERO = -1e30


def _check_n(n: int, n_levels: int) -> None:
    if not 0 <= n <= n_levels:
        raise ValueError(f"particle number must be in [0, {n_levels}] for {n_levels} levels, "
                         f"got {n}")


def _check_temperature(T: ArrayLike) -> None:
    """T > 0 where it is a concrete number (a traced T, under jit or grad, is the caller's)."""
    if isinstance(T, jax.core.Tracer):
        return
    t = np.asarray(T)
    if not np.all(t > 0):  # T = 0 gave NaN, T < 0 an inverted "negative-temperature" gas
        raise ValueError(f"temperature must be > 0, got {T}")


def log_esp(log_x: ArrayLike, n_max: int) -> jax.Array:
    """ln e_r(x_1..x_M) for r = 0..n_max, shape (n_max+1,), from ln x (shape (M,)); differentiable.

    Entries with r > M (no pattern) hold a huge negative number (~ -1e30) instead of -inf.
    """
    log_x = jnp.asarray(log_x)
    dtype = jnp.result_type(log_x.dtype, float)
    init = jnp.full((n_max + 1,), _LOG_ZERO, dtype=dtype).at[0].set(0.0)

    def add_level(log_e, lx):
        # e_r ← e_r + x e_{r-1}, all r at once (uses the previous row only, like a 0/1 knapsack).
        grown = jnp.logaddexp(log_e[1:], lx + log_e[:-1])
        return jnp.concatenate([log_e[:1], grown]), None

    log_e, _ = jax.lax.scan(add_level, init, log_x.astype(dtype))
    return log_e


def log_esp_suffix(log_x: np.ndarray, n_max: int) -> np.ndarray:
    """Suffix table S[k, r] = ln e_r(x_k..x_{M-1}) (0-based k), shape (M+1, n_max+1), numpy float64.

    Row M is the empty suffix: [0, -inf, ...]. Impossible entries (r > M-k) are -inf. Host-side and
    float64 on purpose: the occupation model precomputes its exact conditionals from it once.
    """
    lx = np.asarray(log_x, dtype=np.float64)
    m = lx.shape[0]
    table = np.full((m + 1, n_max + 1), -np.inf)
    table[m, 0] = 0.0
    with np.errstate(invalid="ignore"):  # -inf + -inf is fine (-inf); silence nothing else
        for k in range(m - 1, -1, -1):
            table[k, 0] = 0.0
            table[k, 1:] = np.logaddexp(table[k + 1, 1:], lx[k] + table[k + 1, :-1])
    return table


def _shifted(energies: ArrayLike, beta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(ln x_k relative to the lowest level, lowest level). ε_min is treated as a constant shift."""
    eps = jnp.asarray(energies)
    eps_min = jax.lax.stop_gradient(jnp.min(eps))
    return -beta * (eps - eps_min), eps_min


def log_partition(energies: ArrayLike, n: int, T: ArrayLike) -> jax.Array:
    """ln Z_N for ``n`` fermions on ``energies`` (M,) at temperature ``T`` > 0 (Hartree, k_B=1)."""
    eps = jnp.asarray(energies)
    _check_n(n, eps.shape[0])
    _check_temperature(T)
    beta = 1.0 / jnp.asarray(T, dtype=jnp.result_type(eps.dtype, float))
    lx, eps_min = _shifted(eps, beta)
    return log_esp(lx, n)[n] - beta * n * eps_min


def canonical_thermo(energies: ArrayLike, n: int, T: ArrayLike) -> dict[str, jax.Array]:
    """Exact canonical F, E, S (S in units of k_B), ln Z for ``n`` fermions of one species.

    E = -∂ ln Z/∂β by automatic differentiation through the log-space recursion; S = ln Z + βE.
    Both are evaluated on the energies shifted by the lowest level, so at large β the O(βE) parts
    cancel analytically rather than in floating point. Totals, not per particle.
    """
    eps = jnp.asarray(energies)
    _check_n(n, eps.shape[0])
    _check_temperature(T)
    dtype = jnp.result_type(eps.dtype, float)
    beta = 1.0 / jnp.asarray(T, dtype=dtype)
    eps_min = jnp.min(eps)

    def log_z_shifted(b):
        return log_esp(-b * (eps - eps_min), n)[n]

    log_z_s, dlog_z = jax.value_and_grad(log_z_shifted)(beta)
    e_shifted = -dlog_z  # ⟨E⟩ - n ε_min
    energy = e_shifted + n * eps_min
    entropy = log_z_s + beta * e_shifted
    log_z = log_z_s - beta * n * eps_min
    return {"F": -log_z / beta, "E": energy, "S": entropy, "lnZ": log_z}


def spinful_thermo(
    energies: ArrayLike,
    n_up: int,
    n_down: int,
    T: ArrayLike,
    energies_down: ArrayLike | None = None,
) -> dict[str, jax.Array]:
    """F, E, S, ln Z (totals) of two independent species with fixed (N↑, N↓) on the same levels.

    The species are independent in the ideal gas, so Z = Z_{N↑} Z_{N↓} and F, E, S, ln Z add.
    ``energies_down`` gives the down species its own levels (default: the same as up).
    """
    up = canonical_thermo(energies, n_up, T)
    down = canonical_thermo(energies if energies_down is None else energies_down, n_down, T)
    return {key: up[key] + down[key] for key in up}


def occupation_numbers(energies: ArrayLike, n: int, T: ArrayLike) -> jax.Array:
    """Canonical ⟨n_k⟩ for ``n`` fermions, shape (M,); sums to ``n``.

    ⟨n_k⟩ = ∂ ln Z_N / ∂ ln x_k (each pattern's weight is Π x_k over its occupied levels).
    """
    eps = jnp.asarray(energies)
    _check_n(n, eps.shape[0])
    _check_temperature(T)
    beta = 1.0 / jnp.asarray(T, dtype=jnp.result_type(eps.dtype, float))
    lx, _ = _shifted(eps, beta)
    return jax.grad(lambda v: log_esp(v, n)[n])(lx)


def boltzmann_log_prob(occ: ArrayLike, energies: ArrayLike, n: int, T: ArrayLike) -> jax.Array:
    """ln p(occ) = -β Σ_k occ_k ε_k - ln Z_N of the canonical ideal gas; occ (..., M) of 0/1.

    Patterns with a particle number other than ``n`` get -inf.
    """
    occ = jnp.asarray(occ)
    eps = jnp.asarray(energies)
    _check_n(n, eps.shape[-1])
    _check_temperature(T)
    beta = 1.0 / jnp.asarray(T, dtype=jnp.result_type(eps.dtype, float))
    eps_min = jnp.min(eps)
    log_z_s = log_esp(-beta * (eps - eps_min), n)[n]
    log_p = -beta * jnp.sum(occ * (eps - eps_min), axis=-1) - log_z_s
    return jnp.where(jnp.sum(occ, axis=-1) == n, log_p, -jnp.inf)


def ground_state_energy(energies: ArrayLike, n: int) -> jax.Array:
    """T = 0 limit of E: the sum of the ``n`` lowest levels."""
    eps = jnp.asarray(energies)
    _check_n(n, eps.shape[0])
    return jnp.sum(jnp.sort(eps)[:n])
