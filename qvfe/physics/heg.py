"""Electron-gas conventions and exact anchors: densities, Fermi scales, ideal gas, HF energy.

One job: the numbers that define a uniform electron gas calculation and the exact results it must
reproduce in its limits, all in Hartree atomic units:

* geometry: n(rs), L(rs, N), rs(N, V) in 2D and 3D (DESIGN.md section 2);
* Fermi scales and the temperature convention. Theta = T/T_F is ambiguous; the keyword
  ``polarized`` is therefore required everywhere. Brown et al. (2013) use the T_F of the gas's own
  polarisation (k_F = (6 pi^2 n)^(1/3) for xi = 1, (3 pi^2 n)^(1/3) for xi = 0); GDSMFB's theta is
  always relative to the paramagnetic T_F (``polarized=False``). Only with the right choice are
  Brown's ideal-gas and exchange columns reproduced (tests/test_physics_heg.py does it);
* the thermodynamic-limit ideal Fermi gas at finite T, per spin species (Fermi-Dirac integrals in
  3D, closed forms in 2D) and for a gas of given polarisation, and its finite-T exchange energy
  (3D);
* finite-size errors of a periodic cell: the one-body (shell) error of the kinetic energy and the
  leading-order two-body (plasmon) error of the kinetic and potential energies (3D);
* the Hartree-Fock energy of a finite plane-wave determinant in a periodic cell with the Ewald
  interaction: the exact T -> 0 target of a calculation with the ground occupation and no flow;
* the static Lindhard function and the RPA dielectric function of the 3D gas (linear screening
  of charges in the gas, as hydrogen's proton pre-fit uses it).

These are reference functions evaluated once (numpy/scipy, float64), not traced by JAX.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import integrate, optimize, special

from qvfe.physics.ewald import madelung_constant

__all__ = [
    "density",
    "box_length",
    "wigner_seitz_radius",
    "species_fermi_wavevector",
    "fermi_wavevector",
    "fermi_energy",
    "temperature",
    "theta",
    "gas_temperature",
    "IdealFermiSpecies",
    "ideal_fermi_species",
    "IdealFermiGas",
    "ideal_fermi_gas",
    "exchange_ratio",
    "exchange_shell_error",
    "exchange_energy",
    "ground_state_kvectors",
    "HFEnergy",
    "hf_energy",
    "lindhard",
    "rpa_dielectric",
]


def _check_dim(dim: int) -> None:
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")


# ---------------------------------------------------------------------------------------------
# geometry and Fermi scales
# ---------------------------------------------------------------------------------------------


def _check_rs(rs: float) -> None:
    if not np.all(np.asarray(rs) > 0):
        raise ValueError(f"rs must be > 0, got {rs}")


def density(rs: float, dim: int = 3) -> float:
    """Number density (bohr^-d): 3/(4 pi rs^3) in 3D, 1/(pi rs^2) in 2D."""
    _check_dim(dim)
    _check_rs(rs)
    return 3.0 / (4.0 * np.pi * rs**3) if dim == 3 else 1.0 / (np.pi * rs**2)


def box_length(rs: float, n_particles: int, dim: int = 3) -> float:
    """Side L of the cubic (square) cell of N particles: (4 pi N/3)^(1/3) rs, (pi N)^(1/2) rs."""
    _check_dim(dim)
    _check_rs(rs)
    if n_particles < 1:
        raise ValueError(f"n_particles must be >= 1, got {n_particles}")
    return (4.0 * np.pi * n_particles / 3.0) ** (1.0 / 3.0) * rs if dim == 3 else (
        np.pi * n_particles) ** 0.5 * rs


def wigner_seitz_radius(n_particles: int, volume: float, dim: int = 3) -> float:
    """rs of N particles in a cell of volume (area) V; for hydrogen count protons."""
    _check_dim(dim)
    if dim == 3:
        return (3.0 * volume / (4.0 * np.pi * n_particles)) ** (1.0 / 3.0)
    return (volume / (np.pi * n_particles)) ** 0.5


def species_fermi_wavevector(n_sigma: float, dim: int = 3) -> float:
    """k_F of one spin species of density n_sigma: (6 pi^2 n_sigma)^(1/3), (4 pi n_sigma)^(1/2)."""
    _check_dim(dim)
    return (6.0 * np.pi**2 * n_sigma) ** (1.0 / 3.0) if dim == 3 else (4.0 * np.pi * n_sigma) ** 0.5


def fermi_wavevector(rs: float, dim: int = 3, *, polarized: bool) -> float:
    """k_F of the fully polarised (all density in one species) or unpolarised gas at rs."""
    n = density(rs, dim)
    return species_fermi_wavevector(n if polarized else 0.5 * n, dim)


def fermi_energy(rs: float, dim: int = 3, *, polarized: bool) -> float:
    """E_F = k_F^2 / 2 (Ha) = k_B T_F."""
    return 0.5 * fermi_wavevector(rs, dim, polarized=polarized) ** 2


def temperature(theta: float, rs: float, dim: int = 3, *, polarized: bool) -> float:
    """k_B T in Ha for Theta = T/T_F, T_F of the polarised or unpolarised gas (say which)."""
    if not np.all(np.asarray(theta) >= 0):
        raise ValueError(f"theta must be >= 0, got {theta}")
    return theta * fermi_energy(rs, dim, polarized=polarized)


def theta(temperature: float, rs: float, dim: int = 3, *, polarized: bool) -> float:
    """Theta = T/T_F for k_B T in Ha."""
    return temperature / fermi_energy(rs, dim, polarized=polarized)


def gas_temperature(theta: float, rs: float, n_up: int, n_down: int, dim: int = 3,
                    reference: str = "own") -> float:
    """k_B T (Ha) of an electron-gas spec (n_up, n_down, rs, theta).

    reference: "own" - T_F of the gas's own polarisation (Brown et al.; the project's convention
        for ``electron_gas`` specs): polarised if one species is empty, unpolarised if
        n_up == n_down; a partially polarised gas has no own T_F and raises.
        "paramagnetic" - unpolarised T_F of the total density (GDSMFB).
        "polarized" - fully polarised T_F of the total density.
    """
    if reference == "own":
        if n_up == 0 or n_down == 0:
            polarized = True
        elif n_up == n_down:
            polarized = False
        else:
            raise ValueError(
                f"theta of a partially polarised gas (n_up={n_up}, n_down={n_down}) is ambiguous: "
                "pass reference='paramagnetic' or 'polarized'")
    elif reference in ("paramagnetic", "polarized"):
        polarized = reference == "polarized"
    else:
        raise ValueError(
            f"reference must be 'own', 'paramagnetic' or 'polarized', got {reference!r}")
    return temperature(theta, rs, dim, polarized=polarized)


# ---------------------------------------------------------------------------------------------
# ideal Fermi gas, thermodynamic limit, grand canonical
# ---------------------------------------------------------------------------------------------


class IdealFermiSpecies(NamedTuple):
    """One spin species of the ideal Fermi gas, per particle, in units of its own E_F.

    t = T/E_F, eta = mu/T, mu = mu/E_F, kinetic = K/E_F, free_energy = F/E_F, entropy = S/(N k_B).
    """

    t: float
    eta: float
    mu: float
    kinetic: float
    free_energy: float
    entropy: float


def _fermi_dirac(j: float, eta: float) -> float:
    """I_j(eta) = int_0^inf x^j / (exp(x - eta) + 1) dx, by adaptive quadrature (rel. ~1e-13).

    The x^j endpoint behaviour is integrated exactly by QUADPACK's algebraic weight; the Fermi
    edge at x = eta is a breakpoint; the tail beyond eta + 60 is below 1e-26 relative.
    """
    occupation = lambda x: special.expit(eta - x)  # noqa: E731  (stable for all x - eta)
    opts = dict(epsabs=0.0, epsrel=1e-13, limit=200)
    if eta <= 0:
        return integrate.quad(occupation, 0.0, 60.0, weight="alg", wvar=(j, 0.0), **opts)[0]
    low = integrate.quad(occupation, 0.0, eta, weight="alg", wvar=(j, 0.0), **opts)[0]
    high = integrate.quad(lambda x: x**j * occupation(x), eta, eta + 60.0, **opts)[0]
    return low + high


def _eta_3d(t: float) -> float:
    """Solve I_{1/2}(eta) = (2/3) t^(-3/2) (the density fixes mu)."""
    target = (2.0 / 3.0) * t**-1.5
    # I_{1/2}(eta) <= Gamma(3/2) e^eta gives a lower bound on eta; I_{1/2}(eta) >= (2/3) eta^(3/2)
    # an upper one.
    lo = math.log(target / special.gamma(1.5))
    hi = max(1.0 / t, lo + 1.0)
    return optimize.brentq(lambda e: math.log(_fermi_dirac(0.5, e)) - math.log(target), lo, hi,
                           xtol=1e-14, rtol=1e-15, maxiter=200)


def _neg_li2_neg_exp(eta: float) -> float:
    """I_1(eta) = -Li_2(-e^eta) without overflow of e^eta (scipy: Li_2(1-z) = spence(z))."""
    if eta > 0:
        return 0.5 * eta * eta + np.pi**2 / 6.0 + special.spence(1.0 + math.exp(-eta))
    return -special.spence(1.0 + math.exp(eta))


@functools.lru_cache(maxsize=4096)
def ideal_fermi_species(t: float, dim: int = 3) -> IdealFermiSpecies:
    """Ideal Fermi gas of one spin species at t = T/E_F (thermodynamic limit, grand canonical).

    3D: I_{1/2}(eta) = (2/3) t^(-3/2); K = T I_{3/2}/I_{1/2}; F = mu - (2/3) K.
    2D (constant density of states, closed form): ln(1 + e^eta) = 1/t; K = T I_1/I_0 with
    I_1 = -Li_2(-e^eta); F = mu - K. In both, S/k_B = (K - F)/T. t = 0 gives the ground state.
    Not the canonical finite-N value (see the canonical ideal gas elsewhere in qvfe).
    """
    _check_dim(dim)
    t = float(t)
    if t < 0:
        raise ValueError("t must be >= 0")
    if t == 0:
        kin = 0.6 if dim == 3 else 0.5
        return IdealFermiSpecies(0.0, math.inf, 1.0, kin, kin, 0.0)
    if dim == 3:
        eta = _eta_3d(t)
        kin = 1.5 * t**2.5 * _fermi_dirac(1.5, eta)
        free = eta * t - (2.0 / 3.0) * kin
    else:
        eta = 1.0 / t + math.log(-math.expm1(-1.0 / t))  # ln(e^{1/t} - 1) without overflow
        kin = t * t * _neg_li2_neg_exp(eta)
        free = eta * t - kin
    return IdealFermiSpecies(t, eta, eta * t, kin, free, (kin - free) / t)


class IdealFermiGas(NamedTuple):
    """Ideal electron gas of polarisation xi at temperature T: Ha per electron, S in k_B."""

    kinetic: float
    free_energy: float
    entropy: float
    mu_up: float
    mu_down: float


def _species_densities(rs: float, xi: float, dim: int) -> tuple[float, float]:
    if not -1.0 <= xi <= 1.0:
        raise ValueError(f"xi must lie in [-1, 1], got {xi}")
    n = density(rs, dim)
    return 0.5 * n * (1 + xi), 0.5 * n * (1 - xi)


def ideal_fermi_gas(rs: float, temperature: float, *, xi: float = 0.0,
                    dim: int = 3) -> IdealFermiGas:
    """Thermodynamic-limit ideal gas at rs, k_B T (Ha), polarisation xi = (n_up - n_down)/n.

    Each species sits at its own t_sigma = T / E_F(n_sigma); results are density-weighted sums.
    An empty species has mu = nan.
    """
    n = density(rs, dim)
    out = dict(kinetic=0.0, free_energy=0.0, entropy=0.0)
    mus = []
    for n_s in _species_densities(rs, xi, dim):
        if n_s <= 0:
            mus.append(math.nan)
            continue
        e_f = 0.5 * species_fermi_wavevector(n_s, dim) ** 2
        sp = ideal_fermi_species(temperature / e_f, dim)
        w = n_s / n
        out["kinetic"] += w * sp.kinetic * e_f
        out["free_energy"] += w * sp.free_energy * e_f
        out["entropy"] += w * sp.entropy
        mus.append(sp.mu * e_f)
    return IdealFermiGas(out["kinetic"], out["free_energy"], out["entropy"], mus[0], mus[1])


@functools.lru_cache(maxsize=1024)
def exchange_ratio(t: float) -> float:
    """ex(t)/ex(0): finite-T Hartree-Fock exchange of one 3D species over its T = 0 value.

    With x = k/k_F and occupations f(x) = 1/(exp((x^2 - mu/E_F)/t) + 1),
        ex(t) / ex(0) = 2 J(t),  J = int int x y ln|(x+y)/(x-y)| f(x) f(y) dx dy,  J(0) = 1/2
    (the angular integral of 4 pi / |k - k'|^2 gives the logarithm). By symmetry J is twice the
    y < x half; with y = x u the log singularity sits at u = 1, where QUADPACK's log weight takes
    it.
    """
    t = float(t)
    if t == 0:
        return 1.0
    mu = ideal_fermi_species(t, 3).mu
    occ = lambda x: special.expit((mu - x * x) / t)  # noqa: E731
    opts = dict(epsabs=0.0, epsrel=1e-11, limit=200)

    def inner(x: float) -> float:
        smooth = integrate.quad(lambda u: u * math.log1p(u) * occ(x * u), 0.0, 1.0, **opts)[0]
        # weight "alg-logb" with exponents (0, 0) is log(1 - u) on [0, 1]
        singular = integrate.quad(lambda u: u * occ(x * u), 0.0, 1.0, weight="alg-logb",
                                  wvar=(0.0, 0.0), **opts)[0]
        return smooth - singular

    x_max = math.sqrt(max(mu, 0.0) + 60.0 * t)
    points = [math.sqrt(mu)] if 0 < mu < x_max**2 else None
    j_half = integrate.quad(lambda x: x**3 * occ(x) * inner(x), 0.0, x_max, points=points,
                            **opts)[0]
    return 2.0 * (2.0 * j_half)


def exchange_energy(rs: float, temperature: float = 0.0, *, xi: float = 0.0, dim: int = 3) -> float:
    """Thermodynamic-limit HF exchange energy per electron (Ha) of the ideal-gas occupations.

    T = 0: -3 k_sigma/(4 pi) (3D), -4 k_sigma/(3 pi) (2D) per electron of species sigma, weighted by
    n_sigma/n. Finite T: times ``exchange_ratio(t_sigma)`` (3D only; 2D raises).
    """
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    n = density(rs, dim)
    total = 0.0
    for n_s in _species_densities(rs, xi, dim):
        if n_s <= 0:
            continue
        k_s = species_fermi_wavevector(n_s, dim)
        ex0 = -3.0 * k_s / (4.0 * np.pi) if dim == 3 else -4.0 * k_s / (3.0 * np.pi)
        if temperature > 0:
            if dim != 3:
                raise NotImplementedError("finite-temperature exchange is implemented in 3D only")
            ex0 *= exchange_ratio(temperature / (0.5 * k_s * k_s))
        total += n_s / n * ex0
    return total


# ---------------------------------------------------------------------------------------------
# Hartree-Fock energy of a finite plane-wave determinant
# ---------------------------------------------------------------------------------------------


def ground_state_kvectors(lattice: np.ndarray, n: int, twist: np.ndarray | None = None, *,
                          allow_open_shell: bool = False) -> np.ndarray:
    """The n lowest-|k| vectors k = 2 pi (m + twist) B (B = inverse lattice transposed), (n, d).

    Sorted by |k| (ties broken by a fixed order). Raises if the n-th and (n+1)-th levels are
    degenerate (an open shell: the ground state is not unique) unless ``allow_open_shell``.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    dim = lattice.shape[0]
    recip = 2 * np.pi * np.linalg.inv(lattice).T
    twist = np.zeros(dim) if twist is None else np.asarray(twist, dtype=np.float64)
    # m_i + twist_i = k . a_i / (2 pi), so the cube |m_i| <= m_max holds every k with
    # |k| <= 2 pi (m_max - max|twist|) / max|a_i|: grow it until that ball holds n + 1 levels.
    a_max = float(np.max(np.linalg.norm(lattice, axis=1)))
    m_max = 1
    while True:
        m = np.array(list(itertools.product(range(-m_max, m_max + 1), repeat=dim)),
                     dtype=np.float64)
        k = (m + twist) @ recip
        k2 = np.sum(k * k, axis=1)
        order = np.lexsort((*m.T[::-1], np.round(k2, 10)))
        k, k2 = k[order], k2[order]
        radius = 2 * np.pi * (m_max - float(np.max(np.abs(twist)))) / a_max
        if n < len(k) and k2[n] < radius**2:
            break
        m_max += 1
    if not allow_open_shell and abs(k2[n] - k2[n - 1]) < 1e-10 * max(k2[n], 1e-300):
        raise ValueError(
            f"{n} particles do not fill a closed shell (open shell at |k|^2 = {k2[n]:.6g})")
    return k[:n]


def kinetic_shell_error(lattice: np.ndarray, n_up: int, n_down: int,
                        twist: np.ndarray | None = None) -> float:
    """One-body finite-size error of the kinetic energy, Ha per electron: free electrons in the
    lowest plane waves of the cell's k-grid (at ``twist``, in units of the reciprocal vectors)
    minus the infinite gas at the same spin densities, d/(d+2) k_F,σ²/2 per electron of spin σ.

    A metal of N electrons in a periodic cell inherits most of it from the shells of its
    occupied k's, and its virial pressure 2/3 of it per volume; twist averaging removes it, and
    the Baldereschi point (1/4, 1/4, 1/4) of the cubic cell nearly does (dense hydrogen at
    rs = 1.25: 0.0585 Ha at Γ against 0.0106 there for N = 16, 0.0163 against 0.0013 for N = 32).
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    dim = lattice.shape[0]
    volume = abs(float(np.linalg.det(lattice)))
    total = 0.0
    for n in (n_up, n_down):
        if n == 0:
            continue
        k = ground_state_kvectors(lattice, n, twist, allow_open_shell=True)
        k_fermi = species_fermi_wavevector(n / volume, dim)
        total += 0.5 * float(np.sum(k * k)) - n * dim / (dim + 2) * 0.5 * k_fermi**2
    return total / (n_up + n_down)


def exchange_shell_error(lattice: np.ndarray, n_up: int, n_down: int,
                         twist: np.ndarray | None = None, grid: int = 6) -> float:
    """One-body finite-size error of the exchange energy, Ha per electron: the Hartree-Fock
    exchange of the free electrons' determinant at ``twist`` minus its average over a
    ``grid``^d Monkhorst-Pack set of twists (Ewald interaction).

    The shells of occupied k's move the exchange energy as they move the kinetic energy
    (:func:`kinetic_shell_error`), and twist averaging removes it; what the average keeps is
    the exchange hole's own finite-size error, a two-body effect (for the exact state
    :func:`plasmon_finite_size_error`). Dense hydrogen at rs = 1.25 and the Baldereschi twist:
    about -0.012 Ha per electron at N = 16 (against the kinetic +0.0106) and +0.0016 at N = 32.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    dim = lattice.shape[0]
    if grid < 1:
        raise ValueError(f"grid = {grid} must be >= 1")

    def exchange(t: np.ndarray | None) -> float:
        kvs = [ground_state_kvectors(lattice, n, t, allow_open_shell=True)
               for n in (n_up, n_down) if n > 0]
        return hf_energy(kvs, lattice).exchange

    points = (np.arange(grid) + 0.5) / grid - 0.5
    mesh = np.stack(np.meshgrid(*[points] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    average = float(np.mean([exchange(t) for t in mesh]))
    return (exchange(twist) - average) / (n_up + n_down)


def plasmon_finite_size_error(n_density: float, n_particles: int) -> float:
    """Leading-order two-body finite-size error of the potential energy, and equally of the
    kinetic energy, of a 3D Coulomb system of electrons in a periodic cell: V_N − V_∞ =
    T_N − T_∞ = −ω_p/(4N) Ha per electron, ω_p = (4π n)^(1/2) the plasma frequency (Chiesa,
    Ceperley, Martin and Holzmann, PRL 97, 076404 (2006)).

    The potential part is the k = 0 cell missing from the cell's sum over k ≠ 0 of
    (2π/(V k²)) S(k), where the charge structure factor goes like k²/(2ω_p); the kinetic part is
    the long-wavelength plasmon zero-point motion a finite cell cannot hold. Both are negative:
    a finite cell's energy lies ω_p/(2N) below the infinite system's (once the one-body shell
    error, :func:`kinetic_shell_error`, is removed). They hold for the exact state, whose
    S(k) has the plasmon form; a variational state without long-range correlation has its own.
    """
    if n_density <= 0.0 or n_particles < 1:
        raise ValueError(f"n_density = {n_density} must be > 0 and n_particles = {n_particles} "
                         ">= 1")
    omega_p = math.sqrt(4.0 * math.pi * n_density)
    return -omega_p / (4.0 * n_particles)


class HFEnergy(NamedTuple):
    """HF energy of a plane-wave determinant, Ha per cell: total = kinetic + exchange + madelung."""

    kinetic: float
    exchange: float
    madelung: float
    total: float


def hf_energy(kvectors_by_spin: list[np.ndarray] | tuple[np.ndarray, ...],
              lattice: np.ndarray) -> HFEnergy:
    """Exact HF energy per cell of the determinants of the given plane waves (Ewald interaction).

    For the Ewald pair potential psi (zero mean, Fourier coefficients 4 pi/(V G^2) in 3D and
    2 pi/(A G) in 2D) the Hartree term vanishes, the exchange between k != k' of the same spin is
    -(1/V) psi_G(k - k'), and each electron carries the Madelung self-image term v_M/2:

        E = sum_k k^2/2 - (1/2) sum_sigma sum_{k != k' in sigma} psi_G(k - k')/V + N v_M/2.

    Args:
        kvectors_by_spin: one (n_sigma, d) array of occupied wavevectors per spin species
            (k - k' must be reciprocal lattice vectors: same twist within a species).
        lattice: (d, d), rows are the cell vectors (bohr).
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    dim = lattice.shape[0]
    _check_dim(dim)
    volume = abs(float(np.linalg.det(lattice)))
    kinetic = exchange = 0.0
    n_total = 0
    for k in kvectors_by_spin:
        k = np.asarray(k, dtype=np.float64).reshape(-1, dim)
        n_total += len(k)
        kinetic += 0.5 * float(np.sum(k * k))
        if len(k) < 2:
            continue
        q = np.linalg.norm(k[:, None, :] - k[None, :, :], axis=-1)
        off = ~np.eye(len(k), dtype=bool)
        if np.any(q[off] < 1e-12):
            raise ValueError("a wavevector is occupied twice in one spin species")
        coeff = 4 * np.pi / q[off] ** 2 if dim == 3 else 2 * np.pi / q[off]
        exchange -= 0.5 * float(np.sum(coeff)) / volume
    madelung = 0.5 * n_total * madelung_constant(lattice)
    return HFEnergy(kinetic, exchange, madelung, kinetic + exchange + madelung)


def lindhard(x: np.ndarray | float) -> np.ndarray:
    """Static Lindhard function of the 3D gas at T = 0, normalised to 1 at x = q/(2k_F) = 0:

        f(x) = 1/2 + (1 − x²)/(4x) ln|(1 + x)/(1 − x)|,

    f(1) = 1/2 (the 2k_F kink), f ≈ 1/(3x²) for x ≫ 1. χ₀(q) = (k_F/π²) f(q/2k_F) per unit volume
    for both spins.
    """
    x = np.abs(np.asarray(x, dtype=np.float64))
    out = np.ones_like(x)
    small = x < 1e-6
    near = np.abs(x - 1.0) < 1e-12
    mid = ~(small | near)
    xm = x[mid]
    out[mid] = 0.5 + (1.0 - xm**2) / (4.0 * xm) * np.log(np.abs((1.0 + xm) / (1.0 - xm)))
    out[small] = 1.0 - x[small] ** 2 / 3.0
    out[near] = 0.5
    return out


def rpa_dielectric(q: np.ndarray | float, rs: float) -> np.ndarray:
    """ε(q) = 1 + (k_TF/q)² f(q/2k_F) of the unpolarised 3D gas at rs (random-phase approximation,
    Lindhard f); its q → 0 limit is Thomas–Fermi's 1 + k_TF²/q², k_TF² = 4k_F/π."""
    k_f = fermi_wavevector(rs, 3, polarized=False)
    q = np.asarray(q, dtype=np.float64)
    return 1.0 + (4.0 * k_f / np.pi) / q**2 * lindhard(q / (2.0 * k_f))
