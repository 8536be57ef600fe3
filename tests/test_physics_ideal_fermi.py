"""Exact canonical ideal Fermi gas vs brute-force enumeration and exact limits."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.physics.ideal_fermi import (
    boltzmann_log_prob,
    canonical_thermo,
    ground_state_energy,
    log_esp,
    log_esp_suffix,
    log_partition,
    occupation_numbers,
    spinful_thermo,
)

LEVELS = np.array([0.1, 0.35, 0.35, 0.8, 1.3, 1.45, 2.2])

# jit with the particle number static: one compilation per N instead of many eager dispatches.
thermo = jax.jit(canonical_thermo, static_argnums=1)
occupations = jax.jit(occupation_numbers, static_argnums=1)


def _brute(eps, n, T):
    """ln Z, E, S, ⟨n_k⟩ by summing over all C(M, N) patterns."""
    pats = np.array([c for c in itertools.product([0, 1], repeat=len(eps)) if sum(c) == n])
    en = pats @ eps
    w = np.exp(-(en - en.min()) / T)
    z = w.sum()
    p = w / z
    log_z = math.log(z) - en.min() / T
    energy = p @ en
    return {"lnZ": log_z, "E": energy, "S": log_z + energy / T, "F": -T * log_z, "occ": p @ pats}


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_against_enumeration(n):
    T = 0.6
    ref = _brute(LEVELS, n, T)
    out = thermo(LEVELS, n, T)
    for key in ("lnZ", "E", "S", "F"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-12, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(occupations(LEVELS, n, T), ref["occ"], atol=1e-12)
    np.testing.assert_allclose(log_partition(LEVELS, n, T), ref["lnZ"], rtol=1e-12, atol=1e-12)


def test_suffix_table_matches_forward_recursion():
    log_x = -LEVELS / 0.4
    table = log_esp_suffix(log_x, 7)
    fwd = np.asarray(jax.jit(log_esp, static_argnums=1)(log_x, 7))
    np.testing.assert_allclose(table[0], fwd, rtol=1e-13)
    for k in (1, 3, 6):  # rows against the forward recursion on that suffix
        r = len(LEVELS) - k
        np.testing.assert_allclose(table[k, : r + 1], np.asarray(log_esp(log_x[k:], r)), rtol=1e-13)
        assert np.all(np.isneginf(table[k, r + 1:]))
    np.testing.assert_array_equal(table[-1], [0.0] + [-np.inf] * 7)  # empty suffix


def test_boltzmann_log_prob_normalised():
    pats = np.array([c for c in itertools.product([0, 1], repeat=7) if sum(c) == 3])
    lp = boltzmann_log_prob(pats, LEVELS, 3, 0.5)
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp)), 1.0, atol=1e-13)
    assert np.isneginf(boltzmann_log_prob(np.ones(7), LEVELS, 3, 0.5))


def test_single_particle_is_boltzmann_and_full_band_is_trivial():
    T = 0.37
    z1 = np.sum(np.exp(-LEVELS / T))
    np.testing.assert_allclose(log_partition(LEVELS, 1, T), np.log(z1), rtol=1e-14)
    out = thermo(LEVELS, 7, T)  # N = M: one pattern
    np.testing.assert_allclose(out["E"], LEVELS.sum(), rtol=1e-14)
    np.testing.assert_allclose(out["S"], 0.0, atol=1e-12)


def test_particle_hole_symmetry():
    # e_N(x) = Π x · e_{M-N}(1/x): N particles on ε ↔ M-N particles on -ε.
    T = 0.45
    for n in (2, 3):
        lhs = thermo(LEVELS, n, T)["lnZ"]
        rhs = -LEVELS.sum() / T + thermo(-LEVELS, 7 - n, T)["lnZ"]
        np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_low_temperature_is_stable_and_reaches_ground_state():
    # β·spacing = 1e3 and beyond: no overflow, E → E0, S → ln(ground degeneracy).
    eps = np.array([0.0, 1.0, 1.0, 1.0, 2.0, 3.0])
    for T in (1e-3, 1e-5):
        out = thermo(eps, 2, T)  # ground: level 0 + one of three degenerate levels
        assert all(np.isfinite(np.asarray(v)) for v in out.values())
        np.testing.assert_allclose(out["E"], 1.0, atol=1e-12)
        np.testing.assert_allclose(out["S"], math.log(3), atol=1e-12)
        np.testing.assert_allclose(out["F"], 1.0 - T * math.log(3), atol=1e-12)
        np.testing.assert_allclose(occupations(eps, 2, T), [1, 1 / 3, 1 / 3, 1 / 3, 0, 0],
                                   atol=1e-12)
    assert float(ground_state_energy(eps, 4)) == 3.0


def test_spinful_is_sum_of_species():
    T = 0.5
    out = jax.jit(spinful_thermo, static_argnums=(1, 2))(LEVELS, 3, 2, T)
    a, b = thermo(LEVELS, 3, T), thermo(LEVELS, 2, T)
    for key in ("F", "E", "S", "lnZ"):
        np.testing.assert_allclose(out[key], a[key] + b[key], rtol=1e-14)
    down = spinful_thermo(LEVELS, 1, 1, T, energies_down=LEVELS + 0.2)
    np.testing.assert_allclose(down["E"], 2 * thermo(LEVELS, 1, T)["E"] + 0.2, rtol=1e-12)


def test_jit_and_thermodynamic_derivatives():
    # jit with the particle number static; dF/dT = -S and ∂F/∂ε_k = ⟨n_k⟩ by autodiff.
    f = jax.jit(lambda e, T: canonical_thermo(e, 3, T)["F"])
    T = 0.55
    out = thermo(LEVELS, 3, T)
    np.testing.assert_allclose(f(LEVELS, T), out["F"], rtol=1e-14)
    np.testing.assert_allclose(jax.grad(f, argnums=1)(LEVELS, T), -out["S"], rtol=1e-10)
    grad_e = jax.jit(jax.grad(f))
    np.testing.assert_allclose(grad_e(LEVELS, T), occupations(LEVELS, 3, T), atol=1e-12)
    assert np.all(np.isfinite(grad_e(LEVELS, 1e-4)))  # impossible DP entries give no NaNs


def test_rejects_bad_particle_number():
    with pytest.raises(ValueError):
        canonical_thermo(LEVELS, 8, 1.0)


def test_a_temperature_or_particle_number_out_of_range_is_refused():
    """T = 0 gave NaN and T < 0 an inverted gas; n beyond the levels -inf everywhere (a review)."""
    eps = np.array([0.0, 0.3, 0.7, 1.2])
    for fn in (log_partition, canonical_thermo, occupation_numbers):
        for bad in (0.0, -0.5):
            with pytest.raises(ValueError, match="temperature must be > 0"):
                fn(eps, 2, bad)
    with pytest.raises(ValueError, match=r"particle number must be in \[0, 4\]"):
        boltzmann_log_prob(np.array([1, 1, 1, 1, 1]), eps, 5, 0.4)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        boltzmann_log_prob(np.array([1, 1, 0, 0]), eps, 2, -0.4)
    # under jit or grad T is traced and the check is the caller's
    assert np.isfinite(float(jax.jit(lambda t: log_partition(eps, 2, t))(0.4)))
