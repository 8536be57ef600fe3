"""MADE masks and the masked autoregressive flow."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_flows_base import check_bijection, flow_params, random_params

from qvfe.flows import MADE, MaskedAutoregressive, made_masks, masked_autoregressive_flow


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_masks_connect_each_output_only_to_earlier_inputs(dim):
    order = np.random.default_rng(dim).permutation(dim)
    masks = made_masks(order + 1, (7, 6), n_out_per_dim=2)
    # Path count from input i to output j; autoregressive iff nonzero only for order[i] < order[j].
    paths = masks[0] @ masks[1] @ masks[2]
    allowed = np.tile(order[:, None] < order[None, :], (1, 2))
    assert np.all(paths[~allowed] == 0)
    if dim > 1:  # every hidden layer has all degrees 1..D-1, so every allowed path exists
        assert np.all(paths[allowed] > 0)


def test_made_jacobian_respects_the_order():
    order = (2, 0, 3, 1)
    net = MADE(hidden=(8, 8), order=order)
    params = random_params(lambda: net.init(jax.random.key(0), jnp.zeros(4)))
    jac = jax.jit(jax.jacfwd(lambda x: net.apply(params, x)))(jnp.array([0.1, -0.5, 0.9, 0.3]))
    order = np.array(order)
    forbidden = ~(order[None, :] < order[:, None])  # [output i, input j]
    assert jac.shape == (2, 4, 4)
    assert np.all(np.asarray(jac)[:, forbidden] == 0)
    assert np.all(np.abs(np.asarray(jac)[:, ~forbidden]) > 0)


@pytest.mark.parametrize("use_jit", [True, False], ids=["jit", "nojit"])
def test_maf_is_a_bijection(use_jit):
    # Two random orders: a Chain of MAF layers, neither in the identity order.
    flow = masked_autoregressive_flow(2, hidden=(6,), order="random", seed=1)
    params = flow_params(flow, 4, seed=0, scale=0.5)
    check_bijection(flow, params, jnp.array([0.5, -0.4, 1.3, 0.2]), use_jit=use_jit)


def test_one_dimension_and_orders():
    layer = MaskedAutoregressive(hidden=(3,))
    params = flow_params(layer, 1, seed=0, scale=0.5)
    check_bijection(layer, params, jnp.array([0.7]), use_jit=True)
    flow = masked_autoregressive_flow(3, order="alternate")
    assert [layer.order for layer in flow.layers] == ["identity", "reversed", "identity"]
    with pytest.raises(ValueError, match="permutation"):
        MaskedAutoregressive(order=(0, 0, 1)).init(jax.random.key(0), 3)
    with pytest.raises(ValueError):
        MaskedAutoregressive(order="sideways")
