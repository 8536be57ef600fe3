"""Periodic Coulomb energy of point charges in a 2D or 3D cell, by Ewald summation.

One job: ``make_ewald(lattice, charges)`` precomputes everything that does not depend on the
positions (splitting parameter, real-space images, reciprocal vectors, constants) and returns an
``EwaldSum`` whose ``energy(positions)`` is a pure, jit-able, differentiable, vmappable function.

Physics and conventions (Hartree atomic units: charges in e, lengths in bohr, energies in Ha):

* The interaction is 1/r in both 3D and 2D (a 2D sheet of charges interacting by the 3D Coulomb
  law, periodic in the plane), the standard model of the 2D electron gas.
* A uniform background of total charge -Q (Q = sum of charges) neutralises the cell. The returned
  energy includes the background-background and particle-background terms, so for electrons alone
  it is the standard jellium energy, and for neutral systems the background drops out.
* The energy of the cell is

      E = sum_{i<j} q_i q_j psi(r_i - r_j) + (1/2) v_M sum_i q_i^2,

  where psi is the periodic potential of a unit charge plus its neutralising background (zero mean
  over the cell) and v_M = lim_{r->0} [psi(r) - 1/r] is the Madelung constant of the cell (the
  interaction of a unit charge with its own images and background). ``EwaldSum.madelung`` is v_M and
  ``EwaldSum.madelung_energy`` the constant second term, readable on its own (e.g. the self-image
  term of Hartree-Fock energies).
* Ewald splitting with parameter alpha: 1/r = erfc(alpha r)/r + erf(alpha r)/r.
  3D: psi(r) = sum_n erfc(alpha|r+n|)/|r+n| + (4 pi / V) sum_{G!=0} exp(-G^2/4alpha^2)/G^2 cos(G.r)
               - pi/(V alpha^2).
  2D: psi(r) = sum_n erfc(alpha|r+n|)/|r+n| + (2 pi / A) sum_{G!=0} erfc(G/2alpha)/G cos(G.r)
               - 2 sqrt(pi)/(A alpha).
  The constants are the G -> 0 limits of (long-range part - bare Coulomb) in Fourier space: the
  neutralising background removes the divergent bare G=0 term and leaves them behind.

Cost: alpha is chosen (unless given) to minimise a cost model of one evaluation, calibrated on CPU
(a real-space pair image costs ~3 structure-factor entries); for N = 66 electrons at the default
accuracy that is ~30 images per pair and ~10^3 reciprocal vectors. ``madelung_constant`` is plain
numpy.

float64 is required: energies of order N/rs are summed from terms of order 1 and the stated
accuracy (default 1e-10 Ha per particle) is below float32 resolution. Library code never changes
the JAX configuration; callers enable it with ``jax.config.update("jax_enable_x64", True)``, and the
factory and the energy function raise if it is off.

Example::

    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    from qvfe.physics.ewald import make_ewald
    ew = make_ewald(np.eye(3) * 2.0, charges=np.array([1.0, -1.0]))      # CsCl, a = 2
    e = ew.energy(np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))        # -1.762675 / sqrt(3)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfc as _jerfc
from scipy.special import erfc as _erfc

__all__ = ["EwaldSum", "make_ewald", "madelung_constant", "image_sum", "half_space",
           "reciprocal_half_space", "require_x64"]


def require_x64(what: str = "Ewald sums") -> None:
    """Raise a clear error if JAX runs in float32 (the default); library code never flips it."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{what} need float64: call jax.config.update('jax_enable_x64', True) at program start "
            "(before creating arrays). qvfe never changes the global JAX configuration itself."
        )


@dataclass(frozen=True)
class EwaldSum:
    """A precomputed Ewald sum for one cell and one set of charges.

    energy(positions (N, d)) -> scalar: total Coulomb energy of the cell in Ha, background included,
        Madelung self-image term included. Pure, jit-able, differentiable, vmappable. Two
        charges at the same point give +inf (like signs) or -inf, and NaN gradients for that
        pair (a zero charge on another particle: NaN); 1e-9 bohr apart is still accurate.
    potential(displacement (..., d)) -> (...): psi(r), the periodic unit-charge potential with its
        background (zero mean); singular at lattice vectors. Pure and jit-able.
    madelung: v_M = lim_{r->0}[psi(r) - 1/r] (Ha per unit charge squared; negative for cubic
        and square cells, positive for some elongated or skewed ones).
    madelung_energy: (1/2) v_M sum_i q_i^2, the constant part of ``energy``.
    """

    energy: Callable[[jax.Array], jax.Array]
    potential: Callable[[jax.Array], jax.Array]
    madelung: float
    madelung_energy: float
    lattice: np.ndarray
    charges: np.ndarray
    alpha: float
    r_cut: float
    g_cut: float
    n_images: int
    n_gvectors: int
    accuracy: float

    @property
    def dim(self) -> int:
        return self.lattice.shape[0]

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))


# ---------------------------------------------------------------------------------------------
# error estimates and the choice of alpha and cutoffs (numpy, once per factory call)
# ---------------------------------------------------------------------------------------------


def image_sum(lattice: np.ndarray, images: np.ndarray,
              kernel: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """disp (..., d) -> sum over ``images`` (m, d) of kernel(|r + n|), r = the minimum image of disp.

    The real-space half of an Ewald sum (kernel erfc(alpha r)/r) and any short-ranged pair energy
    in a periodic cell (hydrogen's screened protons, e^{-k r}/r) share it: the wrap to the minimum
    image in fractional coordinates, then the explicit image shifts, then the kernel.
    """
    inv_lattice = np.linalg.inv(lattice)

    def total(disp: jax.Array) -> jax.Array:
        frac = disp @ inv_lattice
        frac = frac - jnp.round(frac)  # minimum-image in fractional coordinates; images do the rest
        wrapped = frac @ lattice
        r = jnp.linalg.norm(wrapped[..., None, :] + images, axis=-1)
        return jnp.sum(kernel(r), axis=-1)

    return total


def _real_space_error(s: float, alpha: float, dim: int, density_q: float) -> float:
    """Per-unit-charge bound on the neglected real-space terms beyond r_c = s / alpha.

    Charges at density ``density_q`` spread uniformly beyond r_c, no cancellation between signs:
    3D: 4 pi n int_rc^inf r erfc(alpha r) dr, 2D: 2 pi n int_rc^inf erfc(alpha r) dr.
    """
    if dim == 3:
        integral = (0.25 - 0.5 * s * s) * _erfc(s) + s * math.exp(-s * s) / (2 * math.sqrt(math.pi))
        return 4 * math.pi * density_q * integral / alpha**2
    integral = math.exp(-s * s) / math.sqrt(math.pi) - s * _erfc(s)
    return 2 * math.pi * density_q * integral / alpha


def _reciprocal_error(s: float, alpha: float, dim: int) -> float:
    """Per-unit-charge estimate of the neglected reciprocal terms beyond G_c = 2 s alpha.

    Random-phase structure factor (|S(G)|^2 ~ sum q^2) and the G sum replaced by an integral.
    3D: (alpha/sqrt(pi)) erfc(s); 2D: alpha [exp(-s^2)/sqrt(pi) - s erfc(s)].
    """
    if dim == 3:
        return alpha / math.sqrt(math.pi) * _erfc(s)
    return alpha * (math.exp(-s * s) / math.sqrt(math.pi) - s * _erfc(s))


def _solve_s(err: Callable[[float], float], target: float) -> float:
    """Smallest s with err(s) <= target (err decreases monotonically for s > ~0.5)."""
    lo, hi = 0.5, 1.0
    while err(hi) > target:
        lo, hi = hi, hi * 1.5
        if hi > 60:
            raise ValueError(f"cannot reach Ewald accuracy {target:g}")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if err(mid) > target:
            lo = mid
        else:
            hi = mid
    return hi


def _lattice_points(basis: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer coordinates m and points n = m @ basis with |n| <= radius (rows of ``basis``)."""
    dim = basis.shape[0]
    # |m_i| <= radius |b_i| / (2 pi) with b the dual basis: m_i = n . b_i / (2 pi).
    dual = np.linalg.inv(basis).T  # rows b_i / (2 pi)
    m_max = [int(math.floor(radius * np.linalg.norm(dual[i]))) + 1 for i in range(dim)]
    ranges = [np.arange(-m, m + 1) for m in m_max]
    m = np.array(list(itertools.product(*ranges)), dtype=np.int64)
    pts = m @ basis
    keep = np.linalg.norm(pts, axis=1) <= radius
    return m[keep], pts[keep]


def _longest_wrapped(lattice: np.ndarray) -> float:
    """Longest displacement with fractional coordinates in [-1/2, 1/2]: the norm is convex, so
    its maximum over the parallelepiped sits at a corner."""
    dim = lattice.shape[0]
    signs = np.array(list(itertools.product((-0.5, 0.5), repeat=dim)))
    return float(np.max(np.linalg.norm(signs @ lattice, axis=1)))


def _plan(lattice: np.ndarray, q: np.ndarray, accuracy: float, alpha: float | None):
    """Choose alpha (if not given) to minimise the estimated cost at the requested accuracy."""
    dim = lattice.shape[0]
    volume = abs(np.linalg.det(lattice))
    n = len(q)
    qmax = float(np.max(np.abs(q))) if n else 1.0
    density_q = max(float(np.sum(np.abs(q))), qmax) / volume
    r_wrap = _longest_wrapped(lattice)
    # Aim a factor 10 below the stated accuracy: the estimates are not bounds for every structure.
    target = 0.1 * accuracy / max(qmax, 1e-300)
    # The reciprocal estimate assumes random phases, |S(G)|^2 ~ N; charges clustered within a
    # small part of the cell reach |S(G)|^2 ~ N^2 below G_c, N times that (128 electrons in a
    # hundredth of the cell missed the accuracy twelvefold), so its tail is cut for that case.
    target_g = target / max(n, 1)
    n_pairs = max(n * (n - 1) // 2, 1)
    unit_ball = math.pi if dim == 2 else 4 * math.pi / 3

    def cutoffs(a: float) -> tuple[float, float]:
        s_r = _solve_s(lambda s: _real_space_error(s, a, dim, density_q), target)
        s_g = _solve_s(lambda s: _reciprocal_error(s, a, dim), target_g)
        return s_r / a, 2 * s_g * a

    def cost(a: float) -> float:
        rc, gc = cutoffs(a)
        n_img = unit_ball * (rc + r_wrap) ** dim / volume + 1
        n_g = 0.5 * unit_ball * gc**dim * volume / (2 * math.pi) ** dim
        # Measured on CPU (jax 0.10.2, batch 256): a pair image (norm, erfc, divide) costs about
        # three times a (particle, G) entry of the einsum structure factor.
        return 3 * n_pairs * n_img + max(n, 1) * n_g

    if alpha is None:
        length = volume ** (1.0 / dim)
        grid = np.geomspace(0.5, 20.0, 60) / length
        alpha = float(min(grid, key=cost))
    r_cut, g_cut = cutoffs(alpha)
    return float(alpha), r_cut, g_cut, r_wrap


# ---------------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------------


def make_ewald(
    lattice: np.ndarray,
    charges: np.ndarray | None = None,
    *,
    n_particles: int | None = None,
    accuracy: float = 1e-10,
    alpha: float | None = None,
) -> EwaldSum:
    """Precompute the Ewald sum of a cell; return an ``EwaldSum`` with a pure ``energy`` function.

    Args:
        lattice: (d, d) array, rows are the lattice vectors (bohr); d = 2 or 3, any non-singular
            cell (cubic, orthorhombic, triclinic; square, rectangular, oblique).
        charges: (N,) charges in units of e (protons +1, electrons -1). ``None`` means N electrons
            (charge -1 each; give ``n_particles``): the electron gas in its neutralising background.
        n_particles: number of electrons when ``charges`` is None.
        accuracy: target absolute error in Ha per particle (for unit charges); the default 1e-10
            is met with margin by the estimates used here, clustered charges included (the
            reciprocal tail is cut for a coherent structure factor, |S(G)|^2 = N^2).
        alpha: splitting parameter (1/bohr); chosen to minimise the cost when None. Results do not
            depend on it beyond ``accuracy``.

    Returns:
        EwaldSum. ``energy(positions)`` takes (N, d) positions (any values: they are wrapped into
        the cell internally) and returns the total energy in Ha per cell.
    """
    require_x64()
    lattice = np.asarray(lattice, dtype=np.float64)
    if lattice.ndim != 2 or lattice.shape[0] != lattice.shape[1] or lattice.shape[0] not in (2, 3):
        raise ValueError(f"lattice must be (2, 2) or (3, 3), got shape {lattice.shape}")
    dim = lattice.shape[0]
    volume = abs(float(np.linalg.det(lattice)))
    if volume <= 0:
        raise ValueError("lattice vectors are linearly dependent")
    if charges is None:
        if n_particles is None or n_particles < 1:
            raise ValueError("give charges, or n_particles for an electron gas")
        charges = -np.ones(n_particles)
    q = np.asarray(charges, dtype=np.float64).reshape(-1)
    if n_particles is not None and n_particles != len(q):
        raise ValueError(f"n_particles={n_particles} but {len(q)} charges given")
    if not accuracy > 0:
        raise ValueError("accuracy must be positive")
    n = len(q)

    alpha, r_cut, g_cut, r_wrap = _plan(lattice, q, accuracy, alpha)

    # Real-space images: every lattice vector that can bring a wrapped pair within r_cut.
    _, images = _lattice_points(lattice, r_cut + r_wrap)
    self_images = images[np.linalg.norm(images, axis=1) > 0]

    gint, gvecs = reciprocal_half_space(lattice, g_cut)
    gnorm = np.linalg.norm(gvecs, axis=1)
    # exp(i G.x) = prod_k exp(i m_k b_k.x). The structure factor on the whole box of integer
    # vectors m (last coordinate >= 0) is one einsum over per-axis powers: on CPU this is ~5x
    # faster than a sine and cosine per (particle, G), and far faster than gathering the powers.
    # Entries outside the sphere, at G = 0 and in the other half of the m_last = 0 plane get
    # weight zero.
    m_max = np.max(np.abs(gint), axis=0) if len(gint) else np.zeros(dim, dtype=np.int64)
    axes = [np.arange(-int(m_max[k]), int(m_max[k]) + 1) for k in range(dim - 1)]
    axes.append(np.arange(0, int(m_max[-1]) + 1))
    if dim == 3:
        kernel = 4 * np.pi / volume * np.exp(-(gnorm**2) / (4 * alpha**2)) / gnorm**2
        background = -np.pi / (volume * alpha**2)
    else:
        kernel = 2 * np.pi / volume * _erfc(gnorm / (2 * alpha)) / gnorm
        background = -2 * np.sqrt(np.pi) / (volume * alpha)
    # kernel_G is the coefficient of cos(G.r) in psi; sum_{G != 0} = 2 sum_{half space}.
    self_real = float(np.sum(_erfc(alpha * np.linalg.norm(self_images, axis=1))
                             / np.linalg.norm(self_images, axis=1))) if len(self_images) else 0.0
    madelung = self_real + 2 * float(np.sum(kernel)) + background - 2 * alpha / np.sqrt(np.pi)
    weights = np.zeros([len(a) for a in axes])
    weights[tuple(gint[:, k] - axes[k][0] for k in range(dim))] = kernel

    sum_q2 = float(np.sum(q * q))
    madelung_energy = 0.5 * madelung * sum_q2
    inv_lattice = np.linalg.inv(lattice)
    iu, ju = np.triu_indices(n, k=1)
    qq = q[iu] * q[ju]
    # Structure-factor form of the reciprocal sum includes the i = j terms, so the constant adds
    # only the real-space self images, the Gaussian self-interaction and the background.
    const = (0.5 * sum_q2 * self_real - alpha / np.sqrt(np.pi) * sum_q2
             + 0.5 * background * float(np.sum(q)) ** 2)

    _real_space = image_sum(lattice, images, lambda r: _jerfc(alpha * r) / r)

    def energy(positions: jax.Array) -> jax.Array:
        require_x64()
        x = jnp.asarray(positions, dtype=jnp.float64)
        if x.shape != (n, dim):
            raise ValueError(f"positions must have shape {(n, dim)}, got {x.shape}")
        e = jnp.asarray(const, dtype=jnp.float64)
        if n > 1:
            e = e + jnp.sum(qq * _real_space(x[ju] - x[iu]))
        if len(gvecs) == 0:
            return e
        # b_k . x = 2 pi (fractional coordinate k); reduced to [0, 2 pi) so that the phases stay
        # exact for positions far outside the cell and shifts by lattice vectors are exact.
        frac = x @ inv_lattice
        theta = 2 * np.pi * (frac - jnp.floor(frac))
        powers = [jnp.exp(1j * theta[:, k, None] * axes[k]) for k in range(dim)]
        # structure factor S(G) = sum_i q_i exp(i G.x_i) on the box of m
        if dim == 3:
            s_g = jnp.einsum("n,na,nb,nc->abc", q.astype(np.complex128), *powers)
        else:
            s_g = jnp.einsum("n,na,nb->ab", q.astype(np.complex128), *powers)
        # (1/2) sum_{G != 0} kernel |S|^2 = sum_half kernel |S|^2
        return e + jnp.sum(weights * (s_g.real**2 + s_g.imag**2))

    def potential(displacement: jax.Array) -> jax.Array:
        require_x64()
        r = jnp.asarray(displacement, dtype=jnp.float64)
        return (_real_space(r) + 2 * jnp.cos(r @ gvecs.T) @ kernel) + background

    return EwaldSum(
        energy=energy,
        potential=potential,
        madelung=float(madelung),
        madelung_energy=float(madelung_energy),
        lattice=lattice,
        charges=q,
        alpha=alpha,
        r_cut=float(r_cut),
        g_cut=float(g_cut),
        n_images=int(len(images)),
        n_gvectors=int(len(gvecs)),
        accuracy=float(accuracy),
    )


def reciprocal_half_space(lattice: np.ndarray, g_cut: float) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal vectors G ≠ 0 of the cell with |G| <= g_cut, one of each pair ±G (for sums even
    in G), as integer coordinates m and vectors G = m @ (2π lattice⁻ᵀ)."""
    recip = 2 * np.pi * np.linalg.inv(lattice).T  # rows b_i with a_i . b_j = 2 pi delta_ij
    gint, gvecs = _lattice_points(recip, g_cut)
    half = half_space(gint)  # integer coordinates: exact, and excludes G = 0
    return gint[half], gvecs[half]


def half_space(m: np.ndarray) -> np.ndarray:
    """Mask picking one of each pair {m, -m} of integer vectors, m != 0: the last nonzero-deciding
    coordinate, scanned from the last axis backwards, is positive (so m_last >= 0 always)."""
    keep = np.zeros(len(m), dtype=bool)
    undecided = np.ones(len(m), dtype=bool)
    for c in reversed(range(m.shape[1])):
        keep |= undecided & (m[:, c] > 0)
        undecided &= m[:, c] == 0
    return keep


def madelung_constant(lattice: np.ndarray, accuracy: float = 1e-12) -> float:
    """v_M of the cell: lim_{r->0}[psi(r) - 1/r] for a unit charge in its neutralising background.

    Plain numpy (no JAX, no float64 switch needed). For a simple-cubic cell of side L,
    v_M = -2.837297.../L; the jellium Wigner-crystal energy of one electron per cell is v_M / 2.
    """
    lattice = np.asarray(lattice, dtype=np.float64)
    dim = lattice.shape[0]
    volume = abs(float(np.linalg.det(lattice)))
    alpha, r_cut, g_cut, r_wrap = _plan(lattice, np.ones(1), accuracy, None)
    _, images = _lattice_points(lattice, r_cut)
    rn = np.linalg.norm(images, axis=1)
    rn = rn[rn > 0]
    _, gvecs = _lattice_points(2 * np.pi * np.linalg.inv(lattice).T, g_cut)
    g = np.linalg.norm(gvecs, axis=1)
    g = g[g > 0]
    if dim == 3:
        recip = 4 * np.pi / volume * np.sum(np.exp(-(g**2) / (4 * alpha**2)) / g**2)
        background = -np.pi / (volume * alpha**2)
    else:
        recip = 2 * np.pi / volume * np.sum(_erfc(g / (2 * alpha)) / g)
        background = -2 * np.sqrt(np.pi) / (volume * alpha)
    return float(np.sum(_erfc(alpha * rn) / rn) + recip + background - 2 * alpha / np.sqrt(np.pi))
