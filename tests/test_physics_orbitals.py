"""Orbital lists: complete, energy-sorted, deterministic tie order, known shell structure."""

import itertools
import math

import numpy as np
import pytest

from qvfe.physics.orbitals import (
    closed_shell_count,
    harmonic_orbitals,
    harmonic_shell_degeneracy,
    plane_wave_closed_shells,
    plane_wave_orbitals,
    plane_waves_within,
    polar_harmonic_orbitals,
)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_harmonic_complete_shells_sorted(dim):
    n_shells = 6
    m = closed_shell_count(dim, n_shells)
    qn, e = harmonic_orbitals(dim, 0.7, m)
    assert qn.shape == (m, dim) and e.shape == (m,)
    assert np.all(np.diff(e) >= 0)
    np.testing.assert_allclose(e, 0.7 * (qn.sum(1) + dim / 2), rtol=0, atol=1e-14)
    # Exactly the states with Σn < n_shells, each once.
    brute = {t for t in itertools.product(range(n_shells), repeat=dim) if sum(t) < n_shells}
    assert {tuple(r) for r in qn.tolist()} == brute and len(brute) == m
    for s in range(n_shells):
        assert np.sum(qn.sum(1) == s) == harmonic_shell_degeneracy(dim, s) == math.comb(s + dim - 1,
                                                                                        dim - 1)


def test_harmonic_tie_order_and_cut_inside_shell():
    qn, e = harmonic_orbitals(2, 1.0, 5)
    assert qn.tolist() == [[0, 0], [1, 0], [0, 1], [2, 0], [1, 1]]  # shell 2 cut after two states
    assert e.tolist() == [1.0, 2.0, 2.0, 3.0, 3.0]
    qn3, _ = harmonic_orbitals(3, 1.0, 5)
    assert qn3.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0]]
    assert [closed_shell_count(2, s) for s in range(1, 6)] == [1, 3, 6, 10, 15]
    assert [closed_shell_count(3, s) for s in range(1, 6)] == [1, 4, 10, 20, 35]
    # Deterministic: same call, same list.
    first, again = harmonic_orbitals(3, 2.0, 40)[0], harmonic_orbitals(3, 2.0, 40)[0]
    np.testing.assert_array_equal(first, again)


def test_polar_harmonic_list_matches_the_cartesian_shells():
    m = closed_shell_count(2, 7)
    qn, e = polar_harmonic_orbitals(0.7, m)
    _, e_cart = harmonic_orbitals(2, 0.7, m)
    np.testing.assert_allclose(e, e_cart, rtol=0, atol=1e-14)  # same levels in the same order
    # exactly the (n_r, m) with 2 n_r + |m| < 7, each once
    brute = {(n, mm) for n in range(4) for mm in range(-7, 8) if 2 * n + abs(mm) < 7}
    assert {tuple(r) for r in qn.tolist()} == brute and len(brute) == m
    assert polar_harmonic_orbitals(1.0, 4)[0].tolist() == [[0, 0], [0, 1], [0, -1], [1, 0]]
    with pytest.raises(ValueError, match="omega"):
        polar_harmonic_orbitals(0.0, 3)


def _brute_plane_waves(dim, twist, n):
    m = np.array(list(itertools.product(range(-6, 7), repeat=dim)), dtype=float)
    return np.sort(np.sum((m + twist) ** 2, axis=1))[:n]


@pytest.mark.parametrize("dim,twist", [(2, None), (3, None), (2, (0.3, -0.1)),
                                       (3, (0.5, 0.5, 0.5)), (3, (0.13, -0.41, 0.27))])
def test_plane_waves_complete_and_sorted(dim, twist):
    L = 3.7
    n = 60
    k, e = plane_wave_orbitals(dim, L, n, twist)
    assert k.shape == (n, dim) and e.shape == (n,)
    np.testing.assert_allclose(e, 0.5 * np.sum(k**2, 1), rtol=1e-14)
    assert np.all(np.diff(e) >= -1e-12)
    t = np.zeros(dim) if twist is None else np.asarray(twist)
    m = k * L / (2 * np.pi) - t
    np.testing.assert_allclose(m, np.round(m), atol=1e-12)  # on the (twisted) reciprocal lattice
    assert len({tuple(r) for r in np.round(m).astype(int).tolist()}) == n  # no duplicates
    np.testing.assert_allclose(e, 0.5 * (2 * np.pi / L) ** 2 * _brute_plane_waves(dim, t, n),
                               rtol=1e-12)


@pytest.mark.parametrize("dim,twist", [(2, None), (3, None), (3, (0.13, -0.41, 0.27))])
def test_plane_waves_within_an_energy_take_every_one_below_it(dim, twist):
    L = 3.7
    t = np.zeros(dim) if twist is None else np.asarray(twist)
    all_e = 0.5 * (2 * np.pi / L) ** 2 * _brute_plane_waves(dim, t, 10**6)
    for max_energy in (0.0, 1.0, 7.3, float(all_e[32])):  # the last one on a shell
        k, e = plane_waves_within(dim, L, max_energy, twist)
        expected = all_e[all_e <= max_energy * (1 + 1e-9)]
        np.testing.assert_allclose(e, expected, rtol=1e-12)
        np.testing.assert_array_equal(k, plane_wave_orbitals(dim, L, len(e), twist)[0])
    k, e = plane_waves_within(dim, L, 60.0, twist, limit=50)  # far more than 50 within
    assert 50 < len(e) < np.sum(all_e <= 60.0)


def test_plane_wave_tie_order_and_magic_numbers():
    k, e = plane_wave_orbitals(2, 2 * np.pi, 9)
    assert np.round(k).astype(int).tolist() == [[0, 0], [1, 0], [0, 1], [0, -1], [-1, 0],
                                                 [1, 1], [1, -1], [-1, 1], [-1, -1]]
    assert plane_wave_closed_shells(2, 30) == [1, 5, 9, 13, 21, 25, 29]
    assert plane_wave_closed_shells(3, 60) == [1, 7, 19, 27, 33, 57]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        harmonic_orbitals(4, 1.0, 3)
    with pytest.raises(ValueError):
        harmonic_orbitals(2, -1.0, 3)
    with pytest.raises(ValueError):
        plane_wave_orbitals(1, 1.0, 3)
    with pytest.raises(ValueError):
        plane_wave_orbitals(3, 1.0, 3, twist=(0.1, 0.2))
