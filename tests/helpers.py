"""Helpers shared by the tests (not a test module)."""

import jax


def perturbed(params, key, scale):
    """Parameters far from the identity: every leaf gets Gaussian noise of size ``scale``."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
    )
