"""Unit constants and conversions; qvfe computes in Hartree atomic units and converts only at edges.

One job: the numbers that turn Hartree atomic units (Ha, bohr, e, k_B = 1) into what data and
users speak (Ry for Brown et al., K for hydrogen temperatures, GPa for pressures, eV, angstrom).
The values of ``HARTREE_IN_KELVIN`` and ``HA_PER_BOHR3_IN_GPA`` are the project's conventions
(DESIGN.md section 2); they agree with CODATA 2018 to the digits shown.

Example::

    >>> from qvfe.physics import units
    >>> units.convert(2.0, "Ry", "Ha")
    1.0
    >>> round(units.kelvin_to_hartree(315775.02), 12)
    1.0
"""

from __future__ import annotations

__all__ = [
    "HARTREE_IN_KELVIN",
    "HA_PER_BOHR3_IN_GPA",
    "PROTON_MASS",
    "RY_PER_HA",
    "HA_PER_RY",
    "HARTREE_IN_EV",
    "BOHR_IN_ANGSTROM",
    "ENERGY_UNITS",
    "convert",
    "ry_to_hartree",
    "hartree_to_ry",
    "kelvin_to_hartree",
    "hartree_to_kelvin",
    "pressure_to_gpa",
    "gpa_to_pressure",
]

HARTREE_IN_KELVIN = 315775.02  # 1 Ha / k_B in K
HA_PER_BOHR3_IN_GPA = 29421.02  # 1 Ha/bohr^3 in GPa
RY_PER_HA = 2.0  # 1 Ha = 2 Ry exactly
HA_PER_RY = 0.5
HARTREE_IN_EV = 27.211386245988  # CODATA 2018
BOHR_IN_ANGSTROM = 0.529177210903  # CODATA 2018
PROTON_MASS = 1836.15267343  # m_p / m_e, CODATA 2018 (the mass unit of atomic units is m_e)

# Energy units as "Ha per unit": value_in_Ha = value * ENERGY_UNITS[unit]. Temperatures count as
# energies (k_B = 1), so "K" is here too.
ENERGY_UNITS: dict[str, float] = {
    "Ha": 1.0,
    "hartree": 1.0,  # the name result.json uses (DESIGN.md section 7)
    "mHa": 1e-3,
    "Ry": HA_PER_RY,
    "mRy": 1e-3 * HA_PER_RY,
    "eV": 1.0 / HARTREE_IN_EV,
    "K": 1.0 / HARTREE_IN_KELVIN,
}


def convert(value, from_unit: str, to_unit: str):
    """Convert an energy (or temperature, k_B = 1) between units of ``ENERGY_UNITS``.

    Works on floats and on numpy / JAX arrays (plain multiplication).
    """
    try:
        factor = ENERGY_UNITS[from_unit] / ENERGY_UNITS[to_unit]
    except KeyError as err:
        known = sorted(ENERGY_UNITS)
        raise ValueError(f"unknown energy unit {err.args[0]!r}; known: {known}") from None
    return value * factor


def ry_to_hartree(value):
    """Rydberg -> Hartree (Brown et al. tabulate Ry per electron)."""
    return value * HA_PER_RY


def hartree_to_ry(value):
    """Hartree -> Rydberg."""
    return value * RY_PER_HA


def kelvin_to_hartree(temperature_k):
    """k_B T in Ha for T in kelvin."""
    return temperature_k / HARTREE_IN_KELVIN


def hartree_to_kelvin(temperature_ha):
    """T in kelvin for k_B T in Ha."""
    return temperature_ha * HARTREE_IN_KELVIN


def pressure_to_gpa(pressure_ha_per_bohr3):
    """Ha/bohr^3 -> GPa."""
    return pressure_ha_per_bohr3 * HA_PER_BOHR3_IN_GPA


def gpa_to_pressure(pressure_gpa):
    """GPa -> Ha/bohr^3."""
    return pressure_gpa / HA_PER_BOHR3_IN_GPA
