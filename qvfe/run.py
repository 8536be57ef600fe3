"""The driver: spec in, run directory and result out (the loop, jit, log, checkpoints, evaluation).

A run directory holds ``spec.toml`` (the resolved spec), ``log.jsonl`` (one JSON line per logged step),
``checkpoints/step_*.ckpt`` and, when done, ``result.json``. Calling :func:`run` on a directory that
holds a run of the same spec resumes it from its newest checkpoint; a resumed run ends with the same
numbers as one that was never interrupted.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import shutil
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

import qvfe
from qvfe import checkpoint
from qvfe.physics import units
from qvfe.problem import Estimate, Problem
from qvfe.progress import Progress
from qvfe.spec import KINDS, Spec, SpecError, load_spec
from qvfe.stats import WALKER_MEANS_MIN_CHAINS, summarize_chunks


# Gelman-Rubin's customary bound. It matters for the error bars only when they come from the
# autocorrelation within each walker's chain (fewer than stats.WALKER_MEANS_MIN_CHAINS walkers):
# with more, they are the spread of the walkers' means, which holds their disagreement, and
# split-R_hat is then the autocorrelation time restated (stationary chains of 64 chunks with
# tau = 10 give 1.3).
R_HAT_WARNING = 1.1
# |drift_z| above this: the evaluation's halves differ beyond chance (two-sided p ~ 0.001 for
# 32 walkers), a bias no error bar holds
DRIFT_WARNING = 3.5


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM arrived; a checkpoint of the last completed step was written."""


@dataclass
class Result:
    """Final estimates of a run, per ``per`` unit in ``units`` (S in k_B per ``per``)."""

    system: str
    units: str
    per: str
    observables: dict[str, Estimate]
    n_samples: int
    steps: int
    seed: int
    wall_time_s: float
    info: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    qvfe_version: str = qvfe.__version__
    observable_units: dict[str, str] = field(default_factory=dict)
    also_in: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = {"system": self.system, "units": self.units, "per": self.per,
             "observables": {k: v.as_dict() for k, v in self.observables.items()},
             "n_samples": self.n_samples, "steps": self.steps, "seed": self.seed,
             "wall_time_s": round(self.wall_time_s, 3), "qvfe_version": self.qvfe_version}
        if self.observable_units:
            d["observable_units"] = dict(self.observable_units)
        if self.also_in:
            d["also_in"] = {u: {k: {"mean": units.convert(v.mean, self.units, u),
                                    "error": units.convert(v.error, self.units, u)}
                                for k, v in self.observables.items() if self._is_energy(k)}
                            for u in self.also_in}
        if self.info:
            d["reference"] = self.info
        return d

    @classmethod
    def from_json(cls, path: str | Path) -> "Result":
        d = json.loads(Path(path).read_text())
        obs = {k: Estimate(v["mean"], v["error"], {e: x for e, x in v.items()
                                                  if e not in ("mean", "error")})
               for k, v in d["observables"].items()}
        return cls(d["system"], d["units"], d["per"], obs, d["n_samples"], d["steps"], d["seed"],
                   d["wall_time_s"], d.get("reference", {}), str(Path(path).parent),
                   d.get("qvfe_version", "?"), d.get("observable_units", {}),
                   tuple(d.get("also_in", {})))

    def _is_energy(self, key: str) -> bool:
        return key != "S" and key not in self.observable_units

    def unit_of(self, key: str) -> str:
        """The unit an observable is reported in (energies per ``per``, S in k_B per ``per``)."""
        if key in self.observable_units:
            return self.observable_units[key]
        return f"{'k_B' if key == 'S' else self.units}/{self.per}"

    def table(self) -> str:
        """A plain-text table of the observables with units."""
        lines = [f"{self.system}: {self.steps} steps, {self.n_samples} evaluation samples, "
                 f"seed {self.seed}, {self.wall_time_s:.1f} s"]
        for k, v in self.observables.items():
            extra = "".join(f"  {e}={x:.4g}" for e, x in v.extra.items())
            also = ""
            if self._is_energy(k):
                also = "".join(f"  ({units.convert(v.mean, self.units, u): .8f} ± "
                               f"{units.convert(v.error, self.units, u):.8f} {u})"
                               for u in self.also_in)
            elif self.unit_of(k) == "Ha/bohr^3":
                also = (f"  ({units.pressure_to_gpa(v.mean):.6g} ± "
                        f"{units.pressure_to_gpa(v.error):.2g} GPa)")
            lines.append(f"  {k:<5} = {v.mean: .8f} ± {v.error:.8f} {self.unit_of(k)}"
                         f"{also}{extra}")
        unmixed = [k for k, v in self.observables.items()
                   if v.extra.get("R_hat", 1.0) > R_HAT_WARNING
                   and v.extra.get("chains", 0) < WALKER_MEANS_MIN_CHAINS]
        if unmixed:
            lines.append(f"  note: R_hat > {R_HAT_WARNING} for {', '.join(unmixed)}: with fewer "
                         f"than {WALKER_MEANS_MIN_CHAINS} walkers the error bars come from the "
                         "autocorrelation of each walker's chain, which had not mixed, so they "
                         "may be too small; "
                         "evaluate more samples or raise sampler.mcmc_sweeps or sampler.batch")
        drifting = [f"{k} ({v.extra['drift']:+.1f})" for k, v in self.observables.items()
                    if abs(v.extra.get("drift", 0.0)) > DRIFT_WARNING]
        if drifting:
            lines.append(f"  note: the evaluation's second half differs from its first by more "
                         f"than {DRIFT_WARNING} standard errors for {', '.join(drifting)}: the "
                         "walkers were still drifting, a bias the error bars do not hold; "
                         "evaluate more samples (qvfe eval RUNDIR --samples N), which dilutes "
                         "the start, or train longer")
        kinds = {"_exact": "exact", "_ref": "reference", "_HF": "Hartree-Fock of the ground "
                 "determinant, the T -> 0 limit without flow", "_FCI": "full CI of the two "
                 "electrons in the orbital table, the basis set's bound without flow"}
        for k, v in self.info.items():
            suffix = next((x for x in kinds if k.endswith(x)), None)
            if isinstance(v, float) and suffix:
                err = self.info.get(f"{k}_err")
                lines.append(f"  {k:<5} = {v: .8f}" + (f" ± {err:.8f}" if err else "")
                             + f" {self.unit_of(k[:-len(suffix)])}  ({kinds[suffix]})")
        return "\n".join(lines)


def build_problem(spec: Spec) -> Problem:
    """The problem object for ``spec.system.kind`` (imports only that kind's code)."""
    module, func = KINDS[spec.kind].builder.split(":")
    return getattr(importlib.import_module(module), func)(spec)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so a checkpoint can be written."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        # signal handlers can only be installed from the main thread (a notebook's worker thread
        # or a user's thread pool runs without them)
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


# Keys a run directory's spec may change on resume: how long to train and at what rate (an
# extension at a lower rate anneals a finished run; the optimizer's state does not depend on it,
# unlike on lr_decay_steps), how many samples to evaluate, and the bookkeeping of checkpoints and
# logs; any other change would mix two models.
RESUMABLE_CHANGES = ("optim.steps", "optim.lr", "eval.samples", "run.checkpoint_every",
                     "run.keep_checkpoints", "run.log_every", "run.print_every")


def _spec_changes(old: Spec, new: Spec) -> dict[str, tuple[Any, Any]]:
    """{"section.key": (old, new)} for every key that differs."""
    a, b = old.to_dict(), new.to_dict()
    return {f"{s}.{k}": (a[s].get(k), b[s].get(k)) for s in a
            for k in sorted(set(a[s]) | set(b[s])) if a[s].get(k) != b[s].get(k)}


def _prepare_dir(spec: Spec, out: Path, overwrite: bool) -> None:
    spec_file = out / "spec.toml"
    if out.exists() and not out.is_dir():
        raise SpecError(f"--out {out}: is a file, not a directory")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    if spec_file.exists():
        changed = {k: v for k, v in _spec_changes(load_spec(spec_file), spec).items()
                   if k not in RESUMABLE_CHANGES}
        if changed:
            diff = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in
                             ((k, *v) for k, v in changed.items()))
            raise SpecError(f"{out} holds a run of another spec ({diff}): a run directory "
                            f"resumes with only {', '.join(RESUMABLE_CHANGES)} changed; start "
                            "afresh with --overwrite (library: overwrite=True) or another --out")
        saved = checkpoint.list_checkpoints(out / "checkpoints")
        if saved and spec.optim.steps < saved[0][0]:
            raise SpecError(f"optim.steps = {spec.optim.steps} is invalid for {out}: its newest "
                            f"checkpoint is of step {saved[0][0]}, so it must be ≥ "
                            f"{saved[0][0]} (a run is extended, never cut back)")
    elif out.exists() and any(out.iterdir()):
        raise SpecError(f"--out {out}: the directory exists and is not a qvfe run directory")
    out.mkdir(parents=True, exist_ok=True)
    tmp = spec_file.with_suffix(".tmp")
    tmp.write_text(spec.to_toml())
    os.replace(tmp, spec_file)


def _read_log(path: Path, upto: int) -> list[dict]:
    """Log lines with step ≤ upto (lines written after the last checkpoint are dropped)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut short by a kill
        if row.get("step", 0) <= upto:
            rows.append(row)
    return rows


def _write_lines(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(metrics).items()}


def run(spec: Spec | str | Path, out: str | Path | None = None, *, overwrite: bool = False,
        progress: bool | None = None, eval_samples: int | None = None,
        heartbeat: Callable[[], None] | None = None) -> Result:
    """Optimize, checkpoint and evaluate ``spec``; write the run directory ``out``; return the result.

    ``spec`` may be a :class:`Spec`, a spec file, or an existing run directory (which is resumed).
    With ``out=None`` nothing is written and no checkpoint is kept (library use in a notebook).
    ``heartbeat()`` is called after every step and every evaluation chunk (e.g. to feed a
    :class:`qvfe.watchdog.StallWatchdog`).
    """
    if not isinstance(spec, Spec):
        p = Path(spec)
        if p.is_dir() and out is None:
            out = p
        spec = load_spec(p)
    out_dir = Path(out) if out is not None else None
    with jax.enable_x64(spec.run.x64):
        # the builder's own checks (levels against particles, Θ against the k-list, ...) come
        # before the run directory is written, so a corrected spec can take the same --out
        problem = build_problem(spec)
        if out_dir is not None:
            _prepare_dir(spec, out_dir, overwrite)
        return _run(problem, spec, out_dir, progress, eval_samples,
                    heartbeat or _no_heartbeat)


def _no_heartbeat() -> None:
    pass


def _run(problem: Problem, spec: Spec, out: Path | None, progress: bool | None,
         eval_samples: int | None, heartbeat: Callable[[], None]) -> Result:
    root = jax.random.PRNGKey(spec.run.seed)
    init_key, eval_key = jax.random.split(root)
    state = problem.init(init_key)
    step0, wall0, rows, restored = 0, 0.0, [], None
    ckpt_dir = out / "checkpoints" if out is not None else None
    if ckpt_dir is not None:
        try:
            restored = checkpoint.restore_latest(ckpt_dir, state)
        except checkpoint.CheckpointError as e:
            raise checkpoint.CheckpointError(
                f"{e}; start the run afresh with --overwrite (library: overwrite=True)") from None
        if restored is not None:
            step0, state = restored
        rows = _read_log(out / "log.jsonl", step0)
        wall0 = rows[-1]["wall_s"] if rows else 0.0
        _write_lines(out / "log.jsonl", rows)
    steps = spec.optim.steps
    n = eval_samples if eval_samples is not None else spec.eval.samples
    if out is not None and step0 == steps:
        finished = _finished_result(out, steps, n, problem.eval_batch)
        if finished is not None:
            return finished
    state, step_fn, prepare_fn, _ = _compiled(problem, state)
    if restored is None and prepare_fn is not None:
        # prepare may be minutes of work (hydrogen's proton pre-fit): a signal meanwhile lets it
        # finish and keeps it in the step-0 checkpoint; a second signal stops at once
        with _StopFlag() as stop:
            state = prepare_fn(state)
            if ckpt_dir is not None:
                checkpoint.save(ckpt_dir, 0, state, keep=spec.run.keep_checkpoints)
        if stop.signum is not None:
            raise RunInterrupted(
                f"stopped by signal {stop.signum} while preparing"
                + (f"; prepared state checkpointed, resume with `qvfe run {out}`" if out else ""))
    bar = Progress(total=steps, start=step0, objective=problem.objective,
                   unit=f"{problem.units}/{problem.per}", enabled=progress,
                   print_every=spec.run.print_every)
    log_fh = open(out / "log.jsonl", "a") if out is not None else None
    t0 = time.perf_counter()
    step = step0
    try:
        with _StopFlag() as stop, bar:
            while step < steps:
                state, metrics = step_fn(state)
                step += 1
                m = _scalars(metrics)
                wall = wall0 + time.perf_counter() - t0
                if log_fh is not None and (step % spec.run.log_every == 0 or step == steps):
                    log_fh.write(json.dumps({"step": step, "wall_s": round(wall, 4), **m}) + "\n")
                    log_fh.flush()
                bar.update(step, m)
                heartbeat()
                if not all(math.isfinite(v) for v in m.values()):
                    raise FloatingPointError(
                        f"step {step}: non-finite metrics {m}; lower optim.lr or check the spec")
                due = step % spec.run.checkpoint_every == 0 or step == steps
                if ckpt_dir is not None and (due or stop.signum is not None):
                    checkpoint.save(ckpt_dir, step, state, keep=spec.run.keep_checkpoints)
                if stop.signum is not None:
                    raise RunInterrupted(
                        f"stopped by signal {stop.signum} after step {step}; checkpoint written"
                        + (f", resume with `qvfe run {out}`" if out else ""))
            if ckpt_dir is not None and not checkpoint.list_checkpoints(ckpt_dir):
                checkpoint.save(ckpt_dir, step, state, keep=spec.run.keep_checkpoints)
    finally:
        if log_fh is not None:
            log_fh.close()
    train_wall = wall0 + time.perf_counter() - t0
    t_eval = time.perf_counter()
    observables, n_done, progress_dir = _evaluate_checkpointed(
        problem, state, eval_key, n, heartbeat, ckpt_dir, step, spec.run.checkpoint_every,
        resume=f"qvfe run {out}" if out is not None else None)
    result = _result(problem, observables, n_done, step, spec.run.seed,
                     train_wall + time.perf_counter() - t_eval, out)
    if out is not None:
        _finish(out, result, progress_dir)
    return result


def _finished_result(out: Path, steps: int, n_samples: int, eval_batch: int) -> Result | None:
    """The stored result of a run directory that is already done (trained ``steps`` steps and
    evaluated ``n_samples``, rounded up to whole chunks, with no evaluation in progress), so
    that running it again does no work; None otherwise."""
    path = out / "result.json"
    if not path.is_file() or any((out / "checkpoints").glob("evaluation_after_step_*")):
        return None
    try:
        stored = Result.from_json(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: evaluate again
    chunks = max(1, math.ceil(n_samples / eval_batch))
    if stored.steps != steps or stored.n_samples != chunks * eval_batch:
        return None
    return stored


def _finish(out: Path, result: Result, progress_dir: Path | None) -> None:
    """Write result.json, and only then drop the evaluation's progress (a kill in between
    keeps it, and the next run finishes the evaluation from there)."""
    write_result(out, result)
    if progress_dir is not None:
        shutil.rmtree(progress_dir, ignore_errors=True)


def _compiled(problem: Problem, state: Any):
    """Place ``state`` and jit step, prepare and eval_chunk, pinned to the problem's shardings
    (step and eval_chunk as they are where the problem jits their stages itself)."""
    own = problem.jits_own_stages
    if problem.state_sharding is None:
        return (state, problem.step if own else jax.jit(problem.step),
                jax.jit(problem.prepare) if problem.prepare is not None else None,
                problem.eval_chunk if own else jax.jit(problem.eval_chunk))
    sh = problem.state_sharding(state)
    state = jax.device_put(state, sh)
    prepare = (jax.jit(problem.prepare, in_shardings=(sh,), out_shardings=sh)
               if problem.prepare is not None else None)
    if own:
        return state, problem.step, prepare, problem.eval_chunk
    step = jax.jit(problem.step, in_shardings=(sh,), out_shardings=(sh, None))
    chunk = jax.jit(problem.eval_chunk, in_shardings=(sh, None), out_shardings=(sh, None))
    return state, step, prepare, chunk


def evaluate_state(problem: Problem, state: Any, key: jax.Array, n_samples: int,
                   heartbeat: Callable[[], None] = _no_heartbeat,
                   progress_dir: Path | None = None, save_every: int = 100,
                   keep_progress: bool = False) -> tuple[dict[str, Estimate], int]:
    """Frozen-parameter estimates from ``ceil(n_samples / eval_batch)`` chunks of samples.

    Chunk i draws with ``fold_in(key, i)`` from the chain left by chunk i - 1, so the chunks of a
    smaller ``n_samples`` are the first ones of a larger. With ``progress_dir`` the chain and the
    samples so far are checkpointed there every ``save_every`` chunks and when SIGINT or SIGTERM
    arrives (which then stops the evaluation with :class:`RunInterrupted`); a later call with the
    same directory and state continues from its newest checkpoint and ends with the numbers of
    an uninterrupted evaluation, and a finished evaluation removes the directory (unless
    ``keep_progress``: the caller removes it once the result is safely written).
    """
    n_chunks = max(1, math.ceil(n_samples / problem.eval_batch))
    done, stacked = 0, {}
    if progress_dir is not None:
        restored = _restore_evaluation(problem, state, key, progress_dir)
        if restored is not None:
            done, state, samples = restored
            stacked = {k: list(v) for k, v in samples.items()}
    state, _, _, chunk = _compiled(problem, state)
    with _StopFlag() as stop:
        for i in range(done, n_chunks):
            state, samples = chunk(state, jax.random.fold_in(key, i))
            for k, v in jax.device_get(samples).items():
                stacked.setdefault(k, []).append(np.asarray(v))
            heartbeat()
            last = i + 1 == n_chunks
            if progress_dir is not None and not last and (
                    (i + 1) % save_every == 0 or stop.signum is not None):
                checkpoint.save(progress_dir, i + 1,
                                {"state": state,
                                 "samples": {k: np.stack(v) for k, v in stacked.items()}},
                                keep=2)
            if stop.signum is not None and not last:
                raise RunInterrupted(
                    f"stopped by signal {stop.signum} during the evaluation, after {i + 1} of "
                    f"{n_chunks} chunks" + ("; its progress is checkpointed"
                                            if progress_dir is not None else ""))
    if progress_dir is not None and not keep_progress:
        shutil.rmtree(progress_dir, ignore_errors=True)
    arrays = {k: np.stack(v[:n_chunks]) for k, v in stacked.items()}
    summarize = problem.summarize or summarize_chunks
    return summarize(arrays), n_chunks * problem.eval_batch


def _restore_evaluation(problem: Problem, state: Any, key: jax.Array, progress_dir: Path
                        ) -> tuple[int, Any, dict[str, np.ndarray]] | None:
    """(chunks done, chain state, samples so far) of an evaluation in progress, or None."""
    if not checkpoint.list_checkpoints(progress_dir):
        return None
    _, per_chunk = jax.eval_shape(problem.eval_chunk, state, key)  # traces, does not compile

    def template(chunks: int) -> dict:
        return {"state": state,
                "samples": {k: np.zeros((chunks, *s.shape), s.dtype)
                            for k, s in per_chunk.items()}}

    try:
        restored = checkpoint.restore_latest(progress_dir, template)
    except checkpoint.CheckpointError as e:
        warnings.warn(f"the evaluation starts afresh: {e}", stacklevel=3)
        shutil.rmtree(progress_dir, ignore_errors=True)
        return None
    done, saved = restored
    return done, saved["state"], {k: np.asarray(v) for k, v in saved["samples"].items()}


def _evaluate_checkpointed(problem: Problem, state: Any, key: jax.Array, n_samples: int,
                           heartbeat: Callable[[], None], ckpt_dir: Path | None, step: int,
                           save_every: int, resume: str | None
                           ) -> tuple[dict[str, Estimate], int, Path | None]:
    """:func:`evaluate_state` of a run directory's checkpoint after training step ``step``: its
    progress kept in ``ckpt_dir`` (none without one), an interruption naming ``resume``; also
    returns the progress directory, for the caller to remove once the result is written."""
    progress_dir = None
    if ckpt_dir is not None:
        progress_dir = ckpt_dir / f"evaluation_after_step_{step:09d}"
        for old in ckpt_dir.glob("evaluation_after_step_*"):  # of a run since extended: stale
            if old != progress_dir:
                shutil.rmtree(old, ignore_errors=True)
    try:
        observables, n_done = evaluate_state(problem, state, key, n_samples, heartbeat,
                                             progress_dir=progress_dir, save_every=save_every,
                                             keep_progress=True)
        return observables, n_done, progress_dir
    except RunInterrupted as e:
        raise RunInterrupted(f"{e}" + (f", resume with `{resume}`" if resume else "")) from None


def _result(problem: Problem, observables: dict[str, Estimate], n_samples: int, step: int,
            seed: int, wall: float, out: Path | None) -> Result:
    return Result(problem.system, problem.units, problem.per, observables, n_samples, step, seed,
                  wall, info=dict(problem.info), run_dir=str(out) if out else None,
                  observable_units=dict(problem.observable_units), also_in=problem.also_in)


def write_result(out: Path, result: Result) -> None:
    tmp = out / "result.json.tmp"
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    os.replace(tmp, out / "result.json")


def run_spec(run_dir: str | Path) -> Spec:
    """The spec a run directory was made with; a SpecError where ``run_dir`` is no run's."""
    if not (Path(run_dir) / "spec.toml").is_file():
        raise SpecError(f"{run_dir} is not a qvfe run directory (no spec.toml)")
    return load_spec(Path(run_dir) / "spec.toml")


def newest_state(run_dir: str | Path, problem: Problem) -> tuple[int, Any]:
    """A run directory's newest checkpoint as (step, state), read into the shapes of
    ``problem``'s state (the run's problem, or one built from its spec with overrides that keep
    those shapes); a SpecError where the run has no checkpoint yet. Build ``problem`` in the
    x64 setting of the run's spec, as the state is read in it."""
    template = problem.init(jax.random.PRNGKey(0))  # only its shapes and dtypes are used
    restored = checkpoint.restore_latest(Path(run_dir) / "checkpoints", template)
    if restored is None:
        raise SpecError(f"{run_dir} has no checkpoint yet; run it first")
    return restored


def evaluate(run_dir: str | Path, samples: int | None = None,
             heartbeat: Callable[[], None] | None = None) -> Result:
    """Re-evaluate a run's newest checkpoint with frozen parameters; rewrites result.json."""
    out = Path(run_dir)
    spec = run_spec(out)
    with jax.enable_x64(spec.run.x64):
        t0 = time.perf_counter()
        problem = build_problem(spec)
        eval_key = jax.random.split(jax.random.PRNGKey(spec.run.seed))[1]
        step, state = newest_state(out, problem)
        n = samples if samples is not None else spec.eval.samples
        observables, n_done, progress_dir = _evaluate_checkpointed(
            problem, state, eval_key, n, heartbeat or _no_heartbeat, out / "checkpoints", step,
            spec.run.checkpoint_every,
            resume=f"qvfe eval {out}" + (f" --samples {samples}" if samples is not None else ""))
        rows = _read_log(out / "log.jsonl", step)
        wall = (rows[-1]["wall_s"] if rows else 0.0) + time.perf_counter() - t0
        result = _result(problem, observables, n_done, step, spec.run.seed, wall, out)
        _finish(out, result, progress_dir)
        return result


__all__ = ["Result", "RunInterrupted", "run", "evaluate", "evaluate_state", "build_problem",
           "run_spec", "newest_state"]
