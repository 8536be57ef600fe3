"""Compare finished runs with published reference tables: a text table and a plot.

One job: read run directories (``spec.toml`` + ``result.json``), find the reference rows at the same
conditions, and report the differences in units of the combined standard error. For the electron
gas the reference is Brown et al. (2013) RPIMC at matching (rs, Θ, ξ, N) — Θ converted to the T_F
of the gas's own polarisation, Brown's convention, whatever ``system.theta_reference`` the run
used — compared on E per electron, with Δ/σ. K and V are listed beside their K_N and V_N with the
difference but no Δ/σ: in that table E_N ≠ K_N + V_N, by an amount that depends on rs, Θ and ξ
(ξ = 1: 17 mRy at rs = 4, 1.3 mRy at rs = 10, a hundred times E_N's error there), so only E_N
is a reference to test against. Only interacting runs (coupling λ = 1) match a row.
F has no finite-N reference in that table; the plot
shows the thermodynamic-limit F = F_ideal + f_xc(GDSMFB) as a line for orientation, labelled so.

Energies are in Hartree per electron in the table, with Rydberg (Brown's unit) alongside.

For hydrogen the reference is the CEIMC table (Pierleoni et al. 2016 and others, no error bars) at
matching (T in K, rs): E and F in Ha per atom, S in k_B per atom and P in GPa; Δ/σ then uses the
run's error alone. Isolated runs (clamped protons in open space) are compared on E per atom with
the exact energies of ``data/hydrogen_molecules_exact_Ha.csv`` (the H atom; H₂ at R = 1.4 bohr),
matched by the number of protons and their separation; other geometries are listed with "-".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from qvfe import references as refs
from qvfe.physics import heg, units
from qvfe.physics.gdsmfb import fxc
from qvfe.run import Result, run_spec
from qvfe.spec import Spec, SpecError, load_spec

__all__ = ["Comparison", "compare_runs", "format_table", "plot", "reference_row",
           "run_conditions", "REFERENCE_TABLES"]


@dataclass(frozen=True)
class Comparison:
    """One observable of one run against one reference row (energies in Ha per electron)."""

    run_dir: str
    conditions: dict[str, Any]       # rs, theta (own T_F), xi, N, dim
    key: str                         # observable: E, K or V
    value: float
    error: float
    ref_value: float | None
    ref_error: float | None
    ref_label: str
    unit: str = "Ha/e"
    scored: bool = True              # False: the reference is shown, but not a test (no Δ/σ)

    @property
    def difference(self) -> float | None:
        return None if self.ref_value is None else self.value - self.ref_value

    @property
    def sigma(self) -> float | None:
        """Difference over the combined standard error (None without a reference row, or where the
        reference is not one to test against)."""
        if self.ref_value is None or not self.scored:
            return None
        combined = math.hypot(self.error, self.ref_error or 0.0)
        return self.difference / combined if combined > 0 else math.inf


def _brown() -> refs.Table:
    return refs.load_brown2013()


# Reference tables by name; --ref accepts a name or the path of the shipped file.
# Reference tables by name: (shipped file, loader, the system kind it describes).
REFERENCE_TABLES: dict[str, tuple[str, Callable[[], refs.Table], str]] = {
    "brown2013": ("brown2013_pimc_3dueg_Ry.csv", _brown, "electron_gas"),
    "ceimc": ("hydrogen_ceimc_refs_fermiflow.csv", refs.load_ceimc_hydrogen, "hydrogen"),
}
_DEFAULT_TABLE = {"electron_gas": "brown2013", "hydrogen": "ceimc"}


def resolve_reference(name_or_path: str | None, kind: str | None = None) -> str:
    """The table name for ``--ref`` (a name, or a path/file name of a shipped table); without
    one, the table of the runs' system kind."""
    if name_or_path is None:
        return _DEFAULT_TABLE.get(kind, "brown2013")
    stem = Path(name_or_path).name
    for name, (file_name, _, _) in REFERENCE_TABLES.items():
        if stem in (name, file_name) or Path(file_name).stem.startswith(Path(stem).stem):
            return name
    known = ", ".join(f"{n} ({f})" for n, (f, _, _) in REFERENCE_TABLES.items())
    raise SpecError(f"--ref = {name_or_path!r} is invalid: must be one of {known}")


def run_conditions(spec: Spec) -> dict[str, Any]:
    """rs, Θ relative to the run's own T_F (Brown's convention), ξ, N and d of an electron-gas run.
    A run of the electrons' ground state (``model.electrons = 'ground'``) has no Θ: no
    finite-temperature row describes it."""
    s = spec.system
    n = s.n_up + s.n_down
    xi = (s.n_up - s.n_down) / n
    T = heg.gas_temperature(s.theta, s.rs, s.n_up, s.n_down, s.dim,
                            reference=s.theta_reference)
    own = None
    if (abs(xi) == 1.0 or xi == 0.0) and spec.model.electrons != "ground":
        own = heg.theta(T, s.rs, s.dim, polarized=abs(xi) == 1.0)
    return {"rs": s.rs, "theta": own, "xi": xi, "N": n, "dim": s.dim, "T": T,
            "twist": tuple(s.twist), "coupling": s.coupling}


def hydrogen_conditions(spec: Spec) -> dict[str, Any]:
    """T in K, rs, N, boundary and whether the protons are clamped (a static lattice, which no
    CEIMC liquid row describes) of a hydrogen run; R, the proton separation of an isolated atom
    (0) or pair (None otherwise)."""
    s = spec.system
    R = None
    if s.boundary == "isolated" and s.n_protons <= 2:
        p = s.proton_positions
        R = math.dist(p[:3], p[3:6]) if s.n_protons == 2 else 0.0
    return {"T_K": s.T_kelvin, "rs": s.rs, "N": s.n_protons, "boundary": s.boundary,
            "clamped": bool(s.proton_lattice or s.proton_positions), "R": R,
            "coupling": s.coupling}


def _first_kind(run_dirs: list[str | Path]) -> str | None:
    for d in run_dirs:
        path = Path(d) / "spec.toml"
        if path.is_file():
            return load_spec(path).kind
    return None


def _load_runs(run_dirs: list[str | Path], table_name: str) -> list[tuple[str, dict, Result]]:
    """(run dir, conditions, result) of each run of the table's kind; anything else is an error."""
    kind = REFERENCE_TABLES[table_name][2]
    runs = []
    for d in run_dirs:
        run_dir = Path(d)
        spec = run_spec(run_dir)
        if not (run_dir / "result.json").is_file():
            raise SpecError(f"{run_dir} has no result.json: finish the run (or `qvfe eval` it)")
        if spec.kind != kind:
            raise SpecError(f"{run_dir}: system.kind = {spec.kind!r} has no reference table in "
                            f"{table_name} (must be {kind!r})")
        result = Result.from_json(run_dir / "result.json")
        cond = run_conditions(spec) if kind == "electron_gas" else hydrogen_conditions(spec)
        runs.append((str(run_dir), cond, result))
    return runs


def reference_row(table: refs.Table, cond: dict[str, Any], method: str) -> dict | None:
    """The row of Brown et al.'s ``table`` at an electron-gas run's :func:`run_conditions`
    (3D, Γ point, λ = 1, Θ of its own polarisation), or None."""
    if (cond["dim"] != 3 or cond["theta"] is None or any(cond["twist"])
            or cond["coupling"] != 1.0):
        return None
    rows = refs.match(table, rel=1e-6, method=method, rs=cond["rs"], theta=cond["theta"],
                      xi=int(abs(cond["xi"])), N=cond["N"])
    return rows[0] if rows else None


def compare_runs(run_dirs: list[str | Path], ref: str | None = None,
                 method: str = "RPIMC_fixed_node") -> list[Comparison]:
    """E, K and V of every run against the reference rows at the same conditions (K and V
    unscored: see the module docstring).

    Runs that are not electron-gas runs raise; runs without a matching row (2D, other N or Θ,
    a twist, λ ≠ 1) are listed with ``ref_value`` None so that nothing is silently dropped.
    """
    name = resolve_reference(ref, _first_kind(run_dirs))
    table = REFERENCE_TABLES[name][1]()
    if name == "ceimc":
        return _compare_hydrogen(_load_runs(run_dirs, name), table)
    out = []
    for run_dir, cond, result in _load_runs(run_dirs, name):
        row = reference_row(table, cond, method)
        for key in ("E", "K", "V"):
            if key not in result.observables:
                continue
            est = result.observables[key]
            out.append(Comparison(
                run_dir, cond, key, est.mean, est.error,
                None if row is None else row[key], None if row is None else row[f"{key}_err"],
                f"{name} {method}" if row is not None else "no reference row",
                scored=key == "E"))
    return out


_HYDROGEN_KEYS = (("E", "E", "Ha/atom"), ("F", "F", "Ha/atom"), ("S", "S", "k_B/atom"),
                  ("P", "p_GPa", "GPa"))


def _hydrogen_row(table: refs.Table, cond: dict[str, Any]) -> dict | None:
    """The CEIMC row of a liquid run, or the exact energy per atom (key E, label "exact") of an
    isolated atom or molecule; None for anything else."""
    if cond["boundary"] == "isolated":
        if cond["R"] is None or cond["coupling"] != 1.0:
            return None
        rows = refs.match(refs.load_hydrogen_molecules(), rel=1e-9, n_protons=cond["N"],
                          R_bohr=cond["R"])
        return {"E": rows[0]["E"] / cond["N"], "label": "exact"} if rows else None
    if cond["clamped"] or cond["coupling"] != 1.0:
        return None
    rows = refs.match(table, rel=1e-6, T_K=cond["T_K"], rs=cond["rs"])
    return {**rows[0], "label": "CEIMC"} if rows else None


def _compare_hydrogen(runs, table: refs.Table) -> list[Comparison]:
    """E, F (Ha/atom), S (k_B/atom) and P (GPa) of hydrogen runs against the CEIMC rows."""
    out = []
    for run_dir, cond, result in runs:
        row = _hydrogen_row(table, cond)
        for key, ref_key, unit in _HYDROGEN_KEYS:
            if key not in result.observables:
                continue
            est = result.observables[key]
            mean, err = est.mean, est.error
            if key == "P":
                mean, err = units.pressure_to_gpa(mean), units.pressure_to_gpa(err)
            ref_value = None if row is None else row.get(ref_key)
            out.append(Comparison(run_dir, cond, key, mean, err, ref_value,
                                  None if ref_value is None else 0.0,
                                  row["label"] if ref_value is not None else
                                  ("no reference row" if row is None else
                                   f"{row['label']} has no {key}"), unit))
    return out


def _format_hydrogen(comparisons: list[Comparison]) -> str:
    head = (f"{'run':<24} {'T (K)':>7} {'rs/R':>5} {'N':>4} {'obs':>3} {'qvfe':>24} "
            f"{'reference':>10} {'Δ':>10} {'Δ/σ':>6} {'unit':>9}")
    lines = [head, "-" * len(head)]
    for c in comparisons:
        k = c.conditions
        ours = f"{c.value: .5g} ± {c.error:.2g}"
        if c.ref_value is None:
            ref = diff = sig = "-"
        else:
            ref, diff, sig = f"{c.ref_value: .5g}", f"{c.difference:+.4g}", f"{c.sigma:+.1f}"
        name = Path(c.run_dir).name[-24:]
        where = k["rs"] if k["boundary"] == "periodic" else k["R"]
        where = "-" if where is None else f"{where:g}"
        lines.append(f"{name:<24} {k['T_K']:>7g} {where:>5} {k['N']:>4} {c.key:>3} "
                     f"{ours:>24} {ref:>10} {diff:>10} {sig:>6} {c.unit:>9}")
    used = {c.ref_label for c in comparisons if c.ref_value is not None}
    lines.append("Δ = qvfe − reference; σ = the run's standard error (the tables have no error "
                 "bars); rs/R: rs of a periodic run, the proton separation (bohr) of an isolated "
                 "one" + ("; finite N against CEIMC (near the thermodynamic limit)."
                          if "CEIMC" in used else "."))
    if "CEIMC" in used:
        lines.append("reference: CEIMC, Pierleoni, Morales, Rillo, Holzmann, Ceperley, PNAS 113, "
                     "4953 (2016); Morales et al., PRE 81, 021202 (2010)")
    if "exact" in used:
        lines.append("reference: exact Born-Oppenheimer energies, " +
                     refs.load_hydrogen_molecules().citation)
    return "\n".join(lines)


def format_table(comparisons: list[Comparison]) -> str:
    """A plain-text table: conditions, qvfe and reference in Ha and Ry per electron, Δ, Δ/σ
    (hydrogen: Ha or k_B per atom and GPa)."""
    if comparisons and "T_K" in comparisons[0].conditions:
        return _format_hydrogen(comparisons)
    head = (f"{'run':<24} {'rs':>5} {'Θ':>7} {'ξ':>3} {'N':>4} {'obs':>3} "
            f"{'qvfe (Ha/e)':>22} {'reference (Ha/e)':>22} {'Δ (mHa/e)':>10} {'Δ/σ':>6} "
            f"{'qvfe (Ry/e)':>12} {'ref (Ry/e)':>12}")
    lines = [head, "-" * len(head)]
    for c in comparisons:
        k = c.conditions
        theta = f"{k['theta']:.4g}" if k["theta"] is not None else "-"
        ours = f"{c.value: .6f} ± {c.error:.6f}"
        ry = f"{units.convert(c.value, 'Ha', 'Ry'): .6f}"
        if c.ref_value is None:
            ref = diff = sig = ry_ref = "-"
        else:
            ref = f"{c.ref_value: .6f} ± {c.ref_error:.6f}"
            diff = f"{1e3 * c.difference:+.3f}"
            sig = f"{c.sigma:+.1f}" if c.scored else "n/a"
            ry_ref = f"{units.convert(c.ref_value, 'Ha', 'Ry'): .6f}"
        name = Path(c.run_dir).name[-24:]
        lines.append(f"{name:<24} {k['rs']:>5g} {theta:>7} {k['xi']:>3g} {k['N']:>4} {c.key:>3} "
                     f"{ours:>22} {ref:>22} {diff:>10} {sig:>6} {ry:>12} {ry_ref:>12}")
    matched = [c for c in comparisons if c.ref_value is not None]
    lines.append("Θ = T/T_F of each gas's own polarisation (Brown et al.); Δ = qvfe − reference; "
                 "σ = combined standard error.")
    if any(not c.scored for c in matched):
        lines.append("n/a: K and V against K_N, V_N for orientation only: Brown's E_N ≠ K_N + V_N "
                     "(ξ = 1: by 17 mRy at rs = 4, 1.3 mRy at rs = 10); E_N is the reference.")
    if any("RPIMC" in c.ref_label and c.conditions["rs"] <= 1.0 for c in matched):
        lines.append("caution: Brown et al.'s RPIMC rows at rs = 1 are biased by their "
                     "free-particle nodes (their own caveat).")
    if any("signful" in c.ref_label and c.conditions["theta"] < 0.1 for c in matched):
        lines.append("caution: signful PIMC at Θ = 0.0625 has an average sign near 0; its "
                     "numbers there mean little.")
    if matched:
        refs_used = sorted({c.ref_label for c in matched})
        lines.append("reference: Brown, Clark, DuBois, Ceperley, PRL 110, 146405 (2013) "
                     f"({', '.join(refs_used)}), finite-N E_N, K_N, V_N")
    return "\n".join(lines)


def _tl_free_energy(rs: float, theta_own: float, xi: float) -> float:
    """Thermodynamic-limit F per electron (Ha): ideal gas + GDSMFB f_xc (paramagnetic θ)."""
    T = heg.temperature(theta_own, rs, 3, polarized=abs(xi) == 1.0)
    theta_para = heg.theta(T, rs, 3, polarized=False)
    return heg.ideal_fermi_gas(rs, T, xi=xi).free_energy + float(fxc(rs, theta_para, xi))


def plot(run_dirs: list[str | Path], path: str | Path, ref: str | None = None,
         method: str = "RPIMC_fixed_node") -> Path:
    """PNG of E and F per electron (Ha) vs Θ (or vs rs when all runs share one Θ): the runs with
    error bars, the reference E_N rows of the same (rs, ξ, N) series, and the TL F line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    name = resolve_reference(ref, _first_kind(run_dirs))
    table = REFERENCE_TABLES[name][1]()
    runs = _load_runs(run_dirs, name)
    if name == "ceimc":
        return _plot_hydrogen(runs, table, Path(path))
    thetas = {cond["theta"] for _, cond, _ in runs}
    x_key = "theta" if len(thetas) > 1 else "rs"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    # one reference series per (ξ, N) and fixed other axis: rs when plotting vs Θ, Θ vs rs
    other = "rs" if x_key == "theta" else "theta"
    series = {(c["xi"], c["N"], c[other]) for _, c, _ in runs if c["theta"] is not None}
    for ax, key in zip(axes, ("E", "F")):
        for xi, n, fixed in sorted(series):
            rows = sorted(refs.match(table, rel=1e-6, method=method, xi=int(abs(xi)), N=n,
                                     **{other: fixed}), key=lambda r: r[x_key])
            label = f"ξ={xi:g}, " + (f"rs={fixed:g}" if other == "rs" else f"Θ={fixed:g}")
            if key == "E" and rows:
                ax.errorbar([r[x_key] for r in rows], [r["E"] for r in rows],
                            [r["E_err"] for r in rows], fmt="s", mfc="none", capsize=2,
                            label=f"Brown 2013 E_N (N={n}, {label})")
            if key == "F" and rows:
                lo, hi = rows[0][x_key], rows[-1][x_key]
                xs = np.geomspace(lo, hi, 60) if x_key == "theta" else np.linspace(lo, hi, 60)
                ys = [_tl_free_energy(fixed, x, xi) if x_key == "theta"
                      else _tl_free_energy(x, fixed, xi) for x in xs]
                ax.plot(xs, ys, "-", lw=1, label=f"thermodynamic limit: ideal + f_xc GDSMFB "
                        f"({label})")
        pts = [(c[x_key], res.observables[key]) for _, c, res in runs
               if key in res.observables and c[x_key] is not None]
        if pts:
            ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts],
                        [p[1].error for p in pts], fmt="o", capsize=2, color="k", label="qvfe")
        ax.set_xscale("log" if x_key == "theta" else "linear")
        ax.set_xlabel("Θ = T/T_F (own polarisation)" if x_key == "theta" else "rs (bohr)")
        ax.set_ylabel(f"{key} (Ha per electron)")
        ax.legend(fontsize=7)
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _plot_molecules(runs, out: Path) -> Path:
    """PNG of E per atom (Ha) vs the proton separation R of isolated runs, with the exact energies
    (runs of other geometries have no R and are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    exact = refs.load_hydrogen_molecules()
    ax.plot([r["R_bohr"] for r in exact], [r["E"] / r["n_protons"] for r in exact], "s",
            mfc="none", label="exact (Born-Oppenheimer)")
    pts = [(c["R"], r.observables["E"]) for _, c, r in runs
           if c["R"] is not None and "E" in r.observables]
    ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts], [p[1].error for p in pts],
                fmt="o", capsize=2, color="k", label="qvfe")
    ax.set_xlabel("proton separation R (bohr; 0: the atom)")
    ax.set_ylabel("E (Ha per atom)")
    ax.legend(fontsize=7)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _hydrogen_series(periodic, key: str, x_key: str, other: str) -> dict[str, list]:
    """The plot's qvfe series, {label: [(x, Estimate), ...]} sorted in x: one per size and
    value of the other coordinate, so that an rs × T grid's 6000 K and 8000 K points do not
    share one."""
    others = {c[other] for c, _ in periodic}
    series = {}
    for n, fixed in sorted({(c["N"], c[other]) for c, _ in periodic}):
        pts = sorted(((c[x_key], r.observables[key]) for c, r in periodic
                      if (c["N"], c[other]) == (n, fixed) and key in r.observables),
                     key=lambda point: point[0])
        if pts:
            label = f"qvfe N = {n}" + (f" ({other} = {fixed:g})" if len(others) > 1 else "")
            series[label] = pts
    return series


def _plot_hydrogen(runs, table: refs.Table, out: Path) -> Path:
    """PNG of E (Ha/atom) and P (GPa) vs rs (or vs T when all runs share one rs), with the CEIMC
    rows at the runs' other coordinate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periodic = [(c, r) for _, c, r in runs if c["boundary"] == "periodic" and not c["clamped"]]
    if not periodic:
        return _plot_molecules(runs, out)
    x_key = "rs" if len({c["rs"] for c, _ in periodic}) > 1 else "T_K"
    other = "T_K" if x_key == "rs" else "rs"
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, (key, ref_key, unit) in zip(axes, (("E", "E", "Ha per atom"), ("P", "p_GPa", "GPa"))):
        for fixed in sorted({c[other] for c, _ in periodic}):
            rows = sorted((r for r in refs.match(table, rel=1e-6, **{other: fixed})
                           if r[ref_key] is not None), key=lambda r: r[x_key])
            if rows:
                ax.plot([r[x_key] for r in rows], [r[ref_key] for r in rows], "s", mfc="none",
                        label=f"CEIMC ({other} = {fixed:g})")
        scale = units.HA_PER_BOHR3_IN_GPA if key == "P" else 1.0
        for label, pts in _hydrogen_series(periodic, key, x_key, other).items():
            ax.errorbar([p[0] for p in pts], [scale * p[1].mean for p in pts],
                        [scale * p[1].error for p in pts], fmt="o", capsize=2, label=label)
        ax.set_xlabel("rs (bohr)" if x_key == "rs" else "T (K)")
        ax.set_ylabel(f"{key} ({unit})")
        ax.legend(fontsize=7)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
