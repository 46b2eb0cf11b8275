"""``run(config)``: the whole task sequence, one stage at a time, a checkpoint after each.

Every rank of a torchrun job computes; rank 0 alone writes. A killed run continues with
``resume=True`` from its last completed stage and ends with the same report: every stage
draws its randomness from seeds derived from ``(config.seed, stage)``, never from state
left by earlier stages.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.distributed import DistContext, device_of, init_distributed
from sepkit_torch.models.nafnet import NAFNet
from sepkit_torch.pipeline.config import PipelineConfig
from sepkit_torch.pipeline.data import test_set, train_set
from sepkit_torch.pipeline.recognizer import is_recognizer_stage, load_recognizer
from sepkit_torch.pipeline.report import Report, write_report
from sepkit_torch.pipeline.stages import make_runner, stage_names
from sepkit_torch.pipeline.state import check_resumable, commit_stage, prepare_folder
from sepkit_torch.speed import quiet_numba_threads

__all__ = ["run"]

log = logging.getLogger("sepkit_torch.pipeline")


def run(
    config: PipelineConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: str | None = None,
) -> Report:
    """Run (or continue) the task sequence of `config`; returns the report.

    Parameters
    ----------
    config : PipelineConfig
    resume : bool
        Continue the run in ``config.out`` from its last completed stage. Its saved
        configuration must equal `config`, except that `config` may append tasks (and
        change the speed switches that leave results unchanged).
    overwrite : bool
        Replace a run (or other files) in ``config.out``. The old run stays until the new
        one has finished its first stage; files of other programs are left alone.
    progress : bool
        Show progress bars (tqdm).
    stop_after : str, optional
        Stop after the stage of this name (e.g. ``"C:train"``): what a crash would do,
        for tests of resuming.
    """
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(
            f"`device` is {config.device!r} but no CUDA device is available; use 'cpu'"
        )
    quiet_numba_threads()
    joined = not torch.distributed.is_initialized()
    ctx = init_distributed(config.device)
    try:
        return _run(config, ctx, resume, overwrite, progress, stop_after)
    finally:
        if joined and ctx.distributed:
            torch.distributed.destroy_process_group()


def _run(config, ctx: DistContext, resume, overwrite, progress, stop_after) -> Report:
    """:func:`run` in one process of `ctx`: every rank computes, rank 0 writes."""
    if ctx.distributed and config.method != "ecmrnet":
        raise InvalidInputError(
            f"`method` {config.method!r} runs in one process only; several processes "
            f"(torchrun, here {ctx.world_size}) need method 'ecmrnet'"
        )
    stages = stage_names(config)
    if stop_after is not None and stop_after not in stages:
        raise InvalidInputError(f"`stop_after` must be one of {stages}; got {stop_after!r}")
    _check_data(config)
    out = Path(config.out)
    folder = prepare_folder(out, resume=resume, overwrite=overwrite)  # every rank reads
    ctx.barrier()
    saved = folder.checkpoint
    if saved is not None:
        check_resumable(PipelineConfig(**saved["config"]), config, out)
        log.info("resuming %s after %s", out, saved["done"][-1] if saved["done"] else "nothing")
    device = device_of(ctx, config.device)
    model = _model(config, saved).to(device)
    report = Report(config.to_dict()) if saved is None else Report.from_dict(saved["report"])
    report.config = config.to_dict()
    done = [] if saved is None else list(saved["done"])
    runner = make_runner(config, model, report, device, progress and ctx.is_main, ctx=ctx)
    if saved is not None and saved.get("regularizer") is not None:
        runner.load_regularizer(saved["regularizer"])
    runner.recognizer = load_recognizer(None if saved is None else saved.get("recognizer"), device)
    # the restorer's stages keep their seeds whether or not the recognizer's are there
    seed_index = {s: i for i, s in enumerate(s for s in stages if not is_recognizer_stage(s))}
    for index, stage in enumerate(stages):
        if stage in done:
            continue
        log.info("stage %d/%d: %s", index + 1, len(stages), stage)
        start = time.perf_counter()
        torch.manual_seed(mix_seed(config.seed, seed_index.get(stage, index)))
        runner.do(stage)
        report.seconds[stage] = round(time.perf_counter() - start, 3)
        done.append(stage)
        payload = _payload(config, done, model, report, runner)
        if ctx.is_main:
            commit_stage(folder, config, payload)
        ctx.barrier()
        if stage == stop_after:
            log.info("stopping after %s as asked", stage)
            return report
    if config.examples is not None:
        report.examples = runner.real_examples(Path(config.examples))
    if ctx.is_main:
        write_report(report, out, strip=runner.strip())
        log.info("report written to %s", out / "report.md")
    ctx.barrier()
    return report


def _payload(config, done, model, report, runner) -> dict:
    """The checkpoint of a finished stage (tensors and plain data only)."""
    return {
        "config": config.to_dict(),
        "done": list(done),
        "model": model.state_dict(),
        "report": report.to_dict(),
        # the last training stage's optimizer and schedule, for inspection: every
        # stage builds its own, so resuming at a stage boundary does not need them
        "optimizer": runner.optimizer_state,
        "regularizer": runner.regularizer_state(),
        "recognizer": None if runner.recognizer is None else runner.recognizer.state_dict(),
    }


def _model(config, saved):
    if saved is not None:
        if config.method == "ecmrnet":
            return ECMRNet.from_state_dict(saved["model"])
        model = NAFNet(config.baseline)
        model.load_state_dict(saved["model"])
        return model
    torch.manual_seed(config.seed)
    return (
        ECMRNet.from_preset(config.model) if config.method == "ecmrnet" else NAFNet(config.baseline)
    )


def _check_data(config) -> None:
    """Build the first task's data sets now: a bad folder fails before anything runs."""
    train_set(config, config.tasks[0], "pretrain")
    test_set(config, config.tasks[0])
