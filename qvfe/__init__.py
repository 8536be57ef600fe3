"""qvfe: variational free energies of quantum many-body systems with generative models.

>>> import qvfe
>>> spec = qvfe.load_spec("systems/ising_L4_beta0.44.toml", overrides={"optim.steps": 200})
>>> result = qvfe.run(spec, out="runs/ising4")      # same engine as `qvfe run`
>>> result.observables["F"].mean, result.observables["F"].error, result.units, result.per

Importing qvfe changes no global JAX setting; the driver computes in float64 inside a scoped
``jax.enable_x64`` unless ``run.x64 = false``.
"""

__version__ = "0.1.0"

from qvfe.problem import Estimate, Problem  # noqa: E402
from qvfe.run import Result, RunInterrupted, build_problem, evaluate, run  # noqa: E402
from qvfe.spec import Spec, SpecError, default_spec, load_spec  # noqa: E402

__all__ = ["Estimate", "Problem", "Result", "RunInterrupted", "Spec", "SpecError", "build_problem",
           "default_spec", "evaluate", "load_spec", "run", "__version__"]
