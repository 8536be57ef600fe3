"""Natural gradient: both solves match the dense definition; covariance; convergence; no retrace."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qvfe.optim import centred_jacobian, sr, sr_blocks, sr_then_lr

DAMPING = 1e-3
# Compiling dominates these tests; XLA's backend optimizations buy nothing at these sizes.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def random_problem(seed, batch, complex_, scales=(1.0, 1e-1, 3.0)):
    """A pytree of three leaves, P = 5·4 + 7 + 13 = 40, with per-sample O_b of mixed magnitudes."""
    rng = np.random.default_rng(seed)
    shapes = {"w": (5, 4), "b": (7,), "c": (13,)}
    grads, jac = {}, {}
    for (name, shape), s in zip(shapes.items(), scales):
        grads[name] = jnp.asarray(rng.normal(size=shape))
        o = s * rng.normal(size=(batch, *shape)) + 0.5  # nonzero mean: centring matters
        if complex_:
            o = o + 1j * s * rng.normal(size=(batch, *shape))
        jac[name] = jnp.asarray(o)
    return grads, jac


def dense_reference(grads, jac, damping, diag_shift=0.0):
    """(S + diag_shift·diag S + λ)⁻¹ g straight from the definitions, in numpy."""
    g = np.concatenate([np.ravel(x) for x in jax.tree.leaves(grads)])
    leaves = jax.tree.leaves(jac)
    batch = leaves[0].shape[0]
    o = np.concatenate([np.asarray(x).reshape(batch, -1) for x in leaves], axis=1)
    oc = o - o.mean(axis=0)
    s = np.real(oc.conj().T @ oc) / batch  # Fisher for real O, Re QGT for complex O
    a = s + diag_shift * np.diag(np.diag(s)) + damping * np.eye(len(g))
    return np.linalg.solve(a, g), s


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def solve_all(grads, jac, configs):
    """Several sr variants in ONE compiled function (compiles dominate the test time)."""
    txs = [sr(damping, **kw) for damping, kw in configs]
    run = jax.jit(lambda g, j: [tx.update(g, tx.init(g), jacobian=j)[0] for tx in txs],
                  compiler_options=FAST_COMPILE)
    return [flat(out) for out in run(grads, jac)]


@pytest.mark.parametrize("batch, complex_", [(8, False), (8, True), (15, True), (90, False),
                                             (90, True)],
                         ids=["B<P-real", "B<P-complex", "B<P<2B-complex", "B>P-real",
                              "B>P-complex"])
def test_parameter_and_sample_solves_equal_dense_reference(batch, complex_):
    grads, jac = random_problem(batch, batch, complex_)
    shifts = (0.0, 0.1)
    configs = [(DAMPING, dict(diag_shift=shift, solver=solver))
               for shift in shifts for solver in ("parameter", "sample")]
    results = solve_all(grads, jac, configs)
    for k, shift in enumerate(shifts):
        by_param, by_sample = results[2 * k], results[2 * k + 1]
        ref, _ = dense_reference(grads, jac, DAMPING, shift)
        scale = np.linalg.norm(ref)
        assert np.linalg.norm(by_param - by_sample) / scale < 1e-10
        assert np.linalg.norm(by_param - ref) / scale < 1e-10
        assert np.linalg.norm(by_sample - ref) / scale < 1e-10


def test_small_damping_stays_accurate_with_refinement():
    """κ = ‖S‖/λ ≈ 1e10: the refined solves still agree with each other to 1e-10."""
    grads, jac = random_problem(1, 12, True)
    p, s = solve_all(grads, jac, [(1e-8, dict(solver="parameter")), (1e-8, dict(solver="sample"))])
    assert np.linalg.norm(p - s) / np.linalg.norm(p) < 1e-10


def _cholesky_size(tx, grads, jac):
    sizes = []

    def walk(jaxpr):
        for e in jaxpr.eqns:
            if e.primitive.name == "cholesky":
                sizes.append(e.invars[0].aval.shape)
            for v in e.params.values():  # cho_factor is itself jitted: look inside sub-jaxprs
                if hasattr(v, "jaxpr"):
                    walk(v.jaxpr if hasattr(v.jaxpr, "eqns") else v)
                elif hasattr(v, "eqns"):
                    walk(v)

    walk(jax.make_jaxpr(lambda g, j: tx.update(g, tx.init(g), jacobian=j)[0])(grads, jac).jaxpr)
    assert len(sizes) == 1
    return sizes[0][0]


def test_auto_counts_complex_rows_twice():
    grads, _ = random_problem(0, 1, False)  # P = 40
    for batch, complex_, expected in [(30, False, 30), (30, True, 40), (15, True, 30),
                                      (50, False, 40)]:
        _, jac = random_problem(0, batch, complex_)
        assert _cholesky_size(sr(DAMPING), grads, jac) == expected


def test_pytree_structure_dtype_and_sign():
    grads, jac = random_problem(3, 20, False)
    grads = {**grads, "b": grads["b"].astype(jnp.float32)}
    tx, descent = sr(DAMPING), sr_then_lr(0.1, DAMPING)
    out, step = jax.jit(lambda g, j: (tx.update(g, tx.init(g), jacobian=j)[0], descent.update(
        g, descent.init(g), jacobian=j)[0]))(grads, jac)
    assert jax.tree.structure(out) == jax.tree.structure(grads)
    assert out["b"].dtype == jnp.float32 and out["w"].dtype == jnp.float64
    # δ = (S+λ)⁻¹ g with S+λ positive definite: δ·g > 0, the same (uphill) side as g.
    assert flat(out) @ flat(grads) > 0
    np.testing.assert_allclose(flat(step), -0.1 * flat(out), rtol=1e-6)  # b is float32


def test_max_norm_trust_region():
    grads, jac = random_problem(4, 20, True)
    _, s = dense_reference(grads, jac, DAMPING)
    free = dense_reference(grads, jac, DAMPING)[0]
    q = free @ s @ free
    free, capped, loose = solve_all(grads, jac, [(DAMPING, {}),
                                                 (DAMPING, dict(max_norm=0.5 * np.sqrt(q))),
                                                 (DAMPING, dict(max_norm=2 * np.sqrt(q)))])
    np.testing.assert_allclose(capped, 0.5 * free, rtol=1e-12)
    np.testing.assert_allclose(capped @ s @ capped, 0.25 * q, rtol=1e-10)
    np.testing.assert_array_equal(loose, free)


def test_blocks_are_solved_independently():
    """φ with the Fisher matrix (real O), θ with the real QGT (complex O), no cross terms."""
    g_phi, o_phi = random_problem(5, 16, False)
    g_theta, o_theta = random_problem(6, 16, True)
    grads, jac = {"phi": g_phi, "theta": g_theta}, {"phi": o_phi, "theta": o_theta}
    tx = sr_blocks({"phi": sr(1e-2), "theta": sr(1e-3, diag_shift=0.01)},
                   {"phi": "phi", "theta": "theta"})
    out = jax.jit(lambda g, j: tx.update(g, tx.init(g), g, jacobian=j)[0])(grads, jac)
    np.testing.assert_allclose(flat(out["phi"]), dense_reference(g_phi, o_phi, 1e-2)[0],
                               rtol=1e-10)
    np.testing.assert_allclose(flat(out["theta"]),
                               dense_reference(g_theta, o_theta, 1e-3, 0.01)[0], rtol=1e-10)
    # A plain partition does not mask the jacobian: sr must say so rather than mix blocks.
    bad = optax.partition({"phi": sr(1e-2), "theta": sr(1e-3)}, {"phi": "phi", "theta": "theta"})
    with pytest.raises(ValueError, match="mask_compatible_extra_args"):
        bad.update(grads, bad.init(grads), grads, jacobian=jac)


def test_bad_arguments_are_named():
    grads, jac = random_problem(7, 6, False)
    for kw, word in [(dict(damping=0.0), "damping"), (dict(damping=1.0, solver="qr"), "solver"),
                     (dict(damping=1.0, diag_shift=-1.0), "diag_shift"),
                     (dict(damping=1.0, max_norm=0.0), "max_norm")]:
        with pytest.raises(ValueError, match=word):
            sr(**kw)
    tx = sr(1.0)
    with pytest.raises(ValueError, match="jacobian"):
        tx.update(grads, tx.init(grads))
    jac_bad = {**jac, "b": jac["b"][:3]}
    with pytest.raises(ValueError, match="batch"):
        tx.update(grads, tx.init(grads), jacobian=jac_bad)
    with pytest.raises(TypeError, match="complex parameters"):
        cg = {**grads, "b": grads["b"] + 0j}
        tx.update(cg, tx.init(cg), jacobian={**jac, "b": jac["b"] + 0j})


def test_centred_jacobian_gives_the_metric():
    grads, jac = random_problem(8, 11, True)
    j = centred_jacobian(grads, jac)
    assert j.shape == (22, 40)
    np.testing.assert_allclose(j.T @ j, dense_reference(grads, jac, DAMPING)[1], atol=1e-12)


def test_second_update_does_not_recompile():
    traces = []
    tx = sr_blocks({"phi": sr_then_lr(0.1, 1e-3), "theta": sr_then_lr(0.1, 1e-3, max_norm=1.0)},
                   {"phi": "phi", "theta": "theta"})

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(params, state, grads, jac):
        traces.append(None)  # runs only while tracing
        updates, state = tx.update(grads, state, params, jacobian=jac)
        return optax.apply_updates(params, updates), state

    g_phi, o_phi = random_problem(9, 16, False)
    g_theta, o_theta = random_problem(10, 16, True)
    params = {"phi": g_phi, "theta": g_theta}
    state = tx.init(params)
    for k in range(3):
        grads = jax.tree.map(lambda x: (k + 1.0) * x, params)
        jac = {"phi": jax.tree.map(lambda o: (k + 1) * o, o_phi), "theta": o_theta}
        params, state = step(params, state, grads, jac)
    assert len(traces) == 1
    assert all(np.isfinite(flat(params)))


# --- an exactly solvable model: a categorical distribution over K outcomes ---------------------
# p_θ = softmax([θ, 0]) with θ ∈ R^{K-1}, so the Fisher matrix F = diag(p') − p'p'ᵀ (p' = p[:K-1])
# is non-singular. The transform only sees uniform-weight samples; exact expectations are fed as
# the mirrored rows ±√(K p_k)(O_k − Ō), whose uniform second moment is Σ_k p_k (O_k−Ō)(O_k−Ō)ᵀ.
K = 4
LOG_Q = jax.nn.log_softmax(jnp.array([2.0, 0.0, -2.0, -4.0]))


def log_p(theta):
    return jax.nn.log_softmax(jnp.append(theta, 0.0))


def kl_to_target(theta):
    lp = log_p(theta)
    return jnp.sum(jnp.exp(lp) * (lp - LOG_Q))


def exact_rows(scores, p):
    """(2K, P) rows whose centred uniform covariance is the exact Fisher matrix."""
    centred = scores - p @ scores
    rows = jnp.sqrt(K * p)[:, None] * centred
    return jnp.concatenate([rows, -rows])


@jax.jit
def fisher_and_grad(theta):
    p = jnp.exp(log_p(theta))
    scores = jax.jacobian(log_p)(theta)  # O_k = ∇_θ ln p_k, one row per outcome
    return exact_rows(scores, p), jax.grad(kl_to_target)(theta)


def test_natural_gradient_is_exact_and_reparametrisation_covariant():
    theta = jnp.array([0.3, -0.7, 1.1])
    rows, g = fisher_and_grad(theta)
    p = np.exp(np.asarray(log_p(theta)))[: K - 1]
    exact = np.linalg.solve(np.diag(p) - np.outer(p, p), g)  # F⁻¹ g

    # A nonlinear reparametrisation θ = h(η): O_η = O_θ ∂h/∂η and g_η = (∂h/∂η)ᵀ g_θ. The natural
    # gradient transforms as a vector, δθ = (∂h/∂η) δη; the plain gradient does not.
    a = np.array([[1.0, 0.4, 0.0], [-0.3, 2.0, 0.5], [0.2, 0.0, 0.7]])

    def h(eta):
        return a @ eta + 0.2 * eta**3

    eta = np.linalg.solve(a, np.asarray(theta))
    for _ in range(30):  # Newton for h(η) = θ
        eta = eta - np.linalg.solve(a + 0.6 * np.diag(eta**2), h(eta) - np.asarray(theta))
    np.testing.assert_allclose(h(eta), theta, atol=1e-14)
    dh = a + 0.6 * np.diag(eta**2)  # ∂h/∂η

    txs = [sr(1e-12, solver=solver) for solver in ("parameter", "sample")]

    @partial(jax.jit, compiler_options=FAST_COMPILE)
    def both_coordinates(g, rows, dh):
        return [(tx.update(g, tx.init(g), jacobian=rows)[0],
                 tx.update(dh.T @ g, tx.init(g), jacobian=rows @ dh)[0]) for tx in txs]

    # rtol 1e-6: the sample-space solver's 2K × 2K matrix O Oᵀ has rank K − 1 and only the
    # 1e-12 damping makes it invertible, so its rounding errors reach ~1e-8 (how far depends on
    # XLA's code generation); a wrong natural gradient is off by order one
    for delta_theta, delta_eta in both_coordinates(g, rows, dh):
        np.testing.assert_allclose(delta_theta, exact, rtol=1e-6)
        np.testing.assert_allclose(dh @ delta_eta, exact, rtol=1e-6)
    assert np.linalg.norm(dh @ (dh.T @ g) - g) > 0.1 * np.linalg.norm(g)


def test_sr_descent_on_kl_converges_in_far_fewer_steps_than_gradient_descent():
    lr, tol, cap = 0.5, 1e-10, 2_000
    natural = sr_then_lr(lr, 1e-10)
    plain = optax.with_extra_args_support(optax.sgd(lr))  # ignores jacobian

    def steps_to_converge(tx):
        def cond(carry):
            theta, _, n = carry
            return (kl_to_target(theta) > tol) & (n < cap)

        def body(carry):
            theta, state, n = carry
            rows, g = fisher_and_grad(theta)
            updates, state = tx.update(g, state, theta, jacobian=rows)
            return optax.apply_updates(theta, updates), state, n + 1

        theta0 = jnp.zeros(K - 1)
        loop = jax.jit(lambda: jax.lax.while_loop(cond, body, (theta0, tx.init(theta0), 0)),
                       compiler_options=FAST_COMPILE)
        return int(loop()[2])

    n_sr, n_gd = steps_to_converge(natural), steps_to_converge(plain)
    # In natural parameters ∇KL = F (θ − θ_q): SR moves θ − θ_q by (1 − lr) per step exactly.
    assert n_sr <= 20  # 16: KL ∝ (1 − lr)^{2n}
    assert n_gd > 50 * n_sr  # GD is still above tol after `cap` steps (F has an eigenvalue ~0.01)
