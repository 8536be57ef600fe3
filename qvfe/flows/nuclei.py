"""Electron–nucleus flow: a bijection of the electron coordinates that depends on nuclear positions.

One job: for nuclei (protons) at ``s`` of shape ``(P, d)``, map electron coordinates ``x`` of shape
``(n, d)`` by one radial-type step per nucleus, in the order of the nuclei,

    x_i <- x_i + eta(x_i - s_I) v(x_i - s_I),   I = 1 .. P,

and return ``ln|det dZ/dX|`` exactly. It is the part of the square-root flow that lets the electrons
of hydrogen follow the protons (DESIGN.md §3): electrons gather near a proton, and through the
cusp feature ``ln psi`` can acquire the ``-|x - s|`` electron–proton cusp that plane waves or
Gaussians lack. Every electron moves according to its own position only, so each step's Jacobian is
block diagonal and ``ln|det| = sum_I sum_i ln det(I + B_iI)`` with ``(d, d)`` blocks — cheap, and
cheap for the forward Laplacian. The map is equivariant under permutations of the electrons.

Why a composition rather than the sum ``x_i + sum_I eta(x_i - s_I) v(...)``: bijectivity of the
sum by a contraction bound needs ``a <= contraction / (k P)`` (every nucleus may sit next to the
electron in the worst case), which at P = 16 left each proton a displacement too weak to gather
any charge (a dense-hydrogen run stayed at the uniform electron density's potential energy).
Each step of the composition is a bijection on its own, so each nucleus gets the full amplitude
``a = contraction / k``. The price: where the ranges of two nuclei overlap, the result depends on
their order, so the map is not symmetric under permutations of the nuclei. That costs no
correctness: the free-energy bound holds for any electronic state conditioned on S, and the
protons' density q(S) is itself permutation invariant.

Features of ``D = x_i - s_I``, as in :mod:`qvfe.flows.backflow`:

* ``open`` (molecules in free space): ``v(D) = D/(1 + |D/l|^2)``, which decays beyond ``l`` so that
  a distant nucleus leaves an electron alone (with ``v = D`` every nucleus would rescale all of
  space about itself); features ``ln(1 + |D/l|^2)``, ``1/(1 + |D/l|^2)`` and the cusp feature
  ``rho/(1 + rho)``, ``rho = |D|/c``. Then ``|grad v| <= 9/8`` and ``|v| |grad features| < 0.7``,
  so k = 3 is safe.
* ``periodic`` (box of side L): ``v(D) = w (L/2 pi) sin(2 pi D/L)`` with the periodic distance
  ``r_p = (L/pi) |sin(pi D/L)|`` (equal to ``|D|`` near 0) in the envelope ``w = 1/(1 + (r_p/l)^2)``,
  so that, as in the open kind, a nucleus moves the electrons near it rather than the whole box;
  features ``sin, cos(2 pi D/L)`` and the cusp feature of ``r_p``. With ``|grad r_p| = |u|/r_p <= 1``
  and ``|u| <= r_p`` for ``u = (L/2 pi) sin(2 pi D/L)``: ``|grad v| <= 1 + 1/2``, and
  ``|v| |grad features| <= sqrt(d) + 1/4``, so ``k = 7/4 + sqrt(d)``. Moving a nucleus or an electron
  by ``L e_a`` changes nothing but that electron's ``z`` by ``L e_a``.

Bijectivity for every parameter value: the MLP is 1-Lipschitz with a tanh output (see
``qvfe.flows.backflow``), so each step's displacement has a Jacobian of spectral norm ``<= k a``;
with ``a = contraction / k`` each step is a contraction perturbation of the identity: a bijection
of R^d (of the torus in the periodic case) with ``det(I + B) > 0``; compositions of bijections are
bijections.

Exact cusp (``cusp_charge = Z``): a learned cusp feature gives ``ln psi`` the slope ``-Z`` at a
nucleus only approximately (it must spend the network's Lipschitz budget on it), and what it misses
leaves a ``-Z/r`` divergence in the local energy. So a fixed first step moves every electron by the
sum over nuclei of ``h(r) v(D)``, ``h(r) = beta r / (1 + (r/l_c)^2)^2``, ``beta = -Z/2``: near a
nucleus ``z - s = D (1 + beta r + O(r^2))``, a radial scaling whose Jacobian gives
``1/2 ln|J| = 2 beta r`` (3D: ``G^2 (G + r G')`` with ``G = 1 + beta r``), the slope ``-Z`` of the
cusp. A sum, not a composition, which would move the later nuclei's kinks by the earlier steps'
displacement; the other nuclei's terms, smooth there, only tilt the kink by their Jacobian (about
1 % for H2 with ``l_c = 0.5``, leaving ``0.01/r`` of the ``1/r`` in the local energy). Why not a
compactly supported ``h``, which would make the cusp exact: a map that is the identity outside a
ball preserves the ball's volume, so ``ln|J|`` must overshoot above 0 before the edge, and that
wiggle raised the local energy's spread from 0.6 to 2 Ha at H2's start (and kept it there). The
learned steps drop the cusp feature: smooth in ``|D|^2``, they add no term linear in ``r`` (a
smooth map after the radial kink keeps its linear term), and neither must the orbitals: a smooth
basis (plane waves; Gaussians without the tight s functions that mimic a cusp at ``z = s``, which
the later maps move off the nucleus). Bound: with ``s = r/l_c``,
``|h| + r |h'| = |beta| l_c (s/(1 + s^2)^2 + s |1 - 3 s^2|/(1 + s^2)^3) <= |beta| l_c / 2``
(the maximum, at ``s = 1``), and with ``|v| <= r``, ``|grad v| <= 1`` each nucleus's block is at
most that in norm (triangle inequality, open and periodic alike), so the sum over ``P`` nuclei is
a contraction when ``l_c = min(cusp_scale, contraction / (|beta| P / 2))``. (Until 2026-12-06 the
bound read 0.45 |beta| l_c, which is false; the open kind's radial block stayed within the
contraction, 0.87 at worst, but for the periodic kind nothing on the page proved it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.flows.backflow import (_bounded_mlp, _init_mlp, _periodic_distance,
                                 _value_and_jacfwd)

__all__ = ["ElectronNucleusFlow"]

Params = Any  # {"layers": [mlp, ...]}; mlp = [(W, b), ...]
_CUSP_EPS = 1e-12
# |D|^2 regulariser of the exact cusp step (units of l_c^2): its Laplacian must follow 1/r down
# to r ~ 1e-5 l_c, as the exact electron-electron cusp of qvfe.flows.backflow
_EXACT_CUSP_EPS = 1e-20


@dataclass(frozen=True, eq=False)
class ElectronNucleusFlow:
    """Configuration; parameters live in the pytree returned by ``init`` (identity at init).

    Attributes:
        n_nuclei: number of nuclei P.
        dim: spatial dimension d.
        kind: ``"open"`` or ``"periodic"``.
        box_length: side L of the cubic box (periodic only).
        length_scale: range of a nucleus's displacement field (bohr).
        cusp_scale: range ``c`` of the cusp feature (bohr).
        hidden: widths of the hidden MLP layers.
        n_layers: stacked layers (each one a bijection; log-dets add).
        contraction: bound (< 1) on the spectral norm of each block ``B_i``.
        cusp_charge: ``None`` (default: a learned cusp feature) or the nuclear charge ``Z``: a
            fixed first step makes the electron-nucleus cusp exact (slope ``-Z`` of ``ln psi``)
            and the learned steps smooth, see the module docstring (3D only).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> flow = ElectronNucleusFlow(n_nuclei=2, dim=3)
        >>> params = flow.init(jax.random.PRNGKey(0))
        >>> z, logdet = flow.forward_and_log_det(params, jnp.ones((3, 3)), jnp.zeros((2, 3)))
        >>> float(logdet)
        0.0
    """

    n_nuclei: int
    dim: int = 3
    kind: str = "periodic"
    box_length: float | None = None
    length_scale: float = 1.0
    cusp_scale: float = 0.5
    hidden: tuple[int, ...] = (16,)
    n_layers: int = 1
    contraction: float = 0.9
    cusp_charge: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("open", "periodic"):
            raise ValueError(f"ElectronNucleusFlow.kind must be 'open' or 'periodic', "
                             f"got {self.kind!r}")
        if self.kind == "periodic" and not (self.box_length and self.box_length > 0):
            raise ValueError("ElectronNucleusFlow.box_length must be > 0 for kind='periodic'")
        if not 0.0 < self.contraction < 1.0:
            raise ValueError(f"ElectronNucleusFlow.contraction must be in (0, 1), "
                             f"got {self.contraction}")
        if self.n_nuclei < 1:
            raise ValueError("ElectronNucleusFlow.n_nuclei must be >= 1")
        if self.n_layers < 0:
            raise ValueError("ElectronNucleusFlow.n_layers must be >= 0")
        if not (self.cusp_scale > 0 and self.length_scale > 0):
            raise ValueError("ElectronNucleusFlow.cusp_scale and length_scale must be > 0")
        if self.cusp_charge is not None and not self.cusp_charge > 0:
            raise ValueError(f"ElectronNucleusFlow.cusp_charge must be > 0 (or None), "
                             f"got {self.cusp_charge}")
        if self.cusp_charge is not None and self.dim != 3:
            # the step's Jacobian gives 1/2 ln|J| the slope (d + 1) beta / 2, which is Kato's -Z
            # with beta = -Z/2 only in 3D (Kato's slope in d dimensions is -2Z/(d - 1))
            raise ValueError(f"ElectronNucleusFlow.cusp_charge needs dim = 3, got dim = "
                             f"{self.dim}")

    @property
    def _n_features(self) -> int:
        learned_cusp = int(self.cusp_charge is None)
        if self.kind == "periodic":
            return 2 * self.dim + learned_cusp
        return 2 + learned_cusp

    @property
    def _cusp_range(self) -> float:
        """l_c of the exact cusp step: P terms of norm <= |beta| l_c / 2 within contraction."""
        beta = 0.5 * self.cusp_charge
        return min(self.cusp_scale, self.contraction / (0.5 * beta * self.n_nuclei))

    @property
    def _amplitude(self) -> float:
        k = 3.0 if self.kind == "open" else 1.75 + np.sqrt(self.dim)
        return self.contraction / k

    def init(self, key: jax.Array) -> Params:
        keys = jax.random.split(key, self.n_layers)
        return {"layers": [_init_mlp(k, [self._n_features, *self.hidden, 1]) for k in keys]}

    def _displacement(self, mlp, delta: jax.Array, _aux=None) -> jax.Array:
        """eta(D) v(D) for one electron–nucleus pair; delta has shape (d,)."""
        a = self._amplitude
        if self.kind == "open":
            r2 = jnp.sum((delta / self.length_scale) ** 2)
            feats = [jnp.log1p(r2), 1.0 / (1.0 + r2)]
            if self.cusp_charge is None:
                rho = jnp.sqrt(jnp.sum(delta**2) + _CUSP_EPS) / self.cusp_scale
                feats.append(rho / (1.0 + rho))
            feats = jnp.stack(feats)
            return a * _bounded_mlp(mlp, feats) * delta / (1.0 + r2)
        L = self.box_length
        angle = (2 * np.pi / L) * delta
        r_p = _periodic_distance(angle, L, _CUSP_EPS)
        feats = [jnp.sin(angle), jnp.cos(angle)]
        if self.cusp_charge is None:
            rho = r_p / self.cusp_scale
            feats.append((rho / (1.0 + rho))[None])
        feats = jnp.concatenate(feats)
        envelope = 1.0 / (1.0 + (r_p / self.length_scale) ** 2)
        return a * _bounded_mlp(mlp, feats) * envelope * (L / (2 * np.pi)) * jnp.sin(angle)

    def _cusp_displacement(self, x_i: jax.Array, s: jax.Array) -> jax.Array:
        """sum_I h(r_iI) v(x_i - s_I) for one electron (the fixed exact-cusp step)."""
        l_c = self._cusp_range
        delta = x_i - s  # (P, d)
        if self.kind == "open":
            r = jnp.sqrt(jnp.sum(delta**2, axis=1) + _EXACT_CUSP_EPS * l_c**2)
            v = delta
        else:
            L = self.box_length
            angle = (2 * np.pi / L) * delta
            r = _periodic_distance(angle, L, _EXACT_CUSP_EPS * (np.pi * l_c / L) ** 2)
            v = (L / (2 * np.pi)) * jnp.sin(angle)
        h = -0.5 * self.cusp_charge * r / (1.0 + (r / l_c) ** 2) ** 2
        return jnp.sum(h[:, None] * v, axis=0)

    def _cusp_layer(self, x: jax.Array, s: jax.Array):
        u, U = jax.vmap(_value_and_jacfwd(lambda _, xi, s_: self._cusp_displacement(xi, s_)),
                        (None, 0, None))(None, x, s)
        _, ld = jnp.linalg.slogdet(jnp.eye(x.shape[1], dtype=x.dtype) + U)  # det > 0: bound
        return x + u, jnp.sum(ld)

    def _layer(self, mlp, x: jax.Array, s: jax.Array, with_log_det: bool = True):
        # lax.scan over the nuclei, not a Python loop: unrolled, the P steps (each differentiated
        # twice by folx and once more for the gradient) made the step's compilation grow with P,
        # to minutes at P = 32. folx can carry x through a scan because the scanned-over nuclei
        # are not functions of the electron coordinates it differentiates.
        step = jax.vmap(_value_and_jacfwd(self._displacement), (None, 0, None))
        eye = jnp.eye(x.shape[1], dtype=x.dtype)

        move = jax.vmap(self._displacement, (None, 0, None))

        def one_nucleus(carry, s_nucleus):
            x, logdet = carry
            if not with_log_det:
                return (x + move(mlp, x - s_nucleus, None), logdet), None
            u, U = step(mlp, x - s_nucleus, None)  # (n, d), (n, d, d)
            _, ld = jnp.linalg.slogdet(eye + U)  # det > 0 by construction
            return (x + u, logdet + jnp.sum(ld)), None

        # the first step outside the scan: folx needs the carry to depend on x when it enters
        # (and cannot trace a scan of length 0, hence none for a single nucleus)
        (x, logdet), _ = one_nucleus((x, jnp.zeros((), x.dtype)), s[0])
        if self.n_nuclei > 1:
            (x, logdet), _ = jax.lax.scan(one_nucleus, (x, logdet), s[1:])
        return x, logdet

    def forward_and_log_det(self, params: Params, x: jax.Array,
                            s: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(Z, ln|det dZ/dX|) for one sample: electrons x (n, d), nuclei s (P, d)."""
        x, logdet = self.cusp_step(x, s)
        z, ld = self.learned_steps(params, x, s)
        return z, logdet + ld

    def forward(self, params: Params, x: jax.Array, s: jax.Array) -> jax.Array:
        """Z for one sample, without the log-determinant (see ``OppositeSpinFlow.forward``)."""
        x, _ = self.cusp_step(x, s, with_log_det=False)
        return self.learned_steps(params, x, s, with_log_det=False)[0]

    def cusp_step(self, x: jax.Array, s: jax.Array, with_log_det: bool = True
                  ) -> tuple[jax.Array, jax.Array | None]:
        """The fixed exact-cusp step alone, (x, ln|det|) (x and 0 without ``cusp_charge``;
        no log-det without ``with_log_det``). The √flow puts its electron-electron cusp layer
        between it and ``learned_steps``: after it (a layer that moves the electrons first
        would shift its kinks off the protons), before them (their Jacobian would tilt the
        electron-electron kink)."""
        if s.shape != (self.n_nuclei, self.dim) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ElectronNucleusFlow expects x (n, {self.dim}) and s "
                             f"{(self.n_nuclei, self.dim)}, got {x.shape} and {s.shape}")
        if self.cusp_charge is None:
            return x, (jnp.zeros((), x.dtype) if with_log_det else None)
        if not with_log_det:
            return x + jax.vmap(self._cusp_displacement, (0, None))(x, s), None
        return self._cusp_layer(x, s)

    def learned_steps(self, params: Params, x: jax.Array, s: jax.Array,
                      with_log_det: bool = True) -> tuple[jax.Array, jax.Array | None]:
        """The learned steps alone, (Z, ln|det|) (no log-det without ``with_log_det``)."""
        logdet = jnp.zeros((), x.dtype) if with_log_det else None
        for mlp in params["layers"]:
            x, ld = self._layer(mlp, x, s, with_log_det=with_log_det)
            if with_log_det:
                logdet = logdet + ld
        return x, logdet

    def inverse(self, params: Params, z: jax.Array, s: jax.Array, n_iter: int = 400) -> jax.Array:
        """X(Z) by the fixed-point iteration x <- z - u(x), step by step backwards (tests only)."""
        for mlp in reversed(params["layers"]):
            for nucleus in reversed(range(self.n_nuclei)):
                target = z

                def body(_, x, mlp=mlp, target=target, nucleus=nucleus):
                    u = jax.vmap(self._displacement, (None, 0))(mlp, x - s[nucleus])
                    return target - u

                z = jax.lax.fori_loop(0, n_iter, body, target)
        if self.cusp_charge is not None:
            target = z
            step = jax.vmap(self._cusp_displacement, (0, None))
            z = jax.lax.fori_loop(0, n_iter, lambda _, x: target - step(x, s), target)
        return z
