"""Band orbitals of electrons among protons: the lowest eigenstates of ½k² plus the protons'
linearly screened Coulomb potential, expanded in the box's plane waves, for one proton
configuration.

One job: for the protons at S (P, 3) in a periodic cube of side L, diagonalise

    H_kk' = ½|k|² δ_kk' + (1/V) û(k − k') Σ_I e^{−i(k−k')·R_I},   û(G) = −4π / (G² ε(G)),

in a table of K plane waves e^{ik·r}/√V (the box's k-grid, a twist included), with ε the RPA
(Lindhard) dielectric function of the electron gas at the protons' density (``heg.rpa_dielectric``;
ε = 1 gives the bare Coulomb potential, one electron's exact Hamiltonian in the plane waves)
and û(0) = 0 (the G = 0 parts of the electron–proton, electron–electron and proton–proton
energies cancel in a neutral cell). That is the nearly-free-electron metal's screened
pseudopotential: no self-consistency, no parameters, a fixed function of S. Its M lowest
eigenvectors (columns of ``coefficients(S)``, (K, M), orthonormal) are orbitals
φ_j(r) = Σ_k c_kj e^{ik·r}/√V that pile up charge on the protons and open gaps at the Bragg
planes, which a determinant of plane waves (uniform density) cannot: hydrogen's base states
(``model.orbitals = "screened_bands"``; README, dense hydrogen).

Because the columns are orthonormal for every S, determinants of them are orthonormal base
states for every S and the density matrix of each S stays normalised; the eigenvectors' phases
(arbitrary per S) only change each base state's global phase. S enters as data: the
coefficients carry no gradient (``stop_gradient``), since nothing differentiates the electrons'
wavefunction with respect to the protons (their gradient is the score function of q(S)).

Where the occupied bands end inside a degenerate multiplet (a symmetric clamped lattice: bcc
with 16 protons at the Γ point fills 8 of each spin into a shell of 5), any member of it is an
eigenvector, and which one eigh returns depends on the LAPACK or cuSOLVER build. A fixed
diagonal of ±1e-7 Ha (one pseudo-random value per plane wave, seed 0) added to H picks one
member the same way on every machine and still commutes with translations of all the protons
(the bands' energies move by ≤ 1e-7 Ha, and they are only labels; the energy is H's own). In
the liquid such ties have measure zero.

Tails (``n_exact`` < K): the cusps at the protons need plane waves far beyond the band's own
(the bands' determinant falls by 0.03 Ha/atom from 78 to 585 plane waves at rs = 1.25), and a
K × K diagonalisation per configuration costs K³. Only the first ``n_exact`` plane waves (the
low set ℓ) are diagonalised; each kept band's coefficients on the others (the tail t, where
the kinetic energy dominates) are those of first-order Löwdin partitioning,

    c_t = H_tℓ c_ℓ / (ε − ½|k_t|²),

and the M columns are then orthonormalised symmetrically, C (C†C)^{−1/2} (Löwdin: the
orthonormal set nearest C). That is the Kato tail of each band (its high-k coefficients are
set by its values at the protons), at the cost of the low set's eigh and one (K − n_exact) × n_exact
product. At rs = 1.25 (bcc, 16 protons) it takes the determinant from 78 exact plane waves and
507 tail ones to within 1.2 mHa/atom of the full 585-wave diagonalisation (−0.4825 against
−0.4837 Ha/atom; 1998 waves: −0.4866, the Hartree–Fock limit −0.4883). Any orthonormal columns
are valid base states (the variational bound holds for them), so the approximation costs only
quality, and the columns stay a fixed, smooth function of S. The denominator is kept at least
half of ½|k_t|² (``_tail_denominators``): a guard that acts only where a band lies within a
factor two of a tail wave's kinetic energy, which a ``model.band_cutoff`` of 2 (the tail's
½k² at least four times the orbital table's) rules out for the bands of the table. C†C is
1 + (tail)†(tail) ≥ 1, so its inverse root is always well conditioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from qvfe.physics import heg
from qvfe.physics.orbital_values import OrbitalValues, plane_wave_orbital_values

__all__ = ["ScreenedBands"]

TIE_BREAK = 1e-7  # Ha: the largest diagonal shift that picks members of degenerate multiplets


@dataclass(frozen=True, eq=False)
class ScreenedBands:
    """The ``n_bands`` lowest bands of the screened protons, in the plane waves ``k_vectors``.

    Attributes:
        k_vectors: (K, 3) plane-wave table of the box (``qvfe.physics.orbitals.plane_wave_orbitals``,
            energy-ordered); the bands' expansion basis.
        box_length: side L of the cube (bohr).
        rs: the electrons' density parameter (bohr) that sets the screening ε.
        n_bands: M ≤ K bands kept: the orbital table of the occupation model.
        charge: the potential's strength: the electron–proton coupling λ (1 for hydrogen; 0
            gives plane waves), times the spec's ``model.band_potential_scale``.
        screening: 'rpa' (ε Lindhard, the metal's bands) or 'none' (ε = 1, the bare Coulomb
            potential: one electron's exact Hamiltonian in the plane waves).
        n_exact: the first ``n_exact`` plane waves are diagonalised and the rest carry the
            bands' first-order tails (module docstring); 0, the default, diagonalises all K.

    Derived: ``diagonal`` (K,), H's diagonal without the protons: ½|k|² plus the tie-break of
    the module docstring.

    The orbital table has the interface of ``PlaneWaveBasis``: ``values(z, occ, coefficients)``
    takes the coefficients of the configuration as one more argument (the wavefunction passes
    them on from its context), ``energies()`` the plane waves' ½k² of the first M rows (the bands'
    labels for the occupation model, S-independent).
    """

    k_vectors: np.ndarray
    box_length: float
    rs: float
    n_bands: int
    charge: float = 1.0
    screening: str = "rpa"
    n_exact: int = 0
    is_complex: bool = True

    def __post_init__(self) -> None:
        k = np.asarray(self.k_vectors, dtype=np.float64)
        if k.ndim != 2 or k.shape[1] != 3:
            raise ValueError(f"ScreenedBands.k_vectors must be (K, 3), got shape {k.shape}")
        if int(self.n_bands) != self.n_bands:
            raise ValueError(f"ScreenedBands.n_bands must be a whole number, got {self.n_bands}")
        if not 1 <= self.n_bands <= k.shape[0]:
            raise ValueError(f"ScreenedBands.n_bands must be in [1, {k.shape[0]}] (the plane "
                             f"waves), got {self.n_bands}")
        if not self.box_length > 0 or not self.rs > 0:
            raise ValueError("ScreenedBands.box_length and rs must be > 0, got "
                             f"{self.box_length} and {self.rs}")
        if not np.isfinite(self.charge):
            raise ValueError(f"ScreenedBands.charge must be finite, got {self.charge}")
        m = k * self.box_length / (2 * np.pi)
        if np.max(np.abs(m - m[0] - np.round(m - m[0]))) > 1e-6:
            raise ValueError("ScreenedBands.k_vectors must be 2π(m + twist)/L of this box "
                             f"(box_length {self.box_length}): m - twist is not integer")
        if len(np.unique(np.round(m - m[0]), axis=0)) != len(k):
            raise ValueError("ScreenedBands.k_vectors must be distinct (a repeated plane wave "
                             "makes two bands the same function)")
        n_exact = self.n_exact or k.shape[0]
        if int(n_exact) != n_exact or not self.n_bands <= n_exact <= k.shape[0]:
            raise ValueError(f"ScreenedBands.n_exact must be a whole number in [{self.n_bands}, "
                             f"{k.shape[0]}] (n_bands to the plane waves) or 0, got "
                             f"{self.n_exact}")
        if self.screening not in ("rpa", "none"):
            raise ValueError(f"ScreenedBands.screening must be 'rpa' or 'none', got "
                             f"{self.screening!r}")
        object.__setattr__(self, "k_vectors", k)
        object.__setattr__(self, "n_exact", int(n_exact))
        # only the columns of the low set: the tails need H_tℓ, never H_tt (module docstring)
        g = k[:, None, :] - k[None, : self.n_exact, :]  # (K, n_exact, 3): k - k'
        g_norm = np.linalg.norm(g, axis=-1)
        off = g_norm > 1e-9 * (2 * np.pi / self.box_length)
        safe = np.where(off, g_norm, 1.0)
        eps = heg.rpa_dielectric(safe, self.rs) if self.screening == "rpa" else 1.0
        u = np.where(off, -4 * np.pi / (safe**2 * eps), 0.0)
        object.__setattr__(self, "_pair_potential", self.charge * u / self.volume)
        tie_break = TIE_BREAK * np.random.default_rng(0).uniform(-1.0, 1.0, k.shape[0])
        object.__setattr__(self, "diagonal", 0.5 * np.sum(k**2, axis=-1) + tie_break)

    @property
    def volume(self) -> float:
        return float(self.box_length**3)

    @property
    def dim(self) -> int:
        return 3

    @property
    def n_orbitals(self) -> int:
        return int(self.n_bands)

    @property
    def n_plane_waves(self) -> int:
        return int(self.k_vectors.shape[0])

    def hamiltonian(self, s: jax.Array) -> jax.Array:
        """H's first ``n_exact`` columns (K, n_exact) for the protons at ``s`` (P, 3), with the
        tie-break: without tails all of H (K, K), complex Hermitian."""
        s = jax.lax.stop_gradient(s)
        phase = jnp.asarray(self.k_vectors) @ s.T  # (K, P): k·R_I
        a = jax.lax.complex(jnp.cos(phase), -jnp.sin(phase))  # e^{-ik·R_I}
        structure = a @ jnp.conj(a[: self.n_exact]).T  # Σ_I e^{-i(k-k')·R_I}
        # ½|k|² and the tie-break (module docstring) on the diagonal of the low set
        diagonal = np.eye(self.n_plane_waves, self.n_exact) * self.diagonal[: self.n_exact]
        return diagonal + self._pair_potential * structure

    def bands(self, s: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(energies (M,) in Ha, coefficients (K, M)) of the M lowest bands at ``s``; with
        tails, the low set's eigenvalues and the tailed, orthonormalised columns."""
        h = self.hamiltonian(s)
        low = self.n_exact
        energies, vectors = jnp.linalg.eigh(h[:low, :low])
        energies, vectors = energies[: self.n_bands], vectors[:, : self.n_bands]
        if low == self.n_plane_waves:
            return energies, vectors
        tail = (h[low:, :low] @ vectors) / -self._tail_denominators(energies)
        columns = jnp.concatenate([vectors, tail], axis=0)
        overlap_values, overlap_vectors = jnp.linalg.eigh(jnp.conj(columns.T) @ columns)
        inverse_root = (overlap_vectors * overlap_values**-0.5) @ jnp.conj(overlap_vectors.T)
        return energies, columns @ inverse_root

    def _tail_denominators(self, energies: jax.Array) -> jax.Array:
        """½|k_t|² − ε (tail plane waves × bands), kept at least ¼|k_t|² (module docstring)."""
        kinetic = jnp.asarray(self.diagonal[self.n_exact:])[:, None]
        return jnp.maximum(kinetic - energies[None, :], 0.5 * kinetic)

    def coefficients(self, s: jax.Array) -> jax.Array:
        """The (K, M) plane-wave coefficients of the M lowest bands at ``s``."""
        return self.bands(s)[1]

    def values(self, z: jax.Array, occ: jax.Array, coefficients: jax.Array) -> OrbitalValues:
        """Bands ``occ`` (int, (n,)) at positions ``z`` (n, 3), given the configuration's
        ``coefficients`` (K, M)."""
        waves = plane_wave_orbital_values(z, jnp.asarray(self.k_vectors, dtype=z.dtype),
                                          self.volume)
        return OrbitalValues(waves.log_row, waves.matrix @ coefficients[:, occ])

    def energies(self) -> np.ndarray:
        """½k² of the first M plane waves: the bands' S-independent labels."""
        return 0.5 * np.sum(self.k_vectors[: self.n_bands] ** 2, axis=-1)
