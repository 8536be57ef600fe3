"""A hydrogen run's electrons at fixed proton configurations: the joint model against the same
model trained at one configuration alone (is anything lost to the conditioning on S?).

For each chosen walker of the run's newest checkpoint, its proton configuration S is clamped
(``system.proton_positions``), the run's electronic parameters (flows, bands, occupations) are
evaluated there, and the clamped spec is written next to the result, to be trained from scratch
with ``qvfe run`` and compared (README, dense hydrogen, "Where the 0.07 Ha/atom is not"):

    python scripts/hydrogen_fixed_protons.py RUNDIR --walkers 0 1 --samples 1024 --out DIR
    qvfe run DIR/clamped_S0.toml --set optim.steps=150 --set eval.samples=1024 --out DIR/S0

Energies per atom in Hartree: the electrons' and every Coulomb term, no proton kinetic energy.
"""

from __future__ import annotations

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a periodic hydrogen run with free protons")
    ap.add_argument("--walkers", type=int, nargs="+", default=[0],
                    help="walkers of the newest checkpoint whose protons are clamped")
    ap.add_argument("--samples", type=int, default=1024, help="evaluation samples per walker")
    ap.add_argument("--out", type=Path, required=True, help="directory for specs and results")
    ap.add_argument("--seed", type=int, default=11, help="seed of the evaluations")
    args = ap.parse_args()

    import jax

    from qvfe.problems import hydrogen
    from qvfe.spec import SpecError
    from qvfe.xla_cpu import use_deadlock_free_linalg

    run = importlib.import_module("qvfe.run")
    try:
        spec = run.run_spec(args.run_dir)
    except SpecError as e:
        raise SystemExit(f"error: {e}") from None
    if spec.kind != "hydrogen" or spec.system.boundary != "periodic" or (
            spec.system.proton_positions or spec.system.proton_lattice):
        raise SystemExit(f"{args.run_dir}: needs a periodic hydrogen run with free protons")
    jax.config.update("jax_enable_x64", spec.run.x64)
    if jax.default_backend() == "cpu":
        use_deadlock_free_linalg()
    try:
        step, state, clamped_specs = hydrogen.clamp_at_walkers(args.run_dir, spec, args.walkers)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.run_dir} at step {step}: E per atom (Ha), electrons and Coulomb terms")
    for w, clamped in zip(args.walkers, clamped_specs):
        (args.out / f"clamped_S{w}.toml").write_text(clamped.to_toml())
        fixed = run.build_problem(clamped)
        fresh = fixed.init(jax.random.PRNGKey(args.seed))
        params = {"theta": state["params"]["theta"],
                  "phi": {**fresh["params"]["phi"], "occ": state["params"]["phi"]["occ"]}}
        prepared = jax.jit(fixed.prepare)({**fresh, "params": params})
        estimates, n = run.evaluate_state(fixed, prepared, jax.random.PRNGKey(args.seed),
                                          args.samples)
        result = {k: e.as_dict() for k, e in estimates.items()}
        (args.out / f"joint_at_S{w}.json").write_text(json.dumps(result, indent=1))
        e = estimates["E"]
        print(f"  walker {w}: E = {e.mean:.5f} ± {e.error:.5f} ({n} samples); "
              f"spec {args.out / f'clamped_S{w}.toml'}")


if __name__ == "__main__":
    main()
