"""A workaround for a deadlock of jax's CPU runtime in batched triangular solves.

One job: :func:`use_hlo_triangular_solve` makes *batched* ``triangular_solve`` on CPU lower to
XLA's own ``triangular-solve`` op (which XLA expands into plain HLO) instead of jaxlib's LAPACK
``trsm`` custom call; single solves keep LAPACK (more accurate on ill-conditioned matrices, and never
split over threads). Why: on jax 0.10.2 the batched LAPACK kernel splits its batch over the intra-op thread
pool (``jax::ParallelBatchMap``) and then *blocks* that worker until the pieces are done. When two
such solves run concurrently — XLA executes independent thunks in parallel, and the gradient of a
walker batch's determinants has several — on a 2-thread pool, both workers block and nothing is
left to run the pieces: the process hangs with idle CPU (gdb shows two ``lapack_dtrsm_ffi`` frames
in ``BlockingCounter::Wait``). It struck the isolated H₂ molecule at batch 512 on its second step,
and the 33-electron gas every few minutes. With the HLO solve the same runs finish (60 H₂ steps
at batch 512; the 33-electron step at the same speed as before), and the results are the same
maths. Triangular solves come from the derivatives of ``slogdet`` (the determinants of the square-
root flow), so this is the only LAPACK call on the hot path that runs batched and in parallel.

It changes a global JAX lowering rule, so the library never calls it on import: the ``qvfe``
command does (an application, like its ``XLA_FLAGS``), and so do the tests and scripts. Library
users running quantum systems on CPU should call it once before their first ``qvfe.run``; the
engine warns when it has not been called.
"""

from __future__ import annotations

import warnings

__all__ = ["use_hlo_triangular_solve", "hlo_triangular_solve_in_use"]

_installed = False


def use_hlo_triangular_solve() -> bool:
    """Lower CPU triangular solves to the HLO op (idempotent); False if this JAX lacks the hooks."""
    global _installed
    if _installed:
        return True
    try:
        from jax._src.lax import linalg as _linalg
        from jax.interpreters import mlir

        hlo_lowering = _linalg._triangular_solve_lowering  # platform-independent HLO lowering
        lapack_lowering = _linalg._triangular_solve_cpu_lower

        def lowering(ctx, a, b, **params):
            # Only batched solves go through ParallelBatchMap; single ones (the natural-gradient
            # solve of an ill-conditioned metric) keep LAPACK's accuracy.
            batched = len(ctx.avals_in[0].shape) > 2
            return (hlo_lowering if batched else lapack_lowering)(ctx, a, b, **params)

        mlir.register_lowering(_linalg.triangular_solve_p, lowering, platform="cpu")
    except (ImportError, AttributeError) as e:  # a JAX whose internals moved: keep LAPACK
        warnings.warn(f"qvfe: could not switch CPU triangular solves to HLO ({e}); batched "
                      "determinant gradients may deadlock on few-core CPUs", RuntimeWarning,
                      stacklevel=2)
        return False
    _installed = True
    return True


def hlo_triangular_solve_in_use() -> bool:
    return _installed
