"""A normalized density q(x): a bijection f applied to a Gaussian base, x = f(z), z ~ N(0, σ²I).

log q(x) = log N(f⁻¹(x)) + log|det ∂f⁻¹/∂x|   (`log_prob`, via the inverse)
         = log N(z) − log|det ∂f/∂z|, x = f(z) (`sample_and_log_prob`, via the forward map)

Sampling runs the forward direction, so variational free-energy training differentiates through
`sample_and_log_prob` (reparameterised gradient); maximum likelihood uses `log_prob`; flow matching
trains a `ContinuousFlow`'s velocity directly (x₀ from `base`, x₁ from data; t: 0 → 1 runs
base → data).

Example::

    >>> import jax
    >>> from qvfe.flows import FlowDensity, StandardNormal, real_nvp
    >>> q = FlowDensity(real_nvp(4, hidden=(16,)), StandardNormal(2))
    >>> params = q.init(jax.random.key(0))
    >>> x, log_q = q.sample_and_log_prob(params, jax.random.key(1), 128)   # (128, 2), (128,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from qvfe.flows.base import Array, Bijection, Params, default_float_dtype


@dataclass(frozen=True)
class StandardNormal:
    """Isotropic Gaussian N(0, scale² I) in ``dim`` dimensions."""

    dim: int
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.dim < 1 or self.scale <= 0:
            raise ValueError(f"StandardNormal needs dim >= 1 and scale > 0, got {self}")

    def sample(self, key: Array, n: int) -> Array:
        return self.scale * jax.random.normal(key, (n, self.dim), default_float_dtype())

    def log_prob(self, z: Array) -> Array:
        """Log density over the last axis of ``z``."""
        norm = self.dim * (0.5 * math.log(2 * math.pi) + math.log(self.scale))
        return -0.5 * jnp.sum((z / self.scale) ** 2, axis=-1) - norm


@dataclass(frozen=True)
class FlowDensity:
    """q = f_# base. Params are the bijection's params; the base has none."""

    bijection: Bijection
    base: StandardNormal

    @property
    def dim(self) -> int:
        return self.base.dim

    def init(self, key: Array, dim: int | None = None) -> Params:
        if dim is not None and dim != self.base.dim:
            raise ValueError(f"dim={dim} does not match the base's dim={self.base.dim}")
        return self.bijection.init(key, self.base.dim)

    def log_prob(self, params: Params, x: Array, *, key: Array | None = None) -> Array:
        """log q(x) for x of shape (..., dim); returns shape (...). ``key`` feeds stochastic
        log-dets (Hutchinson), one independent key per sample."""
        batch_shape = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        keys = None if key is None else jax.random.split(key, flat.shape[0])

        def one(x_, k):
            z, ldj = self.bijection.inverse_and_log_det(params, x_, key=k)
            return self.base.log_prob(z) + ldj

        out = jax.vmap(one, in_axes=(0, None if keys is None else 0))(flat, keys)
        return out.reshape(batch_shape)

    def sample_and_log_prob(self, params: Params, key: Array, n: int) -> tuple[Array, Array]:
        """n samples x = f(z) of shape (n, dim) and their log q of shape (n,), differentiable in
        params (reparameterisation)."""
        key_z, key_ldj = jax.random.split(key)
        z = self.base.sample(key_z, n)
        keys = jax.random.split(key_ldj, n)
        x, ldj = jax.vmap(
            lambda z_, k: self.bijection.forward_and_log_det(params, z_, key=k)
        )(z, keys)
        return x, self.base.log_prob(z) - ldj

    def sample(self, params: Params, key: Array, n: int) -> Array:
        return self.sample_and_log_prob(params, key, n)[0]
