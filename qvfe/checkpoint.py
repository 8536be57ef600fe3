"""Checkpoints: a training state pytree written atomically, checksummed, and read back without pickle.

Format: a magic line, the SHA-256 of the payload, then a msgpack payload (``flax.serialization``) that
holds ``{"step": int, "state": <state dict>}``. Only arrays, numbers, strings and containers are
stored, so loading a checkpoint can never execute code. A truncated or corrupted file fails the
checksum and the previous checkpoint is used instead.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

MAGIC = b"QVFE-CHECKPOINT-1\n"
_NAME = re.compile(r"^step_(\d{9})\.ckpt$")


class CheckpointError(RuntimeError):
    """No usable checkpoint, or one that does not fit the run's state."""


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_host(state: Any) -> Any:
    # typed PRNG keys are stored as their raw data; the template tells how to wrap them back
    state = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
    return jax.tree.map(np.asarray, jax.device_get(state))


def encode(step: int, state: Any) -> bytes:
    payload = serialization.msgpack_serialize(
        {"step": int(step), "state": serialization.to_state_dict(_to_host(state))})
    return MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def decode(blob: bytes, template: Any) -> tuple[int, Any]:
    """Bytes -> (step, state shaped like ``template``); raises CheckpointError if damaged."""
    if not blob.startswith(MAGIC):
        raise CheckpointError("not a qvfe checkpoint (bad header)")
    rest = blob[len(MAGIC):]
    digest, sep, payload = rest.partition(b"\n")
    if not sep or hashlib.sha256(payload).hexdigest().encode() != digest:
        raise CheckpointError("checksum mismatch (truncated or corrupted file)")
    try:
        raw = serialization.msgpack_restore(payload)
        host_template = _to_host(template)
        state = serialization.from_state_dict(host_template, raw["state"])
    except Exception as e:  # flax raises several types for shape/structure mismatches
        raise CheckpointError(f"checkpoint does not match this run's state: {e}") from None
    for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(host_template)):
        if np.shape(got) != np.shape(want):
            raise CheckpointError("checkpoint does not match this run's state: "
                                  f"array of shape {np.shape(got)} where {np.shape(want)} expected")
    # put arrays back with the template's dtypes, and re-wrap typed PRNG keys
    state = jax.tree.map(
        lambda s, t: (jax.random.wrap_key_data(jnp.asarray(s), impl=jax.random.key_impl(t))
                      if _is_key(t) else jnp.asarray(s, dtype=jnp.asarray(t).dtype)),
        state, template)
    return int(raw["step"]), state


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"step_{step:09d}.ckpt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file in ``directory``, newest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), d / n) for n in os.listdir(d) if (m := _NAME.match(n))]
    return sorted(found, reverse=True)


def save(directory: Path, step: int, state: Any, keep: int = 3) -> Path:
    """Write atomically (temporary file, fsync, rename) and prune all but the newest ``keep``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = checkpoint_path(d, step)
    for stale in d.glob("*.tmp"):  # of a write killed before its rename: never read
        stale.unlink(missing_ok=True)
    tmp = path.with_suffix(".tmp")
    blob = encode(step, state)
    with open(tmp, "wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for _, old in list_checkpoints(d)[keep:]:
        old.unlink(missing_ok=True)
    return path


def restore_latest(directory: Path, template: Any | Callable[[int], Any]
                   ) -> tuple[int, Any] | None:
    """The newest readable checkpoint as (step, state), or None when there is none.

    ``template`` is the state's pytree, or a function of the step that returns it (for states
    whose shapes grow with the step, such as the samples of an evaluation in progress).
    A damaged newest file is skipped with a warning and the previous one is used.
    """
    candidates = list_checkpoints(directory)
    errors = []
    for step, path in candidates:
        try:
            return decode(path.read_bytes(), template(step) if callable(template) else template)
        except (CheckpointError, OSError) as e:
            warnings.warn(f"checkpoint {path.name} is unusable ({e}); trying an older one",
                          stacklevel=2)
            errors.append(f"{path.name}: {e}")
    if candidates:
        raise CheckpointError("no usable checkpoint in " + str(directory) + ": "
                              + "; ".join(errors))
    return None
