"""Local-energy clipping: exact values by hand, identity without outliers, no grad via bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qvfe.optim import clip_local_energy, sr

# One compile per shape instead of one per primitive: eager dispatch is the slow path on a busy CPU.
clip = jax.jit(clip_local_energy, static_argnames="width")


def test_exact_values_on_a_hand_made_vector():
    e = jnp.array([-50.0, 0.0, 1.0, 2.0, 3.0, 4.0, 60.0])
    # median 2; |e − 2| = 52, 2, 1, 0, 1, 2, 58 → mean 116/7; width 1 → 2 ± 116/7.
    mad = 116.0 / 7.0
    expected = np.array([2.0 - mad, 0.0, 1.0, 2.0, 3.0, 4.0, 2.0 + mad])
    np.testing.assert_allclose(clip(e, width=1.0), expected, rtol=1e-15)
    # Even length: the median is the mean of the two middle values (here 1.5).
    e = jnp.array([0.0, 1.0, 2.0, 40.0])
    mad = (1.5 + 0.5 + 0.5 + 38.5) / 4
    np.testing.assert_allclose(clip(e, width=2.0),
                               [0.0, 1.0, 2.0, 1.5 + 2 * mad], rtol=1e-15)


def test_no_outliers_pass_through_unchanged():
    e = jnp.asarray(np.random.default_rng(0).normal(size=512) * 0.3 - 2.0)
    np.testing.assert_array_equal(clip(e), e)  # default width 5


def test_complex_parts_clipped_separately():
    re = jnp.array([0.0, 1.0, 2.0, 3.0, 100.0])
    im = jnp.array([-100.0, 0.0, 0.5, 1.0, 1.5])
    out = clip(re + 1j * im, width=1.0)
    np.testing.assert_allclose(out.real, clip(re, width=1.0), rtol=1e-15)
    np.testing.assert_allclose(out.imag, clip(im, width=1.0), rtol=1e-15)
    np.testing.assert_allclose(out.real[-1], 2.0 + 102.0 / 5)  # median 2, MAD 20.4


def test_gradient_flows_only_through_unclipped_samples():
    e = jnp.array([0.0, 1.0, 2.0, 3.0, 100.0])
    grad = jax.grad(lambda x: jnp.sum(clip(x, width=1.0)))(e)
    np.testing.assert_array_equal(grad, [1.0, 1.0, 1.0, 1.0, 0.0])


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        clip_local_energy(jnp.ones(3), width=0.0)


def test_global_norm_clip_chains_with_sr():
    """The batch-level gradient clip is optax's; it passes the jacobian through to sr."""
    g = jnp.array([3.0, 4.0])
    o = jnp.asarray(np.random.default_rng(1).normal(size=(6, 2)))
    tx, bare = optax.chain(optax.clip_by_global_norm(1.0), sr(1e-3)), sr(1e-3)
    out, ref = jax.jit(lambda g, o: (tx.update(g, tx.init(g), jacobian=o)[0],
                                     bare.update(g / 5.0, None, jacobian=o)[0]))(g, o)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
