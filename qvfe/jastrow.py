"""A periodic Jastrow factor with exact electron-electron cusps, for pure (ground) states only.

One job: ``ln J(X) = sum_{i<j} f(r_ij / r_c) g_s(r_ij)`` over electron pairs at minimum-image
distance r_ij in a square or cubic box of side L, with ``r_c = L/2`` (the sphere inside the
cell, so the minimum image is the only image within range), ``f(t) = (1 - t)^3`` for t < 1 and 0
beyond (``f``, ``f'``, ``f''`` vanish at r_c: ln J and its Laplacian are continuous across the
cutoff and under the minimum image's jumps), and for the pair's spin type s (same or opposite)

    g_s(r) = c_s + (gamma_s + 3 c_s / r_c) r + sum_{k=2}^{K+1} a_{s,k} (r / r_c)^k.

The linear coefficient is fixed by the cusp: d ln J / dr = f'(0) g(0) + g'(0) = gamma_s at r = 0,
the Kato slope of ln psi at a contact, 1/(d - 1) for opposite spins and 1/(d + 1) for same spins
(1/2 and 1/4 in 3D, 1 and 1/3 in 2D; the determinant's node supplies the rest of a same-spin
pair's). The start, ``c_s = -gamma_s r_c / 3`` and ``a = 0``, is ``ln J = -(gamma_s r_c / 3)
f(r / r_c)``: monotone, the cusp exact, zero beyond r_c. What is learned: c_s and the K shape
coefficients per spin type. With clamped nuclei (hydrogen) a one-body term ``sum_{i,I}
f(r_iI / r_c) h(r_iI)`` joins it, h of the same polynomial form with slope 0 at contact (the
electron-proton cusp is the flow's exact step), zero at the start.

The short-range form above stops at r_c = L/2, and correlation at high density is long-ranged
(the plasmons' zero-point motion: the random-phase approximation's u(k) ~ 4π/k² ω_p). With
``long_range_shells`` = M > 0 a sum over the box's reciprocal vectors joins it,

    - sum_{k in shells 1..M} [ b_{s(k)} (|rho_k|^2 - N) + d_{s(k)} Re(rho_k rho^p_k*) ] / N,

rho_k = sum_i e^{i k.x_i} over the N electrons, rho^p_k over the nuclei (the second term only with
nuclei), k = 2 pi m / L, m != 0 in the M smallest shells |m|^2 (one of each pair ±k: |rho_k|^2 is
even in k), b and d learned per shell, zero at the start. It is periodic (no twist: J multiplies
the determinant's twisted phases, it does not carry one), smooth, free of cusps, and a pair sum:
|rho_k|^2 - N = sum_{i != j} e^{i k.(x_i - x_j)}.

Why pure states only: a density matrix sum_n p_n |psi_n><psi_n| with entropy -sum p ln p needs
the dressed states psi_n orthonormal, which the √flow keeps (DESIGN.md §3) and a Jastrow factor
does not (it changes each state's norm and their overlaps). For one base state at clamped
nuclei the norm is one constant, which the Metropolis sampling and the covariance gradient do
not see; that is where qvfe admits it (``model.jastrow_terms`` with ``model.electrons =
'ground'``, for hydrogen with clamped protons). The √flow's periodic features are functions of
r^2 and carry no cusp (README, electron gas); this factor supplies it, and the Slater–Jastrow
comparison.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics.orbitals import reciprocal_half_shells

__all__ = ["PeriodicJastrow"]

MAX_LONG_RANGE_SHELLS = 12


@dataclass(frozen=True)
class PeriodicJastrow:
    """ln J of the module docstring for ``n_up + n_down`` electrons in a square or cubic box.

    Attributes:
        n_up, n_down: electrons of each spin; rows of ``x`` are spin-up first.
        box_length: the box's side L in bohr (cutoff r_c = L/2).
        terms: K, the learned shape coefficients per spin type beyond c_s (0: c_s only).
        dim: 2 or 3 (Kato's slopes depend on it).
        n_nuclei: > 0 adds the electron-nucleus term (clamped nuclei, given to ``log_value``).
        long_range_shells: M, the reciprocal shells of the long-range term (0: none).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> jas = PeriodicJastrow(1, 1, box_length=4.0, terms=2)
        >>> params = jas.init()
        >>> float(jas.log_value(params, jnp.array([[0.0, 0, 0], [3.0, 0, 0]])))  # beyond r_c
        0.0
    """

    n_up: int
    n_down: int
    box_length: float
    terms: int = 4
    dim: int = 3
    n_nuclei: int = 0
    long_range_shells: int = 0

    def __post_init__(self) -> None:
        if self.n_up < 0 or self.n_down < 0 or self.n_up + self.n_down < 2:
            raise ValueError(f"a Jastrow factor needs two electrons or more, got n_up = "
                             f"{self.n_up}, n_down = {self.n_down}")
        if not self.box_length > 0:
            raise ValueError(f"box_length must be > 0, got {self.box_length}")
        if self.terms < 0:
            raise ValueError(f"terms must be >= 0, got {self.terms}")
        if self.dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {self.dim}")
        if self.n_nuclei < 0:
            raise ValueError(f"n_nuclei must be >= 0, got {self.n_nuclei}")
        if not 0 <= self.long_range_shells <= MAX_LONG_RANGE_SHELLS:
            raise ValueError(f"long_range_shells must be in [0, {MAX_LONG_RANGE_SHELLS}], got "
                             f"{self.long_range_shells}")
        object.__setattr__(self, "_reciprocal", reciprocal_half_shells(
            self.dim, self.long_range_shells, self.box_length))
        n = self.n_up + self.n_down
        i, j = np.triu_indices(n, k=1)
        same = (i < self.n_up) == (j < self.n_up)
        object.__setattr__(self, "_pairs", (i, j, same.astype(np.int64)))

    @property
    def cutoff(self) -> float:
        return 0.5 * self.box_length

    @property
    def cusps(self) -> np.ndarray:
        """gamma_s for s = 0 (opposite spins) and 1 (same spins): Kato's 1/(d -+ 1)."""
        return np.array([1.0 / (self.dim - 1), 1.0 / (self.dim + 1)])

    def init(self) -> dict:
        """The monotone start: c_s = -gamma_s r_c / 3, a = 0, and no electron-nucleus term (no
        randomness)."""
        params = {"offset": jnp.asarray(-self.cusps * self.cutoff / 3.0),
                  "shape": jnp.zeros((2, self.terms))}
        if self.n_nuclei:
            params["nuclear"] = jnp.zeros(self.terms + 1)
        if self.long_range_shells:
            params["long_range"] = jnp.zeros(self.long_range_shells)
            if self.n_nuclei:
                params["long_range_nuclear"] = jnp.zeros(self.long_range_shells)
        return params

    def pair_function(self, params: dict, r: jax.Array, same: jax.Array) -> jax.Array:
        """f(r / r_c) g_s(r) at distances ``r`` for spin types ``same`` (0 or 1), elementwise."""
        rc = self.cutoff
        c = params["offset"][same]
        g = c + (jnp.asarray(self.cusps)[same] + 3.0 * c / rc) * r
        return self._cutoff(r) * (g + self._shape(params["shape"][same], r))

    def nuclear_function(self, params: dict, r: jax.Array) -> jax.Array:
        """f(r / r_c) h(r) at electron-nucleus distances ``r``, elementwise: h(r) = b_0 (1 +
        3 r / r_c) + sum_{k=2}^{K+1} b_{k-1} (r / r_c)^k, whose slope at contact is zero (the
        cusp is the flow's exact step, ``model.nuclei_exact_cusp``)."""
        b = params["nuclear"]
        h = b[0] * (1.0 + 3.0 * r / self.cutoff) + self._shape(b[1:], r)
        return self._cutoff(r) * h

    def _cutoff(self, r: jax.Array) -> jax.Array:
        """f(r / r_c) = (1 - r/r_c)^3 inside the cutoff, 0 beyond."""
        t = r / self.cutoff
        return jnp.where(t < 1.0, (1.0 - jnp.minimum(t, 1.0)) ** 3, 0.0)

    def _shape(self, coefficients: jax.Array, r: jax.Array) -> jax.Array:
        """sum_{k=2}^{K+1} coefficients[..., k-2] (r / r_c)^k (0 for K = 0)."""
        if not self.terms:
            return jnp.zeros_like(r)
        powers = (r / self.cutoff)[..., None] ** jnp.arange(2, self.terms + 2)
        return jnp.sum(coefficients * powers, axis=-1)

    def log_value(self, params: dict, x: jax.Array, nuclei: jax.Array | None = None
                  ) -> jax.Array:
        """ln J at one sample ``x`` of shape (n_up + n_down, dim); ``nuclei`` (n_nuclei, dim)
        with the electron-nucleus term."""
        if x.shape != (self.n_up + self.n_down, self.dim):
            raise ValueError(f"x must have shape ({self.n_up + self.n_down}, {self.dim}), got "
                             f"{x.shape}")
        i, j, same = self._pairs
        d = self._minimum_image(x[i] - x[j])
        r = jnp.sqrt(jnp.sum(d * d, axis=-1))
        value = jnp.sum(self.pair_function(params, r, jnp.asarray(same)))
        if self.n_nuclei:
            if nuclei is None or nuclei.shape != (self.n_nuclei, self.dim):
                raise ValueError(f"the electron-nucleus term needs nuclei of shape "
                                 f"({self.n_nuclei}, {self.dim})")
            d = self._minimum_image(x[:, None, :] - nuclei[None, :, :])
            value = value + jnp.sum(self.nuclear_function(params,
                                                          jnp.sqrt(jnp.sum(d * d, axis=-1))))
        if self.long_range_shells:
            value = value + self._long_range(params, x, nuclei)
        return value

    def _long_range(self, params: dict, x: jax.Array, nuclei: jax.Array | None) -> jax.Array:
        """The reciprocal-space term of the module docstring."""
        k, shell = self._reciprocal
        n = x.shape[0]

        def density(points):  # Re and Im of rho_k = sum_i e^{i k.x_i}, (K,) each; real
            phase = points @ jnp.asarray(k, points.dtype).T  # arithmetic keeps folx's path real
            return jnp.sum(jnp.cos(phase), axis=0), jnp.sum(jnp.sin(phase), axis=0)

        re, im = density(x)
        per_k = params["long_range"][shell] * (re * re + im * im - n)
        if self.n_nuclei:
            re_p, im_p = density(nuclei)
            per_k = per_k + params["long_range_nuclear"][shell] * (re * re_p + im * im_p)
        return -jnp.sum(per_k) / n

    def _minimum_image(self, d: jax.Array) -> jax.Array:
        return d - self.box_length * jnp.round(d / self.box_length)
