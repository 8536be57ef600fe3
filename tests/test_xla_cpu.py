"""The CPU triangular-solve workaround: HLO lowering in place, same numbers as LAPACK's."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from qvfe import xla_cpu


def test_installed_for_the_tests_and_idempotent():
    assert xla_cpu.hlo_triangular_solve_in_use()  # conftest installs it, as the CLI does
    assert xla_cpu.use_hlo_triangular_solve()


def test_no_lapack_trsm_in_a_batched_slogdet_gradient():
    """The compiled gradient of a batched slogdet has no LAPACK trsm custom call left, and its
    values match the analytic d ln|det A|/dA = A^{-T}."""
    a = jax.random.normal(jax.random.PRNGKey(0), (16, 5, 5)) + 3 * jnp.eye(5)
    grad = jax.jit(jax.vmap(jax.grad(lambda m: jnp.linalg.slogdet(m)[1])))
    hlo = grad.lower(a).compile().as_text()
    assert "trsm_ffi" not in hlo
    np.testing.assert_allclose(np.asarray(grad(a)), np.asarray(jnp.linalg.inv(a).transpose(0, 2, 1)),
                               rtol=1e-10, atol=1e-12)
    # an unbatched solve keeps LAPACK
    single = jax.jit(jax.grad(lambda m: jnp.linalg.slogdet(m)[1])).lower(a[0]).compile()
    assert "trsm_ffi" in single.as_text()


def test_importing_qvfe_does_not_install_it():
    code = ("import qvfe, qvfe.engine, qvfe.xla_cpu, jax.numpy as jnp, jax;"
            "print(qvfe.xla_cpu.hlo_triangular_solve_in_use(),"
            " 'trsm_ffi' in jax.jit(jax.grad(lambda m: jnp.linalg.slogdet(m)[1]))"
            ".lower(jnp.eye(3) * 2.0).compile().as_text())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    assert out.stdout.split() == ["False", "True"]
