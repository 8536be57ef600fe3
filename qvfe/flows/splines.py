"""Rational-quadratic splines: monotone bijections of a circle or an interval with exact log slope.

One job: the scalar monotone maps of the proton flows (``qvfe.flows.particles``): the circular
spline moves one coordinate of the coupling flow, the radial spline the distance of the radial
push flow.
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

The *radial* spline maps [0, R] onto itself with the slope at R fixed to 1 and the slope at 0
free (the K raw slopes are those of knots 0 .. K−1): a radial map r -> R(r) of the distance to a
centre that joins the identity beyond R with a continuous Jacobian, and whose slope at the centre
may go to zero (a hole) or grow large (a peak) without limit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["circular_spline", "n_spline_params", "radial_spline"]

_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3
_SLOPE_OFFSET = float(np.log(np.expm1(1.0 - _MIN_SLOPE)))  # softplus(offset) + min = 1


def n_spline_params(bins: int) -> int:
    """Unconstrained parameters of one spline (circular or radial) with ``bins`` bins."""
    return 3 * bins


def _knots(raw: jax.Array, period: float, end_slope: float | None = None
           ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Knot positions and slopes; the last slope is the first one's (circular) or ``end_slope``."""
    bins = raw.shape[-1] // 3
    raw_w, raw_h, raw_d = raw[:bins], raw[bins:2 * bins], raw[2 * bins:]

    def positions(r):
        width = _MIN_BIN + (1.0 - bins * _MIN_BIN) * jax.nn.softmax(r)
        edges = jnp.concatenate([jnp.zeros(1, raw.dtype), jnp.cumsum(width)])
        return period * edges.at[-1].set(1.0)  # exact end point: the map closes on itself

    slopes = _MIN_SLOPE + jax.nn.softplus(raw_d + _SLOPE_OFFSET)
    last = slopes[:1] if end_slope is None else jnp.full((1,), end_slope, raw.dtype)
    return positions(raw_w), positions(raw_h), jnp.concatenate([slopes, last])


def circular_spline(x: jax.Array, raw: jax.Array, period: float,
                    inverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """y = spline(x) (or its inverse) for a scalar ``x`` in [0, ``period``), and ln |dy/dx|.

    ``raw`` holds the ``3K`` unconstrained parameters (see the module docstring). Inputs outside
    [0, period) are wrapped first; outputs lie in [0, period].
    """
    return _rational_quadratic(jnp.mod(x, period), *_knots(raw, period), inverse)


def radial_spline(r: jax.Array, raw: jax.Array, radius: float,
                  inverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """R(r) (or its inverse) for a scalar ``r`` in [0, ``radius``], and ln |dR/dr|: a monotone map
    of [0, radius] onto itself with slope 1 at ``radius`` (module docstring). ``r`` must be
    ≥ 0; values above ``radius`` are evaluated at ``radius`` (finite values and derivatives for a
    caller that masks them)."""
    r = jnp.where(r > radius, radius, r)
    return _rational_quadratic(r, *_knots(raw, radius, end_slope=1.0), inverse)


def _rational_quadratic(x: jax.Array, xk: jax.Array, yk: jax.Array, dk: jax.Array,
                        inverse: bool) -> tuple[jax.Array, jax.Array]:
    """The spline through knots (xk, yk) with slopes dk at ``x`` (forward) or its inverse at
    ``x`` (then ``x`` is a y), with the log slope of the map evaluated."""
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
