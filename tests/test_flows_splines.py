"""Rational-quadratic splines: identity at zero, bijections of the circle and of [0, ρ], exact
log slope."""

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.splines import circular_spline, n_spline_params, radial_spline

L = 2.5
BINS = 5
RAW = 1.5 * jax.random.normal(jax.random.PRNGKey(0), (n_spline_params(BINS),))
X = jnp.concatenate([jnp.linspace(0.0, L, 401)[:-1],
                     L * jax.random.uniform(jax.random.PRNGKey(1), (200,))])


def fwd(x, raw=RAW):
    return circular_spline(x, raw, L)


def test_zero_parameters_are_the_identity():
    y, ld = jax.vmap(lambda x: circular_spline(x, jnp.zeros(3 * BINS), L))(X)
    np.testing.assert_allclose(np.asarray(y), np.asarray(X), atol=1e-12)
    np.testing.assert_allclose(np.asarray(ld), 0.0, atol=1e-12)


def test_inverse_undoes_forward_and_negates_the_log_slope():
    y, ld = jax.vmap(fwd)(X)
    x_back, ld_inv = jax.vmap(lambda v: circular_spline(v, RAW, L, inverse=True))(y)
    np.testing.assert_allclose(np.asarray(x_back), np.asarray(X), atol=1e-10)
    np.testing.assert_allclose(np.asarray(ld_inv), -np.asarray(ld), atol=1e-10)
    assert float(jnp.min(y)) >= 0.0 and float(jnp.max(y)) <= L


def test_log_slope_is_the_derivative_and_the_map_is_monotone():
    _, ld = jax.vmap(fwd)(X)
    slope = jax.vmap(jax.grad(lambda x: fwd(x)[0]))(X)
    assert float(jnp.min(slope)) > 0.0
    np.testing.assert_allclose(np.asarray(ld), np.log(np.asarray(slope)), atol=1e-10)
    # far from the raw parameters' identity: the test would notice a wrong slope
    assert float(jnp.max(jnp.abs(ld))) > 0.5


def test_circular_the_map_closes_with_the_same_slope_at_both_ends():
    eps = 1e-9
    y0, ld0 = fwd(jnp.asarray(0.0))
    y1, ld1 = fwd(jnp.asarray(L - eps))
    assert abs(float(y0)) < 1e-12 and abs(float(y1) - L) < 1e-6
    np.testing.assert_allclose(float(ld0), float(ld1), atol=1e-6)
    # wrapping: x and x + L give the same point
    np.testing.assert_allclose(np.asarray(jax.vmap(fwd)(X + L)[0]),
                               np.asarray(jax.vmap(fwd)(X)[0]), atol=1e-10)


def test_parameter_gradient_matches_finite_differences():
    x = jnp.asarray(0.37 * L)
    g = jax.grad(lambda r: circular_spline(x, r, L)[0] + circular_spline(x, r, L)[1])(RAW)
    eps = 1e-6
    for i in (0, BINS + 2, 2 * BINS + 1, 3 * BINS - 1):
        e = jnp.zeros_like(RAW).at[i].set(eps)
        f = lambda r: float(sum(circular_spline(x, r, L)))  # noqa: E731
        fd = (f(RAW + e) - f(RAW - e)) / (2 * eps)
        np.testing.assert_allclose(float(g[i]), fd, rtol=1e-5, atol=1e-8)


RHO = 1.7
R_GRID = jnp.concatenate([jnp.linspace(0.0, RHO, 301), RHO * jax.random.uniform(
    jax.random.PRNGKey(2), (200,))])


def test_radial_spline_maps_the_interval_onto_itself_with_unit_end_slope():
    """R(0) = 0, R(ρ) = ρ with R'(ρ) = 1 whatever the parameters (the identity beyond ρ joins
    with a continuous slope), R'(0) free; monotone, exact log slope, inverse; zero is the
    identity."""
    fwd_r = jax.vmap(lambda r: radial_spline(r, RAW, RHO))
    y, ld = fwd_r(R_GRID)
    slope = jax.vmap(jax.grad(lambda r: radial_spline(r, RAW, RHO)[0]))(R_GRID)
    assert float(jnp.min(slope)) > 0.0
    np.testing.assert_allclose(np.asarray(ld), np.log(np.asarray(slope)), atol=1e-10)
    end, end_ld = radial_spline(jnp.asarray(RHO), RAW, RHO)
    start, start_ld = radial_spline(jnp.asarray(0.0), RAW, RHO)
    assert abs(float(end) - RHO) < 1e-12 and abs(float(end_ld)) < 1e-10
    assert float(start) == 0.0 and abs(float(start_ld)) > 0.1  # the centre's slope is free
    back, ld_inv = jax.vmap(lambda v: radial_spline(v, RAW, RHO, inverse=True))(y)
    np.testing.assert_allclose(np.asarray(back), np.asarray(R_GRID), atol=1e-10)
    np.testing.assert_allclose(np.asarray(ld_inv), -np.asarray(ld), atol=1e-10)
    y0, ld0 = jax.vmap(lambda r: radial_spline(r, jnp.zeros(3 * BINS), RHO))(R_GRID)
    np.testing.assert_allclose(np.asarray(y0), np.asarray(R_GRID), atol=1e-12)
    np.testing.assert_allclose(np.asarray(ld0), 0.0, atol=1e-12)
