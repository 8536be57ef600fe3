"""The variational density matrix ρ = Σ_n U|n⟩ p_φ(n) ⟨n|U†: occupations × √flow × base states.

One job: put the occupation model p_φ(n) and the √flow wavefunction ψ_n(X) = ⟨X|U|n⟩ together
under one parameter pytree ``{"phi": ..., "theta": ...}`` and give the engine what it needs per
sample: exact samples and ln p of n, ln ψ_n(X) (real and imaginary parts), the local energy split
into kinetic and potential parts, and per-sample log-derivatives for the natural gradient.

Because U is a change of variables, the ψ_n are orthonormal, so p_φ(n) are exactly the eigenvalues
of ρ and the entropy is S = −E_n ln p_φ(n) (DESIGN.md §3). The wavefunction's geminal and Jastrow
options break that orthonormality; the specs admit them only for one base state (the electrons'
ground state, at clamped nuclei for the Jastrow factor), whose norm is a constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax

from qvfe.autoregressive.occupations import SpinfulOccupations
from qvfe.wavefunction import SquareRootFlowWavefunction

Params = Any
Occupation = tuple[jax.Array, jax.Array]
Potential = Callable[[jax.Array], jax.Array]


@dataclass(frozen=True, eq=False)
class DensityMatrix:
    """ρ with ``params = {"phi": occupation-model params, "theta": wavefunction params}``.

    Array conventions: occupation patterns are ``(occ_up, occ_down)`` int32 (batch, M); their
    occupied-orbital indices ``(idx_up (batch, N↑), idx_down (batch, N↓))``; coordinates ``x``
    are (N, d) per sample with spin-up rows first, batches (B, N, d).

    Classical context. For hydrogen the "occupations" model is joint over n and the proton
    positions S (``qvfe.problems.hydrogen``): patterns are ``(occ_up, occ_down, S)``, ln p is
    ln p(n) + ln q(S), ``indices`` passes S through as a third entry, and S reaches the
    wavefunction (``log_psi(..., S)``) and the potential (``potential(x, S)``) as context.
    """

    occupations: SpinfulOccupations
    wavefunction: SquareRootFlowWavefunction
    potential: Potential

    def init(self, key: jax.Array) -> Params:
        k_phi, k_theta = jax.random.split(key)
        return {"phi": self.occupations.init(k_phi), "theta": self.wavefunction.init(k_theta)}

    # ---- occupations -------------------------------------------------------------------------
    def sample_occupations(self, phi: Params, key: jax.Array, batch: int) -> Occupation:
        return self.occupations.sample(phi, key, batch)

    def log_prob(self, phi: Params, occ: Occupation) -> jax.Array:
        return self.occupations.log_prob(phi, occ)

    def local_move(self, phi: Params, occ: Occupation, key: jax.Array, step: float
                   ) -> Occupation:
        """A symmetric proposal of the classical pattern near ``occ`` under which p_φ needs no
        factor in the acceptance (hydrogen: the protons' latent random walk); only for
        occupation models that define ``local_move``."""
        return self.occupations.local_move(phi, occ, key, step)

    def indices(self, occ: Occupation) -> tuple[jax.Array, jax.Array]:
        return self.occupations.occupied_indices(occ)

    def log_prob_jacobian(self, phi: Params, occ: Occupation) -> Params:
        """Per-sample ∇_φ ln p_φ(n_b): the phi pytree with a leading batch axis."""
        def one(*parts: jax.Array) -> Params:
            return jax.grad(lambda p: self.log_prob(p, tuple(a[None] for a in parts))[0])(phi)

        return jax.vmap(one)(*occ)

    # ---- wavefunction ------------------------------------------------------------------------
    def log_psi(self, theta: Params, x: jax.Array, idx_up: jax.Array,
                idx_down: jax.Array, *context: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(ln|ψ_n(x)|, arg ψ_n(x)) for one sample."""
        return self.wavefunction.log_psi(theta, x, idx_up, idx_down, *context)

    def log_abs2_batch(self, theta: Params, idx: tuple[jax.Array, jax.Array]
                       ) -> Callable[[jax.Array], jax.Array]:
        """X (B, N, d) -> ln|ψ_{n_b}(X_b)|² (B,), the Metropolis target of each walker's n_b."""
        def fn(xs: jax.Array) -> jax.Array:
            re = jax.vmap(lambda x, *i: self.log_psi(theta, x, *i)[0])(xs, *idx)
            return 2.0 * re

        return fn

    def log_psi_jacobian(self, theta: Params, xs: jax.Array,
                         idx: tuple[jax.Array, jax.Array]) -> Params:
        """Per-sample complex ∇_θ ln ψ = ∇ Re ln ψ + i ∇ Im ln ψ (theta pytree, batch axis first)."""
        if not jax.tree.leaves(theta):
            return theta  # the identity flow (no backflow layers) has no parameters

        def one(x, *i):
            g_re, g_im = jax.jacrev(lambda t: self.log_psi(t, x, *i))(theta)
            return jax.tree.map(lambda a, b: jax.lax.complex(a, b), g_re, g_im)

        return jax.vmap(one)(xs, *idx)

    def energies(self, theta: Params, xs: jax.Array, idx: tuple[jax.Array, jax.Array],
                 laplacian: str = "folx", key: jax.Array | None = None,
                 probes: int = 1) -> dict[str, jax.Array]:
        """Per-sample kinetic (complex), potential (real) and local (complex) energy, each (B,).

        ``laplacian="hutchinson"`` needs ``key`` (split into one per sample for the probes)."""
        keys = None if key is None else jax.random.split(key, xs.shape[0])
        kinetic = jax.vmap(lambda x, k, *i: self.wavefunction.kinetic_energy(
            theta, x, *i, laplacian=laplacian, key=k, probes=probes))(xs, keys, *idx)
        potential = jax.vmap(lambda x, *i: self.potential(x, *i[2:]))(xs, *idx)
        return {"K": kinetic, "V": potential, "E": kinetic + potential}
