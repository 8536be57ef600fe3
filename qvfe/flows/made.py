"""Masked autoregressive flow (MAF): an affine map per coordinate conditioned on the earlier ones
through a MADE network (dense layers with degree masks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.base import Array, Bijection, Chain, Params, default_float_dtype


def made_masks(
    input_degrees: np.ndarray, hidden: tuple[int, ...], n_out_per_dim: int
) -> list[np.ndarray]:
    """Connectivity masks (shape (fan_in, fan_out)) of a MADE network.

    ``input_degrees`` holds each input's position 1..D in the autoregressive order. Hidden units
    get degrees cycling through 1..D−1 and may see inputs of degree ≤ their own; output j of
    input i (there are ``n_out_per_dim`` per input, laid out in blocks of D) may only see hidden
    units of degree < deg(i). Output i therefore depends only on inputs earlier in the order.
    """
    d = len(input_degrees)
    degrees = [np.asarray(input_degrees)]
    for width in hidden:
        # Degree D would see every input and could feed no output; D = 1 has no useful degree,
        # so its hidden units (degree 0) see no input and only carry biases.
        degrees.append(np.arange(width) % (d - 1) + 1 if d > 1 else np.zeros(width, int))
    masks = [(deg_out[None, :] >= deg_in[:, None]) for deg_in, deg_out in zip(degrees, degrees[1:])]
    out_degrees = np.tile(np.asarray(input_degrees), n_out_per_dim)
    masks.append(out_degrees[None, :] > degrees[-1][:, None])
    return [m.astype(np.float64) for m in masks]


class MaskedDense(nn.Module):
    """Dense layer whose kernel is multiplied by a fixed 0/1 mask."""

    features: int
    zero_init: bool = False
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, mask: np.ndarray) -> Array:
        kernel_init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
        kernel = self.param("kernel", kernel_init, (x.shape[-1], self.features), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
        return x @ (kernel * jnp.asarray(mask, kernel.dtype)) + bias


class MADE(nn.Module):
    """x (D,) -> (n_out_per_dim, D) where column i depends only on x_j with order[j] < order[i]."""

    hidden: tuple[int, ...]
    order: tuple[int, ...]
    n_out_per_dim: int = 2
    activation: Callable[[Array], Array] = jax.nn.silu
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        d = x.shape[-1]
        masks = made_masks(np.asarray(self.order) + 1, self.hidden, self.n_out_per_dim)
        for width, mask in zip(self.hidden, masks):
            x = self.activation(MaskedDense(width, param_dtype=self.param_dtype)(x, mask))
        # Zero last layer: shift = log-scale = 0, the flow layer starts as the identity.
        out = MaskedDense(
            self.n_out_per_dim * d, zero_init=True, param_dtype=self.param_dtype
        )(x, masks[-1])
        return out.reshape(self.n_out_per_dim, d)


@dataclass(frozen=True)
class MaskedAutoregressive(Bijection):
    """y_i = x_i · exp(s_i(x_<i)) + t_i(x_<i) in the order given by ``order``.

    ``order`` is "identity", "reversed", "random" (a fixed permutation drawn from ``seed``) or an
    explicit tuple whose entry i is the position of coordinate i in the order. Forward (x→y) is
    one network pass; inverse needs D sequential passes. The log-scale is tanh-bounded as in
    `AffineCoupling`. Forward log-det = Σ s_i; inverse log-det = −Σ s_i.
    """

    hidden: tuple[int, ...] = (64, 64)
    order: str | tuple[int, ...] = "identity"
    seed: int = 0
    scale_bound: float = 2.0
    activation: Callable[[Array], Array] = jax.nn.silu

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not isinstance(self.order, str):
            object.__setattr__(self, "order", tuple(int(i) for i in self.order))
        elif self.order not in ("identity", "reversed", "random"):
            raise ValueError(f"unknown MaskedAutoregressive.order {self.order!r}")

    def _order(self, dim: int) -> tuple[int, ...]:
        if self.order == "identity":
            return tuple(range(dim))
        if self.order == "reversed":
            return tuple(range(dim - 1, -1, -1))
        if self.order == "random":
            return tuple(int(i) for i in np.random.default_rng(self.seed).permutation(dim))
        if sorted(self.order) != list(range(dim)):
            raise ValueError(f"order {self.order} is not a permutation of range({dim})")
        return self.order

    def _net(self, dim: int) -> MADE:
        return MADE(self.hidden, self._order(dim), 2, self.activation, default_float_dtype())

    def init(self, key: Array, dim: int) -> Params:
        return self._net(dim).init(key, jnp.zeros(dim))

    def _shift_log_scale(self, params: Params, x: Array) -> tuple[Array, Array]:
        shift, raw = self._net(x.shape[-1]).apply(params, x)
        return shift, self.scale_bound * jnp.tanh(raw / self.scale_bound)

    def forward_and_log_det(
        self, params: Params, x: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        shift, log_scale = self._shift_log_scale(params, x)
        return x * jnp.exp(log_scale) + shift, jnp.sum(log_scale)

    def inverse_and_log_det(
        self, params: Params, y: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        # Fixed-point sweep: after k sweeps the first k coordinates in the order are exact (each
        # depends only on earlier ones), so D sweeps recover x exactly whatever the order is. The
        # log-scales of sweep D were computed from x with its first D−1 coordinates exact, which is
        # all they depend on, so they are exact too and no extra pass is needed.
        def sweep(_, carry):
            x, _ = carry
            shift, log_scale = self._shift_log_scale(params, x)
            return (y - shift) * jnp.exp(-log_scale), log_scale

        zeros = jnp.zeros_like(y)
        x, log_scale = jax.lax.fori_loop(0, y.shape[-1], sweep, (zeros, zeros))
        return x, -jnp.sum(log_scale)


def masked_autoregressive_flow(
    num_layers: int,
    hidden: tuple[int, ...] = (64, 64),
    order: str = "alternate",
    seed: int = 0,
    scale_bound: float = 2.0,
    activation: Callable[[Array], Array] = jax.nn.silu,
) -> Chain:
    """A `Chain` of MAF layers whose orders alternate (identity, reversed, ...) or are random
    permutations (``order="random"``, layer i seeded by ``seed + i``), so no coordinate is always
    first."""
    if order not in ("alternate", "random"):
        raise ValueError(f"order must be 'alternate' or 'random', got {order!r}")
    layers = []
    for i in range(num_layers):
        layer_order = ("identity", "reversed")[i % 2] if order == "alternate" else "random"
        layers.append(
            MaskedAutoregressive(tuple(hidden), layer_order, seed + i, scale_bound, activation)
        )
    return Chain(tuple(layers))
