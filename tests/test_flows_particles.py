"""Proton flow densities (backflow, spline coupling, 3D pair push, radial spline): uniform at init,
normalised, exact samples, invariance and periodicity."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.particles import (PeriodicCouplingDensity, PeriodicParticleDensity,
                                  PeriodicPushDensity, PeriodicRadialDensity, fit_to_boltzmann)

from helpers import perturbed

L = 2.0
BACKFLOW = PeriodicParticleDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=2)
COUPLING = PeriodicCouplingDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=4, bins=4)
PUSH = PeriodicPushDensity(n=3, dim=2, box_length=L, hidden=(8,), n_layers=2, length_scale=0.5)
RADIAL = PeriodicRadialDensity(n=3, dim=2, box_length=L, n_layers=4, bins=4)


PERTURBED = {"backflow": (BACKFLOW, perturbed(BACKFLOW.init(jax.random.PRNGKey(0)),
                                               jax.random.PRNGKey(1), 3.0)),
             "coupling": (COUPLING, perturbed(COUPLING.init(jax.random.PRNGKey(0)),
                                              jax.random.PRNGKey(1), 0.3)),
             "push": (PUSH, perturbed(PUSH.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1),
                                      1.0)),
             # 0.5: the cell steps' peaks at 1.0 are too narrow for 40000 uniform samples
             "radial": (RADIAL, perturbed(RADIAL.init(jax.random.PRNGKey(0)),
                                          jax.random.PRNGKey(1), 0.5))}


def to_uniform(q, params, s):
    """G(S), the map from a configuration to its uniform variable."""
    return q.forward(params, s)[0]


# Compiled once per flow and shape and shared by the tests: eagerly, every call traced and
# compiled its scans and loops anew (a test's time was mostly that).
@functools.partial(jax.jit, static_argnums=(0, 3))
def sample(q, params, key, batch):
    return q.sample(params, key, batch)


@functools.partial(jax.jit, static_argnums=0)
def log_prob(q, params, s):
    return q.log_prob(params, s)


@functools.partial(jax.jit, static_argnums=0)
def to_uniform_batch(q, params, s):
    return jax.vmap(lambda one: to_uniform(q, params, one))(s)


@pytest.fixture(params=sorted(PERTURBED))
def flow(request):
    return PERTURBED[request.param]


def test_uniform_at_init(flow):
    q, params = flow
    s = sample(q, q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(2), 5)
    lp = log_prob(q, q.init(jax.random.PRNGKey(0)), s)
    np.testing.assert_allclose(np.asarray(lp), -3 * 2 * np.log(L), atol=1e-12)


def test_normalised(flow):
    """E_{S ~ uniform}[q(S) V^n] = 1 (importance sampling of the normalisation, 4 sigma)."""
    q, params = flow
    s = L * jax.random.uniform(jax.random.PRNGKey(3), (40000, 3, 2))
    w = np.exp(np.asarray(log_prob(q, params, s)) + 3 * 2 * np.log(L))
    assert w.std() > 0.05  # far from uniform
    assert abs(w.mean() - 1.0) < 4 * w.std() / np.sqrt(len(w))


def test_samples_follow_q(flow):
    """Samples are exact: G(S) is uniform, i.e. the flow maps them back onto uniform U."""
    q, params = flow
    s = sample(q, params, jax.random.PRNGKey(4), 2000)
    assert float(jnp.min(s)) >= 0.0 and float(jnp.max(s)) < L
    u = to_uniform_batch(q, params, s)
    frac = np.mod(np.asarray(u), L).reshape(-1) / L
    # Kolmogorov-Smirnov against uniform on [0, 1), 1% level
    frac.sort()
    ks = np.max(np.abs(frac - (np.arange(1, len(frac) + 1) / len(frac))))
    assert ks < 1.63 / np.sqrt(len(frac))
    # and the fixed point is exact: forward of the sample gives back the drawn U
    u0 = L * jax.random.uniform(jax.random.PRNGKey(4), (2000, 3, 2))
    diff = np.mod(np.asarray(u) - np.asarray(u0) + L / 2, L) - L / 2
    assert np.max(np.abs(diff)) < 1e-10


@pytest.mark.parametrize("name", ["backflow", "radial"])  # one code path; their own forwards
def test_latent_move_is_a_random_walk_of_u(name):
    """S' = latent_move(S) satisfies G(S') = G(S) + ξ (mod L) with ξ the walk's Gaussian step:
    symmetric in U, where q is uniform, so the hydrogen sampler's Metropolis move of the
    protons needs no q factor (and U + ξ stays uniform: exact samples stay exact)."""
    q, params = PERTURBED[name]
    s = sample(q, params, jax.random.PRNGKey(4), 200)
    key, step = jax.random.PRNGKey(9), 0.3
    moved = jax.jit(lambda x: q.latent_move(params, x, key, step))(s)
    assert float(jnp.min(moved)) >= 0.0 and float(jnp.max(moved)) < L
    both = jax.jit(jax.vmap(lambda one: to_uniform(q, params, one)))(jnp.concatenate([s, moved]))
    u, u_moved = both[:len(s)], both[len(s):]
    xi = step * jax.random.normal(key, s.shape)
    np.testing.assert_allclose(np.mod(np.asarray(u_moved - u - xi) + L / 2, L) - L / 2, 0.0,
                               atol=1e-9)
    assert float(jnp.min(jnp.max(jnp.abs(moved - s), axis=(1, 2)))) > 1e-3  # each one moved


def test_log_prob_density_of_samples(flow):
    """Histogram of a one-particle marginal coordinate agrees with q integrated by importance
    weights (a check that ln q and the samples describe the same density)."""
    q, params = flow
    s = np.asarray(sample(q, params, jax.random.PRNGKey(5), 20000))
    u = L * jax.random.uniform(jax.random.PRNGKey(6), (20000, 3, 2))
    w = np.exp(np.asarray(log_prob(q, params, u)) + 6 * np.log(L))
    bins = np.linspace(0, L, 5)
    h_s, _ = np.histogram(s[:, 0, 0], bins)
    h_w, _ = np.histogram(np.asarray(u)[:, 0, 0], bins, weights=w)
    p_s, p_w = h_s / h_s.sum(), h_w / w.sum()
    err = np.sqrt(p_s * (1 - p_s) / len(s)) + np.sqrt(p_w / len(w)) * w.std()
    assert np.all(np.abs(p_s - p_w) < 5 * err)


def test_periodic_and_backflow_permutation_invariant(flow):
    q, params = flow
    s = L * jax.random.uniform(jax.random.PRNGKey(7), (1, 3, 2))
    lp = log_prob(q, params, s)
    np.testing.assert_allclose(np.asarray(log_prob(q, params, s.at[0, 1, 0].add(L))),
                               np.asarray(lp), atol=1e-12)
    np.testing.assert_allclose(np.asarray(log_prob(q, params, s - L)), np.asarray(lp), atol=1e-12)
    if q is BACKFLOW:  # the coupling's halves label the particles (a valid, unsymmetric q)
        np.testing.assert_allclose(np.asarray(log_prob(q, params, s[:, ::-1])), np.asarray(lp),
                                   atol=1e-12)


def test_coupling_log_det_inverse_shift_and_pair_hole():
    s = L * jax.random.uniform(jax.random.PRNGKey(8), (3, 2))
    params = PERTURBED["coupling"][1]
    u, logdet = jax.jit(COUPLING.forward)(params, s)
    jac = jax.jit(jax.jacfwd(lambda x: COUPLING.forward(params, x)[0]))(s).reshape(6, 6)
    np.testing.assert_allclose(float(logdet), float(jnp.linalg.slogdet(jac)[1]), atol=1e-10)
    back = jax.jit(COUPLING._invert_one)(params, u)
    np.testing.assert_allclose(np.mod(np.asarray(back), L), np.asarray(s), atol=1e-10)

    # layer 0 moves axis 0 of the half {0, 2} (bit 0 of the index = 0) given particle 1
    layer = params["layers"][0]
    axis, _, moving = COUPLING._split(0)
    assert axis == 0 and list(moving) == [True, False, True]
    # the shift of one layer is unbounded: no contraction limits a displacement
    layer = dict(layer, push=jax.tree.map(jnp.zeros_like, layer["push"]))  # shift alone
    w, b = layer["out"][-1]
    big = dict(layer, out=layer["out"][:-1] + [(w, b.at[-1].add(0.7 * L))])
    shift = np.mod(np.asarray(COUPLING._layer(big, 0, s)[0] - COUPLING._layer(layer, 0, s)[0]), L)
    np.testing.assert_allclose(shift[moving, 0], 0.7 * L, atol=1e-10)
    np.testing.assert_allclose(shift[~moving], 0.0, atol=1e-12)
    # a strong push: particle 0's density along x nearly vanishes at particle 1's x (c → −0.99)
    identity = jax.tree.map(jnp.zeros_like, COUPLING.init(jax.random.PRNGKey(0))["layers"][0])
    identity = dict(identity, pair=layer["pair"])
    wp, bp = identity["push"][-1]
    hole = dict(identity, push=identity["push"][:-1] + [(wp, bp.at[0].set(20.0).at[1].set(-20.0))])
    xs = jnp.linspace(0.0, L, 4001)[:-1]
    dens = np.exp(np.asarray(jax.jit(jax.vmap(
        lambda x: COUPLING._layer(hole, 0, s.at[0, 0].set(x))[1]))(xs)))
    dens = dens / dens.mean()  # particle 0's density along x given the rest: 1 − 0.99 cos(·)
    expected = 1.0 - 0.99 * np.cos(2 * np.pi * (np.asarray(xs) - float(s[1, 0])) / L)
    np.testing.assert_allclose(dens, expected, atol=1e-6)


def fit_gaussian_core_pair(q, gradient, lr, steps=300, batch=256, core=0.3):
    """Fit q (two particles on the 2-D torus) to βv(r) = 4 e^{−r²/(2 core²)} with
    ``fit_to_boltzmann``; return the fitted βF = E_q[βv + ln q] over 20000 samples, its standard
    error, and the exact βF = −ln(L² ∫ e^{−βv(r)} d²r) by a 400² quadrature."""

    def beta_v(d):
        d = d - L * jnp.round(d / L)
        return 4.0 * jnp.exp(-jnp.sum(d**2, -1) / (2 * core**2))

    grid = (np.arange(400) + 0.5) * L / 400
    mesh = jnp.asarray(np.stack(np.meshgrid(grid, grid), -1))
    beta_f_exact = -np.log(L**4 * np.mean(np.exp(-np.asarray(beta_v(mesh)))))
    params = fit_to_boltzmann(q, q.init(jax.random.PRNGKey(0)), lambda s: beta_v(s[0] - s[1]),
                              jax.random.PRNGKey(1), steps, batch, lr=lr, gradient=gradient)
    s = sample(q, params, jax.random.PRNGKey(9), 20000)
    f = np.asarray(beta_v(s[:, 0] - s[:, 1]) + log_prob(q, params, s))
    return f.mean(), f.std() / np.sqrt(f.size), beta_f_exact


@pytest.mark.parametrize("gradient, lr, tolerance", [
    # the score path runs fast in the radial flow's pair test
    pytest.param("score", 0.03, 0.002, marks=pytest.mark.slow),
    ("pathwise", 0.01, 0.002),
    ("pathwise", 0.03, 0.3)])
def test_coupling_learns_a_repulsive_pair_to_the_exact_free_energy(gradient, lr, tolerance):
    """Two particles on the 2-D torus with a Gaussian-core repulsion βv(r) = 4 e^{−r²/(2·0.3²)},
    q trained by ``fit_to_boltzmann`` (the score-function gradient, as in hydrogen's joint
    training, and the pathwise one, as in its screened-proton pre-fit). The
    exact βF = −ln(L² ∫ e^{−βv(r)} d²r) by quadrature; the variational βF must lie above it within
    3σ and come within 0.002 of it (the uniform q's gap is 0.25: only a pair hole closes it).
    The pathwise fit at 0.03 reaches 0.02 of the exact value in 50 steps, then q collapses
    (gap 27 at step 300): the fit must return its best q instead, within 0.3."""
    q = PeriodicCouplingDensity(n=2, dim=2, box_length=L, hidden=(16,), n_layers=4, bins=8)
    f_var, f_err, beta_f_exact = fit_gaussian_core_pair(q, gradient, lr)
    assert f_var > beta_f_exact - 3 * f_err
    assert f_var - beta_f_exact < tolerance, (f_var, beta_f_exact, f_err)


def test_reparameterized_samples_carry_their_parameter_derivative():
    """dS/dparams at fixed U (the pathwise gradient's ∂S/∂θ, through the bisection's Newton step)
    against central finite differences along a random parameter direction, on a trained-looking
    (random, non-identity) coupling flow; and the same samples as the plain sampler."""
    q = PeriodicCouplingDensity(n=4, dim=3, box_length=L, hidden=(8,), n_layers=6, bins=4)
    params = q.init(jax.random.PRNGKey(0))
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), 2 * len(leaves))
    params = tree.unflatten([a + 0.1 * jax.random.normal(k, a.shape)
                             for a, k in zip(leaves, keys[:len(leaves)])])
    direction = tree.unflatten([jax.random.normal(k, a.shape)
                                for a, k in zip(leaves, keys[len(leaves):])])
    key = jax.random.PRNGKey(2)

    @jax.jit
    def s_of(t):
        p = jax.tree.map(lambda a, v: a + t * v, params, direction)
        return q.sample(p, key, 3, reparameterized=True)

    np.testing.assert_allclose(s_of(0.0), sample(q, params, key, 3), atol=1e-12)
    _, tangent = jax.jvp(s_of, (0.0,), (1.0,))
    eps = 1e-5
    step = s_of(eps) - s_of(-eps)
    fd = (step - L * jnp.round(step / L)) / (2 * eps)  # a sample may cross the box edge
    assert float(jnp.max(jnp.abs(tangent))) > 1e-2  # the check is not vacuous
    np.testing.assert_allclose(tangent, fd, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pathwise"):
        fit_to_boltzmann(PeriodicParticleDensity(n=2, dim=2, box_length=L), {}, lambda s: 0.0,
                         key, 1, gradient="pathwise")


def _forward_matching_slogdet(q, params, s):
    """q's forward map at ``s`` (n, d), its ln|det| checked against slogdet of the Jacobian (a
    positive determinant); returns the latent point, the ln|det| and the Jacobian."""
    n, d = s.shape
    u, logdet = jax.jit(q.forward)(params, s)
    # jitted: eagerly, each scan over the particles compiles anew (twice a test's time)
    jac = jax.jit(jax.jacfwd(lambda x: q.forward(params, x.reshape(n, d))[0].ravel()))(s.ravel())
    sign, ref = jnp.linalg.slogdet(jac)
    assert float(sign) == 1.0
    np.testing.assert_allclose(float(logdet), float(ref), atol=1e-10)
    return u, logdet, jac


def test_push_log_det_inverse_and_pair_hole():
    """The push flow's ln|det| equals slogdet of its Jacobian and the inverse undoes it (3D, three
    particles, halves of unequal size); one fixed particle with a saturated push thins the moving
    particle's density at its position by (1 − a)³, a = contraction/(7/4 + √3) the amplitude of
    ElectronNucleusFlow's step (its Lipschitz bound covers the features' gradients too)."""
    q = PeriodicPushDensity(n=3, dim=3, box_length=3.0, hidden=(8,), n_layers=4)
    params = perturbed(q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.0)
    s = 3.0 * jax.random.uniform(jax.random.PRNGKey(2), (3, 3))
    u, _, _ = _forward_matching_slogdet(q, params, s)
    back = jax.jit(q._invert_one)(params, u)
    np.testing.assert_allclose(np.mod(np.asarray(back - s) + 1.5, 3.0) - 1.5, 0.0, atol=1e-10)
    assert [list(m) for m in q._split(2)] == [[0, 1], [2]]  # bit 1: 2 alone is fixed

    pair = PeriodicPushDensity(n=2, dim=3, box_length=3.0, hidden=(4,), n_layers=1)
    mlp = pair.init(jax.random.PRNGKey(0))["layers"][0]
    w, b = mlp[-1]
    # the bounded MLP's tanh output saturates at −1: η v(D) ≈ −a D near the fixed particle
    strong = {"layers": [mlp[:-1] + [(w, b - 50.0)]]}
    fixed = jnp.array([1.0, 1.0, 1.0])
    at = pair.log_prob_one(strong, jnp.stack([fixed, fixed]))
    far = pair.log_prob_one(strong, jnp.stack([fixed + 1.5, fixed]))
    a = 0.9 / (1.75 + np.sqrt(3.0))
    np.testing.assert_allclose(float(at + 2 * q.log_volume), 3 * np.log(1 - a), atol=1e-6)
    assert float(far) > float(at) + 0.5  # a hole: denser away from the fixed particle


@pytest.mark.slow  # the push's pathwise fit runs fast in test_watchdog, its maps in the test above
def test_push_learns_a_repulsive_pair_to_the_exact_free_energy():
    """As the coupling test above: two particles with a Gaussian-core repulsion on the 2-D torus,
    the push flow fitted by the pathwise gradient comes within 0.012 of the exact βF (the uniform
    q's gap is 0.25). The coupling flow gets closer on this narrow 2-D core (0.002): the hole's
    depth e^{−4} takes the push several steps of at most (1 − a)² each (four layers: 0.013,
    eight: 0.009); on 16 screened protons in 3D the push is the better one (README)."""
    q = PeriodicPushDensity(n=2, dim=2, box_length=L, hidden=(16,), n_layers=8, length_scale=0.5)
    f_var, f_err, beta_f_exact = fit_gaussian_core_pair(q, "pathwise", 0.01)
    assert f_var > beta_f_exact - 3 * f_err
    assert f_var - beta_f_exact < 0.012, (f_var, beta_f_exact, f_err)


def test_radial_log_det_inverse_and_an_unbounded_hole():
    """The radial flow's ln|det| equals slogdet of its Jacobian, the inverse undoes it (3D, three
    particles), and samples carry their parameter derivative (finite differences). Where the
    push's contraction step thins the density at a fixed particle by at most (1 − a)³, one radial
    step with a flat spline at the centre (R'(0) at its floor 1e-3) empties it by 1e-9."""
    q = PeriodicRadialDensity(n=3, dim=3, box_length=3.0, n_layers=4, bins=4)
    params = perturbed(q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.5)
    s = 3.0 * jax.random.uniform(jax.random.PRNGKey(2), (3, 3))
    u, logdet, jac = _forward_matching_slogdet(q, params, s)
    assert abs(float(logdet)) > 1.0
    back = jax.jit(q._invert_one)(params, u)
    # exact up to rounding, which the inverse Jacobian amplifies (entries ~1e8 here: the
    # perturbed splines' slopes compound over 4 layers of ball and cell steps)
    amplification = float(jnp.max(jnp.abs(jnp.linalg.inv(jac))))
    np.testing.assert_allclose(np.mod(np.asarray(back - s) + 1.5, 3.0) - 1.5, 0.0,
                               atol=1e-14 * amplification)

    direction = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(3), p.shape), params)
    key = jax.random.PRNGKey(4)

    @jax.jit
    def sample_along(t):
        moved = jax.tree.map(lambda p, d: p + t * d, params, direction)
        return q.sample(moved, key, 4, reparameterized=True)

    tangent = jax.jvp(sample_along, (0.0,), (1.0,))[1]
    eps = 1e-6
    fd = (sample_along(eps) - sample_along(-eps)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(tangent), np.asarray(fd), atol=1e-6)

    pair = PeriodicRadialDensity(n=2, dim=3, box_length=3.0, n_layers=1, bins=4)
    # the ball step's slope at the centre -> 1e-3; the cell step (second half) the identity
    flat = {"layers": [jnp.zeros(24).at[8].set(-50.0)]}
    fixed = jnp.array([1.0, 1.0, 1.0])
    at = pair.log_prob_one(flat, jnp.stack([fixed, fixed]))
    far = pair.log_prob_one(flat, jnp.stack([fixed + 1.45, fixed]))
    np.testing.assert_allclose(float(at + 2 * pair.log_volume), 3 * np.log(1e-3), atol=1e-6)
    assert abs(float(far + 2 * pair.log_volume)) < 1e-12  # outside the ball (r = 2.5): uniform


def test_radial_ball_of_a_smaller_radius_and_bad_arguments():
    """A ball radius below L/2 (the steps leave the rest of the cell to the cell step): ln|det|
    equals slogdet of the Jacobian and the inverse undoes the map; radii beyond L/2, where a
    ball would meet its own images, and the other bad arguments are rejected."""
    q = PeriodicRadialDensity(n=3, dim=3, box_length=3.0, n_layers=2, bins=4, radius=1.0)
    params = perturbed(q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.0)
    s = 3.0 * jax.random.uniform(jax.random.PRNGKey(2), (3, 3))
    s = s.at[1].set(s[0] + 0.4)  # inside the ball of the other
    u, _, _ = _forward_matching_slogdet(q, params, s)
    back = jax.jit(q._invert_one)(params, u)
    np.testing.assert_allclose(np.asarray(jax.jit(q.forward)(params, back)[0] - u), 0.0,
                               atol=1e-10)
    for bad, match in (({"radius": 1.6}, r"radius = 1.6 must be in \(0, L/2 = 1.5\]"),
                       ({"radius": 0.0}, "radius"), ({"n": 1}, "n must be >= 2"),
                       ({"bins": 0}, "bins must be >= 1"), ({"box_length": -1.0}, "box_length")):
        with pytest.raises(ValueError, match=match):
            PeriodicRadialDensity(**{"n": 3, "dim": 3, "box_length": 3.0, **bad})


def test_radial_within_half_holes_and_triangular_jacobian():
    """With ``within_half`` the moving particles of a layer also move about the moving ones
    before them: five particles in 3D (halves of three and two), ln|det| equals slogdet of the
    now block-triangular Jacobian and the sequential inverse undoes the map. With a flat spline
    at the centre the density where two particles of the moving half meet falls by R'(0)³ =
    1e-9, as it does for a moving and a fixed one; without ``within_half`` only the latter."""
    q = PeriodicRadialDensity(n=5, dim=3, box_length=3.0, n_layers=2, bins=4)
    params = perturbed(q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1.5)
    moving = q._centres(0)[0]
    s = 3.0 * jax.random.uniform(jax.random.PRNGKey(2), (5, 3))
    s = s.at[moving[-1]].set(s[moving[0]] + 0.3)  # inside the first one's ball
    u, _, jac = _forward_matching_slogdet(q, params, s)
    block = jac.reshape(5, 3, 5, 3)[moving[-1], :, moving[0], :]
    assert float(jnp.max(jnp.abs(block))) > 1e-3  # the last moving one follows the first
    back = jax.jit(q._invert_one)(params, u)
    amplification = float(jnp.max(jnp.abs(jnp.linalg.inv(jac))))  # of rounding, as above
    np.testing.assert_allclose(np.mod(np.asarray(back - s) + 1.5, 3.0) - 1.5, 0.0,
                               atol=1e-14 * amplification)
    # in the latent direction the map is well conditioned: the round trip holds tightly
    np.testing.assert_allclose(np.asarray(jax.jit(q.forward)(params, back)[0] - u), 0.0,
                               atol=1e-10)

    # the ball step's slope at the centre -> 1e-3; the cell step (second half) the identity
    flat = {"layers": [jnp.zeros(24).at[8].set(-50.0)]}
    base = jnp.array([[0.2, 0.3, 0.1], [1.0, 2.5, 0.4], [1.6, 0.9, 2.2], [2.4, 1.7, 1.3],
                      [0.7, 1.2, 2.8]])
    single = PeriodicRadialDensity(n=5, dim=3, box_length=3.0, n_layers=1, bins=4)
    moving, fixed = single._centres(0)[0], np.setdiff1d(np.arange(5), single._centres(0)[0])
    for within, expected in ((True, 3 * np.log(1e-3)), (False, 0.0)):
        layer = PeriodicRadialDensity(n=5, dim=3, box_length=3.0, n_layers=1, bins=4,
                                      within_half=within)
        log_q = jax.jit(layer.log_prob_one)
        apart = log_q(flat, base)
        same_half = log_q(flat, base.at[moving[1]].set(base[moving[0]]))
        across = log_q(flat, base.at[moving[1]].set(base[fixed[0]]))
        np.testing.assert_allclose(float(same_half - apart), expected, atol=0.05)
        np.testing.assert_allclose(float(across - apart), 3 * np.log(1e-3), atol=0.05)

    # where two particles coincide (the masked step about a particle's own position, and the
    # steps about a centre it sits on) the pathwise fit's derivatives stay finite
    on_top = base.at[moving[1]].set(base[moving[0]]).at[moving[0]].set(base[fixed[0]])
    grad_s, grad_params = jax.jit(jax.grad(q.log_prob_one, argnums=(1, 0)))(params, on_top)
    assert np.all(np.isfinite(np.asarray(grad_s)))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grad_params))


@pytest.mark.parametrize("gradient", ["score", "pathwise"])
def test_radial_learns_a_repulsive_pair_past_the_ball_steps_bound(gradient):
    """The Gaussian-core pair of the tests above. A ball step keeps the mass of the ball
    r < L/2 about the fixed particle (its map is the identity on the ball's edge), so the best
    q of ball steps alone (``cell_step = False``) is e^{−βv} inside the ball scaled to the ball's
    uniform mass and uniform outside it: its βF lies 0.0166 above the exact one (the two
    particles alone cannot pile the hole's mass into a first shell, as a liquid's neighbours
    do). Ball steps come within 0.008 of that bound with either gradient of
    ``fit_to_boltzmann`` (both reach 0.004); with the cell steps, which move mass out to the
    cell's faces, the fit passes below the bound by more than 0.008 and comes within 0.008 of
    the exact βF (0.006 with either gradient)."""
    ball = PeriodicRadialDensity(n=2, dim=2, box_length=L, n_layers=2, bins=8, cell_step=False)
    f_var, f_err, beta_f_exact = fit_gaussian_core_pair(ball, gradient, 0.03)
    grid = (np.arange(400) + 0.5) * L / 400 - L / 2
    r = np.hypot(*np.meshgrid(grid, grid))
    beta_v = 4.0 * np.exp(-r**2 / (2 * 0.3**2))
    inside_ball = r < L / 2
    inside = inside_ball.mean() * np.exp(-beta_v) / np.mean(
        np.where(inside_ball, np.exp(-beta_v), 0.0))
    q_rel = np.where(inside_ball, inside, 1.0)  # in units of the uniform 1/L²
    beta_f_radial = np.mean(q_rel * (beta_v + np.log(q_rel / L**4)))
    np.testing.assert_allclose(beta_f_radial - beta_f_exact, 0.0166, atol=5e-4)
    assert f_var > beta_f_radial - 3 * f_err
    assert f_var - beta_f_radial < 0.008, (f_var, beta_f_radial, f_err)

    cell = PeriodicRadialDensity(n=2, dim=2, box_length=L, n_layers=2, bins=8)
    f_cell, f_cell_err, _ = fit_gaussian_core_pair(cell, gradient, 0.03)
    assert f_cell > beta_f_exact - 3 * f_cell_err
    assert f_cell < beta_f_radial - 0.008, (f_cell, beta_f_radial)
    assert f_cell - beta_f_exact < 0.008, (f_cell, beta_f_exact, f_cell_err)
