"""Collective (density-wave) flow: a bijection of the electrons driven by their density's long
waves, the correlation a pair flow of bounded amplitude cannot carry at high density.

One job: for electrons ``x`` of shape ``(n, d)`` in a periodic box of side L, apply layers

    x_i <- x_i + u_i,   u_i = sum_k (a_s(k) / n) k Im(e^{i k.x_i} rho_k^*)
                            = sum_k (a_s(k) / n) k sum_j sin(k.(x_i - x_j)),

rho_k = sum_j e^{i k.x_j}, over k = 2 pi m / L in the ``shells`` smallest shells |m|^2 (one of each
pair ±k), a_s one learned amplitude per shell, and return ``ln|det dZ/dX|`` exactly.

Why. Its Jacobian's trace is sum_k a_s |k|^2 (|rho_k|^2 - n) / n, so the √flow's factor
|det dZ/dX|^{1/2} is, to first order, the long-range Jastrow factor exp(-sum_k b_s (|rho_k|^2 -
n)/n) with a_s |k|^2 = -2 b_s (``qvfe.jastrow``): the plasmons' zero-point correlation, which at
high density is a large share of the correlation energy (7 + 7 electrons at rs = 1.25: 6 mHa per
electron, README). A pair flow carries it only with a pair amplitude of order one per pair, far
beyond the 1/n its guarantee allows; here every pair's share is a / n, but the waves are
collective, and the bound below does not grow with n.

Bound. u = grad phi with phi = -sum_k (a_s / 2n) |rho_k|^2, so Z = grad(|X|^2/2 + phi) and the
Jacobian is symmetric: I + P, P = sum_k (a_s / n) M_k ⊗ k k^T with M_k = diag(D_k) - c_k c_k^T -
s_k s_k^T, c_k, s_k the vectors cos(k.x_i), sin(k.x_i) and D_k,i = c_k,i Re rho_k + s_k,i Im rho_k.
Since |D_k,i| <= |rho_k| <= n and (c_k.y)^2 + (s_k.y)^2 <= n |y|^2, M_k's spectrum lies in
[-2n, n], so P >= -sum_k max(-a_s, 2 a_s) |k|^2. With a_s in (-A, A/2), A = strength *
contraction / sum_k |k|^2 (a_s = A (3/4 tanh(theta_s + atanh(1/3)) - 1/4), zero at theta = 0),
P > -strength * contraction: at strength 1 the potential |X|^2/2 + phi is strictly convex for
every parameter value and configuration, so Z is injective, and onto (u is bounded), a
bijection of R^{nd} with det > 0 that commutes with the lattice's translations, hence a
bijection of the torus (as the backflow's layers, ``qvfe.flows.backflow``). The negative sign
(electrons drawn along the waves' crests, which the Jacobian turns into suppressed density
fluctuations) gets twice the positive one's range. Above strength 1 (``model.collective_strength``)
the guarantee is given up: the worst case is every electron in phase with a wave
(|rho_k| = n), which typical configurations (|rho_k| ~ sqrt(n)) are far from; the
log-determinant is exact either way. The layer commutes with permutations of the electrons and
with translations of all of them, and moving one electron by a lattice vector moves its own z by
the same vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics.orbitals import reciprocal_half_shells

__all__ = ["CollectiveFlow", "MAX_SHELLS"]

Params = Any  # {"layers": [{"theta": (shells,)}, ...]}
MAX_SHELLS = 12


@dataclass(frozen=True, eq=False)
class CollectiveFlow:
    """Configuration; parameters live in the pytree returned by ``init`` (identity at init).

    Attributes:
        n_particles: electrons n (both spins: the waves are of the total density).
        dim: spatial dimension d (2 or 3).
        box_length: side L of the periodic square/cubic box.
        shells: reciprocal shells |m|^2 of the waves (1 to ``MAX_SHELLS``).
        n_layers: layers.
        strength: multiplies the amplitudes' range; at most 1 keeps every layer a bijection for
            every parameter value (module docstring).
        contraction: at strength 1, how far (< 1) the Jacobian's lowest eigenvalue may fall
            below 1.

    Example:
        >>> import jax.numpy as jnp
        >>> flow = CollectiveFlow(n_particles=3, dim=3, box_length=4.0, shells=2)
        >>> z, logdet = flow.forward_and_log_det(flow.init(), jnp.ones((3, 3)))
        >>> float(logdet)
        0.0
    """

    n_particles: int
    dim: int
    box_length: float
    shells: int = 3
    n_layers: int = 1
    strength: float = 1.0
    contraction: float = 0.9

    def __post_init__(self) -> None:
        if self.n_particles < 2:
            raise ValueError(f"CollectiveFlow needs two particles or more, got {self.n_particles}")
        if self.dim not in (2, 3):
            raise ValueError(f"CollectiveFlow.dim must be 2 or 3, got {self.dim}")
        if not self.box_length > 0:
            raise ValueError(f"CollectiveFlow.box_length must be > 0, got {self.box_length}")
        if not 1 <= self.shells <= MAX_SHELLS:
            raise ValueError(f"CollectiveFlow.shells must be in [1, {MAX_SHELLS}], got "
                             f"{self.shells}")
        if self.n_layers < 0:
            raise ValueError(f"CollectiveFlow.n_layers must be >= 0, got {self.n_layers}")
        if not self.strength > 0:
            raise ValueError(f"CollectiveFlow.strength must be > 0, got {self.strength}")
        if not 0.0 < self.contraction < 1.0:
            raise ValueError(f"CollectiveFlow.contraction must be in (0, 1), got "
                             f"{self.contraction}")
        k, shell = reciprocal_half_shells(self.dim, self.shells, self.box_length)
        object.__setattr__(self, "_waves", (k, shell))
        # a_s in (-A, A/2): P > -strength * contraction (module docstring)
        object.__setattr__(self, "_range", self.strength * self.contraction
                           / float(np.sum(k * k)))

    def init(self, key: jax.Array | None = None) -> Params:
        """The identity: theta = 0 in every layer (no randomness)."""
        return {"layers": [{"theta": jnp.zeros(self.shells)} for _ in range(self.n_layers)]}

    def amplitudes(self, layer: Params) -> jax.Array:
        """a_s per shell of one layer's parameters, (shells,)."""
        return self._range * (0.75 * jnp.tanh(layer["theta"] + np.arctanh(1.0 / 3.0)) - 0.25)

    def _waves_at(self, layer: Params, x: jax.Array):
        """What one layer's displacement and Jacobian share at x: k (K, d), cos and sin of
        k.x_i (n, K), and each wave's weight a_s / n (K,)."""
        k = jnp.asarray(self._waves[0], x.dtype)
        phase = x @ k.T
        weight = self.amplitudes(layer)[self._waves[1]] / x.shape[0]
        return k, jnp.cos(phase), jnp.sin(phase), weight

    @staticmethod
    def _displacement(waves) -> jax.Array:
        """u (n, d) of one layer from its ``_waves_at``."""
        k, c, s, weight = waves
        wave = s * jnp.sum(c, axis=0) - c * jnp.sum(s, axis=0)  # Im(e^{ik.x_i} rho_k^*)
        return (wave * weight) @ k

    @staticmethod
    def _jacobian(waves) -> jax.Array:
        """d(x + u)/dx of one layer, (n d, n d), in closed form (module docstring), from its
        ``_waves_at``."""
        k, c, s, weight = waves
        n, d = c.shape[0], k.shape[1]
        diag = c * jnp.sum(c, axis=0) + s * jnp.sum(s, axis=0)  # D_k,i, (n, K)
        outer = jnp.einsum("ka,kb->kab", k, k)  # (K, d, d)
        pair = -(jnp.einsum("ik,jk,k,kab->iajb", c, c, weight, outer)
                 + jnp.einsum("ik,jk,k,kab->iajb", s, s, weight, outer))
        own = jnp.einsum("ik,k,kab->iab", diag, weight, outer)  # (n, d, d)
        eye = jnp.eye(n, dtype=c.dtype)
        pair = pair + eye[:, None, :, None] * own[:, :, None, :]
        return jnp.eye(n * d, dtype=c.dtype) + pair.reshape(n * d, n * d)

    def forward_and_log_det(self, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(Z, ln|det dZ/dX|) for one sample x of shape (n, d)."""
        if x.shape != (self.n_particles, self.dim):
            raise ValueError(f"CollectiveFlow expects x of shape {(self.n_particles, self.dim)}, "
                             f"got {x.shape}")
        logdet = jnp.zeros((), x.dtype)
        for layer in params["layers"]:
            waves = self._waves_at(layer, x)
            _, ld = jnp.linalg.slogdet(self._jacobian(waves))
            x = x + self._displacement(waves)
            logdet = logdet + ld
        return x, logdet

    def forward(self, params: Params, x: jax.Array) -> jax.Array:
        """Z for one sample, without the log-determinant."""
        for layer in params["layers"]:
            x = x + self._displacement(self._waves_at(layer, x))
        return x

    def det_sign(self, params: Params, x: jax.Array) -> jax.Array:
        """The product of the layers' det signs at x: +1 where the flow is a local
        diffeomorphism (always at strength <= 1), -1 or 0 where it folds."""
        sign = jnp.ones((), x.dtype)
        for layer in params["layers"]:
            waves = self._waves_at(layer, x)
            sign = sign * jnp.linalg.slogdet(self._jacobian(waves))[0]
            x = x + self._displacement(waves)
        return sign

    def inverse(self, params: Params, z: jax.Array, n_iter: int = 50) -> jax.Array:
        """X(Z) by Newton's method on x + u(x) = z, layer by layer (the gradient of a strictly
        convex potential at strength <= 1; tests only)."""
        shape = z.shape
        for layer in reversed(params["layers"]):
            def newton(_, v, target=z, p=layer):
                waves = self._waves_at(p, v)
                residual = (v + self._displacement(waves) - target).reshape(-1)
                return v - jnp.linalg.solve(self._jacobian(waves), residual).reshape(shape)

            z = jax.lax.fori_loop(0, n_iter, newton, z)
        return z
