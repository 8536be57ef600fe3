"""Gradient estimators of the variational free energy from per-sample quantities (DESIGN.md §3).

Both use batch means as baselines, which leaves them unbiased for the finite batch up to O(1/B)
(the baseline is correlated with each sample); the per-sample log-derivatives come with a leading
batch axis on every leaf of a parameter pytree.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

PyTree = Any


def score_function_gradient(log_prob_jacobian: PyTree, f: jax.Array) -> PyTree:
    """∇_φ E_{n∼p_φ}[f] + (the ∇_φ of T ln p inside f) = E[∇_φ ln p_φ(n) (f(n) − f̄)].

    For f = T ln p_φ + E_loc this is ∇_φ F: the term T E[∇ ln p] that the direct dependence of
    T ln p on φ adds has zero mean (Σ_n ∇p_n = 0), so only the score term remains.
    """
    df = f - jnp.mean(f)
    b = f.shape[0]
    return jax.tree.map(lambda o: jnp.tensordot(df, o, axes=1) / b, log_prob_jacobian)


def covariance_gradient(log_psi_jacobian: PyTree, local_energy: jax.Array) -> PyTree:
    """∇_θ E_{X∼|ψ|²}[E_loc] = 2 Re E[(∇_θ ln ψ)* (E_loc − Ē)] for real θ.

    ``log_psi_jacobian`` leaves are complex, O = ∇ Re ln ψ + i ∇ Im ln ψ; with E_loc − Ē = c + i d,
    Re[(a − i b)(c + i d)] = a c + b d. Ē is the complex batch mean: the imaginary part has zero
    mean under |ψ|² but not in a batch, and without its baseline the Im O · Im E_loc term kept
    its full noise and left the estimate outside the row space of the centred O's (the part SR's
    max_norm cannot see).
    """
    de = local_energy - jnp.mean(local_energy)
    c, d = jnp.real(de), jnp.imag(de)
    b = local_energy.shape[0]

    def leaf(o):
        return 2.0 * (jnp.tensordot(c, jnp.real(o), axes=1)
                      + jnp.tensordot(d, jnp.imag(o), axes=1)) / b

    return jax.tree.map(leaf, log_psi_jacobian)
