"""Robust clipping of local energies, for gradient estimators only.

One job: :func:`clip_local_energy` pulls outlying local energies (from nodes of ψ, particle
coalescence) back to ``median ± width · MAD`` with MAD the mean absolute deviation from the median,
so that one sample cannot dominate a gradient step. Use the clipped values only as the
coefficients of score-function gradients; reported estimators (F, E, error bars) must use the
unclipped local energies, or they become biased.

A batch-level gradient-norm clip is ``optax.clip_by_global_norm(max_norm)``: chain it, there is no
qvfe copy of it.

Example::

    >>> import jax.numpy as jnp
    >>> from qvfe.optim import clip_local_energy
    >>> clip_local_energy(jnp.array([0., 1., 2., 3., 100.]), width=1.0)
    Array([ 0. ,  1. ,  2. ,  3. , 22.4], dtype=float64)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _clip_real(x: Array, width: float) -> Array:
    # The bounds are batch statistics, not functions of one sample: no gradient through them.
    centre = jnp.median(x)
    spread = jnp.mean(jnp.abs(x - centre))
    lo = jax.lax.stop_gradient(centre - width * spread)
    hi = jax.lax.stop_gradient(centre + width * spread)
    return jnp.clip(x, lo, hi)


def clip_local_energy(e_loc: Array, width: float = 5.0) -> Array:
    """Clip ``e_loc`` to ``median ± width · mean|e_loc − median|`` over all elements (the batch).

    Complex local energies (complex ψ) have their real and imaginary parts clipped separately,
    each around its own median. Returns an array of the same shape and dtype. Values inside the
    window are returned unchanged, so a batch without outliers passes through exactly.
    """
    if not width > 0:
        raise ValueError(f"clip_local_energy: width must be > 0, got {width}")
    e_loc = jnp.asarray(e_loc)
    if jnp.iscomplexobj(e_loc):
        return jax.lax.complex(_clip_real(e_loc.real, width), _clip_real(e_loc.imag, width))
    return _clip_real(e_loc, width)
