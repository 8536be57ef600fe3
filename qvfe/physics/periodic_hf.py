"""Hartree–Fock ground state of electrons among clamped point charges in a periodic cube, in a
table of plane waves: the best single determinant of periodic hydrogen with clamped protons.

One job: for N↑ + N↓ electrons and nuclei of charges Z_I at R_I in a cube of side L (neutral, or
no nuclei: jellium), with orbitals φ_j(r) = Σ_a c_aj e^{ik_a·r}/√V over a given table of plane
waves k_a = 2π(m_a + twist)/L, evaluate the energy of any determinant and find the lowest
(unrestricted Hartree–Fock, Aufbau occupation, damped self-consistency). In the Ewald convention
of :mod:`qvfe.physics.ewald` (psi the zero-mean periodic Coulomb potential, Fourier coefficients
w(q)/V with w(q) = 4π/q² and w(0) = 0; v_M the Madelung constant), per cell:

    E = Σ_σj ⟨φ_j|½k²|φ_j⟩ + λ [ Σ_σj ⟨φ_j|v_ext|φ_j⟩ + E_H − E_x + E_nn + ½ N v_M ],

    v_ext(q) = −(w(q)/V) Σ_I Z_I e^{−iq·R_I},   E_H = ½ Σ_q V w(q) |n(q)|²,
    E_x = ½ Σ_σ Σ_{j,l ∈ σ} ∫∫ φ_j*(r) φ_l(r) psi(r − r') φ_l*(r') φ_j(r'),

n(q) the electrons' density's Fourier coefficients, E_nn the nuclei's Ewald energy (their
background and self-image terms included) and ½ N v_M the electrons' self-image terms, as
qvfe's Ewald energy has them, so that the energy of a determinant is what the engine estimates
for it. In the plane waves' matrices (a, b index the table; q_ab = k_a − k_b):

    J_ab = λ w(q_ab) Σ_σ n(q_ab),   K^σ_ab = (λ/V) Σ_q w(q) Σ_{j ∈ σ} c_j(k_a − q) c_j*(k_b − q),

and the Fock matrix of spin σ is ½k² + λ v_ext + J − K^σ. One electron's J and K^σ cancel
exactly (no self-interaction), and plane waves in jellium give ``heg.hf_energy``: the tests.

What it is for (README, dense hydrogen): the reference of the base orbitals. The protons'
RPA-screened bands (``qvfe.physics.bands``) are Hartree–Fock's orbitals to within 1e-4 Ha/atom
in the same plane waves at rs = 1.25, and the determinant's energy falls by 0.03 Ha/atom
as the table grows (the cusps): ``scripts/hydrogen_hartree_fock.py`` prints the series.
numpy (the nuclei's energy from the Ewald sum, which needs JAX in float64): a reference computed
once per clamped configuration, not a step of the engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from qvfe.physics.ewald import madelung_constant, make_ewald

__all__ = ["PeriodicHartreeFock", "HartreeFockState"]


@dataclass(frozen=True)
class HartreeFockState:
    """A self-consistent determinant: energy (Ha per cell), each spin's orbital coefficients
    (K, N_σ) and Fock eigenvalues (the N_σ occupied and the lowest empty one, Ha), the
    iterations taken and the largest entry of the last commutator [F, P] (0 at self-consistency)."""

    energy: float
    coefficients: tuple[np.ndarray, np.ndarray]
    orbital_energies: tuple[np.ndarray, np.ndarray]
    iterations: int
    residual: float


@dataclass(frozen=True, eq=False)
class PeriodicHartreeFock:
    """The Hamiltonian of a cube's electrons and clamped nuclei in the plane waves ``k_vectors``.

    Attributes:
        k_vectors: (K, 3) plane waves 2π(m + twist)/L, one twist, distinct.
        box_length: L (bohr).
        nuclei: (P, 3) positions (bohr); P = 0 for jellium.
        charges: (P,) nuclear charges (e); all 1 (protons) when None. With nuclei the cell must
            be neutral: Σ Z = N↑ + N↓ for the determinants evaluated.
        coupling: λ, the strength of every Coulomb term (1 for hydrogen).
    """

    k_vectors: np.ndarray
    box_length: float
    nuclei: np.ndarray
    charges: np.ndarray | None = None
    coupling: float = 1.0

    def __post_init__(self) -> None:
        k = np.asarray(self.k_vectors, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != 3 or len(k) == 0:
            raise ValueError(f"PeriodicHartreeFock.k_vectors must be (K, 3), K ≥ 1, got shape "
                             f"{k.shape}")
        if not self.box_length > 0:
            raise ValueError(f"PeriodicHartreeFock.box_length must be > 0 bohr, got "
                             f"{self.box_length}")
        r = np.asarray(self.nuclei, dtype=np.float64).reshape(-1, 3)
        z = (np.ones(len(r)) if self.charges is None
             else np.asarray(self.charges, dtype=np.float64).reshape(-1))
        if len(z) != len(r) or not np.all(np.isfinite(z)) or not np.all(np.isfinite(r)):
            raise ValueError(f"PeriodicHartreeFock.charges must be {len(r)} finite values (one per "
                             f"nucleus) and the nuclei finite, got {len(z)} charges")
        if not np.isfinite(self.coupling):
            raise ValueError(f"PeriodicHartreeFock.coupling must be finite, got {self.coupling}")
        L = float(self.box_length)
        m = k * L / (2 * np.pi)
        twist = m[0] - np.round(m[0])
        labels = np.round(m - twist).astype(np.int64)
        if np.max(np.abs(m - twist - labels)) > 1e-6:
            raise ValueError("PeriodicHartreeFock.k_vectors must be 2π(m + twist)/L of one twist "
                             f"(box_length {L})")
        if len(np.unique(labels, axis=0)) != len(k):
            raise ValueError("PeriodicHartreeFock.k_vectors must be distinct")
        for name, value in (("k_vectors", k), ("nuclei", r), ("charges", z)):
            object.__setattr__(self, name, value)
        # every difference q = m_a − m_b: J's entries and the shifts of K's sum
        diff = labels[:, None, :] - labels[None, :, :]
        q_labels, pair_q = np.unique(diff.reshape(-1, 3), axis=0, return_inverse=True)
        q = 2 * np.pi * q_labels / L
        q2 = np.sum(q * q, axis=-1)
        nonzero = q2 > 1e-12 * (2 * np.pi / L) ** 2
        w = np.where(nonzero, 4 * np.pi / np.where(nonzero, q2, 1.0), 0.0)
        row = {tuple(x): a for a, x in enumerate(labels)}
        # shifted[a, q] = the index of m_a − q in the table, or K (a zero row) outside it
        shifted = np.array([[row.get(tuple(x - y), len(k)) for y in q_labels] for x in labels])
        volume = L**3
        v_ext = -(w / volume) * (np.exp(-1j * (q @ r.T)) @ z) if len(r) else np.zeros(len(q))
        object.__setattr__(self, "_pair_q", pair_q.reshape(len(k), len(k)))
        object.__setattr__(self, "_w", w)
        object.__setattr__(self, "_shifted", shifted)
        object.__setattr__(self, "_v_ext", v_ext[pair_q].reshape(len(k), len(k)))
        object.__setattr__(self, "_madelung", madelung_constant(L * np.eye(3)))
        object.__setattr__(self, "_kinetic", 0.5 * np.sum(k * k, axis=-1))
        # E_nn by qvfe's Ewald sum (JAX in float64, which it checks)
        object.__setattr__(self, "_nuclear", float(make_ewald(L * np.eye(3), charges=z).energy(
            jnp.asarray(r))) if len(r) else 0.0)

    @property
    def volume(self) -> float:
        return float(self.box_length**3)

    def nuclear_energy(self) -> float:
        """The nuclei's Ewald energy per cell, E_nn, background and self-image terms included
        (λ = 1; 0 without nuclei)."""
        return self._nuclear

    def _check(self, coefficients: tuple[np.ndarray, np.ndarray],
               neutral: bool = True) -> tuple[np.ndarray, ...]:
        out = []
        for c in coefficients:
            c = np.asarray(c, dtype=np.complex128)
            if c.ndim != 2 or c.shape[0] != len(self.k_vectors):
                raise ValueError(f"orbital coefficients must be (K = {len(self.k_vectors)}, N_σ), "
                                 f"got shape {c.shape}")
            out.append(c)
        n = sum(c.shape[1] for c in out)
        if neutral and len(self.nuclei) and abs(np.sum(self.charges) - n) > 1e-9:
            raise ValueError(f"the cell must be neutral: {n} electrons against nuclear charge "
                             f"{np.sum(self.charges):g}")
        return tuple(out)

    def _moved(self, c: np.ndarray, j: int) -> np.ndarray:
        """(K, Q): c_j(k_a − q) for every plane wave a and difference q (0 outside the table)."""
        return np.append(c[:, j], 0.0)[self._shifted]

    def _density(self, coefficients: tuple[np.ndarray, ...]) -> np.ndarray:
        """n(q) (Q,): the electrons' density's Fourier coefficients, n(r) = Σ_q n(q) e^{iq·r}."""
        n_q = np.zeros(len(self._w), complex)
        for c in coefficients:
            for j in range(c.shape[1]):
                n_q += c[:, j] @ self._moved(c, j).conj() / self.volume
        return n_q

    def _exchange(self, c: np.ndarray) -> np.ndarray:
        """K^σ (K, K) of one spin's occupied coefficients ``c`` (K, N_σ), λ = 1."""
        k = np.zeros((len(self.k_vectors),) * 2, complex)
        root = np.sqrt(self._w)
        for j in range(c.shape[1]):
            moved = self._moved(c, j) * root
            k += moved @ moved.conj().T
        return k / self.volume

    def fock(self, coefficients: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each spin's Fock matrix (K, K) for the occupied ``coefficients`` (↑, ↓), any number
        of them (the energy needs a neutral cell, the Fock matrices do not): ∂E/∂c*_j = F c_j."""
        coefficients = self._check(coefficients, neutral=False)
        common = np.diag(self._kinetic) + self.coupling * (
            self._v_ext + (self._w * self._density(coefficients))[self._pair_q])
        return tuple(common - self.coupling * self._exchange(c) for c in coefficients)

    def energy(self, coefficients: tuple[np.ndarray, np.ndarray]) -> float:
        """⟨H⟩ (Ha per cell) of the determinant of the orthonormal occupied orbitals
        ``coefficients`` (↑ (K, N↑), ↓ (K, N↓)), every Coulomb term included. From the
        orbitals' pair densities, N² K Q operations (no Fock matrix)."""
        coefficients = self._check(coefficients)
        for c in coefficients:
            if c.shape[1] and not np.allclose(c.conj().T @ c, np.eye(c.shape[1]), atol=1e-8):
                raise ValueError("orbital coefficients must be orthonormal columns")
        one_body = sum(np.real(np.sum(self._kinetic[:, None] * np.abs(c) ** 2)
                               + np.trace(c.conj().T @ self._v_ext @ c) * self.coupling)
                       for c in coefficients)
        n_q = self._density(coefficients)
        hartree = 0.5 * self.volume * np.sum(self._w * np.abs(n_q) ** 2)
        exchange = 0.0
        for c in coefficients:
            for j in range(c.shape[1]):  # pair densities Σ_a c_l*(k_a) c_j(k_a − q), all l
                pairs = c.conj().T @ self._moved(c, j)
                exchange += 0.5 * np.sum(self._w * np.abs(pairs) ** 2) / self.volume
        n = sum(c.shape[1] for c in coefficients)
        return float(one_body + self.coupling * (hartree - exchange + self._nuclear
                                                 + 0.5 * n * self._madelung))

    def solve(self, n_up: int, n_down: int, start: tuple[np.ndarray, np.ndarray] | None = None,
              *, damping: float = 0.5, tol: float = 1e-7,
              max_iterations: int = 300) -> HartreeFockState:
        """The self-consistent determinant of ``n_up`` + ``n_down`` electrons, from ``start``
        (occupied coefficients per spin; the lowest plane waves when None), each spin taking
        its Fock matrix's lowest eigenvectors. The Fock matrices are mixed, F ← (1 − β) F +
        β F[C] with β = ``damping`` (J and K are linear in the density, so this is density
        mixing), until the commutators [F, P] fall below ``tol`` (Ha).

        Raises ValueError for counts outside [0, K] and RuntimeError if not converged."""
        n_k = len(self.k_vectors)
        for name, n in (("n_up", n_up), ("n_down", n_down)):
            if not (isinstance(n, (int, np.integer)) and 0 <= n <= n_k):
                raise ValueError(f"{name} must be an integer in [0, {n_k}] (the plane waves), "
                                 f"got {n}")
        if not 0 < damping <= 1:
            raise ValueError(f"damping must be in (0, 1], got {damping}")
        if start is None:
            start = (np.eye(n_k)[:, :n_up], np.eye(n_k)[:, :n_down])
        coefficients = self._check(start)
        if tuple(c.shape[1] for c in coefficients) != (n_up, n_down):
            raise ValueError(f"start must hold ({n_up}, {n_down}) orbitals, got "
                             f"{tuple(c.shape[1] for c in coefficients)}")
        mixed = self.fock(coefficients)
        for iteration in range(1, max_iterations + 1):
            solutions = [np.linalg.eigh(f) for f in mixed]
            coefficients = tuple(v[:, :n] for (_, v), n in zip(solutions, (n_up, n_down)))
            focks = self.fock(coefficients)
            residual = max(float(np.max(np.abs(f @ (c @ c.conj().T) - (c @ c.conj().T) @ f),
                                        initial=0.0)) for f, c in zip(focks, coefficients))
            if residual < tol:
                levels = tuple(np.linalg.eigvalsh(f)[: n + 1] for f, n in zip(focks,
                                                                              (n_up, n_down)))
                return HartreeFockState(self.energy(coefficients), coefficients,
                                        levels, iteration, residual)
            mixed = tuple((1 - damping) * m + damping * f for m, f in zip(mixed, focks))
        raise RuntimeError(f"Hartree–Fock did not converge in {max_iterations} iterations "
                           f"(largest [F, P] entry {residual:.2e} Ha)")
