"""Benchmark: the interacting quantum dot N = 3↑ + 3↓, d = 2, ω = 1, λ = 1 at several temperatures.

For every T it trains the density matrix (occupations × √flow) through ``qvfe.run`` and prints F, E
and S per electron with their standard errors, the steps and the wall time on this machine. Then it
measures the speed of one jitted optimization step (samples × steps per second, compile excluded)
with the kinetic energy by ``model.laplacian = "folx"`` and by ``"hessian"``, at T = the first
temperature. The hessian path is timed at a small batch (default 64) in a subprocess under a
timeout: a jitted, vmapped ``jax.hessian`` can hang at large batch on jax 0.10.2 (DESIGN.md §3).
The folx path is timed at both batches for a like-for-like comparison.

    .venv/bin/python scripts/bench_quantum_dot.py --temps 0.1 0.5 1.0 --steps 400 --batch 512

There is no exact reference for N = 6 at λ = 1; the 1↑ + 1↓ dot is checked against exact
diagonalization in tests/test_problems_quantum_dot_interacting.py.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import argparse  # noqa: E402
import time  # noqa: E402


def raw_spec(args: argparse.Namespace, T: float, **over) -> dict:
    raw = {"system": {"kind": "quantum_dot", "n_up": 3, "n_down": 3, "dim": 2, "T": T,
                      "omega": 1.0, "coupling": 1.0, "orbitals": args.orbitals},
           "model": {"backflow_layers": args.layers, "backflow_hidden": args.hidden,
                     "occupation_hidden": args.occ_hidden},
           "optim": {"steps": args.steps, "lr": args.lr, "damping": args.damping,
                     "max_norm": args.max_norm},
           "sampler": {"batch": args.batch, "mcmc_sweeps": args.sweeps,
                       "burn_in": args.burn_in},
           "eval": {"samples": args.samples},
           "run": {"print_every": max(1, args.steps // 5)}}
    for key, value in over.items():
        section, name = key.split(".")
        raw[section][name] = value
    return raw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--temps", type=float, nargs="+", default=[0.1, 0.5, 1.0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--occ-hidden", type=int, default=32)
    ap.add_argument("--orbitals", choices=("auto", "polar", "cartesian"), default="auto",
                    help="oscillator orbital form (the README table used cartesian)")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--damping", type=float, default=1e-3)
    ap.add_argument("--max-norm", type=float, default=0.0)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--burn-in", type=int, default=100)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--speed-batch", type=int, default=64, help="batch of the hessian timing")
    ap.add_argument("--speed-steps", type=int, default=5)
    ap.add_argument("--hessian-timeout", type=float, default=300.0)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()

    import qvfe
    from qvfe.benchmark import step_throughput_isolated
    from qvfe.xla_cpu import use_deadlock_free_linalg

    use_deadlock_free_linalg()  # see qvfe.xla_cpu

    rows = []
    if not args.skip_train:
        for T in args.temps:
            t0 = time.perf_counter()
            res = qvfe.run(qvfe.load_spec(raw_spec(args, T)), progress=False)
            o = res.observables
            rows.append((T, o["F"], o["E"], o["S"], res.steps, time.perf_counter() - t0,
                         res.info.get("n_orbitals")))

    def timed(laplacian: str, batch: int) -> dict | str:
        raw = raw_spec(args, args.temps[0], **{"model.laplacian": laplacian,
                                               "sampler.batch": batch})
        r = step_throughput_isolated(raw, args.speed_steps, args.hessian_timeout)
        return {**r, "laplacian": laplacian} if isinstance(r, dict) else f"{laplacian}: {r}"

    speeds = [timed("folx", args.batch), timed("folx", args.speed_batch),
              timed("hessian", args.speed_batch)]

    print(f"\nQuantum dot 3↑+3↓, d=2, ω=1, λ=1: per electron (Hartree), {args.steps} steps, "
          f"batch {args.batch}, backflow {args.layers}×{args.hidden}, occupation MADE "
          f"{args.occ_hidden}, SR lr {args.lr} damping {args.damping}, {args.sweeps} sweeps/step, "
          f"{args.samples} eval samples")
    print(f"{'T':>5} {'F':>21} {'E':>21} {'S':>21} {'steps':>6} {'orbs':>5} {'wall s':>7}")
    for T, f, e, s, steps, wall, n_orb in rows:
        print(f"{T:>5} {f.mean:>10.5f} ± {f.error:.5f} {e.mean:>10.5f} ± {e.error:.5f} "
              f"{s.mean:>10.5f} ± {s.error:.5f} {steps:>6} {n_orb:>5} {wall:>7.1f}")
    print(f"\nOne optimization step at T = {args.temps[0]} (compile excluded):")
    for r in speeds:
        if isinstance(r, dict):
            print(f"  {r['laplacian']:<8} batch {r['batch']:>5}: {r['s_per_step']:.3f} s/step, "
                  f"{r['samples_steps_per_s']:.0f} samples·steps/s (compile {r['compile_s']:.0f} s)")
        else:
            print(f"  {r}")


if __name__ == "__main__":
    main()
