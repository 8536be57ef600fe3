"""Coulomb trap, N = 2, d = 2: each training mode against the exact 1-D quadrature.

Tolerances: the importance-sampled F̂ must lie within 3 standard errors and within 1e-3 (reduced
units per particle) of the exact value; the variational bound F_q must not fall below F̂ by more than
3 combined standard errors. Fixed seeds, so each check is deterministic.
"""

import pytest

import qvfe
from qvfe.physics.coulomb_trap import exact_free_energy_two_particles


def _run(beta, **overrides):
    raw = {"system": {"kind": "coulomb_trap", "n": 2, "dim": 2, "beta": beta},
           "model": {"flow": "realnvp", "layers": 8, "hidden": 32},
           "optim": {"lr": 2e-3}, "sampler": {"batch": 256}, "eval": {"samples": 20000}}
    spec = qvfe.load_spec(raw, overrides=overrides)
    return qvfe.run(spec, progress=False).observables


def _check(obs, beta, tol=1e-3):
    exact = exact_free_energy_two_particles(beta, 2).F
    f_is, f_q = obs["F_is"], obs["F"]
    assert abs(f_is.mean - exact) < 3 * f_is.error, (f_is, exact)
    assert abs(f_is.mean - exact) < tol, (f_is, exact)
    assert f_q.mean >= f_is.mean - 3 * (f_q.error + f_is.error)
    assert f_is.extra["ess"] > 100


def test_free_energy_training_beta1():
    # MAF: its importance weights have a lighter tail here than RealNVP's (ESS 0.5-0.8 vs
    # 0.2-0.6 over seeds 0-3), and 10⁶ samples bring F̂'s error to 2-5e-4 of the 1e-3 asked for
    _check(_run(1.0, **{"optim.steps": 400, "optim.lr": 3e-3, "model.layers": 6,
                        "model.flow": "maf", "eval.samples": 1_000_000}), 1.0)


def test_likelihood_training_beta10():
    obs = _run(10.0, **{"optim.steps": 1000, "optim.objective": "likelihood",
                        "sampler.data_samples": 20000})
    _check(obs, 10.0)


def test_flow_matching_beta1():
    obs = _run(1.0, **{"optim.steps": 600, "optim.objective": "flow_matching",
                       "model.flow": "cnf", "model.layers": 2, "model.hidden": 64,
                       "model.ode_steps": 16, "optim.lr": 3e-3, "eval.samples": 8192})
    _check(obs, 1.0, tol=5e-3)  # CNF evaluation is costlier: fewer samples, wider tolerance


@pytest.mark.slow
def test_free_energy_training_beta10_annealed():
    obs = _run(10.0, **{"optim.steps": 3000, "optim.anneal_steps": 1500})
    _check(obs, 10.0)
