"""A run's state on disk: the files of a run folder, what its checkpoint holds, and the
rules for starting, resuming and replacing a run (the file format, written atomically and
read safely: :mod:`sepkit_torch.checkpoint`).

A run folder holds ``checkpoint.pt`` (the source of truth, written atomically after every
stage), ``config.json`` (the resolved configuration, for people) and the report files. A
checkpoint holds only tensors and plain data and is read with ``torch.load(...,
weights_only=True)``: loading a file can never run code from it.

Nothing is written before the first stage has finished: a run killed earlier leaves no
trace, and a run that replaces another (``overwrite``) replaces it only then.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sepkit_torch._errors import CheckpointError, RunFolderError, TaskStateError
from sepkit_torch._files import atomic_write_text
from sepkit_torch.checkpoint import CHECKPOINT, VERSION, load_checkpoint, save_checkpoint

__all__ = [
    "CHECKPOINT",
    "CONFIG_FILE",
    "REPORT_FILES",
    "KEYS",
    "CheckpointError",
    "RunFolderError",
    "check_done",
    "check_resumable",
    "commit_stage",
    "load_checkpoint",
    "prepare_folder",
    "save_checkpoint",
]

log = logging.getLogger("sepkit_torch.pipeline")

CONFIG_FILE = "config.json"
#: The report's files (:mod:`sepkit_torch.pipeline.report`); a run replaces only these.
REPORT_FILES = (
    "report.json",
    "report.md",
    "metric_matrix.png",
    "model_size.png",
    "restored_strip.png",
)
# The checkpoint's keys: what every stage saves. The run's own, then the strategy's
# (its state_dict: the model, and the recognizer and regulariser or None).
RUN_KEYS = ("version", "config", "done", "report")
STRATEGY_KEYS = ("model", "recognizer", "regularizer")
KEYS = RUN_KEYS + STRATEGY_KEYS

# Settings a resumed run may change: the task list (extended), where the run lives, and
# the speed switches that leave the results unchanged (`amp` changes the rounding).
MAY_CHANGE = frozenset(
    {
        "tasks",
        "out",
        "channels_last",
        "compile",
        "optimizer_impl",
        "grouped_conv",
        "workers",
        "pin_memory",
    }
)

# Settings only the prune stages read: free to change until a prune stage is done.
SEP_SETTINGS = frozenset(
    {
        "sep_pool",
        "sep_rho",
        "sep_method",
        "sep_tie",
        "sep_criterion",
        "sep_similarity",
        "sep_budget",
        "sep_compensate",
    }
)


# ----------------------------------------------------------------------------- files


def write_config(out: Path, config) -> None:
    atomic_write_text(out / CONFIG_FILE, json.dumps(config.to_dict(), indent=2) + "\n")


# ----------------------------------------------------------------------------- the folder


@dataclass
class Folder:
    """What :func:`prepare_folder` found in a run folder."""

    path: Path
    checkpoint: dict[str, Any] | None = None
    # report files of a run being replaced: deleted once the new run has a checkpoint
    stale: list[Path] = field(default_factory=list)


def prepare_folder(out: Path, *, resume: bool, overwrite: bool) -> Folder:
    """Check that `out` can take the run and read its checkpoint when resuming.

    - A missing or empty folder, or one of this project's runs that never finished a
      stage (a ``config.json`` and no checkpoint), starts afresh.
    - A folder holding a run is continued with `resume`, replaced with `overwrite`
      (only once the new run has finished its first stage), and refused otherwise.
    - A folder holding anything else is refused, unless `overwrite`: then the run's own
      files are written into it and nothing else there is touched.

    The folder must be writable: that is checked now, not after the first stage.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"`out` must be a folder; {str(out)!r} is a file")
    checkpoint = out / CHECKPOINT
    if checkpoint.is_dir():
        raise RunFolderError(f"`{checkpoint}` is a folder; a run's checkpoint must be a file")
    has_run = checkpoint.exists()
    is_run = has_run or (out / CONFIG_FILE).is_file()
    contents = (
        sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.is_dir() else []
    )
    ours = {CHECKPOINT, CONFIG_FILE, *REPORT_FILES}
    foreign = [n for n in contents if n not in ours] if is_run else contents
    folder = Folder(out)
    if resume and has_run:
        folder.checkpoint = load_checkpoint(checkpoint)
        if folder.checkpoint["version"] != VERSION:
            raise CheckpointError(
                f"the run in {out} was made by an earlier sepkit_torch (checkpoint version "
                f"{folder.checkpoint['version']}), whose stages drew other random seeds: "
                f"resuming it would mix two seedings. Start it again with overwrite=True "
                f"(--overwrite); its model can still be exported and used to restore images"
            )
    elif resume and not is_run:
        raise TaskStateError(
            f"`resume` needs a run in {out}; found no {CHECKPOINT} there"
            + (f" (it holds {foreign[:5]})" if foreign else "")
        )
    elif resume:
        log.info("%s: the run finished no stage before it stopped; starting it afresh", out)
    elif has_run and not overwrite:
        raise RunFolderError(
            f"{out} already holds a run; continue it with resume=True (--resume) or "
            "replace it with overwrite=True (--overwrite)"
        )
    elif foreign and not is_run and not overwrite:
        raise RunFolderError(
            f"`out` {str(out)!r} holds files this project did not write ({foreign[:5]}); "
            "choose an empty or new folder, or pass overwrite=True (--overwrite) to write "
            "the run's files into it (other files are left alone)"
        )
    if not folder.checkpoint:
        folder.stale = [
            out / name for name in (CONFIG_FILE, *REPORT_FILES) if (out / name).exists()
        ]
    _check_writable(out)
    return folder


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        # a probe of its own: the ranks of a distributed run check the folder at once
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise RunFolderError(f"`out` {str(out)!r} is not a writable folder: {err}") from None


def check_resumable(saved: dict[str, Any], new, out: Path, done=()) -> None:
    """A run saved with the settings `saved` (its ``config.json``, a dict) that finished
    the stages `done` may continue with the config `new`.

    Beyond :data:`MAY_CHANGE`, the SEP settings (:data:`SEP_SETTINGS`) may change while no
    ``prune`` stage is done: only the prune stages read them, and every stage draws its
    own seeds, so the run ends as one started with the new settings would. That is how a
    run saved with a SEP setting the prune step refuses is fixed without losing its
    training.
    """
    b = new.to_dict()
    free = MAY_CHANGE
    if not any(isinstance(n, str) and n.endswith(":prune") for n in done):
        free = free | SEP_SETTINGS
    # the saved keys: a setting added since the run was saved takes its default
    differ = sorted(k for k in saved if k not in free and saved.get(k) != b.get(k))
    if differ:
        raise TaskStateError(
            f"the run in {out} was made with other settings ({', '.join(differ)}: "
            f"{[saved.get(k) for k in differ]} there, {[b.get(k) for k in differ]} now); "
            "resume with the same configuration, or start a new run"
        )
    tasks = list(saved.get("tasks") or [])
    if list(new.tasks[: len(tasks)]) != tasks:
        raise TaskStateError(f"`tasks` must extend the run's tasks {tasks}; got {list(new.tasks)}")


def check_done(done, names: list[str], out: Path) -> None:
    """The stages a checkpoint lists as done are the first stages of the run (`names`,
    in order): the order every run does them in."""
    if (
        not isinstance(done, list)
        or not all(isinstance(n, str) for n in done)
        or done != names[: len(done)]
    ):
        raise CheckpointError(
            f"the checkpoint in {out} lists the stages done {done!r}; a run of these settings "
            f"does its stages in the order {names}: it cannot be resumed (start the run again "
            "with overwrite=True, --overwrite)"
        )


def commit_stage(folder: Folder, config, done, report, strategy_state: dict[str, Any]) -> None:
    """Save a finished stage: the checkpoint first (atomically), then ``config.json``;
    after the first stage of a run, the report files of the run it replaces go.

    The checkpoint holds the configuration, the stages `done`, the `report` and the
    strategy's ``state_dict()`` (exactly the keys :data:`STRATEGY_KEYS`).
    """
    if set(strategy_state) != set(STRATEGY_KEYS):
        raise TaskStateError(
            f"a strategy's state must have the keys {list(STRATEGY_KEYS)}; got "
            f"{sorted(strategy_state)}"
        )
    payload = {
        "config": config.to_dict(),
        "done": list(done),
        "report": report.to_dict(),
        **strategy_state,
    }
    out = folder.path
    save_checkpoint(out / CHECKPOINT, payload)
    write_config(out, config)
    for path in folder.stale:
        if path.name != CONFIG_FILE:
            path.unlink(missing_ok=True)
    folder.stale = []
