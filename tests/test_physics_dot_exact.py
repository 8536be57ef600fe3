"""Two-electron dot: exact solutions (λ = 0, Taut/Hooke), ideal gas, convergence, limits."""

import math

import jax
import numpy as np
import pytest

from qvfe.physics.dot_exact import (
    relative_levels,
    relative_spectrum,
    two_electron_dot_free_energy,
    two_electron_dot_ground_state,
)
from qvfe.physics.ideal_fermi import spinful_thermo
from qvfe.physics.orbitals import closed_shell_count, harmonic_orbitals


@pytest.mark.parametrize("dim", [2, 3])
def test_noninteracting_equals_ideal_canonical_gas(dim):
    # λ = 0: 1↑ + 1↓ on oscillator orbitals, one particle per species (closed shells far above T).
    omega, T = 1.3, 0.45
    _, eps = harmonic_orbitals(dim, omega, closed_shell_count(dim, 40))
    ideal = jax.jit(spinful_thermo, static_argnums=(1, 2))(eps, 1, 1, T)
    dot = two_electron_dot_free_energy(omega, 0.0, T, dim)
    for key in ("F", "E", "S"):
        np.testing.assert_allclose(dot[key], ideal[key], rtol=0, atol=1e-8, err_msg=key)
    # and the closed form Z = (2 sinh(βω/2))^{-2d}
    y = omega / (2 * T)
    np.testing.assert_allclose(dot["F"], 2 * dim * T * math.log(2 * math.sinh(y)), atol=1e-10)
    np.testing.assert_allclose(dot["E"], dim * omega / math.tanh(y), atol=1e-10)


def test_noninteracting_relative_levels_exact():
    for dim in (2, 3):
        for ell in (0, 1, 4, 15):
            e = relative_levels(0.7, 0.0, ell, 12, dim)
            np.testing.assert_allclose(e, 0.7 * (2 * np.arange(12) + ell + dim / 2), atol=1e-10)


def test_taut_and_hooke_ground_states():
    # 2D, ω = 1, λ = 1: E0 = 3 Ha exactly (Taut); 3D, ω = 1/2: E0 = 2 Ha (Hooke's atom).
    np.testing.assert_allclose(two_electron_dot_ground_state(1.0, 1.0, 2), 3.0, atol=1e-9)
    np.testing.assert_allclose(two_electron_dot_ground_state(0.5, 1.0, 3), 2.0, atol=1e-9)
    # Channel ℓ > 0: R = r^ℓ (1 + λr/(2ℓ+d-1)) e^{-ωr²/4} is exact at ω = λ²/(2ℓ+d-1) with
    # E_rel = ω(ℓ + d/2 + 1); it has no node, so it is the lowest level of that channel.
    for dim, ell in ((2, 1), (2, 2), (3, 1), (3, 3)):
        omega = 1.0 / (2 * ell + dim - 1)
        np.testing.assert_allclose(relative_levels(omega, 1.0, ell, 1, dim)[0],
                                   omega * (ell + dim / 2 + 1), atol=1e-9)


def test_convergence_with_basis_size():
    # Variational basis: levels decrease monotonically with the basis size and converge fast.
    ref = relative_levels(1.0, 1.0, 1, 4, 2)
    errors = []
    for k in (6, 12, 24, 48):
        e = relative_levels(1.0, 1.0, 1, 4, 2, n_basis=k, scale=4.0)
        assert np.all(e >= ref - 1e-10)
        errors.append(np.max(e - ref))
    assert all(b < a / 10 for a, b in zip(errors, errors[1:]))
    assert errors[0] > 0.1 and errors[-1] < 1e-10
    # The default basis is converged: enlarging it changes nothing at 1e-10.
    big = relative_levels(1.0, 1.0, 1, 4, 2, n_basis=120)
    np.testing.assert_allclose(ref, big, atol=1e-10)
    np.testing.assert_allclose(relative_levels(0.5, 1.0, 0, 3, 3, n_basis=120),
                               relative_levels(0.5, 1.0, 0, 3, 3), atol=1e-10)


def test_all_angular_channels_counted():
    # Distinguishable 1↑+1↓: odd ℓ (spatially antisymmetric) count too, with 2D degeneracy 2.
    e, g = relative_spectrum(1.0, 0.0, 3.5, dim=2)
    levels = sorted(zip(np.round(e, 8).tolist(), g.tolist()))
    assert levels == [(1.0, 1), (2.0, 2), (3.0, 1), (3.0, 2)]  # ℓ=0; ℓ=1; ℓ=0 n=1 and ℓ=2
    e3, g3 = relative_spectrum(1.0, 0.0, 2.6, dim=3)
    np.testing.assert_allclose(e3, [1.5, 2.5])
    assert g3.tolist() == [1, 3]


def test_low_temperature_limit():
    e0 = two_electron_dot_ground_state(1.0, 1.0)
    zero = two_electron_dot_free_energy(1.0, 1.0, 0.0)
    assert zero == {"F": e0, "E": e0, "S": 0.0, "E0": e0}
    # First excitation: relative ℓ = ±1 at Δ ≈ 0.597 Ha, so S ≈ 2(1 + βΔ)e^{-βΔ}.
    cold = two_electron_dot_free_energy(1.0, 1.0, 0.02)
    delta = relative_levels(1.0, 1.0, 1, 1)[0] - (e0 - 1.0)
    np.testing.assert_allclose(cold["S"], 2 * (1 + delta / 0.02) * math.exp(-delta / 0.02),
                               rtol=1e-3)
    colder = two_electron_dot_free_energy(1.0, 1.0, 0.01)
    np.testing.assert_allclose([colder["F"], colder["E"], colder["S"]], [e0, e0, 0.0], atol=1e-12)


def test_thermodynamic_consistency():
    # F = E - TS by construction; S = -dF/dT checks that E and S come from the same Z.
    T, h = 0.6, 1e-4
    out = two_electron_dot_free_energy(1.0, 1.0, T)
    np.testing.assert_allclose(out["F"], out["E"] - T * out["S"], atol=1e-12)
    up = two_electron_dot_free_energy(1.0, 1.0, T + h)["F"]
    down = two_electron_dot_free_energy(1.0, 1.0, T - h)["F"]
    np.testing.assert_allclose(-(up - down) / (2 * h), out["S"], atol=1e-6)
    # λ/r > 0 raises every level, hence F.
    assert out["F"] > two_electron_dot_free_energy(1.0, 0.0, T)["F"]


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        two_electron_dot_free_energy(1.0, 1.0, 0.5, dim=1)
    with pytest.raises(ValueError):
        two_electron_dot_free_energy(1.0, -1.0, 0.5)
    with pytest.raises(ValueError):
        two_electron_dot_free_energy(1.0, 1.0, -0.5)
