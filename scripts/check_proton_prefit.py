"""How close does a hydrogen spec's proton flow come to the Boltzmann density it is pre-fitted to?

Dense hydrogen's joint training moves q(S) only by the score-function gradient, which the
electrons' local-energy noise swamps, so the protons stay close to where the pre-fit put them
(README, dense hydrogen): what the flow cannot represent of the screened protons' liquid it
carries into the joint F and E. This fits the spec's proton flow to the pre-fit's target
e^{−E(S)/kT} (``qvfe.problems.hydrogen.prefit_energy``: Thomas–Fermi or Lindhard screened pairs)
exactly as a run does, then prints per atom (Ha/atom):

- F_q = E_q[E + kT ln q] and E_q[E] over the flow's exact samples (F_q is a variational upper
  bound on the screened protons' F, over labelled protons);
- the importance-sampling estimate F_IS = −kT ln E_q[e^{−E/kT}/q] with its effective sample
  size (F_q − F_IS estimates kT·KL(q‖p); where the size is a few samples F_IS lies above the
  exact F);
- E by Metropolis of the same screened protons (``qvfe.sampling.classical_mcmc``, chains started
  from the flow's samples), the exact E of the model within its error bar.

    python scripts/check_proton_prefit.py systems/hydrogen_rs1.25_T6000_n16.toml
    python scripts/check_proton_prefit.py systems/hydrogen_rs1.25_T6000_n16.toml \\
        --set model.proton_cell_step=false
"""

from __future__ import annotations

import argparse
import os
import time

THIN = 10  # Metropolis moves per recorded energy

# the qvfe command's CPU settings (qvfe.cli): batched LAPACK calls can otherwise deadlock
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="a periodic hydrogen spec with a proton pre-fit")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="section.key=value, as for qvfe run")
    ap.add_argument("--samples", type=int, default=20000,
                    help="flow samples for F_q and F_IS (in draws of 1000)")
    ap.add_argument("--chains", type=int, default=64, help="Metropolis chains")
    ap.add_argument("--moves", type=int, default=20000,
                    help="Metropolis moves of all protons per chain; the first fifth is burn-in "
                         f"(the width adapting), then every {THIN}th is recorded")
    ap.add_argument("--step", type=float, default=0.05,
                    help="starting Metropolis move width per coordinate (bohr)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    import qvfe
    from qvfe.flows.particles import fit_to_boltzmann
    from qvfe.physics import units
    from qvfe.problems import hydrogen
    from qvfe.sampling import classical_mcmc
    from qvfe.stats import log_mean_exp_estimate, mean_and_error

    jax.config.update("jax_enable_x64", True)
    spec = qvfe.load_spec(args.spec, overrides=args.overrides)
    s, m = spec.system, spec.model
    if s.kind != "hydrogen" or s.boundary != "periodic" or not m.proton_prefit_steps:
        raise SystemExit(f"{args.spec}: needs system.kind = 'hydrogen', periodic, with "
                         "model.proton_prefit_steps > 0")
    n, kT = s.n_protons, units.kelvin_to_hartree(s.T_kelvin)
    energy = hydrogen.prefit_energy(spec)
    q = hydrogen.proton_density(spec)
    key_fit, key_samples, key_walk = jax.random.split(jax.random.PRNGKey(args.seed), 3)

    start = time.perf_counter()
    params = jax.jit(lambda p, k: fit_to_boltzmann(
        q, p, lambda x: energy(x) / kT, k, m.proton_prefit_steps, hydrogen.PREFIT_BATCH,
        lr=m.proton_prefit_lr, gradient="pathwise"))(q.init(key_fit), key_fit)
    jax.block_until_ready(params)
    fit_s = time.perf_counter() - start

    @jax.jit
    def draw(k):
        x = q.sample(params, k, 1000)
        return x, jax.vmap(energy)(x), q.log_prob(params, x)

    chunks = [draw(k) for k in jax.random.split(key_samples, max(1, args.samples // 1000))]
    x = jnp.concatenate([c[0] for c in chunks])
    e = np.concatenate([np.asarray(c[1]) for c in chunks])
    log_q = np.concatenate([np.asarray(c[2]) for c in chunks])
    f = e / kT + log_q  # βE + ln q per configuration
    log_z, _, ess = log_mean_exp_estimate(-f)

    start = time.perf_counter()
    state = classical_mcmc.init(key_walk, x[:args.chains], energy, args.step)
    state = jax.jit(lambda st: classical_mcmc.burn_in(st, energy, 1.0 / kT, args.moves // 5))(
        state)
    state, e_walk = jax.jit(lambda st: classical_mcmc.run(
        st, energy, 1.0 / kT, (args.moves - args.moves // 5) // THIN, THIN,
        observable=energy))(state)
    e_walk = np.asarray(e_walk).T  # (chains, records)
    accepted = classical_mcmc.acceptance(state)
    walk_s = time.perf_counter() - start
    e_mc = mean_and_error(e_walk / n)  # the chains' means: independent walkers

    print(f"{args.spec}: n = {n}, T = {s.T_kelvin} K, proton_flow = {m.proton_flow!r}, "
          f"screening = {m.proton_prefit_screening!r}; fit {m.proton_prefit_steps} steps "
          f"in {fit_s:.0f} s")
    print(f"  F_q  = {f.mean() * kT / n:.5f} ± {f.std() * kT / n / np.sqrt(f.size):.5f} "
          f"Ha/atom   (variational, {f.size} samples)")
    print(f"  F_IS = {-log_z * kT / n:.5f} Ha/atom   (importance sampling; effective "
          f"sample size {ess:.0f} of {f.size})")
    print(f"  E_q  = {e.mean() / n:.5f} ± {e.std() / n / np.sqrt(e.size):.5f} Ha/atom")
    print(f"  E_MC = {e_mc.mean:.5f} ± {e_mc.error:.5f} Ha/atom   (Metropolis: "
          f"{args.chains} chains x "
          f"{e_walk.shape[1]} records, acceptance {float(accepted):.2f}, "
          f"{walk_s:.0f} s)")


if __name__ == "__main__":
    main()
