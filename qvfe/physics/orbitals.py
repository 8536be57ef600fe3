"""Single-particle orbital lists: quantum numbers and energies, sorted by energy, cut by the user.

These lists are the "levels" everything discrete in qvfe is built on: the occupation model
(``qvfe.autoregressive.occupations``) emits one occupied/empty decision per entry, the ideal-gas
references (``qvfe.physics.ideal_fermi``) sum over them, and the continuous side evaluates the
orbital *values* for the entries an occupation pattern selects. This module only enumerates.

Everything here is static host data (numpy), computed once when a problem is built; arrays are
float64 / int64 regardless of the JAX x64 flag.

Tie order is deterministic and documented per function, so that the same spec always gives the
same orbital index for the same state (checkpoints store occupation patterns by index).

A cutoff ``n_orbitals`` that falls inside a degenerate shell keeps only part of that shell.
Physically the cutoff truncates the one-body Hilbert space: the model then describes particles that
may only occupy the listed orbitals, which breaks the shell's symmetry (e.g. rotations for the
oscillator, cubic symmetry for plane waves) at energies around the cutoff. For thermodynamics choose a cutoff
well above the Fermi level (Boltzmann factors of the dropped levels negligible) and preferably at a
closed shell (``closed_shell_count``, ``plane_wave_closed_shells``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "harmonic_orbitals",
    "polar_harmonic_orbitals",
    "closed_shell_count",
    "harmonic_shell_degeneracy",
    "plane_wave_orbitals",
    "plane_waves_within",
    "plane_wave_closed_shells",
    "reciprocal_half_shells",
]


def _check_dim(dim: int, allowed: tuple[int, ...]) -> None:
    if dim not in allowed:
        raise ValueError(f"dim must be one of {allowed}, got {dim}")


def harmonic_shell_degeneracy(dim: int, shell: int) -> int:
    """Number of oscillator states with Σ n_i = ``shell`` in ``dim`` dims: C(shell+dim-1, dim-1)."""
    _check_dim(dim, (1, 2, 3))
    return math.comb(shell + dim - 1, dim - 1)


def closed_shell_count(dim: int, n_shells: int) -> int:
    """Number of oscillator orbitals in the lowest ``n_shells`` full shells: C(n_shells+dim-1, dim).

    d=2: 1, 3, 6, 10, 15, ...; d=3: 1, 4, 10, 20, 35, ... (n_shells = 1, 2, 3, ...).
    """
    _check_dim(dim, (1, 2, 3))
    if n_shells < 0:
        raise ValueError(f"n_shells must be >= 0, got {n_shells}")
    return math.comb(n_shells + dim - 1, dim)


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """All tuples of ``parts`` non-negative ints summing to ``total``, descending lexicographic."""
    if parts == 1:
        return [(total,)]
    return [(first,) + rest for first in range(total, -1, -1)
            for rest in _compositions(total - first, parts - 1)]


def harmonic_orbitals(dim: int, omega: float, n_orbitals: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_orbitals`` lowest levels of an isotropic oscillator (unit mass), frequency ``omega``.

    Returns ``(quantum_numbers, energies)``: int64 array (M, dim) of (n_x[, n_y[, n_z]]) ≥ 0 and
    float64 energies ε = ω (Σ n_i + dim/2), shape (M,). Order: by shell Σ n_i ascending; inside a
    shell, by the quantum-number tuple in *descending* lexicographic order (d=2 shell 1: (1,0) then
    (0,1)). A cutoff inside a shell keeps the first states of that shell in this order (a
    truncation of the Hilbert space, see the module docstring).

    >>> qn, e = harmonic_orbitals(2, 1.0, 3)
    >>> qn.tolist(), e.tolist()
    ([[0, 0], [1, 0], [0, 1]], [1.0, 2.0, 2.0])
    """
    _check_dim(dim, (1, 2, 3))
    if n_orbitals < 0:
        raise ValueError(f"n_orbitals must be >= 0, got {n_orbitals}")
    if not omega > 0:
        raise ValueError(f"omega must be > 0, got {omega}")
    states: list[tuple[int, ...]] = []
    shell = 0
    while len(states) < n_orbitals:
        states.extend(_compositions(shell, dim))
        shell += 1
    qn = np.asarray(states[:n_orbitals], dtype=np.int64).reshape(n_orbitals, dim)
    energies = omega * (qn.sum(axis=1) + dim / 2.0)
    return qn, energies.astype(np.float64)


def polar_harmonic_orbitals(omega: float, n_orbitals: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_orbitals`` lowest levels of a 2D isotropic oscillator in the polar (Fock-Darwin) form.

    Returns ``(quantum_numbers, energies)``: int64 (M, 2) rows ``(n_r, m)`` with radial number
    n_r ≥ 0 and angular momentum m (m > 0: the cos(mφ) orbital, m < 0: sin(|m|φ), m = 0: the round
    one), and float64 ε = ω (2 n_r + |m| + 1). Each shell k = 2 n_r + |m| spans the same space as the
    Cartesian states of ``harmonic_orbitals(2, ...)`` with n_x + n_y = k (same energies, same
    closed-shell counts), but every orbital has a definite |m|, which a rotation-invariant
    interaction conserves: a pair state built from them is not a mixture of channels the
    interaction splits (a Cartesian (2, 0) relative state is one of |m| = 0 and 2). Order: by shell,
    then |m| ascending, then cos before sin (shell 2: (1, 0), (0, 2), (0, -2)).

    >>> qn, e = polar_harmonic_orbitals(1.0, 6)
    >>> qn.tolist(), e.tolist()
    ([[0, 0], [0, 1], [0, -1], [1, 0], [0, 2], [0, -2]], [1.0, 2.0, 2.0, 3.0, 3.0, 3.0])
    """
    if n_orbitals < 0:
        raise ValueError(f"n_orbitals must be >= 0, got {n_orbitals}")
    if not omega > 0:
        raise ValueError(f"omega must be > 0, got {omega}")
    states: list[tuple[int, int]] = []
    shell = 0
    while len(states) < n_orbitals:
        for am in range(shell % 2, shell + 1, 2):
            n_r = (shell - am) // 2
            states.extend([(n_r, 0)] if am == 0 else [(n_r, am), (n_r, -am)])
        shell += 1
    qn = np.asarray(states[:n_orbitals], dtype=np.int64).reshape(n_orbitals, 2)
    energies = omega * (2 * qn[:, 0] + np.abs(qn[:, 1]) + 1.0)
    return qn, energies.astype(np.float64)


def _plane_wave_integers(dim: int, n_orbitals: int, twist: np.ndarray) -> np.ndarray:
    """Integer vectors m of the ``n_orbitals`` smallest |m + twist|, deterministic ties."""
    radius = 1
    while True:
        axes = [np.arange(-radius, radius + 1)] * dim
        m = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)
        norm2 = np.sum((m + twist) ** 2, axis=1)
        # Round away float noise so that symmetry-equivalent vectors (equal |m+t|² in exact
        # arithmetic) tie exactly and the tie order below decides, not the last bit.
        key = np.round(norm2, 9)
        # lexsort: last key is primary. Ties: lexicographic on m, descending (so +x before -x).
        order = np.lexsort(tuple(-m[:, i] for i in reversed(range(dim))) + (key,))
        if n_orbitals > len(order):
            radius *= 2
            continue
        cut = key[order[n_orbitals - 1]] if n_orbitals > 0 else 0.0
        # Complete only if the cube contains the whole ball |m + t|² ≤ cut (|t_i| may be up to ~1).
        if math.sqrt(cut) + np.max(np.abs(twist), initial=0.0) < radius:
            return m[order[:n_orbitals]]
        radius *= 2


def plane_wave_orbitals(
    dim: int, L: float, n_orbitals: int, twist: np.ndarray | tuple[float, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_orbitals`` lowest plane waves e^{ik·r}/√V in a periodic square/cubic box, side ``L``.

    k = 2π (m + twist) / L with m ∈ ℤ^dim and the twist given in units of 2π/L (zero by default;
    one twist for all orbitals). Returns ``(k_vectors, energies)``: float64 arrays (M, dim) and (M,)
    with ε = |k|²/2. Order: by |m + twist|² ascending (rounded to 1e-9 so symmetry-equivalent states
    tie exactly), ties by m in descending lexicographic order, e.g. d=2 at zero twist:
    (0,0), (1,0), (0,1), (0,-1), (-1,0), (1,1), ...
    A cutoff inside a shell keeps part of it (a truncation of the Hilbert space, see module doc).

    >>> k, e = plane_wave_orbitals(2, 2 * np.pi, 5)
    >>> e.tolist()
    [0.0, 0.5, 0.5, 0.5, 0.5]
    """
    _check_dim(dim, (2, 3))
    if n_orbitals < 0:
        raise ValueError(f"n_orbitals must be >= 0, got {n_orbitals}")
    if not L > 0:
        raise ValueError(f"L must be > 0, got {L}")
    t = np.zeros(dim) if twist is None else np.asarray(twist, dtype=np.float64).reshape(-1)
    if t.shape != (dim,):
        raise ValueError(f"twist must have {dim} components, got shape {t.shape}")
    m = _plane_wave_integers(dim, n_orbitals, t)
    k = 2.0 * np.pi * (m + t) / L
    return k.astype(np.float64), 0.5 * np.sum(k**2, axis=1)


def plane_waves_within(
    dim: int, L: float, max_energy: float, twist: np.ndarray | tuple[float, ...] | None = None,
    limit: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every plane wave of the box with ε = |k|²/2 ≤ ``max_energy`` (whole shells), ordered as in
    :func:`plane_wave_orbitals`: ``(k_vectors, energies)``.

    An energy cutoff rather than a count (the electron gas's Boltzmann window above the Fermi
    level, the screened bands' expansion basis). With ``limit`` the search stops once more than
    ``limit`` plane waves lie within, and returns more than ``limit`` of them (not necessarily all):
    enough for a caller to refuse the cutoff without enumerating a huge sphere.

    >>> k, e = plane_waves_within(3, 2 * np.pi, 0.5)
    >>> len(e)
    7
    """
    tol = 1e-9 * max(abs(max_energy), 1e-300)  # the tie rounding of plane_wave_orbitals
    count = 8
    while True:
        k, e = plane_wave_orbitals(dim, L, count, twist)
        if e[-1] > max_energy + tol or (limit is not None and count > limit):
            inside = e <= max_energy + tol
            return k[inside], e[inside]
        count *= 2


def plane_wave_closed_shells(
    dim: int, max_orbitals: int, twist: np.ndarray | tuple[float, ...] | None = None
) -> list[int]:
    """Orbital counts ≤ ``max_orbitals`` at which a plane-wave shell closes ("magic numbers").

    Zero twist: d=2 → 1, 5, 9, 13, 21, 25, ...; d=3 → 1, 7, 19, 27, 33, 57, ...
    """
    _, e = plane_wave_orbitals(dim, 2.0 * np.pi, max_orbitals + 1, twist)
    key = np.round(e, 9)
    return [n for n in range(1, max_orbitals + 1) if key[n] > key[n - 1]]


def reciprocal_half_shells(dim: int, shells: int, box_length: float
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(k (K, dim), shell index (K,)): the box's reciprocal vectors 2 pi m / L (no twist) for
    integer m != 0 in the ``shells`` smallest values of |m|^2, one of each pair ±m (its first
    nonzero component positive), in increasing |m|^2 (the long waves of ``qvfe.jastrow`` and
    ``qvfe.flows.collective``)."""
    if not shells:
        return np.zeros((0, dim)), np.zeros(0, np.int64)
    reach = 1
    while True:  # until the cube |m_i| <= reach holds every m of the kept shells
        axes = np.arange(-reach, reach + 1)
        m = np.stack(np.meshgrid(*[axes] * dim, indexing="ij"), -1).reshape(-1, dim)
        first = m[np.arange(len(m)), np.argmax(m != 0, axis=1)]
        m = m[first > 0]
        norm2 = np.sum(m * m, axis=1)
        kept = np.unique(norm2)[:shells]
        if len(kept) == shells and kept[-1] <= reach**2:
            break
        reach += 1
    order = np.argsort(norm2, kind="stable")
    m, norm2 = m[order], norm2[order]
    keep = np.isin(norm2, kept)
    return 2 * np.pi * m[keep] / box_length, np.searchsorted(kept, norm2[keep])
