"""Clamped periodic hydrogen's best single determinant: the screened bands' determinant and
Hartree–Fock in growing plane-wave tables, and the Hartree–Fock limit.

For a spec with clamped protons (``system.proton_lattice`` or ``proton_positions``), for each
``model.band_cutoff`` given, the plane waves of the bands' expansion (``qvfe.problems.hydrogen.
band_plane_waves``), the energy per atom of the RPA-screened bands' ground determinant (what
the spec with no flow layers reaches) and of the Hartree–Fock ground state in the same plane
waves (``qvfe.physics.periodic_hf``), all Coulomb terms included; then the Hartree–Fock limit,
E(K) = E_∞ + a/K through the two largest tables (K ∝ k_max³: the cusps' plane-wave tail).
With ``--tail-cutoffs``, the determinant of the spec's own bands (its ``model.band_cutoff``
diagonalised) with first-order tails up to each ``model.band_tail_cutoff`` given
(``qvfe.physics.bands``).
A run directory of free protons instead takes the proton configurations of chosen walkers of
its newest checkpoint (the liquid's S). README, dense hydrogen, "The best determinant":

    python scripts/hydrogen_hartree_fock.py systems/hydrogen_rs1.25_bcc_n16_static.toml \\
        --set 'system.twist=[0.25,0.25,0.25]' --cutoffs 2 3 4 --tail-cutoffs 3 4 6
    python scripts/hydrogen_hartree_fock.py RUNDIR --walkers 0 1 2 3 --cutoffs 2 3 4

Energies in Hartree per atom. A table of K plane waves costs about N K² Q operations per
Fock matrix (Q ≈ 8K differences) and K Q N complex numbers of memory: seconds at K = 250, a
minute at 600.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def series(spec, cutoffs: list[float], tail_cutoffs: list[float] = ()) -> None:
    """Print the table of one clamped spec (module docstring)."""
    import numpy as np

    from qvfe.problems import hydrogen
    from qvfe.spec import hydrogen_electron_counts

    s = spec.system
    n_p = s.n_protons
    n_up, n_down = hydrogen_electron_counts(s)
    L, twist, k_vectors, _ = hydrogen.orbital_table(spec)
    protons = np.mod(hydrogen.clamped_positions(spec, L), L)
    print(f"{n_p} protons, rs = {s.rs} bohr, twist {twist.tolist()}, {n_up} + {n_down} "
          "electrons; energies in Ha/atom, every Coulomb term included")
    print(f"{'cutoff':>6} {'plane waves':>11} {'E bands det':>12} {'E_HF':>12} {'difference':>11}")
    table = []
    for cutoff in sorted(cutoffs):
        bands = hydrogen.screened_bands(spec.replace(**{"model.band_cutoff": cutoff}), L,
                                        k_vectors, twist)
        k = bands.n_plane_waves
        ref = hydrogen.band_references(bands, protons, n_up, n_down, s.coupling,
                                       max_plane_waves=k, max_iterations=500)
        e_det, e_hf = ref["E_bands_determinant"], ref.get("E_HF", float("nan"))
        table.append((k, e_det, e_hf))
        print(f"{cutoff:6.2f} {k:11d} {e_det:12.6f} {e_hf:12.6f} {e_det - e_hf:11.2e}",
              flush=True)
    for column, name in ((2, "Hartree–Fock"), (1, "bands' determinant")):
        if len(table) >= 2 and all(np.isfinite(row[column]) for row in table[-2:]):
            (k1, e1), (k2, e2) = [(row[0], row[column]) for row in table[-2:]]
            slope = (e2 - e1) / (1 / k2 - 1 / k1)
            print(f"{name} limit (E_∞ + a/K through K = {k1}, {k2}): "
                  f"{e2 - slope / k2:.4f} Ha/atom")
    for tail_cutoff in sorted(tail_cutoffs):
        bands = hydrogen.screened_bands(spec.replace(**{"model.band_tail_cutoff": tail_cutoff}),
                                        L, k_vectors, twist)
        e_det = hydrogen.band_references(bands, protons, n_up, n_down, s.coupling,
                                         max_plane_waves=0)["E_bands_determinant"]
        print(f"tails to {tail_cutoff:g}: {bands.n_exact} diagonalised + "
              f"{bands.n_plane_waves - bands.n_exact} tail plane waves, E bands det "
              f"{e_det:.6f} Ha/atom", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path,
                    help="a periodic hydrogen spec with clamped protons, or a run directory "
                         "of free protons (then --walkers)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="spec override, as for qvfe run")
    ap.add_argument("--cutoffs", type=float, nargs="+", default=[2.0, 3.0, 4.0],
                    help="band cutoffs (model.band_cutoff, 1 to 4): multiples of the orbital "
                         "table's largest |k|")
    ap.add_argument("--tail-cutoffs", type=float, nargs="*", default=[],
                    help="band tail cutoffs (model.band_tail_cutoff, above the spec's "
                         "band_cutoff, at most 8): the determinant with the bands' tails")
    ap.add_argument("--walkers", type=int, nargs="+", default=[0],
                    help="run directory: the walkers of its newest checkpoint whose protons "
                         "are taken")
    args = ap.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    from qvfe.problems import hydrogen
    from qvfe.spec import SpecError, load_spec

    if args.source.is_dir():
        spec = load_spec(args.source / "spec.toml", overrides=args.overrides)
        if spec.kind != "hydrogen" or spec.system.boundary != "periodic" or (
                spec.system.proton_positions or spec.system.proton_lattice):
            raise SystemExit(f"{args.source}: needs a periodic hydrogen run with free protons")
        try:
            step, _, clamped = hydrogen.clamp_at_walkers(args.source, spec, args.walkers)
        except ValueError as e:
            raise SystemExit(str(e)) from None
        specs = [(f"{args.source} step {step}, walker {w}", c)
                 for w, c in zip(args.walkers, clamped)]
    else:
        specs = [(str(args.source), load_spec(args.source, overrides=args.overrides))]
    for label, spec in specs:
        s = spec.system
        if spec.kind != "hydrogen" or s.boundary != "periodic" or not (
                s.proton_lattice or s.proton_positions):
            raise SystemExit(f"{label}: needs periodic hydrogen with clamped protons")
        try:  # every table's spec checked before the first is computed
            # the tables are of the screened bands, whatever orbitals the spec's run took
            spec = spec.replace(**{"model.orbitals": "screened_bands"})
            for key, values in (("model.band_cutoff", args.cutoffs),
                                ("model.band_tail_cutoff", args.tail_cutoffs)):
                for value in values:
                    spec.replace(**{key: value})
        except SpecError as e:
            raise SystemExit(f"--cutoffs or --tail-cutoffs: {e}") from None
        print(label)
        try:
            series(spec, args.cutoffs, args.tail_cutoffs)
        except SpecError as e:  # a cutoff outside model.band_cutoff's range, or too many waves
            raise SystemExit(f"--cutoffs or --tail-cutoffs: {e}") from None


if __name__ == "__main__":
    main()
