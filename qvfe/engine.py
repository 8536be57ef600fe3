"""The quantum engine: variational Monte Carlo of the density matrix, as a driver problem.

One job: from a :class:`~qvfe.density_matrix.DensityMatrix` and a few numbers, make the pure ``init``,
``step`` and ``eval_chunk`` functions of a :class:`~qvfe.problem.Problem`. A step

1. proposes occupations n'_b ~ p_φ exactly (one per walker) and accepts each by Metropolis–Hastings
   on the joint p_φ(n)|ψ_n(X)|² (ratio |ψ_n'(X_b)|²/|ψ_n(X_b)|²), so X_b stays equilibrated for its n_b;
   with ``local_step`` (hydrogen's protons) then proposes a small change of n by the occupation
   model's ``local_move``, symmetric where p_φ is uniform, accepted by the same ratio,
2. moves the walkers X_b by Metropolis on |ψ_{n_b}|² (walkers and step width kept across steps;
   ``prepare`` equilibrates them for ``burn_in`` sweeps before the first step),
3. estimates F = E_n[T ln p_φ(n) + E_loc] per particle with its parts,
4. forms the gradients (DESIGN.md §3; b is the batch mean, which scales them by (B − 1)/B, a
   factor the step size absorbs)
   ∇_φ F = E[O^φ (f − b)], f = T ln p + Re E_loc, O^φ = ∇_φ ln p;
   ∇_θ F = 2 Re E[(O^θ)* (f − b + i Im E_loc)], O^θ = ∇_θ ln ψ,
   with f clipped around its median for the gradients only. In ∇_θ, f − b stands for E_loc − Ē:
   any baseline that depends on n alone leaves it unbiased, because every ψ_n stays normalized
   (E_{X∼|ψ_n|²}[Re O^θ] = 0), and −T ln p_φ(n) + const is the best one near the optimum, where
   T ln p_φ(n) + E_n is the same for all n: the spread of the state energies E_n (about 1 Ha
   per electron at T = ω/2) then drops out of the θ gradient, leaving the fluctuations of E_loc
   within each state. With the batch mean Ē the θ noise grows with the number of states mixed.
5. updates the parameters by the natural gradient (classical Fisher for φ, real part of the quantum
   geometric tensor for θ, each damped) or by Adam.

The evaluation (``eval_chunk``) runs the same sampling and reports F, E, K, V from the chain, and
S = −E[ln p_φ(n)] over fresh exact draws of n, whose marginal in the chain is p_φ: free of the
chain's autocorrelation, which for hydrogen's slowly moving protons made S's error bars
unreliable. F = E − T S therefore holds within the errors, not sample by sample.

Step and evaluation are built from jitted stages: ``draw`` (steps 1–3, the sampling and the local
energies, the bulk of the compilation) is shared by both, so a run compiles it once; ``step`` adds
the gradients and the update, ``eval_chunk`` the fresh draws of n.

The batch (walkers) is sharded over all visible devices along a 1-D mesh: the step constrains every
per-walker array to ``NamedSharding(mesh, P("batch"))`` and XLA partitions the computation; the
parameters are replicated. Nothing here assumes one device, and checkpoints (host arrays) resume on
any device count.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from qvfe.density_matrix import DensityMatrix
from qvfe.estimators import covariance_gradient, score_function_gradient
from qvfe.optim.clipping import clip_local_energy
from qvfe.optim.sr import sr, sr_blocks
from qvfe.problem import Problem
from qvfe.sampling import metropolis


@dataclass(frozen=True)
class EngineConfig:
    """Numbers the engine needs; the problem builders fill them from a spec."""

    n_particles: int
    T: float
    batch: int
    method: str = "sr"          # "sr" | "adam"
    lr: float = 0.05
    lr_decay_steps: int = 0     # > 0: the rate at step t is lr / (1 + t / lr_decay_steps)
    damping: float = 1e-3
    max_norm: float | None = None
    clip_width: float = 5.0
    mcmc_sweeps: int = 10
    burn_in: int = 200
    init_width: float = 0.3
    box_length: float | None = None
    laplacian: str = "folx"     # "folx" | "hessian" | "hutchinson" (see qvfe.wavefunction)
    laplacian_probes: int = 1   # hutchinson's probe vectors per sample
    local_step: float = 0.0     # > 0: also the occupation model's local move, of this step

    @classmethod
    def from_spec(cls, optim: Any, sampler: Any, **fields: Any) -> EngineConfig:
        """The settings of a spec's [optim] and [sampler] tables; ``fields`` (the system's own:
        n_particles, T, box_length, ...) are added and override them."""
        common = dict(batch=sampler.batch, method=optim.method, lr=optim.lr,
                      lr_decay_steps=optim.lr_decay_steps, damping=optim.damping,
                      max_norm=optim.max_norm or None, clip_width=optim.clip_width,
                      mcmc_sweeps=sampler.mcmc_sweeps, burn_in=sampler.burn_in,
                      init_width=sampler.init_width)
        return cls(**{**common, **fields})


class Draw(NamedTuple):
    """What the shared sampling stage hands to the step's update and the evaluation's rest:
    the accepted occupations and their base-state indices, the moved walkers, the acceptances,
    ln p_φ(n), the local energy parts and the per-sample observables."""

    occ: Any
    idx: Any
    mc: Any
    acceptance: jax.Array
    acceptances: dict
    logp: jax.Array
    energies: dict
    per_sample: dict


def batch_mesh() -> Mesh:
    """A 1-D mesh named "batch" over every visible device."""
    return Mesh(np.array(jax.devices()), ("batch",))


def _warn_cpu_scheduler() -> None:
    """See qvfe.cli.CPU_SCHEDULER_FLAG: without it, batched determinant gradients can deadlock."""
    if jax.default_backend() == "cpu" and "xla_cpu_enable_concurrency_optimized_scheduler" \
            not in os.environ.get("XLA_FLAGS", ""):
        warnings.warn("On CPU set XLA_FLAGS=--xla_cpu_enable_concurrency_optimized_scheduler=false "
                      "before importing jax: on jax 0.10.2 batched LAPACK calls in the local energy "
                      "can otherwise deadlock (idle CPU, no error). The qvfe command sets it.",
                      RuntimeWarning, stacklevel=3)
    from qvfe.xla_cpu import deadlock_free_linalg_in_use

    if jax.default_backend() == "cpu" and not deadlock_free_linalg_in_use():
        warnings.warn("On CPU call qvfe.xla_cpu.use_deadlock_free_linalg() before the first run: "
                      "on jax 0.10.2 two batched LAPACK solves or LUs can otherwise deadlock "
                      "(idle CPU, no error). The qvfe command does it.", RuntimeWarning,
                      stacklevel=3)


def make_optimizer(cfg: EngineConfig) -> optax.GradientTransformationExtraArgs:
    """SR (or Adam) on the parameters, at the rate lr, or lr / (1 + t / lr_decay_steps) at step t:
    the decay lets late steps average the gradient noise that a constant rate keeps injecting."""
    def decayed(t: jax.Array) -> jax.Array:
        # optax counts in int32, whose quotient would be float32 even under x64
        return cfg.lr / (1.0 + jnp.asarray(t, jnp.result_type(float)) / cfg.lr_decay_steps)

    rate = decayed if cfg.lr_decay_steps > 0 else cfg.lr
    if cfg.method == "adam":
        return optax.adam(rate)
    natural = sr_blocks({"phi": sr(cfg.damping, max_norm=cfg.max_norm),
                         "theta": sr(cfg.damping, max_norm=cfg.max_norm)},
                        {"phi": "phi", "theta": "theta"})
    return optax.chain(natural, optax.scale_by_learning_rate(rate))


def make_quantum_problem(dm: DensityMatrix, cfg: EngineConfig,
                         init_walkers: Callable[[jax.Array, int], jax.Array], *, system: str,
                         per: str = "particle", info: dict | None = None,
                         mesh: Mesh | None = None,
                         derived: Callable[[dict], dict] | None = None,
                         observable_units: dict[str, str] | None = None,
                         also_in: tuple[str, ...] = (),
                         prefit: Callable[[dict, jax.Array], dict] | None = None,
                         eval_checks: Callable[[dict, jax.Array, tuple], dict] | None = None
                         ) -> Problem:
    """The driver problem of a quantum system described by ``dm`` at temperature ``cfg.T``.

    ``init_walkers(key, batch) -> (batch, N, d)`` places the initial walkers (e.g. a Gaussian
    of the trap's width, or uniform in the box). ``derived(per_sample) -> {name: (B,) array}``
    adds per-sample observables computed from F, E, K, V, S per particle (e.g. the virial
    pressure), whose units ``observable_units`` names. ``prefit(params, key) -> params`` runs
    once before the first step (in ``prepare``, so a resumed run does not repeat it), e.g.
    hydrogen's fit of the proton flow to screened protons. ``eval_checks(theta, xs, idx) ->
    {name: (B,) array}`` (idx: the walkers' base-state indices, up and down) adds per-sample
    diagnostics to the evaluation only (e.g. whether the √flow folds at a walker), too costly to
    repeat at every step.
    """
    _warn_cpu_scheduler()
    mesh = mesh or batch_mesh()
    n_dev = mesh.devices.size
    if cfg.batch % n_dev:
        raise ValueError(f"sampler.batch = {cfg.batch} must be a multiple of the {n_dev} devices")
    shard = NamedSharding(mesh, PartitionSpec("batch"))
    optimizer = make_optimizer(cfg)
    T, n, B = cfg.T, cfg.n_particles, cfg.batch

    def constrain(tree):
        return jax.tree.map(lambda a: jax.lax.with_sharding_constraint(a, shard), tree)

    def metropolis_choice(key, prop, idx_prop, lp_prop, cur, idx_cur, lp_cur):
        """Each walker takes the proposal with probability min(1, e^{lp_prop − lp_cur})."""
        accept = jnp.log(jax.random.uniform(key, (B,))) < lp_prop - lp_cur

        def choose(a, b):
            return jnp.where(accept.reshape((B,) + (1,) * (a.ndim - 1)), a, b)

        # the indices (with hydrogen's bands, one diagonalisation per configuration) are a
        # per-sample function of the occupation, so the accepted ones are chosen, not recomputed
        return (jax.tree.map(choose, prop, cur), jax.tree.map(choose, idx_prop, idx_cur),
                choose(lp_prop, lp_cur), jnp.mean(accept))

    def sample(params, mc, occ_prev, key):
        """n by an independence Metropolis–Hastings move on the joint p_φ(n)|ψ_n(X)|², then
        (with ``local_step``) by the occupation model's local move, then Metropolis on X | n.

        The proposal n' ~ p_φ is exact; it is accepted with min(1, |ψ_n'(X)|²/|ψ_n(X)|²) at the
        walker's current X (the p_φ factors cancel against the proposal). Handing every walker a
        fresh n unconditionally would leave X distributed as |ψ_{n_old}|² for a state n_new,
        and a few sweeps do not relax that: at T = 0.5 the estimates of the interacting dot then
        drifted upwards while being optimized (excited states evaluated on ground-state-shaped
        walkers look cheap to the φ gradient). A fresh n is rarely accepted where ψ_n depends
        strongly on a large classical part of n (hydrogen's 32 protons: about 3 % of walkers
        per step), so the local move, symmetric where p_φ needs no factor, changes it a little at a
        time with the same acceptance rule. Returns the acceptances of both moves.
        """
        # four keys: with partitionable threefry the first two are split(key)'s, so runs without
        # the local move keep their streams (fold_in of a constant clashed with a global mesh)
        k_occ, k_acc, k_local, k_acc_local = jax.random.split(key, 4)
        theta = params["theta"]
        walkers = constrain(mc.walkers)
        prop = constrain(dm.sample_occupations(params["phi"], k_occ, B))
        occ_prev = constrain(occ_prev)
        idx_prop, idx_prev = dm.indices(prop), dm.indices(occ_prev)
        occ, idx, lp, acc_n = metropolis_choice(
            k_acc, prop, idx_prop, dm.log_abs2_batch(theta, idx_prop)(walkers),
            occ_prev, idx_prev, dm.log_abs2_batch(theta, idx_prev)(walkers))
        acceptances = {"acceptance_n": acc_n}
        if cfg.local_step > 0:
            prop = constrain(dm.local_move(params["phi"], occ, k_local, cfg.local_step))
            idx_prop = dm.indices(prop)
            occ, idx, _, acceptances["acceptance_local"] = metropolis_choice(
                k_acc_local, prop, idx_prop,
                dm.log_abs2_batch(theta, idx_prop)(walkers), occ, idx, lp)
        target = dm.log_abs2_batch(theta, idx)
        mc = mc._replace(walkers=walkers)
        mc, acc = metropolis.step(mc, target, cfg.mcmc_sweeps, box_length=cfg.box_length)
        return occ, idx, mc, acc, acceptances

    def prepare(state: dict) -> dict:
        """Before the first step: the ``prefit``, then burn-in (Metropolis sweeps on |ψ_n|² for
        freshly drawn n).

        A separate jitted call rather than a ``lax.cond`` inside ``step``: on jax 0.10.2 a cond
        whose branch holds the Metropolis scan deadlocked the XLA CPU runtime (idle threads) at
        batch 256.
        """
        if prefit is not None:
            key, k_fit = jax.random.split(state["key"])
            state = {**state, "params": prefit(state["params"], k_fit), "key": key}
        if cfg.burn_in == 0:
            return state
        params = state["params"]
        key, k_occ = jax.random.split(state["key"])
        occ = constrain(dm.sample_occupations(params["phi"], k_occ, B))
        target = dm.log_abs2_batch(params["theta"], dm.indices(occ))
        mc = state["mc"]._replace(walkers=constrain(state["mc"].walkers))
        mc, _ = metropolis.burn_in(mc, target, cfg.burn_in, box_length=cfg.box_length)
        return {**state, "mc": mc, "occ": occ, "key": key}

    def observables(params, occ, idx, xs, key):
        logp = dm.log_prob(params["phi"], occ)
        en = dm.energies(params["theta"], xs, idx, laplacian=cfg.laplacian, key=key,
                         probes=cfg.laplacian_probes)
        e = jnp.real(en["E"])
        per_sample = {"F": (T * logp + e) / n, "E": e / n, "K": jnp.real(en["K"]) / n,
                      "V": en["V"] / n, "S": -logp / n}
        if derived is not None:
            per_sample.update(derived(per_sample))
        return logp, en, per_sample

    def init(key: jax.Array) -> dict:
        k_params, k_walk, k_mc, k_run, k_occ = jax.random.split(key, 5)
        params = dm.init(k_params)
        occ = dm.sample_occupations(params["phi"], k_occ, B)
        walkers = init_walkers(k_walk, B)
        mc = metropolis.init(k_mc, walkers, cfg.init_width)
        return {"params": params, "opt_state": optimizer.init(params), "mc": mc, "occ": occ,
                "key": k_run, "step": jnp.zeros((), jnp.int32)}

    replicated = NamedSharding(mesh, PartitionSpec())

    def state_sharding(state: dict) -> dict:
        sh = jax.tree.map(lambda _: replicated, state)
        sh["mc"] = sh["mc"]._replace(walkers=shard)
        sh["occ"] = jax.tree.map(lambda _: shard, state["occ"])
        return sh

    def pin_state(state: dict) -> dict:
        """The stages' new state where the driver placed the old one, so a stage's next call
        sees the same input shardings and is not compiled again."""
        return jax.lax.with_sharding_constraint(state, state_sharding(state))

    # The step and the evaluation share their costliest part, the sampling and the local energies
    # (a third to a half of each program's tracing and XLA compilation: the Laplacian of ln ψ,
    # the determinants, the Metropolis scan): ``draw`` is jitted once and both call it, each
    # followed by its own jitted remainder, so it compiles once per run rather than twice. The
    # problem says so (``jits_own_stages``) and the driver does not wrap step and eval_chunk in
    # jax.jit again (which would inline both stages and compile them whole, as before).
    @jax.jit
    def draw(params, mc, occ_prev, key) -> Draw:
        occ, idx, mc, acc, acceptances = sample(params, mc, occ_prev, key)
        # hutchinson's probes: a sixth key (sample() takes the first four, the evaluation's
        # fresh occupations the fifth), drawn only when used, so other runs keep their streams
        k_probe = jax.random.split(key, 6)[5] if cfg.laplacian == "hutchinson" else None
        logp, en, per_sample = observables(params, occ, idx, mc.walkers, k_probe)
        return Draw(occ, idx, mc, acc, acceptances, logp, en, per_sample)

    # the keys that reach ``draw`` are replicated on the mesh, from the step as from the
    # evaluation (an uncommitted key would be a different input type and compile it again)
    @partial(jax.jit, out_shardings=replicated)
    def split_key(key):
        key, k_occ = jax.random.split(key)
        return key, k_occ

    @jax.jit
    def update(state, key, d: Draw):
        params = state["params"]
        occ, mc, en, per_sample = d.occ, d.mc, d.energies, d.per_sample
        xs = mc.walkers
        # f = T ln p + E_loc serves both gradients (see the module docstring, step 4), clipped
        # around its median: at the optimum it is flat across states, so the window catches
        # outlying samples rather than states of high energy.
        f = clip_local_energy(T * d.logp + jnp.real(en["E"]), cfg.clip_width)
        e_im = jnp.imag(en["E"])
        o_phi = dm.log_prob_jacobian(params["phi"], occ)
        o_theta = dm.log_psi_jacobian(params["theta"], xs, d.idx)
        g_phi = score_function_gradient(o_phi, f)
        g_theta = covariance_gradient(o_theta, jax.lax.complex(f, e_im))
        grads = {"phi": g_phi, "theta": g_theta}
        if cfg.method == "sr":
            updates, opt_state = optimizer.update(grads, state["opt_state"], params,
                                                  jacobian={"phi": o_phi, "theta": o_theta})
        else:
            updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        params = optax.apply_updates(params, updates)
        metrics = {k: jnp.mean(v) for k, v in per_sample.items()}
        metrics["F_err"] = jnp.std(per_sample["F"]) / jnp.sqrt(B)
        metrics["acceptance"] = d.acceptance
        metrics.update(d.acceptances)
        metrics["width"] = mc.width
        new = {"params": params, "opt_state": opt_state, "mc": mc, "occ": occ, "key": key,
               "step": state["step"] + 1}
        return pin_state(new), metrics

    def step(state: dict) -> tuple[dict, dict]:
        key, k_occ = split_key(state["key"])
        return update(state, key, draw(state["params"], state["mc"], state["occ"], k_occ))

    @jax.jit
    def finish_chunk(state, key, d: Draw):
        params = state["params"]
        # sample() splits ``key`` in four; the fifth key of a split in five is a new stream
        k_fresh = jax.random.split(key, 5)[4]
        fresh = constrain(dm.sample_occupations(params["phi"], k_fresh, B))
        per_sample = {**d.per_sample,
                      "S": d.per_sample["S"] + (d.logp - dm.log_prob(params["phi"], fresh)) / n}
        if eval_checks is not None:
            per_sample.update(eval_checks(params["theta"], d.mc.walkers, d.idx))
        # the Metropolis width stays where training left it: adapted after every chunk from the
        # batch's acceptance, it would tie the walkers together (each chunk's kernel keeps |ψ|²
        # invariant, but the chains would be neither independent nor homogeneous, which the
        # walker-mean error bars assume)
        mc = d.mc._replace(width=state["mc"].width)
        return pin_state({**state, "mc": mc, "occ": d.occ}), per_sample

    def eval_chunk(state: dict, key: jax.Array) -> tuple[dict, dict]:
        """One batch of the evaluation. F, E, K, V come from the chain; S = −E[ln p_φ(n)]
        only needs n's marginal, which is p_φ itself, so it is taken over fresh exact draws
        (independent of the chain, hence free of its autocorrelation; hydrogen's protons move
        slowly in the chain). F keeps the chain's own ln p_φ, whose anticorrelation with E_loc
        is what makes F's estimate precise."""
        key = jax.device_put(key, replicated)
        return finish_chunk(state, key, draw(state["params"], state["mc"], state["occ"], key))

    @jax.jit
    def sample_chunk(state: dict, key: jax.Array) -> dict:
        """The evaluation's chain moved as ``eval_chunk(state, key)`` moves it (the same walkers
        and occupations), without the local energies: for diagnostics that need configurations
        only (structure factors), at a fraction of a chunk's cost."""
        key = jax.device_put(key, replicated)
        occ, _, mc, _, _ = sample(state["params"], state["mc"], state["occ"], key)
        return pin_state({**state, "mc": mc._replace(width=state["mc"].width), "occ": occ})

    return Problem(system=system, units="hartree", per=per, init=init, step=step,
                   eval_chunk=eval_chunk, sample_chunk=sample_chunk, eval_batch=B, objective="F",
                   info=dict(info or {}), prepare=prepare, state_sharding=state_sharding,
                   observable_units=dict(observable_units or {}), also_in=tuple(also_in),
                   jits_own_stages=True, model=dm)
