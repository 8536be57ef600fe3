"""Hydrogen: classical protons × quantum electrons, on the quantum engine.

N protons (charge +1, mass m_p) and N electrons, H = Σ_i −½∇_i² + λ V_Coulomb(all charges), at a
temperature T given in kelvin. Two boundary modes:

* ``periodic`` (dense hydrogen): a cubic box of side L = (4πN/3)^{1/3} rs, Ewald sum of all
  charges. The protons are classical and indistinguishable: their positions S follow a periodic
  flow density q_ω(S) (``qvfe.flows.particles``), exact samples and ln q; permutation-invariant
  for the default backflow, while the radial, push and coupling flows label the protons (the
  bound below holds for any normalised q over labelled positions; a symmetric q is the best one).
  The electrons are the engine's density matrix for each S: occupations n of plane waves
  (p_φ(n), the same for every S) × √flow whose electron–nucleus layer sees S
  (``qvfe.flows.nuclei``) followed by the opposite-spin flow (``model.opposite_spin_layers``,
  ``qvfe.flows.opposite_spin``) and the periodic backflow. With ``model.orbitals =
  "screened_bands"`` the base orbitals are instead, for each S, the lowest bands of the
  protons' RPA-screened potential (``qvfe.physics.bands``; band j in place of plane wave j):
  orthonormal for every S, so each ρ(S) keeps its exact entropy, with the electrons' charge
  already gathered around the protons before any flow. The classical part of the density
  matrix is the pair (n, S) with ln p = ln p_φ(n) + ln q_ω(S), so the engine's score-function
  gradient, natural gradient and independence Metropolis–Hastings move (now of n and S together,
  accepted with |ψ_{n',S'}(X)|²/|ψ_{n,S}(X)|²) all carry over unchanged. A fresh S is rarely
  accepted (the electrons sit around the old protons: 6 to 7 % of walkers per step at N = 16,
  3 % at N = 32), so each sampling call also moves S locally (``sampler.proton_step``):
  S' = G⁻¹(G(S) + ξ) for the proton flow's G, a random walk of its uniform latent U, accepted
  with the same ratio of |ψ|² (q's factors cancel, the walk being symmetric in U, where q is
  uniform).
  With ``model.proton_prefit_steps`` the radial, push or coupling flow is first fitted, by the
  pathwise gradient, to protons whose repulsion the electrons screen linearly (Thomas–Fermi
  Yukawa pairs, :func:`screened_proton_energy`, or the RPA dielectric function,
  :func:`linear_response_proton_energy`; ``model.proton_prefit_screening``): a uniform start puts
  pairs of protons within a bohr, which costs about 0.2 Ha/atom, and the joint training's
  score-function gradient for q, carried by the electrons' local energies, is too noisy to
  remove it (README, dense hydrogen).
  With ``system.proton_lattice`` (sc, bcc, fcc) or ``system.proton_positions`` the protons are
  clamped instead (q(S) = δ(S − S₀), a static-lattice calculation): F, E, S and K are then the
  electrons' alone, V holds every Coulomb energy (the protons' Madelung energy included), and
  P = (2K + V)/(3V) is the pressure where the protons feel no force (any site of a Bravais
  lattice, bcc and fcc; elsewhere the virial misses Σ R·F). With the ground determinant and no
  flow the electron density is uniform, so E = E_HF(electron gas) + Madelung(protons) exactly
  (``E_HF`` in ``info``).
* ``isolated`` (molecules, the tests' anchors): protons clamped at given positions (S fixed,
  ln q = 0), open space, base orbitals from Gaussians on the protons
  (``qvfe.physics.molecular_orbitals``), open electron–nucleus layer and backflow.

The variational free energy (DESIGN.md §3, with classical protons) is

    F = E_{S,n}[kT ln q(S) + kT ln p(n) + E_X E_loc] + kT ln N! + 3N kT ln λ_p,

λ_p = (2π/(m_p kT))^{1/2} the protons' thermal wavelength; the last two terms are the protons'
kinetic energy and indistinguishability (the classical partition function is
∫dS e^{−βV}/(N! λ_p^{3N})). Per atom: E includes 3/2 kT of proton kinetic energy (K too),
S = (E − F)/T in k_B (estimated over fresh draws of the protons and occupations), and the virial
pressure P = (2K + V)/(3 V_cell) (kinetic and Coulomb energies are homogeneous of degree −2 and −1
in the lengths), in Ha/bohr³ (GPa also written). Isolated mode has clamped protons: no proton
terms, and no pressure.

Periodic runs put in ``info`` the k-grid's one-body finite-size error of free electrons
(``kinetic_shell_error``, Ha/atom, :func:`qvfe.physics.heg.kinetic_shell_error`, and its virial
share of P, ``pressure_shell_error``, Ha/bohr³): at the Γ point the dense-hydrogen cells carry
0.059 (N = 16) and 0.016 Ha/atom (N = 32) of it, 140 and 39 GPa, which a twist at the
Baldereschi point (1/4, 1/4, 1/4) cuts to 0.011 and 0.001 Ha/atom (README, dense hydrogen).
They also hold the exact state's leading-order two-body (plasmon) error,
``two_body_finite_size_error`` = −ω_p/(2N) Ha/atom and ``pressure_two_body_error`` (Ha/bohr³,
:func:`qvfe.physics.heg.plasmon_finite_size_error`): −0.039 Ha/atom and −70 GPa at N = 16,
rs = 1.25, half that at N = 32. Both errors are finite-size value minus infinite system.

Exact references put in ``info``: at λ = 0 (periodic) the canonical ideal Fermi gas of the electrons
on the same k-list plus the ideal classical gas of the protons; with clamped periodic protons and
the screened bands the exact energy of the bands' ground determinant (``E_bands_determinant``)
and the Hartree–Fock ground state in the bands' plane waves (``E_HF``,
:func:`band_references`); in isolated mode with an even number of electrons the restricted
Hartree–Fock energy of the base orbitals (``E_HF``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from qvfe.autoregressive.occupations import GroundOccupations, SpinfulOccupations
from qvfe.density_matrix import DensityMatrix
from qvfe.engine import EngineConfig, make_quantum_problem
from qvfe.flows.backflow import Backflow
from qvfe.flows.nuclei import ElectronNucleusFlow
from qvfe.flows.particles import (PeriodicCouplingDensity, PeriodicParticleDensity,
                                  PeriodicPushDensity, PeriodicRadialDensity, fit_to_boltzmann)
from qvfe.jastrow import PeriodicJastrow
from qvfe.physics import heg, units
from qvfe.physics.bands import ScreenedBands
from qvfe.physics.ewald import image_sum, make_ewald, reciprocal_half_space
from qvfe.physics.orbital_values import PlaneWaveBasis
from qvfe.physics.orbitals import plane_wave_orbitals, plane_waves_within
from qvfe.physics.periodic_hf import PeriodicHartreeFock
from qvfe.physics.potentials import coulomb_charges
from qvfe.problem import Problem
from qvfe.problems.electron_gas import (MAX_ORBITALS, auto_orbital_count, fold_check,
                                        hartree_fock_reference, ideal_electrons,
                                        make_collective, make_cusp_layer,
                                        make_opposite_spin, make_periodic_backflow,
                                        occupation_model)
from qvfe.spec import CUBIC_CELL_SITES, SpecError, hydrogen_electron_counts
from qvfe.wavefunction import SquareRootFlowWavefunction

Params = Any
ProtonDensity = (PeriodicRadialDensity | PeriodicPushDensity | PeriodicCouplingDensity
                 | PeriodicParticleDensity)
PREFIT_BATCH = 128  # proton configurations per step of the screened-proton pre-fit
MAX_BAND_PLANE_WAVES = 1000  # screened bands: one K x K diagonalisation per configuration
MAX_BAND_TAIL_PLANE_WAVES = 4000  # their tails: each a term of every orbital value
MAX_HF_PLANE_WAVES = 400  # clamped protons' Hartree–Fock reference: seconds up to this size


def box_length(rs: float, n_protons: int) -> float:
    """Side of the cubic cell holding ``n_protons`` at Wigner–Seitz radius ``rs`` per proton."""
    return float((4.0 * np.pi * n_protons / 3.0) ** (1.0 / 3.0) * rs)


def proton_thermal_wavelength(T: float) -> float:
    """λ_p = (2πħ²/(m_p kT))^{1/2} in bohr, T in Hartree."""
    return float(np.sqrt(2.0 * np.pi / (units.PROTON_MASS * T)))


def ideal_proton_gas(n: int, volume: float, T: float) -> dict[str, float]:
    """Canonical ideal classical gas of ``n`` protons in ``volume``: F, E, S (totals, Ha and k_B).

    F = kT[ln n! + 3n ln λ_p − n ln V], E = 3/2 n kT, S = (E − F)/T.
    """
    lam = proton_thermal_wavelength(T)
    f = T * (float(gammaln(n + 1)) + 3 * n * np.log(lam) - n * np.log(volume))
    e = 1.5 * n * T
    return {"F": f, "E": e, "S": (e - f) / T}


def lattice_positions(lattice: str, n_protons: int, box_length: float) -> np.ndarray:
    """(n, 3) sites of a cubic lattice ('sc', 'bcc', 'fcc') of m³ conventional cells filling the
    box, m = (n_protons / sites per cell)^{1/3}."""
    basis = CUBIC_CELL_SITES[lattice]
    m = round((n_protons / len(basis)) ** (1 / 3))
    if len(basis) * m**3 != n_protons:
        raise ValueError(f"{n_protons} protons do not fill m³ {lattice} cells")
    cells = np.stack(np.meshgrid(*[np.arange(m)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    return (box_length / m) * (cells + np.asarray(basis, dtype=np.float64)).reshape(-1, 3)


def band_plane_waves(box_length: float, k_vectors: np.ndarray, cutoff: float,
                     twist: np.ndarray, limit: int = MAX_BAND_PLANE_WAVES) -> np.ndarray:
    """The plane waves of the box (energy-ordered, with the twist) whose |k| is at most
    ``cutoff`` times the largest of ``k_vectors`` (at least of the grid's 2π/L): the expansion
    basis of the screened bands (``qvfe.physics.bands``), whole shells; more than
    ``limit`` (not all) where the cutoff holds more."""
    k_max = cutoff * max(float(np.max(np.linalg.norm(k_vectors, axis=1))),
                         2 * np.pi / box_length)
    return plane_waves_within(3, box_length, 0.5 * k_max**2, twist, limit=limit)[0]


def orbital_table(spec: Any) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """A periodic spec's box side L (bohr), twist (3,), and electrons' plane waves: k_vectors
    (M, 3) and their ½k² (M,), energy-ordered, M = ``system.n_orbitals`` or the temperature's
    count. Raises SpecError where M exceeds ``MAX_ORBITALS``."""
    s = spec.system
    n_up, n_down = hydrogen_electron_counts(s)
    L = box_length(s.rs, s.n_protons)
    twist = np.asarray(s.twist, dtype=np.float64) if s.twist else np.zeros(3)
    T = units.kelvin_to_hartree(s.T_kelvin)
    n_orb = s.n_orbitals or auto_orbital_count(3, L, max(n_up, n_down), T, twist)
    if n_orb > MAX_ORBITALS:
        raise SpecError(f"system.T_kelvin = {s.T_kelvin} needs {n_orb} plane waves per spin "
                        f"(> {MAX_ORBITALS}); set system.n_orbitals explicitly")
    k_vectors, energies = plane_wave_orbitals(3, L, n_orb, twist)
    return L, twist, k_vectors, energies


def screened_bands(spec: Any, L: float, k_vectors: np.ndarray,
                   twist: np.ndarray) -> ScreenedBands:
    """The spec's screened bands over the orbital table ``k_vectors``, diagonalised in the plane
    waves of ``model.band_cutoff`` and, with ``model.band_tail_cutoff``, with first-order tails
    in the plane waves up to that. Raises SpecError beyond ``MAX_BAND_PLANE_WAVES`` or
    ``MAX_BAND_TAIL_PLANE_WAVES``."""
    s, m = spec.system, spec.model
    waves = band_plane_waves(L, k_vectors, m.band_cutoff, twist)
    if len(waves) > MAX_BAND_PLANE_WAVES:
        raise SpecError(f"model.band_cutoff = {m.band_cutoff:g} with {len(k_vectors)} orbitals "
                        f"per spin needs {len(waves)} plane waves per band (> "
                        f"{MAX_BAND_PLANE_WAVES}, one diagonalisation of that size per "
                        "configuration): lower model.band_cutoff or system.T_kelvin, or "
                        "set system.n_orbitals")
    n_exact = len(waves)
    if m.band_tail_cutoff:
        wider = band_plane_waves(L, k_vectors, m.band_tail_cutoff, twist,
                                 limit=MAX_BAND_TAIL_PLANE_WAVES)
        if len(wider) > MAX_BAND_TAIL_PLANE_WAVES:
            raise SpecError(f"model.band_tail_cutoff = {m.band_tail_cutoff:g} with "
                            f"{len(k_vectors)} orbitals per spin needs {len(wider)} plane waves "
                            f"per band (> {MAX_BAND_TAIL_PLANE_WAVES}, each a term of every "
                            "orbital value): lower model.band_tail_cutoff")
        # the diagonalised waves first, in their order; the tail's are the wider table's others,
        # those beyond the diagonalised set's largest |k| (it holds whole shells, every wave
        # within that radius)
        radius2 = np.max(np.sum(waves**2, axis=1)) * (1 + 1e-9)
        waves = np.concatenate([waves, wider[np.sum(wider**2, axis=1) > radius2]])
    return ScreenedBands(waves, L, s.rs, len(k_vectors),
                         charge=s.coupling * m.band_potential_scale, n_exact=n_exact)


def clamped_positions(spec: Any, L: float) -> np.ndarray | None:
    """(P, 3) positions of a periodic spec's clamped protons (its lattice's sites or its
    ``proton_positions``), or None where the protons are free."""
    s = spec.system
    if s.proton_lattice:
        return lattice_positions(s.proton_lattice, s.n_protons, L)
    if s.proton_positions:
        return np.asarray(s.proton_positions, dtype=np.float64).reshape(s.n_protons, 3)
    return None


def clamp_at_walkers(run_dir: str | Path, spec: Any,
                     walkers: list[int]) -> tuple[int, dict, list[Any]]:
    """A run of free periodic protons, at its newest checkpoint: (step, state, specs), one spec
    per walker of ``walkers`` with the protons clamped at that walker's configuration S (and no
    pre-fit), the electrons' model as the run's. Raises ValueError without a checkpoint or for
    walkers outside the run's."""
    from qvfe.run import newest_state  # run directories only (and the driver imports this module)

    step, state = newest_state(run_dir, build(spec))
    protons = np.asarray(state["occ"][2])  # (walkers, n_protons, 3)
    bad = [w for w in walkers if not 0 <= w < len(protons)]
    if bad:
        raise ValueError(f"walkers {bad}: must be in [0, {len(protons) - 1}]")
    return step, state, [spec.replace(**{"system.proton_positions": [float(v) for v in
                                                                     protons[w].ravel()],
                                         "model.proton_prefit_steps": 0}) for w in walkers]


def band_references(bands: ScreenedBands, protons: np.ndarray, n_up: int, n_down: int,
                    coupling: float, max_plane_waves: int = MAX_HF_PLANE_WAVES,
                    max_iterations: int = 60) -> dict[str, float]:
    """For clamped protons: the energy per atom of the bands' ground determinant (what a run
    without flow layers reaches, ``E_bands_determinant``) and of the Hartree–Fock ground state
    in the same plane waves (``E_HF``), with every Coulomb term (``qvfe.physics.periodic_hf``).
    Where the bands' plane waves exceed ``max_plane_waves`` (a Fock matrix costs K² times the
    plane-wave differences), or Hartree–Fock does not converge in ``max_iterations`` damped
    iterations (an open shell, or the liquid's near-degenerate levels), that entry is left out."""
    coefficients = np.asarray(bands.coefficients(jnp.asarray(protons)))
    occupied = (coefficients[:, :n_up], coefficients[:, :n_down])
    hf = PeriodicHartreeFock(bands.k_vectors, bands.box_length, protons, coupling=coupling)
    n_p = len(protons)
    out = {"E_bands_determinant": hf.energy(occupied) / n_p}
    if bands.n_plane_waves > max_plane_waves:
        return out
    try:
        out["E_HF"] = hf.solve(n_up, n_down, occupied,
                               max_iterations=max_iterations).energy / n_p
    except RuntimeError:
        pass
    return out


def two_body_finite_size_errors(rs: float, n_protons: int) -> tuple[float, float]:
    """The exact state's leading-order two-body finite-size error of a neutral periodic cell,
    finite minus infinite: of E per atom (Ha) and of the virial P (Ha/bohr³). Kinetic and
    potential errors are equal (:func:`qvfe.physics.heg.plasmon_finite_size_error`), so E gets
    twice one and P = (2K + V)/(3 V_cell) three times one over 3 V_cell."""
    one = heg.plasmon_finite_size_error(heg.density(rs), n_protons)
    return 2.0 * one, one / (4.0 * np.pi * rs**3 / 3.0)


def thomas_fermi_wavenumber(rs: float) -> float:
    """k_TF = (4 k_F/π)^{1/2} in 1/bohr of an unpolarised electron gas at ``rs`` (bohr)."""
    k_fermi = heg.fermi_wavevector(rs, 3, polarized=False)
    return float(np.sqrt(4.0 * k_fermi / np.pi))


def screened_proton_energy(box_length: float, wavenumber: float, images: int = 2):
    """E(S) = Σ_{i<j} Σ_n e^{−k|r_ij + nL|}/|r_ij + nL| (Ha) for one configuration S (n, 3): protons
    whose Coulomb repulsion the electrons screen linearly (Thomas–Fermi, k = ``wavenumber``), in
    a periodic cube. The pair vector is taken to its minimum image and summed over the images
    n ∈ {−images..images}³; the first one left out lies ≥ (images + ½)L away (at rs = 1.25 and
    16 protons, images = 1 leaves out 4e-4 Ha, images = 2 leaves out 4e-7 Ha).

    Hydrogen's proton pre-fit (``model.proton_prefit_steps``) fits q to e^{−E/kT}: a
    differentiable, cheap stand-in for the electrons that gives q the protons' pair hole before
    the joint training, whose score-function gradient for q is swamped by the electrons' noise.
    """
    L = float(box_length)
    shifts = L * np.array(np.meshgrid(*[np.arange(-images, images + 1)] * 3,
                                      indexing="ij")).reshape(3, -1).T
    pair = image_sum(L * np.eye(3), shifts, lambda r: jnp.exp(-wavenumber * r) / r)

    def energy(s: jax.Array) -> jax.Array:
        i, j = np.triu_indices(s.shape[0], 1)
        return jnp.sum(pair(s[i] - s[j]))

    return energy


def linear_response_proton_energy(box_length: float, rs: float, n_protons: int,
                                  cutoff: float = 12.0):
    """E(S) = Σ_{i<j} φ(r_ij) in Ha for one configuration S (n, 3): protons whose Coulomb
    repulsion an electron gas of density rs screens in linear response, periodic cube of side L,

        φ(r) = Σ_n 1/|r + nL| + (1/V) Σ_{G≠0} (4π/G²)(1/ε(G) − 1) e^{iG·r},

    ε the RPA (Lindhard) dielectric function of the unpolarised gas (``heg.rpa_dielectric``): the
    first part is the protons' own Ewald sum (in their background), the second the electrons'
    screening charge, summed over reciprocal vectors |G| ≤ ``cutoff``·k_F (its terms fall as
    G⁻⁶; 12 k_F leaves out < 1e-4 Ha per proton at rs = 1.25). The Thomas–Fermi Yukawa of
    :func:`screened_proton_energy` is the q → 0 limit of the same ε; Lindhard's screens less at
    q ≈ 2k_F, though at rs = 1.25 the two pair potentials differ little at the proton spacing
    (README, dense hydrogen). Up to an S-independent constant this is the Born–Oppenheimer energy
    to second order in the electron–proton interaction.
    """
    L = float(box_length)
    volume = L**3
    k_fermi = heg.fermi_wavevector(rs, 3, polarized=False)
    _, g = reciprocal_half_space(L * np.eye(3), cutoff * k_fermi)  # the sum is even in G
    g_norm = np.linalg.norm(g, axis=1)
    weight = 2 * (4 * np.pi / (volume * g_norm**2)) * (1.0 / heg.rpa_dielectric(g_norm, rs) - 1.0)
    g, weight = jnp.asarray(g), jnp.asarray(weight)
    ewald = make_ewald(L * np.eye(3), np.ones(n_protons))

    def energy(s: jax.Array) -> jax.Array:
        phase = s @ g.T  # (n, G)
        structure = jnp.sum(jnp.cos(phase), 0) ** 2 + jnp.sum(jnp.sin(phase), 0) ** 2
        return ewald.energy(s) + 0.5 * jnp.sum(weight * (structure - s.shape[0]))

    return energy


@dataclass(frozen=True, eq=False)
class ClampedNuclei:
    """q(S) = δ(S − S₀): nuclei at fixed positions (molecules, static lattices); no parameters."""

    positions: np.ndarray  # (P, d)

    def init(self, key: jax.Array) -> Params:
        return {}

    def sample(self, params: Params, key: jax.Array, batch: int) -> jax.Array:
        s = jnp.asarray(self.positions, dtype=jnp.float64)
        return jnp.broadcast_to(s, (batch, *s.shape))

    def log_prob(self, params: Params, s: jax.Array) -> jax.Array:
        return jnp.zeros(s.shape[:1], s.dtype)


@dataclass(frozen=True, eq=False)
class OccupationsAndNuclei:
    """The classical half of the hydrogen density matrix: p(n, S) = p_φ(n) q_ω(S).

    Patterns are ``(occ_up, occ_down, S)``; ``occupied_indices`` passes S on as the wavefunction's
    and the potential's context (see ``qvfe.density_matrix``), and with ``bands`` the band
    coefficients of each S after it (one diagonalisation per configuration and call, not one per
    evaluation of ψ; one per call for clamped protons).
    """

    occupations: SpinfulOccupations | GroundOccupations
    nuclei: ProtonDensity | ClampedNuclei
    bands: ScreenedBands | None = None

    def init(self, key: jax.Array) -> Params:
        k_occ, k_nuc = jax.random.split(key)
        return {"occ": self.occupations.init(k_occ), "nuclei": self.nuclei.init(k_nuc)}

    def sample(self, params: Params, key: jax.Array, batch: int):
        k_occ, k_nuc = jax.random.split(key)
        up, down = self.occupations.sample(params["occ"], k_occ, batch)
        return up, down, self.nuclei.sample(params["nuclei"], k_nuc, batch)

    def log_prob(self, params: Params, pattern) -> jax.Array:
        up, down, s = pattern
        return (self.occupations.log_prob(params["occ"], (up, down))
                + self.nuclei.log_prob(params["nuclei"], s))

    def local_move(self, params: Params, pattern, key: jax.Array, step: float):
        """The same n with S moved by the proton flow's latent random walk (the engine's local
        move; its Metropolis acceptance is the ratio of |ψ|² alone)."""
        up, down, s = pattern
        return up, down, self.nuclei.latent_move(params["nuclei"], s, key, step)

    def occupied_indices(self, pattern):
        up, down, s = pattern
        if self.bands is None:
            context = (s,)
        elif isinstance(self.nuclei, ClampedNuclei):  # every walker's S is S₀: one eigh, not B
            c = self.bands.coefficients(jnp.asarray(self.nuclei.positions, dtype=s.dtype))
            context = (s, jnp.broadcast_to(c, (*s.shape[:-2], *c.shape)))
        else:
            context = (s, jax.vmap(self.bands.coefficients)(s))
        return (*self.occupations.occupied_indices((up, down)), *context)


def proton_density(spec: Any) -> ProtonDensity:
    """The proton flow q(S) of a periodic hydrogen spec (``model.proton_flow`` and its sizes)."""
    s, m = spec.system, spec.model
    L = box_length(s.rs, s.n_protons)
    half_steps = 2 * max(1, int(np.ceil(np.log2(s.n_protons))))
    if m.proton_flow == "radial" and s.n_protons > 1:
        return PeriodicRadialDensity(s.n_protons, 3, L, n_layers=half_steps * m.proton_layers,
                                     bins=m.proton_bins, within_half=m.proton_within_half,
                                     cell_step=m.proton_cell_step)
    if m.proton_flow == "push" and s.n_protons > 1:
        return PeriodicPushDensity(s.n_protons, 3, L, hidden=(m.proton_hidden,),
                                   n_layers=half_steps * m.proton_layers, length_scale=s.rs)
    if m.proton_flow == "coupling" and s.n_protons > 1:
        return PeriodicCouplingDensity(s.n_protons, 3, L, hidden=(m.proton_hidden,),
                                       n_layers=6 * m.proton_layers, bins=m.proton_bins)
    return PeriodicParticleDensity(s.n_protons, 3, L, hidden=(m.proton_hidden,),
                                   n_layers=m.proton_layers)


def prefit_energy(spec: Any):
    """E(S) in Ha for one configuration (n, 3) of the pre-fit's screened protons: the pair
    energy of ``model.proton_prefit_screening`` times the coupling λ, whose Boltzmann density
    e^{−E/kT} the proton pre-fit fits q(S) to (also ``scripts/check_proton_prefit.py``)."""
    s, m = spec.system, spec.model
    L = box_length(s.rs, s.n_protons)
    if m.proton_prefit_screening == "lindhard":
        screened = linear_response_proton_energy(L, s.rs, s.n_protons)
    else:
        screened = screened_proton_energy(L, thomas_fermi_wavenumber(s.rs))
    return lambda x: s.coupling * screened(x)


def _screened_proton_prefit(spec: Any, nuclei_model: ProtonDensity, T: float):
    """The engine's ``prefit``: q(S) fitted by the pathwise gradient to e^{−λE_screened/kT}."""
    m = spec.model
    energy = prefit_energy(spec)

    def prefit(params: Params, key: jax.Array) -> Params:
        nuclei = fit_to_boltzmann(nuclei_model, params["phi"]["nuclei"],
                                  lambda x: energy(x) / T, key,
                                  m.proton_prefit_steps, PREFIT_BATCH, lr=m.proton_prefit_lr,
                                  gradient="pathwise")
        return {**params, "phi": {**params["phi"], "nuclei": nuclei}}

    return prefit


def build(spec: Any) -> Problem:
    s, m, o, smp = spec.system, spec.model, spec.optim, spec.sampler
    n_p = s.n_protons
    n_up, n_down = hydrogen_electron_counts(s)
    n_e = n_up + n_down
    n_max = max(n_up, n_down)
    T = units.kelvin_to_hartree(s.T_kelvin)
    charges = np.concatenate([-np.ones(n_e), np.ones(n_p)])
    info: dict[str, Any] = {"T": T, "T_kelvin": s.T_kelvin, "n_protons": n_p, "n_up": n_up,
                            "n_down": n_down, "boundary": s.boundary}
    # the cusp slope of ln psi at a proton is -lambda (coupling lambda); none without interaction
    cusp_charge = s.coupling if m.nuclei_exact_cusp and s.coupling > 0 else None

    prefit = None  # periodic only: hydrogen's proton pre-fit
    proton_step = 0.0  # periodic, unclamped protons only: their latent random walk
    opposite_spin = collective = cusps = None  # periodic only
    fci_geminal = None  # isolated two-electron molecules only
    if s.boundary == "periodic":
        L, twist, k_vectors, energies = orbital_table(spec)
        volume = L**3
        n_orb = len(k_vectors)
        occupations = occupation_model(m, energies, n_up, n_down, T,
                                       f"system.T_kelvin = {s.T_kelvin}")
        basis = PlaneWaveBasis(k_vectors, L)
        if m.orbitals == "screened_bands":
            basis = screened_bands(spec, L, k_vectors, twist)
            info["band_plane_waves"] = basis.n_plane_waves
            if basis.n_exact < basis.n_plane_waves:  # the others are tails
                info["band_plane_waves_diagonalised"] = basis.n_exact
        clamped = clamped_positions(spec, L)
        if clamped is not None:
            nuclei_model = ClampedNuclei(np.mod(clamped, L))
        else:
            nuclei_model = proton_density(spec)
            proton_step = smp.proton_step * s.rs
        nuclei_flow = ElectronNucleusFlow(n_p, 3, kind="periodic", box_length=L,
                                          length_scale=s.rs, cusp_scale=m.cusp_scale,
                                          hidden=(m.nuclei_hidden,), n_layers=m.nuclei_layers,
                                          cusp_charge=cusp_charge)
        backflow = make_periodic_backflow(m, n_up, n_down, 3, L, s.rs)
        cusps = make_cusp_layer(m, n_up, n_down, 3, L, s.coupling)
        opposite_spin = make_opposite_spin(m, n_up, n_down, 3, L, s.rs)
        collective = make_collective(m, n_e, 3, L)
        if s.coupling == 0.0:
            def potential(x: jax.Array, nuc: jax.Array, *bands: jax.Array) -> jax.Array:
                return jnp.zeros((), x.dtype)
        else:
            ewald = make_ewald(L * np.eye(3), charges)

            def potential(x: jax.Array, nuc: jax.Array, *bands: jax.Array) -> jax.Array:
                return s.coupling * ewald.energy(jnp.concatenate([x, nuc]))

        def init_walkers(key: jax.Array, batch: int) -> jax.Array:
            return L * jax.random.uniform(key, (batch, n_e, 3))

        lam_p = proton_thermal_wavelength(T)
        f_const = T * (float(gammaln(n_p + 1)) + 3 * n_p * np.log(lam_p)) / n_p
        s_const = -f_const / T + 1.5

        def proton_terms(per_sample: dict) -> dict:
            """Proton kinetic and N! terms (constants; none for clamped protons), then the virial
            pressure per cell."""
            out = {} if clamped is not None else {
                "F": per_sample["F"] + f_const, "E": per_sample["E"] + 1.5 * T,
                "K": per_sample["K"] + 1.5 * T, "S": per_sample["S"] + s_const}
            kinetic = out.get("K", per_sample["K"])
            out["P"] = n_p * (2.0 * kinetic + per_sample["V"]) / (3.0 * volume)
            return out

        derived = proton_terms
        observable_units = {"P": "Ha/bohr^3"}
        if clamped is not None:
            ewald_pp = make_ewald(L * np.eye(3), np.ones(n_p))
            info["clamped_protons"] = clamped.tolist()
            info["proton_madelung"] = float(ewald_pp.energy(jnp.asarray(clamped))) / n_p
            e_hf = (hartree_fock_reference(k_vectors, energies, n_up, n_down, L, s.coupling)
                    if m.orbitals == "plane_waves" else None)  # the bands' density is not uniform
            if e_hf is not None:  # uniform electron density: no electron–proton energy
                info["E_HF"] = (n_e * e_hf + s.coupling * n_p * info["proton_madelung"]) / n_p
            if isinstance(basis, ScreenedBands) and s.coupling > 0:
                info.update(band_references(basis, clamped, n_up, n_down, s.coupling))
        if m.proton_prefit_steps:
            prefit = _screened_proton_prefit(spec, nuclei_model, T)
            info["proton_prefit"] = {"steps": m.proton_prefit_steps, "batch": PREFIT_BATCH,
                                     "screening": m.proton_prefit_screening,
                                     "thomas_fermi_wavenumber": thomas_fermi_wavenumber(s.rs)}
        # the k-grid's one-body finite-size error, per atom and in the virial pressure
        shell = heg.kinetic_shell_error(L * np.eye(3), n_up, n_down, twist) * n_e / n_p
        info.update({"kinetic_shell_error": shell,
                     "pressure_shell_error": 2.0 * n_p * shell / (3.0 * volume)})
        info.update(zip(("two_body_finite_size_error", "pressure_two_body_error"),
                        two_body_finite_size_errors(s.rs, n_p)))
        info.update({"rs": s.rs, "box_length": L, "n_orbitals": n_orb,
                     "proton_thermal_wavelength": lam_p, "twist": [float(t) for t in twist]})
        if s.coupling == 0.0:
            ex = ideal_electrons(occupations, energies, n_up, n_down, T)
            pr = (ideal_proton_gas(n_p, volume, T) if clamped is None else
                  {"F": 0.0, "E": 0.0, "S": 0.0})
            info.update({"F_exact": (float(ex["F"]) + pr["F"]) / n_p,
                         "E_exact": (float(ex["E"]) + pr["E"]) / n_p,
                         "S_exact": (float(ex["S"]) + pr["S"]) / n_p,
                         "P_exact": (2.0 * float(ex["E"]) + 2.0 * pr["E"]) / (3.0 * volume)})
        box = L
    else:
        from qvfe.physics.molecular_orbitals import (DEFAULT_EXPONENTS, POLARISATION_EXPONENTS,
                                                     molecular_orbitals, pair_fci)

        centers = np.asarray(s.proton_positions, dtype=np.float64).reshape(n_p, 3)
        closed = n_up == n_down
        method = "rhf" if closed else "core"
        # p functions polarise bonds; a lone atom's s set already holds its 1s to 3e-6 Ha
        p_exponents = POLARISATION_EXPONENTS if n_p > 1 else None
        # with the exact cusp the orbitals must be smooth at the protons: tight s functions mimic
        # the cusp at z = s, which the flow moves off the proton (local energies of ±10 Ha there)
        s_exponents = DEFAULT_EXPONENTS[DEFAULT_EXPONENTS < 10.0] if cusp_charge else None
        try:
            basis = molecular_orbitals(centers, n_electrons=n_e, method=method,
                                       exponents=s_exponents, n_orbitals=s.n_orbitals or None,
                                       p_exponents=p_exponents)
        except ValueError as e:  # e.g. more orbitals asked for than the Gaussian basis holds
            raise SpecError(f"system.n_orbitals = {s.n_orbitals} is invalid: {e}") from None
        except RuntimeError as e:  # RHF that does not converge at this geometry
            raise SpecError(f"system.proton_positions: the base orbitals cannot be made "
                            f"here ({e}); move the protons apart") from None
        energies = basis.energies()
        if n_max > len(energies):
            raise SpecError(f"system.n_orbitals = {s.n_orbitals} is invalid: must be 0 (auto) "
                            f"or ≥ {n_max}")
        occupations = occupation_model(m, energies, n_up, n_down, T,
                                       f"system.T_kelvin = {s.T_kelvin}")
        nuclei_model = ClampedNuclei(centers)
        nuclei_flow = ElectronNucleusFlow(
            n_p, 3, kind="open", cusp_scale=m.cusp_scale, hidden=(m.nuclei_hidden,),
            n_layers=m.nuclei_layers, cusp_charge=cusp_charge)
        backflow = Backflow(n_up, n_down, 3, kind="open", hidden=(m.backflow_hidden,),
                            n_layers=m.backflow_layers)
        q = jnp.asarray(charges)

        def potential(x: jax.Array, nuc: jax.Array) -> jax.Array:
            return s.coupling * coulomb_charges(jnp.concatenate([x, nuc]), q)

        home = centers[np.arange(n_e) % n_p]

        def init_walkers(key: jax.Array, batch: int) -> jax.Array:
            return home + jax.random.normal(key, (batch, n_e, 3))

        derived, observable_units, box = None, {}, None
        info["n_orbitals"] = len(energies)
        if closed and s.coupling == 1.0:
            info["E_HF"] = float(basis.scf_energy) / n_p
            if n_e == 2:  # what the geminal reaches without a flow: full CI in the orbitals
                e_fci, fci_geminal = pair_fci(basis)
                info["E_FCI"] = e_fci / n_p

    wf = SquareRootFlowWavefunction(
        basis, backflow, nuclei=nuclei_flow, opposite_spin=opposite_spin, collective=collective,
        cusps=cusps,
        geminal=m.geminal != "none",
        fixed_geminal=fci_geminal if m.geminal == "pair_fci" else None,
        jastrow=(PeriodicJastrow(n_up, n_down, box, terms=m.jastrow_terms, n_nuclei=n_p,
                                 long_range_shells=m.jastrow_long_range)
                 if m.jastrow_terms else None))
    bands = basis if isinstance(basis, ScreenedBands) else None
    dm = DensityMatrix(OccupationsAndNuclei(occupations, nuclei_model, bands), wf, potential)
    cfg = EngineConfig.from_spec(o, smp, n_particles=n_p, T=T, box_length=box,
                                 laplacian=m.laplacian, laplacian_probes=m.laplacian_probes,
                                 local_step=proton_step)
    checks = fold_check(wf, m)
    if checks is not None:
        observable_units["fold"] = "of samples"
    try:
        return make_quantum_problem(dm, cfg, init_walkers, system="hydrogen", per="atom",
                                    info=info, derived=derived,
                                    observable_units=observable_units, prefit=prefit,
                                    eval_checks=checks)
    except ValueError as e:
        raise SpecError(str(e)) from None
