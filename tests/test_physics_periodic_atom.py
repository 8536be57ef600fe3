"""Plane-wave diagonalization of one electron and one proton in a periodic cube: variational
convergence in the grid, the isolated atom's -1/2 Ha with its leading finite-box shift, input checks."""

import numpy as np
import pytest

from qvfe.physics.periodic_atom import hydrogen_in_a_box_energy

L_RS125 = (4 * np.pi / 3) ** (1 / 3) * 1.25  # one proton at rs = 1.25 bohr


def test_energy_converges_from_above_in_the_plane_wave_grid():
    energies = [hydrogen_in_a_box_energy(L_RS125, n) for n in (12, 16, 24)]
    assert energies[0] > energies[1] > energies[2]  # nested bases: a variational sequence
    assert energies[1] - energies[2] < 1e-4


def test_large_box_gives_the_isolated_atom_with_its_image_shift():
    """Near the proton the periodic potential is -1/r - (2 pi / 3 L^3) r^2 + (harmonic terms that
    average to zero over an s state), so E = -1/2 - 2 pi / L^3 to first order (<r^2> = 3 in 1s);
    the second order is 1e-5 at L = 16 and the 1s tail beyond L/2 1e-4. A finite grid can only
    lie above (h = 1/3 bohr costs about 8e-4 Ha at the cusp)."""
    L = 16.0
    first_order = -0.5 - 2 * np.pi / L**3
    e = hydrogen_in_a_box_energy(L, 48)
    assert first_order - 2e-4 < e < first_order + 1e-3


@pytest.mark.parametrize("kwargs, field", [({"box_length": 0.0}, "box_length"),
                                           ({"box_length": 2.0, "n_grid": 2}, "n_grid"),
                                           ({"box_length": 2.0, "n_grid": 4.5}, "n_grid")])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        hydrogen_in_a_box_energy(**kwargs)
