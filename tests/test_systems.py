"""Every ready-made spec in systems/ and the embedded default validate."""

from pathlib import Path

import pytest

from qvfe.spec import default_spec, load_spec

SYSTEMS = sorted((Path(__file__).resolve().parents[1] / "systems").glob("*.toml"))


def test_there_are_specs():
    assert len(SYSTEMS) >= 3


@pytest.mark.parametrize("path", SYSTEMS, ids=lambda p: p.stem)
def test_spec_validates(path):
    spec = load_spec(path)
    assert spec.optim.steps > 0


def test_default_spec_validates():
    assert default_spec().kind in ("ising", "coulomb_trap", "quantum_dot")
