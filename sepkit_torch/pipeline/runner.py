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

from sepkit_torch._errors import CheckpointError, InvalidInputError, SepkitTorchError
from sepkit_torch.checkpoint import check_finite_state
from sepkit_torch.data.sampling import mix_seed
from sepkit_torch.distributed import DistContext, device_of, init_distributed
from sepkit_torch.pipeline.config import PipelineConfig, check_config, check_processes
from sepkit_torch.pipeline.data import example_pairs, test_set, train_set
from sepkit_torch.pipeline.recognition_stage import is_recognizer_stage
from sepkit_torch.pipeline.report import Report, real_examples, restored_strip, write_report
from sepkit_torch.pipeline.state import (
    check_done,
    check_resumable,
    commit_stage,
    prepare_folder,
)
from sepkit_torch.pipeline.strategies import strategy_class
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
    check_config(config)
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
    kind = strategy_class(config.method)
    check_processes(config, ctx.world_size)  # what one process allows and several do not
    stages = kind.stages(config)
    names = [s.name for s in stages]
    if stop_after is not None and stop_after not in names:
        raise InvalidInputError(f"`stop_after` must be one of {names}; got {stop_after!r}")
    _check_data(config)
    out = Path(config.out)
    folder = prepare_folder(out, resume=resume, overwrite=overwrite)  # every rank reads
    ctx.barrier()
    saved = folder.checkpoint
    if saved is not None:
        if not isinstance(saved.get("config"), dict):
            raise CheckpointError(f"the checkpoint in {out} does not hold this run's settings")
        check_done(saved["done"], names, out)
        check_resumable(saved["config"], config, out, saved["done"])
        kind.check_resume(saved["config"], config)
        check_finite_state(saved.get("model"), f"the checkpoint in {out}")
        log.info("resuming %s after %s", out, saved["done"][-1] if saved["done"] else "nothing")
    device = device_of(ctx, config.device)
    if saved is None:
        report = Report(config.to_dict())
    else:
        report = _saved(lambda: Report.from_dict(saved["report"]), out, "report")
    report.config = config.to_dict()
    report.network, report.sequential = kind.network, kind.sequential
    done = [] if saved is None else list(saved["done"])
    strategy = kind(config, report, device, progress and ctx.is_main, ctx=ctx)
    if saved is None:
        strategy.start()
    else:  # the saved model must hold what its finished stages made: checked before any
        # stage runs or anything is written
        _saved(lambda: strategy.load_state_dict(saved), out, f"{kind.network} model and state")
        strategy.check_state(done, out)
    # the restorer's stages keep their seeds whether or not the recognizer's are there
    seed_index = {s: i for i, s in enumerate(s for s in stages if not is_recognizer_stage(s))}
    for index, stage in enumerate(stages):
        if stage.name in done:
            continue
        log.info("stage %d/%d: %s", index + 1, len(stages), stage)
        start = time.perf_counter()
        torch.manual_seed(mix_seed(config.seed, seed_index.get(stage, index)))
        strategy.do(stage)
        report.seconds[stage.name] = round(time.perf_counter() - start, 3)
        done.append(stage.name)
        if ctx.is_main:
            commit_stage(folder, config, done, report, strategy.state_dict())
        ctx.barrier()
        if stage.name == stop_after:
            log.info("stopping after %s as asked", stage)
            return report
    if config.examples is not None:
        with strategy.evaluating() as restore:
            report.examples = real_examples(
                Path(config.examples), config.examples_task, report.tasks, restore
            )
    if ctx.is_main:
        with strategy.evaluating() as restore:
            strip = restored_strip(report.tasks, strategy.test_images, restore)
        write_report(report, out, strip=strip)
        log.info("report written to %s", out / "report.md")
    ctx.barrier()
    return report


def _saved(read, out: Path, what: str):
    """``read()`` of a part of a checkpoint; a part that is not what this run saves is a
    :class:`CheckpointError` naming it, not an error from deep inside."""
    try:
        return read()
    except CheckpointError:
        raise
    except (SepkitTorchError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(
            f"the checkpoint in {out} does not hold this run's {what} "
            f"({type(err).__name__}: {err}); it cannot be resumed: start the run again with "
            "overwrite=True (--overwrite)"
        ) from None


def _check_data(config) -> None:
    """Build the first task's data sets now: a bad folder fails before anything runs."""
    train_set(config, config.tasks[0], "pretrain")
    test_set(config, config.tasks[0])
    if config.examples is not None:  # scored at the end of the run
        example_pairs(config.examples)
