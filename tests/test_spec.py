"""Spec validation: every class of bad input names its key and range; overrides; round trip."""

import pytest

from qvfe.spec import SpecError, default_spec, describe_kinds, load_spec, parse_override

ISING = {"system": {"kind": "ising", "L": 4, "beta": 0.44}}
HEG = {"system": {"kind": "electron_gas", "n_up": 3, "n_down": 0, "rs": 4.0, "theta": 0.5}}


def _err(raw, overrides=None) -> str:
    with pytest.raises(SpecError) as e:
        load_spec(raw, overrides=overrides)
    return str(e.value)


def test_defaults_fill_in_and_round_trip(tmp_path):
    spec = load_spec(ISING)
    assert spec.system.J == 1.0 and spec.run.seed == 0
    f = tmp_path / "s.toml"
    f.write_text(spec.to_toml())
    assert load_spec(f) == spec
    assert load_spec(tmp_path.joinpath("s.toml").parent / "s.toml") == spec


H_PERIODIC = {"system": {"kind": "hydrogen", "n_protons": 2, "rs": 1.25, "T_kelvin": 6000.0}}
H_ISOLATED = {"system": {"kind": "hydrogen", "n_protons": 2, "T_kelvin": 1000.0,
                         "boundary": "isolated", "proton_positions": [0, 0, -0.7, 0, 0, 0.7]}}


@pytest.mark.parametrize("raw, overrides, needle", [
    (ISING, {"system.L": 5}, "system.L = 5 is invalid: must be an even integer in [2, 64]"),
    (ISING, {"system.beta": -0.1}, "system.beta = -0.1 is invalid: must be a number in (0.0"),
    (ISING, {"system.beta": 0.0}, "system.beta = 0.0 is invalid"),
    (ISING, {"system.foo": 1}, "system.foo is not a known key for this system (allowed: J, L"),
    (ISING, {"optim.steps": -1}, "optim.steps = -1 is invalid: must be an integer ≥ 0"),
    (ISING, {"optim.steps": 1.5}, "optim.steps = 1.5 is invalid"),
    (ISING, {"optim.method": "sgd"}, "optim.method = 'sgd' is invalid: must be one of 'adam'"),
    (ISING, {"sampler.batch": True}, "sampler.batch = True is invalid"),
    (ISING, {"run.x64": "yes"}, "run.x64 = 'yes' is invalid: must be a boolean"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1, "dim": 3,
                 "orbitals": "polar"}}, None, "system.orbitals = 'polar' is invalid for "
     "system.dim = 3"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.flow_sectors": "on"}, "model.flow_sectors = 'on' is invalid"),
    ({"system": {"kind": "ising", "L": 4}}, None, "system.beta is required"),
    ({"system": {"L": 4}}, None, "system.kind is required"),
    ({"system": {"kind": "spin_glass"}}, None, "system.kind = 'spin_glass' is invalid"),
    ({"system": {"kind": "hydrogen"}}, None, "system.n_protons is required"),
    (H_PERIODIC, {"system.rs": 0.0}, "system.rs = 0 is invalid: must be in [0.01, 100.0] for "
     "system.boundary = 'periodic'"),
    (HEG, {"model.opposite_spin_layers": 1}, "model.opposite_spin_layers = 1 is invalid here "
     "(system.kind = 'electron_gas', n_up = 3, n_down = 0): must be 0 unless the box is periodic "
     "and both spins are present"),
    (H_ISOLATED, {"model.opposite_spin_layers": 2}, "model.opposite_spin_layers = 2 is invalid"),
    (H_ISOLATED, {"model.collective_layers": 1}, "model.collective_layers = 1 is invalid here "
     "(system.kind = 'hydrogen'"),
    (HEG, {"model.collective_layers": 9}, "model.collective_layers = 9 is invalid: must be an "
     "integer in [0, 8]"),
    (HEG, {"model.collective_strength": 0.0}, "model.collective_strength = 0.0 is invalid: must be a "
     "number in (0.0, 100.0]"),
    (HEG, {"model.backflow_range": 0.5, "model.backflow_strength": 2.0},
     "model.backflow_strength = 2 is invalid with model.backflow_range = 0.5: must be 1"),
    (HEG, {"model.backflow_range": 0.5, "system.n_up": 1}, "model.backflow_range = 0.5 is "
     "invalid with 1 electron: must be 0"),
    (HEG, {"model.backflow_range": -0.5}, "model.backflow_range = -0.5 is invalid: must be a "
     "number in [0.0, 10.0]"),
    (HEG, {"model.backflow_environment": 4, "model.backflow_range": 0.5},
     "model.backflow_environment = 4 is invalid here (system.kind = 'electron_gas', 3 "
     "electron(s), model.backflow_range = 0.5): must be 0 unless the box is periodic with at "
     "least 2 electrons and the backflow sums pair pushes (backflow_range = 0)"),
    (HEG, {"model.backflow_environment": 2, "system.n_up": 1},
     "model.backflow_environment = 2 is invalid here"),
    (H_ISOLATED, {"model.backflow_environment": 2}, "model.backflow_environment = 2 is invalid"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.backflow_environment": 2}, "model.backflow_environment = 2 is invalid"),
    (HEG, {"model.backflow_environment": 65}, "model.backflow_environment = 65 is invalid: "
     "must be an integer in [0, 64]"),
    (H_PERIODIC, {"model.backflow_momentum": True}, "model.backflow_momentum = true is invalid "
     "for 'hydrogen': must be false (only the electron gas conserves the electrons' momentum)"),
    (H_ISOLATED, {"model.backflow_axis_amplitudes": False}, "model.backflow_axis_amplitudes = "
     "false is invalid for 'hydrogen' here: must be true"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.backflow_axis_amplitudes": False}, "model.backflow_axis_amplitudes = false is "
     "invalid for 'quantum_dot'"),
    (HEG, {"model.backflow_axis_amplitudes": "no"}, "model.backflow_axis_amplitudes = 'no' is "
     "invalid: must be a boolean"),
    (H_ISOLATED, {"model.backflow_range": 0.5}, "model.backflow_range = 0.5 is invalid for "
     "'hydrogen' here: must be 0 unless the box is periodic"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.backflow_range": 0.5}, "model.backflow_range = 0.5 is invalid for 'quantum_dot'"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.opposite_spin_layers": 1}, "model.opposite_spin_layers = 1 is invalid"),
    (H_PERIODIC, {"model.opposite_spin_layers": 17}, "model.opposite_spin_layers = 17 is invalid: "
     "must be an integer in [0, 16]"),
    (H_PERIODIC, {"system.n_up": 3}, "give both (≥ 0) or neither"),
    (H_PERIODIC, {"system.n_up": 3, "system.n_down": 0}, "must equal system.n_protons = 2"),
    (H_PERIODIC, {"system.T_kelvin": 0.0}, "system.T_kelvin = 0.0 is invalid: must be a number "
     "in (0.0"),
    (H_PERIODIC, {"system.proton_positions": [0, 0, 0, 1, 1]},
     "system.proton_positions has 5 numbers: must have 3·n_protons = 6"),
    (H_PERIODIC, {"system.proton_positions": [0, 0, 0, 1, 1, 1], "system.proton_lattice": "bcc"},
     "system.proton_positions and system.proton_lattice are invalid together"),
    (H_PERIODIC, {"system.proton_positions": [0, 0, 0, 2.53873, 0, 0]},
     "protons 0 and 1 coincide"),  # periodic images: L = 2.53873 at rs = 1.25, 2 protons
    (H_PERIODIC, {"system.proton_lattice": "fcc"}, "system.n_protons = 2 is invalid for "
     "system.proton_lattice = 'fcc': must be 4·m³"),
    (H_PERIODIC, {"system.proton_lattice": "hcp"}, "system.proton_lattice = 'hcp' is invalid"),
    (H_PERIODIC, {"system.proton_lattice": "bcc", "model.proton_flow": "coupling",
                  "model.proton_prefit_steps": 5}, "model.proton_prefit_steps = 5 is invalid "
     "with clamped protons"),
    (H_PERIODIC, {"run.x64": False}, "run.x64 = false is invalid for hydrogen"),
    (H_PERIODIC, {"model.cusp_scale": 0.0}, "model.cusp_scale = 0.0 is invalid"),
    (H_PERIODIC, {"system.n_protons": 4, "system.n_orbitals": 1},
     "system.n_orbitals = 1 is invalid: must be 0 (auto) or ≥ 2"),
    (H_PERIODIC, {"model.electrons": "excited"}, "model.electrons = 'excited' is invalid"),
    (H_PERIODIC, {"model.proton_flow": "realnvp"}, "model.proton_flow = 'realnvp' is invalid: "
     "must be one of 'radial', 'push', 'coupling', 'backflow'"),
    (H_PERIODIC, {"model.proton_bins": 0}, "model.proton_bins = 0 is invalid"),
    (H_ISOLATED, {"system.proton_positions": [0, 0, 0]}, "system.proton_positions has 3 "
     "numbers: must have 3·n_protons = 6"),
    (H_ISOLATED, {"system.proton_positions": [0, 0, 0, 0, 0, 0]}, "protons 0 and 1 coincide"),
    (H_ISOLATED, {"system.rs": 1.0}, "invalid for system.boundary = 'isolated'"),
    (H_ISOLATED, {"model.nuclei_exact_cusp": 1}, "model.nuclei_exact_cusp = 1 is invalid: must "
     "be a boolean"),
    (H_ISOLATED, {"system.boundary": "open"}, "system.boundary = 'open' is invalid: must be "
     "one of 'periodic', 'isolated'"),
    (H_ISOLATED, {"model.geminal": "pair_fci"}, "model.geminal = 'pair_fci' is invalid with "
     "system.boundary = 'isolated' and model.electrons = 'thermal': must be 'isolated' (real "
     "orbitals) and 'ground'"),
    (H_ISOLATED, {"model.geminal": "learned", "model.electrons": "ground", "system.n_up": 2,
                  "system.n_down": 0}, "model.geminal = 'learned' is invalid for n_up = 2, "
     "n_down = 0: needs a closed shell, n_up = n_down in [1, 16]"),
    (H_ISOLATED, {"model.geminal": "pair_fci", "model.electrons": "ground",
                  "system.coupling": 0.5}, "model.geminal = 'pair_fci' is invalid with "
     "system.coupling = 0.5"),
    (H_ISOLATED, {"model.geminal": "agp"}, "model.geminal = 'agp' is invalid: must be one of "
     "'none', 'learned', 'pair_fci'"),
    (H_PERIODIC, {"model.jastrow_terms": 2, "model.electrons": "ground"},
     "model.jastrow_terms = 2 is invalid with system.boundary = 'periodic', model.electrons = "
     "'ground' and sampled protons: must be 0 unless"),
    (H_PERIODIC, {"model.jastrow_terms": 2, "system.proton_lattice": "bcc"},
     "model.jastrow_terms = 2 is invalid with system.boundary = 'periodic', model.electrons = "
     "'thermal' and clamped protons"),
    (H_ISOLATED, {"model.jastrow_terms": 2, "model.electrons": "ground"},
     "model.jastrow_terms = 2 is invalid with system.boundary = 'isolated'"),
    (H_PERIODIC, {"model.jastrow_terms": 2, "model.electrons": "ground", "system.n_protons": 1,
                  "system.proton_lattice": "sc"}, "model.jastrow_terms = 2 is invalid for "
     "system.n_protons = 1: a Jastrow factor needs two electrons or more"),
    (H_PERIODIC, {"model.jastrow_terms": 17}, "model.jastrow_terms = 17 is invalid: must be an "
     "integer in [0, 16]"),
    (HEG, {"model.jastrow_terms": 2}, "model.jastrow_terms = 2 is invalid with model.electrons "
     "= 'thermal': must be 0 unless the electrons are 'ground'"),
    (HEG, {"model.jastrow_terms": 2, "model.electrons": "ground", "system.n_up": 1,
           "system.n_down": 0}, "model.jastrow_terms = 2 is invalid for 1 electron"),
    (H_ISOLATED, {"model.electron_cusps": True}, "model.electron_cusps = true is invalid for "
     "'hydrogen' here (open box, 2 electrons, system.coupling = 1): must be false"),
    (HEG, {"model.electron_cusps": True, "system.n_up": 1, "system.n_down": 0},
     "model.electron_cusps = true is invalid for 'electron_gas' here (periodic box, 1 electron,"),
    (HEG, {"model.electron_cusps": True, "system.coupling": 0.0},
     "system.coupling = 0): must be false (a periodic box with ≥ 2 interacting electrons)"),
    (HEG, {"model.electron_cusps": True, "model.jastrow_terms": 2, "model.electrons": "ground"},
     "model.electron_cusps = true is invalid with model.jastrow_terms = 2: must be false"),
    (HEG, {"model.jastrow_long_range": 3, "model.electrons": "ground"},
     "model.jastrow_long_range = 3 is invalid with model.jastrow_terms = 0"),
    (H_PERIODIC, {"model.jastrow_long_range": 2}, "model.jastrow_long_range = 2 is invalid with "
     "model.jastrow_terms = 0"),
    (HEG, {"model.jastrow_long_range": 13}, "model.jastrow_long_range = 13 is invalid: must be an "
     "integer in [0, 12]"),
    ({"system": {"kind": "quantum_dot", "n_up": 1, "n_down": 1, "T": 0.1}},
     {"model.jastrow_terms": 2}, "model.jastrow_terms is not a known key"),
    (H_ISOLATED, {"model.orbitals": "screened_bands"}, "model.orbitals = 'screened_bands' is "
     "invalid for system.boundary = 'isolated'"),
    (H_PERIODIC, {"model.orbitals": "bands"}, "model.orbitals = 'bands' is invalid: must be one "
     "of 'plane_waves', 'screened_bands'"),
    (H_PERIODIC, {"model.band_cutoff": 0.5}, "model.band_cutoff = 0.5 is invalid"),
    (H_PERIODIC, {"model.band_tail_cutoff": 3.0}, "model.band_tail_cutoff = 3 is invalid with "
     "model.orbitals = 'plane_waves' and model.band_cutoff = 2: must be 0 or, with "
     "'screened_bands', larger than model.band_cutoff"),
    (H_PERIODIC, {"model.orbitals": "screened_bands", "model.band_tail_cutoff": 2.0},
     "model.band_tail_cutoff = 2 is invalid with model.orbitals = 'screened_bands'"),
    (H_PERIODIC, {"model.band_tail_cutoff": 9.0}, "model.band_tail_cutoff = 9.0 is invalid"),
    (H_PERIODIC, {"model.band_potential_scale": 0.0}, "model.band_potential_scale = 0.0 is "
     "invalid"),
    ({**ISING, "optimizer": {}}, None, "[optimizer] is not a known section"),
    ({"system": {"kind": "coulomb_trap", "n": 1, "dim": 1, "beta": 1.0}}, None,
     "model.flow = 'realnvp' needs n*dim ≥ 2"),
    (HEG, {"system.twist": [0.1, 0.2]}, "system.twist = [0.1, 0.2] is invalid: must be empty"),
    (HEG, {"system.twist": [0.1, 0.2, 0.7]}, "system.twist = [0.1, 0.2, 0.7] is invalid: must "
     "be a list of numbers in [-0.5, 0.5]"),
    (HEG, {"system.n_down": 2}, "system.theta_reference = 'own' is ambiguous"),
    (HEG, {"system.theta": 0.0}, "system.theta = 0.0 is invalid: must be a number in (0.0, 64"),
    (HEG, {"system.rs": -1.0}, "system.rs = -1.0 is invalid"),
    (HEG, {"run.x64": False}, "run.x64 = false is invalid for electron_gas"),
    (HEG, {"system.n_orbitals": 2}, "system.n_orbitals = 2 is invalid: must be 0 (auto) or ≥ 3"),
    (HEG, {"sampler.init_width": 0.0}, "sampler.init_width = 0.0 is invalid"),
    (HEG, {"system.omega": 1.0}, "system.omega is not a known key"),
    (HEG, {"model.backflow_strength": 0.5}, "model.backflow_strength = 0.5 is invalid: must be"),
    (H_ISOLATED, {"model.backflow_strength": 4.0}, "model.backflow_strength = 4 is invalid for "
     "hydrogen here: must be 1"),
    # a list or table for system.kind is unhashable: once a TypeError traceback
    (ISING, {"system.kind": [1]}, "system.kind = [1] is invalid: must be one of 'ising'"),
    (ISING, {"system.kind": {"a": 1}}, "system.kind = {'a': 1} is invalid: must be one of"),
    ({"system": "ising"}, None, "[system] must be a table of keys, got 'ising'"),
    # nan in a list passed the range checks (a nan twist ran out of memory building the k-grid)
    (HEG, {"system.twist": [float("nan"), 0.1, 0.1]}, "system.twist = [nan, 0.1, 0.1] is invalid: "
     "must be a list of numbers in [-0.5, 0.5]"),
    (H_ISOLATED, {"system.proton_positions": [0, 0, -0.7, 0, 0, float("nan")]},
     "system.proton_positions = [0, 0, -0.7, 0, 0, nan] is invalid: must be a list of numbers"),
    (HEG, {"system.twist": [10**400, 0, 0]}, "is invalid: must be a list of numbers in [-0.5"),
    (ISING, {"system.beta": 10**400}, "is invalid: must be a number in (0.0, 10.0]"),
    # 1e30 steps became int(1e30) = 1000000000000000019884624838656 and ran forever
    (ISING, {"optim.steps": 1e30}, "optim.steps = 1e+30 is invalid: must be an integer ≥ 0, "
     "written as an integer above 2^53"),
    (ISING, {"optim.steps": 2**63}, "optim.steps = 9223372036854775808 is invalid: must be an "
     "integer ≥ 0 below 2^63"),
    # J = 1e308 overflowed the energies to nan at step 1
    (ISING, {"system.J": 1e308}, "system.J = 1e+308 is invalid: must be a number in (0.0, 1000.0]"),
    # rs = 1e-300 divided by a density of 0 in the problem builder (a traceback)
    (HEG, {"system.rs": 1e-300}, "system.rs = 1e-300 is invalid: must be a number in [0.01, 200.0]"),
    (H_PERIODIC, {"system.rs": 1e-300}, "system.rs = 1e-300 is invalid: must be in [0.01, 100.0] "
     "for system.boundary = 'periodic'"),
    # a 32-bit key keeps the low 32 bits of the seed: seed + 2^32 repeated the run of seed
    (ISING, {"run.x64": False, "run.seed": 2**32}, "run.seed = 4294967296 is invalid with "
     "run.x64 = false: must be < 2^32"),
    (ISING, {"steps": 3}, "'steps': the key must be section.key with section one of system"),
    # its weights exp(-r/l) all underflowed: z and ln|det| NaN (a review of the flows' bounds)
    (HEG, {"model.backflow_range": 0.001}, "model.backflow_range = 0.001 is invalid: must be 0 "
     "or in [0.01, 10.0]"),
])
def test_bad_input_names_the_key(raw, overrides, needle):
    assert needle in _err(raw, overrides)


def test_run_directories_of_earlier_versions_keep_their_model(tmp_path):
    """A run directory's spec.toml (every key resolved when the run started) that predates
    model.backflow_axis_amplitudes describes a shared-amplitude backflow, whose checkpoints
    fit only that model (likewise a radial proton flow's before model.proton_within_half and
    model.proton_cell_step); a user's spec file without the key gets the default."""
    saved = load_spec(HEG).to_toml().replace("backflow_axis_amplitudes = true\n", "")
    assert "backflow_axis_amplitudes" not in saved
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.toml").write_text(saved)
    assert load_spec(run).model.backflow_axis_amplitudes is False
    assert load_spec(run / "spec.toml").model.backflow_axis_amplitudes is False
    assert load_spec(run, ["optim.steps=9"]).model.backflow_axis_amplitudes is False
    (tmp_path / "user.toml").write_text(saved)
    assert load_spec(tmp_path / "user.toml").model.backflow_axis_amplitudes is True
    assert load_spec(HEG).model.backflow_axis_amplitudes is True
    # a run directory of this version keeps what it says
    (run / "spec.toml").write_text(load_spec(HEG).to_toml())
    assert load_spec(run).model.backflow_axis_amplitudes is True

    # the radial proton flow before its ordered halves and cell steps (2026-12-07)
    saved = load_spec(H_PERIODIC, ["model.proton_flow=radial"]).to_toml()
    saved = saved.replace("proton_within_half = true\n", "").replace(
        "proton_cell_step = true\n", "")
    (run / "spec.toml").write_text(saved)
    old = load_spec(run).model
    assert old.proton_within_half is False and old.proton_cell_step is False
    (tmp_path / "user.toml").write_text(saved)
    new = load_spec(tmp_path / "user.toml").model
    assert new.proton_within_half is True and new.proton_cell_step is True


def test_other_kinds_keys_are_rejected():
    # a coulomb_trap key in an ising spec is an unknown key, not silently ignored
    assert "optim.objective is not a known key" in _err(ISING, {"optim.objective": "likelihood"})


def test_missing_file_and_bad_toml(tmp_path):
    assert "does not exist" in _err(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[system\nkind=")
    assert "is not valid TOML" in _err(bad)


def test_unreadable_spec_files(tmp_path):
    assert "is a directory without spec.toml" in _err(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xd9\xff[system]")
    assert "cannot be read: 'utf-8' codec can't decode" in _err(binary)
    assert "cannot be read: File name too long" in _err(tmp_path / ("a" * 5000))
    table_array = tmp_path / "arr.toml"
    table_array.write_text('[[system]]\nkind = "ising"\n')
    assert "[system] must be a table of keys, got [{'kind': 'ising'}]" in _err(table_array)


def test_integers_and_seeds_within_range():
    spec = load_spec(ISING, {"optim.steps": 1e3, "run.seed": 2**32})
    assert spec.optim.steps == 1000 and isinstance(spec.optim.steps, int)
    assert spec.run.seed == 2**32  # float64 keys hold 64-bit seeds
    assert load_spec(ISING, {"run.x64": False, "run.seed": 2**32 - 1}).run.seed == 2**32 - 1
    assert load_spec(HEG, {"system.rs": 0.01}).system.rs == 0.01
    assert load_spec(H_PERIODIC, {"system.rs": 0.01}).system.rs == 0.01


def test_overrides_parse_toml_values():
    assert parse_override("optim.steps=20") == ("optim.steps", 20)
    assert parse_override("optim.lr=1e-2") == ("optim.lr", 0.01)
    assert parse_override("model.z2_symmetric=false") == ("model.z2_symmetric", False)
    assert parse_override("optim.method=adam") == ("optim.method", "adam")
    with pytest.raises(SpecError, match="section.key=value"):
        parse_override("steps")
    with pytest.raises(SpecError, match="section one of"):
        parse_override("steps=3")
    spec = load_spec(ISING, overrides=["optim.steps=7", "system.beta=0.3"])
    assert spec.optim.steps == 7 and spec.system.beta == 0.3
    assert spec.replace(**{"optim.lr": 0.1}).optim.lr == 0.1
    # numbers as a shell user writes them, which TOML refuses (a review found them refused)
    assert parse_override("optim.lr=.01") == ("optim.lr", 0.01)
    assert parse_override("optim.lr=5.") == ("optim.lr", 5.0)
    assert parse_override("optim.steps=01000") == ("optim.steps", 1000)
    assert parse_override("system.twist=[.25,.25,.25]") == ("system.twist", [0.25] * 3)
    assert parse_override("system.twist=[.25,true]") == ("system.twist", "[.25,true]")
    assert parse_override("model.orbitals=screened_bands") == ("model.orbitals",
                                                               "screened_bands")
    assert load_spec(HEG, overrides=["optim.lr=.02"]).optim.lr == 0.02


def test_numpy_values_are_taken_as_numbers():
    np = pytest.importorskip("numpy")
    spec = load_spec(ISING, overrides={"system.L": np.int64(8), "system.beta": np.float32(0.5),
                                       "model.z2_symmetric": np.bool_(False)})
    assert (spec.system.L, spec.system.beta, spec.model.z2_symmetric) == (8, 0.5, False)
    assert type(spec.system.L) is int and type(spec.system.beta) is float
    twisted = load_spec(HEG, overrides={"system.twist": np.array([0.25, 0.0, -0.25])})
    assert twisted.system.twist == (0.25, 0.0, -0.25)
    assert "system.L = 7 is invalid" in _err(ISING, {"system.L": np.int32(7)})


def test_a_spec_file_with_a_byte_order_mark_is_read(tmp_path):
    f = tmp_path / "bom.toml"
    f.write_bytes(b"\xef\xbb\xbf" + load_spec(ISING).to_toml().encode())
    assert load_spec(f) == load_spec(ISING)


def test_keys_that_nothing_would_read_are_refused():
    assert ("model.laplacian_probes = 4 is invalid with model.laplacian = 'folx': must be 1"
            in _err(HEG, {"model.laplacian_probes": 4}))
    assert load_spec(HEG, {"model.laplacian_probes": 4,
                           "model.laplacian": "hutchinson"}).model.laplacian_probes == 4
    assert ("model.band_cutoff = 3 is invalid with model.orbitals = 'plane_waves': must be 2"
            in _err(H_PERIODIC, {"model.band_cutoff": 3.0}))
    assert load_spec(H_PERIODIC, {"model.band_cutoff": 3.0, "model.orbitals": "screened_bands"}
                     ).model.band_cutoff == 3.0


def test_an_isolated_cluster_is_bounded():
    """Its Gaussian basis' repulsion tensor, (21 n_protons)^4 numbers, is 19 GB at 8 protons."""
    positions = [float(v) for i in range(7) for v in (1.5 * i, 0.0, 0.0)]
    raw = {"system": {**H_ISOLATED["system"], "n_protons": 7, "proton_positions": positions}}
    assert ("system.n_protons = 7 is invalid for system.boundary = 'isolated': must be ≤ 6"
            in _err(raw))


def test_the_ising_van_width_is_bounded():
    """Its dense masked layers hold (hidden·L²)² weights: 64 × 64² would need 550 GB."""
    assert load_spec(ISING, {"system.L": 64, "model.hidden": 1}).model.hidden == 1
    assert ("model.hidden = 2 is invalid with system.L = 64: model.hidden × system.L² must be "
            "≤ 4096" in _err(ISING, {"system.L": 64, "model.hidden": 2}))


def test_default_spec_and_key_listing():
    spec = default_spec()
    assert spec.optim.steps > 0
    text = describe_kinds()
    assert "system.beta" in text and "coulomb_trap" in text
