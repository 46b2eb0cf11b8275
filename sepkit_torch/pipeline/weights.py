"""Weights files: what a finished run needs to restore images, small and safe to share.

A weights file holds the ECMRNet model, the degradation recognizer, the task list and the
settings the run was trained with (plain data), and nothing to resume training with (no
optimizer, no report). It is written like a checkpoint (atomically, tensors and plain
data only) and read like one, with ``torch.load(..., weights_only=True)``: opening a
weights file can never run code from it. The same run exported twice gives the same bytes.

The package ships one: :data:`DEFAULT_WEIGHTS`, the ``cpu`` preset's run
(``make weights`` retrains and exports it; ``docs/pipeline.md``), used by
``sepkit_torch.load()`` and ``python -m sepkit_torch restore`` when no run is named.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sepkit_torch.data import SCENE_STYLES
from sepkit_torch.pipeline.config import PipelineConfig
from sepkit_torch.pipeline.stages import stage_names
from sepkit_torch.pipeline.state import (
    CHECKPOINT,
    MAY_CHANGE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["DEFAULT_WEIGHTS", "WEIGHTS_KIND", "describe", "export_weights", "read_state"]

#: The built-in model, shipped inside the package.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default.pt"
#: The ``kind`` entry that tells a weights file from a run's checkpoint.
WEIGHTS_KIND = "weights"
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
    >>> from sepkit_torch.pipeline.weights import export_weights, read_state
    >>> out = Path(tempfile.mkdtemp())
    >>> cfg = PipelineConfig.from_preset("smoke", tasks=["C"], out=str(out / "run"))
    >>> _ = run(cfg, progress=False)
    >>> path = export_weights(out / "run", out / "c.pt")
    >>> state = read_state(path)
    >>> state["tasks"], sorted(torch.load(path, weights_only=True))
    (['C'], ['config', 'kind', 'model', 'recognizer', 'tasks', 'version'])
    """
    source = _checkpoint_path(run, "run")
    data = load_checkpoint(source)
    if data.get("kind") == WEIGHTS_KIND:
        raise CheckpointError(f"`run` {str(source)!r} is a weights file already, not a run")
    config = data.get("config") or {}
    if config.get("method", "ecmrnet") != "ecmrnet":
        raise CheckpointError(
            f"`run` {str(source)!r} is a run of the NAFNet baseline {config['method']!r}; "
            "weights files hold ECMRNet runs"
        )
    missing = [s for s in stage_names(PipelineConfig(**config)) if s not in data["done"]]
    if missing:
        raise CheckpointError(
            f"`run` {str(source)!r} has not finished: {len(missing)} stage(s) left, from "
            f"{missing[0]!r}; continue it with --resume, then export"
        )
    settings = {k: v for k, v in config.items() if k not in _NOT_EXPORTED}
    return save_checkpoint(
        path,
        {
            "kind": WEIGHTS_KIND,
            "config": settings,
            "model": data["model"],
            "recognizer": data["recognizer"],
            "tasks": list(data["report"]["tasks"]),
        },
    )


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
    path = DEFAULT_WEIGHTS if checkpoint is None else _checkpoint_path(checkpoint)
    if checkpoint is None and not path.is_file():
        raise FileNotFoundError(
            f"the built-in weights are missing ({path}); reinstall sepkit, or name a run"
        )
    data = load_checkpoint(path)
    if "model" not in data:
        raise CheckpointError(f"`checkpoint` {str(path)!r} holds no model (keys {sorted(data)})")
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


def _checkpoint_path(run: str | os.PathLike, name: str = "checkpoint") -> Path:
    path = Path(run)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            what = (
                f"a run folder holding {CHECKPOINT}, a checkpoint file or a weights file"
                if name == "checkpoint"
                else f"a run folder holding {CHECKPOINT} or its checkpoint file"
            )
            raise FileNotFoundError(
                f"`{name}` must be {what}; {str(path)!r} is a folder without {CHECKPOINT}"
            )
        return path / CHECKPOINT
    return path
