"""``qvfe compare``: matching runs to Brown et al. (2013) rows, the table arithmetic, the plot.

The fixtures are run directories with a real spec and a result.json whose numbers are set relative
to the reference row, so that the expected difference and Δ/σ are known exactly.
"""

import math
import subprocess
import sys

import pytest

import qvfe
from qvfe import compare
from qvfe import references as refs
from qvfe.problem import Estimate
from qvfe.run import Result, write_result

BROWN = refs.load_brown2013()


def _brown_row(rs, theta, xi=1, n=33):
    return refs.match_one(BROWN, method="RPIMC_fixed_node", rs=rs, theta=theta, xi=xi, N=n)


def _run_dir(path, system, observables, model=None):
    path.mkdir(parents=True)
    spec = qvfe.load_spec({"system": {"kind": "electron_gas", **system}, "model": model or {}})
    (path / "spec.toml").write_text(spec.to_toml())
    obs = {k: Estimate(m, e) for k, (m, e) in observables.items()}
    write_result(path, Result("electron_gas", "hartree", "electron", obs, 1000, 10, 0, 1.0))
    return path


def _polarized_33(path, rs, theta, shift=0.0, err=5e-4, row_theta=None, model=None, **system):
    row = _brown_row(rs, row_theta or theta)
    obs = {"E": (row["E"] + shift, err), "K": (row["K"], err), "V": (row["V"], err),
           "F": (row["E"] - 0.01, err)}
    return _run_dir(path, {"n_up": 33, "n_down": 0, "rs": rs, "theta": theta, **system}, obs,
                    model)


def test_difference_and_sigma_against_the_matching_row(tmp_path):
    d = _polarized_33(tmp_path / "a", 10.0, 0.0625, shift=1e-3)
    (e, k, v) = compare.compare_runs([d])
    row = _brown_row(10.0, 0.0625)
    assert (e.key, k.key, v.key) == ("E", "K", "V")
    assert e.ref_value == row["E"] and e.ref_error == row["E_err"]
    assert e.difference == pytest.approx(1e-3, abs=1e-12)
    assert e.sigma == pytest.approx(1e-3 / math.hypot(5e-4, row["E_err"]), rel=1e-9)
    # K and V are shown with their difference but not scored: Brown's E_N != K_N + V_N
    assert k.difference == pytest.approx(0.0, abs=1e-12) and k.sigma is None and v.sigma is None
    assert 2e3 * (row["E"] - row["K"] - row["V"]) == pytest.approx(1.32, abs=0.01)  # mRy
    table = compare.format_table([e, k, v])
    assert "n/a" in table and "E_N ≠ K_N + V_N" in table and "caution" not in table
    # the reference rows the source itself cautions against are flagged where they are used
    biased = _polarized_33(tmp_path / "rs1", 1.0, 0.0625)
    assert "biased" in compare.format_table(compare.compare_runs([biased]))
    signful = compare.compare_runs([d], method="PIMC_signful")
    assert signful[0].ref_value is not None and "sign near 0" in compare.format_table(signful)
    # Brown's E_N = -0.104151(127) Ry per electron at rs = 10, Θ = 0.0625 (the number)
    assert 2 * row["E"] == pytest.approx(-0.104151, abs=1e-6)


def test_theta_is_converted_to_the_gas_own_fermi_temperature(tmp_path):
    # a polarised gas at Θ_para = 0.0625 · 2^(2/3) is Brown's Θ_own = 0.0625
    d = _polarized_33(tmp_path / "p", 4.0, 0.0625 * 2 ** (2 / 3), row_theta=0.0625,
                      theta_reference="paramagnetic")
    e = compare.compare_runs([d])[0]
    assert e.conditions["theta"] == pytest.approx(0.0625, rel=1e-12)
    assert e.ref_value == _brown_row(4.0, 0.0625)["E"]


def test_runs_without_a_reference_row_are_listed_not_dropped(tmp_path):
    d2 = _run_dir(tmp_path / "two_d", {"n_up": 13, "n_down": 0, "dim": 2, "rs": 5.0,
                                       "theta": 0.15}, {"E": (-0.1, 1e-3)})
    (e,) = compare.compare_runs([d2])
    assert e.ref_value is None and e.sigma is None
    assert " - " in compare.format_table([e])


def test_a_non_interacting_run_matches_no_interacting_reference(tmp_path):
    ideal = _polarized_33(tmp_path / "ideal", 10.0, 0.0625, coupling=0.0)
    assert all(c.ref_value is None and c.sigma is None for c in compare.compare_runs([ideal]))
    h = _hydrogen_dir(tmp_path / "h_ideal", {"E": (0.5, 0.01)}, coupling=0.0)
    assert all(c.ref_value is None for c in compare.compare_runs([h]))


def test_a_ground_state_run_matches_no_finite_temperature_row(tmp_path):
    ground = _polarized_33(tmp_path / "ground", 10.0, 0.0625, model={"electrons": "ground"})
    comparisons = compare.compare_runs([ground])
    assert all(c.ref_value is None and c.conditions["theta"] is None for c in comparisons)


def test_non_electron_gas_runs_and_unknown_tables_are_refused(tmp_path):
    d = tmp_path / "dot"
    d.mkdir()
    spec = qvfe.load_spec({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.5}})
    (d / "spec.toml").write_text(spec.to_toml())
    write_result(d, Result("quantum_dot", "hartree", "electron", {"E": Estimate(1.0, 0.1)}, 1, 1,
                           0, 1.0))
    with pytest.raises(qvfe.SpecError, match="system.kind = 'quantum_dot'"):
        compare.compare_runs([d])
    with pytest.raises(qvfe.SpecError, match="--ref"):
        compare.resolve_reference("ceperley1980.csv")
    assert compare.resolve_reference("data/brown2013_pimc_3dueg_Ry.csv") == "brown2013"
    assert compare.resolve_reference("data/brown2013_pimc_3dueg.csv") == "brown2013"


def test_cli_prints_the_table_and_writes_a_png(tmp_path):
    dirs = [_polarized_33(tmp_path / f"t{theta}", 10.0, theta, shift=2e-3)
            for theta in (0.0625, 0.125, 0.25)]
    png = tmp_path / "cmp.png"
    p = subprocess.run([sys.executable, "-m", "qvfe.cli", "compare", *map(str, dirs),
                        "--plot", str(png)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "Brown, Clark, DuBois, Ceperley" in p.stdout
    assert p.stdout.count("+2.000") == 3  # ΔE in mHa per electron, one line per run
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, "-m", "qvfe.cli", "compare", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no spec.toml" in bad.stderr


CEIMC = refs.load_ceimc_hydrogen()


def _hydrogen_dir(path, observables, **system):
    path.mkdir(parents=True)
    raw = {"kind": "hydrogen", "n_protons": 16, "rs": 1.25, "T_kelvin": 6000.0, **system}
    spec = qvfe.load_spec({"system": raw})
    (path / "spec.toml").write_text(spec.to_toml())
    obs = {k: Estimate(m, e) for k, (m, e) in observables.items()}
    write_result(path, Result("hydrogen", "hartree", "atom", obs, 1000, 10, 0, 1.0))
    return path


def test_hydrogen_runs_against_ceimc(tmp_path):
    row = refs.match_one(CEIMC, T_K=6000, rs=1.25)
    p_ha = 553.0 / 29421.02  # the row's 553 GPa in Ha/bohr^3
    d = _hydrogen_dir(tmp_path / "h16", {"E": (row["E"] + 0.004, 0.002), "F": (-0.5737, 0.001),
                                          "S": (6.0, 0.01), "P": (1.02 * p_ha, 1e-4)})
    comps = {c.key: c for c in compare.compare_runs([d])}
    assert comps["E"].difference == pytest.approx(0.004, abs=1e-12)
    assert comps["E"].sigma == pytest.approx(2.0, rel=1e-9)  # no reference error: run's alone
    assert comps["F"].difference == pytest.approx(0.0, abs=1e-12)
    assert comps["S"].ref_value == 6.25 and comps["S"].unit == "k_B/atom"
    assert comps["P"].unit == "GPa" and comps["P"].value == pytest.approx(1.02 * 553.0)
    table = compare.format_table(list(comps.values()))
    assert "Pierleoni" in table and "+0.004" in table
    # an isolated H2 at R = 1.4 bohr (tilted) against the exact energy per atom; at R = 2 bohr
    # there is no row and it is listed, not dropped
    iso = _hydrogen_dir(tmp_path / "h2", {"E": (-0.58, 0.001)}, boundary="isolated", rs=0.0,
                        n_protons=2, proton_positions=[0.1, 0.2, 0.3, 0.1 + 0.8, 0.2 + 0.6,
                                                       0.3 + 0.96**0.5])
    (e,) = compare.compare_runs([iso])
    assert e.conditions["R"] == pytest.approx(1.4, abs=1e-12)
    assert e.difference == pytest.approx(-0.58 + 1.1744757142204434 / 2, abs=1e-12)
    assert e.ref_label == "exact" and "Sims & Hagstrom" in compare.format_table([e])
    far = _hydrogen_dir(tmp_path / "h2far", {"E": (-0.56, 0.001)}, boundary="isolated", rs=0.0,
                        n_protons=2, proton_positions=[0, 0, -1, 0, 0, 1])
    (e,) = compare.compare_runs([far])
    assert e.ref_value is None and " - " in compare.format_table([e])
    png = compare.plot([iso, far], tmp_path / "h2.png")  # E against R with the exact points
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nor has a static lattice at the CEIMC point's rs and T (CEIMC's protons are a liquid)
    bcc = _hydrogen_dir(tmp_path / "bcc", {"E": (-0.40, 0.007)}, proton_lattice="bcc")
    (e,) = compare.compare_runs([bcc])
    assert e.ref_value is None and e.conditions["clamped"]
    # the plot: E and P against T at rs = 1.25
    d2 = _hydrogen_dir(tmp_path / "h16b", {"E": (-0.45, 0.002), "P": (p_ha, 1e-4)},
                       T_kelvin=5000.0)
    png = compare.plot([d, d2], tmp_path / "h.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an rs × T grid: one series per size and temperature (they shared one per size)
    grid = [(c, r) for _, c, r in compare._load_runs(
        [d, d2, _hydrogen_dir(tmp_path / "h16c", {"E": (-0.44, 0.002)}, rs=1.3),
         _hydrogen_dir(tmp_path / "h16d", {"E": (-0.43, 0.002)}, rs=1.3, T_kelvin=5000.0)],
        "ceimc")]
    series = compare._hydrogen_series(grid, "E", "rs", "T_K")
    assert {k: [x for x, _ in v] for k, v in series.items()} == {
        "qvfe N = 16 (T_K = 5000)": [1.25, 1.3], "qvfe N = 16 (T_K = 6000)": [1.25, 1.3]}
    assert compare.resolve_reference("data/hydrogen_ceimc_refs_fermiflow.csv") == "ceimc"
    with pytest.raises(qvfe.SpecError, match="must be 'hydrogen'"):
        compare.compare_runs([d, _polarized_33(tmp_path / "heg", 10.0, 0.0625)], ref="ceimc")
