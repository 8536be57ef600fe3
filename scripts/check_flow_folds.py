"""Where does a periodic run's √flow fold, and how close are its backflow layers to their bound?

With ``model.backflow_strength`` > 1 the backflow is a bijection of the torus only where
det dZ/dX > 0 (see qvfe/flows/backflow.py). This loads an electron-gas or periodic hydrogen run's
newest checkpoint (the whole √flow, ``SquareRootFlowWavefunction.flow_det_sign``) and prints the
fraction of configurations with det <= 0: at the checkpoint's walkers (what the estimates see), and
on clusters of all electrons drawn from a Gaussian of the given widths (in units of rs), which
probe configurations the walkers never reach but the normalisation of the density matrix counts.

It also prints each layer's learned pair amplitude eta (the MLP output, |eta| <= 1, which the
layer's bound scales; per-axis amplitudes also averaged over the axes) averaged over pair
separations in shells of rs: where |eta| is near 1 at every separation the layer is saturated,
and only more layers (or a weaker guarantee) can move the electrons further.

    python scripts/check_flow_folds.py runs/bench_electron_gas/n33_rs10_s60 --probes 500
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

# the qvfe command's CPU settings (qvfe.cli): batched LAPACK calls can otherwise deadlock
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rundir")
    ap.add_argument("--probes", type=int, default=500, help="cluster configurations per width")
    ap.add_argument("--widths", type=float, nargs="+", default=[0.1, 0.3, 1.0],
                    help="cluster widths in units of rs")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp

    from qvfe.run import build_problem, newest_state, run_spec
    from qvfe.xla_cpu import use_deadlock_free_linalg

    use_deadlock_free_linalg()
    run = Path(args.rundir)
    spec = run_spec(run)
    if spec.kind not in ("electron_gas", "hydrogen") or getattr(
            spec.system, "boundary", "periodic") != "periodic":
        raise SystemExit(f"{run}: a periodic electron_gas or hydrogen run is needed, got "
                         f"{spec.kind}")
    with jax.enable_x64(True):
        problem = build_problem(spec)
        step, state = newest_state(run, problem)
        dm = problem.model
        wf, theta = dm.wavefunction, state["params"]["theta"]
        flow, params = wf.backflow, theta["backflow"]
        n, d, rs = flow.n_particles, flow.dim, spec.system.rs
        walkers = state["mc"].walkers.reshape(-1, n, d)
        # each walker's base state (its momentum sector) and context (hydrogen's protons); the
        # clusters take the walkers' in turn
        idx = dm.indices(state["occ"])

        @jax.jit
        def sign(xs):
            take = jnp.arange(xs.shape[0]) % walkers.shape[0]
            return jax.vmap(lambda x, *i: wf.flow_det_sign(theta, x, *i))(
                xs, *(i[take] for i in idx))

        folded = int(jnp.sum(sign(walkers) <= 0))
        print(f"{run} (step {step}, backflow strength {flow.strength:g}): det dZ/dX <= 0 at "
              f"{folded} of {walkers.shape[0]} walkers")
        key = jax.random.PRNGKey(args.seed)
        for width in args.widths:
            chunks = []
            for start in range(0, args.probes, 100):  # chunks keep the Jacobians' memory small
                k = jax.random.fold_in(jax.random.fold_in(key, int(1000 * width)), start)
                m = min(100, args.probes - start)
                chunks.append(sign(width * rs * jax.random.normal(k, (m, n, d))) <= 0)
            frac = float(jnp.mean(jnp.concatenate(chunks)))
            print(f"  clusters of width {width:g} rs: det <= 0 in {100 * frac:.1f} % "
                  f"of {args.probes}")
        if flow.environment:
            inputs = jax.jit(jax.vmap(lambda x, *i: wf.backflow_input(theta, x, *i[2:])))(
                walkers[:64], *(i[:64] for i in idx))
            print_environment_amplitudes(params, flow, rs, inputs)
        else:
            print_amplitudes(params, flow, rs, jax.random.fold_in(key, 7))


_EDGES = (0.0, 0.5, 1.0, 2.0, 3.0, float("inf"))  # shells of the pair separation, in rs


def _shell_means(eta, r) -> list[float]:
    """Means of eta over the pairs in each shell of r (per-axis amplitudes: over the axes too)."""
    import numpy as np

    eta = np.asarray(eta)
    if eta.ndim > np.ndim(r):
        eta = eta.mean(axis=-1)
    return [eta[(r >= a) & (r < b)].mean() if np.any((r >= a) & (r < b)) else np.nan
            for a, b in zip(_EDGES[:-1], _EDGES[1:])]


def _shell_header(kind: str) -> str:
    return (f"  pair amplitude eta ({kind} layers; |eta| <= 1) by separation in rs: "
            + ", ".join(f"[{a:g}, {b:g})" for a, b in zip(_EDGES[:-1], _EDGES[1:])))


def print_environment_amplitudes(params, flow, rs: float, walkers) -> None:
    """The same for environment layers, whose eta also depends on the moved electron's
    environment: evaluated at the pairs of the given walkers (the backflow's input; each layer at
    the previous layers' output)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    L, n = flow.box_length, flow.n_particles
    print(_shell_header("environment") + f"; at the pairs of {walkers.shape[0]} walkers")
    spin = np.array([1.0] * flow.n_up + [0.0] * flow.n_down)
    same = (spin[:, None] == spin[None, :]).astype(float)
    off = ~np.eye(n, dtype=bool)
    for i, layer in enumerate(params["layers"]):
        xs = jax.vmap(lambda x: flow.forward({"layers": params["layers"][:i]}, x))(walkers)

        def etas(x, layer=layer):
            delta = x[:, None, :] - x[None, :, :]
            h = jnp.broadcast_to(flow.environment_of(layer, x)[:, None], (n, n, flow.environment))
            eta = jax.vmap(jax.vmap(lambda dl, hi, s: flow.periodic_eta(layer["pair"], dl,
                                                                        (s, None), hi)))
            return eta(delta, h, jnp.asarray(same, x.dtype)), delta

        eta, delta = jax.jit(jax.vmap(etas))(xs)
        delta = np.asarray(delta) - L * np.round(np.asarray(delta) / L)  # minimum image
        r = np.linalg.norm(delta, axis=-1) / rs
        kinds = [(1.0, "")] if not (flow.n_up and flow.n_down) else [
            (1.0, " same spin"), (0.0, " opposite spin")]
        for value, label in kinds:
            pairs = off & (same == value)
            means = _shell_means(np.asarray(eta)[:, pairs], r[:, pairs])
            print(f"    layer {i}{label}: " + "  ".join(f"{m:+.3f}" for m in means))


def print_amplitudes(params, flow, rs: float, key) -> None:
    """Mean pair amplitude eta of each layer in shells of the pair separation (minimum image)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    L, d = flow.box_length, flow.dim
    delta = jax.random.uniform(key, (20000, d), minval=-L / 2, maxval=L / 2)
    r = np.asarray(jnp.linalg.norm(delta, axis=1)) / rs
    kind = "neighbour-mean" if flow.neighbour_range is not None else "pair-sum"
    print(_shell_header(kind))
    spins = (1.0, 0.0) if flow.n_up and flow.n_down else (1.0,)
    for i, layer in enumerate(params["layers"]):
        if "pair" not in layer:  # the exact-cusp layer has no learned amplitude
            continue
        # integer sectors: sector 0; momentum labels (sector_weight): K = 0, no bias
        bias = layer["sector_bias"][0] if "sector_bias" in layer else None
        for same in spins:
            aux = (jnp.asarray(same, delta.dtype), bias)
            eta = np.asarray(jax.vmap(lambda x: flow.periodic_eta(layer["pair"], x, aux))(delta))
            means = _shell_means(eta, r)
            label = "" if len(spins) == 1 else (" same spin" if same else " opposite spin")
            print(f"    layer {i}{label}: " + "  ".join(f"{m:+.3f}" for m in means))


if __name__ == "__main__":
    from qvfe.spec import SpecError

    try:
        main()
    except SpecError as e:  # not a run directory, or one without a checkpoint yet
        raise SystemExit(f"error: {e}") from None
