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
    spec = default_spec()
    # the quick start's calculation is a quantum system with an exact reference
    assert spec.kind == "quantum_dot" and (spec.system.n_up, spec.system.n_down) == (1, 1)
