"""Helpers shared by the tests (not a test module)."""

import jax


def perturbed(params, key, scale):
    """Parameters far from the identity: every leaf gets Gaussian noise of size ``scale``."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    )


def evaluate_checkpoint(spec, run_dir, overrides, n_samples=512):
    """Estimates of the newest checkpoint of the run in ``run_dir`` (trained from ``spec``),
    evaluated by the problem of ``spec`` with ``overrides``, on the chain of a fixed key: two
    calls whose overrides leave the sampling alone see the same samples."""
    import qvfe
    from qvfe.run import evaluate_state, newest_state

    problem = qvfe.build_problem(spec.replace(**overrides))
    _, state = newest_state(run_dir, problem)
    estimates, _ = evaluate_state(problem, state, jax.random.PRNGKey(1), n_samples)
    return estimates
