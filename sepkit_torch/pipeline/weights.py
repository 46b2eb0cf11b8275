"""Exporting weights files: what a finished run needs to restore images, small and safe to
share (the format and reading it: :mod:`sepkit_torch.checkpoint`).

A weights file holds the ECMRNet model, the degradation recognizer, the task list and the
settings the run was trained with (plain data), and nothing to resume training with (no
optimizer, no report). It is written like a checkpoint (atomically, tensors and plain
data only) and read like one, with ``torch.load(..., weights_only=True)``: opening a
weights file can never run code from it. The same run exported twice gives the same bytes.

The package ships one: :data:`~sepkit_torch.checkpoint.DEFAULT_WEIGHTS`, the ``cpu``
preset's run (``make weights`` retrains and exports it; ``docs/pipeline.md``), used by
``sepkit_torch.load()`` and ``python -m sepkit_torch restore`` when no run is named.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sepkit_torch._errors import CheckpointError
from sepkit_torch.checkpoint import (
    WEIGHTS_KIND,
    check_finite_state,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from sepkit_torch.pipeline.config import PipelineConfig
from sepkit_torch.pipeline.state import MAY_CHANGE
from sepkit_torch.pipeline.strategies import strategy_class

__all__ = ["export_weights", "retrain_weights"]

# Settings left out of a weights file: where the run lived and the speed switches, which
# do not change the weights, so that the same training exported anywhere is the same file.
_NOT_EXPORTED = (MAY_CHANGE - {"tasks"}) | {"examples"}


def export_weights(run: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the weights of the finished ECMRNet run `run` (a run folder or its checkpoint)
    to the file `path`, atomically; returns the path.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint at `run`.
    CheckpointError
        If the checkpoint is unreadable or unsafe, is a NAFNet baseline's, or the run has
        not finished all its stages (resume it first).

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from sepkit_torch.pipeline import PipelineConfig, run
    >>> from sepkit_torch.checkpoint import read_state
    >>> from sepkit_torch.pipeline.weights import export_weights
    >>> out = Path(tempfile.mkdtemp())
    >>> cfg = PipelineConfig.from_preset("smoke", tasks=["C"], out=str(out / "run"))
    >>> _ = run(cfg, progress=False)
    >>> path = export_weights(out / "run", out / "c.pt")
    >>> state = read_state(path)
    >>> state["tasks"], sorted(torch.load(path, weights_only=True))
    (['C'], ['config', 'kind', 'model', 'recognizer', 'tasks', 'version'])
    """
    payload = _payload(run, allow_weights=False)
    return save_checkpoint(_target(path, run), payload)


def retrain_weights(
    run: str | os.PathLike,
    path: str | os.PathLike,
    *,
    mode: str | None = None,
    epochs: int | None = None,
    device="cpu",
    progress: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Retrain the recognizer of a finished run (a run folder, its checkpoint, or a weights
    file such as the built-in one) and write a weights file with the run's restorer, left
    as it is, and the new recognizer; returns the path and the recognizer's info.

    Every ``recognize`` stage of the run is done again with the run's training data and
    stage seeds (:func:`~sepkit_torch.pipeline.recognition_stage.retrain_recognizer`), in
    `mode` (default: the run's ``recognizer`` setting) for `epochs` (default: the run's
    ``recognizer_epochs``); both are written into the file's settings.
    """
    from sepkit_torch.pipeline.recognition_stage import retrain_recognizer

    payload = _payload(run, allow_weights=True)
    path = _target(path, run)  # checked before the recognizer trains
    changes = {}
    if mode is not None:
        changes["recognizer"] = mode
    if epochs is not None:
        changes["recognizer_epochs"] = epochs
    settings = {**payload["config"], **changes}
    known = {f.name for f in dataclasses.fields(PipelineConfig)}
    config = PipelineConfig(**{k: v for k, v in settings.items() if k in known})
    recognizer, info = retrain_recognizer(config, device=device, progress=progress)
    payload["config"] = {**payload["config"], **changes}
    payload["recognizer"] = recognizer.cpu().state_dict()
    return save_checkpoint(path, payload), info


def _target(path, run) -> Path:
    """The weights file to write: a file (new or replaced) that is not the run's own
    checkpoint or weights file (an export never writes over its input)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        raise CheckpointError(f"`out` must name the weights file to write; got {path!r}")
    path, source = Path(path), checkpoint_path(run, "run")
    if path.is_dir():
        raise CheckpointError(f"`out` must be a file to write; {str(path)!r} is a folder")
    if path.exists() and os.path.samefile(path, source):
        raise CheckpointError(
            f"`out` {str(path)!r} is the file read ({str(source)!r}): writing the weights "
            "there would replace it; choose another file"
        )
    return path


def _payload(run, *, allow_weights: bool) -> dict[str, Any]:
    """What a weights file of `run` holds (a run must be a finished ECMRNet run)."""
    source = checkpoint_path(run, "run")
    data = load_checkpoint(source)
    for part in ("model", "recognizer"):  # a weights file of NaN restores nothing
        check_finite_state(data.get(part), f"`run` {str(source)!r}", part)
    if data.get("kind") == WEIGHTS_KIND:
        if allow_weights:
            return {k: data[k] for k in ("kind", "config", "model", "recognizer", "tasks")}
        raise CheckpointError(f"`run` {str(source)!r} is a weights file already, not a run")
    saved = data.get("config") or {}
    config = PipelineConfig(**saved)
    kind = strategy_class(config.method)
    if not kind.restores:
        raise CheckpointError(
            f"`run` {str(source)!r} is a run of the {kind.network} baseline {config.method!r}; "
            "weights files hold ECMRNet runs"
        )
    missing = [s.name for s in kind.stages(config) if s.name not in data["done"]]
    if missing:
        raise CheckpointError(
            f"`run` {str(source)!r} has not finished: {len(missing)} stage(s) left, from "
            f"{missing[0]!r}; continue it with --resume, then export"
        )
    settings = {k: v for k, v in saved.items() if k not in _NOT_EXPORTED}
    return {
        "kind": WEIGHTS_KIND,
        "config": settings,
        "model": data["model"],
        "recognizer": data["recognizer"],
        "tasks": list(data["report"]["tasks"]),
    }
