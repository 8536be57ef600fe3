"""The classical Coulomb trap as a driver problem: one flow, three ways to train it.

- ``free_energy``: minimize F_q = E_{x~q}[E(x) + T ln q(x)] with the reparameterized gradient
  (samples x = f(z) are differentiable in the flow parameters).
- ``likelihood``: minimize −E_data ln q(x) on Metropolis samples of e^{−βE} made by the package's
  own sampler.
- ``flow_matching``: regress a continuous flow's velocity on the straight path
  x_t = (1 − t) x₀ + t x₁ (x₀ from the base, x₁ from the data) with target x₁ − x₀; ln q then
  follows from the divergence integral.

Whatever the training, the evaluation samples q and reports the variational bound F_q and the
importance-sampled F̂ = −T ln E_q[e^{−βE − ln q}] with its error and effective sample size, per
particle, in the trap's reduced units (energy unit of E = Σ_{i<j} 1/r_ij + Σ_i |x_i|², k_B = 1).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qvfe.flows import (
    ContinuousFlow,
    FlowDensity,
    StandardNormal,
    masked_autoregressive_flow,
    real_nvp,
)
from qvfe.physics import coulomb_trap as trap
from qvfe.problem import Estimate, Problem
from qvfe.stats import log_mean_exp_estimate, mean_and_error

REFERENCE_TABLE = Path(__file__).resolve().parents[2] / "data" / "coulomb_trap_reference.csv"


def make_flow(model: Any, dim: int, beta: float) -> FlowDensity:
    """The flow named by ``model.flow`` over a Gaussian base of the harmonic trap's thermal width
    (never narrower than 0.5, so the Coulomb-expanded cluster is within reach at low T)."""
    hidden = (model.hidden, model.hidden)
    if model.flow == "realnvp":
        bijection = real_nvp(model.layers, hidden=hidden)
    elif model.flow == "maf":
        bijection = masked_autoregressive_flow(model.layers, hidden=hidden)
    else:
        bijection = ContinuousFlow(hidden=(model.hidden,) * max(1, model.layers),
                                   divergence=model.divergence, steps=model.ode_steps)
    scale = max(1.0 / math.sqrt(2.0 * beta), 0.5)
    return FlowDensity(bijection, StandardNormal(dim, scale))


def reference(n: int, dim: int, beta: float) -> dict[str, float]:
    """Exact F, E, S per particle for N = 2; the shipped Monte Carlo reference for larger N."""
    if n == 2:
        ex = trap.exact_free_energy_two_particles(beta, dim)
        return {"F_exact": ex.F, "E_exact": ex.E, "S_exact": ex.S}
    if n == 1:
        return {"F_exact": -0.5 * dim * math.log(math.pi / beta) / beta,
                "E_exact": 0.5 * dim / beta}
    if REFERENCE_TABLE.is_file():
        with open(REFERENCE_TABLE) as fh:
            rows = [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))
                    if (int(r["N"]), int(r["dim"])) == (n, dim)
                    and math.isclose(float(r["beta"]), beta)]
        if rows:  # several methods may be listed: take the most precise
            best = min(rows, key=lambda r: float(r["error"]))
            return {"F_ref": float(best["F_per_particle"]), "F_ref_err": float(best["error"])}
    return {}


def build(spec: Any) -> Problem:
    sysp, model, optim, sampler = spec.system, spec.model, spec.optim, spec.sampler
    n, dim, beta = sysp.n, sysp.dim, sysp.beta
    nd = n * dim
    q = make_flow(model, nd, beta)
    T = 1.0 / beta
    batch = sampler.batch
    # decaying the rate to 0 settles the flow: at a constant rate the pathwise gradient's heavy
    # tail (the 1/r² force of a close pair) kept kicking it off its optimum until the last step
    optimizer = optax.adam(optax.cosine_decay_schedule(optim.lr, max(optim.steps, 1)))

    def energies(x_flat: jax.Array) -> jax.Array:
        return jax.vmap(lambda x: trap.energy(x.reshape(n, dim)))(x_flat)

    data = None
    if optim.objective in ("likelihood", "flow_matching"):
        from qvfe.sampling.classical_mcmc import sample_boltzmann

        data_key = jax.random.fold_in(jax.random.PRNGKey(spec.run.seed), 0xDA7A)
        data = sample_boltzmann(data_key, trap.energy, beta, n, dim, sampler.data_samples,
                                n_walkers=min(256, sampler.data_samples),
                                burn_in=sampler.data_burn_in, thin=sampler.data_thin)
        data = jnp.asarray(data).reshape(-1, nd)

    def beta_at(step: jax.Array) -> jax.Array:
        if optim.anneal_steps == 0:
            return jnp.asarray(beta)
        frac = jnp.minimum(1.0, step / optim.anneal_steps)
        return beta * (0.1 + 0.9 * frac)

    def loss_free_energy(params, key, step):
        x, log_q = q.sample_and_log_prob(params, key, batch)
        e = energies(x)
        b = beta_at(step)
        loss = jnp.mean(b * e + log_q)
        f = (e + T * log_q) / n
        return loss, {"F": jnp.mean(f), "F_err": jnp.std(f) / jnp.sqrt(batch),
                      "E": jnp.mean(e) / n, "S": -jnp.mean(log_q) / n, "beta_eff": b}

    def minibatch(key):
        idx = jax.random.randint(key, (batch,), 0, data.shape[0])
        return data[idx]

    def loss_likelihood(params, key, step):
        k_data, k_log_det = jax.random.split(key)
        x = minibatch(k_data)
        log_q = q.log_prob(params, x, key=k_log_det)  # the key feeds a Hutchinson log-det
        nll = -log_q / n
        return jnp.mean(nll), {"NLL": jnp.mean(nll), "NLL_err": jnp.std(nll) / jnp.sqrt(batch)}

    def loss_flow_matching(params, key, step):
        k_data, k0, kt = jax.random.split(key, 3)
        x1 = minibatch(k_data)
        x0 = q.base.sample(k0, batch)
        t = jax.random.uniform(kt, (batch, 1), x1.dtype)
        xt = (1 - t) * x0 + t * x1
        v = jax.vmap(q.bijection.velocity, in_axes=(None, 0, 0))(params, xt, t[:, 0])
        per = jnp.sum((v - (x1 - x0)) ** 2, axis=-1) / nd
        return jnp.mean(per), {"FM": jnp.mean(per), "FM_err": jnp.std(per) / jnp.sqrt(batch)}

    loss_fn, objective = {
        "free_energy": (loss_free_energy, "F"),
        "likelihood": (loss_likelihood, "NLL"),
        "flow_matching": (loss_flow_matching, "FM"),
    }[optim.objective]

    def init(key: jax.Array) -> dict:
        k_params, k_run = jax.random.split(key)
        params = q.init(k_params)
        return {"params": params, "opt_state": optimizer.init(params), "key": k_run,
                "step": jnp.zeros((), jnp.int32)}

    def step(state: dict) -> tuple[dict, dict]:
        key, sub = jax.random.split(state["key"])
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["params"], sub, state["step"])
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "key": key,
                "step": state["step"] + 1}, metrics

    # The evaluation takes ln q exactly: a Hutchinson ln q̂ = ln q + δ is unbiased, but the
    # importance weights e^{−βE − ln q̂} are not (E[e^{−δ}] ≈ e^{var δ/2}), which put F_is 6σ
    # below the exact F of two particles. The same parameters and path give the same samples.
    q_eval = q
    if getattr(q.bijection, "divergence", "exact") != "exact":
        q_eval = dataclasses.replace(
            q, bijection=dataclasses.replace(q.bijection, divergence="exact"))

    def eval_chunk(state: dict, key: jax.Array) -> tuple[dict, dict]:
        x, log_q = q_eval.sample_and_log_prob(state["params"], key, batch)
        e = energies(x)
        return state, {"F": (e + T * log_q) / n, "E": e / n, "S": -log_q / n,
                       "log_w": -beta * e - log_q}

    def summarize(samples: dict[str, np.ndarray]) -> dict[str, Estimate]:
        out = {k: mean_and_error(np.ravel(samples[k])) for k in ("F", "E", "S")}
        log_z, err, ess = log_mean_exp_estimate(samples["log_w"])
        out["F_is"] = Estimate(-T * log_z / n, T * err / n, {"ess": ess})
        return out

    return Problem(system="coulomb_trap", units="reduced", per="particle", init=init,
                   step=step, eval_chunk=eval_chunk, eval_batch=batch, summarize=summarize,
                   objective=objective, info=reference(n, dim, beta))
