"""Energy of an untrained electron-gas flow whose pair amplitudes all sit at their bound (eta = ±1).

A trained neighbour-mean flow at N = 33, rs = 10 ends with eta near -1 at every separation
(``scripts/check_flow_folds.py`` prints it); this evaluates that limit directly, for any depth,
without training: every layer's last MLP layer gets W = 0 and bias ∓12 (tanh = ∓1 to 1e-10),
the occupations stay at the ideal gas, the walkers are burnt in and the spec's evaluation runs.

    python scripts/saturated_backflow.py systems/electron_gas_3d_n33_rs10_theta0.0625.toml \\
        --set model.backflow_layers=4 --set model.backflow_range=0.5 --samples 1024
"""

from __future__ import annotations

import argparse
import os
import time

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="an electron_gas spec")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--sign", type=float, default=-1.0, choices=(-1.0, 1.0),
                    help="eta = -1 compresses pairs, +1 pushes them apart")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp

    from qvfe.run import _compiled, _result, build_problem, evaluate_state
    from qvfe.spec import load_spec
    from qvfe.xla_cpu import use_deadlock_free_linalg

    use_deadlock_free_linalg()
    spec = load_spec(args.spec, overrides=args.set)
    if spec.kind != "electron_gas" or spec.model.backflow_layers < 1:
        raise SystemExit("an electron_gas spec with model.backflow_layers >= 1 is needed")
    with jax.enable_x64(spec.run.x64):
        t0 = time.perf_counter()
        problem = build_problem(spec)
        init_key, eval_key = jax.random.split(jax.random.PRNGKey(spec.run.seed))
        state = problem.init(init_key)
        for layer in state["params"]["theta"]["backflow"]["layers"]:
            w, b = layer["pair"][-1]
            layer["pair"][-1] = (jnp.zeros_like(w), jnp.full_like(b, 12.0 * args.sign))
        state, _, prepare, _ = _compiled(problem, state)
        state = prepare(state)
        obs, n = evaluate_state(problem, state, eval_key, args.samples)
    print(f"{spec.model.backflow_layers} layers at eta = {args.sign:+g}, range "
          f"{spec.model.backflow_range:g} rs, untrained:")
    print(_result(problem, obs, n, 0, spec.run.seed, time.perf_counter() - t0, None).table())
    hf = problem.info.get("E_HF")
    if isinstance(hf, float):
        print(f"  E - E_HF = {2000 * (obs['E'].mean - hf):+.1f} ± {2000 * obs['E'].error:.1f} mRy "
              "per electron")
    from qvfe import compare
    from qvfe import references as refs

    row = compare.reference_row(refs.load_brown2013(), compare.run_conditions(spec),
                                "RPIMC_fixed_node")
    if row is not None:  # the README's figure for this script
        e_n, err = row["E"], row["E_err"]
        print(f"  E - E_N (Brown et al. RPIMC) = {2000 * (obs['E'].mean - e_n):+.1f} ± "
              f"{2000 * (obs['E'].error**2 + err**2) ** 0.5:.1f} mRy per electron")


if __name__ == "__main__":
    main()
