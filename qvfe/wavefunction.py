"""ln psi_n(X) of the square-root flow and its local energy.

One job: for one sample, ``psi_n(X) = prod_sigma det[phi_{n_sigma j}(z_i)]_{i in sigma}
|det dZ/dX|^(1/2) / sqrt(N_up! N_down!)`` with ``Z = backflow(X)`` (DESIGN.md §3), and
``E_loc = -1/2 sum_i [lap_i ln psi + (grad_i ln psi)^2] + V(X)``.

Conventions
* ``x``: one sample, shape ``(n_up + n_down, d)``, spin-up rows first. Callers vmap over batches.
* ``occ_up``, ``occ_down``: int arrays of shapes ``(n_up,)``, ``(n_down,)`` indexing rows of the
  orbital table of the basis (a species with no particle passes an empty array). They are not
  bounds-checked (they are traced values under jit, and JAX clamps an index past the table to its
  last row): the occupation models only emit indices of the table.
* ``log_psi`` returns ``(re, im)``, two real scalars: ``re = ln|psi|`` and ``im = arg psi`` (0 or pi
  for real orbitals; for plane waves the phase is taken modulo 2 pi, which leaves every derivative
  unchanged). Real pairs keep folx, ``jax.grad`` and the covariance gradient
  ``2 Re E[(grad_theta ln psi)^* (E_loc - E)] = 2 E[grad re Re(E_loc - E) + grad im Im(E_loc - E)]``
  free of complex-differentiation conventions.
* ``local_energy`` returns a complex scalar: its real part is what the energy estimator averages;
  the imaginary part has zero mean under |psi|^2 (a useful check) and is kept for the gradient.

Geminal base state (``geminal=True``, ground-state option of closed shells, N_up = N_down = n):
the two determinants are replaced by one, ``det[G(z_i, z_{n+j})]_{i,j<n}`` with the pair orbital
``G(r, r') = sum_ab C_ab phi_a(r) phi_b(r')`` over the whole (real) orbital table, C symmetric (a
singlet): the antisymmetrised geminal power. ``C = P_n + Delta`` with ``P_n`` the projector on the
occupied orbitals of ``n`` and ``Delta`` learned (zero at init): at Delta = 0, ``det(Phi_up P_n
Phi_down^T) = det Phi_up[:, n] det Phi_down[:, n]``, the determinant state, exactly; for two
electrons the geminal spans the singlet space of the table (full configuration interaction in the
orbitals). By Cauchy-Binet, ``int |det G|^2 = (n!)^2 e_n(C^T C)`` (e_n: n-th elementary symmetric
polynomial of the eigenvalues), so dividing by ``sqrt(e_n)`` keeps the state normalised.
``fixed_geminal`` holds C fixed instead (e.g. the two-electron full CI of the table, from
``qvfe.physics.molecular_orbitals.pair_fci``): only the flows are learned.

Jastrow factor (``jastrow``, ``qvfe.jastrow``): ``psi`` is multiplied by ``J(X)``, a function of
the electrons' own coordinates with exact electron-electron cusps. It is not a change of variables:
``psi`` is then normalised only up to a constant, so it serves one base state at clamped nuclei
(the Slater–Jastrow(–backflow) ground state of quantum Monte Carlo), never a mixture of states.

Normalisation: with orthonormal orbitals each determinant integrates to ``N_sigma!``; the
``1/sqrt(N_up! N_down!)`` makes ``int |psi_n|^2 dX = 1`` exactly for any bijective backflow
(change of variables), which is the point of the square-root flow. Electrons of different spin are
distinguishable here (spin is a label on the rows), so ``psi`` is antisymmetric only under
exchange of two same-spin electrons; exchanging an up and a down electron gives a different
function, not a sign.

Kinetic energy: ``laplacian="folx"`` (default, production) uses ``folx.forward_laplacian``;
``laplacian="hessian"`` traces ``jacfwd(jacrev)`` (what ``jax.hessian`` is). On jax 0.10.2 a jitted,
vmapped ``jax.hessian`` can hang at large batch (DESIGN.md §3), so keep that path for small-batch
checks. ``laplacian="hutchinson"`` splits ln psi = ln<Z|n> + 1/2 ln|det dZ/dX|: folx for the base
state (it needs Z's first and second derivatives only), and for the flow's log-Jacobian its
exact gradient with Hutchinson's unbiased estimate of its Laplacian (a random v^T H v). The exact
Laplacian of that log-determinant needs the derivative of the (nd, nd) Jacobian along every
coordinate, three quarters or more of a backflow step (N = 33 in 3D: 17 of 18 s); the estimate
costs a few reverse and forward passes. The local energy stays unbiased (it is linear in the
Laplacian) and so do the gradients and the estimates built on it; what it adds is variance,
2 sum_{i != j} H_ij^2 per probe for the Hessian H of 1/2 ln|det|, small where the flow's
Jacobian is far from singular, and it is in the error bars like any other (N = 33 in 3D: 0.1 %
of the kinetic energy's variance over samples for a perturbed flow of strength 1, 14 % of E's for
a trained flow of strength 60, whose step it makes 4.5 times faster; README).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import folx
from folx.wrapped_functions import is_registered
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from qvfe.flows.backflow import Backflow
from qvfe.flows.collective import CollectiveFlow
from qvfe.flows.nuclei import ElectronNucleusFlow
from qvfe.flows.opposite_spin import OppositeSpinFlow
from qvfe.jastrow import PeriodicJastrow
from qvfe.physics.bands import ScreenedBands
from qvfe.physics.orbital_values import HarmonicBasis, PlaneWaveBasis

__all__ = ["SquareRootFlowWavefunction", "elementary_symmetric_of_gram"]

GEMINAL_MAX_PAIRS = 16
"""Largest n for the geminal: Newton's identities for e_n alternate in sign, and at n = 16 they
still hold e_n to ~1e-12 relative near the projector (C(16, 8) = 12870 cancels)."""
LAPLACIANS = ("folx", "hessian", "hutchinson")  # the kinetic_energy methods


def _register_folx_elementwise() -> None:
    """Give folx the elementwise rules it lacks for primitives of newer JAX.

    jax 0.11 differentiates ``tanh`` through ``lax.one_minus_square``, which folx 0.2.30 does not
    know: it then falls back to a dense Hessian of that op inside every forward Laplacian (it
    warns "one_minus_square not in registry"). The op is elementwise, so the same rule as folx's
    own ``tanh`` applies. A no-op where the primitive does not exist or folx knows it.
    """
    prim = getattr(jax.lax, "one_minus_square_p", None)
    if prim is not None and not is_registered(prim):
        folx.register_function(prim, folx.wrap_forward_laplacian(jax.lax.one_minus_square,
                                                                 in_axes=()))


def elementary_symmetric_of_gram(c: jax.Array, n: int) -> jax.Array:
    """e_n of the eigenvalues of ``c^T c``: the sum of the squared n x n minors of ``c``.

    By Newton's identities from the power sums tr((c^T c)^k), k <= n: smooth in ``c`` also where
    eigenvalues are degenerate (the projector, where eigenvalue derivatives are not), which an
    eigendecomposition would not be.
    """
    gram = c.T @ c
    power, sums = jnp.eye(gram.shape[0], dtype=gram.dtype), []
    for _ in range(n):
        power = power @ gram
        sums.append(jnp.trace(power))
    e = [jnp.ones((), gram.dtype)]
    for k in range(1, n + 1):
        e.append(sum((-1) ** (i - 1) * e[k - i] * sums[i - 1] for i in range(1, k + 1)) / k)
    return e[n]


Params = Any
_NO_LAYERS = {"layers": []}  # the parameters of the cusp layer's Backflow: it has none
Potential = Callable[[jax.Array], jax.Array]  # x (n, d) -> scalar


@dataclass(frozen=True, eq=False)
class SquareRootFlowWavefunction:
    """Slater determinants per spin, evaluated at backflowed coordinates, times |det dZ/dX|^(1/2).

    Attributes:
        basis: orbital table (``HarmonicBasis``, ``PlaneWaveBasis``, or hydrogen's
            ``ScreenedBands``, whose values take the band coefficients from the context).
        backflow: the bijection X -> Z; its ``n_up``, ``n_down``, ``dim`` define the particles.
        nuclei: optional electron-nucleus flow applied before the backflow; then every method
            takes the nuclear positions ``s`` (P, d) as one more argument (hydrogen).
        opposite_spin: optional opposite-spin flow applied after ``nuclei``, before the backflow
            (periodic boxes with both spins).
        collective: optional collective (density-wave) flow applied after ``opposite_spin``,
            before the backflow (periodic boxes; ``qvfe.flows.collective``).
        sector: optional ``(occ_up, occ_down) -> int`` giving the symmetry sector of a base state
            for a backflow with ``n_sectors > 1``, or its label vector for one with
            ``sector_features`` (see ``Backflow``: the sectors must be ones
            every sector's map conserves, or the states of different sectors are not orthogonal).
        geminal: a learned singlet geminal instead of the two determinants (module docstring);
            needs a real orbital table and ``n_up == n_down``. Only for one base state (the
            ground-state option): the dressed states of different ``n`` are not orthogonal.
        fixed_geminal: with ``geminal``, a fixed symmetric C (M, M) instead of the learned one.
        jastrow: optional electron-electron Jastrow factor J(X), a function of the electrons'
            own coordinates (before the flows) multiplying psi. Only for one base state at
            clamped nuclei (``qvfe.jastrow``): it breaks the dressed states' orthonormality.
        cusps: optional parameter-free periodic Backflow (``n_layers = 0``, ``pair_cusps`` > 0)
            whose layer makes the electron-electron cusps exact (qvfe.flows.backflow). It acts
            right after the electron-nucleus flow's exact-cusp step, before every other map.
            Not before that step: it moves every electron, which would shift the step's kinks
            off the protons (the proton's -1/r left whole). Not after the learned
            electron-nucleus steps: their Jacobian, anisotropic where 16 radial steps compose,
            tilts the kink (the local energy kept 5-25 % of the 1/r_ij divergence with
            perturbed steps at rs = 1.25; where it is now under 1 %, and up to 5 % within 0.3
            bohr of a proton, where the exact step's own scaling is anisotropic). The maps
            after it are smooth at a coalescence and keep its kink whole; the opposite-spin
            flow, which pushes the two electrons of a coalescing pair apart, must come after
            it.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> from qvfe.flows.backflow import Backflow
        >>> from qvfe.physics.orbital_values import HarmonicBasis
        >>> wf = SquareRootFlowWavefunction(
        ...     HarmonicBasis(np.array([[0, 0], [1, 0], [0, 1]]), omega=1.0), Backflow(2, 1, 2))
        >>> params = wf.init(jax.random.PRNGKey(0))
        >>> x = jnp.array([[0.1, 0.2], [-0.3, 0.4], [0.5, -0.6]])
        >>> re, im = wf.log_psi(params, x, jnp.array([0, 1]), jnp.array([0]))
    """

    basis: HarmonicBasis | PlaneWaveBasis | ScreenedBands
    backflow: Backflow
    nuclei: ElectronNucleusFlow | None = None
    opposite_spin: OppositeSpinFlow | None = None
    sector: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    geminal: bool = False
    fixed_geminal: np.ndarray | None = None
    jastrow: PeriodicJastrow | None = None
    collective: CollectiveFlow | None = None
    cusps: Backflow | None = None

    def __post_init__(self) -> None:
        if self.basis.dim != self.backflow.dim:
            raise ValueError(
                f"orbital table has d={self.basis.dim} but the backflow has dim={self.backflow.dim}"
            )
        if max(self.backflow.n_up, self.backflow.n_down) > self.basis.n_orbitals:
            raise ValueError("more particles of one spin than orbitals in the table")
        if self.nuclei is not None and self.nuclei.dim != self.backflow.dim:
            raise ValueError("the electron-nucleus flow and the backflow differ in dim")
        if self.opposite_spin is not None and (
                (self.opposite_spin.n_up, self.opposite_spin.n_down, self.opposite_spin.dim)
                != (self.backflow.n_up, self.backflow.n_down, self.backflow.dim)):
            raise ValueError("the opposite-spin flow and the backflow differ in n_up, n_down or "
                             "dim")
        if self.collective is not None and (
                (self.collective.n_particles, self.collective.dim)
                != (self.backflow.n_up + self.backflow.n_down, self.backflow.dim)):
            raise ValueError("the collective flow and the backflow differ in the number of "
                             "electrons or dim")
        if (self.sector is None) == self.backflow.conditioned:
            raise ValueError("a sector function goes with a backflow of n_sectors > 1 or "
                             "sector_features > 0, and only with one")
        if self.geminal:
            if self.basis.is_complex:
                raise ValueError("geminal needs a real orbital table (C symmetric is a singlet "
                                 "of real orbitals)")
            if not 1 <= self.n_up == self.n_down <= GEMINAL_MAX_PAIRS:
                raise ValueError(f"geminal needs n_up == n_down in [1, {GEMINAL_MAX_PAIRS}], got "
                                 f"{self.n_up} and {self.n_down}")
        if self.fixed_geminal is not None:
            c = np.asarray(self.fixed_geminal, dtype=np.float64)
            m = self.basis.n_orbitals
            if not self.geminal or c.shape != (m, m) or not np.allclose(c, c.T):
                raise ValueError(f"fixed_geminal must be a symmetric ({m}, {m}) matrix and goes "
                                 f"with geminal=True (got shape {c.shape}, geminal="
                                 f"{self.geminal})")
            object.__setattr__(self, "fixed_geminal", c)
        if self.cusps is not None and (
                not self.cusps.pair_cusps or self.cusps.n_layers or self.cusps.conditioned
                or (self.cusps.n_up, self.cusps.n_down, self.cusps.dim)
                != (self.backflow.n_up, self.backflow.n_down, self.backflow.dim)):
            raise ValueError("cusps must be a Backflow with pair_cusps > 0, no learned layers "
                             "and no sectors, of the backflow's n_up, n_down and dim")
        if self.jastrow is not None:
            if (self.jastrow.n_up, self.jastrow.n_down, self.jastrow.dim) != (
                    self.n_up, self.n_down, self.backflow.dim):
                raise ValueError("the Jastrow factor and the backflow differ in n_up, n_down or "
                                 "dim")
            box = getattr(self.basis, "box_length", None)
            if box is None or not np.isclose(self.jastrow.box_length, box, rtol=1e-12, atol=0):
                raise ValueError(f"the Jastrow factor's box_length {self.jastrow.box_length} is "
                                 f"not the basis' ({box}): it needs a periodic basis of its box")
            if self.cusps is not None:
                # both make the electron-electron cusp: together they would count it twice
                raise ValueError("a Jastrow factor and exact cusp layers (cusps) exclude each "
                                 "other: each makes the electron pairs' cusp")

    @property
    def n_up(self) -> int:
        return self.backflow.n_up

    @property
    def n_down(self) -> int:
        return self.backflow.n_down

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of one sample ``x``."""
        return (self.n_up + self.n_down, self.backflow.dim)

    def init(self, key: jax.Array) -> Params:
        """Parameters (a pytree); at init the backflow is the identity."""
        params = {"backflow": self.backflow.init(key)}
        if self.nuclei is not None:
            params["nuclei"] = self.nuclei.init(jax.random.fold_in(key, 1))
        if self.opposite_spin is not None:
            params["opposite_spin"] = self.opposite_spin.init(jax.random.fold_in(key, 2))
        if self.collective is not None:
            params["collective"] = self.collective.init()
        if self.geminal and self.fixed_geminal is None:
            m = self.basis.n_orbitals
            params["geminal"] = jnp.zeros(m * (m + 1) // 2)  # upper triangle of Delta
        if self.jastrow is not None:
            params["jastrow"] = self.jastrow.init()
        return params

    def geminal_matrix(self, params: Params, occ_up: jax.Array, occ_down: jax.Array) -> jax.Array:
        """C = P_n + Delta, (M, M): the projector on the occupied orbitals plus the learned part
        (or ``fixed_geminal``)."""
        if self.fixed_geminal is not None:
            return jnp.asarray(self.fixed_geminal)
        m = self.basis.n_orbitals
        rows, cols = np.triu_indices(m)
        upper = jnp.zeros((m, m), params["geminal"].dtype).at[rows, cols].set(params["geminal"])
        delta = upper + upper.T - jnp.diag(jnp.diag(upper))
        return delta.at[occ_up, occ_down].add(1.0)

    # ---- ln psi ----------------------------------------------------------------------------
    def log_psi(
        self, params: Params, x: jax.Array, occ_up: jax.Array, occ_down: jax.Array,
        *context: jax.Array,
    ) -> tuple[jax.Array, jax.Array]:
        """``(ln|psi_n(x)|, arg psi_n(x))`` for one sample ``x`` of shape ``(n_up + n_down, d)``.

        ``context`` is ``(s,)``, the nuclear positions, when the wavefunction has ``nuclei``;
        anything after them (hydrogen's band coefficients, ``qvfe.physics.bands``) is passed on
        to the orbital table's ``values``.
        """
        z, log_jac, basis_context = self._transport(params, x, occ_up, occ_down, context)
        re, im = self._log_base(params, z, occ_up, occ_down, basis_context)
        return re + 0.5 * log_jac + self._log_jastrow(params, x, context), im

    def _log_jastrow(self, params: Params, x: jax.Array, context: tuple) -> jax.Array:
        """ln J(X) of the Jastrow factor (its electron-nucleus term at the nuclei
        ``context[0]``), 0 without one."""
        if self.jastrow is None:
            return jnp.zeros((), x.dtype)
        nuclei = context[0] if self.jastrow.n_nuclei else None
        return self.jastrow.log_value(params["jastrow"], x, nuclei)

    def flow_det_sign(self, params: Params, x: jax.Array, occ_up: jax.Array, occ_down: jax.Array,
                      *context: jax.Array) -> jax.Array:
        """The sign of det dZ/dX at one sample (arguments as ``log_psi``): +1 where the √flow is
        a local diffeomorphism, -1 or 0 where it folds. Only the backflow and the collective
        flow can fold (above strength 1, see ``qvfe.flows.backflow`` and
        ``qvfe.flows.collective``); the electron-nucleus and opposite-spin flows are bijections
        for every parameter value."""
        sector = None if self.sector is None else self.sector(occ_up, occ_down)
        x = self._before_collective(params, x, context)
        sign = jnp.ones((), x.dtype)
        if self.collective is not None:
            sign = self.collective.det_sign(params["collective"], x)
            x = self.collective.forward(params["collective"], x)
        return sign * self.backflow.det_sign(params["backflow"], x, sector)

    def backflow_input(self, params: Params, x: jax.Array, *context: jax.Array) -> jax.Array:
        """Where the backflow acts: ``x`` moved by the electron-nucleus flow (``context[0]``
        the nuclei), the opposite-spin flow and the collective flow, those present (for
        diagnostics of the backflow's own layers)."""
        x = self._before_collective(params, x, context)
        if self.collective is not None:
            x = self.collective.forward(params["collective"], x)
        return x

    def _maps_before_collective(self, params: Params, context: tuple) -> list[tuple]:
        """The √flow's maps before the collective flow and the backflow, in their order (the
        electron-nucleus exact-cusp step, the cusp layer, the learned electron-nucleus steps,
        the opposite-spin flow; those present), each as (x -> (x, ln|det|), x -> x)."""
        maps = []
        if self.nuclei is not None:
            s, theta = context[0], params["nuclei"]
            maps.append((lambda x: self.nuclei.cusp_step(x, s),
                         lambda x: self.nuclei.cusp_step(x, s, with_log_det=False)[0]))
        if self.cusps is not None:
            maps.append((lambda x: self.cusps.forward_and_log_det(_NO_LAYERS, x),
                         lambda x: self.cusps.forward(_NO_LAYERS, x)))
        if self.nuclei is not None:
            maps.append((lambda x: self.nuclei.learned_steps(theta, x, s),
                         lambda x: self.nuclei.learned_steps(theta, x, s,
                                                             with_log_det=False)[0]))
        if self.opposite_spin is not None:
            theta_o = params["opposite_spin"]
            maps.append((lambda x: self.opposite_spin.forward_and_log_det(theta_o, x),
                         lambda x: self.opposite_spin.forward(theta_o, x)))
        return maps

    def _before_collective(self, params: Params, x: jax.Array, context: tuple) -> jax.Array:
        """``x`` moved by the maps of ``_maps_before_collective``."""
        for _, forward in self._maps_before_collective(params, context):
            x = forward(x)
        return x

    def _transport(self, params: Params, x: jax.Array, occ_up: jax.Array, occ_down: jax.Array,
                   context: tuple, with_log_det: bool = True):
        """(Z, ln|det dZ/dX| (None without ``with_log_det``), the basis' context): the flows
        in their order: ``_maps_before_collective``, collective, backflow."""
        basis_context = context[1:] if self.nuclei is not None else context
        sector = None if self.sector is None else self.sector(occ_up, occ_down)
        if not with_log_det:
            z = self.backflow.forward(params["backflow"],
                                      self.backflow_input(params, x, *context), sector)
            return z, None, tuple(basis_context)
        log_jac = jnp.zeros((), x.dtype)
        for forward_and_log_det, _ in self._maps_before_collective(params, context):
            x, ld = forward_and_log_det(x)
            log_jac = log_jac + ld
        if self.collective is not None:
            x, ld = self.collective.forward_and_log_det(params["collective"], x)
            log_jac = log_jac + ld
        z, ld = self.backflow.forward_and_log_det(params["backflow"], x, sector)
        log_jac = log_jac + ld
        return z, log_jac, tuple(basis_context)

    def _log_base(self, params: Params, z: jax.Array, occ_up: jax.Array, occ_down: jax.Array,
                  basis_context: tuple) -> tuple[jax.Array, jax.Array]:
        """(ln|<Z|n>|, arg <Z|n>) of the base state, normalised (the 1/sqrt(N_up! N_down!) or the
        geminal's norm) but without the flow's Jacobian factor."""
        re = -0.5 * (gammaln(self.n_up + 1) + gammaln(self.n_down + 1))
        im = jnp.zeros((), dtype=z.dtype)
        if self.geminal:
            c = self.geminal_matrix(params, occ_up, occ_down)
            every = jnp.arange(self.basis.n_orbitals)
            up = self.basis.values(z[: self.n_up], every, *basis_context)
            down = self.basis.values(z[self.n_up:], every, *basis_context)
            sign, logabs = jnp.linalg.slogdet(up.matrix @ c @ down.matrix.T)
            re = (re + logabs + jnp.sum(up.log_row) + jnp.sum(down.log_row)
                  - 0.5 * jnp.log(elementary_symmetric_of_gram(c, self.n_up)))
            return re, im + 0.5 * np.pi * (1.0 - sign)
        for rows, occ in ((slice(0, self.n_up), occ_up), (slice(self.n_up, None), occ_down)):
            zs = z[rows]
            if zs.shape[0] == 0:  # empty species: det of a 0x0 matrix is 1
                continue
            values = self.basis.values(zs, jnp.asarray(occ), *basis_context)
            sign, logabs = jnp.linalg.slogdet(values.matrix)
            re = re + logabs + jnp.sum(values.log_row)
            if self.basis.is_complex:
                im = im + jnp.angle(sign)
            else:
                im = im + 0.5 * np.pi * (1.0 - sign)  # 0 for sign +1, pi for -1; zero derivative
        return re, im

    # ---- local energy ------------------------------------------------------------------------
    def kinetic_energy(
        self,
        params: Params,
        x: jax.Array,
        occ_up: jax.Array,
        occ_down: jax.Array,
        *context: jax.Array,
        laplacian: str = "folx",
        key: jax.Array | None = None,
        probes: int = 1,
    ) -> jax.Array:
        """``-1/2 sum_i [lap_i ln psi + (grad_i ln psi)^2]`` as a complex scalar, for one sample.

        With ln psi = a + i b:  Re = -1/2 [lap a + |grad a|^2 - |grad b|^2],
        Im = -1/2 [lap b + 2 grad a . grad b].

        ``laplacian="hutchinson"`` (needs ``key``): the base state's part by folx and the
        flow's ``1/2 ln|det dZ/dX|`` by its exact gradient and Hutchinson's estimate of its
        Laplacian over ``probes`` Rademacher vectors (:func:`hutchinson_laplacian`).
        """
        shape = x.shape
        complex_psi = self.basis.is_complex
        if laplacian == "hutchinson" and key is None:
            raise ValueError("laplacian='hutchinson' needs a PRNG key")
        if laplacian == "hutchinson" and probes < 1:
            raise ValueError(f"probes must be >= 1 for laplacian='hutchinson', got {probes}")

        def parts(x_flat):
            re, im = self.log_psi(params, x_flat.reshape(shape), occ_up, occ_down, *context)
            return (re, im) if complex_psi else re

        def base_parts(x_flat):
            """ln psi less the flow's 1/2 ln|det dZ/dX| (hutchinson's share for folx)."""
            x_one = x_flat.reshape(shape)
            z, _, basis_context = self._transport(params, x_one, occ_up, occ_down, context,
                                                  with_log_det=False)
            re, im = self._log_base(params, z, occ_up, occ_down, basis_context)
            re = re + self._log_jastrow(params, x_one, context)
            return (re, im) if complex_psi else re

        def half_log_jac(x_flat):
            return 0.5 * self._transport(params, x_flat.reshape(shape), occ_up, occ_down,
                                         context)[1]

        x_flat = x.reshape(-1)
        if laplacian in ("folx", "hutchinson"):
            _register_folx_elementwise()
            out = folx.forward_laplacian(parts if laplacian == "folx" else base_parts)(x_flat)
            a, b = out if complex_psi else (out, None)
            lap_a, grad_a = a.laplacian, a.jacobian.dense_array.reshape(-1)
            if complex_psi:
                lap_b, grad_b = b.laplacian, b.jacobian.dense_array.reshape(-1)
            if laplacian == "hutchinson":
                grad_j, lap_j = hutchinson_laplacian(half_log_jac, x_flat, jax.random.rademacher(
                    key, (probes, x_flat.size), dtype=x_flat.dtype))
                lap_a, grad_a = lap_a + lap_j, grad_a + grad_j
        elif laplacian == "hessian":
            # one reverse pass for the gradient, forward over it for the Hessian, both parts at once
            def stacked(v):
                out = parts(v)
                return jnp.stack(out) if complex_psi else out

            def grad_twice(v):
                g = jax.jacrev(stacked)(v)
                return g, g

            hess, grad = jax.jacfwd(grad_twice, has_aux=True)(x_flat)
            lap = jnp.trace(hess, axis1=-2, axis2=-1)
            if complex_psi:
                (lap_a, lap_b), (grad_a, grad_b) = lap, grad
            else:
                lap_a, grad_a = lap, grad
        else:
            raise ValueError(f"laplacian must be one of {LAPLACIANS}, got {laplacian!r}")
        return _kinetic_from_parts(lap_a, grad_a, *((lap_b, grad_b) if complex_psi else ()))

    def local_energy(
        self,
        params: Params,
        x: jax.Array,
        occ_up: jax.Array,
        occ_down: jax.Array,
        potential: Potential,
        *context: jax.Array,
        laplacian: str = "folx",
        key: jax.Array | None = None,
        probes: int = 1,
    ) -> jax.Array:
        """Complex ``E_loc(x; n)`` for one sample; ``potential(x, *context)`` is a real scalar."""
        kinetic = self.kinetic_energy(params, x, occ_up, occ_down, *context, laplacian=laplacian,
                                      key=key, probes=probes)
        return kinetic + potential(x, *context)


def _kinetic_from_parts(lap_a, grad_a, lap_b=None, grad_b=None) -> jax.Array:
    """The complex kinetic energy from the Laplacians and gradients of a = Re ln psi and, for a
    complex psi, b = Im ln psi."""
    if lap_b is None:
        real = -0.5 * (lap_a + grad_a @ grad_a)
        return jax.lax.complex(real, jnp.zeros_like(real))
    real = -0.5 * (lap_a + grad_a @ grad_a - grad_b @ grad_b)
    imag = -0.5 * (lap_b + 2.0 * grad_a @ grad_b)
    return jax.lax.complex(real, imag)


def hutchinson_laplacian(f: Callable[[jax.Array], jax.Array], x: jax.Array, probes: jax.Array
                         ) -> tuple[jax.Array, jax.Array]:
    """(grad f(x), the mean of v^T (Hess f) v over the rows v of ``probes``), for flat ``x``.

    For probes of zero mean and identity covariance (Rademacher: entries +-1) the mean is an
    unbiased estimate of the Laplacian, with variance 2 sum_{i != j} H_ij^2 / k for k Rademacher
    probes. One reverse pass for the gradient, linearised once, then one forward pass per probe:
    a few times the cost of f, where the exact Laplacian of a log-determinant of the flow's
    (nd, nd) Jacobian costs nd times that (folx propagates every coordinate's tangent through
    the determinant).
    """
    grad, hvp = jax.linearize(jax.grad(f), x)
    return grad, jnp.mean(jax.vmap(lambda v: v @ hvp(v))(probes))
