"""The uniform electron gas (jellium) at finite temperature, on the quantum engine.

N↑ + N↓ electrons in a periodic cubic (3D) or square (2D) box of side L(rs, N) with a uniform
neutralising background, H = Σ_i −½∇_i² + λ V_Ewald(X) (electron–electron, electron–background and
background–background terms, with the Madelung self-image term). Temperature from Θ = T/T_F with
T_F of the gas's own polarisation by default (Brown et al. 2013; see ``qvfe.physics.heg``).

Base states are Slater determinants (one per spin) of plane waves e^{ik·z}/√V, k = 2π(m + twist)/L,
from an energy-ordered list; the occupation model starts at the exact non-interacting Boltzmann
distribution over that list and the √flow is a periodic backflow (after the opposite-spin flow
of ``model.opposite_spin_layers``, if any), the identity at the start.
Results per electron in Hartree (Rydberg also written, as in Brown's tables); the pressure by the
virial relation P = (2K + V)/(d V_cell) (Coulomb energies scale as 1/L), in Ha/bohr³.

Exact references put in ``info``: at λ = 0 the canonical ideal gas on the same k-list (the optimum
is then reachable exactly); for two interacting electrons (↑↑ or ↑↓) the exact canonical F, E, S
by diagonalisation (``qvfe.physics.heg_exact``; the variational F cannot lie below it), where its
plane-wave cutoff is converged; whenever the ground occupation closes its shells, its
Hartree–Fock energy ``E_HF`` (the T → 0 value of a run with the identity flow).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.autoregressive.occupations import GroundOccupations, SpinfulOccupations
from qvfe.density_matrix import DensityMatrix
from qvfe.engine import EngineConfig, make_quantum_problem
from qvfe.flows.backflow import Backflow
from qvfe.flows.collective import CollectiveFlow
from qvfe.flows.opposite_spin import OppositeSpinFlow
from qvfe.jastrow import PeriodicJastrow
from qvfe.physics import heg, heg_exact
from qvfe.physics.ewald import make_ewald
from qvfe.physics.ideal_fermi import spinful_thermo
from qvfe.physics.orbital_values import PlaneWaveBasis
from qvfe.physics.orbitals import plane_wave_orbitals, plane_waves_within
from qvfe.problem import Problem
from qvfe.spec import SpecError
from qvfe.wavefunction import SquareRootFlowWavefunction

MAX_ORBITALS = 4000
# two-electron diagonalisation: relative plane waves within this radius (units of 2π/L), and the
# largest change of F per electron from one unit less for which the result counts as exact
PAIR_CUTOFF = {2: 12.0, 3: 6.0}
PAIR_TRUNCATION = 2e-6
BOLTZMANN_WINDOW = 12.0  # levels up to 12 kT above the Fermi level: weight e^-12 ≈ 6e-6


def auto_orbital_count(dim: int, L: float, n_max: int, T: float,
                       twist: np.ndarray | None) -> int:
    """Plane waves per spin with ε ≤ ε_F + 12 kT, ε_F the n_max-th lowest level; whole shells
    (more than ``MAX_ORBITALS``, not counted to the end, where that is exceeded)."""
    _, levels = plane_wave_orbitals(dim, L, n_max, twist)
    cut = levels[-1] + BOLTZMANN_WINDOW * T
    return len(plane_waves_within(dim, L, cut, twist, limit=MAX_ORBITALS)[1])


def hartree_fock_reference(k_vectors: np.ndarray, energies: np.ndarray, n_up: int, n_down: int,
                           L: float, coupling: float) -> float | None:
    """E_HF per electron of the ground occupation, or None if a spin species has an open shell."""
    for n_s in (n_up, n_down):
        if 0 < n_s < len(energies) and energies[n_s] - energies[n_s - 1] < 1e-9 * energies[n_s]:
            return None
    dim = k_vectors.shape[1]
    hf = heg.hf_energy([k_vectors[:n_up], k_vectors[:n_down]], L * np.eye(dim))
    return (hf.kinetic + coupling * (hf.exchange + hf.madelung)) / (n_up + n_down)


def two_electron_reference(n_up: int, n_down: int, dim: int, L: float, T: float,
                           twist: np.ndarray, coupling: float) -> dict[str, float] | None:
    """Exact F, E, S per electron of an interacting pair (None for other N, λ = 0, or where the
    cutoff is not converged to ``PAIR_TRUNCATION``: ↑↓ at high density, the cusp)."""
    if n_up + n_down != 2 or coupling == 0.0:
        return None
    ex = heg_exact.two_electron_thermo(L, dim, polarized=n_up != 1, temperature=T, twist=twist,
                                       coupling=coupling, p_cut=PAIR_CUTOFF[dim])
    if ex.truncation > PAIR_TRUNCATION:
        return None
    return {"F_exact": ex.F, "E_exact": ex.E, "S_exact": ex.S}


def make_backflow(spec: Any) -> Backflow:
    """The periodic √flow of an electron-gas spec (its parameters are ``theta["backflow"]``)."""
    s = spec.system
    L = heg.box_length(s.rs, s.n_up + s.n_down, s.dim)
    momentum = spec.model.backflow_momentum and spec.model.backflow_layers > 0
    return make_periodic_backflow(spec.model, s.n_up, s.n_down, s.dim, L, s.rs,
                                  sector_features=2 * s.dim if momentum else 0)


def momentum_label(k_vectors: np.ndarray, L: float, twist: np.ndarray):
    """(idx_up, idx_down) -> (K, K²) per axis, K = Σ m of the occupied plane waves
    k = 2π(m + twist)/L: the base state's total momentum in units of 2π/L (the twist's part
    N twist is the same for every state), which every translation-invariant √flow conserves."""
    table = jnp.asarray(np.rint(k_vectors * L / (2 * np.pi) - twist))

    def label(idx_up: jax.Array, idx_down: jax.Array) -> jax.Array:
        K = jnp.sum(table[idx_up], axis=0) + jnp.sum(table[idx_down], axis=0)
        return jnp.concatenate([K, K * K])

    return label


def make_periodic_backflow(model: Any, n_up: int, n_down: int, dim: int, L: float,
                           rs: float, sector_features: int = 0) -> Backflow:
    """The periodic backflow of ``model`` (pair sums, or neighbour means of range
    ``model.backflow_range`` rs); hydrogen's too. ``sector_features``: the length of the label
    that conditions the maps (the electron gas's momentum sectors), 0 for none."""
    return Backflow(n_up, n_down, dim, kind="periodic", box_length=L,
                    sector_features=sector_features,
                    hidden=(model.backflow_hidden,), n_layers=model.backflow_layers,
                    strength=model.backflow_strength, environment=model.backflow_environment,
                    axis_amplitudes=model.backflow_axis_amplitudes,
                    neighbour_range=model.backflow_range * rs if model.backflow_range else None)


def make_cusp_layer(model: Any, n_up: int, n_down: int, dim: int, L: float,
                    coupling: float) -> Backflow | None:
    """The √flow's fixed layer with ``model.electron_cusps``, which makes the cusps of the
    interaction coupling/r exact (qvfe.flows.backflow; the wavefunction's ``cusps`` says where
    it acts); None without it."""
    if not model.electron_cusps:
        return None
    return Backflow(n_up, n_down, dim, kind="periodic", box_length=L, n_layers=0,
                    pair_cusps=coupling)


def fold_check(wf: SquareRootFlowWavefunction, model: Any):
    """The evaluation's check that the √flow is a bijection (the fraction ``fold`` of walkers
    where det dZ/dX is not positive, see Backflow), or None where every parameter value makes it
    one (``model.backflow_strength`` and ``model.collective_strength`` at most 1, or no such
    layers)."""
    backflow_folds = model.backflow_strength > 1 and model.backflow_layers > 0
    collective_folds = model.collective_strength > 1 and model.collective_layers > 0
    if not (backflow_folds or collective_folds):
        return None

    def check(theta: Any, xs: jax.Array, idx: tuple) -> dict:
        sign = jax.vmap(lambda x, *i: wf.flow_det_sign(theta, x, *i))(xs, *idx)
        return {"fold": (sign <= 0).astype(xs.dtype)}

    return check


def occupation_model(model: Any, energies: Any, n_up: int, n_down: int, T: float,
                     temperature: str = "the temperature"
                     ) -> GroundOccupations | SpinfulOccupations:
    """The electrons' occupations (``model.electrons``): the ground determinant alone, or the
    autoregressive model at T; hydrogen's too. ``temperature`` names the spec's key and value
    (``"system.theta = 1e-300"``) in the SpecError of a T too small to resolve the levels."""
    if model.electrons == "ground":
        return GroundOccupations(energies, n_up, n_down)
    return thermal_occupations(model, energies, n_up, n_down, T, temperature)


def thermal_occupations(model: Any, energies: Any, n_up: int, n_down: int, T: float,
                        temperature: str) -> SpinfulOccupations:
    """The autoregressive occupations at T (``model.occupation_hidden``, ``occupation_joint``);
    the quantum dot's too. A T too small to resolve the levels is a SpecError naming
    ``temperature`` (the spec's key and value)."""
    try:
        return SpinfulOccupations(energies, n_up, n_down, T, hidden=(model.occupation_hidden,),
                                  joint=model.occupation_joint)
    except ValueError as e:
        raise SpecError(f"{temperature}: the occupation model cannot be built ({e})") from None


def ideal_electrons(occupations: GroundOccupations | SpinfulOccupations, energies: Any,
                    n_up: int, n_down: int, T: float) -> dict:
    """Exact F, E, S (Ha, k_B; per cell) of the non-interacting electrons that ``occupations``
    describes: the ground determinant's energy and no entropy, or the canonical ideal gas at T;
    hydrogen's too."""
    if isinstance(occupations, GroundOccupations):
        e0 = float(occupations.ground_energy)
        return {"F": e0, "E": e0, "S": 0.0}
    return spinful_thermo(np.asarray(energies), n_up, n_down, T)


def make_opposite_spin(model: Any, n_up: int, n_down: int, dim: int, L: float,
                       rs: float) -> OppositeSpinFlow | None:
    """The opposite-spin flow of ``model.opposite_spin_layers`` in a periodic box (None for 0
    layers), weights of range rs, networks as wide as the backflow's; hydrogen's too."""
    if not model.opposite_spin_layers:
        return None
    return OppositeSpinFlow(n_up, n_down, dim, L, length_scale=rs,
                            hidden=(model.backflow_hidden,), n_layers=model.opposite_spin_layers)


def make_collective(model: Any, n: int, dim: int, L: float) -> CollectiveFlow | None:
    """The collective flow of ``model.collective_layers`` over all ``n`` electrons in a periodic
    box (None for 0 layers); hydrogen's too."""
    if not model.collective_layers:
        return None
    return CollectiveFlow(n, dim, L, shells=model.collective_shells,
                          n_layers=model.collective_layers, strength=model.collective_strength)


def build(spec: Any) -> Problem:
    s, m, o, smp = spec.system, spec.model, spec.optim, spec.sampler
    n_up, n_down, dim = s.n_up, s.n_down, s.dim
    n = n_up + n_down
    n_max = max(n_up, n_down)
    L = heg.box_length(s.rs, n, dim)
    volume = L**dim
    T = heg.gas_temperature(s.theta, s.rs, n_up, n_down, dim, reference=s.theta_reference)
    twist = np.asarray(s.twist, dtype=np.float64) if s.twist else np.zeros(dim)
    n_orb = s.n_orbitals or auto_orbital_count(dim, L, n_max, T, twist)
    if n_orb > MAX_ORBITALS:
        raise SpecError(f"system.theta = {s.theta} needs {n_orb} plane waves per spin "
                        f"(> {MAX_ORBITALS}); set system.n_orbitals explicitly or lower Θ")
    k_vectors, energies = plane_wave_orbitals(dim, L, n_orb, twist)
    ground = m.electrons == "ground"
    occupations = occupation_model(m, energies, n_up, n_down, T, f"system.theta = {s.theta}")
    backflow = make_backflow(spec)
    opposite_spin = make_opposite_spin(m, n_up, n_down, dim, L, s.rs)
    sector = momentum_label(k_vectors, L, twist) if backflow.conditioned else None
    jastrow = (PeriodicJastrow(n_up, n_down, L, terms=m.jastrow_terms, dim=dim,
                               long_range_shells=m.jastrow_long_range)
               if m.jastrow_terms else None)
    wf = SquareRootFlowWavefunction(PlaneWaveBasis(k_vectors, L), backflow,
                                    opposite_spin=opposite_spin, sector=sector, jastrow=jastrow,
                                    collective=make_collective(m, n, dim, L),
                                    cusps=make_cusp_layer(m, n_up, n_down, dim, L, s.coupling))

    if s.coupling == 0.0:
        def potential(x: jax.Array) -> jax.Array:
            return jnp.zeros((), x.dtype)
    else:
        ewald = make_ewald(L * np.eye(dim), n_particles=n)

        def potential(x: jax.Array) -> jax.Array:
            return s.coupling * ewald.energy(x)

    dm = DensityMatrix(occupations, wf, potential)
    cfg = EngineConfig.from_spec(o, smp, n_particles=n, T=T, init_width=smp.init_width * s.rs,
                                 box_length=L, laplacian=m.laplacian,
                                 laplacian_probes=m.laplacian_probes)

    def init_walkers(key: jax.Array, batch: int) -> jax.Array:
        return L * jax.random.uniform(key, (batch, n, dim))

    def virial_pressure(per_sample: dict) -> dict:
        """P V = (2K + V)/d for kinetic plus Coulomb energies (both homogeneous in 1/L)."""
        return {"P": n * (2.0 * per_sample["K"] + per_sample["V"]) / (dim * volume)}

    info: dict[str, Any] = {"n_orbitals": n_orb, "T": T, "box_length": L, "rs": s.rs,
                            "theta": s.theta, "theta_reference": s.theta_reference,
                            "n_up": n_up, "n_down": n_down, "dim": dim,
                            "twist": [float(t) for t in twist]}
    if s.coupling == 0.0:
        ex = ideal_electrons(occupations, energies, n_up, n_down, T)
        info.update({"F_exact": float(ex["F"]) / n, "E_exact": float(ex["E"]) / n,
                     "S_exact": float(ex["S"]) / n,
                     "P_exact": 2.0 * float(ex["E"]) / (dim * volume)})
    pair = None if ground else two_electron_reference(n_up, n_down, dim, L, T, twist, s.coupling)
    if pair is not None:  # the pair's thermal exact values (not its ground state)
        info.update(pair)
    e_hf = hartree_fock_reference(k_vectors, energies, n_up, n_down, L, s.coupling)
    if e_hf is not None:
        info["E_HF"] = e_hf
    units = {"P": "Ha/bohr^3"}
    checks = fold_check(wf, m)
    if checks is not None:
        units["fold"] = "of samples"
    try:
        return make_quantum_problem(dm, cfg, init_walkers, system="electron_gas",
                                    per="electron", info=info, derived=virial_pressure,
                                    observable_units=units, also_in=("Ry",), eval_checks=checks)
    except ValueError as e:
        raise SpecError(str(e)) from None
