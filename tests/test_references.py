"""Reference tables load from data/, in Hartree, with citations; lookups are strict."""

import math
from pathlib import Path

import pytest

from qvfe import references as refs

LOADERS = {
    "brown2013_pimc_3dueg_Ry.csv": refs.load_brown2013,
    "brown2013_reduced_Ry.csv": lambda: refs.load_brown2013(reduced=True),
    "gdsmfb_checkvalues_Ha.csv": refs.load_gdsmfb_checkvalues,
    "fxc_pade_coefficients.csv": refs.load_fxc_coefficients,
    "ideal_fermi_species_reduced.csv": refs.load_ideal_fermi_species,
    "pw92_3d_groundstate_Ha.csv": refs.load_pw92,
    "amgb_2d_groundstate_Ha.csv": refs.load_amgb,
    "ueg3d_groundstate_misc.csv": refs.load_ueg3d_misc,
    "hydrogen_ceimc_refs_fermiflow.csv": refs.load_ceimc_hydrogen,
    "hydrogen_molecules_exact_Ha.csv": refs.load_hydrogen_molecules,
}


@pytest.mark.parametrize("name", list(LOADERS))
def test_every_table_loads_with_citation_and_units(name):
    table = LOADERS[name]()
    assert table.name == name and len(table) > 0
    assert table.citation and table.unit
    # the file states its source and units in its header, and data/README.md lists it
    assert "UNITS" in table.header
    assert f"`{name}`" in (refs.data_dir() / "README.md").read_text()
    for row in table:
        assert set(table.columns) <= set(row)


def test_brown_is_converted_from_rydberg():
    brown = refs.load_brown2013()
    assert len(brown) == 132 and brown.original_unit == "Ry" and brown.unit == "Ha"
    raw = refs.read_csv("brown2013_pimc_3dueg_Ry.csv")[1]
    row = refs.match_one(brown, method="RPIMC_fixed_node", xi=1, rs=10, theta=1.0)
    raw_row = next(r for r in raw if r["method"] == "RPIMC_fixed_node" and r["xi"] == 1
                   and r["rs"] == 10 and r["theta"] == 1.0)
    for key in ("E_N", "E_N_err", "K_N", "V_N", "K0_T", "Ex_T"):
        assert row[key] == pytest.approx(0.5 * raw_row[key], rel=1e-15)
    assert (row["E"], row["E_err"]) == (row["E_N"], row["E_N_err"])
    assert row["N"] == 33 and isinstance(row["N"], int)
    assert row["M"] == raw_row["M"] and row["rs"] == 10.0  # parameters are not converted
    reduced = refs.load_brown2013(reduced=True)
    assert "Fxc_TL_GDSMFB_Ha(computed)" in reduced.columns  # renamed: it holds Ha now
    assert not any("_Ry" in c for c in reduced.columns)


def test_misc_and_hydrogen_records():
    misc = refs.load_ueg3d_misc()
    ca = refs.match_one(misc, xi=0, rs=5, quantity="ec", N="TL")
    assert ca["value_Ha"] == pytest.approx(-56.3e-3 / 2) and ca["per"] == "electron"
    hf = refs.match_one(misc, N=14, quantity="E_total_HF(Slater-only VMC)")
    assert (hf["value_Ha"], hf["err_Ha"], hf["per"]) == (-0.812484, 0.000027, "cell")
    h = refs.load_ceimc_hydrogen()
    row = refs.match_one(h, T_K=6000, rs=1.25)
    assert row["F"] == -0.5737 and row["S"] == 6.25 and row["K"] is None
    assert row["T_Ha"] == pytest.approx(6000 / 315775.02)
    assert math.isnan(h.column("K")[0])
    mol = refs.load_hydrogen_molecules()
    assert refs.match_one(mol, n_protons=1)["E"] == -0.5
    assert refs.match_one(mol, n_protons=2, R_bohr=1.4)["E"] == pytest.approx(-1.17447571, abs=1e-8)


def test_match_is_strict():
    brown = refs.load_brown2013()
    assert len(refs.match(brown, rs=4.0, theta=0.5)) == 2  # xi = 0 and 1 (RPIMC only at 0.5)
    assert refs.match(brown, rs=4.0000000001, theta=0.5, xi=1)  # relative tolerance 1e-9
    assert refs.match(brown, rs=4.01, theta=0.5) == []
    with pytest.raises(KeyError, match="no column 'temperature'"):
        refs.match(brown, temperature=0.5)
    with pytest.raises(LookupError, match="2 rows"):
        refs.match_one(brown, rs=4.0, theta=0.5)


def test_data_dir_resolution(monkeypatch, tmp_path):
    default = refs.data_dir()
    assert default == Path(refs.__file__).resolve().parent.parent / "data"
    monkeypatch.setenv("QVFE_DATA_DIR", str(tmp_path))
    assert refs.data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="available"):
        refs.load_pw92()
    monkeypatch.setenv("QVFE_DATA_DIR", str(tmp_path / "missing"))
    monkeypatch.setattr(refs, "__file__", str(tmp_path / "site-packages" / "qvfe" / "references.py"))
    with pytest.raises(FileNotFoundError, match="QVFE_DATA_DIR"):
        refs.data_dir()
