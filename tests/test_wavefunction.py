"""ln psi of the square-root flow and its local energy.

Checks: exchange antisymmetry, exact normalisation with a non-trivial backflow (the point of the
square-root flow), folx Laplacian == jax.hessian Laplacian (batch <= 8: see DESIGN.md §3 on the
hessian deadlock), zero-variance local energies for identity flows, and parameter derivatives.
"""

import faulthandler
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.backflow import Backflow
from qvfe.flows.collective import CollectiveFlow
from qvfe.flows.opposite_spin import OppositeSpinFlow
from qvfe.jastrow import PeriodicJastrow
from qvfe.physics.orbital_values import HarmonicBasis, PlaneWaveBasis
from qvfe.physics.potentials import harmonic_trap
from qvfe.wavefunction import SquareRootFlowWavefunction, elementary_symmetric_of_gram

from helpers import perturbed

OMEGA = 1.3
L = 3.1
TWIST = np.array([0.13, -0.21])
QN_2D = np.array([[0, 0], [1, 0], [0, 1], [2, 0], [1, 1], [0, 2], [3, 0]])
M_2D = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, 1], [1, -1], [-1, -1]])

SYSTEMS = {
    # a quantum dot with both spins
    "dot": (
        SquareRootFlowWavefunction(
            HarmonicBasis(QN_2D, OMEGA), Backflow(2, 1, 2, length_scale=OMEGA**-0.5, hidden=(8,))
        ),
        lambda x: harmonic_trap(x, OMEGA),
    ),
    # a polarised electron gas (no spin-down electron) with a twist: complex ln psi
    "gas": (
        SquareRootFlowWavefunction(
            PlaneWaveBasis(2 * np.pi * (M_2D + TWIST) / L, L),
            Backflow(3, 0, 2, kind="periodic", box_length=L, hidden=(8,)),
        ),
        lambda x: 0.0,
    ),
    # a dot of 2 + 2 electrons in a learned geminal
    "dot_geminal": (
        SquareRootFlowWavefunction(
            HarmonicBasis(QN_2D, OMEGA), Backflow(2, 2, 2, length_scale=OMEGA**-0.5, hidden=(8,)),
            geminal=True,
        ),
        lambda x: harmonic_trap(x, OMEGA),
    ),
}


@functools.lru_cache(maxsize=None)
def energy_fn(name, method):
    """One jitted batched E_loc per system and method, shared by the tests (compiles once)."""
    wf, potential = SYSTEMS[name]
    one = lambda p, x, u, d: wf.local_energy(p, x, u, d, potential, laplacian=method)  # noqa: E731
    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0)))


@functools.lru_cache(maxsize=None)
def log_psi_fn(wf):
    return jax.jit(jax.vmap(wf.log_psi, in_axes=(None, 0, 0, 0)))


def batch(name, b=4):
    """b samples and occupations of system ``name``."""
    wf, _ = SYSTEMS[name]
    key = jax.random.PRNGKey(7)
    if name == "dot":
        x = jax.random.normal(key, (b, *wf.shape)) / np.sqrt(OMEGA)
        up = jnp.array([[0, 1], [0, 3], [2, 5], [6, 4]])[:b]
        down = jnp.array([[0], [2], [5], [3]])[:b]
    elif name == "dot_geminal":
        x = jax.random.normal(key, (b, *wf.shape)) / np.sqrt(OMEGA)
        up = down = jnp.array([[0, 2], [0, 2], [1, 3], [2, 4]])[:b]
    else:
        x = jax.random.uniform(key, (b, *wf.shape)) * L
        up = jnp.array([[0, 1, 2], [0, 3, 4], [5, 2, 8], [1, 6, 7]])[:b]
        down = jnp.zeros((b, 0), dtype=int)
    return x, up, down


@pytest.fixture
def watchdog():
    """jitted jax.hessian can deadlock on jax 0.10.2 (idle CPU, no error; seen here at batch 256 for
    the N=6 gas). pytest-timeout is not installed: if the test is stuck for 10 minutes, dump every
    thread's traceback and end the process, so a hang becomes a visible failure."""
    faulthandler.dump_traceback_later(600, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


# ---- local energy -----------------------------------------------------------------------------
# One test per system so that the folx and hessian functions compile once per process (pytest-xdist
# would otherwise compile them again in each worker that draws one of the checks).
def test_local_energy_dot_zero_variance_and_folx_equals_hessian(watchdog):
    wf, _ = SYSTEMS["dot"]
    x, up, down = batch("dot")  # batch 4: jax.hessian stays clear of the large-batch hang
    # identity flow, V = trap, no interaction: E_loc(X) = sum of the occupied oscillator levels
    e = energy_fn("dot", "folx")(wf.init(jax.random.PRNGKey(0)), x, up, down)
    eps = wf.basis.energies()
    exact = eps[np.asarray(up)].sum(1) + eps[np.asarray(down)].sum(1)
    np.testing.assert_allclose(e.real, exact, rtol=1e-11)
    np.testing.assert_allclose(e.imag, 0.0, atol=1e-12)
    # a strong backflow: the Laplacian of ln|det dZ/dX| enters; folx must agree with jax.hessian
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    e_folx = energy_fn("dot", "folx")(params, x, up, down)
    e_hess = energy_fn("dot", "hessian")(params, x, up, down)
    np.testing.assert_allclose(e_folx, e_hess, rtol=1e-10, atol=1e-10)
    assert float(jnp.max(jnp.abs(e_folx.imag))) == 0.0
    assert float(jnp.std(e_folx.real)) > 1e-2  # no longer an eigenstate: not vacuous


def test_local_energy_gas_plane_waves_exact_and_folx_equals_hessian(watchdog):
    wf, _ = SYSTEMS["gas"]
    x, up, down = batch("gas")
    # identity flow: kinetic E_loc = sum |k + twist|^2 / 2 exactly, real
    e = energy_fn("gas", "folx")(wf.init(jax.random.PRNGKey(0)), x, up, down)
    exact = wf.basis.energies()[np.asarray(up)].sum(1)
    np.testing.assert_allclose(e.real, exact, rtol=1e-11)
    np.testing.assert_allclose(e.imag, 0.0, atol=1e-11)
    # complex psi with a backflow: real and imaginary parts of E_loc against jax.hessian
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    e_folx = energy_fn("gas", "folx")(params, x, up, down)
    e_hess = energy_fn("gas", "hessian")(params, x, up, down)
    np.testing.assert_allclose(e_folx, e_hess, rtol=1e-10, atol=1e-10)
    assert float(jnp.max(jnp.abs(e_folx.imag))) > 1e-3


# ---- Hutchinson's kinetic energy ---------------------------------------------------------------
def test_hutchinson_laplacian_over_a_complete_probe_set_is_the_exact_trace():
    """With the D probes sqrt(D) e_k the mean of v^T H v is tr H exactly: the estimator's
    Hessian-vector products and gradient against jax.hessian and jax.grad, for 1/2 ln|det| of a
    perturbed periodic backflow (the term it serves)."""
    from qvfe.wavefunction import hutchinson_laplacian

    bf = Backflow(3, 2, 2, kind="periodic", box_length=L, hidden=(8,), n_layers=2)
    params = perturbed(bf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 2.0)

    def f(x_flat):
        return 0.5 * bf.forward_and_log_det(params, x_flat.reshape(5, 2))[1]

    x = jax.random.uniform(jax.random.PRNGKey(2), (10,)) * L
    probes = np.sqrt(10.0) * jnp.eye(10)
    grad, lap = jax.jit(hutchinson_laplacian, static_argnums=0)(f, x, probes)
    np.testing.assert_allclose(grad, jax.grad(f)(x), rtol=1e-12, atol=1e-14)
    exact = jnp.trace(jax.hessian(f)(x))
    np.testing.assert_allclose(lap, exact, rtol=1e-10)
    assert abs(float(exact)) > 1e-3  # not vacuous


HUTCHINSON_SYSTEMS = ("dot", "gas")


@pytest.mark.parametrize("name", HUTCHINSON_SYSTEMS)
def test_hutchinson_kinetic_energy_is_unbiased_and_exact_for_the_identity_flow(name):
    """Per sample, the mean over 400 probe draws of the Hutchinson local energy is folx's within
    4 standard errors (real and imaginary parts; the imaginary part has no estimated term); for
    the identity flow (ln|det| = 0) they agree to rounding."""
    wf, potential = SYSTEMS[name]
    x, up, down = batch(name)
    exact_fn = energy_fn(name, "folx")

    @jax.jit
    def hutch(params, keys):
        def one(x, u, d, k):
            return wf.local_energy(params, x, u, d, potential, laplacian="hutchinson", key=k,
                                   probes=2)
        return jax.vmap(one)(x, up, down, keys)

    identity = wf.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(3), x.shape[0])
    np.testing.assert_allclose(hutch(identity, keys), exact_fn(identity, x, up, down),
                               rtol=1e-11, atol=1e-11)
    params = perturbed(identity, jax.random.PRNGKey(1), 3.0)
    exact = np.asarray(exact_fn(params, x, up, down))
    draw_keys = jax.vmap(lambda k: jax.random.split(k, x.shape[0]))(
        jax.random.split(jax.random.PRNGKey(5), 400))
    draws = np.asarray(jax.jit(jax.vmap(hutch, (None, 0)))(params, draw_keys))
    mean, se = draws.mean(0), draws.real.std(0) / np.sqrt(len(draws))
    assert np.all(se > 0)  # the probes do enter
    assert np.all(np.abs(mean.real - exact.real) < 4 * se), (mean.real - exact.real) / se
    np.testing.assert_allclose(draws.imag - exact.imag, 0.0, atol=1e-9)


def test_hutchinson_kinetic_energy_with_the_nuclei_and_opposite_spin_flows():
    """Hydrogen's stack (exact-cusp and learned electron-nucleus steps, opposite-spin and
    collective layers, backflow; 3D, periodic, twisted plane waves): the Hutchinson local energy averaged over
    probe draws is folx's within 4 standard errors per sample, and the Z of the flows'
    log-det-free forward maps equals that of forward_and_log_det."""
    from qvfe.flows.nuclei import ElectronNucleusFlow

    box = 4.0
    m = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]])
    wf = SquareRootFlowWavefunction(
        PlaneWaveBasis(2 * np.pi * (m + 0.25) / box, box),
        Backflow(2, 2, 3, kind="periodic", box_length=box, hidden=(8,)),
        nuclei=ElectronNucleusFlow(2, 3, kind="periodic", box_length=box, hidden=(8,),
                                   n_layers=1, cusp_scale=0.3, cusp_charge=1.0),
        opposite_spin=OppositeSpinFlow(2, 2, 3, box, hidden=(8,)),
        collective=CollectiveFlow(4, 3, box, shells=2, strength=3.0))
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.0)
    b = 3
    x = jax.random.uniform(jax.random.PRNGKey(4), (b, 4, 3)) * box
    s = jax.random.uniform(jax.random.PRNGKey(5), (b, 2, 3)) * box
    up = jnp.array([[0, 1], [0, 2], [3, 4]])
    down = jnp.array([[0, 3], [1, 2], [0, 4]])

    def zero(x, s):
        return 0.0

    z_plain = jax.vmap(lambda x, s: wf._transport(params, x, None, None, (s,),
                                                 with_log_det=False)[0])(x, s)
    z_full = jax.vmap(lambda x, s: wf._transport(params, x, None, None, (s,))[0])(x, s)
    np.testing.assert_allclose(z_plain, z_full, rtol=1e-13, atol=1e-13)
    assert float(jnp.max(jnp.abs(z_full - x))) > 1e-2  # the flows move the electrons

    exact = jax.jit(jax.vmap(lambda x, u, d, s: wf.local_energy(params, x, u, d, zero, s)))(
        x, up, down, s)

    def hutch(key):
        keys = jax.random.split(key, b)
        return jax.vmap(lambda x, u, d, s, k: wf.local_energy(
            params, x, u, d, zero, s, laplacian="hutchinson", key=k))(x, up, down, s, keys)

    draws = np.asarray(jax.jit(jax.vmap(hutch))(jax.random.split(jax.random.PRNGKey(6), 400)))
    mean, se = draws.mean(0), draws.real.std(0) / np.sqrt(len(draws))
    assert np.all(se > 0)
    assert np.all(np.abs(mean.real - np.asarray(exact).real) < 4 * se)
    np.testing.assert_allclose(draws.imag - np.asarray(exact).imag, 0.0, atol=1e-9)


def test_flow_det_sign_is_the_sign_of_the_whole_stacks_jacobian():
    """Hydrogen's stack with a backflow above strength 1 (which may fold): ``flow_det_sign`` is
    the sign of det dZ/dX of the whole transport, electron-nucleus and opposite-spin flows
    included, and a collective layer above strength 1, on clustered configurations where some
    fold and some do not."""
    import dataclasses

    from qvfe.flows.nuclei import ElectronNucleusFlow

    box, n = 4.0, 4
    m = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0]])
    wf = SquareRootFlowWavefunction(
        PlaneWaveBasis(2 * np.pi * (m + 0.25) / box, box),
        Backflow(2, 2, 3, kind="periodic", box_length=box, hidden=(8,), strength=40.0),
        nuclei=ElectronNucleusFlow(2, 3, kind="periodic", box_length=box, hidden=(8,),
                                   n_layers=1, cusp_scale=0.3, cusp_charge=1.0),
        opposite_spin=OppositeSpinFlow(2, 2, 3, box, hidden=(8,)),
        collective=CollectiveFlow(4, 3, box, shells=2, strength=40.0))
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    b = 64
    x = 0.3 * box * jax.random.uniform(jax.random.PRNGKey(4), (b, n, 3))
    s = jax.random.uniform(jax.random.PRNGKey(5), (b, 2, 3)) * box

    def full_sign(x, s):
        jac = jax.jacfwd(lambda v: wf._transport(params, v.reshape(n, 3), None, None, (s,),
                                                 with_log_det=False)[0].reshape(-1))(x.reshape(-1))
        return jnp.linalg.slogdet(jac)[0]

    signs = np.asarray(jax.jit(jax.vmap(lambda x, s: wf.flow_det_sign(params, x, None, None, s)))(
        x, s))
    np.testing.assert_array_equal(signs, np.asarray(jax.jit(jax.vmap(full_sign))(x, s)))
    assert (signs < 0).any() and (signs > 0).any()  # not vacuous
    # the collective layer folds some of them on its own
    alone = jax.vmap(lambda x, s: wf.collective.det_sign(
        params["collective"], wf.opposite_spin.forward(
            params["opposite_spin"], wf.nuclei.forward(params["nuclei"], x, s))))(x, s)
    assert (np.asarray(alone) < 0).any()
    # at strength 1 the same parameters cannot fold anywhere
    bound = dataclasses.replace(
        wf, backflow=dataclasses.replace(wf.backflow, strength=1.0),
        collective=dataclasses.replace(wf.collective, strength=1.0))
    assert (np.asarray(jax.vmap(lambda x, s: bound.flow_det_sign(params, x, None, None, s))(
        x, s)) > 0).all()


def test_hutchinson_needs_a_key():
    wf, potential = SYSTEMS["gas"]
    x, up, down = batch("gas", 1)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        wf.local_energy(wf.init(jax.random.PRNGKey(0)), x[0], up[0], down[0], potential,
                        laplacian="hutchinson")


def test_hutchinson_needs_a_probe():
    wf, potential = SYSTEMS["gas"]
    x, up, down = batch("gas", 1)
    with pytest.raises(ValueError, match="probes must be >= 1"):
        wf.local_energy(wf.init(jax.random.PRNGKey(0)), x[0], up[0], down[0], potential,
                        laplacian="hutchinson", key=jax.random.PRNGKey(1), probes=0)


def _gas_with_jastrow(jastrow):
    return SquareRootFlowWavefunction(
        PlaneWaveBasis(2 * np.pi * (M_2D + TWIST) / L, L),
        Backflow(2, 1, 2, kind="periodic", box_length=L, hidden=(8,)), jastrow=jastrow)


def test_local_energy_with_a_jastrow_factor_is_the_laplacian_of_psi_over_psi(watchdog):
    """Complex psi (twisted plane waves) x periodic backflow x Jastrow factor with its
    long-range term: E_loc = -1/2 lap(psi)/psi from jax.hessian of psi's real and imaginary
    parts themselves (not of ln psi), and |psi| periodic with the twist's Bloch phase."""
    wf = _gas_with_jastrow(PeriodicJastrow(2, 1, L, terms=2, dim=2, long_range_shells=2))
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 2.0)
    params["jastrow"] = perturbed(wf.init(jax.random.PRNGKey(0))["jastrow"],
                                  jax.random.PRNGKey(2), 0.3)
    up, down = jnp.array([0, 3]), jnp.array([1])
    x = L * jax.random.uniform(jax.random.PRNGKey(7), (3, 2))

    def psi_parts(v):
        re, im = wf.log_psi(params, v.reshape(3, 2), up, down)
        return jnp.exp(re) * jnp.stack([jnp.cos(im), jnp.sin(im)])

    value = psi_parts(x.reshape(-1))
    lap = jnp.trace(jax.hessian(psi_parts)(x.reshape(-1)), axis1=-2, axis2=-1)
    expected = complex(-0.5 * (lap[0] + 1j * lap[1]) / (value[0] + 1j * value[1]))
    assert abs(params["jastrow"]["long_range"]).max() > 0
    for method in ("folx", "hessian"):
        got = complex(wf.local_energy(params, x, up, down, lambda _: 0.0, laplacian=method))
        assert abs(got - expected) < 1e-9 * max(1.0, abs(expected)), (method, got, expected)
    re0, im0 = wf.log_psi(params, x, up, down)
    for i, axis in ((0, 0), (2, 1)):  # a spin-up and the spin-down electron, along x and y
        re1, im1 = wf.log_psi(params, x.at[i, axis].add(L), up, down)
        assert float(re1) == pytest.approx(float(re0), abs=1e-12)
        assert _phase_difference(im1, im0 + 2 * np.pi * TWIST[axis]) == pytest.approx(0.0,
                                                                                     abs=1e-9)


def test_a_jastrow_factor_must_match_the_wavefunction():
    """Its electrons, dimension and box are the wavefunction's, and it does not go with the
    exact cusp layers (both make the pair cusp)."""
    with pytest.raises(ValueError, match="n_up, n_down or dim"):
        _gas_with_jastrow(PeriodicJastrow(2, 1, L, terms=2, dim=3))
    with pytest.raises(ValueError, match="n_up, n_down or dim"):
        _gas_with_jastrow(PeriodicJastrow(3, 0, L, terms=2, dim=2))
    with pytest.raises(ValueError, match="box_length"):
        _gas_with_jastrow(PeriodicJastrow(2, 1, 2 * L, terms=2, dim=2))
    cusps = Backflow(2, 1, 2, kind="periodic", box_length=L, hidden=(8,), n_layers=0,
                     pair_cusps=1.0)
    with pytest.raises(ValueError, match="exclude each other"):
        SquareRootFlowWavefunction(
            PlaneWaveBasis(2 * np.pi * (M_2D + TWIST) / L, L),
            Backflow(2, 1, 2, kind="periodic", box_length=L, hidden=(8,)),
            jastrow=PeriodicJastrow(2, 1, L, terms=2, dim=2), cusps=cusps)
    with pytest.raises(ValueError, match="box_length"):
        SquareRootFlowWavefunction(HarmonicBasis(QN_2D, OMEGA),
                                   Backflow(2, 1, 2, hidden=(8,)),
                                   jastrow=PeriodicJastrow(2, 1, L, terms=2, dim=2))


# ---- ln psi ------------------------------------------------------------------------------------
def _phase_difference(a, b):
    return np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_exchange_of_same_spin_electrons_flips_the_sign(name):
    wf, _ = SYSTEMS[name]
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    x, up, down = batch(name)
    swapped = x.at[:, [0, 1]].set(x[:, [1, 0]])
    re, im = log_psi_fn(wf)(params, x, up, down)
    re_s, im_s = log_psi_fn(wf)(params, swapped, up, down)
    np.testing.assert_allclose(re_s, re, rtol=1e-11)
    np.testing.assert_allclose(np.abs(_phase_difference(im_s, im)), np.pi, rtol=1e-11)
    if name == "dot":
        # up and down electrons are distinguishable: swapping them is no symmetry at all
        cross = x.at[:, [0, 2]].set(x[:, [2, 0]])
        re_c, _ = log_psi_fn(wf)(params, cross, up, down)
        assert float(jnp.max(jnp.abs(re_c - re))) > 1e-2


def test_twisted_boundary_condition_of_the_gas():
    """Moving one electron by L e_a multiplies psi by exp(2 pi i twist_a): |psi|^2 is periodic,
    which is what Metropolis relies on when it wraps walkers into the box."""
    wf, _ = SYSTEMS["gas"]
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    x, up, down = batch("gas")
    re, im = log_psi_fn(wf)(params, x, up, down)
    for i, a in [(0, 0), (2, 1)]:
        re_s, im_s = log_psi_fn(wf)(params, x.at[:, i, a].add(L), up, down)
        np.testing.assert_allclose(re_s, re, rtol=1e-11)
        expected = np.angle(np.exp(2j * np.pi * TWIST[a])) * np.ones(len(x))
        np.testing.assert_allclose(_phase_difference(im_s, im), expected, atol=1e-10)


def _grid_norm(wf, params, up, down, grid, weight):
    """int |psi|^2 on a tensor grid (rows of ``grid``: full configurations, flattened)."""
    n = len(grid)
    xs = grid.reshape(n, *wf.shape)
    re, _ = log_psi_fn(wf)(params, xs, jnp.tile(up, (n, 1)), jnp.tile(down, (n, 1)))
    return float(jnp.sum(jnp.exp(2 * re)) * weight), np.exp(2 * np.asarray(re))


def _tensor_grid(axes):
    mesh = np.meshgrid(*axes, indexing="ij")
    return jnp.asarray(np.stack([m.ravel() for m in mesh], axis=-1))


CASES = {
    # one electron in 2D (the spin-down species is empty), only the one-body term acts
    "1e_2d_dot": (
        SquareRootFlowWavefunction(HarmonicBasis(QN_2D, 1.0), Backflow(1, 0, 2, hidden=(8,))),
        [1], [], "open",
    ),
    # two same-spin electrons in 1D: pair + one-body terms, antisymmetric determinant
    "2e_1d_dot": (
        SquareRootFlowWavefunction(
            HarmonicBasis(np.arange(4)[:, None], 1.0), Backflow(2, 0, 1, hidden=(8,))
        ),
        [0, 2], [], "open",
    ),
    # one up and one down electron on a 1D ring: periodic pair backflow
    "2e_1d_ring": (
        SquareRootFlowWavefunction(
            PlaneWaveBasis(2 * np.pi * (np.array([[0], [1], [-1]]) + 0.2) / L, L),
            Backflow(1, 1, 1, kind="periodic", box_length=L, hidden=(8,)),
        ),
        [1], [2], "periodic",
    ),
    # the same pair moved by the opposite-spin flow before the backflow
    "2e_1d_ring_opposite_spin": (
        SquareRootFlowWavefunction(
            PlaneWaveBasis(2 * np.pi * (np.array([[0], [1], [-1]]) + 0.2) / L, L),
            Backflow(1, 1, 1, kind="periodic", box_length=L, hidden=(8,)),
            opposite_spin=OppositeSpinFlow(1, 1, 1, L, length_scale=0.5, hidden=(8,),
                                           n_layers=2),
        ),
        [1], [2], "periodic",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_norm_is_one_with_a_nontrivial_backflow(case):
    """The square-root flow keeps psi_n normalised for any bijective backflow."""
    wf, up, down, geometry = CASES[case]
    n_coord = wf.shape[0] * wf.shape[1]
    if geometry == "open":
        axis, dx = np.linspace(-6.5, 6.5, 131 if n_coord == 2 else 27, retstep=True)
    else:  # periodic: the uniform grid is spectrally accurate
        axis, dx = np.linspace(0.0, L, 64, endpoint=False, retstep=True)
    grid = _tensor_grid([axis] * n_coord)
    up, down = jnp.array(up, dtype=int), jnp.array(down, dtype=int)
    params0 = wf.init(jax.random.PRNGKey(0))
    params = perturbed(params0, jax.random.PRNGKey(1), 5.0)
    norm0, dens0 = _grid_norm(wf, params0, up, down, grid, dx**n_coord)
    norm, dens = _grid_norm(wf, params, up, down, grid, dx**n_coord)
    np.testing.assert_allclose(norm0, 1.0, atol=1e-7)
    np.testing.assert_allclose(norm, 1.0, atol=1e-7)
    # the backflow really changed the density, so the norm check is not vacuous
    assert np.max(np.abs(dens - dens0)) > 0.05 * np.max(dens0)


def test_parameter_derivatives_of_re_and_im_match_finite_differences():
    """What the engine differentiates for 2 Re E[(d ln psi)^* (E_loc - E)]: both parts of ln psi."""
    wf, _ = SYSTEMS["gas"]
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    x, up, down = batch("gas", 1)
    x, up, down = x[0], up[0], down[0]
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    direction = perturbed(zeros, jax.random.PRNGKey(5), 1.0)

    def along(t):
        p = jax.tree_util.tree_map(lambda a, b: a + t * b, params, direction)
        return jnp.stack(wf.log_psi(p, x, up, down))

    # reverse mode, as the engine uses it (jax.grad / jax.vjp of each part)
    grads = jax.jit(jax.jacrev(lambda p: jnp.stack(wf.log_psi(p, x, up, down))))(params)
    via_grad = sum(
        jnp.tensordot(g, d, axes=d.ndim)
        for g, d in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction))
    )
    h = 1e-5
    along_jit = jax.jit(along)
    fd = (along_jit(h) - along_jit(-h)) / (2 * h)
    np.testing.assert_allclose(via_grad, fd, rtol=1e-6)
    assert np.all(np.abs(np.asarray(via_grad)) > 1e-6)


def test_exact_electron_nucleus_cusp_cancels_the_proton_divergence_of_the_local_energy():
    """H2 (R = 1.4 bohr) from smooth s + p Gaussian orbitals with the electron-nucleus flow's
    exact cusp step and perturbed learned layers: as electron 1 approaches a proton (1e-4 to
    1e-7 bohr, two directions), r E_loc tends to within 0.02 of 0: the kinetic energy's +1/r
    cancels at least 98 % of the proton's -1/r (what is left, ~0.01/r, is the tilt of the kink
    by the other proton's term); without the cusp step the same flow leaves r E_loc -> -1."""
    from qvfe.flows.nuclei import ElectronNucleusFlow
    from qvfe.physics.molecular_orbitals import (DEFAULT_EXPONENTS, POLARISATION_EXPONENTS,
                                                 molecular_orbitals)
    from qvfe.physics.potentials import coulomb_charges

    s = jnp.array([[0.0, 0.0, -0.7], [0.0, 0.0, 0.7]])
    basis = molecular_orbitals(np.asarray(s), n_electrons=2,
                               exponents=DEFAULT_EXPONENTS[DEFAULT_EXPONENTS < 10.0],
                               p_exponents=POLARISATION_EXPONENTS)
    charges = jnp.array([-1.0, -1.0, 1.0, 1.0])

    def potential(x, nuc):
        return coulomb_charges(jnp.concatenate([x, nuc]), charges)

    def e_loc(cusp_charge):
        wf = SquareRootFlowWavefunction(
            basis, Backflow(1, 1, 3, hidden=(8,)),
            nuclei=ElectronNucleusFlow(2, 3, kind="open", hidden=(8,), n_layers=2,
                                       cusp_charge=cusp_charge))
        params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 0.5)
        other = jnp.array([0.4, -0.9, 0.3])
        zero = jnp.zeros(1, dtype=jnp.int32)

        @jax.jit
        def at(r, direction):
            x = jnp.stack([s[1] + r * direction, other])
            return jnp.real(wf.local_energy(params, x, zero, zero, potential, s))

        return at

    exact, learned = e_loc(1.0), e_loc(None)
    for direction in (jnp.array([0.0, 0.0, 1.0]), jnp.array([0.6, 0.0, -0.8])):
        for r in (1e-4, 1e-5, 1e-6, 1e-7):
            assert abs(r * float(exact(r, direction))) < 0.02, (r, direction)
            assert r * float(learned(r, direction)) == pytest.approx(-1.0, abs=0.01)


# ---- geminal base state -------------------------------------------------------------------------
def _geminal_pair(basis, n, dim, key=0):
    """The same backflow with determinants and with a geminal, n up + n down electrons."""
    backflow = Backflow(n, n, dim, hidden=(8,))
    return (SquareRootFlowWavefunction(basis, backflow),
            SquareRootFlowWavefunction(basis, backflow, geminal=True))


def test_geminal_at_the_projector_is_the_determinant_state():
    """C = P_n (Delta = 0) gives ln psi and the sign of the two determinants exactly, also for an
    open pattern (different up and down orbitals) and a perturbed backflow."""
    det_wf, gem_wf = _geminal_pair(HarmonicBasis(QN_2D, OMEGA), 2, 2)
    params = perturbed(gem_wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    params["geminal"] = jnp.zeros_like(params["geminal"])
    x = jax.random.normal(jax.random.PRNGKey(2), (6, 4, 2))
    for up, down in (([0, 2], [0, 2]), ([1, 3], [0, 5])):
        up, down = jnp.tile(jnp.array(up), (6, 1)), jnp.tile(jnp.array(down), (6, 1))
        want = log_psi_fn(det_wf)({"backflow": params["backflow"]}, x, up, down)
        got = log_psi_fn(gem_wf)(params, x, up, down)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(np.cos(got[1]), np.cos(want[1]), atol=1e-12)


def test_geminal_local_energy_folx_equals_hessian(watchdog):
    """Perturbed geminal and backflow: the forward Laplacian through det(Phi C Phi^T) and its
    normalisation agrees with jax.hessian; at the projector with the identity flow E_loc is the
    sum of the occupied levels (an eigenstate)."""
    wf, _ = SYSTEMS["dot_geminal"]
    x, up, down = batch("dot_geminal")
    e = energy_fn("dot_geminal", "folx")(wf.init(jax.random.PRNGKey(0)), x, up, down)
    eps = wf.basis.energies()
    np.testing.assert_allclose(e.real, 2 * eps[np.asarray(up)].sum(1), rtol=1e-11)
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    e_folx = energy_fn("dot_geminal", "folx")(params, x, up, down)
    e_hess = energy_fn("dot_geminal", "hessian")(params, x, up, down)
    np.testing.assert_allclose(e_folx, e_hess, rtol=1e-10, atol=1e-10)
    assert float(jnp.std(e_folx.real)) > 1e-2


def test_geminal_state_is_normalised_by_the_sum_of_squared_minors():
    """int |psi|^2 = 1 for a random symmetric C: 2 up + 2 down electrons in 1D harmonic orbitals
    (omega = 1, degrees <= 4), identity flow, Gauss-Hermite quadrature with 9 nodes per coordinate
    (exact for the polynomial x Gaussian integrand); e_2 by Newton's identities equals the sum
    of the squared 2 x 2 minors of C."""
    basis = HarmonicBasis(np.arange(5)[:, None], 1.0)
    _, wf = _geminal_pair(basis, 2, 1)
    params = wf.init(jax.random.PRNGKey(0))
    params["geminal"] = 0.7 * jax.random.normal(jax.random.PRNGKey(3), params["geminal"].shape)
    up = down = jnp.array([0, 1])
    c = wf.geminal_matrix(params, up, down)
    minors = sum(np.linalg.det(np.asarray(c)[np.ix_(s, t)]) ** 2
                 for s in itertools.combinations(range(5), 2)
                 for t in itertools.combinations(range(5), 2))
    np.testing.assert_allclose(elementary_symmetric_of_gram(c, 2), minors, rtol=1e-12)
    assert abs(minors - 1.0) > 0.5  # the normalisation is not trivial
    nodes, weights = np.polynomial.hermite.hermgauss(9)
    grid = _tensor_grid([nodes] * 4)
    w = np.prod(_tensor_grid([weights] * 4), axis=-1) * np.exp(np.sum(np.asarray(grid) ** 2, -1))
    n = len(grid)
    re, _ = log_psi_fn(wf)(params, grid.reshape(n, 4, 1), jnp.tile(up, (n, 1)),
                           jnp.tile(down, (n, 1)))
    np.testing.assert_allclose(np.sum(w * np.exp(2 * np.asarray(re))), 1.0, atol=1e-10)


# ---- exact electron-electron cusps (periodic) ----------------------------------------------------
def _cusp_gas(dim, exact_cusps):
    """A dense gas (rs about 1.25 in 3D, 1 in 2D): 8 + 8 (3D) or 6 + 6 (2D) electrons in a
    twisted periodic box, two perturbed learned layers. With as many electrons as in
    production the layer's depths are small (b = 0.086 and 0.030 in 3D) and the other pairs
    tilt the kink by under 1 % (with 2 + 2 electrons the bound allows depths 0.37 and 0.16, and
    the tilt reaches 15 %)."""
    n, box = (8, 5.08) if dim == 3 else (6, 6.1)
    m = np.array(list(itertools.product([0, 1, -1], repeat=dim)))
    wf = SquareRootFlowWavefunction(
        PlaneWaveBasis(2 * np.pi * (m + 0.17) / box, box),
        Backflow(n, n, dim, kind="periodic", box_length=box, hidden=(8,), n_layers=2,
                 pair_cusps=float(exact_cusps)))
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.0)
    start = jnp.asarray(np.random.default_rng(2).uniform(0, box, (2 * n, dim)))
    return wf, params, start, jnp.arange(n), box


@pytest.mark.parametrize("dim", [2, 3])
def test_periodic_exact_cusps_give_katos_slopes_of_ln_psi(dim):
    """ln|psi| along a line through a coalescence, f(t) = c + g t + gamma |t| + O(t^2) (less
    ln|t| for a same-spin pair, whose determinant vanishes there): (f(2h) + f(-2h) - f(h) -
    f(-h)) / 2h -> gamma = 1/(d - 1) for opposite and 1/(d + 1) for same spins within the
    other pairs' tilt (4 %), whatever the perturbed learned layers do; without the cusp layer
    it is 0."""
    direction = jnp.asarray(np.array([0.36, -0.48, 0.8])[:dim] / np.linalg.norm(
        np.array([0.36, -0.48, 0.8])[:dim]))
    h = 1e-5
    for exact_cusps in (True, False):
        wf, params, start, occupied, _ = _cusp_gas(dim, exact_cusps)
        for partner, kato in [(len(occupied), 1 / (dim - 1)), (1, 1 / (dim + 1))]:
            def f(t, partner=partner):
                x = start.at[partner].set(start[0] + t * direction)
                return wf.log_psi(params, x, occupied, occupied)[0] - (
                    jnp.log(jnp.abs(t)) if partner == 1 else 0.0)
            slope = (f(2 * h) + f(-2 * h) - f(h) - f(-h)) / (2 * h)
            expected = kato if exact_cusps else 0.0
            assert float(slope) == pytest.approx(expected, abs=0.04 * kato), (partner, slope)


def test_periodic_exact_cusps_cancel_the_coulomb_divergence_of_the_local_energy():
    """3D, 8 + 8 electrons, a minimum-image Coulomb pair sum: as an electron approaches another
    (1e-4 to 1e-6 bohr, opposite and same spins), r E_loc tends to within 0.02 of 0 with the cusp
    layer (-0.007 is left: the tilt of the kink); without it the +1/r is left whole
    (r E_loc -> 1)."""
    box = 5.08

    def potential(x):
        d = x[:, None, :] - x[None, :, :]
        d = d - box * jnp.round(d / box)
        r2 = jnp.sum(d * d, axis=-1) + jnp.eye(x.shape[0])
        return 0.5 * jnp.sum((1.0 - jnp.eye(x.shape[0])) / jnp.sqrt(r2))

    direction = jnp.array([0.36, -0.48, 0.8])
    for exact_cusps, limit in ((True, 0.0), (False, 1.0)):
        wf, params, start, occupied, _ = _cusp_gas(3, exact_cusps)

        @jax.jit
        def e_loc(r, partner, wf=wf, params=params, start=start, occupied=occupied):
            x = start.at[partner].set(start[0] + r * direction)
            return jnp.real(wf.local_energy(params, x, occupied, occupied, potential))

        for partner in (len(occupied), 1):
            for r in (1e-4, 1e-5, 1e-6):
                assert r * float(e_loc(r, partner)) == pytest.approx(limit, abs=0.02), \
                    (exact_cusps, partner, r)


def test_periodic_exact_cusps_kinetic_energy_by_folx_equals_hessian():
    """The cusp layer's log-determinant enters the kinetic energy: folx's forward Laplacian
    equals jax.hessian's at generic configurations (2D, 6 + 6 electrons, perturbed layers)."""
    wf, params, start, occupied, box = _cusp_gas(2, True)
    xs = start + jax.random.uniform(jax.random.PRNGKey(5), (3, *start.shape)) * box

    def kinetic(method):
        one = lambda x: wf.kinetic_energy(params, x, occupied, occupied,  # noqa: E731
                                          laplacian=method)
        return jax.jit(jax.vmap(one))(xs)

    np.testing.assert_allclose(kinetic("folx"), kinetic("hessian"), rtol=1e-10, atol=1e-10)


def test_exact_cusps_with_protons_keep_both_cusps():
    """Hydrogen's stack at rs = 1.25 (8 + 8 electrons, 16 protons at random, the exact
    electron-proton step and two perturbed learned electron-nucleus steps, a backflow): with the
    cusp layer between the exact step and the learned ones, r E_loc of an electron pair's Coulomb
    term tends to within 0.02 of 0 away from the protons and within 0.08 at 0.1 bohr from one
    (the exact step's own anisotropy there), and the electron-proton cusp stays exact (r E_loc of
    the proton's -1/r within 0.005 of 0)."""
    from qvfe.flows.nuclei import ElectronNucleusFlow

    box, n = 5.08, 8
    m = np.array(list(itertools.product([0, 1, -1], repeat=3)))
    wf = SquareRootFlowWavefunction(
        PlaneWaveBasis(2 * np.pi * (m + 0.25) / box, box),
        Backflow(n, n, 3, kind="periodic", box_length=box, hidden=(8,)),
        nuclei=ElectronNucleusFlow(16, 3, kind="periodic", box_length=box, hidden=(8,),
                                   n_layers=2, cusp_scale=0.3, cusp_charge=1.0),
        cusps=Backflow(n, n, 3, kind="periodic", box_length=box, n_layers=0, pair_cusps=1.0))
    params = perturbed(wf.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.0)
    rng = np.random.default_rng(3)
    s, start = jnp.asarray(rng.uniform(0, box, (16, 3))), jnp.asarray(rng.uniform(0, box, (16, 3)))
    occupied = jnp.arange(n)

    def pairs(x, s):
        d = x[:, None, :] - x[None, :, :]
        d = d - box * jnp.round(d / box)
        r2 = jnp.sum(d * d, axis=-1) + jnp.eye(x.shape[0])
        return 0.5 * jnp.sum((1.0 - jnp.eye(x.shape[0])) / jnp.sqrt(r2))

    def proton(x, s):
        d = x[0] - s[0]
        d = d - box * jnp.round(d / box)
        return -1.0 / jnp.sqrt(jnp.sum(d * d))

    direction = jnp.array([0.36, -0.48, 0.8])

    @jax.jit
    def e_pair(r, centre, partner):
        x = start.at[0].set(centre).at[partner].set(centre + r * direction)
        return jnp.real(wf.local_energy(params, x, occupied, occupied, pairs, s))

    @jax.jit
    def e_proton(r):
        x = start.at[0].set(s[0] + r * direction)
        return jnp.real(wf.local_energy(params, x, occupied, occupied, proton, s))

    near = s[0] + 0.1 * jnp.array([0.0, 0.6, 0.8])
    for centre, tolerance in ((start[0], 0.02), (near, 0.08)):
        for partner in (n, 1):
            assert abs(1e-6 * float(e_pair(1e-6, centre, partner))) < tolerance, partner
    assert abs(1e-6 * float(e_proton(1e-6))) < 0.005
    with pytest.raises(ValueError, match="cusps"):  # learned layers do not belong there
        SquareRootFlowWavefunction(wf.basis, wf.backflow, nuclei=wf.nuclei, cusps=Backflow(
            n, n, 3, kind="periodic", box_length=box, n_layers=1, pair_cusps=1.0))
