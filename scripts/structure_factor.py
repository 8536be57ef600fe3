"""Static structure factors of a periodic run's samples at the cell's smallest wave vectors.

For an electron-gas or periodic hydrogen run, draws ``--chunks`` evaluation chunks from the newest
checkpoint (frozen parameters, the evaluation's own chain, sampled without its local energies)
and prints, for each shell of k = 2π m/L with |m|² ≤ ``--shells``, divided by N, the number of
electrons:

* ``ee``: S_ee(k) = <|ρ_k|²>/N of all electrons; ``same`` and ``opp``, its like-spin part
  (<|ρ↑_k|²> + <|ρ↓_k|²>)/N and its opposite-spin part 2 Re<ρ↑_k ρ↓_-k>/N. For a
  determinant the spins are independent, so the latter is 2 Re<ρ↑_k><ρ↓_-k>/N at each proton
  configuration: zero in the gas, positive in hydrogen, where both spins follow the protons;
  the Coulomb hole between the spins lowers it;
* hydrogen: ``pp`` of the protons and ``zz`` of the charge, <|ρ^p_k − ρ^e_k|²>/N.

Beside them: the plasmon form k²/(2ω_p) that the exact charge structure factor of a 3D Coulomb
system takes as k → 0 (ω_p² = 4πn; the leading-order finite-size estimates assume it), and the
unpolarised jellium's Hartree–Fock S_ee (3D). Errors are the spread of the chunk means.

    python scripts/structure_factor.py RUNDIR --chunks 32
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

# the qvfe command's CPU settings (qvfe.cli): batched LAPACK calls can otherwise deadlock
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false").strip()


def jellium_hf_structure_factor(q: float) -> float:
    """S(k) of the unpolarised 3D gas's Hartree–Fock determinant at q = k/k_F."""
    return 0.75 * q - q**3 / 16.0 if q < 2.0 else 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rundir")
    ap.add_argument("--chunks", type=int, default=32, help="evaluation chunks (batches) drawn")
    ap.add_argument("--shells", type=int, default=4, help="largest |m|² of k = 2π m/L")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    if args.chunks < 2:
        ap.error(f"--chunks = {args.chunks}: must be >= 2 (the errors need two chunk means)")
    if not 1 <= args.shells <= 12:
        ap.error(f"--shells = {args.shells}: must be in [1, 12]")
    if not (Path(args.rundir) / "spec.toml").is_file():
        ap.error(f"{args.rundir}: not a run directory (no spec.toml)")

    import jax
    import numpy as np

    from qvfe.physics import heg
    from qvfe.problems import hydrogen
    from qvfe.run import build_problem, newest_state, run_spec
    from qvfe.spec import hydrogen_electron_counts
    from qvfe.xla_cpu import use_deadlock_free_linalg

    use_deadlock_free_linalg()
    run = Path(args.rundir)
    spec = run_spec(run)
    s = spec.system
    if spec.kind == "electron_gas":
        n_up, n_down, dim = s.n_up, s.n_down, s.dim
        length = heg.box_length(s.rs, n_up + n_down, dim)
    elif spec.kind == "hydrogen" and s.boundary == "periodic":
        (n_up, n_down), dim = hydrogen_electron_counts(s), 3
        length = hydrogen.box_length(s.rs, s.n_protons)
    else:
        raise SystemExit(f"{run}: a periodic electron_gas or hydrogen run is needed")
    n = n_up + n_down
    with jax.enable_x64(True):
        problem = build_problem(spec)
        step, state = newest_state(run, problem)
        state = jax.device_put(state, problem.state_sharding(state))
        grid = np.arange(-4, 5)
        m = np.stack(np.meshgrid(*[grid] * dim, indexing="ij"), -1).reshape(-1, dim)
        m2 = (m * m).sum(1)
        keep = (m2 > 0) & (m2 <= args.shells)
        m, m2 = m[keep], m2[keep]
        k = 2.0 * np.pi * m / length
        clamped = spec.kind == "hydrogen" and (s.proton_lattice or s.proton_positions)
        fixed = np.mod(hydrogen.clamped_positions(spec, length), length) if clamped else None
        parts = ("ee", "same", "opp") + (("pp", "zz") if spec.kind == "hydrogen" else ())
        sums = {p: [] for p in parts}
        for i in range(args.chunks):
            state = problem.sample_chunk(state, jax.random.fold_in(jax.random.PRNGKey(args.seed),
                                                                  i))
            x = np.asarray(state["mc"].walkers).reshape(-1, n, dim)  # up electrons first

            def rho(pos):
                return np.exp(1j * pos @ k.T).sum(-2)  # (walkers, wave vectors)

            up, down = rho(x[:, :n_up]), rho(x[:, n_up:])
            found = {"ee": abs(up + down) ** 2, "same": abs(up) ** 2 + abs(down) ** 2,
                     "opp": 2.0 * np.real(up * np.conj(down))}
            if spec.kind == "hydrogen":
                rp = rho(fixed[None] if clamped
                         else np.asarray(state["occ"][2]).reshape(-1, s.n_protons, 3))
                found.update(pp=abs(rp) ** 2 * np.ones_like(found["ee"]),
                             zz=abs(rp - up - down) ** 2)
            for name in parts:
                sums[name].append(found[name].mean(0) / n)  # walker means per wave vector
    omega_p = math.sqrt(4.0 * math.pi * n / length**dim) if dim == 3 else float("nan")
    k_fermi = heg.fermi_wavevector(s.rs, 3, polarized=False) if dim == 3 else float("nan")
    print(f"{run}: step {step}, {n} electrons, L = {length:.4f} bohr, {args.chunks} chunks; "
          f"ω_p = {omega_p:.4f} Ha, k_F (unpolarised) = {k_fermi:.4f} /bohr")
    print(f"{'|m|²':>4} {'k (1/bohr)':>10} {'plasmon':>8} {'HF jellium':>10} "
          + " ".join(f"{p:>16}" for p in parts))
    for shell in sorted(set(m2.tolist())):
        kk = 2.0 * np.pi * math.sqrt(shell) / length
        cells = []
        for name in parts:
            per_chunk = np.stack(sums[name])[:, m2 == shell].mean(1)
            err = per_chunk.std(ddof=1) / math.sqrt(len(per_chunk))
            cells.append(f"{per_chunk.mean():>8.4f} ± {err:<5.4f}")
        hf = jellium_hf_structure_factor(kk / k_fermi) if dim == 3 else float("nan")
        print(f"{shell:>4} {kk:>10.4f} {kk * kk / (2 * omega_p):>8.4f} {hf:>10.4f} "
              + " ".join(cells))


if __name__ == "__main__":
    from qvfe.spec import SpecError

    try:
        main()
    except SpecError as e:  # not a run directory, or one without a checkpoint yet
        raise SystemExit(f"error: {e}") from None
