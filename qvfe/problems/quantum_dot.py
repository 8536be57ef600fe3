"""Electrons in a harmonic trap (quantum dot) at temperature T, on the quantum engine.

H = Σ_i (−½∇_i² + ½ω² r_i²) + λ Σ_{i<j} 1/r_ij for N↑ + N↓ electrons in d = 2 or 3. Base states are
Slater determinants (one per spin) of oscillator orbitals from an energy-ordered list; the occupation
model starts at the exact non-interacting Boltzmann distribution over that list and the √flow is an
open-boundary backflow, the identity at the start. Results per electron in Hartree.

Exact references put in ``info``: at λ = 0 the canonical ideal gas on the same orbital list (the
optimum is then reachable exactly); for 1↑ + 1↓ the exact diagonalization of the relative motion.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.density_matrix import DensityMatrix
from qvfe.engine import EngineConfig, make_quantum_problem
from qvfe.flows.backflow import Backflow
from qvfe.physics.dot_exact import two_electron_dot_free_energy
from qvfe.physics.ideal_fermi import spinful_thermo
from qvfe.physics.orbital_values import HarmonicBasis, PolarHarmonicBasis
from qvfe.physics.orbitals import closed_shell_count, harmonic_orbitals, polar_harmonic_orbitals
from qvfe.physics.potentials import make_quantum_dot_potential
from qvfe.problem import Problem
from qvfe.problems.electron_gas import thermal_occupations
from qvfe.wavefunction import SquareRootFlowWavefunction

MAX_ORBITALS = 2000


def auto_orbital_count(dim: int, n_max: int, T: float, omega: float) -> int:
    """Closed oscillator shells from the Fermi shell up to 12 kT above it (Boltzmann weight of the
    first omitted shell relative to the Fermi shell ≤ e^-12 ≈ 6e-6)."""
    fermi_shell = 0
    while closed_shell_count(dim, fermi_shell + 1) < n_max:
        fermi_shell += 1
    extra = math.ceil(12.0 * T / omega) + 1
    return closed_shell_count(dim, fermi_shell + 1 + extra)


def relative_cusp_slopes(coupling: float, n_sectors: int) -> tuple[float, ...]:
    """Cusp-layer slopes beta_m = 2 lambda / ((2m+1)(2m+3)), m = 0 .. n_sectors-1 (2D).

    The relative wavefunction of 1 up + 1 down (H_rel = -lap + lambda/r + ...) behaves as
    r^m (1 + lambda r / (2m+1)) at coalescence; with a total radial scaling G = G0 (1 + beta r)
    the flow gives ln psi the linear term (3/2 + m) beta r (3/2 from 1/2 ln|J|, m from r^m).
    """
    return tuple(2.0 * coupling / ((2 * m + 1) * (2 * m + 3)) for m in range(n_sectors))


def _relative_abs_m(quantum_numbers: np.ndarray):
    """(occ_up, occ_down) -> |m| of the up row's polar orbital, the relative one after the
    species rotation of 1 up + 1 down."""
    abs_m = jnp.asarray(np.abs(quantum_numbers[:, 1]))

    def sector(occ_up: jax.Array, occ_down: jax.Array) -> jax.Array:
        return abs_m[occ_up[0]]

    return sector


def wavefunction(system: Any, model: Any) -> tuple[SquareRootFlowWavefunction, np.ndarray, str]:
    """The √flow wavefunction of a quantum-dot spec's system and model sections.

    Returns ``(wavefunction, orbital energies, orbital form)``: 'polar' or 'cartesian'.
    """
    s, m = system, model
    n_up, n_down, dim = s.n_up, s.n_down, s.dim
    n_max = max(n_up, n_down, 1)
    n_orb = s.n_orbitals or auto_orbital_count(dim, n_max, s.T, s.omega)
    if n_orb > MAX_ORBITALS:
        from qvfe.spec import SpecError

        raise SpecError(f"system.T = {s.T} needs {n_orb} orbitals per spin (> {MAX_ORBITALS}); "
                        "set system.n_orbitals explicitly or lower the temperature")
    form = ("polar" if dim == 2 else "cartesian") if s.orbitals == "auto" else s.orbitals
    if form == "polar":
        qn, energies = polar_harmonic_orbitals(s.omega, n_orb)
        basis = PolarHarmonicBasis(qn, s.omega)
    else:
        qn, energies = harmonic_orbitals(dim, s.omega, n_orb)
        basis = HarmonicBasis(qn, s.omega)
    # 1 up + 1 down: start the flow in the centre-of-mass x relative basis (rotation by pi/4, which
    # leaves the oscillator Hamiltonian and hence the exact λ = 0 start unchanged); the
    # interaction does not mix those states, whereas product states |a up, b down> of an
    # excited shell are singlet-triplet mixtures the backflow layers cannot separate.
    rotation = math.pi / 4 if (n_up, n_down) == (1, 1) else None
    # ... and there, with polar orbitals, one map per relative |m| (the up row's orbital after
    # the rotation). Pair terms alone move the relative coordinate along itself and leave the
    # centre of mass alone, so every sector's map keeps |m|: states of different sectors stay
    # orthogonal and U = ⊕ U_|m| is unitary. One shared map has to compromise between channels
    # whose cusps and radial shapes differ (m = 2 states came out ~70 mHa high at T = 0.5).
    # Each sector's electron-electron cusp is then built in exactly (a fixed first layer): a
    # learned one is never quite right, and its 1/r local energy has a log-divergent variance
    # in 2D (the m = 0 ground state stayed ~10 mHa high with it).
    sectors = rotation is not None and form == "polar" and m.flow_sectors == "auto"
    n_sectors = int(np.abs(qn[:, 1]).max()) + 1 if sectors else 1
    backflow = Backflow(n_up, n_down, dim, kind="open", length_scale=1.0 / math.sqrt(s.omega),
                        hidden=(m.backflow_hidden,), n_layers=m.backflow_layers,
                        species_rotation=rotation, one_body=not sectors, n_sectors=n_sectors,
                        cusp_slopes=relative_cusp_slopes(s.coupling, n_sectors) if sectors
                        else None)
    sector = _relative_abs_m(qn) if n_sectors > 1 else None
    return SquareRootFlowWavefunction(basis, backflow, sector=sector), energies, form


def build(spec: Any) -> Problem:
    s, m, o, smp = spec.system, spec.model, spec.optim, spec.sampler
    n_up, n_down, dim = s.n_up, s.n_down, s.dim
    wf, energies, form = wavefunction(s, m)
    n_orb = len(energies)
    n_sectors = wf.backflow.n_sectors
    occupations = thermal_occupations(m, energies, n_up, n_down, s.T, f"system.T = {s.T}")
    dm = DensityMatrix(occupations, wf, make_quantum_dot_potential(s.omega, s.coupling))
    n = n_up + n_down
    cfg = EngineConfig.from_spec(o, smp, n_particles=n, T=s.T, laplacian=m.laplacian,
                                 laplacian_probes=m.laplacian_probes)
    width = 1.0 / math.sqrt(s.omega)

    def init_walkers(key: jax.Array, batch: int) -> jax.Array:
        return width * jax.random.normal(key, (batch, n, dim))

    info: dict[str, Any] = {"n_orbitals": n_orb, "orbitals": form, "flow_sectors": n_sectors}
    if s.coupling == 0.0:
        ex = spinful_thermo(np.asarray(energies), n_up, n_down, s.T)
        info.update({"F_exact": float(ex["F"]) / n, "E_exact": float(ex["E"]) / n,
                     "S_exact": float(ex["S"]) / n})
    elif (n_up, n_down) == (1, 1):
        ex = two_electron_dot_free_energy(s.omega, s.coupling, s.T, dim)
        info.update({"F_exact": ex["F"] / 2, "E_exact": ex["E"] / 2, "S_exact": ex["S"] / 2})
    from qvfe.spec import SpecError

    try:
        return make_quantum_problem(dm, cfg, init_walkers, system="quantum_dot",
                                    per="electron", info=info)
    except ValueError as e:
        raise SpecError(str(e)) from None
