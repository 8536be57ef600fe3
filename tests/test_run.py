"""The driver: run directories, exact resume after SIGKILL, SIGTERM checkpoints, evaluation."""

import dataclasses
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import qvfe
from qvfe import checkpoint

run_module = importlib.import_module("qvfe.run")  # the module, not the function qvfe.run

SPEC = """
[system]
kind = "coulomb_trap"
n = 2
dim = 2
beta = 1.0
[model]
flow = "realnvp"
layers = 2
hidden = 8
[optim]
steps = {steps}
lr = 3e-3
[sampler]
batch = 64
[eval]
samples = 2048
[run]
checkpoint_every = {every}
"""


def _spec(tmp_path, steps=60, every=10):
    p = tmp_path / "spec.toml"
    p.write_text(SPEC.format(steps=steps, every=every))
    return p


def _cli(*args):
    return subprocess.Popen([sys.executable, "-m", "qvfe.cli", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _observables(run_dir):
    return json.loads((run_dir / "result.json").read_text())["observables"]


def test_run_directory_contents(tmp_path):
    result = qvfe.run(qvfe.load_spec(_spec(tmp_path, steps=20)), out=tmp_path / "r",
                      progress=False)
    d = tmp_path / "r"
    assert (d / "spec.toml").is_file() and (d / "result.json").is_file()
    rows = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert {"F", "F_err", "E", "S", "wall_s"} <= set(rows[0])
    res = json.loads((d / "result.json").read_text())
    assert res["system"] == "coulomb_trap" and res["per"] == "particle"
    assert res["steps"] == 20 and res["seed"] == 0 and res["n_samples"] == 2048
    assert set(res["observables"]) == {"F", "E", "S", "F_is"}
    assert res["observables"]["F"]["error"] > 0
    assert "F_exact" in res["reference"]
    assert result.observables["F"].mean == pytest.approx(res["observables"]["F"]["mean"])
    # the variational bound holds within statistics
    f, f_is = res["observables"]["F"], res["observables"]["F_is"]
    assert f["mean"] >= f_is["mean"] - 3 * (f["error"] + f_is["error"])


def test_same_spec_resumes_and_different_spec_is_refused(tmp_path, monkeypatch):
    spec = qvfe.load_spec(_spec(tmp_path, steps=10))
    first = qvfe.run(spec, out=tmp_path / "r", progress=False)
    real_build = run_module.build_problem

    def no_work(spec_):  # a finished run directory: neither a step nor an evaluation chunk
        def refuse(*args):
            raise AssertionError("a finished run computed again")
        return dataclasses.replace(real_build(spec_), step=refuse, eval_chunk=refuse)

    monkeypatch.setattr(run_module, "build_problem", no_work)
    stored = (tmp_path / "r" / "result.json").read_text()
    again = qvfe.run(spec, out=tmp_path / "r", progress=False)
    assert again.steps == 10 and (tmp_path / "r" / "result.json").read_text() == stored
    assert (again.observables["F"].mean, again.observables["F"].error) == \
        (first.observables["F"].mean, first.observables["F"].error)
    # bookkeeping may change on resume; the model may not, and the message names what differs
    qvfe.run(spec.replace(**{"run.print_every": 1}), out=tmp_path / "r", progress=False)
    monkeypatch.setattr(run_module, "build_problem", real_build)
    with pytest.raises(qvfe.SpecError, match=r"another spec \(system.beta: 1.0 -> 2.0\)"):
        qvfe.run(spec.replace(**{"system.beta": 2.0}), out=tmp_path / "r")
    with pytest.raises(qvfe.SpecError, match="optim.steps = 5 is invalid for .*step 10"):
        qvfe.run(spec.replace(**{"optim.steps": 5}), out=tmp_path / "r")
    assert qvfe.load_spec(tmp_path / "r").optim.steps == 10  # the refused spec was not written
    # an extension may lower the rate (annealing); the directory's spec records it
    longer = qvfe.run(spec.replace(**{"optim.steps": 15, "optim.lr": spec.optim.lr / 5}),
                      out=tmp_path / "r", progress=False)
    assert longer.steps == 15
    assert qvfe.load_spec(tmp_path / "r").optim.lr == spec.optim.lr / 5
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "r" / "checkpoints")][0] == 15


def test_the_evaluation_progress_outlives_a_kill_before_the_result_is_written(tmp_path,
                                                                              monkeypatch):
    """The evaluation's progress is removed only once result.json is written: a kill between
    the two (here an error in the writer) leaves it, and the next run finishes from it."""
    spec = qvfe.load_spec(_spec(tmp_path, steps=5, every=10))  # 32 chunks, progress every 10
    ref = qvfe.run(spec, out=tmp_path / "ref", progress=False)

    def killed(*args):
        raise RuntimeError("killed before result.json")

    monkeypatch.setattr(run_module, "write_result", killed)
    with pytest.raises(RuntimeError, match="killed before"):
        qvfe.run(spec, out=tmp_path / "r", progress=False)
    progress = tmp_path / "r" / "checkpoints" / "evaluation_after_step_000000005"
    assert [c for c, _ in checkpoint.list_checkpoints(progress)] == [30, 20]
    monkeypatch.undo()
    resumed = qvfe.run(spec, out=tmp_path / "r", progress=False)
    assert not progress.exists()
    for k, est in ref.observables.items():
        assert (resumed.observables[k].mean, resumed.observables[k].error) == \
            (est.mean, est.error), k


def _kill_after_checkpoint(spec, out, at_least):
    """Start a run and SIGKILL it once a checkpoint at or after `at_least` steps exists.

    Returns the newest checkpoint's step, or None when the run finished before the kill landed
    (steps take about a millisecond, so a descheduled poller can miss the window)."""
    victim = _cli("run", str(spec), "--out", str(out))
    deadline = time.time() + 600
    while time.time() < deadline:
        found = checkpoint.list_checkpoints(out / "checkpoints")
        if found and found[0][0] >= at_least:
            break
        if victim.poll() is not None:
            break
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    finished = victim.wait() == 0
    return None if finished else checkpoint.list_checkpoints(out / "checkpoints")[0][0]


def test_sigkill_then_resume_gives_the_same_result(tmp_path):
    steps = 400
    spec = _spec(tmp_path, steps=steps, every=10)
    ref = _cli("run", str(spec), "--out", str(tmp_path / "ref"))
    assert ref.wait(timeout=600) == 0, ref.stderr.read()

    for attempt in range(3):
        killed = tmp_path / f"kill{attempt}"
        killed_at = _kill_after_checkpoint(spec, killed, at_least=30)
        if killed_at is not None:
            break
    assert killed_at is not None, "the run finished three times before it could be killed"
    assert 30 <= killed_at < steps
    resumed = _cli("run", str(killed))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a, b = _observables(tmp_path / "ref"), _observables(killed)
    for k in a:
        assert a[k]["mean"] == b[k]["mean"] and a[k]["error"] == b[k]["error"], k
    log_a = [json.loads(x) for x in (tmp_path / "ref" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (killed / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log_b] == list(range(1, steps + 1))
    assert [r["F"] for r in log_a] == [r["F"] for r in log_b]


def test_sigterm_writes_a_checkpoint_and_exits_130(tmp_path):
    spec = _spec(tmp_path, steps=100000, every=100000)
    p = _cli("run", str(spec), "--out", str(tmp_path / "t"))
    log = tmp_path / "t" / "log.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 5):
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) == 130
    assert "checkpoint written" in p.stderr.read()
    step, _ = checkpoint.list_checkpoints(tmp_path / "t" / "checkpoints")[0]
    assert step >= 5


def test_eval_rewrites_result_with_more_samples(tmp_path):
    qvfe.run(qvfe.load_spec(_spec(tmp_path, steps=5)), out=tmp_path / "r", progress=False)
    res = qvfe.evaluate(tmp_path / "r", samples=4096)
    assert res.n_samples == 4096
    assert json.loads((tmp_path / "r" / "result.json").read_text())["n_samples"] == 4096
    again = qvfe.evaluate(tmp_path / "r", samples=4096)
    assert np.isclose(again.observables["F"].mean, res.observables["F"].mean)


def test_library_run_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = qvfe.run(qvfe.load_spec(_spec(tmp_path, steps=3)), progress=False)
    assert res.run_dir is None and sorted(os.listdir(tmp_path)) == ["spec.toml"]


def test_import_changes_no_global_jax_setting():
    """Neither x64 nor a global mesh, also once the error bars are computed: netket, which
    computed them until 2026-12-06, sets both on import (its sharding mode installs a mesh
    named 'S', which later clashed with the engine's 'batch' mesh in a second run of the same
    process); qvfe does not import it."""
    code = ("import sys, jax, numpy as np; before = jax.config.jax_enable_x64; import qvfe; "
            "qvfe.stats.mean_and_error(np.random.default_rng(0).normal(size=(4, 64))); "
            "assert jax.config.jax_enable_x64 == before, 'x64 flipped'; "
            "mesh = jax.sharding.get_abstract_mesh(); assert mesh.empty, mesh; "
            "assert 'netket' not in sys.modules, 'netket imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_prepared_state_is_checkpointed_and_not_prepared_again(tmp_path, monkeypatch):
    """``prepare`` (burn-in here; hydrogen's proton pre-fit too) is saved as a step-0 checkpoint, so
    a run killed before its first checkpoint keeps it: resumed from step 0 it gives the very
    numbers of the uninterrupted run (preparing again would draw new walkers); so does one stopped
    by SIGTERM while preparing."""
    import shutil
    import threading

    raw = {"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 0, "dim": 2, "T": 0.5},
           "model": {"occupation_hidden": 4, "backflow_layers": 0},
           "optim": {"steps": 3, "lr": 0.005, "max_norm": 0.1},
           "sampler": {"batch": 16, "burn_in": 5, "mcmc_sweeps": 2},
           "eval": {"samples": 64}, "run": {"checkpoint_every": 1, "keep_checkpoints": 10}}
    spec = qvfe.load_spec(raw)
    full = qvfe.run(spec, out=tmp_path / "full", progress=False)
    ckpts = tmp_path / "full" / "checkpoints"
    assert [s for s, _ in checkpoint.list_checkpoints(ckpts)] == [3, 2, 1, 0]

    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "full", killed)
    for step, path in checkpoint.list_checkpoints(killed / "checkpoints"):
        if step > 0:
            path.unlink()
    (killed / "result.json").unlink()
    (killed / "log.jsonl").write_text("")
    resumed = qvfe.run(spec, out=killed, progress=False)
    for key in ("F", "E", "S"):
        assert resumed.observables[key].mean == full.observables[key].mean

    # SIGTERM while preparing lets prepare finish, checkpoints it as step 0 and stops; resumed, the
    # run equals the uninterrupted one. The signal is sent from inside prepare's trace, so it
    # surely arrives while preparing.
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers need the main thread (pytest and xdist workers run tests there)
    real_build = run_module.build_problem

    def signalling_build(spec):
        problem = real_build(spec)

        def prepare(state):
            os.kill(os.getpid(), signal.SIGTERM)  # at trace time, inside the jitted call
            return problem.prepare(state)

        return dataclasses.replace(problem, prepare=prepare)

    monkeypatch.setattr(run_module, "build_problem", signalling_build)
    with pytest.raises(run_module.RunInterrupted, match="while preparing"):
        qvfe.run(spec, out=tmp_path / "stopped", progress=False)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path / "stopped" / "checkpoints")] == [0]
    monkeypatch.setattr(run_module, "build_problem", real_build)
    resumed = qvfe.run(spec, out=tmp_path / "stopped", progress=False)
    for key in ("F", "E", "S"):
        assert resumed.observables[key].mean == full.observables[key].mean


def test_table_warns_when_the_error_bars_may_miss_the_walkers_mixing():
    """R_hat matters when the error bars come from the autocorrelation of few walkers' chains
    (with 8 or more they are the spread of the walkers' means); a drift between the
    evaluation's halves matters always."""
    from qvfe.problem import Estimate

    def result(r_hat, chains, drift=0.3):
        obs = {"F": Estimate(-0.5, 0.001, {"tau": 1.0, "R_hat": r_hat, "chains": chains,
                                           "drift": drift}),
               "S": Estimate(0.2, 0.01, {"tau": 2.0, "R_hat": 1.01, "chains": chains})}
        return qvfe.Result("electron_gas", "hartree", "electron", obs, 4096, 10, 0, 1.0)

    assert "R_hat > 1.1 for F:" in result(1.25, 4).table()
    assert "note" not in result(1.25, 8).table()
    assert "note" not in result(1.05, 4).table()
    assert "more than 3.5 standard errors for F (-5.0)" in result(1.05, 32, drift=-5.0).table()


def test_interrupted_evaluation_resumes_to_the_same_numbers(tmp_path):
    """SIGTERM during the final evaluation checkpoints its chain and samples every
    `run.checkpoint_every` chunks and at the signal; `run` and `evaluate` on the directory go on
    from there (from the previous checkpoint if the newest is damaged) to the numbers of an
    uninterrupted evaluation, whose first chunks are those of any larger one, and remove the
    progress when done."""
    spec = qvfe.load_spec(_spec(tmp_path, steps=5, every=10))  # 2048 samples: 32 chunks of 64
    ref = qvfe.run(spec, out=tmp_path / "ref", progress=False)

    def terminate_at(call):
        calls = []

        def heartbeat():  # called after every step and every evaluation chunk
            calls.append(None)
            if len(calls) == call:
                os.kill(os.getpid(), signal.SIGTERM)
        return heartbeat

    run_dir = tmp_path / "r"
    progress = run_dir / "checkpoints" / "evaluation_after_step_000000005"
    with pytest.raises(qvfe.RunInterrupted, match=r"after 13 of 32 chunks.*qvfe run"):
        qvfe.run(spec, out=run_dir, progress=False, heartbeat=terminate_at(5 + 13))
    assert [c for c, _ in checkpoint.list_checkpoints(progress)] == [13, 10]
    assert not (run_dir / "result.json").exists()
    resumed = qvfe.run(spec, out=run_dir, progress=False)
    assert not progress.exists()
    for k, est in ref.observables.items():
        assert (resumed.observables[k].mean, resumed.observables[k].error) == \
            (est.mean, est.error), k

    # 4096 samples stopped after 40 chunks, then asked for 2048: the first 32 chunks of those 40
    with pytest.raises(qvfe.RunInterrupted,
                       match=r"after 40 of 64 chunks.*`qvfe eval \S+ --samples 4096`"):
        qvfe.evaluate(run_dir, samples=4096, heartbeat=terminate_at(40))
    found = checkpoint.list_checkpoints(progress)
    assert [c for c, _ in found] == [40, 30]
    found[0][1].write_bytes(found[0][1].read_bytes()[:-10])  # damaged: the 30 are used
    with pytest.warns(UserWarning, match="unusable"):
        again = qvfe.evaluate(run_dir, samples=2048)
    assert not progress.exists() and again.n_samples == 2048
    for k, est in ref.observables.items():
        assert (again.observables[k].mean, again.observables[k].error) == (est.mean, est.error), k


def test_a_spec_the_builder_refuses_writes_no_run_directory(tmp_path):
    """The problem builder's checks run before the run directory is written, so the same --out
    takes the corrected spec (it once kept the refused spec.toml and asked for --overwrite)."""
    systems = Path(__file__).resolve().parents[1] / "systems"
    hot = qvfe.load_spec(systems / "quantum_dot_n2_d2_T0.5.toml", overrides={"system.T": 100.0})
    with pytest.raises(qvfe.SpecError, match="system.T = 100.0 needs"):
        qvfe.run(hot, out=tmp_path / "dot", progress=False)
    assert not (tmp_path / "dot").exists()
    (tmp_path / "a_file").write_text("")
    with pytest.raises(qvfe.SpecError, match="is a file, not a directory"):
        qvfe.run(_spec(tmp_path, steps=1), out=tmp_path / "a_file", progress=False)


def test_a_run_whose_checkpoints_are_all_damaged_says_how_to_start_afresh(tmp_path):
    spec = qvfe.load_spec(_spec(tmp_path, steps=5, every=10))
    qvfe.run(spec, out=tmp_path / "r", progress=False)
    for _, path in checkpoint.list_checkpoints(tmp_path / "r" / "checkpoints"):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unusable"), pytest.raises(
            checkpoint.CheckpointError, match="no usable checkpoint.*afresh with --overwrite"):
        qvfe.run(spec.replace(**{"optim.steps": 6}), out=tmp_path / "r", progress=False)


def test_a_run_directorys_spec_and_newest_state_are_read_back_and_what_is_missing_named(
        tmp_path):
    with pytest.raises(qvfe.SpecError, match="not a qvfe run directory"):
        run_module.run_spec(tmp_path)
    spec = qvfe.load_spec(_spec(tmp_path, steps=5, every=10))
    qvfe.run(spec, out=tmp_path / "r", progress=False)
    again = run_module.run_spec(tmp_path / "r")
    assert again.to_toml() == spec.to_toml()
    problem = qvfe.build_problem(again)
    step, state = run_module.newest_state(tmp_path / "r", problem)
    assert step == 5
    fresh = problem.init(jax.random.PRNGKey(0))
    moved = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), state["params"],
                                   fresh["params"])
    assert any(jax.tree_util.tree_leaves(moved)), "the trained parameters, not a fresh init"
    for _, path in checkpoint.list_checkpoints(tmp_path / "r" / "checkpoints"):
        path.unlink()
    with pytest.raises(qvfe.SpecError, match="has no checkpoint yet"):
        run_module.newest_state(tmp_path / "r", problem)
