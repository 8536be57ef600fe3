"""Benchmark: the Coulomb trap (default N=6, d=2, β=10) trained three ways on the same transform stack.

Prints, per training mode, the variational bound F_q, the importance-sampled F̂ with its error and
effective sample size, and the wall time, next to the thermodynamic-integration reference in
data/coulomb_trap_reference.csv (made by scripts/reference_coulomb_trap.py).

    python scripts/bench_coulomb_trap.py --steps 3000 --out runs/bench_ct
"""

from __future__ import annotations

import argparse
import time

import qvfe
from qvfe.problems.coulomb_trap import reference

MODES = {
    "free_energy": {"model.flow": "realnvp", "model.layers": 8, "model.hidden": 64},
    "likelihood": {"model.flow": "realnvp", "model.layers": 8, "model.hidden": 64},
    "flow_matching": {"model.flow": "cnf", "model.layers": 3, "model.hidden": 128,
                      "model.ode_steps": 20},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--beta", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--samples", type=int, default=50000)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default="runs/bench_coulomb_trap")
    args = ap.parse_args()
    ref = reference(args.n, args.dim, args.beta)
    rows = []
    for mode in args.modes.split(","):
        raw = {"system": {"kind": "coulomb_trap", "n": args.n, "dim": args.dim,
                          "beta": args.beta}}
        over = {**MODES[mode], "optim.objective": mode, "optim.steps": args.steps,
                "optim.lr": 1e-3, "sampler.batch": args.batch, "eval.samples": args.samples,
                "run.print_every": max(1, args.steps // 10)}
        if mode == "free_energy":
            over["optim.anneal_steps"] = args.steps // 2
        spec = qvfe.load_spec(raw, overrides=over)
        t0 = time.perf_counter()
        res = qvfe.run(spec, out=f"{args.out}/{mode}", overwrite=True, progress=False)
        wall = time.perf_counter() - t0
        o = res.observables
        rows.append((mode, o["F"], o["F_is"], wall))
    print(f"\nCoulomb trap N={args.n}, d={args.dim}, beta={args.beta}: F per particle "
          f"(reduced units), {args.steps} steps, batch {args.batch}, {args.samples} eval samples")
    ref_txt = (f"{ref['F_ref']:.5f} ± {ref['F_ref_err']:.5f}" if "F_ref" in ref else
               f"{ref.get('F_exact', float('nan')):.5f} (exact)")
    print(f"{'mode':<14} {'F_q':>20} {'F_is':>20} {'ESS':>8} {'wall s':>8}   reference {ref_txt}")
    for mode, f, fis, wall in rows:
        print(f"{mode:<14} {f.mean:>10.5f} ± {f.error:.5f} {fis.mean:>10.5f} ± {fis.error:.5f} "
              f"{fis.extra['ess']:>8.0f} {wall:>8.1f}")


if __name__ == "__main__":
    main()
