"""RealNVP affine coupling: half of the coordinates get an affine map conditioned on the rest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.base import MLP, Array, Bijection, Chain, Params, default_float_dtype


@dataclass(frozen=True)
class AffineCoupling(Bijection):
    """y_T = x_T · exp(s(x_C)) + t(x_C), y_C = x_C, with T = {i : i % 2 == parity}, C the rest.

    The log-scale is bounded, s = bound · tanh(raw / bound), so one layer can never stretch a
    coordinate by more than e^bound (keeps early training stable), while s ≈ raw near zero. The
    conditioner's last layer starts at zero: the layer starts as the identity.
    Forward log-det = Σ s; inverse log-det = −Σ s. Needs dim ≥ 2.
    """

    hidden: tuple[int, ...] = (64, 64)
    parity: int = 0
    scale_bound: float = 2.0
    activation: Callable[[Array], Array] = jax.nn.silu

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.parity not in (0, 1):
            raise ValueError(f"AffineCoupling.parity must be 0 or 1, got {self.parity}")

    def _split(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        if dim < 2:
            raise ValueError(f"AffineCoupling needs dim >= 2 (nothing to condition on), got {dim}")
        idx = np.arange(dim)
        return idx[idx % 2 == self.parity], idx[idx % 2 != self.parity]

    def _net(self, n_transformed: int) -> MLP:
        return MLP(self.hidden, 2 * n_transformed, self.activation, default_float_dtype())

    def init(self, key: Array, dim: int) -> Params:
        transformed, cond = self._split(dim)
        return self._net(len(transformed)).init(key, jnp.zeros(len(cond)))

    def _shift_log_scale(self, params: Params, x_cond: Array, n: int) -> tuple[Array, Array]:
        out = self._net(n).apply(params, x_cond)
        shift, raw = out[:n], out[n:]
        return shift, self.scale_bound * jnp.tanh(raw / self.scale_bound)

    def forward_and_log_det(
        self, params: Params, x: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        transformed, cond = self._split(x.shape[-1])
        shift, log_scale = self._shift_log_scale(params, x[cond], len(transformed))
        y = x.at[transformed].set(x[transformed] * jnp.exp(log_scale) + shift)
        return y, jnp.sum(log_scale)

    def inverse_and_log_det(
        self, params: Params, y: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        transformed, cond = self._split(y.shape[-1])
        # y_C = x_C, so the conditioner sees the same input in both directions.
        shift, log_scale = self._shift_log_scale(params, y[cond], len(transformed))
        x = y.at[transformed].set((y[transformed] - shift) * jnp.exp(-log_scale))
        return x, -jnp.sum(log_scale)


def real_nvp(
    num_layers: int,
    hidden: tuple[int, ...] = (64, 64),
    scale_bound: float = 2.0,
    activation: Callable[[Array], Array] = jax.nn.silu,
) -> Chain:
    """A `Chain` of affine couplings with alternating masks, so every coordinate is transformed."""
    hidden = tuple(hidden)
    layers = [AffineCoupling(hidden, i % 2, scale_bound, activation) for i in range(num_layers)]
    return Chain(tuple(layers))
