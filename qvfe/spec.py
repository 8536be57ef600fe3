"""Run specs: TOML text and ``--set`` overrides become validated, typed, frozen dataclasses.

This is the only place where strings become objects. A spec has the sections ``system``, ``model``,
``optim``, ``sampler``, ``eval`` and ``run``; which keys each section accepts depends on
``system.kind``. Every problem is reported as a :class:`SpecError` whose message names the key and
the allowed values, before any computation starts.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import numbers
import re
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

SECTIONS = ("system", "model", "optim", "sampler", "eval", "run")


class SpecError(ValueError):
    """A spec, an override or a run directory that cannot be used; the message names the key."""


_REQUIRED = object()


def opt(default: Any = _REQUIRED, *, doc: str, lo: float | None = None, hi: float | None = None,
        lo_open: bool = False, choices: tuple | None = None, even: bool = False,
        check: Callable[[Any], str | None] | None = None, length: int | None = None) -> Any:
    """A spec key: its default (absent = required), documentation and allowed range."""
    meta = dict(doc=doc, lo=lo, hi=hi, lo_open=lo_open, choices=choices, even=even, check=check,
                length=length)
    if default is _REQUIRED:
        return field(metadata=meta)
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


def _describe(f: dataclasses.Field) -> str:
    m = f.metadata
    t = _type_name(f.type)
    parts = []
    if m["choices"]:
        return "one of " + ", ".join(repr(c) for c in m["choices"])
    if m["even"]:
        parts.append("an even")
    else:
        parts.append("an" if t[0] in "aeiou" else "a")
    parts.append(t)
    if m["length"]:
        parts.append(f"of length {m['length']}")
    lo, hi = m["lo"], m["hi"]
    if lo is not None and hi is not None:
        parts.append(f"in {'(' if m['lo_open'] else '['}{lo}, {hi}]")
    elif lo is not None:
        parts.append(f"{'>' if m['lo_open'] else '≥'} {lo}")
    elif hi is not None:
        parts.append(f"≤ {hi}")
    return " ".join(parts)


def _type_name(t: Any) -> str:
    t = str(t)
    return {"int": "integer", "float": "number", "bool": "boolean (true/false)", "str": "string",
            "tuple[float, ...]": "list of numbers"}.get(t, t)


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays (a script's np.int64(8), np.float32(0.5), np.array([...])) as
    the Python numbers and lists the checks below take; anything else unchanged."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # np.generic -> Python scalar, np.ndarray -> (nested) list
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int)):
        return float(value)
    return value


def _coerce(section: str, f: dataclasses.Field, value: Any) -> Any:
    value = _plain(value)
    key = f"{section}.{f.name}"
    t = str(f.type)
    m = f.metadata
    want = _describe(f)
    bad = SpecError(f"{key} = {value!r} is invalid: must be {want}")
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                raise bad
            if abs(value) > 2**53:  # 1e30 is 1000000000000000019884624838656
                raise SpecError(f"{key} = {value!r} is invalid: must be {want}, written as an "
                                "integer above 2^53 (a float there is not the integer meant)")
            value = int(value)
    elif t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            value = float(value)
        except OverflowError:  # an integer beyond any float
            raise bad from None
        if not math.isfinite(value):
            raise bad
    elif t == "bool":
        if not isinstance(value, bool):
            raise bad
    elif t == "str":
        if not isinstance(value, str):
            raise bad
    elif t == "tuple[float, ...]":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise bad
        try:
            value = tuple(float(v) for v in value)
        except OverflowError:  # an integer beyond any float
            raise bad from None
        if not all(math.isfinite(v) for v in value):  # nan passes the range checks below
            raise bad
        if m["length"] is not None and len(value) != m["length"]:
            raise bad
    if m["choices"] is not None and value not in m["choices"]:
        raise bad
    scalar = [value] if not isinstance(value, tuple) else list(value)
    for v in scalar:
        if m["lo"] is not None and (v < m["lo"] or (m["lo_open"] and v == m["lo"])):
            raise bad
        if m["hi"] is not None and v > m["hi"]:
            raise bad
    if m["even"] and value % 2:
        raise bad
    if t == "int" and not -2**63 <= value < 2**63:  # what TOML and the checkpoints hold
        raise SpecError(f"{key} = {value!r} is invalid: must be {want} below 2^63")
    if m["check"] is not None:
        msg = m["check"](value)
        if msg:
            raise SpecError(f"{key} = {value!r} is invalid: {msg}")
    return value


# ----------------------------------------------------------------------------------------------
# Sections shared by all kinds
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalSpec:
    samples: int = opt(20000, doc="samples for the final estimates with frozen parameters", lo=1)


@dataclass(frozen=True)
class RunSpec:
    seed: int = opt(0, doc="seed of every random number in the run", lo=0)
    checkpoint_every: int = opt(
        100, doc="steps, and chunks of the final evaluation, between checkpoints", lo=1)
    keep_checkpoints: int = opt(3, doc="how many recent checkpoints to keep", lo=2)
    log_every: int = opt(1, doc="steps between lines of log.jsonl", lo=1)
    print_every: int = opt(50, doc="steps between progress lines when not on a terminal", lo=1)
    x64: bool = opt(True, doc="compute in float64 (energies are always summed in float64 when on)")


# ----------------------------------------------------------------------------------------------
# ising
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IsingSystem:
    kind: str = opt(doc="system kind", choices=("ising",))
    L: int = opt(doc="linear size of the L×L torus", lo=2, hi=64, even=True)
    beta: float = opt(doc="inverse temperature in units of 1/J", lo=0.0, lo_open=True, hi=10.0)
    J: float = opt(1.0, doc="ferromagnetic coupling (energy unit)", lo=0.0, lo_open=True,
                   hi=1000.0)


@dataclass(frozen=True)
class IsingModel:
    layers: int = opt(2, doc="masked hidden layers of the VAN", lo=1, hi=16)
    hidden: int = opt(2, doc="hidden features per lattice site in each layer (width = hidden·L²)",
                      lo=1, hi=64)
    z2_symmetric: bool = opt(True, doc="symmetrize q(s) under global spin flip")


@dataclass(frozen=True)
class IsingOptim:
    steps: int = opt(2000, doc="optimization steps", lo=0)
    method: str = opt("adam", doc="optimizer (learning rate decays by a cosine to 0)",
                      choices=("adam",))
    lr: float = opt(1e-2, doc="initial learning rate", lo=0.0, lo_open=True, hi=1.0)
    anneal_steps: int = opt(0, doc="steps of beta annealing from 0.1*beta to beta (0: off)", lo=0)


@dataclass(frozen=True)
class BatchSampler:
    batch: int = opt(256, doc="samples per optimization step", lo=2)


# ----------------------------------------------------------------------------------------------
# coulomb_trap
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CoulombTrapSystem:
    kind: str = opt(doc="system kind", choices=("coulomb_trap",))
    n: int = opt(doc="number of particles", lo=1, hi=256)
    beta: float = opt(doc="inverse temperature", lo=0.0, lo_open=True, hi=1000.0)
    dim: int = opt(2, doc="spatial dimension", lo=1, hi=3)


@dataclass(frozen=True)
class FlowModel:
    flow: str = opt("realnvp", doc="transform", choices=("realnvp", "maf", "cnf"))
    layers: int = opt(8, doc="coupling / autoregressive layers (cnf: hidden layers of v)", lo=1,
                      hi=64)
    hidden: int = opt(64, doc="hidden units of each conditioner / velocity network", lo=1,
                      hi=4096)
    ode_steps: int = opt(20, doc="cnf: fixed integration steps from t=0 to t=1", lo=1, hi=10000)
    divergence: str = opt("exact", doc="cnf: divergence for ln q",
                          choices=("exact", "hutchinson"))


@dataclass(frozen=True)
class FlowOptim:
    steps: int = opt(2000, doc="optimization steps", lo=0)
    method: str = opt("adam", doc="optimizer (learning rate decays by a cosine to 0)",
                      choices=("adam",))
    lr: float = opt(1e-3, doc="learning rate", lo=0.0, lo_open=True, hi=1.0)
    objective: str = opt("free_energy", doc="training signal",
                         choices=("free_energy", "likelihood", "flow_matching"))
    anneal_steps: int = opt(0, doc="free_energy: steps of beta annealing (0: off)", lo=0)


@dataclass(frozen=True)
class FlowSampler:
    batch: int = opt(512, doc="samples per optimization step", lo=2)
    data_samples: int = opt(20000, doc="likelihood/flow_matching: Metropolis training samples",
                            lo=2)
    data_burn_in: int = opt(2000, doc="Metropolis sweeps discarded before data is kept", lo=0)
    data_thin: int = opt(10, doc="Metropolis sweeps between kept samples", lo=1)


# ----------------------------------------------------------------------------------------------
# quantum systems (shared engine)
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuantumDotSystem:
    kind: str = opt(doc="system kind", choices=("quantum_dot",))
    n_up: int = opt(doc="spin-up electrons", lo=0, hi=64)
    n_down: int = opt(doc="spin-down electrons", lo=0, hi=64)
    T: float = opt(doc="temperature in Hartree", lo=0.0, lo_open=True, hi=100.0)
    dim: int = opt(2, doc="spatial dimension", lo=2, hi=3)
    omega: float = opt(1.0, doc="trap frequency in Hartree", lo=0.0, lo_open=True, hi=100.0)
    coupling: float = opt(1.0, doc="strength λ of the electron-electron Coulomb repulsion", lo=0.0,
                          hi=100.0)
    n_orbitals: int = opt(0, doc="oscillator orbitals per spin in the occupation model "
                          "(0: closed shells up to 12 kT above the Fermi shell)", lo=0, hi=2000)
    orbitals: str = opt("auto", doc="oscillator orbital form: 'polar' (definite |m|, d = 2 only), "
                        "'cartesian', or 'auto' (polar in 2D, Cartesian in 3D)",
                        choices=("auto", "polar", "cartesian"))


@dataclass(frozen=True)
class QuantumModel:
    occupation_hidden: int = opt(64, doc="hidden units of the occupation MADE", lo=1, hi=4096)
    occupation_joint: bool = opt(True, doc="down occupations conditioned on up ones")
    backflow_layers: int = opt(1, doc="backflow layers of the √flow (0: identity)", lo=0, hi=16)
    backflow_hidden: int = opt(16, doc="hidden units of each backflow network", lo=1, hi=1024)
    backflow_strength: float = opt(1.0, doc="pair amplitude in units of the worst-case bound that "
                                   "makes every layer a contraction (1: a bijection for every "
                                   "parameter value; above 1 see qvfe/flows/backflow.py)",
                                   lo=1.0, hi=1000.0)
    backflow_range: float = opt(0.0, doc="periodic box: 0 (default) for backflow layers that "
                                "sum pair pushes (amplitude bounded by 1/N), or a range l in "
                                "units of rs for neighbour-mean layers (each electron moved by the "
                                "mean of its pair pushes weighted by exp(-r/l): a bijection for "
                                "every parameter value with a push that does not shrink with N, "
                                "see qvfe/flows/backflow.py)", lo=0.0, hi=10.0)
    backflow_environment: int = opt(0, doc="periodic box, pair-sum layers: 0 (default), or H "
                                    "channels of each electron's environment (a mean over its "
                                    "partners) that its pair amplitudes also see: a three-body "
                                    "backflow, still a bijection at strength 1 (the bound is "
                                    "tightened; see qvfe/flows/backflow.py)", lo=0, hi=64)
    backflow_axis_amplitudes: bool = opt(True, doc="periodic box: one learned amplitude per "
                                         "Cartesian axis of each pair push (default), or false: "
                                         "one for all axes, which only scales a fixed push "
                                         "direction and stops short of the pair correlation "
                                         "energy (README); runs made before 2026-12 used it and "
                                         "resume only with it")
    backflow_momentum: bool = opt(False, doc="electron gas: condition the backflow on the base "
                                  "state's total momentum (a learned first-layer bias of K and "
                                  "K² per axis), one map per momentum sector; states of "
                                  "different K stay orthogonal, since every translation-"
                                  "invariant map conserves K")
    opposite_spin_layers: int = opt(0, doc="periodic, both spins: layers of the opposite-spin "
                                    "flow before the backflow (each moves every electron by a "
                                    "bounded mean push of the other spin; a bijection for every "
                                    "parameter value at an amplitude that does not shrink with "
                                    "N, see qvfe/flows/opposite_spin.py)", lo=0, hi=16)
    collective_layers: int = opt(0, doc="periodic: layers of the collective flow before the "
                                 "backflow (every electron moved by the density's long waves, "
                                 "whose Jacobian factor is a long-range Jastrow factor to first "
                                 "order; qvfe/flows/collective.py)", lo=0, hi=8)
    collective_shells: int = opt(3, doc="collective_layers > 0: reciprocal shells |m|^2 of its "
                                 "waves", lo=1, hi=12)
    collective_strength: float = opt(1.0, doc="collective_layers > 0: amplitude bound's "
                                     "multiplier; at most 1 every layer is a bijection for every "
                                     "parameter value, above it only where det dZ/dX > 0 (the "
                                     "evaluation's 'fold' reports where not)", lo=0.0, hi=100.0,
                                     lo_open=True)
    laplacian: str = opt("folx", doc="kinetic energy by 'folx' (forward Laplacian, exact), "
                         "'hessian' (jax.hessian, exact; small batches) or 'hutchinson' (folx "
                         "for the base state, an unbiased random estimate for the √flow's "
                         "log-Jacobian: a backflow step several times faster, a little more "
                         "variance; README)", choices=("folx", "hessian", "hutchinson"))
    laplacian_probes: int = opt(1, doc="laplacian = 'hutchinson': random probe vectors per "
                                "sample (the estimate's variance falls as 1/probes)", lo=1,
                                hi=64)
    flow_sectors: str = opt("auto", doc="'auto': the 2D quantum dot with 1 up + 1 down and polar "
                            "orbitals gets one √flow per relative |m| (pair terms only; the "
                            "interaction conserves |m|); 'off': one √flow for all states",
                            choices=("auto", "off"))


@dataclass(frozen=True)
class QuantumOptim:
    steps: int = opt(500, doc="optimization steps", lo=0)
    method: str = opt("sr", doc="optimizer", choices=("sr", "adam"))
    lr: float = opt(0.05, doc="learning rate", lo=0.0, lo_open=True, hi=10.0)
    lr_decay_steps: int = opt(0, doc="> 0: the rate at step t is lr / (1 + t / lr_decay_steps) "
                              "(0: constant)", lo=0)
    damping: float = opt(1e-3, doc="sr: diagonal damping of the metric", lo=0.0, lo_open=True)
    max_norm: float = opt(0.0, doc="sr: cap on the metric length of the natural gradient of "
                          "each block (occupations, flow) before the learning rate (0: off; "
                          "adam: unused)", lo=0.0)
    clip_width: float = opt(5.0, doc="f = T ln p + E_loc clipped at median ± width·MAD for "
                            "the gradients only (a bias where it bites: keep it wide)",
                            lo=0.0, lo_open=True)


@dataclass(frozen=True)
class QuantumSampler:
    batch: int = opt(1024, doc="walkers (samples per step); a multiple of the device count",
                     lo=2)
    mcmc_sweeps: int = opt(10, doc="Metropolis sweeps per step", lo=1, hi=10000)
    burn_in: int = opt(200, doc="Metropolis sweeps before the first step", lo=0)
    init_width: float = opt(0.3, doc="initial Metropolis step width (bohr), then adapted",
                            lo=0.0, lo_open=True)


MIN_PERIODIC_RS = 0.01
"""Smallest Wigner-Seitz radius (bohr) of a periodic box: far denser than any reference (a
tiny rs overflowed the k-grid's energies or divided by a density of 0)."""


@dataclass(frozen=True)
class ElectronGasSystem:
    kind: str = opt(doc="system kind", choices=("electron_gas",))
    n_up: int = opt(doc="spin-up electrons", lo=0, hi=128)
    n_down: int = opt(doc="spin-down electrons", lo=0, hi=128)
    rs: float = opt(doc="Wigner-Seitz radius in bohr", lo=MIN_PERIODIC_RS, hi=200.0)
    theta: float = opt(doc="reduced temperature Θ = T/T_F", lo=0.0, lo_open=True, hi=64.0)
    dim: int = opt(3, doc="spatial dimension (2: square box, 3: cubic box)", lo=2, hi=3)
    theta_reference: str = opt("own", doc="which T_F defines Θ: 'own' (the gas's own "
                               "polarisation, Brown et al. 2013), 'paramagnetic' (GDSMFB) or "
                               "'polarized'", choices=("own", "paramagnetic", "polarized"))
    twist: tuple[float, ...] = opt((), doc="Bloch twist of the k-grid in units of 2π/L, one "
                                   "number per dimension (empty: Γ point)", lo=-0.5, hi=0.5)
    coupling: float = opt(1.0, doc="strength λ of the electron-electron Coulomb (Ewald) "
                          "interaction (0: ideal gas)", lo=0.0, hi=100.0)
    n_orbitals: int = opt(0, doc="plane waves per spin in the occupation model (0: closed "
                          "shells up to 12 kT above the Fermi level)", lo=0, hi=4000)


@dataclass(frozen=True)
class ElectronGasSampler(QuantumSampler):
    """The quantum sampler with the initial step width in units of rs (the box scales with rs)."""

    init_width: float = opt(0.5, doc="initial Metropolis step width in units of rs, then "
                            "adapted", lo=0.0, lo_open=True, hi=100.0)


@dataclass(frozen=True)
class HydrogenSampler(QuantumSampler):
    """The quantum sampler and the protons' local move (periodic, unclamped protons only)."""

    proton_step: float = opt(0.08, doc="per sampling call, a Metropolis move of the protons by "
                             "a random walk of the proton flow's uniform latent variables, of "
                             "this step per coordinate in units of rs (0.08: about half "
                             "accepted at rs = 1.25, N = 16; 0: only fresh proton "
                             "configurations, rarely accepted at N = 32)", lo=0.0, hi=10.0)


CUBIC_CELL_SITES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "sc": ((0, 0, 0),),
    "bcc": ((0, 0, 0), (0.5, 0.5, 0.5)),
    "fcc": ((0, 0, 0), (0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
}
"""Fractional sites of one conventional cell of each ``system.proton_lattice``."""


def hydrogen_electron_counts(system: Any) -> tuple[int, int]:
    """(n_up, n_down) of a hydrogen system: as given, or the n_protons electrons split evenly
    (the extra one up) when both are -1."""
    if system.n_up >= 0:
        return system.n_up, system.n_down
    return (system.n_protons + 1) // 2, system.n_protons // 2


@dataclass(frozen=True)
class HydrogenSystem:
    kind: str = opt(doc="system kind", choices=("hydrogen",))
    n_protons: int = opt(doc="protons (= atoms)", lo=1, hi=256)
    T_kelvin: float = opt(doc="temperature in kelvin", lo=0.0, lo_open=True, hi=1e7)
    boundary: str = opt("periodic", doc="'periodic' (cubic box at density rs, classical "
                        "protons from a flow) or 'isolated' (open space, protons clamped at "
                        "proton_positions)", choices=("periodic", "isolated"))
    rs: float = opt(0.0, doc="Wigner-Seitz radius per proton in bohr (periodic; 0 when "
                    "isolated)", lo=0.0, hi=100.0)
    proton_positions: tuple[float, ...] = opt((), doc="x, y, z of every proton in bohr, one "
                                              "flat list of 3·n_protons numbers: isolated, "
                                              "required; periodic, optional: protons clamped "
                                              "there (static lattice) instead of sampled",
                                              lo=-1000.0, hi=1000.0)
    proton_lattice: str = opt("", doc="periodic: clamp the protons on this cubic lattice "
                              "filling the box (static-lattice calculation; n_protons must be "
                              "m³ for 'sc', 2m³ for 'bcc', 4m³ for 'fcc'); empty: sampled",
                              choices=("", *CUBIC_CELL_SITES))
    n_up: int = opt(-1, doc="spin-up electrons (-1: ceil(n_protons/2))", lo=-1, hi=256)
    n_down: int = opt(-1, doc="spin-down electrons (-1: floor(n_protons/2))", lo=-1, hi=256)
    coupling: float = opt(1.0, doc="strength λ of all Coulomb interactions (0: ideal gases)",
                          lo=0.0, hi=100.0)
    twist: tuple[float, ...] = opt((), doc="periodic: Bloch twist of the k-grid in units of "
                                   "2π/L, three numbers (empty: Γ point)", lo=-0.5, hi=0.5)
    n_orbitals: int = opt(0, doc="base orbitals per spin in the occupation model (0: automatic)",
                          lo=0, hi=4000)


@dataclass(frozen=True)
class ElectronGasModel(QuantumModel):
    """The quantum model plus the ground-state options of periodic electrons."""

    electrons: str = opt("thermal", doc="'thermal': occupations p(n) learned at T; 'ground': "
                         "the electrons' ground configuration only (T ≪ T_F; no electronic "
                         "entropy; an open shell is filled in the orbital list's order)",
                         choices=("thermal", "ground"))
    jastrow_terms: int = opt(0, doc="electrons = 'ground' (hydrogen: with clamped protons, and "
                             "a smooth electron-proton term): an electron-electron Jastrow "
                             "factor with exact cusps and this many learned shape terms per "
                             "spin type beyond its depth (0: none; "
                             "qvfe.jastrow). Not a √flow: the dressed states are then not "
                             "orthonormal, so never with thermal electrons or sampled protons",
                             lo=0, hi=16)
    jastrow_long_range: int = opt(0, doc="with jastrow_terms: the Jastrow factor's long-range "
                                  "term over this many shells of the box's reciprocal vectors, "
                                  "sum_k b |rho_k|^2 per shell (and the electron-proton "
                                  "rho_k rho^p_k* with protons); 0: none (qvfe.jastrow)",
                                  lo=0, hi=12)
    electron_cusps: bool = opt(False, doc="periodic box: a fixed √flow layer (the first; with "
                               "protons, after the exact electron-proton step) that makes the "
                               "electron-electron cusps exact (Kato's slopes for opposite and "
                               "same spins, up to the other maps' tilt of under 1 %, 5 % beside "
                               "a proton) with a shallow correlation hole, so the local energy "
                               "loses the Coulomb 1/r_ij divergence; no parameters, a "
                               "bijection for every parameter value (qvfe/flows/backflow.py). "
                               "Not with jastrow_terms, which has its own cusps")


@dataclass(frozen=True)
class HydrogenModel(ElectronGasModel):
    """The quantum model plus the proton flow and the electron-nucleus layers."""

    proton_flow: str = opt("backflow", doc="flow of the proton density q(S): 'radial' (half of "
                           "the protons moved about each of the other half by a monotone radial "
                           "spline of their distance: holes of any depth), 'push' (the same "
                           "halves pushed aside in 3D by contraction steps), 'coupling' (spline "
                           "coupling layers with a pair push along one axis) or 'backflow' "
                           "(contraction-bounded periodic backflow)",
                           choices=("radial", "push", "coupling", "backflow"))
    proton_layers: int = opt(1, doc="layers of the proton flow q(S) (0: uniform protons; "
                             "coupling: a layer moves each proton once along each axis, half of "
                             "them at a time by a bit of their index, so ⌈log₂ n_protons⌉ layers "
                             "let every pair push apart; push and radial: a layer lets every "
                             "proton move about every other one once, 2⌈log₂ n_protons⌉ "
                             "half-steps)", lo=0, hi=16)
    proton_within_half: bool = opt(True, doc="radial proton flow: each moving proton also moves "
                                   "about the moving ones before it in the layer (false: about "
                                   "the other half only, the flow before 2026-12-07)")
    proton_cell_step: bool = opt(True, doc="radial proton flow: after each ball step a radial "
                                 "spline of the sup-norm distance moves the proton along its "
                                 "ray inside the whole cell about the centre, which can move a "
                                 "hole's mass out of the ball (false: ball steps only)")
    proton_hidden: int = opt(16, doc="hidden units of each proton-flow network", lo=1, hi=1024)
    proton_bins: int = opt(8, doc="spline bins of the coupling proton flow's axis steps and of "
                           "the radial flow's radial maps",
                           lo=1, hi=64)
    proton_prefit_steps: int = opt(0, doc="steps of the proton pre-fit before the joint "
                                   "training: q(S) fitted by the pathwise gradient to protons "
                                   "that the electrons screen linearly (Thomas-Fermi Yukawa "
                                   "pairs), batch 128 (0: start from uniform protons; needs "
                                   "proton_flow = 'radial', 'push' or 'coupling')", lo=0, hi=100000)
    proton_prefit_screening: str = opt("thomas_fermi", doc="electrons' linear screening of "
                                       "the protons in the pre-fit: 'thomas_fermi' (Yukawa "
                                       "pairs) or 'lindhard' (RPA dielectric function, which "
                                       "screens less at the proton spacing)",
                                       choices=("thomas_fermi", "lindhard"))
    proton_prefit_lr: float = opt(0.01, doc="Adam rate of the proton pre-fit (cosine-decayed; "
                                  "0.03 diverged at n_protons = 16)", lo=0.0, lo_open=True,
                                  hi=1.0)
    nuclei_layers: int = opt(1, doc="electron-nucleus layers of the √flow (0: none)", lo=0,
                             hi=16)
    nuclei_hidden: int = opt(16, doc="hidden units of each electron-nucleus network", lo=1,
                             hi=1024)
    cusp_scale: float = opt(0.5, doc="range of the electron-nucleus cusp feature in bohr",
                            lo=0.0, lo_open=True, hi=10.0)
    nuclei_exact_cusp: bool = opt(False, doc="a fixed first electron-nucleus step (range "
                                  "cusp_scale) makes the cusp at every proton exact (slope -1 "
                                  "of ln psi; the local energy stays finite there) and the "
                                  "learned steps smooth; isolated molecules then take smooth "
                                  "Gaussian orbitals (s exponents < 10 bohr^-2)")
    orbitals: str = opt("plane_waves", doc="periodic: the base orbitals, 'plane_waves' (uniform "
                        "density) or 'screened_bands' (for each proton configuration the lowest "
                        "eigenstates of 1/2 k^2 plus the protons' RPA-screened Coulomb "
                        "potential, in the plane waves up to band_cutoff)",
                        choices=("plane_waves", "screened_bands"))
    band_cutoff: float = opt(2.0, doc="screened_bands: the plane waves of the bands' expansion "
                             "reach this many times the largest |k| of the orbital table",
                             lo=1.0, hi=4.0)
    band_tail_cutoff: float = opt(0.0, doc="screened_bands: beyond band_cutoff, up to this many "
                                  "times the largest |k| of the orbital table, the bands carry "
                                  "first-order tails (the cusps' plane waves) without a larger "
                                  "diagonalisation; 0: none", lo=0.0, hi=8.0)
    band_potential_scale: float = opt(1.0, doc="screened_bands: the bands' potential is this "
                                      "many times the protons' RPA-screened Coulomb potential "
                                      "(1: linear screening; any scale gives orthonormal bands, "
                                      "a valid variational state)", lo=0.0, lo_open=True, hi=4.0)
    geminal: str = opt("none", doc="isolated closed shells with electrons = 'ground': a singlet "
                       "geminal det[sum_ab C_ab phi_a(z_i) phi_b(z_j')] over the whole orbital "
                       "table replaces the Hartree-Fock determinants; 'learned': C starts at "
                       "their projector; 'pair_fci' (two electrons): C fixed at the full CI in "
                       "the orbitals, the flows learned", choices=("none", "learned", "pair_fci"))


# ----------------------------------------------------------------------------------------------
# registry
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """The section schemas of one system kind and where its problem builder lives."""

    system: type
    model: type
    optim: type
    sampler: type
    builder: str


KINDS: dict[str, Kind] = {
    "ising": Kind(IsingSystem, IsingModel, IsingOptim, BatchSampler, "qvfe.problems.ising:build"),
    "coulomb_trap": Kind(CoulombTrapSystem, FlowModel, FlowOptim, FlowSampler,
                         "qvfe.problems.coulomb_trap:build"),
    "quantum_dot": Kind(QuantumDotSystem, QuantumModel, QuantumOptim, QuantumSampler,
                        "qvfe.problems.quantum_dot:build"),
    "electron_gas": Kind(ElectronGasSystem, ElectronGasModel, QuantumOptim, ElectronGasSampler,
                         "qvfe.problems.electron_gas:build"),
    "hydrogen": Kind(HydrogenSystem, HydrogenModel, QuantumOptim, HydrogenSampler,
                     "qvfe.problems.hydrogen:build"),
}

PLANNED_KINDS: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A validated run spec. Use :func:`load_spec` to make one."""

    system: Any
    model: Any
    optim: Any
    sampler: Any
    eval: EvalSpec
    run: RunSpec

    @property
    def kind(self) -> str:
        return self.system.kind

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for s in SECTIONS:
            d = dataclasses.asdict(getattr(self, s))
            out[s] = {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def replace(self, **overrides: Any) -> "Spec":
        """A copy with ``{"section.key": value}`` overrides applied and validated."""
        return load_spec(self.to_dict(), overrides=overrides)


def _build_section(section: str, cls: type, raw: Mapping[str, Any]) -> Any:
    if not isinstance(raw, Mapping):
        raise SpecError(f"[{section}] must be a table of keys, got {raw!r}")
    known = {f.name: f for f in fields(cls)}
    for k in raw:
        if k not in known:
            allowed = ", ".join(sorted(known)) or "(none)"
            raise SpecError(f"{section}.{k} is not a known key for this system "
                            f"(allowed: {allowed})")
    values = {}
    for name, f in known.items():
        if name in raw:
            values[name] = _coerce(section, f, raw[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{section}.{name} is required: {f.metadata['doc']}, "
                            f"{_describe(f)}")
    return cls(**values)


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.steps=2000"`` -> ``("optim.steps", 2000)``; the value is read as TOML, else as a
    number TOML refuses (:func:`_loose_number`), else a string."""
    if "=" not in text:
        raise SpecError(f"--set {text!r}: expected section.key=value")
    key, value = text.split("=", 1)
    key = key.strip()
    if key.count(".") != 1 or key.split(".")[0] not in SECTIONS:
        raise SpecError(f"--set {text!r}: the key must be section.key with section one of "
                        f"{', '.join(SECTIONS)}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = _loose_number(value.strip())
    return key, parsed


_INTEGER = re.compile(r"[+-]?\d+")


def _loose_number(text: str) -> Any:
    """Numbers TOML does not take but a shell user writes (``.01``, ``5.``, ``01000``, a list
    ``[.25,.25,.25]``) as numbers; any other text stays a string, for the key's own check."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        pass
    if text.startswith("["):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
        if isinstance(value, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return value
    return text


def load_spec(source: str | Path | Mapping[str, Any],
              overrides: Mapping[str, Any] | list[str] | None = None) -> Spec:
    """Read a spec from a TOML file (or a dict of sections), apply overrides, validate.

    ``overrides`` is ``{"section.key": value}`` or a list of ``"section.key=value"`` strings.
    """
    if isinstance(source, Mapping):
        raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in source.items()}
    else:
        path = Path(source)
        run_dir = False
        try:
            if path.is_dir():
                run_dir = True
                path = path / "spec.toml"
                if not path.is_file():
                    raise SpecError(f"{str(source)!r} is a directory without spec.toml: not a "
                                    "spec file or qvfe run directory")
            if not path.is_file():
                raise SpecError(f"spec file {str(source)!r} does not exist")
            text = path.read_text(encoding="utf-8-sig")  # a BOM (some editors write one)
        except (OSError, UnicodeDecodeError) as e:  # unreadable, name too long, not UTF-8
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise SpecError(f"spec file {str(path)[:200]!r} cannot be read: {reason}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"spec file {str(path)!r} is not valid TOML: {e}") from None
        if run_dir or (path.name == "spec.toml" and any(
                path.parent.joinpath(f).exists() for f in ("checkpoints", "log.jsonl"))):
            _as_saved_before(raw)
    if isinstance(overrides, list):
        overrides = dict(parse_override(o) for o in overrides)
    for key, value in (overrides or {}).items():
        if not isinstance(key, str) or key.count(".") != 1:
            raise SpecError(f"{key!r}: the key must be section.key with section one of "
                            f"{', '.join(SECTIONS)}")
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise SpecError(f"{key}: unknown section {section!r} (sections: {', '.join(SECTIONS)})")
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise SpecError(f"[{section}] must be a table of keys")
        raw[section][name] = value
    for s in raw:
        if s not in SECTIONS:
            raise SpecError(f"[{s}] is not a known section (sections: {', '.join(SECTIONS)})")
    system = raw.get("system", {})
    if not isinstance(system, Mapping):
        raise SpecError(f"[system] must be a table of keys, got {system!r}")
    kind = system.get("kind")
    if kind is None:
        raise SpecError("system.kind is required: one of " + ", ".join(repr(k) for k in KINDS))
    if not isinstance(kind, str) or kind not in KINDS:  # a list or table is not hashable
        if kind in PLANNED_KINDS:
            raise SpecError(f"system.kind = {kind!r} is not available in this version "
                            f"(available: {', '.join(KINDS)})")
        raise SpecError(f"system.kind = {kind!r} is invalid: must be one of "
                        + ", ".join(repr(k) for k in KINDS))
    schema = KINDS[kind]
    classes = dict(system=schema.system, model=schema.model, optim=schema.optim,
                   sampler=schema.sampler, eval=EvalSpec, run=RunSpec)
    built = {s: _build_section(s, classes[s], raw.get(s, {})) for s in SECTIONS}
    spec = Spec(**built)
    _check_consistency(spec)
    return spec


def _as_saved_before(raw: dict[str, Any]) -> None:
    """A run directory's spec.toml holds every key as resolved when the run started; a key added
    since, whose default changes the model, gets the value that reproduces the saved run (its
    checkpoints fit that model only). model.backflow_axis_amplitudes (2026-12): false for the
    periodic backflows of earlier runs; model.proton_within_half and model.proton_cell_step
    (2026-12-07): false for the radial proton flows of earlier runs."""
    system, model = raw.get("system"), raw.get("model")
    if not isinstance(system, dict) or not isinstance(model, dict):
        return
    periodic = system.get("kind") == "electron_gas" or (
        system.get("kind") == "hydrogen" and system.get("boundary", "periodic") == "periodic")
    if periodic and "backflow_layers" in model and "backflow_axis_amplitudes" not in model:
        model["backflow_axis_amplitudes"] = False
    if system.get("kind") == "hydrogen" and "proton_flow" in model:
        for key in ("proton_within_half", "proton_cell_step"):
            model.setdefault(key, False)


VAN_MAX_WIDTH = 4096
"""Largest hidden·L² of the Ising VAN: its masked layers are dense (width)² matrices (weights and
masks), 4096² float64 entries = 134 MB each; 64 × 64² would need 550 GB."""

ISOLATED_MAX_PROTONS = 6
"""Largest isolated hydrogen cluster: its Gaussian basis (21 functions per proton) has an
electron-repulsion tensor of (21·n_protons)⁴ numbers, held three times: 6 GB at 6 protons."""


def _check_unused_model_keys(m: Any) -> None:
    """A key set away from its default where nothing reads it is a mistake the run would not
    show (a user who sets the probes expects them drawn)."""
    default = {f.name: f.default for f in fields(m)}
    if "laplacian_probes" in default and m.laplacian_probes != default["laplacian_probes"] \
            and m.laplacian != "hutchinson":
        raise SpecError(f"model.laplacian_probes = {m.laplacian_probes} is invalid with "
                        f"model.laplacian = {m.laplacian!r}: must be "
                        f"{default['laplacian_probes']} unless the Laplacian is 'hutchinson', "
                        "the only one that draws probes")
    if "band_cutoff" in default and m.band_cutoff != default["band_cutoff"] \
            and m.orbitals != "screened_bands":
        raise SpecError(f"model.band_cutoff = {m.band_cutoff:g} is invalid with model.orbitals "
                        f"= {m.orbitals!r}: must be {default['band_cutoff']:g} unless the "
                        "orbitals are 'screened_bands', whose expansion it sets")


def _check_consistency(spec: Spec) -> None:
    """Cross-key rules that a single key's range cannot express."""
    _check_unused_model_keys(spec.model)
    if spec.kind == "ising" and spec.model.hidden * spec.system.L**2 > VAN_MAX_WIDTH:
        raise SpecError(f"model.hidden = {spec.model.hidden} is invalid with system.L = "
                        f"{spec.system.L}: model.hidden × system.L² must be ≤ {VAN_MAX_WIDTH} "
                        f"(the VAN's dense masked layers hold (hidden·L²)² weights each), so "
                        f"hidden ≤ {VAN_MAX_WIDTH // spec.system.L**2} here")
    if not spec.run.x64 and spec.run.seed >= 2**32:
        raise SpecError(f"run.seed = {spec.run.seed} is invalid with run.x64 = false: must be "
                        "< 2^32 = 4294967296 (a 32-bit key drops the higher bits, so seed + 2^32 "
                        "would repeat the run of seed)")
    if spec.kind == "quantum_dot":
        if spec.system.n_up + spec.system.n_down < 1:
            raise SpecError("system.n_up + system.n_down must be ≥ 1 (got 0 electrons)")
        n_max = max(spec.system.n_up, spec.system.n_down)
        if spec.system.n_orbitals and spec.system.n_orbitals < n_max:
            raise SpecError(f"system.n_orbitals = {spec.system.n_orbitals} is invalid: must be 0 "
                            f"(auto) or ≥ {n_max}, the larger spin population")
        if spec.system.orbitals == "polar" and spec.system.dim != 2:
            raise SpecError(f"system.orbitals = 'polar' is invalid for system.dim = "
                            f"{spec.system.dim}: polar orbitals exist for dim = 2 only "
                            "(use 'cartesian' or 'auto')")
    if spec.kind == "electron_gas":
        s = spec.system
        if s.n_up + s.n_down < 1:
            raise SpecError("system.n_up + system.n_down must be ≥ 1 (got 0 electrons)")
        if s.twist and len(s.twist) != s.dim:
            raise SpecError(f"system.twist = {list(s.twist)} is invalid: must be empty (Γ point) "
                            f"or have system.dim = {s.dim} components")
        if s.theta_reference == "own" and s.n_up and s.n_down and s.n_up != s.n_down:
            raise SpecError(f"system.theta_reference = 'own' is ambiguous for a partially "
                            f"polarised gas (n_up = {s.n_up}, n_down = {s.n_down}): must be "
                            "'paramagnetic' or 'polarized'")
        n_max = max(s.n_up, s.n_down)
        if s.n_orbitals and s.n_orbitals < n_max:
            raise SpecError(f"system.n_orbitals = {s.n_orbitals} is invalid: must be 0 "
                            f"(auto) or ≥ {n_max}, the larger spin population")
        if not spec.run.x64:
            raise SpecError("run.x64 = false is invalid for electron_gas: the Ewald energy "
                            "needs float64 (must be true)")
        if spec.model.jastrow_terms and spec.model.electrons != "ground":
            raise SpecError(f"model.jastrow_terms = {spec.model.jastrow_terms} is invalid with "
                            "model.electrons = 'thermal': must be 0 unless the electrons are "
                            "'ground' (one base state, whose norm is a constant)")
        _check_long_range_jastrow(spec.model)
        if spec.model.jastrow_terms and s.n_up + s.n_down < 2:
            raise SpecError(f"model.jastrow_terms = {spec.model.jastrow_terms} is invalid for "
                            f"{s.n_up + s.n_down} electron: a Jastrow factor needs two electrons "
                            "or more (must be 0)")
    if spec.kind in ("quantum_dot", "electron_gas", "hydrogen"):
        _check_opposite_spin_layers(spec)
        _check_collective_layers(spec)
        _check_backflow_range(spec)
        _check_backflow_environment(spec)
        _check_backflow_axis_amplitudes(spec)
        if spec.kind != "quantum_dot":
            _check_electron_cusps(spec)
        if spec.model.backflow_momentum and spec.kind != "electron_gas":
            raise SpecError(f"model.backflow_momentum = true is invalid for {spec.kind!r}: must "
                            "be false (only the electron gas conserves the electrons' momentum)")
    if spec.kind in ("quantum_dot", "hydrogen") and spec.model.backflow_strength != 1.0 \
            and not _periodic_electrons(spec)[0]:
        raise SpecError(f"model.backflow_strength = {spec.model.backflow_strength:g} is invalid "
                        f"for {spec.kind} here: must be 1 (only a periodic box's backflow checks "
                        "its folds)")
    if spec.kind == "hydrogen":
        _check_hydrogen(spec)
    if spec.kind == "coulomb_trap":
        if spec.system.n * spec.system.dim < 2 and spec.model.flow != "cnf":
            raise SpecError(f"model.flow = {spec.model.flow!r} needs n*dim ≥ 2 degrees of freedom; "
                            "use model.flow = 'cnf' for a single 1-D particle")
        if spec.optim.objective == "flow_matching" and spec.model.flow != "cnf":
            raise SpecError("optim.objective = 'flow_matching' needs model.flow = 'cnf' "
                            f"(got model.flow = {spec.model.flow!r})")


def _periodic_electrons(spec: Spec) -> tuple[bool, int, int]:
    """(periodic box, n_up, n_down) of a quantum system with electrons."""
    s = spec.system
    if spec.kind == "hydrogen":
        return (s.boundary == "periodic", *hydrogen_electron_counts(s))
    return spec.kind == "electron_gas", s.n_up, s.n_down


def _check_opposite_spin_layers(spec: Spec) -> None:
    layers = spec.model.opposite_spin_layers
    if not layers:
        return
    periodic, n_up, n_down = _periodic_electrons(spec)
    if not periodic or not (n_up and n_down):
        raise SpecError(f"model.opposite_spin_layers = {layers} is invalid here (system.kind = "
                        f"{spec.kind!r}, n_up = {n_up}, n_down = {n_down}): must be 0 unless the "
                        "box is periodic and both spins are present")


def _check_collective_layers(spec: Spec) -> None:
    layers = spec.model.collective_layers
    if not layers:
        return
    periodic, n_up, n_down = _periodic_electrons(spec)
    if not periodic or n_up + n_down < 2:
        raise SpecError(f"model.collective_layers = {layers} is invalid here (system.kind = "
                        f"{spec.kind!r}, n_up = {n_up}, n_down = {n_down}): must be 0 unless the "
                        "box is periodic and holds two electrons or more")


def _check_backflow_environment(spec: Spec) -> None:
    m = spec.model
    if not m.backflow_environment:
        return
    periodic, n_up, n_down = _periodic_electrons(spec)
    if not periodic or m.backflow_range or n_up + n_down < 2:
        raise SpecError(f"model.backflow_environment = {m.backflow_environment} is invalid here "
                        f"(system.kind = {spec.kind!r}, {n_up + n_down} electron(s), "
                        f"model.backflow_range = {m.backflow_range:g}): must be 0 unless the box "
                        "is periodic with at least 2 electrons and the backflow sums pair "
                        "pushes (backflow_range = 0)")


def _check_backflow_axis_amplitudes(spec: Spec) -> None:
    if spec.model.backflow_axis_amplitudes or _periodic_electrons(spec)[0]:
        return
    raise SpecError(f"model.backflow_axis_amplitudes = false is invalid for {spec.kind!r} here: "
                    "must be true (only a periodic box's backflow has per-axis amplitudes; the "
                    "open one pushes along the separation)")


def _check_electron_cusps(spec: Spec) -> None:
    m = spec.model
    if not m.electron_cusps:
        return
    periodic, n_up, n_down = _periodic_electrons(spec)
    n = n_up + n_down
    if not periodic or n < 2 or spec.system.coupling == 0.0:
        raise SpecError(f"model.electron_cusps = true is invalid for {spec.kind!r} here "
                        f"({'periodic' if periodic else 'open'} box, {n} electron"
                        f"{'s' if n != 1 else ''}, system.coupling = {spec.system.coupling:g}): "
                        "must be false (a periodic box with ≥ 2 interacting electrons)")
    if m.jastrow_terms:
        raise SpecError(f"model.electron_cusps = true is invalid with model.jastrow_terms = "
                        f"{m.jastrow_terms}: must be false (the Jastrow factor makes the cusps "
                        "itself; both would double them)")


def _check_backflow_range(spec: Spec) -> None:
    m = spec.model
    if not m.backflow_range:
        return
    if m.backflow_range < 0.01:  # exp(-r/l) of every pair underflows to 0/0 (NaN) below ~L/1350
        raise SpecError(f"model.backflow_range = {m.backflow_range:g} is invalid: must be 0 or "
                        "in [0.01, 10.0] (in rs)")
    periodic, n_up, n_down = _periodic_electrons(spec)
    if not periodic:
        raise SpecError(f"model.backflow_range = {m.backflow_range:g} is invalid for "
                        f"{spec.kind!r} here: must be 0 unless the box is periodic")
    n = n_up + n_down
    if n < 2:
        raise SpecError(f"model.backflow_range = {m.backflow_range:g} is invalid with {n} "
                        "electron: must be 0 (a mean over the other electrons needs two)")
    if m.backflow_strength != 1.0:
        raise SpecError(f"model.backflow_strength = {m.backflow_strength:g} is invalid with "
                        f"model.backflow_range = {m.backflow_range:g}: must be 1 (the "
                        "neighbour-mean layers keep their bound)")


def _check_hydrogen(spec: Spec) -> None:
    s = spec.system
    if (s.n_up < 0) != (s.n_down < 0):
        raise SpecError(f"system.n_up = {s.n_up} and system.n_down = {s.n_down} are invalid: "
                        "give both (≥ 0) or neither (-1: split n_protons evenly)")
    if s.n_up >= 0 and s.n_up + s.n_down != s.n_protons:
        raise SpecError(f"system.n_up + system.n_down = {s.n_up + s.n_down} is invalid: must "
                        f"equal system.n_protons = {s.n_protons} (neutral hydrogen)")
    n_up, n_down = hydrogen_electron_counts(s)
    n_max = max(n_up, n_down)
    if s.n_orbitals and s.n_orbitals < n_max:
        raise SpecError(f"system.n_orbitals = {s.n_orbitals} is invalid: must be 0 (auto) or "
                        f"≥ {n_max}, the larger spin population")
    if s.boundary == "periodic":
        if s.rs < MIN_PERIODIC_RS:  # 0, the isolated default, included
            raise SpecError(f"system.rs = {s.rs:g} is invalid: must be in [{MIN_PERIODIC_RS}, "
                            "100.0] for system.boundary = 'periodic'")
        if s.proton_positions and s.proton_lattice:
            raise SpecError("system.proton_positions and system.proton_lattice are invalid "
                            "together: give at most one (clamped protons)")
        if s.proton_positions and len(s.proton_positions) != 3 * s.n_protons:
            raise SpecError(f"system.proton_positions has {len(s.proton_positions)} numbers: "
                            f"must have 3·n_protons = {3 * s.n_protons} (or none: sampled "
                            "protons)")
        if s.proton_lattice:
            per_cell = len(CUBIC_CELL_SITES[s.proton_lattice])
            cells = round((s.n_protons / per_cell) ** (1 / 3))
            if per_cell * cells**3 != s.n_protons:
                raise SpecError(f"system.n_protons = {s.n_protons} is invalid for "
                                f"system.proton_lattice = {s.proton_lattice!r}: must be "
                                f"{per_cell}·m³ (m = 1, 2, ...)")
        if (s.proton_positions or s.proton_lattice) and spec.model.proton_prefit_steps:
            raise SpecError(f"model.proton_prefit_steps = {spec.model.proton_prefit_steps} is "
                            "invalid with clamped protons (system.proton_positions or "
                            "system.proton_lattice): must be 0")
        if s.twist and len(s.twist) != 3:
            raise SpecError(f"system.twist = {list(s.twist)} is invalid: must be empty (Γ point) "
                            "or have 3 components")
        m = spec.model
        if m.proton_prefit_steps and (m.proton_flow == "backflow" or m.proton_layers == 0
                                      or s.n_protons < 2):
            raise SpecError(f"model.proton_prefit_steps = {m.proton_prefit_steps} is invalid "
                            f"with model.proton_flow = {m.proton_flow!r}, model.proton_layers = "
                            f"{m.proton_layers} and system.n_protons = {s.n_protons}: must be 0 "
                            "unless the flow is 'radial', 'push' or 'coupling' with ≥ 1 layer "
                            "and ≥ 2 protons")
    else:
        if s.n_protons > ISOLATED_MAX_PROTONS:
            raise SpecError(f"system.n_protons = {s.n_protons} is invalid for system.boundary = "
                            f"'isolated': must be ≤ {ISOLATED_MAX_PROTONS} (the Gaussian basis "
                            "holds 21 functions per proton, and its electron-repulsion tensor "
                            "(21·n_protons)⁴ numbers: 6 GB at 6 protons, 19 GB at 8)")
        if len(s.proton_positions) != 3 * s.n_protons:
            raise SpecError(f"system.proton_positions has {len(s.proton_positions)} numbers: "
                            f"must have 3·n_protons = {3 * s.n_protons} for system.boundary = "
                            "'isolated'")
        if s.rs != 0.0 or s.twist or s.proton_lattice:
            raise SpecError("system.rs, system.twist and system.proton_lattice are invalid for "
                            "system.boundary = 'isolated': must be left out (0 and empty)")
        if spec.model.proton_prefit_steps:
            raise SpecError(f"model.proton_prefit_steps = {spec.model.proton_prefit_steps} is "
                            "invalid for system.boundary = 'isolated' (clamped protons): must "
                            "be 0")
        if spec.model.orbitals != "plane_waves":
            raise SpecError(f"model.orbitals = {spec.model.orbitals!r} is invalid for "
                            "system.boundary = 'isolated' (Gaussian molecular orbitals): must "
                            "be 'plane_waves' (the default, ignored there)")
    m = spec.model
    if m.band_tail_cutoff and (m.orbitals != "screened_bands"
                               or m.band_tail_cutoff <= m.band_cutoff):
        raise SpecError(f"model.band_tail_cutoff = {m.band_tail_cutoff:g} is invalid with "
                        f"model.orbitals = {m.orbitals!r} and model.band_cutoff = "
                        f"{m.band_cutoff:g}: must be 0 or, with 'screened_bands', larger than "
                        "model.band_cutoff")
    geminal = spec.model.geminal
    if geminal != "none":
        from qvfe.wavefunction import GEMINAL_MAX_PAIRS  # jax only when the option is used

        if s.boundary != "isolated" or spec.model.electrons != "ground":
            raise SpecError(f"model.geminal = {geminal!r} is invalid with system.boundary = "
                            f"{s.boundary!r} and model.electrons = {spec.model.electrons!r}: "
                            "must be 'isolated' (real orbitals) and 'ground' (one base state)")
        most = 1 if geminal == "pair_fci" else GEMINAL_MAX_PAIRS
        if not 1 <= n_up == n_down <= most:
            raise SpecError(f"model.geminal = {geminal!r} is invalid for n_up = {n_up}, n_down = "
                            f"{n_down}: needs a closed shell, n_up = n_down in [1, {most}]")
        if s.coupling != 1.0 and geminal == "pair_fci":
            raise SpecError(f"model.geminal = 'pair_fci' is invalid with system.coupling = "
                            f"{s.coupling:g}: the full CI is that of the Coulomb Hamiltonian "
                            "(must be 1)")
    jastrow_terms = spec.model.jastrow_terms
    _check_long_range_jastrow(spec.model)
    if jastrow_terms and (s.boundary != "periodic" or spec.model.electrons != "ground"
                          or not (s.proton_lattice or s.proton_positions)):
        raise SpecError(f"model.jastrow_terms = {jastrow_terms} is invalid with system.boundary "
                        f"= {s.boundary!r}, model.electrons = {spec.model.electrons!r} and "
                        f"{'clamped' if s.proton_lattice or s.proton_positions else 'sampled'} "
                        "protons: must be 0 unless the box is 'periodic', the electrons "
                        "'ground' and the protons clamped (system.proton_lattice or "
                        "system.proton_positions), where one base state's norm is a constant")
    if jastrow_terms and s.n_protons < 2:
        raise SpecError(f"model.jastrow_terms = {jastrow_terms} is invalid for system.n_protons "
                        f"= {s.n_protons}: a Jastrow factor needs two electrons or more (must "
                        "be 0)")
    _check_distinct_protons(s.proton_positions, box_length=(
        (4 * math.pi * s.n_protons / 3) ** (1 / 3) * s.rs if s.boundary == "periodic" else None))
    if not spec.run.x64:
        raise SpecError("run.x64 = false is invalid for hydrogen: the Coulomb energies need "
                        "float64 (must be true)")


def _check_long_range_jastrow(model) -> None:
    """The long-range term is part of the Jastrow factor: none without one."""
    if model.jastrow_long_range and not model.jastrow_terms:
        raise SpecError(f"model.jastrow_long_range = {model.jastrow_long_range} is invalid with "
                        "model.jastrow_terms = 0 (no Jastrow factor): must be 0, or set "
                        "model.jastrow_terms >= 1")


def _check_distinct_protons(flat: tuple[float, ...], box_length: float | None) -> None:
    """No two clamped protons within 0.001 bohr (of each other's images, in a periodic box)."""
    pos = [flat[i:i + 3] for i in range(0, len(flat), 3)]
    for i in range(len(pos)):
        for j in range(i):
            d = [a - b for a, b in zip(pos[i], pos[j])]
            if box_length is not None:
                d = [x - box_length * round(x / box_length) for x in d]
            if math.hypot(*d) < 1e-3:
                raise SpecError(f"system.proton_positions: protons {j} and {i} coincide "
                                "(must be ≥ 0.001 bohr apart)")


def default_spec_text() -> str:
    """The embedded default spec that ``make run`` / ``qvfe run`` without a spec uses."""
    return resources.files("qvfe").joinpath("defaults/default.toml").read_text()


def default_spec() -> Spec:
    return load_spec(tomllib.loads(default_spec_text()))


def describe_kinds() -> str:
    """Human-readable table of every key, its default and its allowed range, per kind."""
    lines = []
    for kind, schema in KINDS.items():
        lines.append(f"system.kind = {kind!r}")
        classes = dict(system=schema.system, model=schema.model, optim=schema.optim,
                       sampler=schema.sampler, eval=EvalSpec, run=RunSpec)
        for s in SECTIONS:
            for f in fields(classes[s]):
                if f.name == "kind":
                    continue
                default = ("required" if f.default is dataclasses.MISSING
                           and f.default_factory is dataclasses.MISSING else
                           f"default {f.default if f.default is not dataclasses.MISSING else list(f.default_factory())!r}")
                lines.append(f"  {s}.{f.name}: {f.metadata['doc']}; {_describe(f)}; {default}")
        lines.append("")
    return "\n".join(lines)
