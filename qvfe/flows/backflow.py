"""Particle backflow: the permutation-equivariant bijection X -> Z of the square-root flow.

One job: map all particle coordinates ``x`` of shape ``(n, d)`` (spin up first, then spin down) to
``z`` of the same shape and return ``ln|det dZ/dX|`` exactly. It is the ``T_theta`` of DESIGN.md §3:
``psi_n(X) = D_n(Z(X)) |det dZ/dX|^(1/2)``. Each layer is

    z_i = x_i + sum_{j != i} eta(x_i - x_j; s_ij) v(x_i - x_j) + b(x_i; s_i)

with a scalar pair amplitude ``eta`` from a tiny MLP of pair features (``s_ij`` = same spin or
not) and a one-body term ``b`` (open variant only; it lets the trap density breathe).

* ``open`` (quantum dot, free space): ``v(D) = D``; features ``ln(1 + |D/l|^2)`` and
  ``1/(1 + |D/l|^2)`` are functions of ``|D|^2``, hence smooth at coincidence ``D = 0``; the cusp
  feature ``rho/(1 + rho)``, ``rho = |D|/(c l)`` (``c = cusp_scale``), is linear in ``|D|`` there, so
  ``ln psi`` can acquire the ``|r_ij|`` term of the electron-electron cusp (a function of ``|D|^2``
  alone cannot, and without it the local energy keeps a ``1/r_ij`` divergence whose variance is
  infinite in 2D). Its slope at ``D = 0`` is up to ``a/(c l)``, but ``|D| d/d|D|`` of it is
  ``<= 1/4`` at any scale, so the bound below is unchanged: ``|D| |grad_|D| f|_2 <= K`` for the
  three features together with ``K = 2`` for ``c <= 2.8`` and ``K < 2.02`` for any ``c`` (sup
  approached as ``|D| -> infinity``), and with ``eta = a tanh(g)``, g 1-Lipschitz in the features,
  a pair block ``eta I + D (x) grad eta`` has norm ``<= a max_t (|t| + (1 - t^2) K) = a (K +
  1/(4K)) < 2.2 a``, hence ``k = 3`` with room.
  ``b(x) = eta_1(x) x`` with the same kind of features of ``x``.
* ``periodic`` (box of side ``L``): features ``sin, cos(2 pi D_a / L)`` and
  ``v(D) = (L / 2 pi) sin(2 pi D / L)``; both are periodic, so moving one particle by ``L e_a``
  moves its ``z`` by exactly ``L e_a`` and leaves every other ``z`` unchanged. No one-body term
  (it would break translation invariance of the gas). With ``axis_amplitudes`` (the default)
  the network has d outputs and each Cartesian component of the push has its own amplitude,
  ``u_a = eta_a(D) v_a(D)``: a scalar ``eta`` can only scale the fixed field ``v``, whose
  direction differs from the one the correlation hole needs away from small ``|D|`` (two
  electrons in a cubic box, rs = 10: the scalar form stops at 80-86 % of the exact correlation
  energy however long or wide it is trained, the per-axis form reaches it; README).

Why it is a bijection, for every parameter value. Write one layer as ``Z = X + G(X)``. The
weights of every MLP layer are projected into the unit Frobenius ball (``W / max(1, |W|_F)``), so
the MLP is 1-Lipschitz, and its output passes through ``a * tanh``, so ``|eta| <= a`` and ``eta`` is
``a``-Lipschitz in the features. With the features above this bounds the spectral norm of each pair
block ``d(eta v)/dD`` by ``k a`` (``k = 3`` open, ``1 + sqrt(d)`` periodic with one ``eta``) and
of the one-body block by ``3 a``. Per-axis amplitudes (periodic): the block is
``diag(eta_a cos(2 pi D_a / L)) + diag(v) d eta/dD``, of norm ``<= a (1 + max_a |v_a| (2 pi / L))
= 2 a``, so ``k = 2`` in any d (the vector ``eta`` is 1-Lipschitz in the features as a whole).
Each block row and column of ``dG/dX`` holds ``2(n - 1)`` pair blocks plus one one-body block,
and ``a`` is chosen so that this sum is ``contraction < 1``; since
``|A|_2 <= sqrt(max row sum * max column sum)`` of the block norms, ``|dG/dX|_2 < 1``. So G is a
contraction: ``x = z - G(x)`` has exactly one solution for every ``z`` (Banach), i.e. the layer is
a bijection of R^(n d), and ``det(I + dG/dX) > 0`` everywhere. For the periodic variant the map
commutes with lattice translations of any single particle, so it descends to a bijection of the
torus (its lift is a bijection of R^(n d) that maps each lattice coset onto itself). Stacked
layers compose bijections. ``inverse`` uses exactly this fixed-point iteration; the square-root
flow itself only ever needs X -> Z.

The price of the guarantee is a worst-case bound: the per-pair amplitude shrinks like ``1/n``
(at n = 33 in 3D a pair block is at most 0.014: the map cannot dig the correlation hole of the
dilute gas, whose energy it then misses by most of the correlation energy). ``strength`` > 1
multiplies the amplitude and gives up the guarantee for every parameter value, keeping a check
that can be made on samples: in the periodic case the map descends to a map of the torus that is
homotopic to the identity (``X + t G(X)``), hence of degree 1, and a local diffeomorphism of a
compact manifold with ``det > 0`` everywhere is a covering of degree 1, i.e. a bijection. So the
stacked layers stay a bijection exactly as long as ``det dZ/dX > 0`` everywhere; ``det_sign``
gives that sign at a sample (the electron gas and periodic hydrogen report the fraction of
evaluation samples where it is not +1). Only configurations where it fails (a fold) can make the
density matrix unnormalised.
The log-determinant is assembled from the ``(d, d)`` blocks of the analytical structure above (pair
Jacobians by ``jax.jacfwd`` on ``d`` inputs), which is ``n`` times cheaper than ``jacfwd`` of the
whole map and gives the same matrix; ``slogdet`` of it is differentiable and runs through folx's
forward Laplacian.

Exact cusps (periodic, ``pair_cusps = lambda``, the pair interaction ``lambda/r``): the learned
periodic layers are smooth functions of the separations (sin, cos), so ``ln psi`` has no
``|r_ij|`` term and the local energy keeps the Coulomb ``1/r_ij`` divergence at every
coalescence. A fixed layer moves each particle by

    sum_{j != i} (1/2) w_ij(r_ij) v(D_ij),   w_ij(r) = -b_ij / (1 + r/a)^d,

with ``v`` the periodic push above and ``r_ij`` the periodic distance ``(L/pi)|sin(pi D/L)|``
(equal to ``|D|`` near 0). An isolated pair's separation is scaled by ``G = 1 + w``: ``G(0) = 1 -
b`` (the pair is drawn together: a correlation hole of depth ``1 - (1 - b)^d`` in ``|psi|^2``),
rising monotonically towards 1, with ``beta = G'(0)/G(0) = d b/(a (1 - b))``. The Jacobian
``G^(d-1) (G + r G')`` gives ``1/2 ln|J|`` the slope ``(d + 1) beta / 2`` at contact; a same-spin
pair's determinant vanishes linearly in ``z_i - z_j`` and adds ``beta``. Kato's slopes of
``ln psi``, ``lambda/(d - 1)`` (opposite spins) and ``lambda/(d + 1)`` (same spins), fix ``beta =
2 lambda/((d + 1)(d - 1))`` and ``2 lambda/((d + 1)(d + 3))`` (lambda/4 and lambda/12 in 3D).
Maps after it that are smooth at a coalescence keep that linear term (as the open variant's
``cusp_slopes``); the other pairs' terms, smooth there, tilt it by their Jacobian (under 1 % at
rs = 1.25 with 8 + 8 electrons), and so does the Jacobian of a map before it (see the √flow's
``cusps``, which places it). Why this ``G``: to first order in b, ``J - 1 = -b (d + (d - p) t)
/ (1 + t)^(p+1)`` (t = r/a) for the power p, negative for every t exactly when p <= d: a hole
and nothing else. A map that is the identity beyond some range (p > d, or the nuclei cusp's
``h(r) = r/(1 + (r/l)^2)^2``, tried first) keeps that ball's volume, so ``ln|J|`` overshoots:
a shell of enhanced pair density, which raised the 7 + 7 gas at rs = 1 by 0.03 Ha per electron.
Of the monotone holes, p = 1 (a 1/r tail) took that gas 0.021 Ha per electron below
Hartree-Fock and p = d 0.015 (both halving the variance, with no parameter), but on hydrogen's
bcc lattice only p = d lowered the variance (by half; the energy the same as without either):
the long tail pulls electrons off their protons. Bound: ``|v| <= r``, ``|grad v| <= 1``,
``|grad r| <= 1`` and ``|w| + r |w'| = b (1 + (d + 1) t)/(1 + t)^(d+1) <= b`` give a pair block
of norm ``<= b/2``; block row i holds the sum of its pair blocks and each of them again, ``<=
sum_j b_ij``, and the columns the same (the blocks are even in D). With ``b = beta a /
(d + beta a)`` per spin type, ``a`` is the largest range at which ``max_i sum_j b_ij`` is
``contraction``: then the layer is a contraction, hence a bijection, for every configuration
(a = 1.13 bohr, b = 0.086 and 0.030 for 8 + 8 electrons in 3D at lambda = 1).

Environment layers (periodic pair sums, ``environment = H``): every pair amplitude also sees the
environment of the electron it moves,

    z_i = x_i + sum_{j != i} eta(D_ij, h_i) v(D_ij),   h_i = sum_{k != i} phi(D_ik) / (n - 1),

with ``phi`` a 1-Lipschitz network of the same periodic pair features and tanh outputs (H
channels), and ``eta`` 1-Lipschitz in (features, h) jointly. The push of j on i then depends on
where the other electrons are (three-body), yet z_i still depends on x only through the
separations ``D_ik`` from i, so the Jacobian keeps the block structure above and its
log-determinant the same (n d, n d) assembly: ``dz_i/dD_ik = du_ik/dD + A_i dh_i/dD_ik`` with
``A_i = sum_j du_ij/dh`` (forward mode on d + H inputs per pair). The bound: the direct part is
the pair block's ``(1 + sqrt(d)) a``; ``|A_i|_2 <= (n - 1) a sqrt(d) L / (2 pi)`` (``|v| <=
sqrt(d) L/(2 pi)``, ``|d eta/dh| <= a``) and ``|dh_i/dD_ik|_2 <= (2 pi / L) / (n - 1)``, so the
environment adds at most ``sqrt(d) a`` per block, and ``a = contraction / (2 (n - 1) (1 + 2
sqrt(d)))`` keeps every such layer a contraction, hence a bijection, as above. With per-axis
amplitudes ``du_ij/dh = a diag(v) d eta/dh`` has norm ``<= a L / (2 pi)``, the environment adds
``a`` and the pair block's ``2 a`` becomes ``3 a``.

Neighbour-mean layers (periodic, ``neighbour_range = l``): the bound above is set by a
configuration nobody visits, all ``n - 1`` pair blocks of one row at their largest. Instead each
particle is moved by the weighted mean of its pair displacements,

    z_i = x_i + (1/kappa) sum_j g_ij w_ij / sum_j g_ij,   g_ij = exp(-phi(x_i - x_j) / l),

with ``w(D) = eta(D) v(D)`` (``|eta| <= 1`` as above, ``v = y / sqrt(1 + |y|^2/l^2)``,
``y = (L/2 pi) sin(2 pi D/L)``, so ``|w| <= B = l`` and ``|dw/dD|_2 <= A = 1 + 2 pi B/L``,
per-axis ``eta`` included: ``|eta_a| <= 1`` and ``|diag(w / eta) d eta/dD|_2 <= B 2 pi / L``) and
``phi`` a smooth periodic distance with ``|grad phi| <= 1``, so ``|grad g| <= g/l``. With
``m_i = sum_j g_ij`` and the mean ``wbar_i = sum_j g_ij w_ij / m_i``, the derivative of z_i by
``D_ij = x_i - x_j`` is ``P_ij = (g_ij dw_ij + (w_ij - wbar_i) (x) grad g_ij) / (kappa m_i)``, so
``sum_j |P_ij|_2 <= (A + (1/l) sum_j g_ij |w_ij - wbar_i| / m_i) / kappa <= (A + B/l) / kappa``:
the weighted mean deviation is at most the weighted standard deviation (Cauchy-Schwarz), which
is at most ``B``. Block row i of dG/dX holds ``sum_j P_ij`` and the ``-P_ik``, so its sum of block
norms is at most ``2 (A + B/l)/kappa`` for every configuration and every n, and
``kappa = 2 (A + B/l) / contraction`` makes the layer a contraction in the norm ``max_i |v_i|``
(whose induced matrix norm is the largest block row sum): the argument above (Banach, lattice
cosets) holds unchanged, and ``det > 0``. The largest push is ``B/kappa`` =
``0.45 l / (2 + 2 pi l/L)`` (about ``l/4.4`` for ``l << L``, ``l/6`` at ``l = L/10``)
whatever n: at n = 33 in 3D 7 to 9 times the per-axis sum layer's largest pair push (10 to 12
times the shared amplitude's) for ``l`` around ``L/10`` (more for larger ``l``), at the price of
sharing the push among the neighbours within a few ``l`` (the mean), so ``l`` should be below the
spacing of the particles.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Backflow"]

Params = Any  # {"layers": [{"pair": mlp, "one": mlp (open only)}, ...]}; mlp = [(W, b), ...]

_KINDS = ("open", "periodic")
_CUSP_EPS = 1e-12  # (|D|/length_scale)^2 added under the square root of the cusp feature
# the same for the exact-cusp layer, much smaller: its Laplacian must follow 1/r down to r ~ 1e-5 l
# (the error is eps/r^3); 1e-20 keeps 1/eps^1.5 finite even in float32 at the masked self-pair
_EXACT_CUSP_EPS = 1e-20


def _periodic_distance(angle: jax.Array, box_length: float, eps: float) -> jax.Array:
    """r_p = (L/pi) |sin(angle/2)| over the last axis, angle = 2 pi D / L; ``eps`` under the root
    keeps its derivatives finite at D = 0."""
    return (box_length / np.pi) * jnp.sqrt(jnp.sum(jnp.sin(0.5 * angle) ** 2, axis=-1) + eps)


def _init_mlp(key: jax.Array, sizes: list[int], zero_last: bool = True
              ) -> list[tuple[jax.Array, jax.Array]]:
    """Dense layers, LeCun-normal weights; the last layer is zero (by default) so the flow starts
    at the identity."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, fan_in, fan_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        if zero_last and i == len(sizes) - 2:
            w = jnp.zeros((fan_in, fan_out))
        else:
            w = jax.random.normal(k, (fan_in, fan_out)) / np.sqrt(fan_in)
        layers.append((w, jnp.zeros((fan_out,))))
    return layers


def _value_and_jacfwd(fn):
    """fn(params, v, aux) -> (fn(...), d fn / d v) from a single forward-mode pass."""

    def wrapped(params, v, aux):
        def with_aux(v_):
            out = fn(params, v_, aux)
            return out, out

        jac, value = jax.jacfwd(with_aux, has_aux=True)(v)
        return value, jac

    return wrapped


def _pair_structured_slogdet(diag: jax.Array, U: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(ln|det J|, sign det J) of the (n d, n d) Jacobian with blocks J_ii = diag_i and
    J_ik = -U_ik (k != i; U_ii = 0): the structure of z_i = x_i + f_i(x_i - x_1, ..., x_i - x_n)."""
    n, d = diag.shape[0], diag.shape[-1]
    eye_n = jnp.asarray(np.eye(n), dtype=diag.dtype)
    blocks = eye_n[:, :, None, None] * diag[:, None] - U  # (n, n, d, d)
    jac = jnp.transpose(blocks, (0, 2, 1, 3)).reshape(n * d, n * d)
    sign, logdet = jnp.linalg.slogdet(jac)
    return logdet, sign


def _unit_ball(w: jax.Array) -> jax.Array:
    """Project W into the unit Frobenius ball, which bounds its spectral norm by 1.

    The squared norm is used inside ``max`` so the gradient stays finite at W = 0 (the
    zero-initialised last layer), where ``|W|_F`` itself has no derivative.
    """
    return w * jax.lax.rsqrt(jnp.maximum(1.0, jnp.sum(w**2)))


def _bounded_net(layers: list[tuple[jax.Array, jax.Array]], features: jax.Array,
                 first_bias: jax.Array | None = None) -> jax.Array:
    """A 1-Lipschitz MLP whose outputs are tanh-bounded in (-1, 1).

    ``first_bias`` (optional) is added to the first layer's output: a constant in the features,
    so the Lipschitz bound is unchanged (how a sector label conditions the map).
    """
    h = features
    for i, (w, b) in enumerate(layers):
        h = h @ _unit_ball(w) + b
        if i == 0 and first_bias is not None:
            h = h + first_bias
        h = jnp.tanh(h)  # also on the last layer: bounds the amplitude
    return h


def _bounded_mlp(layers: list[tuple[jax.Array, jax.Array]], features: jax.Array,
                 first_bias: jax.Array | None = None) -> jax.Array:
    """``_bounded_net`` with one output: a scalar in (-1, 1), 1-Lipschitz in the features."""
    return _bounded_net(layers, features, first_bias)[..., 0]


@dataclass(frozen=True, eq=False)
class Backflow:
    """Configuration of a backflow flow; parameters live in the pytree returned by ``init``.

    Attributes:
        n_up, n_down: particles per spin species; rows of ``x`` are ordered up first.
        dim: spatial dimension d.
        kind: ``"open"`` or ``"periodic"``.
        box_length: side L of the cubic box (periodic only).
        length_scale: unit of distance in the open features (e.g. ``1/sqrt(omega)`` in a trap).
        hidden: widths of the hidden MLP layers.
        n_layers: number of stacked backflow layers.
        cusp_scale: range of the open variant's cusp feature, in units of ``length_scale``.
        contraction: bound (< 1) on each layer's displacement Jacobian: its spectral norm for the
            pair sums, its largest block row sum (the norm max_i |v_i|) for the neighbour mean;
            either makes the layer a contraction, hence a bijection.
        strength: pair (and one-body) amplitude in units of the bound that makes every layer a
            contraction (default 1); above 1 the map is a bijection only where ``det_sign`` stays
            +1 (see the module docstring).
        species_rotation: ``None`` (default) or a fixed angle ``t``: the orthogonal map ``R_t``
            applied after the layers (open variant, both species present), see ``_rotate``.
        one_body: whether the open variant has the one-body term ``b`` (default True).
        n_sectors: number of symmetry sectors the map is conditioned on (default 1: one map).
            With ``n_sectors = K`` every pair network gets a learned first-layer bias per sector
            and the maps take ``sector`` (an int in [0, K)): K bijections sharing their weights.
            ``U = ⊕_s U_s`` is unitary (and the entropy of the density matrix stays
            ``-Σ p ln p``) only if each ``U_s`` maps its sector's base states into a subspace
            orthogonal to the other sectors', e.g. sectors of a conserved quantity that every
            ``U_s`` conserves. Choosing such labels is the caller's job (the quantum dot's
            1 up + 1 down uses the relative |m| with pair terms only, see its builder).
        sector_features: 0 (default), or the length F of a real label vector that conditions
            the map instead of an integer sector: the maps take ``sector`` of shape (F,), and
            every pair network's first layer gets the learned bias ``sector @ W`` (W zero at
            init). The same caveat as for ``n_sectors``: the labels must be conserved by every
            map (the electron gas uses its base state's total momentum, which any
            translation-invariant map conserves).
        cusp_slopes: ``None`` (default) or one slope ``beta_s >= 0`` per sector (open variant):
            a fixed first layer moves every opposite-spin pair by
            ``±(beta/2) f(|D|) D``, ``f(r) = r / (1 + r/l_cusp)``, so the pair distance is scaled
            by ``1 + beta r + O(r^2)``, and the learned layers lose their ``|D|`` feature (they
            become smooth in ``|D|^2``). A smooth map after it keeps the ratio ``G'(0)/G(0) = beta``
            of the total radial scaling ``G``, so the linear term of ``ln psi`` at coalescence is
            fixed by ``beta`` alone: the electron-electron cusp is exact for every parameter value
            (e.g. ``2 lambda / ((2m+1)(2m+3))`` for relative |m| in 2D, where ``1/2 ln|J|``
            contributes ``3/2 beta`` and the orbital ``r^m`` another ``m beta``). ``l_cusp`` keeps
            the layer a contraction: ``contraction / (2 (n - 1) max beta)``.
        neighbour_range: ``None`` (default) or a length ``l`` (periodic only): every learned
            layer moves a particle by the weighted mean of its pair displacements, weights
            ``exp(-distance/l)``, a contraction whose largest push does not shrink with n (see
            the module docstring).
        environment: 0 (default) or a number H of environment channels (periodic pair sums
            only): each electron's pair amplitudes also see ``h_i``, the mean over its partners
            of H bounded functions of the pair features, so the push on i by j depends on where
            all the others are (a three-body backflow whose Jacobian keeps the pair sum's block
            structure; see the module docstring for why it stays a bijection).
        pair_cusps: periodic only, default 0 (none): lambda > 0 adds a fixed first layer
            that makes the cusps of the pair interaction lambda/r exact, Kato's slopes for
            opposite and same spins (see the module docstring); it has no parameters and stays
            a contraction.
        axis_amplitudes: periodic layers only, default True: one learned amplitude per Cartesian
            axis of each pair push (``eta_a(D) v_a(D)``) instead of one for all axes (``eta(D)
            v(D)``, the form before 2026-12, whose parameters have one network output).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> bf = Backflow(n_up=2, n_down=1, dim=2)
        >>> params = bf.init(jax.random.PRNGKey(0))
        >>> z, logdet = bf.forward_and_log_det(params, jnp.ones((3, 2)))
        >>> float(logdet)
        0.0
    """

    n_up: int
    n_down: int
    dim: int
    kind: str = "open"
    box_length: float | None = None
    length_scale: float = 1.0
    hidden: tuple[int, ...] = (16,)
    n_layers: int = 1
    contraction: float = 0.9
    cusp_scale: float = 0.125
    species_rotation: float | None = None
    one_body: bool = True
    n_sectors: int = 1
    sector_features: int = 0
    cusp_slopes: tuple[float, ...] | None = None
    strength: float = 1.0
    neighbour_range: float | None = None
    environment: int = 0
    axis_amplitudes: bool = True
    pair_cusps: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Backflow.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.kind == "periodic" and not (self.box_length and self.box_length > 0):
            raise ValueError("Backflow.box_length must be > 0 for kind='periodic'")
        if not 0.0 < self.contraction < 1.0:
            raise ValueError(
                f"Backflow.contraction must be in (0, 1) for the map to be a bijection, "
                f"got {self.contraction}"
            )
        if self.n_up < 0 or self.n_down < 0 or self.n_up + self.n_down < 1:
            raise ValueError("Backflow needs n_up, n_down >= 0 and at least one particle")
        if self.n_layers < 0:
            raise ValueError("Backflow.n_layers must be >= 0")
        if self.n_sectors < 1:
            raise ValueError(f"Backflow.n_sectors must be >= 1, got {self.n_sectors}")
        if self.sector_features < 0 or (self.sector_features and self.n_sectors > 1):
            raise ValueError(f"Backflow.sector_features must be >= 0 and 0 with n_sectors > 1, "
                             f"got {self.sector_features}")
        if not self.strength > 0:
            raise ValueError(f"Backflow.strength must be > 0, got {self.strength}")
        if self.neighbour_range is not None and (self.kind != "periodic"
                                                 or not self.neighbour_range > 0
                                                 or self.n_particles < 2):
            raise ValueError(f"Backflow.neighbour_range must be > 0 with kind='periodic' and at "
                             f"least 2 particles, got {self.neighbour_range}")
        if self.environment < 0 or (self.environment and (self.kind != "periodic"
                                                            or self.neighbour_range is not None
                                                            or self.n_particles < 2)):
            raise ValueError(f"Backflow.environment must be 0, or > 0 with kind='periodic', "
                             f"pair-sum layers (no neighbour_range) and at least 2 particles, "
                             f"got {self.environment}")
        if self.cusp_slopes is not None:
            slopes = tuple(float(b) for b in self.cusp_slopes)
            if self.kind != "open" or len(slopes) != self.n_sectors or min(slopes) < 0:
                raise ValueError(f"Backflow.cusp_slopes must be {self.n_sectors} value(s) >= 0 "
                                 f"(one per sector) with kind='open', got {self.cusp_slopes}")
            object.__setattr__(self, "cusp_slopes", slopes)
        if self.pair_cusps < 0 or (self.pair_cusps and (self.kind != "periodic"
                                                         or self.n_particles < 2)):
            raise ValueError(f"Backflow.pair_cusps must be 0, or > 0 with kind='periodic' and at "
                             f"least 2 particles (the open variant takes cusp_slopes), got "
                             f"{self.pair_cusps}")
        if self.species_rotation is not None and (self.kind != "open" or not self.n_up
                                                  or not self.n_down):
            raise ValueError("Backflow.species_rotation needs kind='open' and both spin species "
                             "(a rotation of the species means is not periodic)")

    # ---- static structure -------------------------------------------------------------------
    @property
    def n_particles(self) -> int:
        return self.n_up + self.n_down

    @property
    def _spin(self) -> np.ndarray:
        return np.array([1.0] * self.n_up + [0.0] * self.n_down)

    @property
    def _has_one_body(self) -> bool:
        return self.kind == "open" and self.one_body

    @property
    def _n_pair_features(self) -> int:
        if self.kind == "open":
            return 3 if self.cusp_slopes is not None else 4
        return 2 * self.dim + 1

    @property
    def _eta_outputs(self) -> int:
        """Network outputs of a pair amplitude: d per-axis amplitudes, or one."""
        return self.dim if self.kind == "periodic" and self.axis_amplitudes else 1

    @property
    def _cusp_length(self) -> float:
        """l_cusp: each opposite-spin pair block of the cusp layer has norm <= beta l_cusp (since
        f + r f' <= 2 l), and 2 (n - 1) of them per block row stay within ``contraction``."""
        top = max(self.cusp_slopes or (0.0,))
        n = self.n_particles
        return self.contraction / (2 * (n - 1) * top) if top > 0 and n > 1 else 1.0

    @property
    def _kato_slopes(self) -> np.ndarray:
        """beta of the periodic exact-cusp layer for (opposite, same) spins: the pair scaling
        whose log-det (and, same spins, determinant) gives Kato's slopes lambda/(d -+ 1)."""
        d = self.dim
        return self.pair_cusps * np.array([2.0 / ((d + 1) * (d - 1)), 2.0 / ((d + 1) * (d + 3))])

    @functools.cached_property
    def _periodic_cusp_depths(self) -> tuple[float, np.ndarray]:
        """(a, b) of the periodic exact-cusp layer: its range a and the depths b_s = beta_s a /
        (d + beta_s a) for (opposite, same) spins, a the largest range at which every block row
        sum, sum_j b_ij, stays <= contraction (bisection: the sum grows with a)."""
        beta = self._kato_slopes
        counts = [(self.n_down, self.n_up - 1), (self.n_up, self.n_down - 1)]
        rows = [c for c, own in zip(counts, (self.n_up, self.n_down)) if own]

        def largest_row(a):
            b = beta * a / (self.dim + beta * a)
            return max(b[0] * other + b[1] * same for other, same in rows)

        lo, hi = 0.0, 1.0
        while largest_row(hi) < self.contraction:
            hi *= 2.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if largest_row(mid) < self.contraction else (lo, mid)
        return lo, beta * lo / (self.dim + beta * lo)

    @property
    def _mean_scale(self) -> float:
        """1/kappa of the neighbour-mean layers: the block row sums stay <= contraction."""
        width = self._mean_width
        lipschitz = 1.0 + 2 * np.pi * width / self.box_length
        return self.strength * self.contraction / (2.0 * (lipschitz + width
                                                          / self.neighbour_range))

    @property
    def _mean_width(self) -> float:
        """B: the bound on |w| (the push direction saturates at the range l, the box allowing)."""
        return min(self.neighbour_range, np.sqrt(self.dim) * self.box_length / (2 * np.pi))

    @property
    def _amplitude(self) -> float:
        """Largest |eta| such that the displacement Jacobian has spectral norm <= contraction.

        Per block row/column: 2(n-1) pair blocks of norm <= k*a, plus (open) one block <= 3a.
        """
        n = self.n_particles
        if self._has_one_body:
            bound = self.contraction / (3.0 * (2 * (n - 1) + 1))
        elif n == 1:
            return 0.0
        elif self.kind == "open":  # pair terms only
            bound = self.contraction / (3.0 * 2 * (n - 1))
        else:
            if self._eta_outputs > 1:  # per-axis: 2 a per pair block, 3 a with the environment
                per_pair = 3.0 if self.environment else 2.0
            else:  # the environment adds sqrt(d) a to each pair block (module docstring)
                per_pair = 1.0 + (2.0 if self.environment else 1.0) * np.sqrt(self.dim)
            bound = self.contraction / (2 * (n - 1) * per_pair)
        return self.strength * bound

    # ---- parameters -------------------------------------------------------------------------
    def init(self, key: jax.Array) -> Params:
        """Parameters at which the flow is exactly the identity (zero last layers)."""
        layers = []
        for k in jax.random.split(key, self.n_layers):
            k_pair, k_one = jax.random.split(k)
            layer = {"pair": _init_mlp(k_pair, [self._n_pair_features + self.environment,
                                                *self.hidden, self._eta_outputs])}
            if self.environment:
                # random last layer too: h informs the pair network from the first step, and the
                # flow is still the identity (the pair network's last layer is zero)
                layer["env"] = _init_mlp(k_one, [self._n_pair_features, *self.hidden,
                                                 self.environment], zero_last=False)
            if self._has_one_body:
                layer["one"] = _init_mlp(k_one, [3, *self.hidden, 1])
            width = (self.hidden or (1,))[0]
            if self.n_sectors > 1:
                layer["sector_bias"] = jnp.zeros((self.n_sectors, width))
            if self.sector_features:
                layer["sector_weight"] = jnp.zeros((self.sector_features, width))
            layers.append(layer)
        return {"layers": layers}

    # ---- species rotation -------------------------------------------------------------------
    def _rotate(self, x: jax.Array, sign: float = 1.0) -> jax.Array:
        """R_t x: rotate the normalised species sums u_s = sum_{i in s} x_i / sqrt(N_s) into each
        other by the angle t (per Cartesian component), leave the rest of x unchanged.

        ``e_up``, ``e_down`` (1/sqrt(N_s) on the rows of species s) are orthonormal and invariant
        under permutations within a species, so R_t is orthogonal (ln|det| = 0, |x| preserved),
        commutes with same-spin permutations, and is the identity at t = 0. Why: the layers move
        both electrons of a pair by opposite amounts (the pair term) or each by a function of its
        own position, so they cannot turn a product of one-electron orbitals of x_up and x_down into
        the exchange-(anti)symmetric combinations that are the eigenstates (for 1 up + 1 down in a
        harmonic trap at t = pi/4 the base states become centre-of-mass x relative oscillator
        states, which the interaction does not mix; without it an excited product state is stuck
        at the mean energy of its singlet and triplet components). The angle is fixed, not learned:
        as a parameter it random-walked far from pi/4 under the noise of the gradient at T = 0.5.
        """
        if self.species_rotation is None:
            return x
        t = sign * self.species_rotation
        up = jnp.asarray(self._spin, x.dtype)[:, None]
        down = 1.0 - up
        u_up = jnp.sum(up * x, axis=0) / np.sqrt(self.n_up)
        u_down = jnp.sum(down * x, axis=0) / np.sqrt(self.n_down)
        c, s = np.cos(t) - 1.0, np.sin(t)
        return (x + up * (c * u_up - s * u_down) / np.sqrt(self.n_up)
                + down * (c * u_down + s * u_up) / np.sqrt(self.n_down))

    # ---- one layer ----------------------------------------------------------------------------
    def _pair_displacement(self, mlp, delta: jax.Array, aux) -> jax.Array:
        """eta(delta) v(delta) for one pair; delta has shape (d,), aux = (same_spin, bias)."""
        same_spin, bias = aux
        a = self._amplitude
        if self.kind == "open":
            r2 = jnp.sum((delta / self.length_scale) ** 2)
            # cusp feature rho/(1+rho), rho = |D|/l_c: linear in |D| at coalescence (eps only
            # keeps the masked self-pair D = 0 free of 0/0 in its derivatives)
            smooth = [jnp.log1p(r2), 1.0 / (1.0 + r2)]
            if self.cusp_slopes is None:
                rho = jnp.sqrt(r2 + _CUSP_EPS) / self.cusp_scale
                smooth.append(rho / (1.0 + rho))
            feats = jnp.stack(smooth + [same_spin])
            return a * _bounded_mlp(mlp, feats, bias) * delta
        return self._periodic_push(mlp, delta, aux)

    def _periodic_push(self, mlp, delta: jax.Array, aux, env: jax.Array | None = None
                       ) -> jax.Array:
        """a eta v(delta) of one periodic pair-sum pair, v = (L / 2 pi) sin(2 pi delta / L)
        (eta per axis or one for all, ``axis_amplitudes``)."""
        return (self._amplitude * self.periodic_eta(mlp, delta, aux, env)
                * (self.box_length / (2 * np.pi)) * jnp.sin((2 * np.pi / self.box_length) * delta))

    def periodic_eta(self, mlp, delta: jax.Array, aux, env: jax.Array | None = None
                     ) -> jax.Array:
        """The learned amplitude eta in (-1, 1) of one pair of a periodic layer (pair sum or
        neighbour mean), before the layer's bound scales it: shape (d,) with
        ``axis_amplitudes``, else a scalar; aux = (same_spin, bias); ``env``: the moved
        electron's environment h_i (environment layers only, see ``environment_of``)."""
        same_spin, bias = aux
        angle = (2 * np.pi / self.box_length) * delta
        feats = [jnp.sin(angle), jnp.cos(angle), same_spin[None]]
        eta = _bounded_net(mlp, jnp.concatenate(feats + ([] if env is None else [env])), bias)
        return eta if self._eta_outputs > 1 else eta[..., 0]

    def environment_of(self, layer, x: jax.Array) -> jax.Array:
        """h_i, shape (n, H): each electron's environment as the environment ``layer`` (one entry
        of ``params["layers"]``) sees it at the configuration ``x`` of shape (n, d)."""
        delta, same, off_diag = self._pair_geometry(x)
        return self._environment(layer["env"], delta, (same, None), off_diag, False)[0]

    def _environment(self, mlp, delta: jax.Array, aux, off_diag: jax.Array,
                     with_jacobian: bool) -> tuple[jax.Array, jax.Array | None]:
        """(h, dh_i/dD_ik): h_i = sum_{k != i} phi(D_ik) / (n - 1), shape (n, H), and its
        derivatives by the separations, shape (n, n, H, d) (None without the Jacobian)."""
        n = delta.shape[0]
        both = (None, 0, (0, None))
        fn = _value_and_jacfwd(self._environment_feature) if with_jacobian \
            else self._environment_feature
        phi = jax.vmap(jax.vmap(fn, both), both)(mlp, delta, aux)
        value = (phi[0] if with_jacobian else phi) * off_diag[..., None]
        h = jnp.sum(value, axis=1) / (n - 1)
        return h, (phi[1] * off_diag[..., None, None] / (n - 1) if with_jacobian else None)

    def _environment_feature(self, mlp, delta: jax.Array, aux) -> jax.Array:
        """phi(delta; s) in (-1, 1)^H: what one partner contributes to an electron's environment."""
        same_spin, _ = aux
        angle = (2 * np.pi / self.box_length) * delta
        return _bounded_net(mlp, jnp.concatenate([jnp.sin(angle), jnp.cos(angle), same_spin[None]]))

    def _environment_pair(self, mlp, delta_and_h: jax.Array, aux) -> jax.Array:
        """eta(delta, h_i) v(delta) for one pair; the input is (delta, h_i) in one vector so one
        forward-mode pass gives both derivatives."""
        return self._periodic_push(mlp, delta_and_h[:self.dim], aux, delta_and_h[self.dim:])

    def _weighted_pair(self, mlp, delta: jax.Array, aux) -> jax.Array:
        """(g w, g) for one pair of a neighbour-mean layer, shape (d + 1,)."""
        L, ell = self.box_length, self.neighbour_range
        y = (L / (2 * np.pi)) * jnp.sin((2 * np.pi / L) * delta)
        width = self._mean_width
        w = (self.periodic_eta(mlp, delta, aux) * y
             * jax.lax.rsqrt(1.0 + jnp.sum(y**2) / width**2))
        # a smooth periodic distance with |grad| <= 1; the ell/2 floor keeps g smooth at D = 0
        half = (L / np.pi) * jnp.sin((np.pi / L) * delta)
        g = jnp.exp(-jnp.sqrt(jnp.sum(half**2) + (0.5 * ell) ** 2) / ell)
        return jnp.concatenate([g * w, g[None]])

    def _cusp_displacement(self, beta, delta: jax.Array, aux) -> jax.Array:
        """Open: (beta/2) f(|D|) D for an opposite-spin pair, zero for a same-spin one.
        Periodic (``beta`` then holds the depths b for opposite and same spins): (1/2) w(r)
        v(D), w = -b_s/(1 + r/a)^d."""
        same_spin, _ = aux
        if self.kind == "periodic":
            L, a = self.box_length, self._periodic_cusp_depths[0]
            angle = (2 * np.pi / L) * delta
            r = _periodic_distance(angle, L, _EXACT_CUSP_EPS * (np.pi * a / L) ** 2)
            depth = beta[0] + (beta[1] - beta[0]) * same_spin
            w = -depth / (1.0 + r / a) ** self.dim
            return 0.5 * w * (L / (2 * np.pi)) * jnp.sin(angle)
        r = jnp.sqrt(jnp.sum(delta**2) + _EXACT_CUSP_EPS * self.length_scale**2)
        f = r / (1.0 + r / self._cusp_length)
        return 0.5 * beta * (1.0 - same_spin) * f * delta

    def _one_body_displacement(self, mlp, x: jax.Array, spin: jax.Array) -> jax.Array:
        r2 = jnp.sum((x / self.length_scale) ** 2)
        feats = jnp.stack([jnp.log1p(r2), 1.0 / (1.0 + r2), spin])
        return self._amplitude * _bounded_mlp(mlp, feats) * x

    @property
    def conditioned(self) -> bool:
        """Whether the maps take a ``sector`` (an int or a label vector)."""
        return self.n_sectors > 1 or self.sector_features > 0

    def _check_sector(self, sector) -> None:
        if self.conditioned and sector is None:
            raise ValueError(f"this Backflow has n_sectors = {self.n_sectors}, sector_features "
                             f"= {self.sector_features}: pass sector")

    def _cusp_layer(self, sector):
        """The fixed cusp layer as a layer dict for ``_layer`` (None without cusp slopes)."""
        if self.pair_cusps:
            return {"pair": jnp.asarray(self._periodic_cusp_depths[1]), "cusp": True}
        if self.cusp_slopes is None:
            return None
        beta = jnp.asarray(self.cusp_slopes)[0 if sector is None else sector]
        return {"pair": beta, "cusp": True}

    def _pair_geometry(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(delta, same, off_diag): delta_ij = x_i - x_j (n, n, d), same-spin and j != i masks."""
        n = x.shape[0]
        spin = jnp.asarray(self._spin, dtype=x.dtype)
        same = (spin[:, None] == spin[None, :]).astype(x.dtype)
        off_diag = jnp.asarray(1.0 - np.eye(n), dtype=x.dtype)
        return x[:, None, :] - x[None, :, :], same, off_diag

    def _layer(self, layer, x: jax.Array, with_jacobian: bool, sector=None):
        n, d = x.shape
        cusp = "cusp" in layer
        pair_fn = self._cusp_displacement if cusp else self._pair_displacement
        one_body = self._has_one_body and not cusp
        bias = None
        if self.n_sectors > 1 and not cusp:  # the public maps checked that sector is given
            bias = layer["sector_bias"][sector]
        elif self.sector_features and not cusp:
            bias = jnp.asarray(sector, x.dtype) @ layer["sector_weight"]
        delta, same, off_diag = self._pair_geometry(x)
        spin = jnp.asarray(self._spin, dtype=x.dtype)  # the one-body term's feature
        if self.neighbour_range is not None and not cusp:
            return self._mean_layer(layer["pair"], x, delta, (same, bias), off_diag,
                                    with_jacobian)

        if "env" in layer:
            return self._environment_layer(layer, x, delta, (same, bias), off_diag,
                                           with_jacobian)

        if not with_jacobian:
            pair = jax.vmap(jax.vmap(pair_fn, (None, 0, (0, None))), (None, 0, (0, None)))
            z = x + jnp.sum(pair(layer["pair"], delta, (same, bias)) * off_diag[..., None], axis=1)
            if one_body:
                one = jax.vmap(self._one_body_displacement, (None, 0, 0))
                z = z + one(layer["one"], x, spin)
            return z, None

        # values and (d, d) Jacobians of the pair / one-body displacements in one forward pass
        pair = jax.vmap(jax.vmap(_value_and_jacfwd(pair_fn), (None, 0, (0, None))),
                        (None, 0, (0, None)))
        u, U = pair(layer["pair"], delta, (same, bias))  # (n, n, d), (n, n, d, d)
        u, U = u * off_diag[..., None], U * off_diag[..., None, None]  # no self-pair
        z = x + jnp.sum(u, axis=1)
        # dG/dX block (i, k) = delta_ik (sum_j U_ij + B_i) - U_ik, U_ij = du/dD at D = x_i - x_j
        diag = jnp.eye(d, dtype=x.dtype) + jnp.sum(U, axis=1)  # (n, d, d)
        if one_body:
            one = jax.vmap(_value_and_jacfwd(self._one_body_displacement), (None, 0, 0))
            b, B = one(layer["one"], x, spin)
            z, diag = z + b, diag + B
        # det > 0 by construction at strength <= 1 (contraction); above, det_sign checks it
        return z, _pair_structured_slogdet(diag, U)

    def _environment_layer(self, layer, x: jax.Array, delta: jax.Array, aux,
                           off_diag: jax.Array, with_jacobian: bool):
        """One pair-sum layer whose amplitudes see the environment
        h_i = sum_{k != i} phi(x_i - x_k) / (n - 1):  z_i = x_i + sum_j eta(x_i - x_j, h_i) v_ij."""
        n, d = x.shape
        both = (None, 0, (0, None))
        h, dh = self._environment(layer["env"], delta, aux, off_diag, with_jacobian)
        inputs = jnp.concatenate([delta, jnp.broadcast_to(h[:, None], (n, n, h.shape[-1]))], -1)
        pair_fn = _value_and_jacfwd(self._environment_pair) if with_jacobian \
            else self._environment_pair
        out = jax.vmap(jax.vmap(pair_fn, both), both)(layer["pair"], inputs, aux)
        u = (out[0] if with_jacobian else out) * off_diag[..., None]
        z = x + jnp.sum(u, axis=1)
        if not with_jacobian:
            return z, None
        # z_i depends on x only through D_ik = x_i - x_k, directly and through h_i, so the
        # Jacobian keeps the pair structure with dz_i/dD_ik = du_ik/dD + (sum_j du_ij/dh) dh_i/dD_ik
        jac = out[1] * off_diag[..., None, None]  # (n, n, d, d + H)
        through_h = jnp.sum(jac[..., d:], axis=1)  # (n, d, H)
        U = jac[..., :d] + jnp.einsum("idh,ikhe->ikde", through_h, dh)
        diag = jnp.eye(d, dtype=x.dtype) + jnp.sum(U, axis=1)
        return z, _pair_structured_slogdet(diag, U)

    def _mean_layer(self, mlp, x: jax.Array, delta: jax.Array, aux, off_diag: jax.Array,
                    with_jacobian: bool):
        """One neighbour-mean layer: z_i = x_i + (1/kappa) sum_j g_ij w_ij / sum_j g_ij."""
        d = x.shape[1]
        fn = _value_and_jacfwd(self._weighted_pair) if with_jacobian else self._weighted_pair
        out = jax.vmap(jax.vmap(fn, (None, 0, (0, None))), (None, 0, (0, None)))(mlp, delta, aux)
        u = (out[0] if with_jacobian else out) * off_diag[..., None]  # (n, n, d + 1): (g w, g)
        mass = jnp.sum(u[..., d], axis=1)  # (n,): m_i
        push = self._mean_scale * jnp.sum(u[..., :d], axis=1) / mass[:, None]  # (n, d)
        if not with_jacobian:
            return x + push, None
        U = out[1] * off_diag[..., None, None]  # (n, n, d + 1, d)
        # d push_i / d D_ij = (scale d(g w)_ij - push_i (x) dg_ij) / m_i
        P = (self._mean_scale * U[..., :d, :]
             - push[:, None, :, None] * U[..., d:, :]) / mass[:, None, None, None]
        diag = jnp.eye(d, dtype=x.dtype) + jnp.sum(P, axis=1)
        return x + push, _pair_structured_slogdet(diag, P)

    # ---- public maps --------------------------------------------------------------------------
    def forward(self, params: Params, x: jax.Array, sector=None) -> jax.Array:
        """Z(X) for one sample; x has shape (n, d); ``sector`` only with ``n_sectors > 1``."""
        self._check_sector(sector)
        for layer in self._all_layers(params, sector):
            x, _ = self._layer(layer, x, with_jacobian=False, sector=sector)
        return self._rotate(x)

    def _all_layers(self, params: Params, sector) -> list:
        cusp = self._cusp_layer(sector)
        return ([cusp] if cusp is not None else []) + list(params["layers"])

    def forward_and_log_det(self, params: Params, x: jax.Array, sector=None
                            ) -> tuple[jax.Array, jax.Array]:
        """(Z, ln|det dZ/dX|) for one sample; the Jacobian is the full (n d, n d) one."""
        self._check_shape(x)
        self._check_sector(sector)
        logdet = jnp.zeros((), dtype=x.dtype)
        for layer in self._all_layers(params, sector):
            x, (ld, _) = self._layer(layer, x, with_jacobian=True, sector=sector)
            logdet = logdet + ld
        return self._rotate(x), logdet  # the rotation is orthogonal: no log-det

    def det_sign(self, params: Params, x: jax.Array, sector=None) -> jax.Array:
        """The sign of ``det dZ/dX`` at one sample (+1, or -1 / 0 where the map folds)."""
        self._check_shape(x)
        self._check_sector(sector)
        sign = jnp.ones((), dtype=x.dtype)
        for layer in self._all_layers(params, sector):
            x, (_, s) = self._layer(layer, x, with_jacobian=True, sector=sector)
            sign = sign * s
        return sign

    def inverse(self, params: Params, z: jax.Array, n_iter: int = 60, sector=None) -> jax.Array:
        """X(Z) by the fixed-point iteration x <- z - G(x), layer by layer (error ~ c^n_iter).

        Not needed by the square-root flow; it exists to demonstrate and test bijectivity. It
        converges for ``strength`` <= 1 (each layer a contraction), not necessarily above.
        """
        self._check_shape(z)
        self._check_sector(sector)
        z = self._rotate(z, sign=-1.0)
        for layer in reversed(self._all_layers(params, sector)):
            target = z

            def body(_, x, layer=layer, target=target):
                gx = self._layer(layer, x, with_jacobian=False, sector=sector)[0] - x
                return target - gx

            z = jax.lax.fori_loop(0, n_iter, body, target)
        return z

    def _check_shape(self, x: jax.Array) -> None:
        if x.shape != (self.n_particles, self.dim):
            raise ValueError(
                f"Backflow expects one sample of shape {(self.n_particles, self.dim)}, "
                f"got {x.shape}"
            )
