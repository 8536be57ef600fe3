"""The bijection interface shared by every flow layer, and `Chain`, their composition.

Conventions (every layer in ``qvfe.flows`` follows them):

- A bijection is a frozen dataclass holding hyperparameters only, so it is hashable and can be a
  static ``jit`` argument or be closed over. Trainable state lives in a separate ``params`` pytree
  returned by ``init(key, dim)``.
- ``forward_and_log_det(params, x) -> (y, log|det ∂y/∂x|)`` and
  ``inverse_and_log_det(params, y) -> (x, log|det ∂x/∂y|)`` act on ONE sample of shape ``(dim,)``;
  callers ``vmap``. The two log-dets of a pair (x, y=f(x)) sum to zero.
- Layers that need randomness (Hutchinson trace estimates) take a keyword-only ``key=``; the others
  accept and ignore it, so that a `Chain` can pass keys through uniformly.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from qvfe.flows import AffineCoupling, Chain
    >>> flow = Chain((AffineCoupling(hidden=(8,), parity=0), AffineCoupling(hidden=(8,), parity=1)))
    >>> params = flow.init(jax.random.key(0), 2)
    >>> y, ldj = flow.forward_and_log_det(params, jnp.ones(2))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Params = Any
Array = jax.Array


def default_float_dtype() -> jnp.dtype:
    """float64 when x64 is enabled, else float32 (flax alone would always make float32 params)."""
    return jnp.asarray(0.0).dtype


class Bijection:
    """Abstract base: subclasses are frozen dataclasses implementing the three methods below."""

    def init(self, key: Array, dim: int) -> Params:
        raise NotImplementedError

    def forward_and_log_det(
        self, params: Params, x: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        """y = f(x) and log|det ∂y/∂x| for one sample x of shape (dim,)."""
        raise NotImplementedError

    def inverse_and_log_det(
        self, params: Params, y: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        """x = f⁻¹(y) and log|det ∂x/∂y| for one sample y of shape (dim,)."""
        raise NotImplementedError

    def forward(self, params: Params, x: Array, *, key: Array | None = None) -> Array:
        return self.forward_and_log_det(params, x, key=key)[0]

    def inverse(self, params: Params, y: Array, *, key: Array | None = None) -> Array:
        return self.inverse_and_log_det(params, y, key=key)[0]


@dataclass(frozen=True)
class Chain(Bijection):
    """Composition: forward applies ``layers[0]`` first; params is a tuple of the layers' params.

    With a ``key``, layer i gets the i-th of ``len(layers)`` split keys in both directions, so that
    a stochastic log-det (Hutchinson) uses the same probe forward and backward and the pair cancels.
    """

    layers: tuple[Bijection, ...]

    def __post_init__(self) -> None:
        # A list would make the dataclass unhashable, which breaks its use as a static argument.
        object.__setattr__(self, "layers", tuple(self.layers))

    def init(self, key: Array, dim: int) -> tuple[Params, ...]:
        keys = jax.random.split(key, len(self.layers))
        return tuple(layer.init(k, dim) for layer, k in zip(self.layers, keys))

    def _keys(self, key: Array | None) -> list[Array | None]:
        if key is None:
            return [None] * len(self.layers)
        return list(jax.random.split(key, len(self.layers)))

    def forward_and_log_det(
        self, params: tuple[Params, ...], x: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        total = jnp.zeros((), dtype=jnp.result_type(x, float))
        for layer, p, k in zip(self.layers, params, self._keys(key)):
            x, ldj = layer.forward_and_log_det(p, x, key=k)
            total = total + ldj
        return x, total

    def inverse_and_log_det(
        self, params: tuple[Params, ...], y: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        total = jnp.zeros((), dtype=jnp.result_type(y, float))
        keys = self._keys(key)
        for i in reversed(range(len(self.layers))):
            y, ldj = self.layers[i].inverse_and_log_det(params[i], y, key=keys[i])
            total = total + ldj
        return y, total


class MLP(nn.Module):
    """Dense network whose last layer starts at zero, so a flow layer built on it starts as the
    identity (and a velocity field starts at rest)."""

    hidden: tuple[int, ...]
    out: int
    activation: Callable[[Array], Array] = jax.nn.silu
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for width in self.hidden:
            x = self.activation(nn.Dense(width, param_dtype=self.param_dtype)(x))
        return nn.Dense(
            self.out,
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.zeros,
            param_dtype=self.param_dtype,
        )(x)
