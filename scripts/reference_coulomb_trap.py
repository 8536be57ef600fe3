"""Reference free energies of the classical Coulomb trap for N > 2, independent of any flow.

Coupling-constant thermodynamic integration from the harmonic trap (Gauss-Legendre in s with
lambda = s^3, Metropolis at each node; run at two node counts to expose the quadrature error) and,
as a cross-check with different biases, annealed importance sampling along the same path. For N = 2
the exact quadrature value is printed and written alongside.

    .venv/bin/python scripts/reference_coulomb_trap.py                     # N=6, d=2, beta=10
    .venv/bin/python scripts/reference_coulomb_trap.py --system 6,2,10 --system 2,2,1 \
        --system 2,2,10 --out data/coulomb_trap_reference.csv

Writes a CSV (columns N, dim, beta, F_per_particle, error, method, samples) whose '#' header says
how it was made. F is per particle, error is one standard error of the mean (statistical only).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)  # a script, not library code: it owns the process

from qvfe.physics import coulomb_trap  # noqa: E402
from qvfe.sampling import classical_mcmc  # noqa: E402


def _system(text: str) -> tuple[int, int, float, float]:
    """N,DIM,BETA[,EFFORT]: EFFORT scales the walker counts for this system (cheap N = 2 checks)."""
    try:
        parts = text.split(",")
        if len(parts) not in (3, 4):
            raise ValueError
        effort = float(parts[3]) if len(parts) == 4 else 1.0
        n, dim, beta = int(parts[0]), int(parts[1]), float(parts[2])
        if not (n >= 2 and 1 <= dim <= 3 and 0 < beta < math.inf and 0 < effort < math.inf):
            raise ValueError
        return n, dim, beta, effort
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected N,DIM,BETA[,EFFORT] with N >= 2, DIM in 1..3, BETA > 0 and EFFORT > 0 "
            f"(e.g. 6,2,10 or 2,2,1,0.25), got {text!r}") from err


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", type=_system, action="append",
                   help="N,DIM,BETA[,EFFORT] (repeatable; default 6,2,10); "
                   "EFFORT multiplies the walker counts")
    p.add_argument("--nodes", type=_positive, nargs="+", default=[8, 12],
                   help="Gauss-Legendre node counts for the coupling integration")
    p.add_argument("--walkers", type=_positive, default=512, help="chains per coupling node")
    p.add_argument("--burn-in", type=int, default=1000)
    p.add_argument("--records", type=_positive, default=300)
    p.add_argument("--thin", type=_positive, default=10)
    p.add_argument("--ais-stages", type=int, default=1500, help="0 switches AIS off")
    p.add_argument("--ais-walkers", type=_positive, default=2048)
    p.add_argument("--ais-steps", type=_positive, default=4, help="Metropolis moves per AIS stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="data/coulomb_trap_reference.csv")
    args = p.parse_args(argv)
    systems = args.system or [(6, 2, 10.0, 1.0)]
    if args.burn_in < 0 or args.ais_stages < 0:
        p.error("--burn-in and --ais-stages must be >= 0")
    out_dir = os.path.dirname(args.out)
    try:  # before the hours of sampling: a table that cannot be written loses them all
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        with open(args.out, "a"):
            pass
    except OSError as e:
        p.error(f"--out {args.out}: cannot be written ({e.strerror or e})")
    used_walkers = {}

    t_start = time.time()
    rows = []
    key = jax.random.PRNGKey(args.seed)
    for n, dim, beta, effort in systems:
        walkers = max(16, round(args.walkers * effort))
        ais_walkers = max(16, round(args.ais_walkers * effort))
        used_walkers[n, dim, beta] = (walkers, ais_walkers)
        print(f"== N={n} d={dim} beta={beta:g} (walkers {walkers}, AIS walkers {ais_walkers})",
              flush=True)
        if n == 2:
            exact = coulomb_trap.exact_free_energy_two_particles(beta, dim)
            print(f"exact quadrature   F/N = {exact.F:.8f}", flush=True)
            rows.append((n, dim, beta, exact.F, 0.0, "exact-quadrature", 0))
        for n_nodes in args.nodes:
            key, sub = jax.random.split(key)
            t0 = time.time()
            r = classical_mcmc.coupling_integration_free_energy(
                sub, n, dim, beta, n_nodes, n_walkers=walkers, burn_in=args.burn_in,
                n_records=args.records, thin=args.thin)
            print(f"TI GL{n_nodes:<3d}          F/N = {r.F:.6f} +- {r.error:.6f}"
                  f"   ({time.time() - t0:.0f} s, F0/N = {r.F0:.6f})", flush=True)
            for lam, w, v, e, tau, acc in zip(r.lam, r.weights, r.coulomb, r.coulomb_err, r.tau,
                                              r.acceptance):
                print(f"   lambda={lam:.5f} w={w:.5f} <V_C>={v:.5f}+-{e:.5f} tau={tau:.2f} "
                      f"acc={acc:.3f}")
            rows.append((n, dim, beta, r.F, r.error, f"TI-coupling-GL{n_nodes}", r.n_samples))
        if args.ais_stages > 0:
            key, sub = jax.random.split(key)
            t0 = time.time()
            a = classical_mcmc.annealed_importance_free_energy(
                sub, n, dim, beta, args.ais_stages, n_walkers=ais_walkers,
                steps_per_stage=args.ais_steps)
            print(f"AIS {args.ais_stages} stages    F/N = {a.F:.6f} +- {a.error:.6f}"
                  f"   (ESS {a.ess:.0f}/{a.n_samples}, {time.time() - t0:.0f} s)", flush=True)
            rows.append((n, dim, beta, a.F, a.error, f"AIS-{args.ais_stages}x{args.ais_steps}",
                         a.n_samples))
    wall = time.time() - t_start

    walker_note = ", ".join(f"{w} and {a} at N={n} d={d} beta={b:g}"
                            for (n, d, b), (w, a) in used_walkers.items())
    with open(args.out, "w", newline="") as fh:
        fh.write(
            "# Classical Coulomb trap E = sum_{i<j} 1/|x_i-x_j| + sum_i |x_i|^2, "
            "labelled particles (no 1/N!), F per particle, error = 1 s.e.m. (statistical only).\n"
            "# UNITS: the trap's reduced units: energies (F, beta^-1) in the unit of E above, "
            "lengths in its unit (1/r and |x|^2 equal at |x| = 1), k_B = 1.\n"
            "# TI-coupling-GLk: F = F_harmonic + int_0^1 <V_C>_lambda dlambda, k Gauss-Legendre "
            "nodes in s, lambda = s^3, Metropolis at each node "
            f"(walkers per node and AIS walkers: {walker_note}; burn-in {args.burn_in}, "
            f"{args.records} records every {args.thin} moves); samples = recorded configurations.\n"
            "# AIS-KxM: annealed importance sampling harmonic -> Coulomb along lambda = (k/K)^3, "
            "M Metropolis moves per stage; samples = independent walkers.\n"
            "# exact-quadrature: N=2 radial integral (qvfe.physics.coulomb_trap).\n"
            f"# made by: python scripts/reference_coulomb_trap.py {' '.join(argv or sys.argv[1:])}"
            f" ; seed {args.seed}; wall {wall:.0f} s on {platform.machine()} "
            f"({os.cpu_count()} cpus); jax {jax.__version__}\n"
        )
        w = csv.writer(fh)
        w.writerow(["N", "dim", "beta", "F_per_particle", "error", "method", "samples"])
        for n, dim, beta, f, e, method, samples in rows:
            w.writerow([n, dim, f"{beta:g}", f"{f:.8f}", f"{e:.8f}", method, samples])
    print(f"wrote {args.out}  (wall {wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
