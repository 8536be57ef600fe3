"""The Ising energy and Kaufman's exact partition function against enumeration and Onsager."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from qvfe.physics import ising

BETAS = [0.1, 0.3, 0.44, 0.6, 1.0]  # both sides of β_c ≈ 0.4407


def test_bonds_cover_the_torus_twice_per_site():
    for L in (2, 3, 4, 5):
        b = ising.bonds(L)
        assert b.shape == (2 * L * L, 2)
        # every site ends 4 bonds (coordination number of the square lattice)
        assert np.all(np.bincount(b.reshape(-1), minlength=L * L) == 4)


def test_bonds_match_netket_square_graph():
    x64 = jax.config.jax_enable_x64
    import netket as nk

    jax.config.update("jax_enable_x64", x64)
    for L in (3, 4, 6):
        ours = {tuple(sorted(e)) for e in ising.bonds(L).tolist()}
        theirs = {tuple(sorted(e)) for e in nk.graph.Square(L, pbc=True).edges()}
        assert ours == theirs


def test_energy_matches_explicit_bond_sum():
    rng = np.random.default_rng(0)
    for L in (2, 3, 4, 6):
        spins = rng.choice([-1.0, 1.0], size=(7, L * L))
        b = ising.bonds(L)
        ref = -0.7 * np.sum(spins[:, b[:, 0]] * spins[:, b[:, 1]], axis=1)
        got = jax.jit(ising.energy, static_argnums=1)(jnp.asarray(spins), L, 0.7)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_energy_extremes_and_batch_shape():
    L = 4
    up = jnp.ones((L * L,))
    checker = jnp.asarray([(-1.0) ** (i + j) for i in range(L) for j in range(L)])
    assert float(ising.energy(up, L)) == -2 * L * L
    assert float(ising.energy(checker, L)) == 2 * L * L
    assert ising.energy(jnp.ones((3, 5, L * L)), L).shape == (3, 5)


@pytest.mark.parametrize("L", [2, 3, 4])
@pytest.mark.parametrize("beta", BETAS)
def test_kaufman_matches_enumeration(L, beta):
    lz_enum, e_enum = ising.log_z_enumerate(L, beta)
    assert ising.log_z(L, beta) == pytest.approx(lz_enum, rel=1e-10)
    assert ising.energy_per_site(L, beta) == pytest.approx(e_enum, rel=1e-10, abs=1e-12)


def test_kaufman_at_the_critical_point():
    # γ₀ = 0 exactly: Z₄ = 0 and the derivative of ln|Z₄| diverges on its own.
    beta = ising.BETA_C
    lz_enum, e_enum = ising.log_z_enumerate(4, beta)
    assert ising.log_z(4, beta) == pytest.approx(lz_enum, rel=1e-10)
    assert ising.energy_per_site(4, beta) == pytest.approx(e_enum, rel=1e-10)
    assert np.isfinite(ising.energy_per_site(32, beta))


def test_gamma0_sign_matters_above_tc():
    # The pitfall: taking γ₀ = +arccosh(...) (always ≥ 0) gives a wrong Z above T_c.
    L, beta = 4, 0.3
    g, _ = ising._gammas(L, beta)
    assert g[0] < 0
    lz_wrong = _log_z_with_gamma0(L, beta, abs(g[0]))
    assert abs(lz_wrong - ising.log_z_enumerate(L, beta)[0]) > 1e-3


def _log_z_with_gamma0(L, K, gamma0):
    g, _ = ising._gammas(L, K)
    g[0] = gamma0
    x = 0.5 * L * g
    z = [np.prod(2 * np.cosh(x[1::2])), np.prod(2 * np.sinh(x[1::2])),
         np.prod(2 * np.cosh(x[0::2])), np.prod(2 * np.sinh(x[0::2]))]
    return np.log(0.5) + 0.5 * L * L * np.log(2 * np.sinh(2 * K)) + np.log(sum(z))


@pytest.mark.parametrize("beta", [0.3, 0.44, 0.6])
def test_energy_is_minus_dlogz_dbeta(beta):
    L, h = 16, 1e-5
    fd = (ising.log_z(L, beta + h) - ising.log_z(L, beta - h)) / (2 * h)
    assert ising.energy_per_site(L, beta) == pytest.approx(-fd / (L * L), rel=1e-8)


def _onsager_free_energy(beta):
    K = beta
    c, s = np.cosh(2 * K) ** 2, np.sinh(2 * K)
    val, _ = integrate.dblquad(lambda t1, t2: np.log(c - s * (np.cos(t1) + np.cos(t2))),
                               0, np.pi, 0, np.pi, epsabs=1e-13, epsrel=1e-13)
    return -(np.log(2.0) + val / (2 * np.pi**2)) / beta


@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_large_lattice_approaches_onsager(beta):
    # Away from T_c the finite-size correction decays like exp(-L/ξ): invisible at L = 64, except
    # that below T_c the torus holds both ordered states, adding ln 2 to ln Z.
    L = 64
    degeneracy = np.log(2.0) / (beta * L * L) if beta > ising.BETA_C else 0.0
    assert ising.free_energy_per_site(L, beta) == pytest.approx(
        _onsager_free_energy(beta) - degeneracy, rel=1e-10)


def test_coupling_scaling_and_sign():
    assert ising.log_z(4, 0.5, 0.8) == pytest.approx(ising.log_z(4, 0.4), rel=1e-14)
    # even torus is bipartite: the antiferromagnet has the same Z
    assert ising.log_z(4, 0.5, -1.0) == pytest.approx(ising.log_z(4, 0.5), rel=1e-14)
    assert ising.log_z(2, 0.0) == pytest.approx(4 * np.log(2.0))
    with pytest.raises(ValueError):
        ising.log_z(3, 0.5, -1.0)


def test_entropy_and_free_energy_relation():
    L, beta = 4, 0.44
    f, e, s = (ising.free_energy_per_site(L, beta), ising.energy_per_site(L, beta),
               ising.entropy_per_site(L, beta))
    assert f == pytest.approx(e - s / beta, rel=1e-12)
    # entropy of a discrete system lies in [0, ln 2] per site
    assert 0 < s < np.log(2.0)


def test_enumeration_reference_itself():
    # L = 2 by hand: 16 states; only the all-equal pair has E = -8 (each pair bonded twice).
    energies = []
    b = ising.bonds(2)
    for s in itertools.product([-1, 1], repeat=4):
        s = np.array(s)
        energies.append(-np.sum(s[b[:, 0]] * s[b[:, 1]]))
    assert sorted(energies)[:2] == [-8, -8]
    beta = 0.3
    ref = np.log(np.sum(np.exp(-beta * np.array(energies, float))))
    assert ising.log_z_enumerate(2, beta)[0] == pytest.approx(ref, rel=1e-14)
