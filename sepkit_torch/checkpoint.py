"""Atomic checkpoints: write to a temporary file in the same folder, then rename.

A crash while writing leaves the previous checkpoint intact: ``os.replace`` is atomic
on POSIX and Windows when source and target are on the same file system.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

#: Bumped when the layout of a checkpoint changes incompatibly.
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format version) to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"version": CHECKPOINT_VERSION, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (on the CPU).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        If the file is not a sepkit_torch checkpoint or comes from another format
        version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated or foreign file
        raise ValueError(f"`{path}` is not a readable sepkit_torch checkpoint: {err}") from err
    version = data.get("version") if isinstance(data, dict) else None
    if version != CHECKPOINT_VERSION:
        raise ValueError(
            f"`{path}` is a checkpoint of format version {version!r}; this sepkit_torch "
            f"reads version {CHECKPOINT_VERSION}"
        )
    return data


def rng_state() -> dict[str, Any]:
    """The state of every global random generator the pipeline touches."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (the legacy global state is what we save)
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
