"""Stall detection and the command's restart on the run directory."""

import os
import subprocess
import sys
import time

import qvfe
from qvfe.cli import _parser, restart_argv
from qvfe.watchdog import StallWatchdog, keepalive

SPEC = {"system": {"kind": "coulomb_trap", "n": 2, "dim": 2, "beta": 1.0},
        "model": {"flow": "realnvp", "layers": 2, "hidden": 4},
        "optim": {"steps": 6}, "sampler": {"batch": 16}, "eval": {"samples": 64}}


def test_regular_beats_keep_it_quiet_and_a_pause_is_reported_once():
    stalls = []
    with StallWatchdog(0.3, stalls.append, factor=3.0, poll=0.02) as dog:
        assert dog.limit() == 1.2  # before the first beat: 4 × timeout (compilation)
        for _ in range(10):
            time.sleep(0.05)
            dog.beat()
        assert stalls == []
        assert dog.limit() == 0.3  # 3 × 0.05 s < timeout
        time.sleep(0.6)
    assert len(stalls) == 1 and stalls[0] > 0.3 and dog.stalled


def test_slow_steps_raise_the_limit():
    stalls = []
    with StallWatchdog(0.1, stalls.append, factor=4.0, poll=0.02) as dog:
        dog.beat()
        time.sleep(0.08)
        dog.beat()
        assert dog.limit() >= 0.32  # 4 × the longest interval, not the 0.1 s floor
        time.sleep(0.2)
        dog.beat()
    assert stalls == []


def test_keepalives_from_a_long_computation_keep_it_quiet_without_counting_as_steps():
    """A long compiled call (hydrogen's proton pre-fit) calls keepalive(): no stall while it does,
    the step limit is untouched, and the stall is still reported once it stops."""
    stalls = []
    with StallWatchdog(0.2, stalls.append, first_timeout=0.2, poll=0.02) as dog:
        for _ in range(12):
            time.sleep(0.05)
            keepalive()
        assert stalls == [] and dog.keepalives == 12 and dog.limit() == 0.2
        time.sleep(0.4)
    assert len(stalls) == 1
    keepalive()  # no active watchdog: nothing to tell
    assert dog.keepalives == 12


def test_prefit_and_burn_in_call_keepalive_from_inside_their_compiled_loops():
    import jax
    import jax.numpy as jnp

    from qvfe.flows.particles import PeriodicPushDensity, fit_to_boltzmann
    from qvfe.sampling import metropolis

    q = PeriodicPushDensity(n=2, dim=2, box_length=3.0, hidden=(4,))
    with StallWatchdog(60.0, lambda idle: None) as dog:
        jax.block_until_ready(jax.jit(lambda p, k: fit_to_boltzmann(
            q, p, lambda s: 0.0 * s.sum(), k, 25, batch=8, gradient="pathwise"))(
                q.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)))
        jax.effects_barrier()
        assert dog.keepalives == 3  # steps 0, 10 and 20
        chain = metropolis.init(jax.random.PRNGKey(2), jnp.zeros((4, 2, 1)), 0.5)
        jax.block_until_ready(jax.jit(lambda c: metropolis.burn_in(
            c, lambda x: -jnp.sum(x**2, axis=(1, 2)), 12))(chain))
        jax.effects_barrier()
    assert dog.keepalives == 5  # and sweeps 0 and 10


def test_driver_beats_after_every_step_and_evaluation_chunk():
    beats = []
    qvfe.run(qvfe.load_spec(SPEC), progress=False, heartbeat=lambda: beats.append(1))
    assert len(beats) == 6 + 64 // 16


def test_restart_resumes_the_run_directory_and_never_overwrites(tmp_path):
    (tmp_path / "spec.toml").write_text(qvfe.load_spec(SPEC).to_toml())
    args = _parser().parse_args(["run", "spec.toml", "--set", "optim.steps=9", "--out",
                                 str(tmp_path), "--overwrite", "--no-progress",
                                 "--stall-timeout", "60"])
    argv = restart_argv(args, tmp_path)
    assert argv[1:5] == ["-m", "qvfe.cli", "run", str(tmp_path)]
    assert "--overwrite" not in argv and "spec.toml" not in argv and "--set" not in argv
    assert argv[-3:] == ["--no-progress", "--stall-timeout", "60"]


def test_restart_before_the_run_directory_is_written_repeats_the_command(tmp_path):
    """A stall while the problem is built (no spec.toml in --out yet) cannot resume: the
    restart is the original command, spec, overrides, --out and --overwrite included."""
    out = tmp_path / "r"
    args = _parser().parse_args(["run", "spec.toml", "--set", "optim.steps=9", "--out", str(out),
                                 "--overwrite", "--no-progress", "--stall-timeout", "60"])
    assert restart_argv(args, out)[1:] == [
        "-m", "qvfe.cli", "run", "spec.toml", "--set", "optim.steps=9", "--out", str(out),
        "--overwrite", "--no-progress", "--stall-timeout", "60"]
    default = _parser().parse_args(["run", "--out", str(out)])
    assert restart_argv(default, out)[1:6] == ["-m", "qvfe.cli", "run", "--out", str(out)]


def test_a_command_that_keeps_stalling_restarts_then_gives_up(tmp_path):
    """A 0.1 s limit (0.4 s before the first step) declares a stall during the first compile: the
    command re-executes itself on the run directory, and after the allowed restarts exits 75 with
    the resume command."""
    spec = tmp_path / "s.toml"
    spec.write_text(qvfe.load_spec(SPEC).to_toml())
    env = {**os.environ, "QVFE_STALL_RESTARTS": "2"}
    p = subprocess.run([sys.executable, "-m", "qvfe.cli", "run", str(spec), "--out",
                        str(tmp_path / "r"), "--no-progress", "--stall-timeout", "0.1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 75, p.stderr
    assert "restarting from the newest checkpoint" in p.stderr and "(3/3)" in p.stderr
    assert "giving up after 3 restarts" in p.stderr
    assert f"qvfe run {tmp_path / 'r'}" in p.stderr
