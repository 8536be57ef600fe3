"""Throughput of one optimization step of a spec: samples × steps per second, compile excluded.

One job, shared by ``scripts/bench_*.py``: build the problem, run ``prepare`` (burn-in), time the
first jitted step (compile) and then ``n_steps`` more. ``step_throughput_isolated`` does the same
in a child process under a timeout, for paths that can hang or exhaust memory (a vmapped
``jax.hessian`` Laplacian at large N or batch on jax 0.10.2), so one bad case cannot stop a sweep.

    python -m qvfe.benchmark '{"system": {...}, ...}' 5      # prints one JSON line
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Mapping

__all__ = ["step_throughput", "step_throughput_isolated", "train_with_command", "train_runs",
           "step_rate_from_log"]


def step_throughput(spec: Any, n_steps: int = 5) -> dict[str, Any]:
    """Seconds per step and samples·steps/s of ``spec`` on the default devices."""
    import jax

    from qvfe.run import _compiled, build_problem

    with jax.enable_x64(spec.run.x64):
        problem = build_problem(spec)
        state, step, prepare, _ = _compiled(problem, problem.init(jax.random.PRNGKey(0)))
        if prepare is not None:
            state = prepare(state)
        t0 = time.perf_counter()
        state, metrics = step(state)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n_steps):
            state, metrics = step(state)
        jax.block_until_ready(metrics)
        dt = (time.perf_counter() - t0) / n_steps
    return {"batch": problem.eval_batch, "s_per_step": dt,
            "samples_steps_per_s": problem.eval_batch / dt, "compile_s": compile_s,
            "devices": jax.device_count(), "backend": jax.default_backend()}


def step_throughput_isolated(raw_spec: Mapping[str, Any], n_steps: int = 5,
                             timeout: float = 600.0) -> dict[str, Any] | str:
    """``step_throughput`` in a child process; a string saying why when it fails or times out."""
    flag = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
    env = {**os.environ, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()}
    cmd = [sys.executable, "-m", "qvfe.benchmark", json.dumps(raw_spec), str(n_steps)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed (exit {p.returncode}): {tail[:200]}"
    return json.loads(lines[-1])


def train_with_command(raw_spec: Mapping[str, Any], out: str, *, progress: bool = False,
                       time_limit: float | None = None, eval_samples: int | None = None,
                       env: Mapping[str, str] | None = None) -> float:
    """Write the spec next to ``out`` and train it with ``qvfe run`` (whose stall watchdog restarts
    a hung XLA step from the last checkpoint); returns the wall time in seconds.

    With ``time_limit`` (seconds, compilation and burn-in included) a run still training then is
    sent SIGTERM, which makes it write a checkpoint after the step in flight and stop; that
    checkpoint is then evaluated with ``qvfe eval`` (``eval_samples``, default the spec's).
    ``env``: the child processes' environment (default this process's).
    """
    import signal
    from pathlib import Path

    from qvfe.spec import load_spec

    out_dir = Path(out)
    # beside the run directory; not with_suffix, which cuts "rs1.25_T6000" at its dot (so
    # rs1.2_T6000 and rs1.25_T6000 both wrote rs1.toml, and concurrent runs shared it)
    spec_file = out_dir.parent / (out_dir.name + ".toml")
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    spec_file.write_text(load_spec(dict(raw_spec)).to_toml())
    cmd = [sys.executable, "-m", "qvfe.cli", "run", str(spec_file), "--out", str(out_dir)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd + ([] if progress else ["--no-progress"]), env=env)
    try:
        rc = proc.wait(timeout=time_limit)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait()
        if rc != 130:  # 130: stopped by the signal with a checkpoint written
            raise subprocess.CalledProcessError(rc, cmd)
        ev = [sys.executable, "-m", "qvfe.cli", "eval", str(out_dir)]
        subprocess.run(ev + (["--samples", str(eval_samples)] if eval_samples else []),
                       check=True, env=env)
        return time.perf_counter() - t0
    if rc != 0:
        raise subprocess.CalledProcessError(rc, cmd)
    return time.perf_counter() - t0


def train_runs(jobs: list[tuple[Mapping[str, Any], str]], *, concurrent: bool = False,
               time_limit: float | None = None, eval_samples: int | None = None,
               memory_share: float = 0.8) -> list[float]:
    """``train_with_command`` for each ``(raw_spec, out)`` of ``jobs``; their wall times in order.

    ``concurrent`` trains them side by side (a thread each, each thread's run a child process).
    Children sharing one GPU then get an equal part of ``memory_share`` of its memory
    (XLA_PYTHON_CLIENT_MEM_FRACTION), unless that is set already.
    """
    from concurrent.futures import ThreadPoolExecutor

    env = None
    if concurrent and "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ:
        env = {**os.environ,
               "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{memory_share / len(jobs):.2f}"}

    def train(job: tuple[Mapping[str, Any], str]) -> float:
        return train_with_command(job[0], job[1], time_limit=time_limit,
                                  eval_samples=eval_samples, env=env)

    with ThreadPoolExecutor(len(jobs) if concurrent else 1) as pool:
        return list(pool.map(train, jobs))


def step_rate_from_log(run_dir: str) -> dict[str, float]:
    """Steps trained and the median seconds per step of a run, read from its ``log.jsonl``.

    The first logged interval (compilation) is left out; the median keeps checkpoint writes and
    a shared device's hiccups from skewing the rate.
    """
    from pathlib import Path

    import numpy as np

    from qvfe.run import _read_log

    rows = _read_log(Path(run_dir) / "log.jsonl", upto=float("inf"))  # every logged step
    steps = np.array([r["step"] for r in rows], dtype=float)
    walls = np.array([r["wall_s"] for r in rows], dtype=float)
    if len(rows) < 3:
        return {"steps": float(steps[-1]) if len(rows) else 0.0, "s_per_step": float("nan")}
    per = np.diff(walls[1:]) / np.diff(steps[1:])
    return {"steps": float(steps[-1]), "s_per_step": float(np.median(per))}


def _main(argv: list[str]) -> None:
    from qvfe.spec import load_spec
    from qvfe.xla_cpu import use_deadlock_free_linalg

    use_deadlock_free_linalg()

    print(json.dumps(step_throughput(load_spec(json.loads(argv[0])), int(argv[1]))))


if __name__ == "__main__":
    _main(sys.argv[1:])
