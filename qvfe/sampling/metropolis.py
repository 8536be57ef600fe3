"""Random-walk Metropolis for particle coordinates, X | n ~ |psi_n(X)|^2.

One job: move a batch of walkers (kept across calls in a pytree state) with Gaussian proposals and
the Metropolis rule for a caller-supplied ``log_prob_fn(X_batch) -> (batch,)`` (``2 Re ln psi``),
and adapt the proposal width toward a target acceptance.

Design choices and why
* All particles move at once. With the backflow every z_i depends on every x_j, so a one-particle
  move changes every row of the determinants and the whole Jacobian: it costs a full evaluation of
  ln psi, the same as an all-particle move. For the small N here, an all-particle Gaussian with an
  adapted width gives about the same decorrelation per evaluation, and it is a single batched call.
* The width is adapted only between calls (``step``): within one call the kernel is fixed, so each
  call is an exact |psi|^2-invariant Markov chain. The rule ``log w <- log w + gain (a - target)``
  uses the batch-mean acceptance a of the call; since a decreases monotonically with w this is a
  contraction toward a(w) = target (Robbins-Monro style, with noise ~ 1/sqrt(batch * sweeps)).
  ``burn_in`` adapts after every sweep, which is fine because its samples are discarded.
* Periodic boxes: positions are wrapped into [0, L)^d. The wrapped Gaussian proposal is still
  symmetric on the torus, so the acceptance rule is unchanged; ``log_prob_fn`` must be periodic.
* The state is a NamedTuple of arrays (raw uint32 PRNG key), serialisable with flax.serialization.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from qvfe.watchdog import keepalive_every

__all__ = ["MetropolisState", "init", "step", "burn_in"]

LogProbFn = Callable[[jax.Array], jax.Array]  # (batch, n, d) -> (batch,)

_MIN_WIDTH = 1e-4


class MetropolisState(NamedTuple):
    """Walkers and everything the chain carries between calls.

    key: PRNG key (raw uint32 array).
    walkers: (batch, n, d) positions.
    width: scalar standard deviation of the Gaussian proposal per coordinate.
    acceptance: scalar mean acceptance of the last call (for logs and checkpoints).
    """

    key: jax.Array
    walkers: jax.Array
    width: jax.Array
    acceptance: jax.Array


def init(key: jax.Array, walkers: jax.Array, width: float) -> MetropolisState:
    """Start a chain at ``walkers`` (batch, n, d) with proposal ``width``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> s = init(jax.random.PRNGKey(0), jnp.zeros((8, 2, 1)), 0.5)
        >>> s, acc = step(s, lambda x: -jnp.sum(x**2, axis=(1, 2)), n_sweeps=4)
        >>> s.walkers.shape
        (8, 2, 1)
    """
    walkers = jnp.asarray(walkers)
    if walkers.ndim != 3:
        raise ValueError(f"walkers must have shape (batch, n, d), got {walkers.shape}")
    return MetropolisState(
        key=key,
        walkers=walkers,
        width=jnp.asarray(width, dtype=walkers.dtype),
        acceptance=jnp.zeros((), dtype=walkers.dtype),
    )


def _wrap(x: jax.Array, box_length: float | None) -> jax.Array:
    return x if box_length is None else jnp.mod(x, box_length)


def _sweep(key, x, lp, width, log_prob_fn, box_length):
    """One Metropolis sweep of all walkers; returns (x, lp, mean acceptance)."""
    k_move, k_accept = jax.random.split(key)
    proposal = _wrap(x + width * jax.random.normal(k_move, x.shape, dtype=x.dtype), box_length)
    lp_new = log_prob_fn(proposal)
    log_u = jnp.log(jax.random.uniform(k_accept, lp.shape, dtype=lp.dtype))
    accept = log_u < lp_new - lp  # False for NaN: a broken proposal is rejected
    x = jnp.where(accept[:, None, None], proposal, x)
    lp = jnp.where(accept, lp_new, lp)
    return x, lp, jnp.mean(accept.astype(x.dtype))


def _adapt(width, acceptance, target, gain, max_width):
    new = width * jnp.exp(gain * (acceptance - target))
    return jnp.clip(new, _MIN_WIDTH, max_width)


def step(
    state: MetropolisState,
    log_prob_fn: LogProbFn,
    n_sweeps: int,
    *,
    box_length: float | None = None,
    adapt: bool = True,
    target: float = 0.5,
    gain: float = 1.0,
) -> tuple[MetropolisState, jax.Array]:
    """Run ``n_sweeps`` (static int) sweeps at fixed width, then adapt the width once.

    Returns the new state and the mean acceptance over sweeps and walkers.
    """
    key, k_run = jax.random.split(state.key)
    x = _wrap(state.walkers, box_length)
    lp = log_prob_fn(x)  # parameters may have changed since the last call: recompute

    def body(carry, k):
        x, lp = carry
        x, lp, acc = _sweep(k, x, lp, state.width, log_prob_fn, box_length)
        return (x, lp), acc

    (x, _), accs = jax.lax.scan(body, (x, lp), jax.random.split(k_run, n_sweeps))
    acceptance = jnp.mean(accs)
    width = state.width
    if adapt:
        width = _adapt(width, acceptance, target, gain, _max_width(box_length))
    return MetropolisState(key, x, width, acceptance), acceptance


def burn_in(
    state: MetropolisState,
    log_prob_fn: LogProbFn,
    n_sweeps: int,
    *,
    box_length: float | None = None,
    target: float = 0.5,
    gain: float = 1.0,
) -> tuple[MetropolisState, jax.Array]:
    """Equilibrate: ``n_sweeps`` sweeps, adapting the width after each one (samples discarded).

    Returns the new state and the acceptance of the last sweep.
    """
    key, k_run = jax.random.split(state.key)
    x = _wrap(state.walkers, box_length)
    lp = log_prob_fn(x)
    max_width = _max_width(box_length)

    def body(carry, step):
        k, i = step
        keepalive_every(i, 10)  # the burn-in is one compiled call: tell the stall watchdog
        x, lp, width = carry
        x, lp, acc = _sweep(k, x, lp, width, log_prob_fn, box_length)
        return (x, lp, _adapt(width, acc, target, gain, max_width)), acc

    steps = (jax.random.split(k_run, n_sweeps), jnp.arange(n_sweeps))
    (x, _, width), accs = jax.lax.scan(body, (x, lp, state.width), steps)
    return MetropolisState(key, x, width, accs[-1]), accs[-1]


def _max_width(box_length: float | None) -> float:
    # in a box, a width beyond L/2 proposes nearly uniform positions: larger is pointless
    return 1e6 if box_length is None else 0.5 * box_length
