"""Exact F, E, S of a few-electron gas run (2 electrons, or 3+ of one spin in 3D), beside its
estimates.

Runs with N = 2 carry the exact values in their result already (``reference``); three or more
same-spin electrons need the full configuration interaction of ``qvfe.physics.heg_fci``, a minute
or more, so it is computed here rather than when a run starts. Takes run directories (or spec
files, which have no estimates to compare), prints per electron in Hartree the exact values, the
cutoff's truncation estimate and, for runs, estimate − exact in mHa and in units of the error.

    python scripts/few_electron_reference.py /tmp/runs/n3_twist --m-cut 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="+", help="run directories or spec files (electron_gas)")
    ap.add_argument("--m-cut", type=float, default=4.0,
                    help="one-body sphere |m + twist| <= m_cut (units of 2π/L), default 4")
    args = ap.parse_args()

    import numpy as np

    from qvfe.physics import heg, heg_exact, heg_fci
    from qvfe.spec import load_spec

    for path in map(Path, args.paths):
        spec = load_spec(path / "spec.toml" if path.is_dir() else path)
        s = spec.system
        if spec.kind != "electron_gas":
            raise SystemExit(f"{path}: an electron_gas spec is needed, got {spec.kind}")
        n = s.n_up + s.n_down
        L = heg.box_length(s.rs, n, s.dim)
        T = heg.gas_temperature(s.theta, s.rs, s.n_up, s.n_down, s.dim, s.theta_reference)
        twist = np.asarray(s.twist, dtype=np.float64) if len(s.twist) else np.zeros(s.dim)
        if n == 2:
            ex = heg_exact.two_electron_thermo(L, s.dim, polarized=s.n_down == 0 or s.n_up == 0,
                                               temperature=T, twist=twist, coupling=s.coupling)
        elif min(s.n_up, s.n_down) == 0 and s.dim == 3:
            ex = heg_fci.few_electron_thermo(n, L, temperature=T, twist=twist,
                                             coupling=s.coupling, m_cut=args.m_cut)
        else:
            raise SystemExit(f"{path}: exact references exist for 2 electrons, or 3+ of one spin "
                             f"in 3D; got {s.n_up} up + {s.n_down} down in {s.dim}D")
        print(f"{path}: N = {n}, rs = {s.rs}, theta = {s.theta}, "
              f"twist = {[float(t) for t in twist]}, T = {T:.6g} Ha; "
              f"truncation of F {ex.truncation:.1e} Ha/e")
        result = path / "result.json" if path.is_dir() else None
        obs = json.loads(result.read_text())["observables"] if result and result.exists() else {}
        for key in ("F", "E", "S"):
            exact = getattr(ex, key)
            line = f"  {key} exact = {exact:+.7f} {'k_B' if key == 'S' else 'Ha'}/electron"
            if key in obs:
                mean, err = obs[key]["mean"], obs[key]["error"]
                diff = mean - exact
                scale = 1.0 if key == "S" else 1e3
                unit = "k_B" if key == "S" else "mHa"
                line += (f"   qvfe {mean:+.7f} ± {err:.7f}   qvfe − exact {diff * scale:+.4f} "
                         f"{unit} ({diff / err:+.1f} σ)")
            print(line)


if __name__ == "__main__":
    main()
