"""Several strategies on the same task sequence, and one report comparing them.

``compare(config, methods)`` runs the pipeline once per method into ``config.out/<method>``
(each its own resumable run) and writes ``comparison.json``, ``comparison.md`` and plots
into ``config.out``. ``python -m sepkit_torch.pipeline compare`` is its command line.

The NAFNet baselines share one pretraining: the first baseline stops after its
``pretrain`` stage, that checkpoint is kept as ``config.out/pretrained-nafnet.pt``, and
every other baseline starts from a copy of it. This is exact, not an approximation: the
pretrain stage depends only on the seed, the NAFNet preset and the data settings, which
all baselines share (tested against a standalone run).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sepkit_torch._errors import CheckpointError, InvalidInputError, TaskStateError
from sepkit_torch._files import atomic_write
from sepkit_torch.checkpoint import VERSION
from sepkit_torch.pipeline.config import PipelineConfig, check_config
from sepkit_torch.pipeline.report import Report, write_comparison
from sepkit_torch.pipeline.runner import run
from sepkit_torch.pipeline.state import (
    CHECKPOINT,
    CONFIG_FILE,
    RunFolderError,
    load_checkpoint,
    save_checkpoint,
)
from sepkit_torch.pipeline.strategies import METHODS, strategy_class

__all__ = ["compare", "summarize"]

log = logging.getLogger("sepkit_torch.pipeline")

PRETRAINED = "pretrained-nafnet.pt"
# stages outside the training budget: evaluation, and the recognizer (blind restoration
# is an addition to ECMRNet, not part of restoring a known task)
_NOT_TRAINING = (":evaluate", ":recognize")


def compare(
    config: PipelineConfig,
    methods: tuple[str, ...] | list[str] = METHODS,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every method of `methods` on `config`'s sequence; returns the comparison.

    Each method runs with ``config`` (its ``method`` and ``out`` replaced) into
    ``config.out/<method>``. With `resume`, finished methods are read back and a method
    stopped midway continues; methods not started yet start.
    """
    check_config(config)
    if isinstance(methods, str) or not methods:
        raise InvalidInputError(f"`methods` must be a non-empty list of {list(METHODS)}")
    bad = [m for m in methods if m not in METHODS]
    if bad or len(set(methods)) != len(methods):
        raise InvalidInputError(
            f"`methods` must name distinct methods of {list(METHODS)}; got {list(methods)}"
        )
    if config.strength is not None or config.strength_grid:
        raise InvalidInputError(
            "`strength`/`strength_grid` differ per method: run that method alone with them "
            f"(--method); got strength={config.strength!r}, strength_grid={config.strength_grid}"
        )
    out = Path(config.out)
    _check_folder(out, overwrite=overwrite)
    shared = out / PRETRAINED
    if overwrite:
        shared.unlink(missing_ok=True)
    reports = {}
    for method in methods:
        cfg = dataclasses.replace(config, method=method, out=str(out / method))
        started = resume and (Path(cfg.out) / CHECKPOINT).is_file()
        log.info("method %s -> %s", method, cfg.out)
        if strategy_class(method).shares_pretraining and not started:
            if shared.is_file():
                _start_from_pretrained(shared, cfg, overwrite=overwrite)
            else:
                run(cfg, overwrite=overwrite, progress=progress, stop_after="pretrain")
                pretrained = (Path(cfg.out) / CHECKPOINT).read_bytes()
                atomic_write(shared, lambda f, data=pretrained: f.write(data))
            started = True
        reports[method] = run(cfg, resume=started, overwrite=overwrite, progress=progress)
    summary = summarize(reports)
    write_comparison(summary, reports, out)
    return summary


# What a comparison folder holds besides its methods' run folders.
_COMPARISON_FILES = (
    PRETRAINED,
    "comparison.json",
    "comparison.md",
    "comparison_psnr.png",
    "comparison_summary.png",
)


def _check_folder(out: Path, *, overwrite: bool) -> None:
    """A comparison writes only into a new or empty folder, or one of its own."""
    if not out.is_dir() or overwrite:
        return
    ours = {*METHODS, *_COMPARISON_FILES}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and p.name[0] != ".")
    if foreign:
        raise RunFolderError(
            f"`out` {str(out)!r} holds files a comparison did not write ({foreign[:5]}); "
            "choose an empty or new folder, or pass overwrite=True (--overwrite)"
        )


def _start_from_pretrained(shared: Path, config: PipelineConfig, *, overwrite: bool) -> None:
    """Make `config`'s run folder hold a run stopped after the shared pretraining."""
    out = Path(config.out)
    if ((out / CHECKPOINT).exists() or (out / CONFIG_FILE).exists()) and not overwrite:
        raise TaskStateError(
            f"{out} already holds a run; continue it with resume=True (--resume) or "
            "replace it with overwrite=True (--overwrite)"
        )
    data = load_checkpoint(shared)
    if data["version"] != VERSION:
        raise CheckpointError(
            f"{shared} was made by an earlier sepkit_torch (checkpoint version "
            f"{data['version']}), whose stages drew other random seeds; start the comparison "
            "again with overwrite=True (--overwrite)"
        )
    if data["done"] != ["pretrain"]:
        raise TaskStateError(f"{shared} must hold a run stopped after pretraining")
    report = Report.from_dict(data["report"])
    report.config = config.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    data.pop("version")
    save_checkpoint(
        out / CHECKPOINT, {**data, "config": config.to_dict(), "report": report.to_dict()}
    )


def summarize(reports: dict[str, Report]) -> dict[str, Any]:
    """Per method: average final PSNR/SSIM, forgetting, size, MACs and training time."""
    rows = {}
    for method, report in reports.items():
        final = report.metrics[-1]
        forgetting = report.forgetting()
        earlier = [forgetting[t] for t in report.tasks[:-1]] if forgetting else []
        paths = report.size[-1]["paths"]
        rows[method] = {
            "model": strategy_class(method).model_label(report.config),
            "psnr": round(float(np.mean([m["psnr"] for m in final])), 4),
            "ssim": round(float(np.mean([m["ssim"] for m in final])), 4),
            # a task's forgetting: PSNR right after learning it minus at the end; the
            # last task cannot have forgotten, so it is left out of the mean
            "forgetting": round(float(np.mean(earlier)), 4) if earlier else None,
            "total_params": report.size[-1]["total_params"],
            "macs_per_path": round(float(np.mean([p["macs"] for p in paths.values()]))),
            "params_per_path": round(
                float(np.mean([p["activated_params"] for p in paths.values()]))
            ),
            "train_seconds": round(
                sum(s for k, s in report.seconds.items() if not k.endswith(_NOT_TRAINING)), 1
            ),
            "strength": report.strategy.get("strength"),
            "final": {t: m for t, m in zip(report.tasks, final, strict=True)},
        }
    return {"tasks": next(iter(reports.values())).tasks, "methods": rows}
