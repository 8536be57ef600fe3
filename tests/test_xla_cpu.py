"""The CPU batched-LAPACK workaround: no batched LAPACK kernel left, same numbers as before."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from qvfe import xla_cpu


def test_installed_for_the_tests_and_idempotent():
    assert xla_cpu.deadlock_free_linalg_in_use()  # conftest installs it, as the CLI does
    assert xla_cpu.use_deadlock_free_linalg()


def _matrices(n=16, size=5):
    return jax.random.normal(jax.random.PRNGKey(0), (n, size, size)) + 3 * jnp.eye(size)


def test_no_lapack_trsm_in_a_batched_slogdet_gradient():
    """The compiled gradient of a batched slogdet has no LAPACK trsm custom call left, and its
    values match the analytic d ln|det A|/dA = A^{-T}."""
    a = _matrices()
    grad = jax.jit(jax.vmap(jax.grad(lambda m: jnp.linalg.slogdet(m)[1])))
    hlo = grad.lower(a).compile().as_text()
    assert "trsm_ffi" not in hlo
    np.testing.assert_allclose(np.asarray(grad(a)), np.asarray(jnp.linalg.inv(a).transpose(0, 2, 1)),
                               rtol=1e-10, atol=1e-12)
    # an unbatched solve keeps LAPACK
    single = jax.jit(jax.grad(lambda m: jnp.linalg.slogdet(m)[1])).lower(a[0]).compile()
    assert "trsm_ffi" in single.as_text()


def _getrf_calls(hlo: str) -> list[str]:
    return [line for line in hlo.splitlines() if "getrf_ffi" in line and "custom-call" in line]


def test_batched_slogdet_factorises_one_matrix_at_a_time():
    """A batched slogdet calls LAPACK's getrf on single matrices only (no batched kernel left to
    split over the thread pool) and agrees with the single-matrix one, sign and log-magnitude,
    on matrices that need pivoting (a zero leading entry), with determinants of both signs."""
    a = _matrices(size=7).at[:, 0, 0].set(0.0)
    batched = jax.jit(jax.vmap(jnp.linalg.slogdet))
    calls = _getrf_calls(batched.lower(a).compile().as_text())
    assert calls and all("f64[7,7]" in c and "f64[16,7,7]" not in c for c in calls), calls
    sign, logdet = batched(a)
    single = jax.jit(jnp.linalg.slogdet)
    ref = [single(m) for m in a]
    np.testing.assert_array_equal(np.asarray(sign), np.array([s for s, _ in ref]))
    np.testing.assert_allclose(np.asarray(logdet), np.array([v for _, v in ref]), rtol=1e-12)
    assert set(np.asarray(sign).tolist()) == {-1.0, 1.0}


_UNTOUCHED = """
import jax, jax.numpy as jnp
import qvfe, qvfe.engine, qvfe.xla_cpu
grad = jax.jit(jax.grad(lambda m: jnp.linalg.slogdet(m)[1])).lower(jnp.eye(3) * 2.0)
lu = jax.jit(jax.vmap(jnp.linalg.slogdet)).lower(jnp.stack([jnp.eye(3)] * 2))
getrf = [x for x in lu.compile().as_text().splitlines() if "getrf_ffi" in x and "custom-call" in x]
print(qvfe.xla_cpu.deadlock_free_linalg_in_use(), "trsm_ffi" in grad.compile().as_text(),
      len(getrf) == 1 and "f32[2,3,3]" in getrf[0])
"""


def test_importing_qvfe_does_not_install_it():
    """After importing qvfe a fresh process still has jaxlib's lowerings: LAPACK's trsm in a
    single slogdet's gradient, and one batched getrf for a batch of two."""
    out = subprocess.run([sys.executable, "-c", _UNTOUCHED], capture_output=True, text=True,
                         check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.stdout.split() == ["False", "True", "True"]
