"""Backflow: identity at init, equivariance, periodicity, exact log-det, bijectivity."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qvfe.flows.backflow import Backflow

from helpers import perturbed

L = 2.5


FLOWS = {
    "open": Backflow(n_up=3, n_down=2, dim=2, kind="open", hidden=(8,), n_layers=2),
    "periodic": Backflow(
        n_up=3, n_down=2, dim=2, kind="periodic", box_length=L, hidden=(8,), n_layers=2
    ),
    "periodic_shared": Backflow(
        n_up=3, n_down=2, dim=2, kind="periodic", box_length=L, hidden=(8,), n_layers=2,
        axis_amplitudes=False
    ),
    "environment": Backflow(
        n_up=3, n_down=2, dim=2, kind="periodic", box_length=L, hidden=(8,), n_layers=2,
        environment=3
    ),
    "neighbour_mean": Backflow(
        n_up=3, n_down=2, dim=2, kind="periodic", box_length=L, hidden=(8,), n_layers=2,
        neighbour_range=0.3
    ),
    "periodic_cusps": Backflow(
        n_up=3, n_down=2, dim=2, kind="periodic", box_length=L, hidden=(8,), n_layers=2,
        pair_cusps=1.0
    ),
}


@pytest.fixture(scope="module", params=sorted(FLOWS))
def case(request):
    """(flow, strongly perturbed params, jitted forward_and_log_det, a sample x)."""
    flow = FLOWS[request.param]
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    fwd = jax.jit(flow.forward_and_log_det)
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 2), minval=-1.0, maxval=1.0) * L
    return flow, params, fwd, x


@pytest.mark.parametrize("kind", sorted(set(FLOWS) - {"periodic_cusps"}))  # a fixed layer
def test_identity_at_init_and_finite_parameter_gradient(kind):
    flow = dataclasses.replace(FLOWS[kind], n_layers=1)
    params = flow.init(jax.random.PRNGKey(0))
    x = jax.random.normal(jax.random.PRNGKey(3), (5, 2))
    z, logdet = jax.jit(flow.forward_and_log_det)(params, x)
    np.testing.assert_array_equal(z, x)
    assert float(logdet) == 0.0
    if kind != "open":
        return  # the weight projection below is shared; one compile of the gradient is enough
    # the zero last layer sits at W = 0, where |W|_F has no derivative: gradients must stay finite
    def loss(p):
        return flow.forward_and_log_det(p, x)[1] + jnp.sum(flow.forward(p, x) ** 2)

    g = jax.jit(jax.grad(loss))(params)
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(g))


def test_permutation_equivariance_within_each_spin(case):
    flow, params, fwd, x = case
    perm = np.array([2, 0, 1, 4, 3])  # permutes the up block (0..2) and the down block (3, 4)
    z, ld = fwd(params, x)
    z_p, ld_p = fwd(params, x[perm])
    np.testing.assert_allclose(z_p, z[perm], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ld_p, ld, rtol=1e-12)
    assert float(jnp.max(jnp.abs(z - x))) > 1e-2  # the test is not vacuous


@pytest.mark.parametrize("kind", ["periodic", "periodic_shared", "environment",
                                  "neighbour_mean", "periodic_cusps"])
def test_periodic_variant_is_periodic_in_each_particle(kind):
    flow = FLOWS[kind]
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    fwd = jax.jit(flow.forward_and_log_det)
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 2)) * L
    z, ld = fwd(params, x)
    for i, a, m in [(0, 0, 1), (3, 1, -2), (4, 0, 3)]:
        shift = jnp.zeros_like(x).at[i, a].set(m * L)
        z_s, ld_s = fwd(params, x + shift)
        np.testing.assert_allclose(z_s, z + shift, atol=1e-11)
        np.testing.assert_allclose(ld_s, ld, rtol=1e-10)


def test_log_det_equals_slogdet_of_full_jacobian(case):
    flow, params, fwd, x = case
    n, d = x.shape
    _, logdet = fwd(params, x)
    flat = lambda v: flow.forward(params, v.reshape(n, d)).reshape(-1)  # noqa: E731
    jac = jax.jit(jax.jacfwd(flat))(x.reshape(-1))
    sign, ref = jnp.linalg.slogdet(jac)
    assert float(sign) == 1.0  # det > 0: guaranteed by the contraction bound
    np.testing.assert_allclose(logdet, ref, rtol=1e-12)
    assert abs(float(logdet)) > 1e-3


def _block_row_sum(jac: np.ndarray, n: int, d: int) -> float:
    """max_i sum_k |J_ik|_2: the matrix norm induced by max_i |v_i|_2."""
    blocks = jac.reshape(n, d, n, d).transpose(0, 2, 1, 3)
    return float(np.max(np.sum(np.linalg.norm(blocks, 2, axis=(2, 3)), axis=1)))


def test_displacement_jacobian_norm_respects_the_contraction_bound(case):
    """The bijectivity proof: for every layer, at any parameters, |dG/dX|_2 <= contraction < 1
    (sum layers) or the largest block row sum <= contraction (neighbour-mean layers)."""
    flow, params, _, x = case
    n, d = x.shape
    mean = flow.neighbour_range is not None
    for scale in (3.0, 30.0):
        p = perturbed(params, jax.random.PRNGKey(int(scale)), scale)
        for layer in p["layers"]:
            one = {"layers": [layer]}
            g = lambda v, one=one: flow.forward(one, v.reshape(n, d)).reshape(-1) - v  # noqa: E731
            jac = jax.jit(jax.vmap(jax.jacfwd(g)))
            vs = jnp.stack([x.reshape(-1) * (1 + k) + 0.3 * k for k in range(3)])
            for j in np.asarray(jac(vs)):
                norm = _block_row_sum(j, n, d) if mean else np.linalg.norm(j, 2)
                assert norm <= flow.contraction + 1e-12


def test_inverse_by_fixed_point_recovers_x(case):
    flow, params, fwd, x = case
    z, _ = fwd(params, x)
    x_back = jax.jit(flow.inverse)(params, z)
    np.testing.assert_allclose(x_back, x, atol=1e-10)


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="contraction"):
        Backflow(2, 0, 2, contraction=1.0)
    with pytest.raises(ValueError, match="box_length"):
        Backflow(2, 0, 2, kind="periodic")
    with pytest.raises(ValueError, match="kind"):
        Backflow(2, 0, 2, kind="torus")
    with pytest.raises(ValueError, match="shape"):
        Backflow(2, 0, 2).forward_and_log_det(Backflow(2, 0, 2).init(jax.random.PRNGKey(0)),
                                              jnp.zeros((3, 2)))


def test_species_rotation_is_orthogonal_and_makes_centre_of_mass_and_relative_coordinates():
    """At t = pi/4 (1 up + 1 down, no layers) Z = (rel, CM) up to sqrt(2): orthogonal, no log-det;
    with layers it commutes with same-spin permutations and inverts."""
    flow = Backflow(1, 1, 2, n_layers=0, species_rotation=np.pi / 4)
    x = jnp.array([[0.3, -1.2], [0.7, 0.4]])
    z, logdet = flow.forward_and_log_det(flow.init(jax.random.PRNGKey(0)), x)
    np.testing.assert_allclose(z[0], (x[0] - x[1]) / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(z[1], (x[0] + x[1]) / np.sqrt(2), atol=1e-12)
    assert float(logdet) == pytest.approx(0.0, abs=1e-12)
    flow = Backflow(2, 1, 2, hidden=(8,), n_layers=2, species_rotation=0.3)
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 2))
    z, _ = flow.forward_and_log_det(params, x)
    np.testing.assert_allclose(flow.forward(params, x[jnp.array([1, 0, 2])]),
                               z[jnp.array([1, 0, 2])], atol=1e-10)
    np.testing.assert_allclose(flow.inverse(params, z, n_iter=200), x, atol=1e-8)
    with pytest.raises(ValueError):
        Backflow(2, 0, 2, species_rotation=0.3)


def test_sector_conditioned_pair_flow_is_a_bijection_per_sector_that_keeps_angular_momentum():
    """n_sectors = 3, pair terms only, 1 up + 1 down, with the fixed exact-cusp layer: each
    sector's map is a different bijection with the exact log-det, every layer (the cusp one too)
    within the contraction bound, and (what makes ⊕_s U_s unitary for the
    relative |m| sectors) it moves the relative coordinate along itself and the centre of mass
    not at all."""
    flow = Backflow(1, 1, 2, hidden=(8,), n_layers=2, one_body=False, n_sectors=3,
                    species_rotation=np.pi / 4, cusp_slopes=(2 / 3, 2 / 15, 2 / 35))
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    assert "one" not in params["layers"][0]
    x = jnp.array([[0.3, -1.2], [0.7, 0.4]])
    outs = []
    for sector in range(3):
        z, logdet = flow.forward_and_log_det(params, x, sector)
        flat = lambda v, s=sector: flow.forward(params, v.reshape(2, 2), s).reshape(-1)  # noqa
        sign, ref = jnp.linalg.slogdet(jax.jacfwd(flat)(x.reshape(-1)))
        assert float(sign) == 1.0
        np.testing.assert_allclose(logdet, ref, rtol=1e-12)
        np.testing.assert_allclose(flow.inverse(params, z, n_iter=200, sector=sector), x,
                                   atol=1e-9)
        # z = (rel', CM') / sqrt(2) after the rotation: CM unchanged, rel' parallel to rel
        rel = x[0] - x[1]
        np.testing.assert_allclose(z[1], (x[0] + x[1]) / np.sqrt(2), atol=1e-12)
        assert abs(float(z[0][0] * rel[1] - z[0][1] * rel[0])) < 1e-12
        assert float(z[0] @ rel) > 0
        for layer in [flow._cusp_layer(sector)] + params["layers"]:
            g = lambda v, la=layer, s=sector: (flow._layer(la, v.reshape(2, 2), False, s)[0]  # noqa
                                               - v.reshape(2, 2)).reshape(-1)
            for v in (x, 0.05 * x, 3.0 * x):
                jac = np.asarray(jax.jacfwd(g)(v.reshape(-1)))
                assert np.linalg.norm(jac, 2) <= flow.contraction + 1e-12
        outs.append(z)
    assert float(jnp.max(jnp.abs(outs[0] - outs[2]))) > 1e-3  # the sectors' maps differ
    with pytest.raises(ValueError, match="sector"):
        flow.forward_and_log_det(params, x)
    with pytest.raises(ValueError, match="n_sectors"):
        Backflow(1, 1, 2, n_sectors=0)
    with pytest.raises(ValueError, match="cusp_slopes"):
        Backflow(1, 1, 2, n_sectors=2, cusp_slopes=(0.5,))
    with pytest.raises(ValueError, match="cusp_slopes"):
        Backflow(1, 1, 2, kind="periodic", box_length=L, cusp_slopes=(0.5,))


def test_strength_scales_the_amplitude_and_det_sign_finds_the_folds_it_allows():
    """Above strength 1 the contraction bound is given up: det dZ/dX can change sign (a fold), and
    ``det_sign`` must report exactly the sign of the full Jacobian's determinant."""
    base = FLOWS["periodic"]
    strong = dataclasses.replace(base, strength=40.0)
    assert strong._amplitude == pytest.approx(40.0 * base._amplitude, rel=1e-15)
    with pytest.raises(ValueError, match="strength"):
        dataclasses.replace(base, strength=0.0)
    params = perturbed(strong.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    n, d = 5, 2
    # clustered configurations: where many pairs are close the pair terms add up and can fold
    xs = 0.1 * L * jax.random.uniform(jax.random.PRNGKey(4), (64, n, d))

    def full_sign(x):
        jac = jax.jacfwd(lambda v: strong.forward(params, v.reshape(n, d)).reshape(-1))(
            x.reshape(-1))
        return jnp.linalg.slogdet(jac)[0]

    signs = jax.jit(jax.vmap(lambda x: strong.det_sign(params, x)))(xs)
    ref = jax.jit(jax.vmap(full_sign))(xs)
    np.testing.assert_array_equal(signs, ref)
    assert (np.asarray(signs) < 0).any() and (np.asarray(signs) > 0).any()  # not vacuous
    # at strength 1 the same parameters cannot fold anywhere
    assert (np.asarray(jax.jit(jax.vmap(lambda x: base.det_sign(params, x)))(xs)) > 0).all()


def test_neighbour_mean_layer_stays_a_contraction_where_many_particles_crowd_one():
    """The worst case of the sum layer, every other particle close to one, with weights at their
    largest: the neighbour-mean layer's block row sums stay <= contraction for any n (here 12 in
    3D, clustered at the range and below), and its largest push does not depend on n, where
    the sum layer's shrinks like 1/n."""
    L3, n = 6.0, 12
    flow = Backflow(n, 0, 3, kind="periodic", box_length=L3, hidden=(8,), n_layers=1,
                    neighbour_range=0.5)
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 30.0)
    one = {"layers": params["layers"]}
    g = lambda v: flow.forward(one, v.reshape(n, 3)).reshape(-1) - v  # noqa: E731
    jac = jax.jit(jax.vmap(jax.jacfwd(g)))
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    xs = jnp.concatenate([width * jax.random.normal(k, (32, n, 3))
                          for k, width in zip(keys, (0.05, 0.5, 2.0))])
    sums = [_block_row_sum(j, n, 3) for j in np.asarray(jac(xs.reshape(len(xs), -1)))]
    assert max(sums) <= flow.contraction + 1e-12
    assert max(sums) > 0.3 * flow.contraction  # the bound is approached, not vacuous
    signs = jax.jit(jax.vmap(lambda x: flow.det_sign(params, x)))(xs)
    assert (np.asarray(signs) > 0).all()
    # the largest push B/kappa is the same at n = 2 and n = 33 in the same box, the sum layer's
    # largest pair push (its amplitude times the largest |v|) falls 32-fold
    reach = {m: dataclasses.replace(flow, n_up=m)._mean_scale * flow._mean_width for m in (2, 33)}
    assert reach[2] == pytest.approx(reach[33], rel=1e-15)
    for axes, factor in ((True, 7), (False, 10)):
        summed = {m: Backflow(m, 0, 3, kind="periodic", box_length=L3,
                              axis_amplitudes=axes)._amplitude for m in (2, 33)}
        assert summed[2] / summed[33] == pytest.approx(32.0)
        assert reach[33] > factor * summed[33] * np.sqrt(3) * L3 / (2 * np.pi)


def test_neighbour_range_is_validated():
    with pytest.raises(ValueError, match="neighbour_range"):
        Backflow(2, 0, 2, kind="open", neighbour_range=0.5)
    with pytest.raises(ValueError, match="neighbour_range"):
        Backflow(2, 0, 2, kind="periodic", box_length=L, neighbour_range=0.0)
    with pytest.raises(ValueError, match="neighbour_range"):
        Backflow(1, 0, 2, kind="periodic", box_length=L, neighbour_range=0.5)


def test_environment_layer_is_three_body_where_the_pair_sum_is_not():
    """d^2 z_0 / dx_1 dx_2 vanishes for a pair sum (z_0 is a sum of functions of one partner
    each; one layer, since a second sees all of the first's output) and not once the amplitudes
    see the environment; bad settings are rejected."""
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 2)) * L
    mixed = {}
    for kind in ("periodic", "environment"):
        flow = dataclasses.replace(FLOWS[kind], n_layers=1)
        params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)

        def z0(x1, x2, flow=flow, params=params):
            return flow.forward(params, x.at[1].set(x1).at[2].set(x2))[0]

        mixed[kind] = float(jnp.max(jnp.abs(jax.jacfwd(jax.jacfwd(z0), 1)(x[1], x[2]))))
    # the bound (module docstring): a more per pair block than the per-axis pair sum's 2 a
    # (sqrt(d) a more than the shared amplitude's (1 + sqrt(d)) a)
    n, d, c = 5, 2, FLOWS["environment"].contraction
    assert FLOWS["environment"]._amplitude == pytest.approx(c / (2 * (n - 1) * 3), rel=1e-15)
    shared = dataclasses.replace(FLOWS["environment"], axis_amplitudes=False)
    assert shared._amplitude == pytest.approx(c / (2 * (n - 1) * (1 + 2 * np.sqrt(d))),
                                              rel=1e-15)
    assert mixed["periodic"] < 1e-14
    assert mixed["environment"] > 1e-7  # ~8e-6: amplitude 0.03, times dh/dD ~ 1/(n - 1)
    with pytest.raises(ValueError, match="environment"):
        Backflow(2, 0, 2, kind="open", environment=2)
    with pytest.raises(ValueError, match="environment"):
        Backflow(2, 0, 2, kind="periodic", box_length=L, neighbour_range=0.5, environment=2)
    with pytest.raises(ValueError, match="environment"):
        Backflow(2, 0, 2, kind="periodic", box_length=L, environment=-1)


def test_environment_and_eta_reproduce_the_environment_layers_push():
    """``environment_of`` and ``periodic_eta(..., env)`` (what scripts/check_flow_folds.py
    prints) are the layer's own amplitudes: sum_j a eta_ij v(D_ij) is its push z_i - x_i."""
    flow = dataclasses.replace(FLOWS["environment"], n_layers=1)
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 3.0)
    layer = params["layers"][0]
    x = jax.random.uniform(jax.random.PRNGKey(2), (5, 2)) * L
    h = flow.environment_of(layer, x)
    assert h.shape == (5, 3)
    same = np.array([1.0, 1, 1, 0, 0])
    push = np.zeros((5, 2))
    for i in range(5):
        for j in range(5):
            if i != j:
                aux = (jnp.asarray(float(same[i] == same[j])), None)
                eta = flow.periodic_eta(layer["pair"], x[i] - x[j], aux, h[i])
                push[i] += (flow._amplitude * eta * L / (2 * np.pi)
                            * np.sin(2 * np.pi * (x[i] - x[j]) / L))
    np.testing.assert_allclose(flow.forward(params, x) - x, push, atol=1e-14)
    assert np.abs(push).max() > 1e-3


@pytest.mark.parametrize("environment", [0, 2])
def test_axis_amplitudes_in_3d_keep_the_contraction_bound_and_move_axes_apart(environment):
    """The per-axis bound (2 a per pair block, 3 a with the environment) does not grow with d:
    in 3D, at large random parameters, each layer's displacement Jacobian stays within the
    contraction, and the log-det is still slogdet of the whole map's. The three amplitudes are
    not one: the push is not a multiple of v(D) = (L / 2 pi) sin(2 pi D / L)."""
    flow = Backflow(n_up=3, n_down=1, dim=3, kind="periodic", box_length=L, hidden=(8,),
                    n_layers=1, environment=environment)
    assert flow._amplitude == pytest.approx(
        flow.contraction / (2 * 3 * (3.0 if environment else 2.0)), rel=1e-15)
    params = perturbed(flow.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 30.0)
    x = jax.random.uniform(jax.random.PRNGKey(2), (4, 3)) * L
    g = lambda v: flow.forward(params, v.reshape(4, 3)).reshape(-1) - v  # noqa: E731
    jac = np.asarray(jax.jit(jax.jacfwd(g))(x.reshape(-1)))
    assert np.linalg.norm(jac, 2) <= flow.contraction
    _, logdet = jax.jit(flow.forward_and_log_det)(params, x)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(np.eye(12) + jac)[1], rtol=1e-12)
    if environment:
        return
    aux = (jnp.asarray(1.0), None)
    delta = x[0] - x[1]
    eta = np.asarray(flow.periodic_eta(params["layers"][0]["pair"], delta, aux))
    assert eta.shape == (3,) and np.ptp(eta) > 1e-2


def test_label_conditioned_periodic_flow_is_a_bijection_per_label():
    """sector_features = F: the maps take a real label vector (the electron gas's momentum
    sector) through a learned first-layer bias; each label's map is a periodic bijection with the
    exact log-det, translation-covariant (what keeps momentum sectors orthogonal), and labels
    give different maps; the label is required, and excludes integer sectors."""
    flow = Backflow(2, 1, 2, kind="periodic", box_length=L, hidden=(8,), n_layers=2,
                    sector_features=4)
    params = flow.init(jax.random.PRNGKey(0))
    assert params["layers"][0]["sector_weight"].shape == (4, 8)
    x = jax.random.uniform(jax.random.PRNGKey(2), (3, 2)) * L
    np.testing.assert_array_equal(flow.forward(params, x, jnp.ones(4)), x)  # identity at init
    params = perturbed(params, jax.random.PRNGKey(1), 3.0)
    outs = []
    for label in (jnp.array([1.0, 0, 1, 0]), jnp.array([0.0, -1, 0, 1])):
        z, logdet = flow.forward_and_log_det(params, x, label)
        flat = lambda v, s=label: flow.forward(params, v.reshape(3, 2), s).reshape(-1)  # noqa
        np.testing.assert_allclose(logdet, jnp.linalg.slogdet(jax.jacfwd(flat)(x.reshape(-1)))[1],
                                   rtol=1e-12)
        shift = jnp.array([0.37, -1.1])
        np.testing.assert_allclose(flow.forward(params, x + shift, label), z + shift, atol=1e-12)
        np.testing.assert_allclose(flow.inverse(params, z, sector=label), x, atol=1e-10)
        outs.append(z)
    assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 1e-3
    with pytest.raises(ValueError, match="pass sector"):
        flow.forward(params, x)
    with pytest.raises(ValueError, match="sector_features"):
        Backflow(1, 1, 2, n_sectors=2, sector_features=2)


@pytest.mark.parametrize("n_up, n_down, dim", [(3, 2, 2), (4, 4, 3), (5, 0, 3)])
def test_periodic_exact_cusp_layer_is_a_contraction_where_it_is_strongest(n_up, n_down, dim):
    """|w| + r|w'| = b (1 + (d + 1) t)/(1 + t)^(d+1) <= b, the most at contact (t = r/a = 0),
    the bound the layer's depths are chosen by. Every particle gathered around particle 0 within
    3 a, most of them near contact: the cusp layer's Jacobian stays within the contraction, and
    within a factor of three of it (the bound is not loose)."""
    t = np.linspace(0.0, 50.0, 500001)
    assert np.max((1 + (dim + 1) * t) / (1 + t) ** (dim + 1)) == pytest.approx(1.0)
    flow = Backflow(n_up, n_down, dim, kind="periodic", box_length=8.0, n_layers=0,
                    pair_cusps=1.0)
    a, n = flow._periodic_cusp_depths[0], n_up + n_down
    layer = flow._cusp_layer(None)
    rng = np.random.default_rng(0)
    worst = 0.0
    for trial in range(40):
        directions = rng.normal(size=(n - 1, dim))
        radii = a * rng.uniform(0.0, 3.0 if trial % 2 else 0.05, size=(n - 1, 1))
        x = np.concatenate([np.zeros((1, dim)), directions / np.linalg.norm(
            directions, axis=1, keepdims=True) * radii]) + 4.0
        g = lambda v: (flow._layer(layer, v.reshape(n, dim), False)[0]  # noqa: E731
                       - v.reshape(n, dim)).reshape(-1)
        worst = max(worst, np.linalg.norm(np.asarray(jax.jacfwd(g)(jnp.asarray(x).reshape(-1))),
                                          2))
    assert worst < flow.contraction
    assert worst > 0.3 * flow.contraction


def test_periodic_exact_cusps_scale_an_isolated_pair_by_katos_beta():
    """One up and one down (and two up) particles in a large box: the cusp layer scales their
    separation by G(r) = 1 - b/(1 + r/a)^3, whose ln G has the slope beta = 1/4 (opposite) and
    1/12 (same spins) at contact in 3D, contracts it there (G(0) = 1 - b: the hole), increases
    monotonically, and leaves the centre of mass where it was."""
    for n_up, n_down, beta in [(1, 1, 0.25), (2, 0, 1 / 12)]:
        flow = Backflow(n_up, n_down, 3, kind="periodic", box_length=40.0, n_layers=0,
                        pair_cusps=1.0)
        a, depths = flow._periodic_cusp_depths
        b = depths[0 if n_down else 1]
        assert 3 * b / (a * (1 - b)) == pytest.approx(beta)
        direction = jnp.array([0.36, -0.48, 0.8])
        params = flow.init(jax.random.PRNGKey(0))

        def log_scale(r):
            x = jnp.stack([jnp.full(3, 2.0), 2.0 + r * direction])
            z = flow.forward(params, x)
            np.testing.assert_allclose(z.mean(0), x.mean(0), atol=1e-14)
            return float(jnp.log(jnp.linalg.norm(z[1] - z[0]) / r))

        h = 1e-4  # below, the difference of z ~ 2 loses the digits
        assert (log_scale(2 * h) - log_scale(h)) / h == pytest.approx(beta, rel=1e-2)
        assert log_scale(h) == pytest.approx(np.log(1 - b), abs=1e-3)
        scales = [log_scale(r) for r in (0.1, 0.5, 2.0, 8.0)]
        assert np.all(np.diff(scales) > 0) and scales[-1] < 0
    with pytest.raises(ValueError, match="pair_cusps"):
        Backflow(1, 1, 3, kind="open", pair_cusps=1.0)
