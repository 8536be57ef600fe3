"""The contract between a physical system and the driver: pure functions over a pytree state.

A problem is built once from a validated spec (see ``qvfe.problems``). The driver owns the loop, jit,
checkpoints and statistics; the problem owns the physics and the model. Everything a problem keeps
between steps (parameters, optimizer state, walkers, step width, PRNG key) lives in one pytree made
of dicts, tuples, NamedTuples and arrays, so that ``flax.serialization`` can checkpoint it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import numpy as np

State = Any
Metrics = dict[str, jax.Array]
Samples = dict[str, jax.Array]


@dataclass(frozen=True)
class Estimate:
    """A mean with one standard error of the mean; extra diagnostics ride along in ``extra``."""

    mean: float
    error: float
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "error": float(self.error), **{
            k: float(v) for k, v in self.extra.items()}}


@dataclass(frozen=True)
class Problem:
    """What the driver needs from a system.

    init(key) -> state
        Fresh training state. Must be a pure function of the key (resume rebuilds the template
        from the same key and then overwrites it with the checkpoint).
    step(state) -> (state, metrics)
        One optimisation step. Pure and jittable: the driver wraps it in ``jax.jit``. ``metrics`` is a
        flat dict of scalars for the log (the objective under ``objective`` and, where it makes sense,
        ``<objective>_err``, parts such as E and S, ``acceptance``), per ``per`` unit in ``units``.
    eval_chunk(state, key) -> (state, samples)
        Frozen-parameter sampling for the final estimates: one batch of per-sample values (each an
        array of shape (batch,)) keyed by observable name. Pure and jittable. The returned state only
        carries sampler state (walkers) forward; parameters must not change.
    prepare(state) -> state
        Optional, pure and jittable: run once on a fresh state before the first step (and before
        evaluating a run of zero steps), e.g. Metropolis burn-in. Not run on resume.
    state_sharding(state) -> pytree of jax.sharding.Sharding
        Optional: where each leaf of the state lives (e.g. walkers split over devices, parameters
        replicated). The driver places the state there and pins the jitted functions to it, so a
        step's output has the same shardings as its input and nothing is compiled twice.
    observable_units
        Units of the observables that are not energies per ``per`` (e.g. {"P": "Ha/bohr^3"}).
    also_in
        Further energy units (e.g. ("Ry",)) the result table also prints its energies in, for
        comparison with reference tables that use them.
    jits_own_stages
        True when ``step`` and ``eval_chunk`` are made of functions that are already jitted (the
        quantum engine's: a sampling stage both share, so that it compiles once); the driver then
        calls them as they are instead of wrapping each in ``jax.jit``, which would inline the
        stages and compile each whole. Either way they stay pure and jittable.
    model
        Optional: the model the state's parameters belong to, for scripts and diagnostics that
        evaluate it outside the step (the quantum engine's ``DensityMatrix``: its occupation
        model, wavefunction and potential, with ``state["params"]`` holding ``phi`` and
        ``theta``). ``None`` where a problem keeps it to itself.
    sample_chunk(state, key) -> state
        Optional: the evaluation's sampling alone, moving the chain as ``eval_chunk`` with the
        same key does, without computing the observables (for diagnostics that need the
        configurations only). ``None`` where a problem has no such stage.
    summarize(samples) -> {name: Estimate}
        Turns the stacked chunks (each value has shape (n_chunks, batch)) into estimates. The default
        (``None``) treats each batch column as a chain and uses autocorrelation-aware errors.
    """

    system: str
    units: str
    per: str
    init: Callable[[jax.Array], State]
    step: Callable[[State], tuple[State, Metrics]]
    eval_chunk: Callable[[State, jax.Array], tuple[State, Samples]]
    eval_batch: int
    summarize: Callable[[dict[str, np.ndarray]], dict[str, Estimate]] | None = None
    objective: str = "F"
    prepare: Callable[[State], State] | None = None
    state_sharding: Callable[[State], Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    observable_units: dict[str, str] = field(default_factory=dict)
    also_in: tuple[str, ...] = ()
    jits_own_stages: bool = False
    model: Any = None
    sample_chunk: Callable[[State, jax.Array], State] | None = None
