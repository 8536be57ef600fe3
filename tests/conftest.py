"""Tests run on CPU in float64 with fixed seeds."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# see qvfe.cli.CPU_SCHEDULER_FLAG: avoids a deadlock of batched LAPACK kernels on 2-core CPUs
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_enable_concurrency_optimized_scheduler=false"
                           # the suite is compile-bound: LLVM -O0 halves XLA compile time, and
                           # the classic elemental emitters compile fusions about a third faster
                           # than the MLIR fusion emitters (the same HLO, so the same maths)
                           + " --xla_backend_optimization_level=0"
                           + " --xla_cpu_use_fusion_emitters=false").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

from qvfe.xla_cpu import use_deadlock_free_linalg  # noqa: E402

use_deadlock_free_linalg()  # the test process is an application: see qvfe.xla_cpu


# Modules whose tests run the engine end to end (tens of seconds each): collected first, so that
# pytest-xdist hands them out while the short tests still fill the gaps, instead of one worker
# finishing a long run alone at the end (the suite's order is otherwise alphabetical).
_ENGINE_MODULES = ("test_problems_", "test_run.py", "test_benchmark.py", "test_watchdog.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.path.name.startswith(_ENGINE_MODULES))
