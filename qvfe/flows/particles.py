"""Flow density of indistinguishable classical particles in a periodic box (the protons of hydrogen).

One job: a normalised, permutation-invariant, periodic density q(S) over positions S of shape
``(n, d)`` in a cubic box of side L, with exact samples and exact ln q (DESIGN.md §4, on the
transform stack's periodic backflow). The flow runs in the density direction,

    U = G(S),   ln q(S) = -n ln V + ln|det dG/dS|,

with G a periodic, permutation-equivariant backflow (:class:`qvfe.flows.backflow.Backflow`,
one species) and U uniform on the torus. So ln q is one forward pass (what the score-function
gradient differentiates, with S held fixed), and sampling inverts G by its contraction fixed point,
iterated until the largest change is below ``tol`` (then S is exact to that tolerance; it is
wrapped into [0, L)). At the identity (``init``) q is the uniform density of the ideal gas.

Why invariant: G is equivariant under permutations of the particles and U's density is a product
of identical uniform factors, so q(P S) = q(S). Why periodic: G commutes with lattice shifts of any
particle and its log-det is a periodic function of S.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.backflow import Backflow

__all__ = ["PeriodicParticleDensity"]

Params = Any


@dataclass(frozen=True, eq=False)
class PeriodicParticleDensity:
    """q(S) for ``n`` particles in a cubic box; ``params`` from ``init`` (uniform at init).

    Example:
        >>> import jax
        >>> q = PeriodicParticleDensity(n=4, dim=3, box_length=3.0)
        >>> params = q.init(jax.random.PRNGKey(0))
        >>> s = q.sample(params, jax.random.PRNGKey(1), 8)   # (8, 4, 3) in [0, 3)
        >>> q.log_prob(params, s).shape
        (8,)
    """

    n: int
    dim: int
    box_length: float
    hidden: tuple[int, ...] = (16,)
    n_layers: int = 1
    contraction: float = 0.9
    tol: float = 1e-12
    max_iter: int = 2000

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("PeriodicParticleDensity.n must be >= 1")
        if not self.box_length > 0:
            raise ValueError("PeriodicParticleDensity.box_length must be > 0")

    @property
    def flow(self) -> Backflow:
        return Backflow(self.n, 0, self.dim, kind="periodic", box_length=self.box_length,
                        hidden=self.hidden, n_layers=self.n_layers,
                        contraction=self.contraction)

    @property
    def log_volume(self) -> float:
        return self.dim * float(np.log(self.box_length))

    def init(self, key: jax.Array) -> Params:
        return self.flow.init(key)

    def log_prob_one(self, params: Params, s: jax.Array) -> jax.Array:
        """ln q(S) for one configuration (n, d)."""
        if self.n == 1 or not params["layers"]:
            return jnp.asarray(-self.n * self.log_volume, s.dtype)
        _, logdet = self.flow.forward_and_log_det(params, s)
        return logdet - self.n * self.log_volume

    def log_prob(self, params: Params, s: jax.Array) -> jax.Array:
        """ln q(S) for a batch (B, n, d) -> (B,)."""
        return jax.vmap(lambda one: self.log_prob_one(params, one))(s)

    def _invert_one(self, params: Params, u: jax.Array) -> jax.Array:
        flow = self.flow
        params = jax.lax.stop_gradient(params)
        for layer in reversed(params["layers"]):
            target = u

            def body(carry, layer=layer, target=target):
                x, _, it = carry
                gx = flow._layer(layer, x, with_jacobian=False)[0] - x
                new = target - gx
                return new, jnp.max(jnp.abs(new - x)), it + 1

            def cond(carry):
                _, change, it = carry
                return (change > self.tol) & (it < self.max_iter)

            u, _, _ = jax.lax.while_loop(cond, body, (target, jnp.asarray(jnp.inf, u.dtype), jnp.zeros((), jnp.int32)))
        return u

    def sample(self, params: Params, key: jax.Array, batch: int) -> jax.Array:
        """Exact samples S ~ q, shape (batch, n, d), wrapped into [0, L)."""
        u = self.box_length * jax.random.uniform(key, (batch, self.n, self.dim))
        if self.n == 1 or not params["layers"]:
            return u
        s = jax.vmap(lambda one: self._invert_one(params, one))(u)
        return jnp.mod(s, self.box_length)
