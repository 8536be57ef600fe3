"""Circular rational-quadratic splines: monotone bijections of the circle [0, L) with exact log-det.

One job: the element-wise transform of the periodic coupling flow (``qvfe.flows.particles``).
A rational-quadratic spline (Durkan et al., NeurIPS 2019) with K bins maps [0, L) onto itself
through knots (x_k, y_k), x_0 = y_0 = 0, x_K = y_K = L, with positive slopes d_k at the knots. It is
*circular* (Rezende et al., ICML 2020) when d_K = d_0: then the map, extended by
y(x + L) = y(x) + L, is a diffeomorphism of the circle, so a density on the torus stays continuous
across the box edge.

Written here rather than taken from a library: TensorFlow Probability's JAX substrate (and distrax,
which needs it) does not import on jax 0.10, and flowjax's spline has no circular boundary and
holds its parameters as module fields, while the coupling flow needs one spline per particle with
parameters produced by a network.

Parameters are unconstrained ``(..., 3K)`` arrays: K bin widths and K heights (softmax, each bin at
least ``min_bin`` of L) and K knot slopes (softplus + ``min_slope``, knot K sharing knot 0's). At
zero they give equal bins and unit slopes: the identity.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["circular_spline", "n_spline_params"]

_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3
_SLOPE_OFFSET = float(np.log(np.expm1(1.0 - _MIN_SLOPE)))  # softplus(offset) + min = 1


def n_spline_params(bins: int) -> int:
    """Unconstrained parameters of one circular spline with ``bins`` bins."""
    return 3 * bins


def _knots(raw: jax.Array, period: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    bins = raw.shape[-1] // 3
    raw_w, raw_h, raw_d = raw[:bins], raw[bins:2 * bins], raw[2 * bins:]

    def positions(r):
        width = _MIN_BIN + (1.0 - bins * _MIN_BIN) * jax.nn.softmax(r)
        edges = jnp.concatenate([jnp.zeros(1, raw.dtype), jnp.cumsum(width)])
        return period * edges.at[-1].set(1.0)  # exact end point: the map closes on itself

    slopes = _MIN_SLOPE + jax.nn.softplus(raw_d + _SLOPE_OFFSET)
    return positions(raw_w), positions(raw_h), jnp.concatenate([slopes, slopes[:1]])


def circular_spline(x: jax.Array, raw: jax.Array, period: float,
                    inverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """y = spline(x) (or its inverse) for a scalar ``x`` in [0, ``period``), and ln |dy/dx|.

    ``raw`` holds the ``3K`` unconstrained parameters (see the module docstring). Inputs outside
    [0, period) are wrapped first; outputs lie in [0, period].
    """
    xk, yk, dk = _knots(raw, period)
    x = jnp.mod(x, period)
    grid = yk if inverse else xk
    k = jnp.clip(jnp.searchsorted(grid, x, side="right") - 1, 0, grid.shape[0] - 2)
    x0, x1, y0, y1 = xk[k], xk[k + 1], yk[k], yk[k + 1]
    d0, d1 = dk[k], dk[k + 1]
    w, h = x1 - x0, y1 - y0
    s = h / w
    if inverse:
        # the forward map's rational quadratic solved for xi (the stable root of Durkan et al.)
        dy = x - y0
        a = h * (s - d0) + dy * (d1 + d0 - 2 * s)
        b = h * d0 - dy * (d1 + d0 - 2 * s)
        c = -s * dy
        xi = (2 * c) / (-b - jnp.sqrt(jnp.maximum(b * b - 4 * a * c, 0.0)))
        xi = jnp.clip(xi, 0.0, 1.0)
        out = x0 + xi * w
    else:
        xi = (x - x0) / w
        out = y0 + h * (s * xi**2 + d0 * xi * (1 - xi)) / (s + (d1 + d0 - 2 * s) * xi * (1 - xi))
    den = s + (d1 + d0 - 2 * s) * xi * (1 - xi)
    log_slope = (2 * jnp.log(s) + jnp.log(d1 * xi**2 + 2 * s * xi * (1 - xi) + d0 * (1 - xi)**2)
                 - 2 * jnp.log(den))
    return out, (-log_slope if inverse else log_slope)
