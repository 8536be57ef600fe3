"""RealNVP affine coupling layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_flows_base import check_bijection, flow_params

from qvfe.flows import AffineCoupling, real_nvp


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "nojit"])
def test_real_nvp_is_a_bijection(use_jit):
    flow = real_nvp(2, hidden=(5,))  # both parities
    x = jnp.array([0.5, -0.4, 1.3])  # odd dim: the two masks have different sizes
    params = flow_params(flow, 3, seed=0, scale=0.5)
    check_bijection(flow, params, x, use_jit=use_jit)


def test_one_layer_only_moves_its_half():
    x = jnp.array([0.5, -0.4, 1.3, 0.2, -2.0])
    for parity in (0, 1):
        layer = AffineCoupling(hidden=(4,), parity=parity)
        params = flow_params(layer, 5, seed=parity, scale=0.5)
        y = jax.jit(layer.forward)(params, x)
        kept = np.arange(5) % 2 != parity
        np.testing.assert_array_equal(y[kept], x[kept])
        assert np.all(np.abs(y - x)[~kept] > 1e-3)


def test_log_scale_is_bounded():
    layer = AffineCoupling(hidden=(4,), scale_bound=0.5)
    params = flow_params(layer, 2, seed=0, scale=50.0)
    xs = jax.random.normal(jax.random.key(2), (20, 2)) * 5
    _, ldj = jax.jit(jax.vmap(layer.forward_and_log_det, (None, 0)))(params, xs)
    assert np.all(np.abs(ldj) <= 0.5)  # one transformed coordinate, |s| <= bound
    assert np.max(np.abs(ldj)) > 0.4  # and the bound is actually reached


def test_rejects_one_dimension_and_bad_parity():
    with pytest.raises(ValueError, match="dim >= 2"):
        AffineCoupling().init(jax.random.key(0), 1)
    with pytest.raises(ValueError, match="parity"):
        AffineCoupling(parity=2)
