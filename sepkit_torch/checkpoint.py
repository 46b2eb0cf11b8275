"""The checkpoint format: one versioned file of tensors and plain data, for a run's
checkpoint and for a weights file alike, written atomically and read safely.

A file is read with ``torch.load(..., weights_only=True)``: loading it can never run code
from it. A run's checkpoint (``checkpoint.pt`` in its folder; the pipeline writes it after
every stage) holds the configuration, the finished stages, the model, the report and the
strategy's state; a weights file (``kind == "weights"``, ``python -m sepkit_torch.pipeline
export``) holds what restoring needs: the model, the recognizer, the task list and the
run's settings.

The package ships one weights file, :data:`DEFAULT_WEIGHTS` (the ``cpu`` preset's run),
used by ``sepkit_torch.load()`` and ``python -m sepkit_torch restore`` when no run is named.

This module sits below the pipeline and :mod:`sepkit_torch.inference`: restoring images
does not import the pipeline.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from sepkit_torch._errors import CheckpointError
from sepkit_torch._files import atomic_write
from sepkit_torch.data import SCENE_STYLES

__all__ = [
    "CHECKPOINT",
    "DEFAULT_WEIGHTS",
    "READABLE_VERSIONS",
    "VERSION",
    "WEIGHTS_KIND",
    "CheckpointError",
    "check_finite_state",
    "checkpoint_path",
    "describe",
    "load_checkpoint",
    "read_state",
    "save_checkpoint",
]

#: The file name of a run's checkpoint inside its folder.
CHECKPOINT = "checkpoint.pt"
#: The built-in model, shipped inside the package.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default.pt"
#: The ``kind`` entry that tells a weights file from a run's checkpoint.
WEIGHTS_KIND = "weights"
#: Bumped when the layout or the meaning of a run's seeds changes. 2: no pickled Python
#: objects (version 1 held the global random generators' states). 3: stage seeds hash the
#: stage's whole name (version 2 gave the stages of a long task name one seed).
VERSION = 3
#: The versions :func:`load_checkpoint` reads: version 2 has the layout of version 3, so its
#: models restore and export; only resuming a run needs the current seeds.
READABLE_VERSIONS = (2, 3)


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write `payload` (plus the format version) to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: torch.save({"version": VERSION, **payload}, f))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely, onto the CPU.

    Raises
    ------
    FileNotFoundError
        If there is nothing at `path`.
    CheckpointError
        If `path` is a folder, a truncated or foreign file, a file holding anything but
        tensors and plain data (it is refused before any of it is built), or a checkpoint
        of a format version not in :data:`READABLE_VERSIONS`.
    """
    path = _path(path, "path")
    if path.is_dir():
        raise CheckpointError(f"`{path}` is a folder, not a checkpoint file")
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():  # a FIFO or a device would block or read forever
        raise CheckpointError(f"`{path}` is not a regular file, so not a checkpoint")
    try:
        with open(path, "rb") as f:
            head, is_zip = f.read(8), zipfile.is_zipfile(f)
    except OSError as err:
        raise CheckpointError(f"`{path}` cannot be read: {err}") from None
    if not is_zip:  # random bytes, or an old-style pickle: told apart from unsafe objects
        raise CheckpointError(
            f"`{path}` is not a readable sepkit_torch checkpoint (truncated or another kind "
            f"of file: not the zip archive torch.save writes; it begins {head!r}); it is "
            "not loaded"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"`{path}` holds objects other than tensors and plain data; it is not loaded, "
            f"since loading it could run code ({str(err).splitlines()[-1][:200]})"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"`{path}` is not a readable sepkit_torch checkpoint (truncated or another "
            f"kind of file): {err}"
        ) from None
    version = data.get("version") if isinstance(data, dict) else None
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"`{path}` is a checkpoint of format version {version!r}; this sepkit_torch "
            f"reads versions {list(READABLE_VERSIONS)}"
        )
    return data


def read_state(checkpoint: str | os.PathLike | None = None) -> dict[str, Any]:
    """The restoring state of a run folder, a checkpoint or a weights file (None: the
    built-in weights): ``model``, ``recognizer`` (or None), ``tasks``, ``config`` and
    ``source``, a one-line description of where they come from.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint at `checkpoint` (or the built-in file is missing).
    CheckpointError
        If the file is not a safe, readable checkpoint or weights file.
    """
    path = DEFAULT_WEIGHTS if checkpoint is None else checkpoint_path(checkpoint)
    if checkpoint is None and not path.is_file():
        raise FileNotFoundError(
            f"the built-in weights are missing ({path}); reinstall sepkit, or name a run"
        )
    data = load_checkpoint(path)
    if "model" not in data:
        raise CheckpointError(f"`checkpoint` {str(path)!r} holds no model (keys {sorted(data)})")
    for part in ("model", "recognizer"):
        check_finite_state(data.get(part), f"`checkpoint` {str(path)!r}", part)
    config = data.get("config") or {}
    weights = data.get("kind") == WEIGHTS_KIND
    tasks = data.get("tasks") if weights else (data.get("report") or {}).get("tasks")
    return {
        "model": data["model"],
        "recognizer": data.get("recognizer"),
        "tasks": tasks,
        "config": config,
        "source": describe(path, config, tasks, builtin=checkpoint is None),
    }


def check_finite_state(state, where: str, part: str = "model") -> None:
    """Every floating-point tensor of `state` (nested dicts and lists too) is finite: a
    model with NaN or infinite weights would restore every image to NaN (written as black)
    or train on to NaN; :class:`CheckpointError` names the first such entry."""
    for key, tensor in _tensors(state, part):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = tensor[~torch.isfinite(tensor)].flatten()[0].item()
            raise CheckpointError(
                f"{where} holds a {part} with NaN or infinite weights ({key} has {bad}); "
                "it cannot restore images: retrain or export the run again"
            )


def _tensors(state, prefix: str):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}.{key}")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}[{i}]")


def _path(value, name: str) -> Path:
    """`value` as a path: a str or os.PathLike naming something (not empty)."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike); got {type(value).__name__} {value!r}"[
                :300
            ]
        )
    if isinstance(value, str) and not value.strip():
        raise CheckpointError(f"`{name}` must name a file or folder; got {value!r}")
    try:
        return Path(value)
    except TypeError:  # an os.PathLike that gives bytes
        raise TypeError(f"`{name}` must be a text path; got {value!r}") from None


def describe(path: Path, config: dict[str, Any], tasks, *, builtin: bool = False) -> str:
    """One line naming a model: its file and the run's preset, model size, data, tasks."""
    where = "built-in default model" if builtin else str(path)
    details = []
    if config.get("preset"):
        details.append(f"preset {config['preset']}")
    if config.get("model"):
        details.append(f"model {config['model']}")
    if "data" in config:
        details.append(
            f"{config.get('scene_style', SCENE_STYLES[0])} procedural scenes"
            if config["data"] is None
            else f"data {config['data']}"
        )
    if tasks:
        details.append(f"tasks {','.join(tasks)}")
    if builtin:
        details.insert(0, str(path))
    return f"{where} ({'; '.join(details)})" if details else where


def checkpoint_path(run: str | os.PathLike, name: str = "checkpoint") -> Path:
    """The checkpoint file of `run`: a run folder's ``checkpoint.pt``, or `run` itself.

    `name` is the argument's name in the error message; ``"run"`` asks for a run (a
    folder or its checkpoint), anything else also allows a weights file.
    """
    path = _path(run, name)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            what = (
                f"a run folder holding {CHECKPOINT} or its checkpoint file"
                if name == "run"
                else f"a run folder holding {CHECKPOINT}, a checkpoint file or a weights file"
            )
            raise FileNotFoundError(
                f"`{name}` must be {what}; {str(path)!r} is a folder without {CHECKPOINT}"
            )
        return path / CHECKPOINT
    return path
