"""Tests run on CPU in float64 with fixed seeds."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# see qvfe.cli.CPU_SCHEDULER_FLAG: avoids a deadlock of batched LAPACK kernels on 2-core CPUs
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false"
                           # the suite is compile-bound: LLVM -O0 halves XLA compile time
                           + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from qvfe.xla_cpu import use_hlo_triangular_solve  # noqa: E402

use_hlo_triangular_solve()  # the test process is an application: see qvfe.xla_cpu
