"""Clamped periodic hydrogen's best single determinant: the screened bands' determinant and
Hartree–Fock in growing plane-wave tables, and the Hartree–Fock limit.

For a spec with clamped protons (``system.proton_lattice`` or ``proton_positions``), for each
``model.band_cutoff`` given, the plane waves of the bands' expansion (``qvfe.problems.hydrogen.
band_plane_waves``), the energy per atom of the RPA-screened bands' ground determinant (what
the spec with no flow layers reaches) and of the Hartree–Fock ground state in the same plane
waves (``qvfe.physics.periodic_hf``), all Coulomb terms included; then the Hartree–Fock limit,
E(K) = E_∞ + a/K through the two largest tables (K ∝ k_max³: the cusps' plane-wave tail).
README, dense hydrogen, "The best determinant":

    python scripts/hydrogen_hartree_fock.py systems/hydrogen_rs1.25_bcc_n16_static.toml \\
        --set 'system.twist=[0.25,0.25,0.25]' --cutoffs 2 3 4

Energies in Hartree per atom. A table of K plane waves costs about N K² Q operations per
Fock matrix (Q ≈ 8K differences) and K Q N complex numbers of memory: seconds at K = 250, a
minute at 600.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", help="a periodic hydrogen spec with clamped protons")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="spec override, as for qvfe run")
    ap.add_argument("--cutoffs", type=float, nargs="+", default=[2.0, 3.0, 4.0],
                    help="band cutoffs: multiples of the orbital table's largest |k|")
    args = ap.parse_args()

    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from qvfe.physics import units
    from qvfe.physics.bands import ScreenedBands
    from qvfe.physics.orbitals import plane_wave_orbitals
    from qvfe.problems import hydrogen
    from qvfe.spec import hydrogen_electron_counts, load_spec

    spec = load_spec(args.spec, overrides=args.overrides)
    s, m = spec.system, spec.model
    if spec.kind != "hydrogen" or s.boundary != "periodic" or not (
            s.proton_lattice or s.proton_positions):
        raise SystemExit(f"{args.spec}: needs periodic hydrogen with clamped protons")
    bad = [c for c in args.cutoffs if not c >= 1.0]
    if bad:
        raise SystemExit(f"--cutoffs must be >= 1 (the orbital table itself), got {bad}")
    n_p = s.n_protons
    n_up, n_down = hydrogen_electron_counts(s)
    L = hydrogen.box_length(s.rs, n_p)
    twist = np.asarray(s.twist, dtype=np.float64) if s.twist else np.zeros(3)
    n_orb = s.n_orbitals or hydrogen.auto_orbital_count(
        3, L, max(n_up, n_down), units.kelvin_to_hartree(s.T_kelvin), twist)
    k_vectors, _ = plane_wave_orbitals(3, L, n_orb, twist)
    protons = (hydrogen.lattice_positions(s.proton_lattice, n_p, L) if s.proton_lattice else
               np.mod(np.reshape(s.proton_positions, (n_p, 3)), L))
    print(f"{n_p} protons, rs = {s.rs} bohr, twist {twist.tolist()}, {n_up} + {n_down} "
          "electrons; energies in Ha/atom, every Coulomb term included")
    print(f"{'cutoff':>6} {'plane waves':>11} {'E bands det':>12} {'E_HF':>12} {'difference':>11}")
    table = []
    for cutoff in sorted(args.cutoffs):
        waves = hydrogen.band_plane_waves(L, k_vectors, cutoff, twist)
        bands = ScreenedBands(waves, L, s.rs, min(n_orb, len(waves)),
                              charge=s.coupling * m.band_potential_scale)
        ref = hydrogen.band_references(bands, protons, n_up, n_down, s.coupling,
                                       max_plane_waves=len(waves))
        e_hf = ref.get("E_HF", float("nan"))
        table.append((len(waves), e_hf))
        print(f"{cutoff:6.2f} {len(waves):11d} {ref['E_bands_determinant']:12.6f} {e_hf:12.6f} "
              f"{ref['E_bands_determinant'] - e_hf:11.2e}")
    if len(table) >= 2 and all(np.isfinite(e) for _, e in table[-2:]):
        (k1, e1), (k2, e2) = table[-2:]
        slope = (e2 - e1) / (1 / k2 - 1 / k1)
        print(f"Hartree–Fock limit (E_∞ + a/K through K = {k1}, {k2}): "
              f"{e2 - slope / k2:.4f} Ha/atom")


if __name__ == "__main__":
    main()
