"""Loaders for the reference tables in ``data/``: tidy records in Hartree, with their provenance.

One job: read the shipped CSV files (``data/README.md`` lists them with citations), convert energies
to Hartree where the source used another unit (saying which), and look rows up by their parameters.
The physics behind the numbers lives elsewhere (``qvfe.physics.heg``, ``qvfe.physics.gdsmfb``).

The data folder is found at ``$QVFE_DATA_DIR`` if set, else at ``<qvfe package>/../data`` (the
layout of a source checkout and of an editable install). A missing folder raises
``FileNotFoundError`` naming every place that was tried.

Example::

    from qvfe import references as refs
    brown = refs.load_brown2013()
    row = refs.match_one(brown, method="RPIMC_fixed_node", rs=10, theta=1.0, xi=1)
    row["E"], row["E_err"]          # Ha per electron (the file has Ry)
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from qvfe.physics.units import ENERGY_UNITS

__all__ = [
    "Table",
    "data_dir",
    "data_path",
    "read_csv",
    "load_brown2013",
    "load_gdsmfb_checkvalues",
    "load_fxc_coefficients",
    "load_ideal_fermi_species",
    "load_pw92",
    "load_amgb",
    "load_ueg3d_misc",
    "load_ceimc_hydrogen",
    "load_hydrogen_molecules",
    "match",
    "match_one",
]

Record = dict[str, Any]


@dataclass(frozen=True)
class Table:
    """Rows of one reference file, energies in ``unit``.

    name: file name in data/. citation: the source. unit: the unit of the energy columns of the
    records ("Ha" or "dimensionless"); original_unit: what the file has; converted: the columns that
    were converted; header: the file's own ``#`` comment lines (units and caveats).
    """

    name: str
    citation: str
    unit: str
    original_unit: str
    rows: tuple[Record, ...]
    converted: tuple[str, ...] = ()
    header: str = ""
    notes: str = ""
    columns: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.rows)

    def column(self, key: str) -> np.ndarray:
        """One column as an array (None -> nan for numeric columns)."""
        if key not in self.columns:
            raise KeyError(f"{self.name} has no column {key!r}; columns: {list(self.columns)}")
        values = [r[key] for r in self.rows]
        if all(v is None or isinstance(v, (int, float)) for v in values):
            return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        return np.array(values, dtype=object)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def data_dir() -> Path:
    """The folder holding the reference CSV files (see module docstring)."""
    tried = []
    env = os.environ.get("QVFE_DATA_DIR")
    if env:
        p = Path(env)
        if p.is_dir():
            return p
        tried.append(f"$QVFE_DATA_DIR={env}")
    p = Path(__file__).resolve().parent.parent / "data"
    if p.is_dir():
        return p
    tried.append(str(p))
    raise FileNotFoundError(
        "qvfe reference data not found (tried: " + ", ".join(tried) + "). The tables ship in the "
        "repository's data/ folder: use a source checkout or an editable install "
        "(pip install -e .), or point QVFE_DATA_DIR at a copy of data/.")


def data_path(name: str) -> Path:
    """Path of one file in the data folder; raises naming the folder if it is missing."""
    p = data_dir() / name
    if not p.is_file():
        raise FileNotFoundError(f"{name} not in {p.parent}; available: "
                                f"{sorted(q.name for q in p.parent.glob('*.csv'))}")
    return p


def _parse(value: str) -> Any:
    value = value.strip()
    if value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return number


def read_csv(name: str) -> tuple[tuple[str, ...], list[Record], str]:
    """Columns, rows (numbers as float, empty cells as None) and ``#`` header of a data file."""
    header_lines, body = [], []
    with data_path(name).open(newline="") as f:
        for line in f:
            (header_lines if line.startswith("#") else body).append(line)
    reader = csv.DictReader(body)
    rows = [{k: _parse(v) for k, v in row.items()} for row in reader]
    header = "".join(line[1:].strip() + "\n" for line in header_lines)
    return tuple(reader.fieldnames or ()), rows, header


def _as_int(rows: list[Record], *keys: str) -> None:
    for r in rows:
        for k in keys:
            v = r.get(k)
            if isinstance(v, float) and v.is_integer():
                r[k] = int(v)


def _convert(rows: list[Record], keys: tuple[str, ...], factor: float) -> None:
    for r in rows:
        for k in keys:
            if r.get(k) is not None:
                r[k] = r[k] * factor


# ---------------------------------------------------------------------------------------------
# loaders
# ---------------------------------------------------------------------------------------------

_BROWN_NOT_ENERGY = {"method", "xi", "N", "rs", "theta", "M", "sign", "sign_err"}


def load_brown2013(reduced: bool = False) -> Table:
    """Brown et al. PRL 110, 146405 (2013), 3D UEG PIMC: every energy column in Ha per electron.

    Columns keep the file's names (E_N, K_N, V_N, ..., K0_T, Ex_T, ...), now in Ha (a name
    containing "_Ry" has it replaced by "_Ha", e.g. the reduced file's Fxc_TL_GDSMFB_Ha(computed)),
    and each record also has the tidy aliases E, E_err, K, K_err, V, V_err (= E_N, ...). theta is
    relative to the T_F of the gas's own polarisation (xi = 1: polarised, N = 33; xi = 0:
    unpolarised, N = 66).
    """
    name = "brown2013_reduced_Ry.csv" if reduced else "brown2013_pimc_3dueg_Ry.csv"
    columns, rows, header = read_csv(name)
    energy = tuple(c for c in columns if c not in _BROWN_NOT_ENERGY)
    _convert(rows, energy, ENERGY_UNITS["Ry"])
    # A column named "..._Ry..." now holds Ha: rename it so that the name does not lie.
    renamed = {c: c.replace("_Ry", "_Ha") for c in columns if "_Ry" in c}
    rows = [{renamed.get(k, k): v for k, v in r.items()} for r in rows]
    columns = tuple(renamed.get(c, c) for c in columns)
    energy = tuple(renamed.get(c, c) for c in energy)
    _as_int(rows, "xi", "N", "M")
    aliases = {"E": "E_N", "E_err": "E_N_err", "K": "K_N", "K_err": "K_N_err", "V": "V_N",
               "V_err": "V_N_err"}
    for r in rows:
        for alias, key in aliases.items():
            r[alias] = r[key]
    return Table(
        name=name,
        citation="Brown, Clark, DuBois, Ceperley, Phys. Rev. Lett. 110, 146405 (2013); "
                 "etano/3DHEG (Zenodo 10.5281/zenodo.13241)",
        unit="Ha", original_unit="Ry", rows=tuple(rows), converted=energy, header=header,
        notes="Compare finite-N runs to E (= E_N), not E_fsc. E_N != K_N + V_N by an amount "
              "that depends on rs, theta and xi: trust E_N. RPIMC biased at rs = 1; signful PIMC "
              "meaningless at theta = 0.0625.",
        columns=tuple(columns) + tuple(aliases),
    )


def load_gdsmfb_checkvalues() -> Table:
    """GDSMFB f_xc check values, Ha per electron; theta_para relative to the paramagnetic T_F.

    Tidy aliases: theta (= theta_para), fxc_xi0, fxc_xi1, fxc_xi05 (GDSMFB's own spin
    interpolation), fxc_xi05_libxc.
    """
    name = "gdsmfb_checkvalues_Ha.csv"
    columns, rows, header = read_csv(name)
    aliases = {"theta": "theta_para", "fxc_xi0": "fxc_xi0_Ha", "fxc_xi1": "fxc_xi1_Ha",
               "fxc_xi05": "fxc_xi0.5_Ha_GDSMFBref", "fxc_xi05_libxc": "fxc_xi0.5_Ha_libxc7.0.0"}
    for r in rows:
        for alias, key in aliases.items():
            r[alias] = r[key]
    return Table(name=name, citation="Groth et al., Phys. Rev. Lett. 119, 135001 (2017)",
                 unit="Ha", original_unit="Ha", rows=tuple(rows), header=header,
                 columns=tuple(columns) + tuple(aliases))


def load_fxc_coefficients() -> Table:
    """Pade coefficients of GDSMFB, KSDT and corrKSDT (dimensionless)."""
    name = "fxc_pade_coefficients.csv"
    columns, rows, header = read_csv(name)
    _as_int(rows, "xi")
    return Table(name=name, citation="Groth et al., PRL 119, 135001 (2017); Karasiev et al., "
                 "PRL 112, 076403 (2014)", unit="dimensionless", original_unit="dimensionless",
                 rows=tuple(rows), header=header, columns=columns)


def load_ideal_fermi_species() -> Table:
    """One 3D spin species of the ideal Fermi gas, reduced by its E_F (tidy names added).

    Aliases: t, eta, mu, K, F, S, ex_ratio for the file's 't=T/E_F_species', 'eta=mu/T',
    'mu/E_F', 'K/E_F', 'F0/E_F', 'S/(N kB)', 'ex(t)/ex(0)'.
    """
    name = "ideal_fermi_species_reduced.csv"
    columns, rows, header = read_csv(name)
    aliases = {"t": "t=T/E_F_species", "eta": "eta=mu/T", "mu": "mu/E_F", "K": "K/E_F",
               "F": "F0/E_F", "S": "S/(N kB)", "ex_ratio": "ex(t)/ex(0)"}
    for r in rows:
        for alias, key in aliases.items():
            r[alias] = r[key]
    return Table(name=name, citation="computed from the Fermi-Dirac formulas (thermodynamic limit)",
                 unit="dimensionless", original_unit="dimensionless", rows=tuple(rows),
                 header=header, columns=tuple(columns) + tuple(aliases))


def load_pw92() -> Table:
    """T = 0 3D UEG energies per electron (ts, ex exact; ec from PW92), Ha."""
    name = "pw92_3d_groundstate_Ha.csv"
    columns, rows, header = read_csv(name)
    return Table(name=name, citation="Perdew & Wang, Phys. Rev. B 45, 13244 (1992)", unit="Ha",
                 original_unit="Ha", rows=tuple(rows), header=header, columns=columns)


def load_amgb() -> Table:
    """T = 0 2D UEG energies per electron (ts, ex exact; ec from AMGB), Ha."""
    name = "amgb_2d_groundstate_Ha.csv"
    columns, rows, header = read_csv(name)
    return Table(name=name, citation="Attaccalite, Moroni, Gori-Giorgi, Bachelet, Phys. Rev. Lett. "
                 "88, 256601 (2002)", unit="Ha", original_unit="Ha", rows=tuple(rows),
                 header=header, columns=columns)


def load_ueg3d_misc() -> Table:
    """Miscellaneous T = 0 3D UEG values; ``value_Ha`` and ``err_Ha`` added (value, err, unit kept).

    ``per`` is "electron" or "cell" ("Ha per cell (14 e)" rows are totals for the N-electron cell);
    ``N`` is an int, or "TL" for the thermodynamic limit.
    """
    name = "ueg3d_groundstate_misc.csv"
    columns, rows, header = read_csv(name)
    _as_int(rows, "xi", "N")
    for r in rows:
        unit = str(r["unit"])
        base = unit.split()[0]
        if base not in ENERGY_UNITS:
            raise ValueError(f"{name}: unknown unit {unit!r}")
        factor = ENERGY_UNITS[base]
        r["value_Ha"] = r["value"] * factor
        r["err_Ha"] = None if r["err"] is None else r["err"] * factor
        r["per"] = "cell" if "per cell" in unit else "electron"
    return Table(name=name, citation="Ceperley & Alder PRL 45, 566 (1980) via VWN Can. J. Phys. "
                 "58, 1200 (1980); Ruggeri et al. arXiv:1804.04938; QMCPACK tests/heg",
                 unit="Ha", original_unit="per row (unit column)", rows=tuple(rows),
                 converted=("value", "err"), header=header,
                 notes="QMCPACK N=14 values are per cell; E_total_HF is a VMC estimate "
                       "(statistical error) of the plane-wave determinant's HF energy.",
                 columns=tuple(columns) + ("value_Ha", "err_Ha", "per"))


def load_ceimc_hydrogen() -> Table:
    """CEIMC dense hydrogen: T_K (K), rs (bohr per proton), energies Ha per atom, p in GPa.

    Tidy aliases: T_Ha (k_B T in Ha), E (= etot_Ha_per_atom), K, V, F, S (k_B per atom), p_GPa.
    Missing entries are None.
    """
    name = "hydrogen_ceimc_refs_fermiflow.csv"
    columns, rows, header = read_csv(name)
    _as_int(rows, "T_K")
    aliases = {"E": "etot_Ha_per_atom", "K": "k_Ha_per_atom", "V": "vtot_Ha_per_atom",
               "F": "f_Ha_per_atom", "S": "s_kB_per_atom"}
    for r in rows:
        for alias, key in aliases.items():
            r[alias] = r[key]
        r["T_Ha"] = r["T_K"] * ENERGY_UNITS["K"]
    return Table(name=name, citation="CEIMC: Pierleoni et al., PNAS 113, 4953 (2016); (likely) "
                 "Morales et al., PRE 81, 021202 (2010)", unit="Ha", original_unit="Ha",
                 rows=tuple(rows),
                 header=header, notes="no error bars; units inferred from use; mixed sources",
                 columns=tuple(columns) + tuple(aliases) + ("T_Ha",))


def load_hydrogen_molecules() -> Table:
    """Exact Born-Oppenheimer energies of neutral hydrogen with clamped protons: n_protons, R_bohr
    (the separation; 0 for the atom), E (= E_Ha, the molecule's total energy in Ha), source."""
    name = "hydrogen_molecules_exact_Ha.csv"
    columns, rows, header = read_csv(name)
    _as_int(rows, "n_protons")
    for r in rows:
        r["E"] = r["E_Ha"]
    return Table(name=name, citation="H atom: exact; H2: Sims & Hagstrom, J. Chem. Phys. 124, "
                 "094101 (2006)", unit="Ha", original_unit="Ha", rows=tuple(rows),
                 header=header, columns=tuple(columns) + ("E",))


# ---------------------------------------------------------------------------------------------
# lookup
# ---------------------------------------------------------------------------------------------


def _equal(a: Any, b: Any, rel: float) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float, np.number)):
        return abs(a - float(b)) <= rel * max(abs(a), abs(float(b)), 1e-300) or a == b
    return a == b


def match(table: Table, rel: float = 1e-9, **criteria: Any) -> list[Record]:
    """Rows whose columns equal ``criteria`` (numbers to relative tolerance ``rel``).

    Example: ``match(load_brown2013(), rs=10, theta=0.5, xi=1, method="RPIMC_fixed_node")``.
    Unknown column names raise KeyError (a typo must not silently match nothing).
    """
    for key in criteria:
        if key not in table.columns:
            raise KeyError(f"{table.name} has no column {key!r}; columns: {list(table.columns)}")
    return [r for r in table.rows if all(_equal(r[k], v, rel) for k, v in criteria.items())]


def match_one(table: Table, rel: float = 1e-9, **criteria: Any) -> Record:
    """The single row matching ``criteria``; raises LookupError for none or several."""
    rows = match(table, rel=rel, **criteria)
    if len(rows) != 1:
        raise LookupError(f"{len(rows)} rows of {table.name} match {criteria}")
    return rows[0]
