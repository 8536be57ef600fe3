"""The periodic electron–electron Jastrow factor: Kato's cusps, smoothness, periodicity, and the
local energy it makes finite where two electrons meet.

- d ln J / dr -> 1/2 at an up-down contact and 1/4 at an up-up one (exact, any parameters).
- ln J, its gradient and its Laplacian are continuous across the cutoff r_c = L/2 and unchanged
  when an electron moves by a lattice vector or all move together; folx's Laplacian equals the
  trace of jax.hessian.
- The electron-nucleus term (hydrogen) has slope 0 at contact and starts at zero.
- In clamped-proton hydrogen with the Jastrow factor, the local energy stays finite as an up and a
  down electron meet (the kinetic -1/r cancels the Coulomb +1/r), and diverges without it; the
  wavefunction's ln psi is the √flow's plus ln J.
"""

import folx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qvfe
from qvfe.jastrow import PeriodicJastrow

L = 5.0


def _random_params(jas, seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = {"offset": jas.init()["offset"] + 0.3 * jax.random.normal(k1, (2,)),
              "shape": 0.5 * jax.random.normal(k2, (2, jas.terms))}
    if jas.n_nuclei:
        params["nuclear"] = 0.5 * jax.random.normal(k3, (jas.terms + 1,))
    for name in ("long_range", "long_range_nuclear"):
        if name in jas.init():
            k3, k4 = jax.random.split(k3)
            params[name] = 0.3 * jax.random.normal(k4, (jas.long_range_shells,))
    return params


@pytest.mark.parametrize("n_up, n_down, dim, slope", [(1, 1, 3, 0.5), (2, 0, 3, 0.25),
                                                     (1, 1, 2, 1.0), (2, 0, 2, 1 / 3)])
def test_cusp_slopes_are_katos(n_up, n_down, dim, slope):
    jas = PeriodicJastrow(n_up, n_down, L, terms=3, dim=dim)
    params = _random_params(jas)
    direction, start = jnp.array([0.6, -0.8, 0.0])[:dim], jnp.array([1.0, 2.0, 3.0])[:dim]

    def along(r):
        return jas.log_value(params, jnp.stack([start, start + r * direction]))

    for r in (1e-6, 1e-8):
        assert float(jax.grad(along)(r)) == pytest.approx(slope, abs=5 * r)
    assert float(jax.grad(along)(0.5)) != pytest.approx(slope, abs=1e-3)  # the shape is learned


def test_electron_nucleus_term_is_smooth_at_contact_and_zero_at_start():
    """The electron-nucleus term leaves the cusp to the flow's exact step: slope 0 at contact;
    at init it is absent (ln J is the electron pairs' alone)."""
    jas = PeriodicJastrow(1, 1, L, terms=3, n_nuclei=1)
    params = _random_params(jas, seed=4)

    def nuclear(r):
        return jas.nuclear_function(params, r)

    for r in (1e-6, 1e-8):
        assert float(jax.grad(nuclear)(r)) == pytest.approx(0.0, abs=10 * r)
    assert float(nuclear(jnp.asarray(0.0))) != 0.0 and float(nuclear(jnp.asarray(0.6 * L))) == 0.0
    x, nuclei = jnp.array([[0.1, 0.2, 0.3], [1.0, 2.0, 0.5]]), jnp.array([[0.4, 0.4, 0.4]])
    start = jas.init()
    without = PeriodicJastrow(1, 1, L, terms=3)
    assert float(jas.log_value(start, x, nuclei)) == pytest.approx(
        float(without.log_value(without.init(), x)), abs=1e-14)


def test_smooth_at_the_cutoff_and_zero_beyond():
    jas = PeriodicJastrow(1, 1, L, terms=2)
    params = _random_params(jas, seed=1)

    def of_r(r):
        return jas.log_value(params, jnp.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]]))

    def along_diagonal(r):  # crosses r_c = L/2 with every component below L/2 (no image fold)
        u = r / np.sqrt(2.0)
        return jas.log_value(params, jnp.array([[0.0, 0.0, 0.0], [u, u, 0.0]]))

    rc, h = jas.cutoff, 1e-6
    # ln J, its slope and its curvature vanish at r_c from inside as h^3, h^2, h (continuous
    # through the second derivative) and are exactly 0 beyond
    for fn, tol in ((along_diagonal, 1e-15), (jax.grad(along_diagonal), 1e-10),
                    (jax.grad(jax.grad(along_diagonal)), 1e-4)):
        assert float(fn(rc + h)) == 0.0
        assert abs(float(fn(rc - h))) < tol
    assert float(jax.grad(jax.grad(along_diagonal))(rc - 0.3)) != 0.0
    assert of_r(rc - 0.3) != 0.0
    assert float(of_r(0.9 * L)) == pytest.approx(float(of_r(0.1 * L)), abs=1e-14)  # min. image
    diagonal = jnp.array([[0.0, 0.0, 0.0], [0.4 * L, 0.4 * L, 0.0]])  # r = 0.57 L > r_c
    assert jas.log_value(params, diagonal) == 0.0


@pytest.mark.parametrize("shells", [0, 3])
def test_periodic_translation_invariant_and_folx_laplacian_is_the_hessians(shells):
    jas = PeriodicJastrow(3, 2, L, terms=3, n_nuclei=2, long_range_shells=shells)
    params = _random_params(jas, seed=2)
    x = L * jax.random.uniform(jax.random.PRNGKey(3), (5, 3))
    nuclei = jnp.array([[0.5, 1.0, 4.0], [2.5, 3.5, 1.0]])
    value = float(jas.log_value(params, x, nuclei))
    assert value != 0.0
    assert float(jas.log_value(params, x.at[2].add(jnp.array([L, -L, 2 * L])), nuclei)
                 ) == pytest.approx(value, abs=1e-12)
    shift = jnp.array([0.37, -1.2, 2.9])
    assert float(jas.log_value(params, x + shift, nuclei + shift)) == pytest.approx(value,
                                                                                   abs=1e-12)
    with pytest.raises(ValueError, match="nuclei of shape"):
        jas.log_value(params, x)
    with pytest.raises(ValueError, match=r"x must have shape \(5, 3\)"):
        jas.log_value(params, jnp.concatenate([x, x[:1]]), nuclei)

    def flat(v):
        return jas.log_value(params, v.reshape(5, 3), nuclei)

    lap = folx.forward_laplacian(flat)(x.reshape(-1)).laplacian
    assert float(lap) == pytest.approx(float(jnp.trace(jax.hessian(flat)(x.reshape(-1)))),
                                       rel=1e-10)


@pytest.mark.parametrize("dim, n_nuclei", [(3, 2), (2, 0)])
def test_long_range_term_is_the_pair_sum_over_the_shells_and_absent_at_the_start(dim, n_nuclei):
    # -sum over every k of the shells (both signs) of [b/2 sum_{i != j} cos k.(x_i - x_j)
    #  + d/2 sum_{i, I} cos k.(x_i - R_I)] / N, written out in numpy.
    jas = PeriodicJastrow(2, 2, L, terms=2, dim=dim, n_nuclei=n_nuclei, long_range_shells=3)
    short = PeriodicJastrow(2, 2, L, terms=2, dim=dim, n_nuclei=n_nuclei)
    x = L * jax.random.uniform(jax.random.PRNGKey(7), (4, dim))
    nuclei = L * jax.random.uniform(jax.random.PRNGKey(8), (n_nuclei, dim)) if n_nuclei else None
    assert float(jas.log_value(jas.init(), x, nuclei)) == pytest.approx(
        float(short.log_value(short.init(), x, nuclei)), abs=1e-14)
    params = _random_params(jas, seed=9)
    shift = float(jas.log_value(params, x, nuclei)) - float(short.log_value(
        {k: v for k, v in params.items() if not k.startswith("long_range")}, x, nuclei))
    grid = np.stack(np.meshgrid(*[np.arange(-4, 5)] * dim, indexing="ij"), -1).reshape(-1, dim)
    norm2 = np.sum(grid**2, 1)
    shells = np.unique(norm2[norm2 > 0])[:3]  # 3D: |m|^2 = 1, 2, 3; 2D: 1, 2, 4
    xs, expected = np.asarray(x), 0.0
    for shell, m2 in enumerate(shells):
        for k in 2 * np.pi * grid[norm2 == m2] / L:
            pairs = np.cos((xs[:, None] - xs[None]) @ k)
            expected -= 0.5 * float(params["long_range"][shell]) * (pairs.sum() - 4) / 4
            if n_nuclei:
                cross = np.cos((xs[:, None] - np.asarray(nuclei)[None]) @ k).sum()
                expected -= 0.5 * float(params["long_range_nuclear"][shell]) * cross / 4
    assert abs(expected) > 1e-2
    assert shift == pytest.approx(expected, abs=1e-12)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="two electrons"):
        PeriodicJastrow(1, 0, L)
    with pytest.raises(ValueError, match="terms"):
        PeriodicJastrow(1, 1, L, terms=-1)
    for shells in (-1, 13):
        with pytest.raises(ValueError, match=r"long_range_shells must be in \[0, 12\]"):
            PeriodicJastrow(1, 1, L, long_range_shells=shells)


def _clamped_hydrogen(jastrow_terms):
    raw = {"system": {"kind": "hydrogen", "n_protons": 2, "rs": 1.25, "T_kelvin": 6000.0,
                      "proton_lattice": "bcc"},
           "model": {"electrons": "ground", "backflow_hidden": 8, "nuclei_hidden": 8,
                     "jastrow_terms": jastrow_terms},
           "optim": {"steps": 0}, "sampler": {"batch": 8}, "eval": {"samples": 8}}
    problem = qvfe.build_problem(qvfe.load_spec(raw))
    return problem, problem.model.wavefunction


def test_2d_gas_local_energy_stays_finite_where_opposite_spins_meet():
    """Kato's 2D slope (1 between opposite spins) cancels the 2D Coulomb 1/r: the electron
    gas's ground determinant with the factor, 1 + 1 electrons in a square box."""
    raw = {"system": {"kind": "electron_gas", "n_up": 1, "n_down": 1, "dim": 2, "rs": 2.0,
                      "theta": 0.5},
           "model": {"electrons": "ground", "backflow_layers": 0, "jastrow_terms": 2},
           "optim": {"steps": 0}, "sampler": {"batch": 8}, "eval": {"samples": 8}}
    with jax.enable_x64(True):
        problem = qvfe.build_problem(qvfe.load_spec(raw))
        wf, occ = problem.model.wavefunction, jnp.array([0])
        theta = wf.init(jax.random.PRNGKey(0))
        theta["jastrow"] = _random_params(wf.jastrow)
        x0, direction = jnp.array([0.7, 1.1]), jnp.array([0.6, 0.8])
        energies = [float(jnp.real(wf.local_energy(theta, jnp.stack([x0, x0 + r * direction]),
                                                   occ, occ, problem.model.potential)))
                    for r in (1e-3, 1e-5)]
    assert abs(energies[0] - energies[1]) < 0.05, energies


def test_jastrow_makes_the_local_energy_finite_where_opposite_spins_meet():
    with jax.enable_x64(True):
        energies, built = {}, {terms: _clamped_hydrogen(terms) for terms in (0, 3)}
        occ = jnp.array([0])
        base = jnp.array([[0.4, 0.9, 1.3], [0.0, 0.0, 0.0]])
        direction = jnp.array([0.0, 0.6, 0.8])
        for terms, (problem, wf) in built.items():
            theta = wf.init(jax.random.PRNGKey(0))
            if terms:
                theta["jastrow"] = _random_params(wf.jastrow)
            nuclei = jnp.asarray(problem.info["clamped_protons"])
            energies[terms] = [float(jnp.real(wf.local_energy(
                theta, base.at[1].set(base[0] + r * direction), occ, occ,
                problem.model.potential, nuclei))) for r in (1e-3, 1e-5)]
        # ln psi is the √flow's plus ln J
        x = base.at[1].set(jnp.array([2.0, 1.0, 0.5]))
        plain = {k: v for k, v in theta.items() if k != "jastrow"}
        assert float(wf.log_psi(theta, x, occ, occ, nuclei)[0]) == pytest.approx(
            float(built[0][1].log_psi(plain, x, occ, occ, nuclei)[0]
                  + wf.jastrow.log_value(theta["jastrow"], x, nuclei)), abs=1e-12)
    with_j, without = energies[3], energies[0]
    assert abs(with_j[0] - with_j[1]) < 0.05, with_j  # bounded: the 1/r terms cancel
    assert without[1] - without[0] > 0.9 * (1e5 - 1e3), without  # the bare Coulomb 1/r
