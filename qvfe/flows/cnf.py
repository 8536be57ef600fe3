"""Continuous normalizing flow: the time-1 map of dx/dt = v_θ(x, t), solved with diffrax, with the
log-det as the integrated divergence of v_θ (exact trace or Hutchinson estimate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import diffrax
import jax
import jax.numpy as jnp

from qvfe.flows.base import MLP, Array, Bijection, Params, default_float_dtype

_SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
_ADJOINTS = {
    # Reverse mode through the solver's steps (checkpointed): the default for training.
    "recursive": diffrax.RecursiveCheckpointAdjoint,
    # Needed for jax.jvp / jacfwd / forward Laplacians through the solve.
    "forward": diffrax.ForwardMode,
    # Constant-memory reverse mode by solving the adjoint ODE backwards (gradients to ODE accuracy).
    "backsolve": diffrax.BacksolveAdjoint,
}


@dataclass(frozen=True)
class ContinuousFlow(Bijection):
    """y = x(1) with x(0) = x and dx/dt = v_θ(x, t); log|det ∂y/∂x| = ∫₀¹ ∇·v_θ(x(t), t) dt.

    The inverse integrates from t = 1 back to t = 0 and returns −∫₀¹ ∇·v dt along the same path.

    - ``divergence="exact"``: trace of the (dim × dim) Jacobian from ``jacfwd``; cost ∝ dim.
    - ``divergence="hutchinson"``: ∇·v ≈ εᵀ(∂v/∂x)ε with one probe ε per solve, held fixed over
      the trajectory (the FFJORD estimator; unbiased for the log-det). Needs ``key=``. With the same
      key, forward and inverse use the same probe, so their log-dets still cancel.
      ``probe`` is "rademacher" (lower variance) or "gaussian".
    - ``steps=None``: adaptive step size with ``rtol``/``atol`` (default 1e-8 for float64 inputs,
      1e-5 for float32, i.e. near what each precision can resolve); ``steps=n``: n fixed steps.
    - ``adjoint``: "recursive" (reverse-mode, default), "forward" (needed for jacfwd/jvp through
      the solve) or "backsolve".

    The velocity network (an MLP on (x, t), zero last layer, so the flow starts as the identity)
    is available as `velocity` for flow matching, which trains it without solving the ODE.
    """

    hidden: tuple[int, ...] = (64, 64)
    activation: Callable[[Array], Array] = jnp.tanh
    divergence: str = "exact"
    probe: str = "rademacher"
    solver: str = "tsit5"
    steps: int | None = None
    rtol: float | None = None
    atol: float | None = None
    max_steps: int = 4096
    adjoint: str = "recursive"

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.divergence not in ("exact", "hutchinson"):
            raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {self.divergence!r}")
        if self.probe not in ("rademacher", "gaussian"):
            raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {self.probe!r}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be one of {sorted(_SOLVERS)}, got {self.solver!r}")
        if self.adjoint not in _ADJOINTS:
            raise ValueError(f"adjoint must be one of {sorted(_ADJOINTS)}, got {self.adjoint!r}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be a positive integer or None, got {self.steps}")

    def _net(self, dim: int) -> MLP:
        return MLP(self.hidden, dim, self.activation, default_float_dtype())

    def init(self, key: Array, dim: int) -> Params:
        return self._net(dim).init(key, jnp.zeros(dim + 1))

    def velocity(self, params: Params, x: Array, t: Array | float) -> Array:
        """v_θ(x, t) for one x of shape (dim,) and scalar t ∈ [0, 1]."""
        t = jnp.asarray(t, dtype=x.dtype).reshape(1)
        return self._net(x.shape[-1]).apply(params, jnp.concatenate([x, t]))

    def _probe(self, key: Array | None, x: Array) -> Array | None:
        if self.divergence == "exact":
            return None
        if key is None:
            raise ValueError("ContinuousFlow with divergence='hutchinson' needs key=")
        if self.probe == "gaussian":
            return jax.random.normal(key, x.shape, x.dtype)
        return jax.random.rademacher(key, x.shape, x.dtype)

    def _solve(
        self, params: Params, x: Array, t0: float, t1: float, eps: Array | None
    ) -> tuple[Array, Array]:
        # Times in the state's dtype: python floats would be float64 under x64 and make diffrax
        # promote a float32 state.
        t0, t1 = jnp.asarray(t0, x.dtype), jnp.asarray(t1, x.dtype)
        if self.steps is None:
            default = 1e-8 if x.dtype == jnp.float64 else 1e-5
            controller = diffrax.PIDController(
                rtol=default if self.rtol is None else self.rtol,
                atol=default if self.atol is None else self.atol,
            )
            dt0 = None  # let diffrax pick the first step from the error estimate
        else:
            controller = diffrax.ConstantStepSize()
            dt0 = (t1 - t0) / self.steps
        y0 = (x, jnp.zeros((), x.dtype))
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(_augmented_vector_field),
            _SOLVERS[self.solver](),
            t0=t0,
            t1=t1,
            dt0=dt0,
            y0=y0,
            args=(self, params, eps),
            stepsize_controller=controller,
            adjoint=_ADJOINTS[self.adjoint](),
            max_steps=self.max_steps if self.steps is None else self.steps,
            saveat=diffrax.SaveAt(t1=True),
        )
        y, integral = sol.ys
        return y[0], integral[0]

    def forward_and_log_det(
        self, params: Params, x: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        return self._solve(params, x, 0.0, 1.0, self._probe(key, x))

    def inverse_and_log_det(
        self, params: Params, y: Array, *, key: Array | None = None
    ) -> tuple[Array, Array]:
        # Integrating d(ldj)/dt = ∇·v from 1 down to 0 accumulates −∫₀¹ ∇·v dt = log|det ∂x/∂y|.
        return self._solve(params, y, 1.0, 0.0, self._probe(key, y))


def _augmented_vector_field(t: Array, state: tuple[Array, Array], args) -> tuple[Array, Array]:
    """d(x, ldj)/dt = (v, ∇·v). A module-level function with the flow passed in ``args`` (a
    hashable, hence static, leaf): diffrax's internal jit then reuses one compiled solve for every
    equal flow, instead of keying its cache on a bound method of one particular instance."""
    flow, params, eps = args
    x, _ = state

    def v(x_):
        return flow.velocity(params, x_, t)

    if eps is None:

        def v_twice(x_):
            out = v(x_)
            return out, out

        jac, vel = jax.jacfwd(v_twice, has_aux=True)(x)
        return vel, jnp.trace(jac)
    # One forward-mode pass gives both v and the Jacobian-vector product Jε.
    vel, jv = jax.jvp(v, (x,), (eps,))
    return vel, jnp.dot(eps, jv)
