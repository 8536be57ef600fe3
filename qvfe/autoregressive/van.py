"""The variational autoregressive network (VAN): an exact, normalised distribution over ±1 spins.

q(s) = Π_i q(s_i | s_<i) over n sites in a fixed (raster) order, with ln q(s) = Σ_i log σ(s_i ℓ_i),
where ℓ_i, the log-odds of s_i = +1, comes from a MADE-style masked dense network.

Why masked dense layers rather than a PixelCNN masked convolution: every conditional sees the whole
past (on an L×L torus with L ≲ 20 the correlation length near T_c is the lattice size, and a
convolution would need kernels as wide as the lattice plus wrap-around padding, which breaks the
raster-order causality), the order is just a mask, and the layers cache exactly: the hidden features
of site j depend only on s_<j, so ancestral sampling computes each site's features once and the N
sequential steps together cost about one forward pass, O(N² h²) per sample (see ``sample`` for the
blocked schedule that makes this true on CPU). That cost is fine up to a few hundred sites; a
convolutional VAN is the choice for much larger lattices.

Layout: each of the ``layers`` hidden layers has ``hidden`` features per site. The first layer is
exclusive (site i sees s_j, j < i), the following ones and the output are inclusive (site i sees the
features of sites j ≤ i), and an exclusive direct input→output connection carries the pairwise
(mean-field-like) part of the conditionals. With ``z2_symmetric`` the model is the mixture
q_sym(s) = ½ (q(s) + q(−s)), exact under the global spin flip of the field-free Ising model.

All functions are pure: ``make_van`` precomputes the masks and returns closures.

>>> import jax
>>> van = make_van(n_sites=4, layers=1, hidden=2)
>>> params = van.init(jax.random.key(0))
>>> s = van.sample(params, jax.random.key(1), 3)
>>> van.log_prob(params, s).shape
(3,)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Params = dict[str, Any]


class VAN(NamedTuple):
    """Pure functions of one VAN architecture.

    init(key) -> params
    sample(params, key, n) -> spins (n, n_sites), values ±1 in the float dtype of the params
    log_prob(params, spins) -> ln q(s), shape (n,)
    conditional_logits(params, spins) -> ℓ (n, n_sites): log-odds of s_i = +1 given s_<i
        (without the Z2 mixture; it is what the autoregressive property is about)
    n_sites, n_params: sizes (n_params counts only the weights the masks let through, and biases)
    """

    init: Callable[[jax.Array], Params]
    sample: Callable[[Params, jax.Array, int], jax.Array]
    log_prob: Callable[[Params, jax.Array], jax.Array]
    conditional_logits: Callable[[Params, jax.Array], jax.Array]
    n_sites: int
    n_params: int  # free parameters: unmasked weights and biases


def _mask(n: int, f_out: int, f_in: int, exclusive: bool) -> np.ndarray:
    """(n·f_out, n·f_in) block mask: output features of site i see input features of site j iff
    j < i (exclusive) or j ≤ i (inclusive)."""
    site = np.arange(n)
    allowed = site[:, None] > site[None, :] if exclusive else site[:, None] >= site[None, :]
    return np.kron(allowed, np.ones((f_out, f_in), dtype=bool))


def make_van(n_sites: int, layers: int = 2, hidden: int = 4, z2_symmetric: bool = False,
             dtype: Any = None) -> VAN:
    """A VAN over ``n_sites`` spins: ``layers`` masked hidden layers, ``hidden`` features/site."""
    if n_sites < 1 or layers < 1 or hidden < 1:
        raise ValueError("n_sites, layers and hidden must all be >= 1")
    n, h = n_sites, hidden
    # (name, f_out, f_in, exclusive) of each masked dense layer; "skip" is the direct connection.
    shapes = [("h0", h, 1, True)]
    shapes += [(f"h{l}", h, h, False) for l in range(1, layers)]
    shapes += [("out", 1, h, False), ("skip", 1, 1, True)]
    masks = {name: _mask(n, fo, fi, ex) for name, fo, fi, ex in shapes}
    # Hidden and output weights enter as w · mask / sqrt(fan-in of the row) with w = O(1): a fixed
    # Adam step on w then moves each pre-activation by a similar amount for every lattice size, so
    # one learning rate serves L = 4 and L = 16 (stored pre-scaled weights trained badly on L = 16
    # with the L = 4 rate). The direct spin→logit connection stays unscaled: the couplings it has
    # to learn are few and local (left and upper neighbours), and a fan-in of up to N would slow
    # each of them down by √N.
    scaled_masks = {name: m / np.sqrt(np.maximum(m.sum(axis=1, keepdims=True), 1))
                    for name, m in masks.items()}
    scaled_masks["skip"] = masks["skip"].astype(float)
    hidden_names = [name for name, *_ in shapes[:-2]]

    def init(key: jax.Array) -> Params:
        dt = dtype or jnp.result_type(float)
        sizes = [masks[name].size for name, *_ in shapes]
        # One draw for all weights: each separate jax.random call costs ~0.5 s of CPU compile.
        noise = jax.random.normal(key, (sum(sizes),), dt)
        offsets = np.cumsum([0] + sizes)
        params = {}
        for (name, fo, fi, _), start in zip(shapes, offsets):
            m = masks[name]
            if name in ("out", "skip"):
                # zero output weights: training starts from the uniform distribution, the right
                # starting point for β annealing, and ln q(s) = −N ln 2 exactly at step 0.
                w = jnp.zeros(m.shape, dt)
            else:
                w = noise[start:start + m.size].reshape(m.shape)
            params[name] = {"w": w, "b": jnp.zeros((n * fo,), dt)}
        return params

    def _masked(params: Params) -> dict[str, jax.Array]:
        return {name: params[name]["w"] * jnp.asarray(scaled_masks[name], params[name]["w"].dtype)
                for name in masks}

    def conditional_logits(params: Params, spins: jax.Array) -> jax.Array:
        w = _masked(params)
        x = jnp.asarray(spins, params["h0"]["w"].dtype)
        a = x
        for name in hidden_names:
            a = jnp.tanh(a @ w[name].T + params[name]["b"])
        return (a @ w["out"].T + params["out"]["b"]
                + x @ w["skip"].T + params["skip"]["b"])

    def _log_q(params: Params, spins: jax.Array) -> jax.Array:
        logits = conditional_logits(params, spins)
        return jnp.sum(jax.nn.log_sigmoid(spins * logits), axis=-1)

    def log_prob(params: Params, spins: jax.Array) -> jax.Array:
        spins = jnp.asarray(spins, params["h0"]["w"].dtype)
        if not z2_symmetric:
            return _log_q(params, spins)
        return jnp.logaddexp(_log_q(params, spins), _log_q(params, -spins)) - jnp.log(2.0)

    # Sampling goes block by block (``block`` consecutive sites; one lattice row for n = L²).
    # At the start of a block, one matrix product per layer adds the contributions of all finished
    # blocks to the block's pre-activations; inside the block only the small diagonal weight blocks
    # and block-sized caches are touched. Updating full-size caches site by site instead was
    # memory-bound on CPU (each step streamed O(n·h·batch) numbers for O(h) new ones): ~10x slower.
    block = max(d for d in range(1, int(np.sqrt(n)) + 1) if n % d == 0)
    n_blocks = n // block
    # (name, index of the cache it reads) with cache 0 = spins, cache l = hidden layer l−1.
    reads = [(name, l) for l, name in enumerate(hidden_names)] + [("out", layers), ("skip", 0)]
    feats = [1] + [h] * layers  # features per site of each cache

    def sample(params: Params, key: jax.Array, num: int) -> jax.Array:
        dt = params["h0"]["w"].dtype
        w = _masked(params)
        bias = {name: params[name]["b"] for name in params}
        # Row blocks (n_blocks, block·f_out, n·f_in) and diagonal blocks
        # (n_blocks, block, f_out, block·f_in) of every masked weight matrix.
        rows, diag = {}, {}
        for name, src in reads:
            fo, fi = w[name].shape[0] // n, feats[src]
            r = w[name].reshape(n_blocks, block * fo, n * fi)
            rows[name] = r
            d = r.reshape(n_blocks, block * fo, n_blocks, block * fi)
            d = d[jnp.arange(n_blocks), :, jnp.arange(n_blocks), :]
            diag[name] = d.reshape(n_blocks, block, fo, block * fi)
        # one draw for the ancestral steps and the global flip (see init on compile cost)
        u = jax.random.uniform(key, (n + 1, num), dt)
        uniforms, u_flip = u[:n].reshape(n_blocks, block, num), u[n]

        def do_block(k, caches):
            # caches[c]: (n, f_c, num), batch last so every product is (f_out, ·) @ (·, num)
            base = {}
            for name, src in reads:
                full = caches[src].reshape(n * feats[src], num)
                b = rows[name][k] @ full + jax.lax.dynamic_slice_in_dim(
                    bias[name], k * rows[name].shape[1], rows[name].shape[1])[:, None]
                base[name] = b.reshape(block, -1, num)
            d_k = {name: diag[name][k] for name in diag}
            u_k = uniforms[k]

            def site(j, blk):
                # blk[c]: (block, f_c, num), the current block's part of cache c
                blk = list(blk)
                for name, src in reads[:-2]:
                    pre = base[name][j] + d_k[name][j] @ blk[src].reshape(-1, num)
                    blk[src + 1] = blk[src + 1].at[j].set(jnp.tanh(pre))
                logit = (base["out"][j] + d_k["out"][j] @ blk[layers].reshape(-1, num)
                         + base["skip"][j] + d_k["skip"][j] @ blk[0].reshape(-1, num))[0]
                s_j = jnp.where(u_k[j] < jax.nn.sigmoid(logit), 1.0, -1.0).astype(dt)
                blk[0] = blk[0].at[j, 0].set(s_j)
                return tuple(blk)

            blk0 = tuple(jnp.zeros((block, f, num), dt) for f in feats)
            blk = jax.lax.fori_loop(0, block, site, blk0)
            return tuple(jax.lax.dynamic_update_slice_in_dim(c, b, k * block, 0)
                         for c, b in zip(caches, blk))

        caches0 = tuple(jnp.zeros((n, f, num), dt) for f in feats)
        caches = jax.lax.fori_loop(0, n_blocks, do_block, caches0)
        x = caches[0][:, 0, :].T
        if z2_symmetric:
            # a fair global flip turns samples of q into samples of ½(q(s) + q(−s))
            x = jnp.where(u_flip[:, None] < 0.5, -x, x)
        return x

    n_params = sum(int(m.sum()) + m.shape[0] for m in masks.values())
    return VAN(init=init, sample=sample, log_prob=log_prob,
               conditional_logits=conditional_logits, n_sites=n, n_params=n_params)
