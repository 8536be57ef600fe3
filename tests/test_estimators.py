"""Gradient estimators against exact gradients of exactly computable free energies.

φ: the occupation model over a small orbital list, F(φ) = Σ_n p_φ(n)(T ln p_φ(n) + E_n) by
enumeration of every pattern, differentiated with jax.grad; the score-function estimator from
samples of p_φ must agree within 4 standard errors.
θ: one electron in a 2D trap with a perturbed backflow, E(θ) = ∫ |ψ|² (½|∇ ln|ψ||² + V) by
quadrature on a grid (exact for the √flow, which keeps ψ normalized); the covariance estimator on
points drawn from the quadrature weights must agree within 4 standard errors.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.autoregressive.occupations import SpinfulOccupations
from qvfe.estimators import covariance_gradient, score_function_gradient
from qvfe.flows.backflow import Backflow
from qvfe.physics.orbital_values import HarmonicBasis
from qvfe.physics.orbitals import harmonic_orbitals
from qvfe.physics.potentials import make_quantum_dot_potential
from qvfe.wavefunction import SquareRootFlowWavefunction


def _perturb(params, key, scale):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                     for x, k in zip(leaves, keys)])


def _flatten(tree):
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_score_function_gradient_matches_exact_gradient():
    _, eps = harmonic_orbitals(2, 1.0, 5)
    T = 0.7
    model = SpinfulOccupations(eps, 2, 1, T, hidden=(4,))
    phi = _perturb(model.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 0.3)
    patterns = []
    for up in itertools.combinations(range(5), 2):
        for dn in itertools.combinations(range(5), 1):
            u, d = np.zeros(5, np.int32), np.zeros(5, np.int32)
            u[list(up)], d[list(dn)] = 1, 1
            patterns.append((u, d))
    occ_all = (jnp.array([p[0] for p in patterns]), jnp.array([p[1] for p in patterns]))
    energy = lambda occ: occ[0] @ eps + occ[1] @ eps  # noqa: E731

    def exact_f(p):
        logp = model.log_prob(p, occ_all)
        return jnp.sum(jnp.exp(logp) * (T * logp + energy(occ_all)))

    exact = _flatten(jax.grad(exact_f)(phi))
    B = 10000
    occ = model.sample(phi, jax.random.PRNGKey(2), B)
    logp = model.log_prob(phi, occ)
    f = T * logp + energy(occ)
    jac = jax.vmap(lambda u, d: jax.grad(lambda p: model.log_prob(p, (u[None], d[None]))[0])(phi))(
        *occ)
    est = _flatten(score_function_gradient(jac, f))
    flat_jac = jnp.concatenate([x.reshape(B, -1) for x in jax.tree.leaves(jac)], 1)
    per_sample = flat_jac * (f - f.mean())[:, None]
    err = per_sample.std(axis=0) / np.sqrt(B)
    assert jnp.max(jnp.abs(est - exact) / (err + 1e-12)) < 4.5, (est, exact, err)
    assert jnp.linalg.norm(exact) > 10 * jnp.linalg.norm(err)  # the check is not vacuous


def test_covariance_gradient_matches_quadrature_gradient():
    qn, _ = harmonic_orbitals(2, 1.0, 3)
    wf = SquareRootFlowWavefunction(HarmonicBasis(qn, 1.0), Backflow(1, 0, 2, hidden=(4,)))
    theta = _perturb(wf.init(jax.random.PRNGKey(3)), jax.random.PRNGKey(4), 0.5)
    potential = make_quantum_dot_potential(1.0, 0.0)
    occ_up, occ_dn = jnp.array([1]), jnp.array([], dtype=jnp.int32)
    h = 0.125
    g1 = jnp.arange(-4.5, 4.5, h) + h / 2
    grid = jnp.stack(jnp.meshgrid(g1, g1, indexing="ij"), -1).reshape(-1, 1, 2)

    def re_log_psi(t, x):
        return wf.log_psi(t, x, occ_up, occ_dn)[0]

    def energy(t):
        re = jax.vmap(lambda x: re_log_psi(t, x))(grid)
        grad = jax.vmap(jax.grad(lambda x: re_log_psi(t, x)))(grid).reshape(len(grid), -1)
        w = jnp.exp(2 * re) * h * h
        return jnp.sum(w * (0.5 * jnp.sum(grad**2, -1) + jax.vmap(potential)(grid)))

    exact = _flatten(jax.jit(jax.grad(energy))(theta))
    w = jnp.exp(2 * jax.vmap(lambda x: re_log_psi(theta, x))(grid)) * h * h
    assert abs(float(w.sum()) - 1.0) < 1e-6  # the √flow keeps ψ normalized
    B = 5000
    idx = jax.random.choice(jax.random.PRNGKey(5), len(grid), (B,), p=w / w.sum())
    xs = grid[idx]
    e_loc = jax.jit(jax.vmap(lambda x: wf.local_energy(theta, x, occ_up, occ_dn, potential)))(xs)

    def o(x):
        g_re, g_im = jax.jacrev(lambda t: wf.log_psi(t, x, occ_up, occ_dn))(theta)
        return jax.tree.map(lambda a, b: jax.lax.complex(a, b), g_re, g_im)

    jac = jax.jit(jax.vmap(o))(xs)
    est = _flatten(covariance_gradient(jac, e_loc))
    o_re = jnp.real(jnp.concatenate([x.reshape(B, -1) for x in jax.tree.leaves(jac)], 1))
    per_sample = 2 * o_re * (jnp.real(e_loc) - jnp.real(e_loc).mean())[:, None]
    err = per_sample.std(axis=0) / np.sqrt(B)
    assert jnp.max(jnp.abs(est - exact) / (err + 1e-9)) < 4.5, (est, exact, err)
    assert jnp.linalg.norm(exact) > 10 * jnp.linalg.norm(err)


def test_covariance_gradient_is_blind_to_a_constant_shift_of_the_local_energy():
    """A constant added to E_loc, real or imaginary, changes no expectation: with the complex
    batch mean as baseline it changes no estimate either, and the estimate lies in the row
    space of the centred log-derivatives (g = 2 Re J^H (E_loc − Ē)/B), where SR's max_norm
    sees all of it. The real mean alone left 2 Im(c) mean(Im O) in it."""
    rng = np.random.default_rng(3)
    b, p = 8, 5
    o = jnp.asarray(rng.normal(size=(b, p)) + 1j * rng.normal(size=(b, p)))
    e = jnp.asarray(rng.normal(size=b) + 1j * rng.normal(size=b))
    g = covariance_gradient({"w": o}, e)["w"]
    for shift in (0.7, 0.7j, -2.0 + 1.3j):
        np.testing.assert_allclose(covariance_gradient({"w": o}, e + shift)["w"], g,
                                   rtol=1e-12, atol=1e-12)
    centred = o - o.mean(axis=0)
    np.testing.assert_allclose(g, 2 * np.real(np.conj(centred).T @ (e - e.mean())) / b,
                               rtol=1e-12, atol=1e-12)
