"""A workaround for a deadlock of jax's CPU runtime in batched LAPACK calls.

One job: :func:`use_deadlock_free_linalg` changes how *batched* ``triangular_solve`` and ``lu``
lower on CPU: triangular solves to XLA's own ``triangular-solve`` op (which XLA expands into plain
HLO), LU factorisations to a loop that calls LAPACK's ``getrf`` on one matrix at a time, instead of
jaxlib's batched ``trsm`` and ``getrf`` custom calls. Single (unbatched) calls keep LAPACK as they
are. Why: on jax 0.10.2 a batched LAPACK kernel splits its batch over the intra-op thread pool
(``jax::ParallelBatchMap``) and then *blocks* that worker until the pieces are done. When two
such calls run concurrently — XLA executes independent thunks in parallel, and a walker batch's
determinants and their gradients have several — on a 2-thread pool, both workers block and
nothing is left to run the pieces: the process hangs with idle CPU (gdb shows two
``lapack_dtrsm_ffi``, or two ``lapack_dgetrf_ffi``, frames in ``BlockingCounter::Wait``). The
solves struck the isolated H₂ molecule at batch 512 on its second step, and the 33-electron gas
every few minutes; the factorisations struck the 33-electron gas with four backflow layers (four
99 × 99 flow Jacobians per walker, whose ``slogdet`` LUs then run side by side) in its first
Metropolis sweeps, every time. A single-matrix call never splits, so it never waits on the pool.
With these lowerings the same runs finish, the results are the same maths (the LU is LAPACK's
own), and a step of the two-layer electron gas is as fast as before (for LU, faster than jax's
HLO LU, a loop of rank-one updates that cost it 15 %). ``slogdet`` (the determinants of the
square-root flow and of the base state) and its derivatives are the only LAPACK calls on the hot
path that run batched and in parallel.

It changes global JAX lowering rules, so the library never calls it on import: the ``qvfe``
command does (an application, like its ``XLA_FLAGS``), and so do the tests and scripts. Library
users running quantum systems on CPU should call it once before their first ``qvfe.run``; the
engine warns when it has not been called.
"""

from __future__ import annotations

import functools
import warnings

__all__ = ["use_deadlock_free_linalg", "deadlock_free_linalg_in_use"]

_installed = False


def _batched_elsewhere(batched_lowering, lapack_lowering):
    """A CPU lowering that sends batched operands to ``batched_lowering`` and single ones to
    LAPACK's: only batched calls go through ParallelBatchMap."""
    def lowering(ctx, *args, **params):
        batched = len(ctx.avals_in[0].shape) > 2
        return (batched_lowering if batched else lapack_lowering)(ctx, *args, **params)

    return lowering


def _lu_one_by_one(x):
    """The LU of each matrix of a batch in turn: a loop of single-matrix factorisations."""
    from jax import lax
    from jax._src.lax import linalg as _linalg

    flat = x.reshape((-1,) + x.shape[-2:])
    lu, pivots, perm = lax.map(lambda m: tuple(_linalg.lu_p.bind(m)), flat)
    batch = x.shape[:-2]
    return [lu.reshape(x.shape), pivots.reshape(batch + pivots.shape[1:]),
            perm.reshape(batch + perm.shape[1:])]


def use_deadlock_free_linalg() -> bool:
    """Lower batched CPU triangular solves and LUs as above (idempotent); False if this JAX lacks
    the hooks (then both keep jaxlib's batched kernels)."""
    global _installed
    if _installed:
        return True
    try:
        from jax._src.lax import linalg as _linalg
        from jax.interpreters import mlir

        trsm = _batched_elsewhere(_linalg._triangular_solve_lowering,
                                  _linalg._triangular_solve_cpu_lower)
        getrf = _batched_elsewhere(mlir.lower_fun(_lu_one_by_one, multiple_results=True),
                                   functools.partial(_linalg._lu_cpu_gpu_lowering,
                                                     target_name_prefix="cpu"))
    except (ImportError, AttributeError) as e:  # a JAX whose internals moved: keep LAPACK
        warnings.warn(f"qvfe: could not change the lowering of batched CPU triangular solves and "
                      f"LUs ({e}); batched determinants and their gradients may deadlock on "
                      "few-core CPUs", RuntimeWarning, stacklevel=2)
        return False
    mlir.register_lowering(_linalg.triangular_solve_p, trsm, platform="cpu")
    mlir.register_lowering(_linalg.lu_p, getrf, platform="cpu")
    _installed = True
    return True


def deadlock_free_linalg_in_use() -> bool:
    return _installed
