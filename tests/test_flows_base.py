"""Bijection interface and Chain; also holds the property checks the other flow tests reuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows import AffineCoupling, Chain, ContinuousFlow, MaskedAutoregressive


def random_params(init, seed=0, scale=0.3):
    """Params with the structure ``init()`` returns, every entry drawn from N(0, scale²).

    Non-trivial params are what the invariants need (a fresh layer is the identity). The values come
    from numpy and the structure from ``jax.eval_shape``, so no JAX kernel is compiled for them:
    on shared CPUs eager initialisation otherwise costs more than the checks themselves.
    """
    shapes = jax.eval_shape(init)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: scale * rng.standard_normal(s.shape), shapes)


def flow_params(bijection, dim, seed=0, scale=0.3):
    return random_params(lambda: bijection.init(jax.random.key(0), dim), seed, scale)


def check_bijection(bijection, params, x, *, use_jit, atol=1e-10):
    """inverse(forward(x)) = x, the two log-dets cancel, and the log-det equals slogdet(jacfwd).

    With ``use_jit=False`` the bijection's own methods run eagerly; the reference slogdet is always
    jitted (it is the yardstick, not the code under test, and eager jacfwd would compile each
    batched primitive separately).
    """

    def directions(params, x):
        y, fwd_ldj = bijection.forward_and_log_det(params, x)
        x_back, inv_ldj = bijection.inverse_and_log_det(params, y)
        return y, fwd_ldj, x_back, inv_ldj

    def reference(params, x):
        return jnp.linalg.slogdet(jax.jacfwd(lambda x_: bijection.forward(params, x_))(x))[1]

    if use_jit:
        y, fwd_ldj, x_back, inv_ldj, slogdet = jax.jit(
            lambda p, x_: (*directions(p, x_), reference(p, x_))
        )(params, x)
    else:
        y, fwd_ldj, x_back, inv_ldj = directions(params, x)
        slogdet = jax.jit(reference)(params, x)
    assert y.shape == x.shape and fwd_ldj.shape == () and inv_ldj.shape == ()
    assert y.dtype == jnp.float64 and fwd_ldj.dtype == jnp.float64
    # The map must really move x, otherwise the checks below are vacuous.
    assert float(jnp.max(jnp.abs(y - x))) > 1e-2
    np.testing.assert_allclose(x_back, x, atol=atol, rtol=0)
    np.testing.assert_allclose(fwd_ldj + inv_ldj, 0.0, atol=atol)
    np.testing.assert_allclose(fwd_ldj, slogdet, atol=atol)
    return y, fwd_ldj


X3 = jnp.array([0.3, -1.2, 0.7])


def test_chain_is_a_bijection_under_jit():
    # Without jit, Chain is covered by real_nvp and masked_autoregressive_flow (both Chains) in
    # their own files; a ContinuousFlow inside a Chain is checked in test_flows_cnf (its ODE
    # solves dominate compile time, so they are not repeated here).
    chain = Chain(
        (
            AffineCoupling(hidden=(4,), parity=0),
            MaskedAutoregressive(hidden=(6,), order="reversed"),
            AffineCoupling(hidden=(4,), parity=1),
        )
    )
    params = flow_params(chain, 3, scale=0.4)
    check_bijection(chain, params, X3, use_jit=True)


def test_chain_composes_in_order_and_adds_log_dets():
    a, b = AffineCoupling(hidden=(4,), parity=0), MaskedAutoregressive(hidden=(4,))
    chain = Chain([a, b])  # a list is accepted and stored as a tuple
    assert isinstance(chain.layers, tuple)
    params = flow_params(chain, 3)
    assert isinstance(params, tuple) and len(params) == 2

    @jax.jit
    def run(params, x):
        y_a, l_a = a.forward_and_log_det(params[0], x)
        y_b, l_b = b.forward_and_log_det(params[1], y_a)
        y, ldj = chain.forward_and_log_det(params, x)
        x_back, ildj = chain.inverse_and_log_det(params, y)
        conveniences = chain.forward(params, x), chain.inverse(params, y)
        return y_b, l_a + l_b, y, ldj, x_back, ildj, *conveniences

    y_b, l_ab, y, ldj, x_back, ildj, y_conv, x_conv = run(params, X3)
    np.testing.assert_allclose(y, y_b, atol=1e-14)
    np.testing.assert_allclose(ldj, l_ab, atol=1e-14)
    np.testing.assert_allclose(x_back, X3, atol=1e-12)
    np.testing.assert_allclose(ildj, -ldj, atol=1e-12)
    np.testing.assert_allclose(y_conv, y, atol=0)
    np.testing.assert_allclose(x_conv, x_back, atol=0)


def test_bijections_are_hashable_static_arguments():
    def make():  # equal hyperparameters, distinct objects; lists are normalised to tuples
        maf = MaskedAutoregressive(hidden=[4], order=[2, 0, 1])
        return Chain((AffineCoupling(hidden=[4]), maf))

    assert make() == make() and hash(make()) == hash(make())
    traces = []

    def forward(bijection, params, x):
        traces.append(1)
        return bijection.forward(params, x)

    apply = jax.jit(forward, static_argnums=0)
    params = flow_params(make(), 3)
    y = apply(make(), params, X3)
    np.testing.assert_allclose(apply(make(), params, X3), y, atol=0)
    assert len(traces) == 1  # an equal bijection hits the compile cache: no retrace


def test_fresh_layers_are_the_identity():
    for bijection in (AffineCoupling(hidden=(4,)), MaskedAutoregressive(hidden=(4,))):

        @jax.jit
        def fresh(key, bijection=bijection):
            params = bijection.init(key, 3)
            return params, *bijection.forward_and_log_det(params, X3)

        params, y, ldj = fresh(jax.random.key(0))
        np.testing.assert_allclose(y, X3, atol=1e-14)
        assert float(ldj) == 0.0
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(params))  # follow x64
    cnf = ContinuousFlow(hidden=(4,))
    params = jax.jit(cnf.init, static_argnums=1)(jax.random.key(0), 3)
    # The velocity starts at zero everywhere, so the time-1 map is the identity.
    assert float(jnp.max(jnp.abs(cnf.velocity(params, X3, 0.3)))) == 0.0
