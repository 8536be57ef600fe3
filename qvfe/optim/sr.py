"""Stochastic reconfiguration (natural gradient) as an optax gradient transformation.

One job: turn a gradient ``g`` into ``δ = (S + D)⁻¹ g``, where ``S`` is the centred metric built
from per-sample log-derivatives ``O_b`` and ``D = damping + diag_shift · diag(S)``.

Conventions
-----------
- ``update(grads, state, params=None, *, jacobian)``: ``jacobian`` is a pytree with the structure of
  ``grads`` whose leaves have a leading batch axis, ``(B, *leaf.shape)``, holding ``O_b = ∇ ln p``
  (real: classical Fisher) or ``O_b = ∇ ln ψ`` (complex: real part of the quantum geometric tensor)
  for each of the B samples. Pass it raw: the transform centres it and scales it by ``1/√B``.
- Metric. Real ``O``: ``S = (1/B) Σ (O_b − Ō)(O_b − Ō)ᵀ``. Complex ``O = O_re + i O_im`` for real
  parameters: ``S = Re (1/B) Σ (O_b − Ō)^† (O_b − Ō) = C(O_re) + C(O_im)``. Both are
  ``S = JᵀJ`` with ``J`` the centred, ``1/√B``-scaled Jacobian, stacked ``[O_re; O_im]``
  (B' = 2B rows) when complex.
  A pytree mixing real and complex leaves is one complex block (real leaves have ``O_im = 0``).
- Sign: ``δ`` points the same way as ``g`` (uphill), like every ``optax.scale_by_*``; chain with
  ``optax.scale_by_learning_rate(lr)`` (or use :func:`sr_then_lr`) to get a descent step.
- Factor conventions are the caller's: for ``∇_θ F = 2 Re E[O* (E_loc − Ē)]`` and ``S`` without a 2,
  ``δ`` is twice the "imaginary-time" step; absorb it in the learning rate.
- ``max_norm`` rescales ``δ`` so that ``δᵀ S δ ≤ max_norm²`` (undamped ``S``, on ``δ`` itself, i.e.
  before the learning rate: the metric length of the actual step is then ≤ ``lr · max_norm``).
  It does not see components of ``δ`` in the null space of ``S`` (B' < P), which are ``g_⊥/λ``;
  they vanish for the SR estimators (``g = Jᵀε``), otherwise bound them with
  ``optax.clip_by_global_norm``.
- Blocks (φ with the Fisher matrix, θ with the QGT) are solved independently: :func:`sr_blocks`.

Two solves of the same linear system (``solver="auto"`` picks the smaller matrix):

- parameter space, P × P: Cholesky of ``JᵀJ + D``.
- sample space, B' × B': Woodbury. With ``J̃ = J D^{-1/2}``, ``g̃ = D^{-1/2} g``,
  ``(J̃ᵀJ̃ + I)⁻¹ g̃ = g̃ − J̃ᵀ (J̃J̃ᵀ + I)⁻¹ J̃ g̃``, i.e. for ``D = λ``:
  ``δ = (g − Jᵀ(JJᵀ + λ)⁻¹ J g)/λ``.
  It is exact for every ``g``. The push-through identity ``(JᵀJ + λ)⁻¹ Jᵀ = Jᵀ (JJᵀ + λ)⁻¹``
  (from ``Jᵀ(JJᵀ + λ) = (JᵀJ + λ)Jᵀ``) gives ``δ = Jᵀ (JJᵀ + λ)⁻¹ ε`` when ``g = Jᵀ ε`` (true for
  these estimators, ε the centred, scaled local energies). It needs ``ε`` itself and is not used
  because (i) a gradient transformation receives ``g``, not ``ε``, and
  (ii) it silently drops any part of ``g`` outside the row space of ``J`` (rounding, or ``g`` and
  ``O`` computed by different code), so it would disagree with the parameter-space definition.
  Woodbury's weak point is the cancellation in ``g − Jᵀ(…)Jg`` at small damping (error ~ eps·κ,
  κ = ‖S‖/λ, the same as the parameter-space Cholesky solve); both solves are therefore followed
  by one step of iterative refinement with the residual ``g − (JᵀJ + D)δ`` evaluated through ``J``
  (it reuses the factorization, costs O(B'P)), which brings both to ~1e-13 relative error at
  κ = 1e10 in float64, where the unrefined solves have ~4e-7 and push-through ~6e-10 (measured on
  a 64 × 400 Jacobian with singular values 1e-3…10).

Solves run in float64 when ``jax_enable_x64`` is on (the driver enables it in a scope), else in
float32; the update is cast back to the dtype of each gradient leaf. Nothing here calls ``jit``.

Example::

    >>> import jax, jax.numpy as jnp, optax
    >>> from qvfe.optim import sr_then_lr
    >>> params = {"w": jnp.zeros(3)}
    >>> O = {"w": jax.random.normal(jax.random.key(0), (16, 3))}   # per-sample ∇ ln p
    >>> grads = {"w": jnp.ones(3)}
    >>> tx = sr_then_lr(0.1, damping=1e-3)
    >>> state = tx.init(params)
    >>> updates, state = tx.update(grads, state, params, jacobian=O)
    >>> params = optax.apply_updates(params, updates)                # a descent step
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_factor, cho_solve

Array = jax.Array
PyTree = Any

SOLVERS = ("auto", "parameter", "sample")
_HI = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: S is ill-conditioned


def _solve_dtype() -> jnp.dtype:
    """float64 if x64 is enabled, else float32 (never changes the global config)."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def centred_jacobian(grads: PyTree, jacobian: PyTree) -> Array:
    """The centred, ``1/√B``-scaled Jacobian ``J`` (B' × P, real) with ``S = JᵀJ``.

    Columns follow ``ravel_pytree(grads)``; complex leaves give the stacked ``[O_re; O_im]``
    (B' = 2B). Raises ``ValueError`` if ``jacobian`` does not match ``grads``.
    """
    g_leaves, g_def = jax.tree.flatten(grads)
    j_leaves, j_def = jax.tree.flatten(jacobian)
    if g_def != j_def:
        raise ValueError(
            "sr: `jacobian` must have the pytree structure of the gradients, got "
            f"{j_def} vs {g_def}. Inside optax.partition/masked use "
            "mask_compatible_extra_args=True (qvfe.optim.sr_blocks does).")
    if not j_leaves:
        raise ValueError("sr: empty jacobian")
    batch = j_leaves[0].shape[0] if j_leaves[0].ndim else 0
    for g, j in zip(g_leaves, j_leaves):
        if jnp.iscomplexobj(g):
            raise TypeError("sr: complex parameters are not supported; split them into real and "
                            "imaginary parts (ln ψ may be complex, the parameters must be real)")
        if j.shape != (batch, *jnp.shape(g)):
            raise ValueError(f"sr: jacobian leaf of shape {j.shape} does not match gradient leaf "
                             f"{jnp.shape(g)} with batch {batch}: expected "
                             f"{(batch, *jnp.shape(g))}")
    if batch < 1:
        raise ValueError("sr: the jacobian needs a leading batch axis with at least one sample")
    o = jnp.concatenate([j.reshape(batch, -1) for j in j_leaves], axis=1)
    o = o - jnp.mean(o, axis=0)
    if jnp.iscomplexobj(o):
        # Re(O^† O) = O_reᵀ O_re + O_imᵀ O_im: stacked rows make the QGT a real Gram matrix.
        o = jnp.concatenate([o.real, o.imag], axis=0)
    dtype = _solve_dtype()
    return o.astype(dtype) / jnp.sqrt(jnp.asarray(batch, dtype))


def _precondition(jac: Array, g: Array, damping: float, diag_shift: float, solver: str,
                  max_norm: float | None) -> Array:
    """δ = (JᵀJ + D)⁻¹ g with D = damping + diag_shift·diag(JᵀJ); optional trust region."""
    n_rows, n_par = jac.shape
    d = jnp.full((n_par,), damping, jac.dtype)
    if diag_shift:
        d = d + diag_shift * jnp.sum(jac * jac, axis=0)
    if solver == "auto":
        solver = "parameter" if n_par <= n_rows else "sample"

    if solver == "parameter":
        a = jnp.matmul(jac.T, jac, precision=_HI) + jnp.diag(d)
        factor = cho_factor(a, lower=True)

        def solve(v: Array) -> Array:
            return cho_solve(factor, v)
    else:
        # Rescale to unit damping so that D (a diagonal, with diag_shift) enters through J̃ only.
        r_sqrt_d = jax.lax.rsqrt(d)
        jt = jac * r_sqrt_d
        k = jnp.matmul(jt, jt.T, precision=_HI) + jnp.eye(n_rows, dtype=jac.dtype)
        factor = cho_factor(k, lower=True)

        def solve(v: Array) -> Array:
            vt = v * r_sqrt_d
            y = cho_solve(factor, jnp.matmul(jt, vt, precision=_HI))
            return (vt - jnp.matmul(jt.T, y, precision=_HI)) * r_sqrt_d

    def apply_a(v: Array) -> Array:
        return jnp.matmul(jac.T, jnp.matmul(jac, v, precision=_HI), precision=_HI) + d * v

    delta = solve(g)
    delta = delta + solve(g - apply_a(delta))  # one refinement step; see the module docstring

    if max_norm is not None:
        q = jnp.sum(jnp.matmul(jac, delta, precision=_HI) ** 2)  # δᵀ S δ = |J δ|²
        shrink = max_norm * jax.lax.rsqrt(jnp.maximum(q, jnp.finfo(q.dtype).tiny))
        scale = jnp.where(q > max_norm**2, shrink, 1.0)
        delta = delta * scale
    return delta


def sr(damping: float, *, diag_shift: float = 0.0, solver: str = "auto",
       max_norm: float | None = None) -> optax.GradientTransformationExtraArgs:
    """Natural-gradient preconditioner: ``δ = (S + damping + diag_shift·diag S)⁻¹ g``.

    Args:
      damping: λ > 0 added to the diagonal of the metric.
      diag_shift: ≥ 0, relative shift: adds ``diag_shift · S_ii`` to each diagonal entry.
      solver: ``"parameter"`` (P × P Cholesky), ``"sample"`` (B' × B' Woodbury) or ``"auto"``
        (parameter space when P ≤ B', B' = B for a real Jacobian, 2B for a complex one).
      max_norm: if given, ``δ`` is scaled down so that ``δᵀ S δ ≤ max_norm²`` (undamped S).

    Returns:
      A stateless transformation whose ``update(grads, state, params=None, *, jacobian)`` returns
      ``δ`` with the structure and dtypes of ``grads`` (same direction as ``grads``: uphill).
    """
    if not damping > 0:
        raise ValueError(f"sr: damping must be > 0 (the sample-space solve divides by it), "
                         f"got {damping}")
    if not diag_shift >= 0:
        raise ValueError(f"sr: diag_shift must be >= 0, got {diag_shift}")
    if solver not in SOLVERS:
        raise ValueError(f"sr: solver must be one of {SOLVERS}, got {solver!r}")
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"sr: max_norm must be > 0 or None, got {max_norm}")

    def init_fn(params: PyTree) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: PyTree, state: optax.EmptyState, params: PyTree = None, *,
                  jacobian: PyTree = None, **extra_args: Any) -> tuple[PyTree, optax.EmptyState]:
        del params, extra_args  # other transforms in a chain may take other extra args
        if jacobian is None:
            raise ValueError("sr: update needs jacobian=<per-sample log-derivatives>")
        if not jax.tree.leaves(updates):  # a fully masked block: nothing to precondition
            return updates, state
        jac = centred_jacobian(updates, jacobian)
        flat_g, unravel = ravel_pytree(updates)
        delta = _precondition(jac, flat_g.astype(jac.dtype), damping, diag_shift, solver, max_norm)
        return unravel(delta), state  # unravel casts back to each leaf's dtype

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def sr_blocks(blocks: Mapping[Hashable, optax.GradientTransformation],
              param_labels: PyTree | Callable[[PyTree], PyTree]
              ) -> optax.GradientTransformationExtraArgs:
    """Block-diagonal natural gradient: each labelled sub-pytree gets its own transform.

    A thin ``optax.partition`` that also masks ``jacobian`` like the gradients
    (``mask_compatible_extra_args=True``), so each ``sr`` sees only its block's Jacobian. For the
    density matrix: ``sr_blocks({"phi": sr(λ_φ), "theta": sr(λ_θ)}, {"phi": "phi", "theta":
    "theta"})`` with ``jacobian={"phi": O_phi (real), "theta": O_theta (complex)}``.
    """
    return optax.partition(dict(blocks), param_labels, mask_compatible_extra_args=True)


def sr_then_lr(learning_rate: float | optax.Schedule, damping: float, *,
               diag_shift: float = 0.0, solver: str = "auto",
               max_norm: float | None = None) -> optax.GradientTransformationExtraArgs:
    """``chain(sr(...), scale_by_learning_rate(lr))``: the descent step ``−lr · δ``."""
    return optax.chain(
        sr(damping, diag_shift=diag_shift, solver=solver, max_norm=max_norm),
        optax.scale_by_learning_rate(learning_rate),
    )
