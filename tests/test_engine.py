"""The engine: the learning-rate decay, the settings taken from a spec, the entropy estimate, the
sampling stage the step and the evaluation share."""

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qvfe
from qvfe.engine import EngineConfig, make_optimizer
from qvfe.run import build_problem
from qvfe.spec import QuantumOptim, QuantumSampler, SpecError, load_spec

SYSTEMS = Path(__file__).resolve().parents[1] / "systems"


def sr_inputs(seed, batch=6):
    """Gradients and per-sample log-derivatives of a two-block parameter pytree (φ real, θ
    complex), the shapes the engine's step hands to the optimizer."""
    rng = np.random.default_rng(seed)
    params = {"phi": jnp.zeros(3), "theta": jnp.zeros(4)}
    grads = {"phi": jnp.asarray(rng.normal(size=3)), "theta": jnp.asarray(rng.normal(size=4))}
    jac = {"phi": jnp.asarray(rng.normal(size=(batch, 3))),
           "theta": jnp.asarray(rng.normal(size=(batch, 4)) + 1j * rng.normal(size=(batch, 4)))}
    return params, grads, jac


@pytest.mark.parametrize("method", ["sr", "adam"])
def test_decayed_rate_scales_each_step_by_one_over_one_plus_t_over_t0(method):
    t0 = 3
    const = make_optimizer(EngineConfig(n_particles=1, T=1.0, batch=6, method=method, lr=0.1))
    decay = make_optimizer(EngineConfig(n_particles=1, T=1.0, batch=6, method=method, lr=0.1,
                                        lr_decay_steps=t0))
    params, _, _ = sr_inputs(0)
    states = [const.init(params), decay.init(params)]
    for t in range(5):
        _, grads, jac = sr_inputs(t + 1)
        extra = {"jacobian": jac} if method == "sr" else {}
        (u_const, states[0]), (u_decay, states[1]) = (
            opt.update(grads, s, params, **extra) for opt, s in zip((const, decay), states))
        for name in ("phi", "theta"):
            np.testing.assert_allclose(np.asarray(u_decay[name]),
                                       np.asarray(u_const[name]) / (1.0 + t / t0),
                                       rtol=1e-12, atol=1e-15)


def test_settings_come_from_the_spec_tables_and_the_system_overrides_them():
    optim = QuantumOptim(lr=0.02, lr_decay_steps=50, max_norm=0.0)
    sampler = QuantumSampler(batch=64, init_width=0.5)
    cfg = EngineConfig.from_spec(optim, sampler, n_particles=4, T=0.1, init_width=2.0)
    assert (cfg.lr, cfg.lr_decay_steps, cfg.batch, cfg.n_particles, cfg.T) == \
        (0.02, 50, 64, 4, 0.1)
    assert cfg.max_norm is None          # 0 in a spec means no cap
    assert cfg.init_width == 2.0         # the system's own value (e.g. scaled by rs) wins
    assert cfg.mcmc_sweeps == sampler.mcmc_sweeps and cfg.method == "sr"


def test_decay_steps_below_zero_is_refused_by_the_spec():
    raw = {"system": {"kind": "electron_gas", "n_up": 3, "n_down": 0, "rs": 4.0, "theta": 0.5},
           "optim": {"lr_decay_steps": -1}}
    with pytest.raises(SpecError,
                       match=r"optim\.lr_decay_steps = -1 is invalid: must be an integer ≥ 0"):
        load_spec(raw)


def test_entropy_comes_from_fresh_draws_of_the_occupation_model_not_from_the_chain():
    """S = −E[ln p_φ(n)] needs only n's marginal, p_φ itself. So even when every walker of the
    chain holds the least probable occupation (the five highest plane waves), one evaluation
    batch estimates S of the untrained occupation model, which is exactly the canonical ideal
    gas, without bias. From the chain's n the walkers that keep theirs would put it far above."""
    spec = load_spec(SYSTEMS / "electron_gas_2d_n5_rs2_theta0.5_ideal.toml",
                     overrides=["optim.steps=0", "sampler.batch=256", "sampler.burn_in=10"])
    problem = build_problem(spec)
    state = jax.jit(problem.prepare)(problem.init(jax.random.PRNGKey(0)))
    up, down = state["occ"]
    state = {**state, "occ": (jnp.zeros_like(up).at[:, -5:].set(1), down)}
    _, per_sample = jax.jit(problem.eval_chunk)(state, jax.random.PRNGKey(1))
    s = np.asarray(per_sample["S"])
    assert abs(s.mean() - problem.info["S_exact"]) < 4 * s.std() / np.sqrt(s.size), \
        (s.mean(), problem.info["S_exact"])


def test_a_run_compiles_its_sampling_stage_once_for_the_steps_and_the_evaluation(tmp_path, caplog):
    """The step and the evaluation share the jitted ``draw`` (sampling and local energies), so
    a run of two steps and two evaluation chunks compiles it once; a key or state that reached
    it with another sharding or type would compile it again (it did, before the evaluation's key
    was placed like the step's), and so would a driver that wrapped the step in jax.jit."""
    spec = load_spec(SYSTEMS / "electron_gas_2d_n5_rs2_theta0.5_ideal.toml",
                     overrides=["optim.steps=2", "sampler.batch=16", "sampler.burn_in=2",
                                "eval.samples=32"])
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        qvfe.run(spec, out=tmp_path / "r", progress=False)
    compiled = [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("Finished XLA compilation of jit(")]
    assert sum("jit(draw)" in m for m in compiled) == 1, compiled
    assert sum("jit(update)" in m for m in compiled) == 1, compiled
    assert sum("jit(finish_chunk)" in m for m in compiled) == 1, compiled


def test_the_evaluation_keeps_the_metropolis_width_that_training_adapted():
    """Training adapts the proposal width after every step; the evaluation's chunks keep it
    fixed, so its walkers are independent, homogeneous chains (what their error bars assume)."""
    spec = load_spec(SYSTEMS / "electron_gas_2d_n5_rs2_theta0.5_ideal.toml",
                     overrides=["optim.steps=1", "sampler.batch=16", "sampler.burn_in=2"])
    problem = build_problem(spec)
    state = jax.jit(problem.prepare)(problem.init(jax.random.PRNGKey(0)))
    stepped, _ = problem.step(state)
    assert float(stepped["mc"].width) != float(state["mc"].width)
    chunk = state
    for i in range(2):
        chunk, _ = problem.eval_chunk(chunk, jax.random.PRNGKey(i))
        assert float(chunk["mc"].width) == float(state["mc"].width)
        assert not np.array_equal(np.asarray(chunk["mc"].walkers), np.asarray(state["mc"].walkers))


def test_the_sampling_stage_alone_moves_the_chain_as_the_evaluation_does():
    """``sample_chunk`` (the diagnostics' sampling, without the local energies) takes the same
    walkers, occupations and width from a state and key as ``eval_chunk``: a script sampling
    with it sees the evaluation's own chain."""
    spec = load_spec(SYSTEMS / "electron_gas_2d_n5_rs2_theta0.5_ideal.toml",
                     overrides=["optim.steps=1", "sampler.batch=16", "sampler.burn_in=2"])
    problem = build_problem(spec)
    state = jax.jit(problem.prepare)(problem.init(jax.random.PRNGKey(0)))
    state, _ = problem.step(state)
    evaluated = sampled = state
    for i in range(2):
        evaluated, _ = problem.eval_chunk(evaluated, jax.random.PRNGKey(10 + i))
        sampled = problem.sample_chunk(sampled, jax.random.PRNGKey(10 + i))
        for a, b in zip(jax.tree_util.tree_leaves((evaluated["mc"], evaluated["occ"])),
                        jax.tree_util.tree_leaves((sampled["mc"], sampled["occ"]))):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(sampled["mc"].walkers), np.asarray(state["mc"].walkers))
    assert float(sampled["mc"].width) == float(state["mc"].width)


def test_the_steps_gradient_is_the_exact_free_energys_for_a_complex_state(monkeypatch):
    """End to end: two electrons of one spin on twisted plane waves in a 2D box (complex psi;
    5 orbitals, 10 states at Theta = 1, no interaction), a perturbed occupation model and flow:
    the engine's gradient of F (the optimizer swapped for a plain step of rate 1, clipping off)
    averaged over steps at fixed parameters, against the gradient of the exact F = sum_n p_n
    (T ln p_n + E_n), each E_n = <psi_n|H|psi_n> by the trapezoidal rule on a grid of the box
    (spectrally accurate for periodic integrands). Both the occupations' score-function
    gradient and the flow's covariance gradient, with the imaginary parts of ln psi and of
    E_loc, enter; the sampled F too."""
    import itertools

    import optax

    from helpers import perturbed

    monkeypatch.setattr(qvfe.engine, "make_optimizer", lambda cfg: optax.sgd(1.0))
    batch, steps, n_orb, grid_points = 512, 60, 5, 16
    spec = load_spec({"system": {"kind": "electron_gas", "n_up": 2, "n_down": 0, "dim": 2,
                                 "rs": 2.0, "theta": 1.0, "coupling": 0.0, "n_orbitals": n_orb,
                                 "twist": [0.13, -0.21]},
                      "model": {"occupation_hidden": 4, "backflow_layers": 1,
                                "backflow_hidden": 4},
                      "optim": {"steps": 1, "method": "adam", "clip_width": 1e6},
                      "sampler": {"batch": batch, "mcmc_sweeps": 5, "burn_in": 300}})
    problem = build_problem(spec)
    dm, T, L = problem.model, problem.info["T"], problem.info["box_length"]
    assert dm.wavefunction.basis.is_complex
    state = problem.init(jax.random.PRNGKey(0))
    params = {"phi": perturbed(state["params"]["phi"], jax.random.PRNGKey(1), 0.5),
              "theta": perturbed(state["params"]["theta"], jax.random.PRNGKey(2), 0.5)}
    state = {**state, "params": params, "key": jax.random.PRNGKey(7)}

    patterns = jnp.asarray(np.stack([np.eye(n_orb, dtype=np.int32)[list(c)].sum(0)
                                     for c in itertools.combinations(range(n_orb), 2)]))
    occupations = (patterns, jnp.zeros_like(patterns))
    indices = dm.indices(occupations)
    h = L / grid_points
    axis = (jnp.arange(grid_points) + 0.5) * h
    shifted = axis + 0.5 * h  # the second electron's grid: the two never coincide (ln psi = -inf)
    grid = jnp.stack(jnp.meshgrid(axis, axis, shifted, shifted, indexing="ij"), -1
                     ).reshape(-1, 2, 2)

    def energy(theta, up, down):  # <psi|H|psi> with |grad psi|^2 = |grad re|^2 + |grad im|^2
        parts = [jax.vmap(jax.grad(lambda x, i=i: dm.log_psi(theta, x, up, down)[i]))(grid)
                 for i in (0, 1)]
        weight = jnp.exp(2 * jax.vmap(lambda x: dm.log_psi(theta, x, up, down)[0])(grid)) * h**4
        kinetic = 0.5 * jnp.sum(parts[0] ** 2 + parts[1] ** 2, axis=(1, 2))
        return jnp.sum(weight * (kinetic + jax.vmap(dm.potential)(grid))), jnp.sum(weight)

    def exact_free_energy(p):
        log_p = dm.log_prob(p["phi"], occupations)
        e, norm = jax.vmap(lambda a, b: energy(p["theta"], a, b))(*indices)
        return jnp.sum(jnp.exp(log_p) * (T * log_p + e)), norm

    (f_exact, norm), g_exact = jax.jit(jax.value_and_grad(exact_free_energy, has_aux=True))(
        params)
    np.testing.assert_allclose(np.asarray(norm), 1.0, atol=1e-6)  # the grid resolves each state

    def flat(tree):
        return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])

    state = jax.jit(problem.prepare)(state)
    grads, free = [], []
    for _ in range(steps):
        new, metrics = problem.step(state)
        grads.append({k: flat(jax.tree.map(lambda a, b: a - b, params[k], new["params"][k]))
                      for k in params})
        free.append(float(metrics["F"]))
        state = {**new, "params": params}
    free = np.asarray(free) * 2  # the step reports F per electron
    assert abs(free.mean() - float(f_exact)) < 4 * free.std() / np.sqrt(steps) + 1e-3
    for name in ("phi", "theta"):
        # the batch-mean baselines scale an unbiased gradient by (B - 1)/B
        g = np.stack([s[name] for s in grads]) * batch / (batch - 1)
        mean, error = g.mean(0), g.std(0) / np.sqrt(steps)
        exact = flat(g_exact[name])
        # here |exact| is 0.075 (phi) and 0.109 (theta), the misses 0.0066 and 0.0015, and
        # the error's norm 0.0041 and 0.0036
        assert np.linalg.norm(exact) > 0.05
        assert np.linalg.norm(mean - exact) < 0.2 * np.linalg.norm(exact), name
        assert np.linalg.norm(mean - exact) < 4 * np.linalg.norm(error) + 1e-12, name
