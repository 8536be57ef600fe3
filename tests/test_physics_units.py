"""Unit constants are the project's conventions and conversions invert each other."""

import numpy as np
import pytest

from qvfe.physics import units


def test_constants():
    assert units.HARTREE_IN_KELVIN == 315775.02
    assert units.HA_PER_BOHR3_IN_GPA == 29421.02
    assert units.RY_PER_HA == 2.0 and units.HA_PER_RY == 0.5
    # CODATA 2018 cross-checks of the rounded project values
    assert units.HARTREE_IN_EV * 1.602176634e-19 / 1.380649e-23 == pytest.approx(315775.02, rel=1e-7)
    assert 4.3597447222071e-18 / (units.BOHR_IN_ANGSTROM * 1e-10) ** 3 / 1e9 == pytest.approx(
        29421.02, rel=1e-6)


def test_conversions_round_trip():
    assert units.ry_to_hartree(2.0) == 1.0
    assert units.hartree_to_ry(0.5) == 1.0
    assert units.kelvin_to_hartree(units.HARTREE_IN_KELVIN) == pytest.approx(1.0, rel=1e-15)
    assert units.hartree_to_kelvin(units.kelvin_to_hartree(1234.5)) == pytest.approx(1234.5)
    assert units.pressure_to_gpa(units.gpa_to_pressure(100.0)) == pytest.approx(100.0)
    assert units.pressure_to_gpa(1.0) == 29421.02
    assert units.convert(-56.3, "mRy", "Ha") == pytest.approx(-0.02815)
    assert units.convert(1.0, "Ha", "eV") == pytest.approx(units.HARTREE_IN_EV)
    assert units.convert(10000.0, "K", "Ha") == pytest.approx(10000.0 / 315775.02)
    np.testing.assert_allclose(units.convert(np.array([1.0, 2.0]), "Ry", "mHa"), [500.0, 1000.0])
    with pytest.raises(ValueError, match="unknown energy unit"):
        units.convert(1.0, "kcal", "Ha")
