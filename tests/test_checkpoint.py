"""Checkpoints: exact round trip of a realistic state, atomic pruning, damage detection, fallback."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qvfe import checkpoint


def _state(seed=0):
    params = {"w": jax.random.normal(jax.random.PRNGKey(seed), (3, 4)), "b": jnp.zeros(4)}
    opt = optax.adam(1e-3)
    return {"params": params, "opt_state": opt.init(params),
            "key": jax.random.PRNGKey(seed + 1), "typed_key": jax.random.key(seed + 2),
            "walkers": jnp.arange(6.0).reshape(2, 3), "width": jnp.asarray(0.3),
            "n": jnp.asarray(5, dtype=jnp.int32)}


def _same(a, b):
    def eq(x, y):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    jax.tree.map(eq, a, b)


def test_round_trip_is_exact(tmp_path):
    s = _state(0)
    checkpoint.save(tmp_path, 7, s)
    step, r = checkpoint.restore_latest(tmp_path, _state(1))
    assert step == 7
    _same(s, r)
    assert jax.tree.structure(r) == jax.tree.structure(s)


def test_keeps_newest_only(tmp_path):
    for k in range(1, 6):
        checkpoint.save(tmp_path, k, _state(k), keep=3)
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [5, 4, 3]
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_newest_falls_back_with_warning(tmp_path, damage):
    checkpoint.save(tmp_path, 1, _state(1))
    newest = checkpoint.save(tmp_path, 2, _state(2))
    blob = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        newest.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    else:
        newest.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable"):
        step, r = checkpoint.restore_latest(tmp_path, _state(0))
    assert step == 1
    _same(r, _state(1))


def test_all_damaged_is_an_error_and_empty_is_none(tmp_path):
    assert checkpoint.restore_latest(tmp_path, _state(0)) is None
    p = checkpoint.save(tmp_path, 1, _state(1))
    p.write_bytes(p.read_bytes()[:40])
    with pytest.warns(UserWarning), pytest.raises(checkpoint.CheckpointError):
        checkpoint.restore_latest(tmp_path, _state(0))


def test_wrong_shape_is_rejected(tmp_path):
    checkpoint.save(tmp_path, 1, _state(0))
    other = _state(0)
    other["walkers"] = jnp.zeros((4, 3))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        checkpoint.decode(checkpoint.checkpoint_path(tmp_path, 1).read_bytes(), other)


def test_no_pickle_in_payload(tmp_path):
    p = checkpoint.save(tmp_path, 1, _state(0))
    assert b"pickle" not in p.read_bytes() and p.read_bytes().startswith(checkpoint.MAGIC)


def test_a_save_removes_the_temporary_file_of_a_write_killed_before_its_rename(tmp_path):
    state = {"w": np.arange(3.0)}
    checkpoint.save(tmp_path, 10, state)
    (tmp_path / "step_000000013.tmp").write_bytes(b"half a checkpoint")  # killed mid-write
    checkpoint.save(tmp_path, 20, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000000010.ckpt",
                                                          "step_000000020.ckpt"]
