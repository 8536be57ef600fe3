"""Benchmark: dense hydrogen at rs = 1.25, T = 6000 K, N = 16 and 32, vs CEIMC, with 1/N extrapolation.

Trains each size with ``qvfe run`` from the shipped specs
(``systems/hydrogen_rs1.25_T6000_n{16,32}.toml``, with the overrides given here), prints
``qvfe compare``'s table against the CEIMC point (E = −0.4549 Ha/atom, P = 553 GPa, S = 6.25 k_B,
F = −0.5737 Ha/atom), F, E, S and P per atom with errors, steps and wall time, the 1/N
extrapolation X(N) = X_∞ + a/N through the two sizes (X_∞ = 2 X_32 − X_16, error propagated), and
the target check (extrapolated P within 5 %, E within 5 mHa/atom of CEIMC). Rows "corr" give each
size less its finite-size estimates (the shell error and the exact state's leading-order two-body
error, ``qvfe.problems.hydrogen``): equal rows mean the model's error does not depend on N.
Also the speed of one optimization step (samples × steps per second, compile excluded).

With ``--seeds 0 1 ...`` each size runs once per seed (``run.seed``; directories ``n<N>_s<seed>``)
and the extrapolation goes through each size's mean over its seeds, whose error is the larger of
the runs' propagated errors and their scatter (``qvfe.stats.mean_of_runs``): the seeds' optima
differ by more than one evaluation's error bar.

With ``--runs DIR ...`` nothing is trained: the given run directories of the benchmark point
(any sizes, e.g. 16, 24 and 32; several seeds per size) are read and reported as above, grouped
by their number of protons. With more than two sizes the extrapolation is the weighted
least-squares line in 1/N. The row "corr 1/N→0" extrapolates the corrected sizes, which the
target check then takes too (what README's benchmark table reports).

With ``--train-seconds`` each size trains for that wall time (compilation and the proton pre-fit
included) instead of a number of steps, is stopped at a checkpoint and evaluated from it; the table
then gives the steps reached. ``--concurrent`` trains the sizes side by side (one GPU shared by the
processes, each allowed an equal part of 80 % of its memory).

    .venv/bin/python scripts/bench_hydrogen.py --steps 1000 --batch 128 --out runs/bench_h
    .venv/bin/python scripts/bench_hydrogen.py --sizes 16 --steps 50      # a short look
    .venv/bin/python scripts/bench_hydrogen.py --steps 150 --batch 32 --samples 2048 --seeds 0 1
    .venv/bin/python scripts/bench_hydrogen.py --sizes 16 --steps 150 --laplacian hutchinson
    .venv/bin/python scripts/bench_hydrogen.py --sizes 16 --steps 300 --set model.electron_cusps=true
    .venv/bin/python scripts/bench_hydrogen.py --runs runs/n16_s0 runs/n16_s1 runs/n32_s0
    python scripts/bench_hydrogen.py --train-seconds 400 --concurrent --no-speed   # on a GPU
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import argparse  # noqa: E402
import math  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

from qvfe.physics import units  # noqa: E402

SYSTEMS = Path(__file__).resolve().parents[1] / "systems"
KEYS = (("F", "Ha/atom", 1.0), ("E", "Ha/atom", 1.0), ("S", "k_B/atom", 1.0),
        ("P", "GPa", units.HA_PER_BOHR3_IN_GPA))


def raw_spec(n: int, args: argparse.Namespace, **over) -> dict:
    raw = tomllib.loads((SYSTEMS / f"hydrogen_rs1.25_T6000_n{n}.toml").read_text())
    settings = {"optim.steps": args.steps, "sampler.batch": args.batch,
                "eval.samples": args.samples, "model.laplacian": args.laplacian,
                "run.print_every": max(1, args.steps // 10), **over}
    for key, value in [*settings.items(), *args.overrides]:  # the user's --set win
        section, name = key.split(".")
        raw.setdefault(section, {})[name] = value
    return raw


def extrapolate(points: dict[int, tuple[float, float]]) -> tuple[float, float] | None:
    """X_∞ of X(N) = X_∞ + a/N through two sizes or more (weighted least squares; through two
    sizes the line itself), with the propagated standard error; None for fewer than two."""
    import numpy as np

    if len(points) < 2:
        return None
    n, x, err = (np.array(v, dtype=np.float64) for v in zip(*((k, *points[k])
                                                              for k in sorted(points))))
    scale = 1.0 / err if np.all(err > 0) else np.ones_like(err)  # unweighted without errors
    design = np.stack([np.ones_like(n), 1.0 / n], axis=1) * scale[:, None]
    weights = np.linalg.pinv(design)[0] * scale  # X_∞ = weights · X
    return float(weights @ x), float(np.sqrt(np.sum((weights * err) ** 2)))


def finite_size_shifts(info: dict, system) -> dict[str, float]:
    """Finite-size value minus infinite system per observable (per atom; P in Ha/bohr³): the
    one-body shell errors of the kinetic energy (reported by the run) and of the exchange energy
    (:func:`qvfe.physics.heg.exchange_shell_error`, a 1/L energy: a third of it per volume in P),
    the exact state's leading-order two-body (plasmon) error (F takes E's: kT ≪ ω_p), and the
    protons' exact ln N! against its Stirling form, which lowers S by ln(2πN)/(2N) and raises F
    by kT times that."""
    import numpy as np

    from qvfe.physics import heg
    from qvfe.problems.hydrogen import box_length
    from qvfe.spec import hydrogen_electron_counts

    n_p = system.n_protons
    length = box_length(system.rs, n_p)
    n_up, n_down = hydrogen_electron_counts(system)
    twist = np.asarray(system.twist, dtype=np.float64) if len(system.twist) else np.zeros(3)
    exchange = heg.exchange_shell_error(length * np.eye(3), n_up, n_down,
                                        twist) * (n_up + n_down) / n_p
    e = info["kinetic_shell_error"] + exchange + info["two_body_finite_size_error"]
    stirling = math.log(2 * math.pi * n_p) / (2 * n_p)
    return {"F": e + units.kelvin_to_hartree(system.T_kelvin) * stirling, "E": e,
            "S": -stirling,
            "P": info["pressure_shell_error"] + n_p * exchange / (3 * length**3)
            + info["pressure_two_body_error"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32], choices=(16, 32))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--samples", type=int, default=8192)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="run.seed of each size's runs (several: the sizes' means extrapolate)")
    ap.add_argument("--out", default="runs/bench_hydrogen")
    ap.add_argument("--speed-batch", type=int, default=32)
    ap.add_argument("--speed-steps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=900.0, help="per step timing (s)")
    ap.add_argument("--no-speed", action="store_true", help="skip the step timing")
    ap.add_argument("--train-seconds", type=float, default=None,
                    help="train each size for this wall time (s), then evaluate its checkpoint")
    ap.add_argument("--concurrent", action="store_true", help="train the sizes side by side")
    ap.add_argument("--laplacian", default="folx", choices=("folx", "hutchinson"),
                    help="model.laplacian of the training runs (hutchinson: about half the "
                         "step time at N = 16 on the CPU, a little more variance)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE",
                    help="a spec override for every training run (repeatable), as qvfe run's")
    ap.add_argument("--runs", nargs="+", metavar="DIR", default=None,
                    help="report these run directories (grouped by size) instead of training")
    args = ap.parse_args()
    if len(set(args.seeds)) != len(args.seeds):
        ap.error(f"--seeds must be distinct, got {args.seeds}")
    if len(set(args.sizes)) != len(args.sizes):  # one directory would be trained twice
        ap.error(f"--sizes must be distinct, got {args.sizes}")
    missing = [d for d in args.runs or () if not (Path(d) / "result.json").is_file()]
    if missing:
        ap.error(f"--runs: no result.json in {', '.join(missing)}")
    if args.train_seconds is not None:
        args.steps = 10**6  # the wall-time limit stops the run
    if args.overrides and args.runs:
        ap.error("--set applies to training runs, not to --runs")
    from qvfe.spec import SpecError, load_spec, parse_override

    try:  # bad overrides fail here, before any size trains
        args.overrides = [parse_override(o) for o in args.overrides]
        for n in args.sizes:
            load_spec(raw_spec(n, args))
    except SpecError as e:
        ap.error(str(e))

    import qvfe
    from qvfe import compare
    from qvfe import references as refs
    from qvfe.benchmark import step_rate_from_log, step_throughput_isolated, train_runs
    from qvfe.problem import Estimate
    from qvfe.spec import hydrogen_electron_counts
    from qvfe.stats import mean_of_runs

    if args.runs:
        loaded = {Path(d): qvfe.load_spec(Path(d) / "spec.toml") for d in args.runs}
        for d, spec in loaded.items():
            s = spec.system
            if (s.kind, getattr(s, "boundary", None), getattr(s, "rs", None),
                    getattr(s, "T_kelvin", None)) != ("hydrogen", "periodic", 1.25, 6000.0) \
                    or s.proton_lattice or s.proton_positions:
                ap.error(f"--runs: {d} is not a periodic hydrogen run of sampled protons at "
                         "system.rs = 1.25, system.T_kelvin = 6000 (the benchmark point)")
        dirs = {(spec.system.n_protons, spec.run.seed): d for d, spec in loaded.items()}
        if len(dirs) < len(loaded):
            ap.error("--runs: two directories share a size and a run.seed")
        for n in {spec.system.n_protons for spec in loaded.values()}:
            # one size's seeds are averaged and corrected with the first one's shifts: they must
            # share the k-grid (a Γ-point run keeps 0.05 Ha/atom more shell error at N = 16)
            grids = {(tuple(spec.system.twist), *hydrogen_electron_counts(spec.system))
                     for spec in loaded.values() if spec.system.n_protons == n}
            if len(grids) > 1:
                ap.error(f"--runs: the runs of N = {n} differ in system.twist or the electrons' "
                         f"spins {sorted(grids)}; give runs of one k-grid per size")
        walls = None  # the runs' own, from their results below
        print("\nDense hydrogen, rs = 1.25, T = 6000 K: the runs given")
    else:
        over = {"run.print_every": 50} if args.train_seconds is not None else {}
        runs = [(n, seed) for n in args.sizes for seed in args.seeds]
        dirs = {(n, seed): Path(args.out) / (f"n{n}" if len(args.seeds) == 1
                                             else f"n{n}_s{seed}") for n, seed in runs}
        times = train_runs([(raw_spec(n, args, **over, **{"run.seed": seed}), str(dirs[n, seed]))
                            for n, seed in runs],
                           concurrent=args.concurrent, time_limit=args.train_seconds,
                           eval_samples=args.samples)
        walls = dict(zip(runs, times))
        budget = (f"{args.train_seconds:g} s of training" if args.train_seconds is not None
                  else f"{args.steps} steps")
        print(f"\nDense hydrogen, rs = 1.25, T = 6000 K: {budget}, batch {args.batch}, "
              f"{args.samples} eval samples" + (", runs trained side by side" if args.concurrent
                                                else ""))
    print(compare.format_table(compare.compare_runs(list(dirs.values()))))

    row = refs.match_one(refs.load_ceimc_hydrogen(), T_K=6000, rs=1.25)
    ceimc = {"F": row["F"], "E": row["E"], "S": row["S"], "P": row["p_GPa"]}
    results = {run: qvfe.Result.from_json(d / "result.json") for run, d in dirs.items()}
    if walls is None:  # a resumed run's result counts its last process only
        walls = {run: res.wall_time_s for run, res in results.items()}
    print(f"\n{'N':>6} {'seed':>4} " + " ".join(f"{k + ' (' + u + ')':>24}" for k, u, _ in KEYS)
          + f" {'steps':>6} {'s/step':>7} {'wall s':>8}")

    def cells(estimates):
        return " ".join(f"{f * e.mean:>12.5g} ± {f * e.error:<9.2g}"
                        for e, (_, _, f) in zip(estimates, KEYS))

    for (n, seed), res in sorted(results.items()):
        rate = step_rate_from_log(str(dirs[n, seed]))["s_per_step"]
        print(f"{n:>6} {seed:>4} " + cells(res.observables[k] for k, _, _ in KEYS)
              + f" {res.steps:>6} {rate:>7.3f} {walls[n, seed]:>8.0f}")
    seeds = {n: sorted(s for m, s in results if m == n) for n in sorted({m for m, _ in results})}
    per_size = {n: {k: mean_of_runs([results[n, s].observables[k] for s in seeds[n]])
                    for k, _, _ in KEYS} for n in seeds}
    for n, means in per_size.items():
        if len(seeds[n]) > 1:
            print(f"{n:>6} {'mean':>4} " + cells(means[k] for k, _, _ in KEYS))
    corrected = {}
    for n, means in per_size.items():
        first = dirs[n, seeds[n][0]]  # the shifts are the same for every seed
        shifts = finite_size_shifts(results[n, seeds[n][0]].info,
                                    qvfe.load_spec(first / "spec.toml").system)
        corrected[n] = {k: Estimate(means[k].mean - shifts[k], means[k].error) for k in means}
        print(f"{n:>6} {'corr':>4} " + cells(corrected[n][k] for k, _, _ in KEYS))
    extrapolated = {label: {k: extrapolate({n: (f * est[k].mean, f * est[k].error)
                                            for n, est in table.items()}) for k, _, f in KEYS}
                    for label, table in (("1/N→0", per_size), ("corr 1/N→0", corrected))}
    for label, ext in extrapolated.items():
        if all(v is not None for v in ext.values()):
            print(f"{label:>11} " + " ".join(f"{m:>12.5g} ± {e:<9.2g}" for m, e in ext.values()))
    print(f"{'CEIMC':>11} " + " ".join(f"{ceimc[k]:>24.5g}" for k, _, _ in KEYS))
    ext = extrapolated["corr 1/N→0"]
    if ext["E"] is not None:
        de, dp = ext["E"][0] - ceimc["E"], (ext["P"][0] - ceimc["P"]) / ceimc["P"]
        print(f"target (corrected sizes extrapolated): |ΔE| = {1e3 * abs(de):.1f} mHa/atom "
              f"(≤ 5: {abs(de) <= 5e-3}), |ΔP|/P = {100 * abs(dp):.1f} % "
              f"(≤ 5 %: {abs(dp) <= 0.05})")
    Path(args.out).mkdir(parents=True, exist_ok=True)  # --runs trains nothing there
    compare.plot(list(dirs.values()), Path(args.out) / "compare.png")
    if args.no_speed or args.runs:
        return

    print(f"\nOne optimization step, N = {args.sizes[0]}, batch {args.speed_batch} "
          "(compile excluded):")
    # the step's cost does not depend on the proton pre-fit, which would only add minutes here
    r = step_throughput_isolated(raw_spec(args.sizes[0], args,
                                          **{"sampler.batch": args.speed_batch,
                                             "model.proton_prefit_steps": 0}),
                                 args.speed_steps, args.timeout)
    if isinstance(r, dict):
        print(f"  {r['s_per_step']:.2f} s/step, {r['samples_steps_per_s']:.1f} samples·steps/s "
              f"on {r['devices']} {r['backend']} device(s) (compile {r['compile_s']:.0f} s)")
    else:
        print(f"  {r}")


if __name__ == "__main__":
    main()
