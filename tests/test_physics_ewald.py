"""Ewald sums: known lattice energies, independence of the splitting, invariances, gradients.

Wigner-crystal (jellium) energies per electron: bcc -0.895929/rs, fcc -0.895874/rs, sc -0.880059/rs
(3D), square -1.100244/rs and triangular -1.106103/rs (2D, 1/r). Ionic crystals, energy per ion
pair -M/r_nn: rock salt M = 1.747565, CsCl M = 1.762675.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.physics.ewald import make_ewald, madelung_constant


def rs_of(lattice, n):
    volume = abs(np.linalg.det(lattice))
    if lattice.shape[0] == 3:
        return (3 * volume / (4 * np.pi * n)) ** (1 / 3)
    return (volume / (np.pi * n)) ** 0.5


FCC = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])


@pytest.mark.parametrize(
    "basis, coefficient",
    [
        (np.zeros((1, 3)), -0.880059),  # sc
        (np.array([[0, 0, 0], [0.5, 0.5, 0.5]]), -0.895929),  # bcc
        (FCC, -0.895874),  # fcc
    ],
    ids=["sc", "bcc", "fcc"],
)
def test_wigner_crystal_3d(basis, coefficient):
    side = 3.7
    lattice = np.eye(3) * side
    ew = make_ewald(lattice, n_particles=len(basis))
    e = float(jax.jit(ew.energy)(basis * side))
    assert e / len(basis) * rs_of(lattice, len(basis)) == pytest.approx(coefficient, abs=1e-6)


def test_wigner_crystal_2d_square_and_triangular():
    square = np.eye(2) * 2.3
    ew = make_ewald(square, n_particles=1)
    assert float(jax.jit(ew.energy)(np.zeros((1, 2)))) * rs_of(square, 1) == pytest.approx(-1.100244, abs=1e-6)
    # A rectangular a x a sqrt(3) cell holds two sites of the triangular lattice.
    a = 1.9
    rect = np.diag([a, a * np.sqrt(3)])
    x = np.array([[0.1, 0.2], [0.1 + a / 2, 0.2 + a * np.sqrt(3) / 2]])
    ew = make_ewald(rect, n_particles=2)
    e = float(jax.jit(ew.energy)(x))
    assert e / 2 * rs_of(rect, 2) == pytest.approx(-1.106103, abs=1e-6)


def test_ionic_madelung_constants():
    a = 2.0
    x = np.concatenate([FCC * a, FCC * a + np.array([a / 2, 0, 0])])
    q = np.r_[np.ones(4), -np.ones(4)]
    e = float(jax.jit(make_ewald(np.eye(3) * a, q).energy)(x))
    assert -e / 4 * (a / 2) == pytest.approx(1.747565, abs=1e-6)  # rock salt, r_nn = a/2
    x = np.array([[0.0, 0.0, 0.0], [a / 2, a / 2, a / 2]])
    e = float(jax.jit(make_ewald(np.eye(3) * a, np.array([1.0, -1.0])).energy)(x))
    assert -e * (a * np.sqrt(3) / 2) == pytest.approx(1.762675, abs=1e-6)  # CsCl


def test_madelung_constant_of_the_cell():
    # simple cubic jellium cell of side L: v_M = -2.837297479 / L; numpy helper == factory value
    assert madelung_constant(np.eye(3) * 2.0) == pytest.approx(-2.837297479 / 2.0, abs=1e-9)
    ew = make_ewald(np.eye(3) * 2.0, n_particles=3)
    assert ew.madelung == pytest.approx(-2.837297479 / 2.0, abs=1e-9)
    assert ew.madelung_energy == pytest.approx(1.5 * ew.madelung, rel=1e-14)
    # the potential approaches 1/r + v_M at short distance (O(r^2) corrections)
    for lattice in (np.diag([2.0, 2.5, 3.0]), np.diag([2.0, 3.0])):
        ew = make_ewald(lattice, n_particles=1)
        r = 1e-4
        disp = np.zeros(lattice.shape[0])
        disp[0] = r
        assert float(jax.jit(ew.potential)(disp)) - 1 / r == pytest.approx(ew.madelung, abs=1e-7)


CELLS = {
    "jellium_cubic_3d": (np.eye(3) * 5.0, -np.ones(7)),
    "hydrogen_triclinic_charged": (np.array([[4.0, 0, 0], [1.0, 4.5, 0], [0.5, -0.7, 5.0]]),
                                   np.array([1.0, -1.0, -1.0, 2.0, -1.0])),
    "jellium_rect_2d": (np.diag([5.0, 6.5]), -np.ones(6)),
    "hydrogen_oblique_2d": (np.array([[5.0, 0.0], [2.0, 4.5]]), np.array([1.0, 1.0, -1.0, -1.0])),
}


@pytest.mark.parametrize("name, factor", [("jellium_cubic_3d", 0.5), ("hydrogen_triclinic_charged", 2.0),
                                          ("jellium_rect_2d", 0.6), ("hydrogen_oblique_2d", 1.8)])
def test_splitting_independence_and_invariances(name, factor):
    """One cell per case: alpha-independence, translations, lattice shifts, pair decomposition."""
    lattice, q = CELLS[name]
    dim = lattice.shape[0]
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (len(q), dim)) @ lattice
    ew = make_ewald(lattice, q)
    f = jax.jit(ew.energy)
    e = float(f(x))
    other = make_ewald(lattice, q, alpha=ew.alpha * factor)
    assert other.n_gvectors != ew.n_gvectors  # a genuinely different split
    assert float(jax.jit(other.energy)(x)) == pytest.approx(e, abs=1e-9)
    assert other.madelung == pytest.approx(ew.madelung, abs=1e-10)
    # rigid translation of everything, and one particle moved by a lattice vector
    assert float(f(x + rng.normal(size=dim) * 3.0)) == pytest.approx(e, abs=1e-10)
    shifted = x.copy()
    shifted[1] += 2 * lattice[0] - lattice[-1]
    assert float(f(shifted)) == pytest.approx(e, abs=1e-10)
    if name.startswith("hydrogen"):
        # E = sum_{i<j} q_i q_j psi(r_i - r_j) + (1/2) v_M sum q^2
        i, j = np.triu_indices(len(q), 1)
        pair = float(jnp.sum(q[i] * q[j] * jax.jit(ew.potential)(x[i] - x[j])))
        assert pair + ew.madelung_energy == pytest.approx(e, abs=1e-9)


def test_isolated_dipole_limit():
    # a +- pair at distance 1 in a large cell: E -> -1 (images and background vanish as L grows)
    for dim, side in ((3, 40.0), (2, 400.0)):
        lattice = np.eye(dim) * side
        x = np.zeros((2, dim))
        x[1, 0] = 1.0
        e = float(jax.jit(make_ewald(lattice, np.array([1.0, -1.0])).energy)(x))
        assert e == pytest.approx(-1.0, abs=1e-4)


def test_gradient_matches_finite_differences_and_vmaps():
    lattice, q = CELLS["hydrogen_triclinic_charged"]
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (len(q), 3)) @ lattice
    ew = make_ewald(lattice, q)
    grad = jax.jit(jax.grad(ew.energy))(x)
    direction = rng.normal(size=x.shape)
    h = 1e-4
    f = jax.jit(ew.energy)
    fd = (float(f(x + h * direction)) - float(f(x - h * direction))) / (2 * h)
    assert float(jnp.sum(grad * direction)) == pytest.approx(fd, rel=1e-7, abs=1e-9)
    # the total force on the cell vanishes (translation invariance)
    np.testing.assert_allclose(np.sum(np.asarray(grad), axis=0), 0.0, atol=1e-9)
    xs = rng.uniform(0, 1, (4, len(q), 3)) @ lattice
    batched = jax.jit(jax.vmap(ew.energy))(xs)
    np.testing.assert_allclose(batched, [float(f(xi)) for xi in xs], rtol=0, atol=1e-12)


def test_requires_float64_and_validates_input():
    ew = make_ewald(np.eye(3) * 3.0, n_particles=2)
    with jax.enable_x64(False):
        with pytest.raises(RuntimeError, match="jax_enable_x64"):
            make_ewald(np.eye(3) * 3.0, n_particles=2)
        with pytest.raises(RuntimeError, match="jax_enable_x64"):
            ew.energy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="shape"):
        ew.energy(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        make_ewald(np.eye(4), n_particles=2)
    with pytest.raises(ValueError):
        make_ewald(np.eye(3))


@pytest.mark.parametrize("dim", [2, 3])
def test_clustered_charges_meet_the_accuracy(dim):
    """96 electrons in a hundredth of the cell: their structure factor is coherent, |S(G)|^2 ~ N^2
    rather than the random-phase N the cutoff estimates assume (the reciprocal tail then missed
    1e-10 per particle ninefold), against a build with another splitting and 1e-14."""
    n = 96
    length = (4 * np.pi * n / 3) ** (1 / 3) if dim == 3 else (np.pi * n) ** 0.5
    x = length * (0.5 + 0.01 * np.random.default_rng(7).uniform(-0.5, 0.5, (n, dim)))
    energy = make_ewald(length * np.eye(dim), n_particles=n).energy(x)
    exact = make_ewald(length * np.eye(dim), n_particles=n, accuracy=1e-14,
                       alpha=4.1 / length).energy(x)
    assert abs(float(energy - exact)) / n < 1e-10
