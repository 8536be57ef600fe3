"""Autoregressive model p_φ(n) over fermion occupation patterns, starting exactly at the ideal gas.

One job: a normalised distribution over occupation patterns n ∈ {0,1}^M with exactly N ones per
species, with exact ancestral sampling and exact ln p. It is the "which basis state" half of the
density matrix ρ = Σ_n U|n⟩ p_n ⟨n|U† (DESIGN.md §3).

Factorisation. Levels are visited in the order of the orbital list (by energy):
p(n) = Π_k p(n_k | n_<k). With r particles still to place on the M-k levels k..M-1 the pattern is
*forced* when r = 0 (empty) or r = M-k (all full); this mask makes Pauli exclusion and the particle
number exact for every sample and every parameter value.

Exact start. The canonical ideal gas p_0(n) ∝ Π_k x_k^{n_k}, x_k = e^{-ε_k/T}, is itself
autoregressive with conditionals
    p_0(n_k = 1 | n_<k) = x_k e_{r-1}(x_{k+1..M}) / e_r(x_{k..M}),
e_r the elementary symmetric polynomials of the remaining Boltzmann factors. Their logits
    ℓ_k(r) = ln x_k + ln e_{r-1}(x_{k+1..}) - ln e_r(x_{k+1..})
come from one log-space suffix table (``qvfe.physics.ideal_fermi.log_esp_suffix``), precomputed in
float64 at construction. A MADE (masked MLP with a masked skip connection, flax.linen) reads the
occupation prefix and adds a correction to these logits. Its output layer starts at zero, so at
initialisation p_φ is *exactly* the ideal-gas Boltzmann distribution; no pretraining.

Spin. ``SpinfulOccupations`` orders the levels as all up levels, then all down levels, in one MADE:
p(n↑, n↓) = p(n↑) p(n↓ | n↑). With ``joint=False`` the masks cut the up→down connections and the
model is a product of independent species. Either way the start is the product of the ideal-gas
distributions of the two species, which is exact for the non-interacting system.

Array conventions: an occupation pattern is an int32 array (batch, M) of 0/1 in orbital-list order;
spinful patterns are a tuple (occ_up, occ_down) of two such arrays (same M, each with its own N).
``params`` is a flax variable dict (a pytree). Methods are pure; nothing here calls ``jit``.

Example::

    model = Occupations(energies, n=3, T=0.5)
    params = model.init(jax.random.key(0))
    occ = model.sample(params, jax.random.key(1), 1024)   # (1024, M) int32, 3 ones per row
    logp = model.log_prob(params, occ)                    # (1024,)
    idx = model.occupied_indices(occ)                     # (1024, 3), ascending
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics.ideal_fermi import log_esp_suffix

__all__ = [
    "Occupations",
    "SpinfulOccupations",
    "GroundOccupations",
    "MADE",
    "made_start",
    "made_logit_at",
    "made_advance",
    "occupied_indices",
]

Params = Any


def occupied_indices(occ: jax.Array, n: int) -> jax.Array:
    """(batch, n) indices of the ``n`` occupied orbitals per row of ``occ`` (batch, M), ascending.

    This fixed, ascending order is the row order of the Slater determinant (any fixed order would
    do: it only sets a global sign of ψ_n). Rows with fewer than ``n`` ones are padded with the
    indices of empty orbitals (never happens for patterns from ``sample``).
    """
    occ = jnp.asarray(occ)
    # A stable argsort on "empty" puts occupied orbitals first, each group in ascending index order.
    order = jnp.argsort(occ == 0, axis=-1, stable=True)
    return order[..., :n].astype(jnp.int32)


# --------------------------------------------------------------------------------------------------
# MADE: masked MLP whose output j depends only on inputs < j (and, optionally, only within a block).
# --------------------------------------------------------------------------------------------------
def _made_masks(
    n_inputs: int, hidden: Sequence[int], blocks: Sequence[int] | None
) -> tuple[list[np.ndarray], np.ndarray]:
    """Masks for MADE layers and the skip connection (1 = connection allowed).

    Degrees: input/output j has degree j+1; output j may see hidden units of degree ≤ j, hidden
    units may see inputs of degree ≤ theirs, so output j depends on inputs 0..j-1 only.
    With ``blocks`` (block id per input), every hidden unit belongs to one block and only
    connections inside a block are kept (independent blocks).
    """
    io_deg = np.arange(1, n_inputs + 1)
    io_blk = np.zeros(n_inputs, dtype=int) if blocks is None else np.asarray(blocks)
    n_blocks = int(io_blk.max()) + 1 if n_inputs else 1

    def hidden_units(width: int) -> tuple[np.ndarray, np.ndarray]:
        u = np.arange(width)
        blk = u % n_blocks
        deg = np.empty(width, dtype=int)
        for b in range(n_blocks):
            members = np.nonzero(io_blk == b)[0]
            lo = int(members[0]) + 1 if members.size else 1
            span = max(members.size - 1, 1)  # degrees lo .. lo+span-1 (outputs of degree > lo+..)
            deg[blk == b] = lo + (u[blk == b] // n_blocks) % span
        return deg, blk

    masks = []
    prev_deg, prev_blk = io_deg, io_blk
    for width in hidden:
        deg, blk = hidden_units(width)
        masks.append((deg[None, :] >= prev_deg[:, None]) & (blk[None, :] == prev_blk[:, None]))
        prev_deg, prev_blk = deg, blk
    masks.append((io_deg[None, :] > prev_deg[:, None]) & (io_blk[None, :] == prev_blk[:, None]))
    skip = (io_deg[None, :] > io_deg[:, None]) & (io_blk[None, :] == io_blk[:, None])
    return [m.astype(np.float64) for m in masks], skip.astype(np.float64)


class MADE(nn.Module):
    """Masked autoregressive MLP (tanh) plus a masked linear skip; output layer and skip start at 0.

    ``__call__(x)`` maps (..., n_inputs) to (..., n_inputs) with output j a function of x_<j.
    For ancestral sampling, ``masked_weights`` returns the masked layers once and the pure functions
    ``made_start`` / ``made_logit_at`` / ``made_advance`` evaluate one output at a time, updating
    the first layer's pre-activation incrementally (O(H) per new input instead of O(D·H)).
    """

    n_inputs: int
    hidden: tuple[int, ...] = (64,)
    blocks: tuple[int, ...] | None = None
    param_dtype: Any = jnp.float32

    def setup(self):
        masks, skip = _made_masks(self.n_inputs, self.hidden, self.blocks)
        widths = (self.n_inputs, *self.hidden, self.n_inputs)
        kernels, biases = [], []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            # Zero output layer: the correction to the exact ideal-gas logits vanishes at init.
            # (Plain, not truncated, normal for the rest: same role, much cheaper to compile.)
            k_init = (nn.initializers.zeros if last
                      else nn.initializers.variance_scaling(1.0, "fan_in", "normal"))
            kernels.append(self.param(f"kernel_{i}", k_init, (fan_in, fan_out), self.param_dtype))
            biases.append(self.param(f"bias_{i}", nn.initializers.zeros, (fan_out,),
                                     self.param_dtype))
        self.kernels = kernels
        self.biases = biases
        self.skip = self.param("skip", nn.initializers.zeros, (self.n_inputs, self.n_inputs),
                               self.param_dtype)
        self._masks = masks
        self._skip_mask = skip

    def masked_weights(self) -> dict[str, Any]:
        """{"kernels": [masked (fan_in, fan_out)], "biases": [...], "skip": masked (D, D)}."""
        kernels = [k * jnp.asarray(m, k.dtype) for k, m in zip(self.kernels, self._masks)]
        skip = self.skip * jnp.asarray(self._skip_mask, self.skip.dtype)
        return {"kernels": kernels, "biases": list(self.biases), "skip": skip}

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.masked_weights()
        h = x
        for k, b in zip(w["kernels"][:-1], w["biases"][:-1]):
            h = jnp.tanh(h @ k + b)
        return h @ w["kernels"][-1] + w["biases"][-1] + x @ w["skip"]


# Incremental MADE evaluation (pure functions of ``MADE.masked_weights``). The carry holds the first
# layer's pre-activation (the output pre-activation when there are no hidden layers) and the skip
# pre-activation, accumulated over the inputs fixed so far (inputs not yet fixed count as 0).
def made_start(weights: dict[str, Any], batch: int) -> tuple[jax.Array, jax.Array]:
    b0 = weights["biases"][0]
    return jnp.broadcast_to(b0, (batch, b0.shape[0])), jnp.zeros((batch, weights["skip"].shape[0]),
                                                                  weights["skip"].dtype)


def made_logit_at(weights: dict[str, Any], carry: tuple[jax.Array, jax.Array], j: jax.Array
                  ) -> jax.Array:
    first, skip = carry
    kernels, biases = weights["kernels"], weights["biases"]
    if len(kernels) == 1:
        return first[:, j] + skip[:, j]
    h = jnp.tanh(first)
    for k, b in zip(kernels[1:-1], biases[1:-1]):
        h = jnp.tanh(h @ k + b)
    return h @ kernels[-1][:, j] + biases[-1][j] + skip[:, j]


def made_advance(weights: dict[str, Any], carry: tuple[jax.Array, jax.Array], j: jax.Array,
                 x_j: jax.Array) -> tuple[jax.Array, jax.Array]:
    first, skip = carry
    x_j = x_j[:, None]
    return first + x_j * weights["kernels"][0][j], skip + x_j * weights["skip"][j]


# --------------------------------------------------------------------------------------------------
# The block model: species blocks laid end to end, each with its own levels and particle number.
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class _BlockOccupations:
    """Shared engine: S species blocks of levels in one autoregressive order (module docstring)."""

    level_energies: tuple[np.ndarray, ...]
    particle_numbers: tuple[int, ...]
    T: float
    hidden: tuple[int, ...]
    joint: bool
    # Derived static tables (host numpy), filled in __post_init__.
    _tables: dict = field(init=False, repr=False)

    def __post_init__(self):
        if not self.T > 0:
            raise ValueError(f"temperature must be > 0, got {self.T}")
        for e in self.level_energies:
            if np.isnan(e).any():
                raise ValueError("level energies must not be NaN")
        sizes = [int(np.shape(e)[0]) for e in self.level_energies]
        for m, n in zip(sizes, self.particle_numbers):
            if not 0 <= n <= m:
                raise ValueError(f"particle number {n} outside [0, {m}] for {m} levels")
        n_max = max(self.particle_numbers)
        base, forced, block, local, offset = [], [], [], [], []
        start = 0
        for s, (eps, m, n) in enumerate(zip(self.level_energies, sizes, self.particle_numbers)):
            if m == 0:
                raise ValueError("every species needs at least one level")
            eps = np.asarray(eps, dtype=np.float64)
            with np.errstate(over="ignore"):  # an overflow is refused below, with its reason
                log_x = -(eps - eps.min()) / self.T  # shift: conditionals do not depend on it
            suffix = log_esp_suffix(log_x, n)  # (m+1, n+1): ln e_r(x_k..x_{m-1})
            k = np.arange(m)[:, None]
            r = np.arange(n_max + 1)[None, :]
            # forced: 0 = must be empty (r = 0), 1 = must be full (r ≥ levels left), -1 = free.
            f = np.where(r == 0, 0, np.where(r >= m - k, 1, -1))
            f = np.where(r > n, 0, f)  # r > n never happens for valid patterns; any finite value
            # ℓ_k(r) = ln x_k + ln e_{r-1}(x_{k+1..}) - ln e_r(x_{k+1..}) for r = 1..n; finite
            # wherever the step is free, -inf - -inf = nan elsewhere, which the mask replaces.
            logit = np.zeros((m, n_max + 1))
            with np.errstate(invalid="ignore"):
                logit[:, 1:n + 1] = log_x[:, None] + suffix[1:, :-1] - suffix[1:, 1:]
            logit = np.where(f == -1, logit, 0.0)
            # ±inf logits are certain steps (a level of energy +inf is never occupied); NaN is
            # where every level left has exp(-(energy - lowest)/T) = 0: T too small to resolve.
            if np.isnan(logit).any():
                raise ValueError(f"the ideal gas's logits are undefined at T = {self.T}: "
                                 f"(energy - lowest energy)/T overflows, or an energy is -inf")
            base.append(logit)
            forced.append(f.astype(np.int32))
            block.append(np.full(m, s))
            local.append(np.arange(m))
            offset.append(np.full(m, start))
            start += m
        n_per_pos = np.concatenate([np.full(m, n) for m, n in zip(sizes, self.particle_numbers)])
        tables = {
            "sizes": tuple(sizes),
            "base": np.concatenate(base),          # (D, n_max+1) exact logits ℓ_k(r)
            "forced": np.concatenate(forced),      # (D, n_max+1) in {-1, 0, 1}
            "block": np.concatenate(block),        # (D,) species of position j
            "local": np.concatenate(local).astype(np.int32),  # (D,) level index in its species
            "offset": np.concatenate(offset),      # (D,) first position of j's species
            "n_at": n_per_pos.astype(np.int32),  # (D,) particle number of j's species
            "n_max": n_max,
        }
        object.__setattr__(self, "_tables", tables)

    @property
    def n_positions(self) -> int:
        return int(sum(self._tables["sizes"]))

    def network(self, dtype) -> MADE:
        blocks = None if self.joint else tuple(int(b) for b in self._tables["block"])
        return MADE(self.n_positions, tuple(self.hidden), blocks, param_dtype=dtype)

    def init(self, key: jax.Array) -> Params:
        # Parameters in the default float dtype (float64 when x64 is on) so that the exact logits
        # are not rounded to float32 by promotion.
        dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
        return self.network(dtype).init(key, jnp.zeros((1, self.n_positions), dtype))

    def _net(self, params: Params) -> MADE:
        leaf = jax.tree_util.tree_leaves(params)[0]
        return self.network(leaf.dtype)

    def _step_logp(self, logit, forced, x):
        """ln p(x | prefix) given the free logit and the forced flag (-1 free, 0/1 forced)."""
        free_logp = jnp.where(x == 1, jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit))
        forced_logp = jnp.where(x == forced, 0.0, -jnp.inf)
        return jnp.where(forced < 0, free_logp, forced_logp)

    def log_prob_flat(self, params: Params, occ: jax.Array) -> jax.Array:
        t = self._tables
        occ = jnp.asarray(occ)
        if occ.shape[-1] != self.n_positions:
            raise ValueError(f"occupation patterns need {self.n_positions} levels in the last "
                             f"axis, got shape {occ.shape}")
        x = occ.astype(jax.tree_util.tree_leaves(params)[0].dtype)
        correction = self._net(params).apply(params, x)  # (batch, D)
        occ_i = occ.astype(jnp.int32)
        before = jnp.cumsum(occ_i, axis=-1) - occ_i  # occupied strictly before j (all species)
        placed = before - before[..., t["offset"]]  # ... within j's species
        remaining = jnp.asarray(t["n_at"]) - placed
        r = jnp.clip(remaining, 0, t["n_max"])
        pos = jnp.arange(self.n_positions)
        base = jnp.asarray(t["base"], correction.dtype)[pos, r]
        forced = jnp.asarray(t["forced"])[pos, r]
        logp = jnp.sum(self._step_logp(base + correction, forced, occ_i), axis=-1)
        # Wrong particle numbers or entries other than 0 and 1 (only possible for patterns not
        # drawn from the model) have p = 0.
        ok = jnp.all((occ_i == 0) | (occ_i == 1), axis=-1)
        for s, (m, n) in enumerate(zip(t["sizes"], self.particle_numbers)):
            o = int(np.sum(t["sizes"][:s]))
            ok &= jnp.sum(occ_i[..., o:o + m], axis=-1) == n
        return jnp.where(ok, logp, -jnp.inf)

    def sample_flat(self, params: Params, key: jax.Array, batch: int) -> jax.Array:
        t = self._tables
        # Masks applied once, outside the loop.
        weights = self._net(params).apply(params, method=MADE.masked_weights)
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        base_tab = jnp.asarray(t["base"], dtype)
        forced_tab = jnp.asarray(t["forced"])
        local = jnp.asarray(t["local"])
        n_at = jnp.asarray(t["n_at"])

        def step(carry, inputs):
            net_carry, placed = carry
            j, log_u = inputs
            placed = jnp.where(local[j] == 0, 0, placed)  # a new species starts: nothing placed
            r = jnp.clip(n_at[j] - placed, 0, t["n_max"])
            logit = base_tab[j, r] + made_logit_at(weights, net_carry, j)
            forced = forced_tab[j, r]
            # Bernoulli(sigmoid(logit)) as ln u < ln σ(logit): no overflow for |logit| ~ 1e3.
            draw = (log_u < jax.nn.log_sigmoid(logit)).astype(jnp.int32)
            x = jnp.where(forced < 0, draw, forced)
            net_carry = made_advance(weights, net_carry, j, x.astype(dtype))
            return (net_carry, placed + x), x

        d = self.n_positions
        # All uniforms drawn up front: keeps the RNG out of the loop body (smaller, faster compile).
        # u > 0: ln 0 = -inf would take a step whatever its probability (in float32 u = 0 comes
        # once in 2^23 draws); tiny changes no other draw.
        log_u = jnp.log(jax.random.uniform(key, (d, batch), dtype, minval=jnp.finfo(dtype).tiny))
        carry0 = (made_start(weights, batch), jnp.zeros((batch,), jnp.int32))
        _, occ = jax.lax.scan(step, carry0, (jnp.arange(d), log_u))
        return occ.T


# --------------------------------------------------------------------------------------------------
# Public models
# --------------------------------------------------------------------------------------------------
def _level_energies(energies) -> np.ndarray:
    """``energies`` as a 1-D float64 array, refusing any other shape before it is indexed."""
    energies = np.asarray(energies, dtype=np.float64)
    if energies.ndim != 1:
        raise ValueError(f"level energies must be a 1-D array, got shape {energies.shape}")
    return energies


def _particle_number(name: str, n) -> int:
    """``n`` as an int, refusing a fractional count rather than truncating it."""
    if int(n) != n:
        raise ValueError(f"{name} must be a whole number of particles, got {n}")
    return int(n)


class Occupations:
    """p_φ(n) for ``n`` fermions of one species on the levels ``energies`` (M,), ideal gas at init.

    Args:
        energies: level energies in orbital-list order (the order the model visits them; use the
            energy-sorted lists from ``qvfe.physics.orbitals``).
        n: particle number N (0 ≤ N ≤ M).
        T: temperature of the reference ideal gas (Hartree), > 0.
        hidden: MADE hidden layer widths (``()`` leaves only the masked linear skip).

    Methods (pure): ``init(key) -> params``; ``sample(params, key, batch) -> occ`` int32 (batch, M);
    ``log_prob(params, occ) -> (batch,)``; ``occupied_indices(occ) -> (batch, N)`` ascending.
    ``batch`` is static (a Python int) under ``jit``.
    """

    def __init__(self, energies: np.ndarray, n: int, T: float, hidden: Sequence[int] = (64,)):
        self.energies = _level_energies(energies)
        self.n = _particle_number("n", n)
        self.T = float(T)
        self.n_levels = int(self.energies.shape[0])
        self._core = _BlockOccupations((self.energies,), (self.n,), self.T, tuple(hidden), True)

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters: the correction network with a zero output layer (exact ideal gas)."""
        return self._core.init(key)

    def sample(self, params: Params, key: jax.Array, batch: int) -> jax.Array:
        """Exact ancestral samples: int32 (batch, M) of 0/1 with exactly N ones per row."""
        return self._core.sample_flat(params, key, batch)

    def log_prob(self, params: Params, occ: jax.Array) -> jax.Array:
        """ln p_φ(occ) for occ (batch, M) in one teacher-forced pass; -inf for a wrong N or an
        entry other than 0 and 1."""
        return self._core.log_prob_flat(params, occ)

    def occupied_indices(self, occ: jax.Array, n: int | None = None) -> jax.Array:
        """(batch, N) int32 indices of occupied levels, ascending (Slater-determinant row order)."""
        return occupied_indices(occ, self.n if n is None else n)


class _TwoSpecies:
    """What every occupation model over two spin species shares: patterns (occ_up, occ_down)
    and the particle numbers ``n_up``, ``n_down`` set by the subclass."""

    n_up: int
    n_down: int

    def occupied_indices(
        self, occ: tuple[jax.Array, jax.Array], n: tuple[int, int] | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Ascending occupied indices per species: ((batch, N↑), (batch, N↓)) int32."""
        n_up, n_down = (self.n_up, self.n_down) if n is None else n
        return occupied_indices(occ[0], n_up), occupied_indices(occ[1], n_down)


class SpinfulOccupations(_TwoSpecies):
    """p_φ(n↑, n↓) for (N↑, N↓) fermions; product of the two ideal-gas distributions at init.

    Args:
        energies: level energies (M,) of the up species (and of the down species unless
            ``energies_down`` is given; both species must have the same number of levels M).
        n_up, n_down: particle numbers per species.
        T: temperature of the reference ideal gas (Hartree), > 0.
        hidden: MADE hidden widths.
        joint: ``True`` (default) — one MADE over up levels then down levels, so the down
            conditionals can depend on the up pattern, p(n↑) p(n↓|n↑); ``False`` — masks cut
            up↔down connections (the hidden units are split between the species): two
            independent species.

    Occupations are tuples ``(occ_up, occ_down)`` of int32 (batch, M) arrays.
    ``occupied_indices(occ) -> (idx_up (batch, N↑), idx_down (batch, N↓))``.
    """

    def __init__(
        self,
        energies: np.ndarray,
        n_up: int,
        n_down: int,
        T: float,
        hidden: Sequence[int] = (64,),
        joint: bool = True,
        energies_down: np.ndarray | None = None,
    ):
        self.energies = _level_energies(energies)
        self.energies_down = (self.energies if energies_down is None
                              else _level_energies(energies_down))
        if self.energies_down.shape != self.energies.shape:
            raise ValueError("up and down species must have the same number of levels")
        self.n_up = _particle_number("n_up", n_up)
        self.n_down = _particle_number("n_down", n_down)
        self.T = float(T)
        self.n_levels = int(self.energies.shape[0])
        self._core = _BlockOccupations((self.energies, self.energies_down),
                                       (self.n_up, self.n_down), self.T, tuple(hidden), joint)

    def init(self, key: jax.Array) -> Params:
        """Fresh parameters (zero output layer: exact product of ideal-gas distributions)."""
        return self._core.init(key)

    def _split(self, flat: jax.Array) -> tuple[jax.Array, jax.Array]:
        return flat[..., : self.n_levels], flat[..., self.n_levels:]

    def sample(self, params: Params, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        """Exact ancestral samples: (occ_up, occ_down), each int32 (batch, M) with N↑ / N↓ ones."""
        return self._split(self._core.sample_flat(params, key, batch))

    def log_prob(self, params: Params, occ: tuple[jax.Array, jax.Array]) -> jax.Array:
        """ln p_φ(occ_up, occ_down), shape (batch,), one teacher-forced pass."""
        up, down = occ
        return self._core.log_prob_flat(params, jnp.concatenate([up, down], axis=-1))


class GroundOccupations(_TwoSpecies):
    """p(n) = δ(n − n₀): each species fills its lowest levels, no parameters (T ≪ T_F electrons).

    The electronic entropy is then zero and the density matrix a pure state per proton
    configuration: the ground-state option of dense hydrogen. Ties at the Fermi level (an open
    shell) are broken by the level order, which is a variational choice like any other. Same
    interface as ``SpinfulOccupations`` (patterns ``(occ_up, occ_down)``, int32 (batch, M)).
    """

    def __init__(self, energies: np.ndarray, n_up: int, n_down: int):
        self.energies = _level_energies(energies)
        self.n_up = _particle_number("n_up", n_up)
        self.n_down = _particle_number("n_down", n_down)
        self.n_levels = int(self.energies.shape[0])
        for name, n in (("n_up", self.n_up), ("n_down", self.n_down)):
            if not 0 <= n <= self.n_levels:
                raise ValueError(f"{name} = {n} outside [0, {self.n_levels}] for "
                                 f"{self.n_levels} levels")
        order = np.argsort(self.energies, kind="stable")
        self.patterns = []
        for n in (self.n_up, self.n_down):
            pattern = np.zeros(self.n_levels, dtype=np.int32)
            pattern[order[:n]] = 1
            self.patterns.append(pattern)

    @property
    def ground_energy(self) -> float:
        """Σ of the occupied level energies, both species."""
        return float(sum(self.energies @ p for p in self.patterns))

    def init(self, key: jax.Array) -> Params:
        return {}

    def sample(self, params: Params, key: jax.Array, batch: int) -> tuple[jax.Array, jax.Array]:
        return tuple(jnp.broadcast_to(jnp.asarray(p), (batch, self.n_levels))
                     for p in self.patterns)

    def log_prob(self, params: Params, occ: tuple[jax.Array, jax.Array]) -> jax.Array:
        """0 for the ground pattern, -inf for any other: ln δ(n − n₀)."""
        ground = (jnp.all(jnp.asarray(occ[0]) == self.patterns[0], axis=-1)
                  & jnp.all(jnp.asarray(occ[1]) == self.patterns[1], axis=-1))
        return jnp.where(ground, 0.0, -jnp.inf)
