"""The ``qvfe`` command: run, resume, evaluate and inspect calculations from spec files.

Bad input (unknown keys, values out of range, missing files) ends with one line naming the key and
the allowed values, and exit status 2, before any computation starts.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from pathlib import Path

EPILOG = """\
examples:
  qvfe run                                       run the embedded default spec
  qvfe run systems/ising_L16.toml --out runs/i16 --set optim.steps=3000
  qvfe run runs/i16                              resume from the newest checkpoint
  qvfe eval runs/i16 --samples 100000            final numbers with frozen parameters
  qvfe keys                                      every spec key, its default and range
  qvfe compare runs/heg_* --plot heg.png         electron gas vs Brown et al. (2013) RPIMC
  qvfe compare runs/h_* --plot h.png             hydrogen vs CEIMC (isolated H, H2: exact)
"""


# On jax 0.10.2 the XLA CPU runtime's concurrency-optimized scheduler lets two batched LAPACK
# kernels (the determinant gradients of a walker batch) block both threads of a 2-core pool on
# each other: a deadlock with idle CPU. The command is an application, so it sets the flag for its
# own process before JAX starts; library users see a warning from the engine instead.
CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"

# A hung XLA computation (see qvfe.watchdog) is restarted by re-executing the command on the run
# directory, which resumes exactly; a few restarts in a row mean something else is wrong.
DEFAULT_STALL_TIMEOUT = 300.0
MAX_STALL_RESTARTS = 3
RESTARTS_ENV = "QVFE_STALL_RESTARTS"


def _set_xla_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + CPU_SCHEDULER_FLAG).strip()


def _seconds(text: str) -> float:
    """--stall-timeout's value: a finite number of seconds ≥ 0 (nan would pass a `<= 0` test)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds ≥ 0 (0: never), "
                                         f"got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qvfe", description="Variational free energies of many-body systems with generative "
        "models (Hartree atomic units unless the output says otherwise).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="optimize, checkpoint and evaluate a spec; or resume a run dir",
                       description="Run a spec file (or the embedded default), or resume a run "
                       "directory from its newest checkpoint. Overrides such as "
                       "--set optim.steps=3000 may also extend a finished run (with "
                       "--set optim.lr=... at another rate).")
    r.add_argument("spec", nargs="?", help="spec .toml file or run directory (default: the "
                   "embedded default spec)")
    r.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a spec key (repeatable)")
    r.add_argument("--out", help="run directory to write (default: runs/<spec name>)")
    r.add_argument("--overwrite", action="store_true",
                   help="delete an existing run in --out and start afresh")
    r.add_argument("--no-progress", action="store_true", help="plain progress lines, no bar")
    r.add_argument("--stall-timeout", type=_seconds, default=DEFAULT_STALL_TIMEOUT, metavar="S",
                   help="restart from the newest checkpoint when no step has finished for S "
                   "seconds and 20× the slowest step so far (4×S before the first step, which "
                   "compiles); 0: never (default: %(default)g)")
    e = sub.add_parser("eval", help="re-evaluate a run's newest checkpoint with frozen parameters")
    e.add_argument("rundir", help="run directory")
    e.add_argument("--samples", type=int, help="number of evaluation samples (default: eval.samples)")
    e.add_argument("--stall-timeout", type=_seconds, default=DEFAULT_STALL_TIMEOUT, metavar="S",
                   help="restart when no evaluation chunk has finished for S seconds; 0: never")
    sub.add_parser("keys", help="list every spec key per system kind with its default and range")
    s = sub.add_parser("spec", help="print the resolved spec (defaults filled in) and exit")
    s.add_argument("spec", nargs="?", help="spec file or run directory (default: embedded default)")
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE")
    c = sub.add_parser("compare", help="compare finished electron-gas or hydrogen runs with a "
                       "reference table: a text table and a PNG plot",
                       description="Electron gas: match each run to Brown et al.'s rows at the "
                       "same (rs, Θ, ξ, N), Θ taken relative to the gas's own T_F, and print qvfe "
                       "vs reference for E, K, V per electron (Ha and Ry) with the difference in "
                       "units of the combined standard error; the plot shows E and F vs Θ (or vs "
                       "rs when the runs share one Θ). Hydrogen: the CEIMC rows at the same (T, "
                       "rs), E and F in Ha/atom, S in k_B/atom, P in GPa; the plot shows E and P "
                       "vs rs (or vs T).")
    c.add_argument("rundirs", nargs="+", help="run directories (with spec.toml and result.json)")
    c.add_argument("--ref", help="reference table: 'brown2013' (default for the electron gas), "
                   "'ceimc' (default for hydrogen), or the path of a shipped table in data/")
    c.add_argument("--plot", default="compare.png", help="PNG to write (default: compare.png)")
    c.add_argument("--method", default="RPIMC_fixed_node",
                   choices=("RPIMC_fixed_node", "PIMC_signful"), help="which reference rows")
    return p


def _load(spec_arg: str | None, overrides: list[str]):
    from qvfe.spec import default_spec, load_spec

    if spec_arg is None:
        spec = default_spec()
        return spec.replace(**dict(_parse(o) for o in overrides)) if overrides else spec
    return load_spec(spec_arg, overrides=overrides)


def _parse(o: str):
    from qvfe.spec import parse_override

    return parse_override(o)


def restart_argv(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The command that resumes this invocation on its run directory (never with --overwrite);
    for a run that has not yet written its spec there (a stall while it builds, before the
    directory is prepared), the original command again: nothing of it exists to resume."""
    argv = [sys.executable, "-m", "qvfe.cli", args.command]
    if args.command == "run" and not (run_dir / "spec.toml").is_file():
        argv += [args.spec] if args.spec is not None else []
        for o in args.overrides:
            argv += ["--set", o]
        argv += ["--out", str(run_dir)] + (["--overwrite"] if args.overwrite else [])
    else:
        argv.append(str(run_dir))
    if args.command == "eval" and args.samples is not None:
        argv += ["--samples", str(args.samples)]
    if getattr(args, "no_progress", False):
        argv.append("--no-progress")
    return argv + ["--stall-timeout", f"{args.stall_timeout:g}"]


def _watchdog(args: argparse.Namespace, run_dir: Path):
    """A StallWatchdog that re-executes the command on ``run_dir``, or a no-op context."""
    import contextlib

    from qvfe.watchdog import StallWatchdog

    if not args.stall_timeout or args.stall_timeout <= 0:
        return contextlib.nullcontext(None)
    restarts = int(os.environ.get(RESTARTS_ENV, "0"))

    def on_stall(idle: float) -> None:
        msg = (f"qvfe: no progress for {idle:.0f} s (a stalled XLA computation, see "
               f"qvfe/watchdog.py)")
        if restarts >= MAX_STALL_RESTARTS:
            print(f"{msg}; giving up after {restarts} restarts. Resume with "
                  f"`qvfe run {run_dir}`", file=sys.stderr, flush=True)
            os._exit(75)
        print(f"{msg}; restarting from the newest checkpoint in {run_dir} "
              f"({restarts + 1}/{MAX_STALL_RESTARTS})", file=sys.stderr, flush=True)
        os.environ[RESTARTS_ENV] = str(restarts + 1)
        argv = restart_argv(args, run_dir)
        os.execv(argv[0], argv)

    return StallWatchdog(args.stall_timeout, on_stall)


def main(argv: list[str] | None = None) -> int:
    _set_xla_flags()
    args = _parser().parse_args(argv)
    if args.command in ("run", "eval"):
        from qvfe.xla_cpu import use_deadlock_free_linalg

        use_deadlock_free_linalg()  # see qvfe.xla_cpu: the batched LAPACK deadlock
    from qvfe.checkpoint import CheckpointError
    from qvfe.spec import SpecError

    try:
        if args.command == "keys":
            from qvfe.spec import describe_kinds

            print(describe_kinds())
            return 0
        if args.command == "spec":
            print(_load(args.spec, args.overrides).to_toml(), end="")
            return 0
        if args.command == "compare":
            from qvfe import compare

            print(compare.format_table(compare.compare_runs(args.rundirs, args.ref,
                                                            args.method)))
            path = compare.plot(args.rundirs, args.plot, args.ref, args.method)
            print(f"wrote {path}")
            return 0
        if args.command == "eval":
            if args.samples is not None and args.samples < 1:
                raise SpecError(f"--samples = {args.samples} is invalid: must be an integer ≥ 1")
            from qvfe.run import RunInterrupted, evaluate

            try:
                with _watchdog(args, Path(args.rundir)) as dog:
                    result = evaluate(args.rundir, samples=args.samples,
                                      heartbeat=dog.beat if dog else None)
            except RunInterrupted as e:
                print(f"qvfe: {e}", file=sys.stderr)
                return 130
            except KeyboardInterrupt:
                return _stopped_at_once(f"qvfe eval {args.rundir}")
            print(result.table())
            print(f"wrote {Path(args.rundir) / 'result.json'}")
            return 0
        from qvfe.run import RunInterrupted, run

        spec = _load(args.spec, args.overrides)
        if args.out is not None:
            out = Path(args.out)
        elif args.spec is not None and Path(args.spec).is_dir():
            out = Path(args.spec)
        else:
            out = Path("runs") / (Path(args.spec).stem if args.spec else "default")
        print(f"qvfe: {spec.kind} run in {out}", file=sys.stderr)
        from qvfe.checkpoint import list_checkpoints

        saved = list_checkpoints(out / "checkpoints") if not args.overwrite else []
        if saved:
            print(f"qvfe: resuming from the checkpoint of step {saved[0][0]}", file=sys.stderr)
        try:
            with _watchdog(args, out) as dog:
                result = run(spec, out, overwrite=args.overwrite,
                             progress=False if args.no_progress else None,
                             heartbeat=dog.beat if dog else None)
        except RunInterrupted as e:
            print(f"qvfe: {e}", file=sys.stderr)
            return 130
        except KeyboardInterrupt:
            return _stopped_at_once(f"qvfe run {out}")
        except FloatingPointError as e:  # the driver's non-finite check, before any checkpoint
            print(f"qvfe: error: the run diverged: {e} (its checkpoints stop before that step)",
                  file=sys.stderr)
            return 1
        print(result.table())
        print(f"wrote {out / 'result.json'}")
        return 0
    except (SpecError, CheckpointError) as e:
        print(f"qvfe: error: {e}", file=sys.stderr)
        return 2


def _stopped_at_once(resume: str) -> int:
    """A second SIGINT/SIGTERM (or Ctrl-C outside the driver's handlers) stops without the
    checkpoint of the current step; the checkpoints written so far are complete (atomic)."""
    print(f"qvfe: stopped at once by a second signal; the newest checkpoint is intact, resume "
          f"with `{resume}`", file=sys.stderr)
    return 130


def entry() -> None:  # pragma: no cover
    warnings.filterwarnings("default")
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
