"""The Coulomb trap's energy and its exact N = 2 thermodynamics, checked against evaluations that
share none of the centre-of-mass algebra (brute quadrature of the full integrand, i.i.d. Monte
Carlo) and against the small- and large-beta limits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from qvfe.physics import coulomb_trap as ct


def test_energy_matches_double_loop_and_is_permutation_invariant():
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3), dtype=jnp.float64)
    xn = np.asarray(x)
    ref = sum(
        1.0 / np.linalg.norm(xn[i] - xn[j]) for i in range(5) for j in range(i + 1, 5)
    ) + np.sum(xn**2)
    # one jit per check: eager mode would compile every primitive separately (slow on shared CPUs)
    batch = jax.jit(jax.vmap(ct.energy))(jnp.stack([x, x[::-1], 2 * x]))
    assert batch.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(batch[:2]), [ref, ref], rtol=1e-14)
    assert np.all(np.isfinite(np.asarray(jax.jit(jax.grad(ct.energy))(x))))


def test_exact_1d_against_brute_double_integral():
    """d = 1: integrate exp(-beta E(x1, x2)) over the plane directly (no centre-of-mass split,
    no solid angle), splitting the inner integral at the coincidence line x2 = x1."""
    beta = 1.0

    def inner(x1):
        f = lambda x2: math.exp(-beta * (1.0 / abs(x1 - x2) + x1 * x1 + x2 * x2))  # noqa: E731
        a = integrate.quad(f, -np.inf, x1, epsabs=0, epsrel=1e-12, limit=200)[0]
        b = integrate.quad(f, x1, np.inf, epsabs=0, epsrel=1e-12, limit=200)[0]
        return a + b

    z = integrate.quad(inner, -np.inf, np.inf, epsabs=0, epsrel=1e-11, limit=200)[0]
    f_brute = -math.log(z) / beta / 2
    np.testing.assert_allclose(ct.exact_free_energy_two_particles(beta, 1).F, f_brute, rtol=1e-9)


def test_exact_2d_against_four_dimensional_grid():
    """d = 2: a trapezoid grid over all four coordinates; e^{-1/r} is smooth but slowly resolved, so
    at h = 0.2 the grid is good to ~3e-5 in ln Z (checked against h = 0.15: 5e-6)."""
    beta, h = 1.0, 0.2
    g = np.arange(-5.6, 5.6 + h / 2, h)
    p = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    q2 = np.sum(p**2, -1)
    total = 0.0
    for k in range(0, len(p), 256):
        r = np.linalg.norm(p[k : k + 256, None, :] - p[None, :, :], axis=-1)
        with np.errstate(divide="ignore"):
            e = 1.0 / r + q2[k : k + 256, None] + q2[None, :]
        total += np.exp(-beta * e).sum()  # r = 0 gives e = inf, weight 0
    ln_z_grid = math.log(total * h**4)
    ln_z = -2 * beta * ct.exact_free_energy_two_particles(beta, 2).F
    assert abs(ln_z - ln_z_grid) < 1e-4


@pytest.mark.parametrize("dim", [2, 3])
def test_exact_against_iid_monte_carlo(dim):
    """Z = Z_0 <exp(-beta V_C)>_0 with exact Gaussian samples of the harmonic trap; also <E>."""
    beta, n = 1.0, 1_000_000
    rng = np.random.default_rng(1)
    x = rng.normal(scale=math.sqrt(1 / (2 * beta)), size=(n, 2, dim))
    v = 1.0 / np.linalg.norm(x[:, 0] - x[:, 1], axis=-1)
    w = np.exp(-beta * v)
    ln_ratio, err = math.log(w.mean()), w.std() / (math.sqrt(n) * w.mean())
    f_mc = (ct.harmonic_free_energy(beta, 2, dim) - ln_ratio / beta) / 2
    exact = ct.exact_free_energy_two_particles(beta, dim)
    assert abs(exact.F - f_mc) < 4 * err / beta / 2
    e_tot = v + np.sum(x**2, axis=(1, 2))
    e_mc = np.sum(w * e_tot) / np.sum(w) / 2
    e_err = np.sqrt(np.sum(w**2 * (e_tot / 2 - e_mc) ** 2)) / np.sum(w)
    assert abs(exact.E - e_mc) < 4 * e_err


@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("beta", [0.3, 1.0, 10.0, 100.0])
def test_energy_and_coulomb_are_derivatives_of_free_energy(beta, dim):
    """E = d(beta F)/d beta and <V_C> = dF/d lambda, by central differences of the quadrature."""
    exact = ct.exact_free_energy_two_particles(beta, dim)
    h = 1e-5 * beta
    bf = lambda b: b * ct.exact_free_energy_two_particles(b, dim).F  # noqa: E731
    np.testing.assert_allclose((bf(beta + h) - bf(beta - h)) / (2 * h), exact.E, rtol=1e-7)
    fl = lambda lam: ct.exact_free_energy_two_particles(beta, dim, lam).F  # noqa: E731
    np.testing.assert_allclose((fl(1 + 1e-5) - fl(1 - 1e-5)) / 2e-5, exact.coulomb, rtol=1e-7)
    np.testing.assert_allclose(exact.S, beta * (exact.E - exact.F), rtol=1e-12)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_low_temperature_limit(dim):
    """beta -> inf: the pair sits at r = 1 (E_min = 3/2); the centre of mass (d modes) and the
    radial stretch (1 mode) are harmonic, rotations cost nothing: E_tot = 3/2 + (d+1)/(2 beta)."""
    for beta in (1e3, 1e4):
        exact = ct.exact_free_energy_two_particles(beta, dim)
        assert math.isfinite(exact.F)
        assert abs(2 * exact.E - (1.5 + (dim + 1) / (2 * beta))) < 5.0 / beta**2


@pytest.mark.parametrize("dim", [2, 3])
def test_high_temperature_limit(dim):
    """beta -> 0: the Coulomb term is a perturbation, F - F_0 -> <1/r>_0 (first-order shift)."""
    for beta, tol in ((1e-2, 2e-2), (1e-4, 2e-3)):
        exact = ct.exact_free_energy_two_particles(beta, dim)
        shift = 2 * exact.F - ct.harmonic_free_energy(beta, 2, dim)
        first_order = ct.harmonic_mean_inverse_distance(beta, dim)
        assert abs(shift / first_order - 1) < tol
        assert abs(2 * exact.coulomb / first_order - 1) < tol


def test_zero_coupling_is_harmonic_and_coupling_scaling():
    beta, dim = 2.0, 2
    zero = ct.exact_free_energy_two_particles(beta, dim, 0.0)
    np.testing.assert_allclose(2 * zero.F, ct.harmonic_free_energy(beta, 2, dim), rtol=1e-14)
    np.testing.assert_allclose(2 * zero.E, 2 * dim / (2 * beta), rtol=1e-14)
    tiny = ct.exact_free_energy_two_particles(beta, dim, 1e-9)
    np.testing.assert_allclose(tiny.F, zero.F, rtol=1e-8)
    np.testing.assert_allclose(tiny.coulomb, zero.coulomb, rtol=1e-3)
