"""Benchmark: the 3D spin-polarised electron gas, N = 33, Θ = 0.0625, at rs = 10 and 4, vs Brown 2013.

Trains each point through ``qvfe.run`` from the shipped specs
(``systems/electron_gas_3d_n33_rs{10,4}_theta0.0625.toml``, with the overrides given here), then
prints ``qvfe compare``'s table against Brown et al.'s RPIMC E_N (target: |E − E_N| ≤ 2 mRy per
electron), F and S per electron with their errors, the steps, samples and wall time, and the speed
of one optimization step (samples × steps per second, compile excluded) with the forward Laplacian
(folx), with folx and Hutchinson's estimate for the flow's log-Jacobian (``hutchinson``) and with
``jax.hessian`` at a small batch, each in a child process under a timeout. ``--laplacian
hutchinson`` trains with the estimate.

With ``--train-seconds`` each point trains for that wall time (compilation included) instead of a
number of steps: the run is stopped at a checkpoint and evaluated from it, and the table gives the
steps reached and the seconds per step read from the run's log. ``--concurrent`` trains the points
side by side (one GPU shared by the processes, each allowed an equal part of 80 % of its memory:
the two-layer step at batch 256 needs about 31 GiB, so an H200 holds two points, not four; the
eight-layer step at batch 128 needs more than 56 GiB, so one point at a time or batch 64).

    .venv/bin/python scripts/bench_electron_gas.py --steps 2000 --batch 256 --out runs/bench_heg
    .venv/bin/python scripts/bench_electron_gas.py --speed-only       # the step timings alone
    python scripts/bench_electron_gas.py --train-seconds 330 --concurrent --no-speed   # on a GPU
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import argparse  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

SYSTEMS = Path(__file__).resolve().parents[1] / "systems"


def spec_file(rs: float) -> Path:
    """The shipped N = 33, Θ = 0.0625 spec at ``rs`` (the files exist for Brown's rs 4 and 10)."""
    return SYSTEMS / f"electron_gas_3d_n33_rs{rs:g}_theta0.0625.toml"


def raw_spec(rs: float, args: argparse.Namespace, strength: float = 1.0, **over) -> dict:
    raw = tomllib.loads(spec_file(rs).read_text())
    settings = {"optim.steps": args.steps, "sampler.batch": args.batch,
                "model.backflow_layers": args.layers, "model.backflow_strength": strength,
                "model.backflow_range": args.range, "model.laplacian": args.laplacian,
                "eval.samples": args.samples,
                "run.print_every": max(1, args.steps // 10), **over}
    for key, value in settings.items():
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", type=float, nargs="+", default=[10.0, 4.0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2, help="backflow layers")
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--out", default="runs/bench_electron_gas")
    ap.add_argument("--speed-batch", type=int, default=32)
    ap.add_argument("--speed-steps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900.0, help="per step timing (s)")
    ap.add_argument("--speed-only", action="store_true")
    ap.add_argument("--no-speed", action="store_true", help="skip the step timings")
    ap.add_argument("--train-seconds", type=float, default=None,
                    help="train each point for this wall time (s), then evaluate its checkpoint")
    ap.add_argument("--concurrent", action="store_true", help="train the points side by side")
    ap.add_argument("--strength", type=float, nargs="+", default=[1.0],
                    help="model.backflow_strength values (each rs is run with each)")
    ap.add_argument("--range", type=float, default=0.0,
                    help="model.backflow_range in rs (0: pair-sum layers; > 0: neighbour-mean "
                         "layers of that range, with strength 1)")
    ap.add_argument("--laplacian", default="folx", choices=("folx", "hutchinson"),
                    help="model.laplacian of the training runs (hutchinson: several times "
                         "faster per step, and far less memory, with a backflow)")
    args = ap.parse_args()
    if args.train_seconds is not None:
        args.steps = 10**6  # the wall-time limit stops the run; the SR rate is constant
    unknown = [rs for rs in args.rs if not spec_file(rs).is_file()]
    if unknown:
        shipped = sorted(f.name for f in SYSTEMS.glob("electron_gas_3d_n33_rs*_theta0.0625.toml"))
        ap.error(f"--rs {' '.join(f'{rs:g}' for rs in unknown)}: no shipped N = 33 spec at "
                 f"that rs (there are {', '.join(shipped)})")
    from qvfe.spec import SpecError, load_spec

    try:  # every point's spec checked before the first one trains
        for rs in args.rs:
            for strength in args.strength:
                load_spec(raw_spec(rs, args, strength))
    except SpecError as e:
        ap.error(str(e))

    import qvfe
    from qvfe import compare
    from qvfe.benchmark import step_rate_from_log, step_throughput_isolated, train_runs

    if not args.speed_only:
        over = {"run.print_every": 50} if args.train_seconds is not None else {}
        points = [(rs, st) for rs in args.rs for st in args.strength]
        dirs = [Path(args.out) / (f"n33_rs{rs:g}" + (f"_s{st:g}" if st != 1 else "")
                                  + (f"_r{args.range:g}" if args.range else ""))
                for rs, st in points]
        jobs = [(raw_spec(rs, args, st, **over), str(out)) for (rs, st), out in zip(points, dirs)]
        train_runs(jobs, concurrent=args.concurrent, time_limit=args.train_seconds,
                   eval_samples=args.samples)
        steps = (f"{args.train_seconds:g} s of training" if args.train_seconds is not None
                 else f"{args.steps} steps")
        kind = f"neighbour-mean, range {args.range:g} rs" if args.range else "pair-sum"
        print(f"\n3D electron gas, ξ = 1, N = 33, Θ = 0.0625: {steps}, batch "
              f"{args.batch}, backflow {args.layers} {kind} layers, {args.samples} eval samples"
              + (", points trained side by side" if args.concurrent else ""))
        print(compare.format_table(compare.compare_runs(dirs)))
        print(f"\n{'run':<14} {'F (Ha/e)':>22} {'S (k_B/e)':>20} {'E−E_N (mRy/e)':>14} "
              f"{'steps':>7} {'s/step':>8} {'wall s':>8}")
        for c in compare.compare_runs(dirs):
            if c.key != "E":
                continue
            res = qvfe.Result.from_json(Path(c.run_dir) / "result.json")
            f, s = res.observables["F"], res.observables["S"]
            d = f"{2e3 * c.difference:+.2f}" if c.difference is not None else "-"
            rate = step_rate_from_log(c.run_dir)
            print(f"{Path(c.run_dir).name:<14} {f.mean:>11.6f} ± {f.error:.6f} "
                  f"{s.mean:>9.4f} ± {s.error:.4f} {d:>14} {rate['steps']:>7.0f} "
                  f"{rate['s_per_step']:>8.3f} {res.wall_time_s:>8.0f}")  # the run's own
        compare.plot(dirs, Path(args.out) / "compare.png")
    if args.no_speed:
        return

    print(f"\nOne optimization step, rs = {args.rs[0]:g}, batch {args.speed_batch}, "
          f"{args.layers} backflow layers (compile excluded):")
    for laplacian in ("folx", "hutchinson", "hessian"):
        r = step_throughput_isolated(
            raw_spec(args.rs[0], args, **{"model.laplacian": laplacian,
                                          "sampler.batch": args.speed_batch}),
            args.speed_steps, args.timeout)
        if isinstance(r, dict):
            print(f"  {laplacian:<8} {r['s_per_step']:.2f} s/step, "
                  f"{r['samples_steps_per_s']:.1f} samples·steps/s on {r['devices']} "
                  f"{r['backend']} device(s) (compile {r['compile_s']:.0f} s)")
        else:
            print(f"  {laplacian:<8} {r}")


if __name__ == "__main__":
    main()
