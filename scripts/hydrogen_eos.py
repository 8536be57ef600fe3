"""Dense-hydrogen equation of state: scan rs or T, write a CSV table and a plot of E and P.

Each point is trained with ``qvfe run`` from a base spec (default: the small periodic one) with the
scanned key set, and evaluated; the table has F, E (Ha/atom), S (k_B/atom) and P (GPa) with their
standard errors, and the plot (``qvfe compare``'s) puts the CEIMC rows at the same T or rs beside.

    .venv/bin/python scripts/hydrogen_eos.py --rs 1.2 1.25 1.3 --T 6000 --out runs/eos_T6000
    .venv/bin/python scripts/hydrogen_eos.py --rs 1.25 --T 4000 6000 8000 \\
        --spec systems/hydrogen_rs1.25_T6000_n16.toml --set optim.steps=500
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import argparse  # noqa: E402
import csv  # noqa: E402
import itertools  # noqa: E402
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("T_K", "rs_bohr", "N_protons", "F_Ha_per_atom", "F_err_Ha_per_atom",
           "E_Ha_per_atom", "E_err_Ha_per_atom", "S_kB_per_atom", "S_err_kB_per_atom", "P_GPa",
           "P_err_GPa", "steps", "wall_s", "run_dir")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rs", type=float, nargs="+", required=True, help="bohr per proton")
    ap.add_argument("--T", type=float, nargs="+", required=True, help="kelvin")
    ap.add_argument("--spec", default=str(ROOT / "systems/hydrogen_small_n4_rs2_T20000.toml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE")
    ap.add_argument("--out", default="runs/hydrogen_eos")
    args = ap.parse_args()

    import qvfe
    from qvfe import compare
    from qvfe.benchmark import train_with_command
    from qvfe.physics.units import pressure_to_gpa
    from qvfe.spec import SpecError, load_spec, parse_override

    points, where = {}, ""
    try:  # every point's spec is checked before the first one trains
        overrides = [parse_override(o) for o in args.overrides]
        base = tomllib.loads(load_spec(args.spec, overrides=dict(overrides)).to_toml())
        if base["system"]["kind"] != "hydrogen" or base["system"]["boundary"] != "periodic":
            raise SpecError(f"--spec {args.spec}: must be a periodic hydrogen spec (got "
                            f"system.kind = {base['system']['kind']!r})")
        for rs, t in itertools.product(args.rs, args.T):
            where = f"--rs {rs:g} --T {t:g}: "
            raw = {k: dict(v) for k, v in base.items()}
            raw["system"].update(rs=rs, T_kelvin=t)
            load_spec(raw)
            points[rs, t] = raw
    except SpecError as e:
        ap.error(f"{where}{e}")
    rows, dirs = [], []
    for (rs, t), raw in points.items():
        out = Path(args.out) / f"rs{rs:g}_T{t:g}"
        train_with_command(raw, str(out))
        res = qvfe.Result.from_json(out / "result.json")
        o = res.observables
        rows.append({"T_K": t, "rs_bohr": rs, "N_protons": raw["system"]["n_protons"],
                     "F_Ha_per_atom": o["F"].mean, "F_err_Ha_per_atom": o["F"].error,
                     "E_Ha_per_atom": o["E"].mean, "E_err_Ha_per_atom": o["E"].error,
                     "S_kB_per_atom": o["S"].mean, "S_err_kB_per_atom": o["S"].error,
                     "P_GPa": pressure_to_gpa(o["P"].mean),
                     "P_err_GPa": pressure_to_gpa(o["P"].error),
                     # the run's own time (a finished point rerun only reads it back)
                     "steps": res.steps, "wall_s": round(res.wall_time_s, 1),
                     "run_dir": str(out)})
        dirs.append(out)
    table = Path(args.out) / "eos.csv"
    with table.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    png = compare.plot(dirs, Path(args.out) / "eos.png")
    print(compare.format_table(compare.compare_runs(dirs)))
    print(f"\nwrote {table} (energies Ha/atom, S k_B/atom, P GPa) and {png}")


if __name__ == "__main__":
    main()
