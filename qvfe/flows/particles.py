"""Flow densities of indistinguishable classical particles in a periodic box (the protons of hydrogen).

One job: a normalised, permutation-invariant, periodic density q(S) over positions S of shape
``(n, d)`` in a cubic box of side L, with exact samples and exact ln q (DESIGN.md §4). Two flows,
both run in the density direction from S to a uniform U on the torus:

:class:`PeriodicCouplingDensity` (the default for hydrogen): coupling layers that each move one
Cartesian axis of every particle by a circular rational-quadratic spline
(``qvfe.flows.splines``) and a shift, whose parameters for particle i come from a
permutation-invariant function of the other axes' periodic differences to all particles j
(the axis-split coupling of Wirnsberger et al., Mach. Learn.: Sci. Technol. 3, 025009 (2022)). One
layer can move a particle anywhere along its axis, whatever N, and both directions are exact and
analytic: ln q is the sum of the splines' ln slopes. Layers cycle through the axes.

:class:`PeriodicParticleDensity`: the transform stack's periodic backflow,

    U = G(S),   ln q(S) = -n ln V + ln|det dG/dS|,

with G a periodic, permutation-equivariant backflow (:class:`qvfe.flows.backflow.Backflow`,
one species) and U uniform on the torus. So ln q is one forward pass (what the score-function
gradient differentiates, with S held fixed), and sampling inverts G by its contraction fixed point,
iterated until the largest change is below ``tol`` (then S is exact to that tolerance; it is
wrapped into [0, L)). At the identity (``init``) q is the uniform density of the ideal gas.

Its contraction bound limits each particle's displacement to ~1/N of the pair range per layer
(every particle may sit next to every other in the worst case), so at N = 16 protons it stays
close to the ideal gas; kept as ``model.proton_flow = "backflow"``.

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

from qvfe.flows.backflow import Backflow, _init_mlp
from qvfe.flows.splines import circular_spline, n_spline_params

__all__ = ["PeriodicCouplingDensity", "PeriodicParticleDensity"]

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


def _mlp(layers: list[tuple[jax.Array, jax.Array]], h: jax.Array) -> jax.Array:
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = jnp.tanh(h)
    return h


@dataclass(frozen=True, eq=False)
class PeriodicCouplingDensity:
    """q(S) for ``n`` particles in a cubic box by axis-split spline coupling; uniform at init.

    Layer l moves axis a = l mod d: ``u_ia = spline_i(s_ia) + shift_i (mod L)``, with the spline's
    ``3·bins`` parameters and the shift given by ``MLP_out(mean_j≠i MLP_pair(f(s_i − s_j)))``,
    f the sin/cos of ``2π m Δ/L`` (m = 1 .. ``frequencies``) of the *other* axes' differences.
    Those do not change in the layer, so its Jacobian is diagonal and the inverse analytic; the
    conditioner is invariant under permutations of j and under translations of the other axes.

    Example:
        >>> import jax
        >>> q = PeriodicCouplingDensity(n=4, dim=3, box_length=3.0, n_layers=3)
        >>> params = q.init(jax.random.PRNGKey(0))
        >>> s = q.sample(params, jax.random.PRNGKey(1), 8)   # (8, 4, 3) in [0, 3)
        >>> q.log_prob(params, s).shape
        (8,)
    """

    n: int
    dim: int
    box_length: float
    hidden: tuple[int, ...] = (16,)
    n_layers: int = 3
    bins: int = 8
    frequencies: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.n < 1:
            raise ValueError("PeriodicCouplingDensity.n must be >= 1")
        if self.dim < 2:
            raise ValueError("PeriodicCouplingDensity.dim must be >= 2 (a layer conditions one "
                             "axis on the others)")
        if not self.box_length > 0:
            raise ValueError("PeriodicCouplingDensity.box_length must be > 0")
        if self.bins < 1 or self.frequencies < 1:
            raise ValueError("PeriodicCouplingDensity.bins and .frequencies must be >= 1")

    @property
    def log_volume(self) -> float:
        return self.dim * float(np.log(self.box_length))

    def init(self, key: jax.Array) -> Params:
        n_feat = 2 * self.frequencies * (self.dim - 1)
        width = self.hidden[-1]
        layers = []
        for k in jax.random.split(key, self.n_layers):
            k_pair, k_out = jax.random.split(k)
            pair = _init_mlp(k_pair, [n_feat, *self.hidden, width])
            # _init_mlp zeroes the last layer; the pair network's output must not be zero, or the
            # output network would get no gradient at the start
            w, b = pair[-1]
            pair[-1] = (jax.random.normal(k_pair, w.shape) / np.sqrt(w.shape[0]), b)
            out = _init_mlp(k_out, [width, *self.hidden, n_spline_params(self.bins) + 1])
            layers.append({"pair": pair, "out": out})
        return {"layers": layers}

    def _axes(self, index: int) -> tuple[int, np.ndarray]:
        axis = index % self.dim
        return axis, np.array([b for b in range(self.dim) if b != axis])

    def _conditioner(self, layer: Params, cond: jax.Array) -> jax.Array:
        """(n, d−1) coordinates of the untouched axes -> (n, 3·bins + 1) transform parameters."""
        diff = cond[:, None, :] - cond[None, :, :]
        m = np.arange(1, self.frequencies + 1)
        phase = (2 * np.pi / self.box_length) * diff[..., None] * m
        feats = jnp.concatenate([jnp.sin(phase), jnp.cos(phase)], axis=-1)
        feats = feats.reshape(self.n, self.n, -1)
        pair = jnp.tanh(_mlp(layer["pair"], feats))
        others = 1.0 - jnp.eye(self.n, dtype=cond.dtype)
        message = jnp.einsum("ij,ijh->ih", others, pair) / (self.n - 1)
        return _mlp(layer["out"], message)

    def _layer(self, layer: Params, index: int, s: jax.Array,
               inverse: bool = False) -> tuple[jax.Array, jax.Array]:
        axis, others = self._axes(index)
        out = self._conditioner(layer, s[:, others])
        raw, shift = out[:, :-1], out[:, -1]
        L = self.box_length
        if inverse:
            x = jnp.mod(s[:, axis] - shift, L)
            y, logdet = jax.vmap(lambda xi, r: circular_spline(xi, r, L, inverse=True))(x, raw)
        else:
            y, logdet = jax.vmap(lambda xi, r: circular_spline(xi, r, L))(s[:, axis], raw)
            y = jnp.mod(y + shift, L)
        return s.at[:, axis].set(y), jnp.sum(logdet)

    def forward(self, params: Params, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        """U = G(S) and ln|det dG/dS| for one configuration (n, d)."""
        total = jnp.zeros((), s.dtype)
        for i, layer in enumerate(params["layers"]):
            s, logdet = self._layer(layer, i, s)
            total = total + logdet
        return s, total

    def log_prob_one(self, params: Params, s: jax.Array) -> jax.Array:
        """ln q(S) for one configuration (n, d)."""
        if self.n == 1 or not params["layers"]:
            return jnp.asarray(-self.n * self.log_volume, s.dtype)
        return self.forward(params, jnp.mod(s, self.box_length))[1] - self.n * self.log_volume

    def log_prob(self, params: Params, s: jax.Array) -> jax.Array:
        """ln q(S) for a batch (B, n, d) -> (B,)."""
        return jax.vmap(lambda one: self.log_prob_one(params, one))(s)

    def _invert_one(self, params: Params, u: jax.Array) -> jax.Array:
        for i in reversed(range(len(params["layers"]))):
            u, _ = self._layer(params["layers"][i], i, u, inverse=True)
        return u

    def sample(self, params: Params, key: jax.Array, batch: int) -> jax.Array:
        """Exact samples S ~ q, shape (batch, n, d), in [0, L)."""
        u = self.box_length * jax.random.uniform(key, (batch, self.n, self.dim))
        if self.n == 1 or not params["layers"]:
            return u
        params = jax.lax.stop_gradient(params)
        s = jax.vmap(lambda one: self._invert_one(params, one))(u)
        return jnp.mod(s, self.box_length)
