"""The ECMRNet task sequence: pretrain, then expand, train, SEP-prune, fine-tune, evaluate.

``config.method`` picks the strategy: ``"ecmrnet"`` (the default, the sequence above) or
one of the NAFNet baselines of :mod:`sepkit_torch.continual.baselines` (``finetune``,
``ewc``, ``si``, ``mas``, ``lwf``: pretrain, [tune the regulariser's strength on a
validation split], then per task train and evaluate; ``joint``: pretrain, one training
on every task at once, evaluate), with the same data, budgets and evaluation.

``run(config)`` does the whole loop and writes, under ``config.out``, a checkpoint after
every stage (atomically), the resolved configuration and the report (``report.json``,
``report.md`` and PNG plots). A killed run continues with ``resume=True`` from its last
completed stage and ends with the same report: every stage draws its randomness from
seeds derived from ``(config.seed, stage)``, never from state left by earlier stages.

``python -m sepkit_torch.pipeline`` is the command line (:mod:`sepkit_torch.cli`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch
from torch.utils.data import DataLoader

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.checkpoint import load_checkpoint, rng_state, save_checkpoint
from sepkit_torch.complexity import complexity
from sepkit_torch.continual.baselines import (
    DEFAULT_STRENGTH_GRIDS,
    METHODS,
    REGULARIZED,
    JointData,
    TaskPerBatchSampler,
    make_regularizer,
)
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.continual.pruning import METHODS as SEP_METHODS
from sepkit_torch.continual.pruning import SIMILARITIES, PruneReport, prune, select_groups
from sepkit_torch.continual.pruning import TIES as SEP_TIES
from sepkit_torch.continual.recognition import (
    RECOGNIZER_MODES,
    is_recognizer_stage,
    load_recognizer,
    recognizer_stage,
)
from sepkit_torch.data import PAPER_TASKS, list_images, make_dataset, parse_task, read_image
from sepkit_torch.data.synthetic import mix_seed
from sepkit_torch.distributed import (
    DistContext,
    ShardedBatchSampler,
    device_of,
    init_distributed,
    scores_by_index,
    shard_range,
    wrap_model,
)
from sepkit_torch.metrics import LOSSES, psnr, ssim
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.models.nafnet import NAFNET_PRESETS, NAFNet
from sepkit_torch.report import write_report
from sepkit_torch.speed import (
    AMP_MODES,
    OPTIMIZER_IMPLS,
    autocast,
    loader_options,
    make_adam,
    parse_grouped_conv,
    set_grouped_conv,
    to_channels_last,
)

__all__ = ["PRESETS", "PipelineConfig", "Report", "run", "stage_seed", "test_set", "train_set"]

log = logging.getLogger("sepkit_torch.pipeline")

CHECKPOINT = "checkpoint.pt"
CONFIG_FILE = "config.json"
#: The stage name of joint training (all tasks at once).
JOINT = "joint"
# seed of the validation images (strength tuning), apart from every stage's seed
_VALIDATION_SEED = 0x5EED_7A11


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run depends on (read-only); saved with the run as ``config.json``.

    Sizes are in epochs over the training set: ``train_length`` procedural frames per
    epoch (or every image of a folder). A frame gives ``repeat`` random crops of
    ``crop_size``, or, with a ``stride``, every window of a sliding ``crop_size`` window;
    frames are degraded whole, then cut. Procedural frames are ``frame_size`` (empty: the
    crop size, one item per frame). SEP's pool is ``sep_pool`` whole degraded frames.

    The baselines' settings: ``baseline`` is the NAFNet preset; ``strength`` the
    regulariser's strength (None: the best of ``strength_grid``, or of the method's
    default grid, by average PSNR on a validation split after training the first
    ``tune_tasks`` tasks for ``tune_epochs`` epochs each); ``importance_batches`` training
    batches feed EWC's Fisher and MAS's importance at the end of each task.
    """

    preset: str = "demo"
    method: str = "ecmrnet"
    model: str = "tiny"
    tasks: tuple[str, ...] = PAPER_TASKS
    data: str | None = None
    degradation_preset: str = "ecmrnet"
    seed: int = 0
    crop_size: int = 48
    frame_size: tuple[int, ...] = ()
    stride: int = 0
    train_length: int = 640
    test_length: int = 6
    test_size: int = 64
    repeat: int = 1
    batch_size: int = 8
    pretrain_epochs: int = 10
    epochs: int = 4
    finetune_epochs: int = 1
    lr: float = 2e-3
    loss: str = "paper"
    prune: bool = True
    sep_pool: int = 16
    sep_rho: float = 0.1
    sep_method: str = "sweep"
    sep_tie: str = "random"
    sep_similarity: str = "pearson"
    skmm: str = "released"
    device: str = "cpu"
    out: str = "runs/demo"
    examples: str | None = None
    examples_task: str = "CBN"
    baseline: str = "demo"
    strength: float | None = None
    strength_grid: tuple[float, ...] = ()
    tune_tasks: int = 2
    tune_epochs: int = 2
    importance_batches: int = 4
    # speed switches (docs/performance.md); all but `amp` leave the results unchanged
    amp: str = "none"
    channels_last: bool = False
    compile: bool = False
    optimizer_impl: str = "default"
    grouped_conv: str = "native"
    workers: int = 0
    pin_memory: bool = False
    # the degradation recognizer (blind restoration): "context" trains each letter's head
    # around the letters learned before it, "pairs" on its task's pairs only, "none" skips it
    recognizer: str = "context"
    recognizer_epochs: int = 3

    def __post_init__(self):
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if kind is tuple:
                item = _TUPLES[name]
                what = f"a list of {'strings' if item is str else 'numbers'}"
                if isinstance(value, str) or not isinstance(value, (list, tuple)):
                    raise InvalidInputError(f"`{name}` must be {what}; got {value!r}")
                if not all(_is_a(v, item) for v in value):
                    raise InvalidInputError(f"`{name}` must be {what}; got {value!r}")
                object.__setattr__(self, name, tuple(item(v) for v in value))
            elif value is None and name in _OPTIONAL:
                continue
            elif kind is float and _is_a(value, float):
                object.__setattr__(self, name, float(value))
            elif not _is_a(value, kind):
                raise InvalidInputError(
                    f"`{name}` must be {kind.__name__}; got {value!r} ({type(value).__name__})"
                )
        for name in (
            "crop_size",
            "train_length",
            "test_length",
            "test_size",
            "repeat",
            "batch_size",
            "sep_pool",
            "tune_tasks",
            "importance_batches",
        ):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"`{name}` must be >= 1; got {getattr(self, name)!r}")
        for name in (
            "pretrain_epochs",
            "epochs",
            "finetune_epochs",
            "tune_epochs",
            "recognizer_epochs",
            "seed",
        ):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"`{name}` must be >= 0; got {getattr(self, name)!r}")
        if self.stride < 0:
            raise InvalidInputError(f"`stride` must be >= 0 (0: random crops); got {self.stride!r}")
        if self.frame_size and (len(self.frame_size) != 2 or min(self.frame_size) < self.crop_size):
            raise InvalidInputError(
                f"`frame_size` must be [height, width], each at least `crop_size` "
                f"{self.crop_size}; got {list(self.frame_size)}"
            )
        if self.frame_size and self.data is not None:
            raise InvalidInputError(
                "`frame_size` sets the size of procedural frames; a folder's frames are its "
                f"images (`data` is {self.data!r})"
            )
        if self.stride and self.repeat != 1:
            raise InvalidInputError(
                f"`stride` cuts every window of a frame: `repeat` must be 1; got {self.repeat}"
            )
        if self.stride and self.data is None and not self.frame_size:
            raise InvalidInputError(
                "`stride` cuts windows from procedural frames: set `frame_size`"
            )
        _choice("loss", self.loss, tuple(LOSSES))
        _choice("sep_method", self.sep_method, SEP_METHODS)
        _choice("sep_tie", self.sep_tie, SEP_TIES)
        _choice("sep_similarity", self.sep_similarity, SIMILARITIES)
        _choice("skmm", self.skmm, ("released", "paper", "none"))
        _choice("model", self.model, ("tiny", "paper"))
        _choice("method", self.method, METHODS)
        _choice("amp", self.amp, AMP_MODES)
        _choice("optimizer_impl", self.optimizer_impl, OPTIMIZER_IMPLS)
        parse_grouped_conv(self.grouped_conv)
        if self.workers < 0:
            raise InvalidInputError(f"`workers` must be >= 0; got {self.workers!r}")
        _choice("baseline", self.baseline, tuple(NAFNET_PRESETS))
        for value in (self.strength, *self.strength_grid):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise InvalidInputError(
                    f"`strength` and `strength_grid` must be finite and >= 0; got {value!r}"
                )
        if (self.strength is not None or self.strength_grid) and self.method not in REGULARIZED:
            raise InvalidInputError(
                f"`strength` and `strength_grid` apply to the methods {sorted(REGULARIZED)}; "
                f"`method` is {self.method!r}"
            )
        _choice("recognizer", self.recognizer, RECOGNIZER_MODES)
        if not 0 < self.sep_rho <= 1:
            raise InvalidInputError(f"`sep_rho` must be in (0, 1]; got {self.sep_rho!r}")
        if not self.tasks:
            raise InvalidInputError("`tasks` must name at least one task; got []")
        _check_sequence(self.tasks)
        if self.examples is not None and self.examples_task not in self.tasks:
            raise InvalidInputError(
                f"`examples_task` must be one of `tasks` {list(self.tasks)} to score the "
                f"examples; got {self.examples_task!r}"
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> PipelineConfig:
        """The preset `name` (see :data:`PRESETS`) with `overrides` applied."""
        if name not in PRESETS:
            raise InvalidInputError(f"`preset` must be one of {sorted(PRESETS)}; got {name!r}")
        unknown = sorted(set(overrides) - set(_FIELD_TYPES))
        if unknown:
            raise InvalidInputError(
                f"unknown setting(s) {unknown}; known settings are {sorted(_FIELD_TYPES)}"
            )
        return cls(**{**PRESETS[name], **overrides, "preset": name})

    @classmethod
    def from_toml(cls, path, **overrides) -> PipelineConfig:
        """Read a TOML file of config keys (``preset = "..."`` picks the base values)."""
        with open(path, "rb") as f:
            data = tomllib.load(f)
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise InvalidInputError(
                f"`{path}` has unknown key(s) {unknown}; known keys are {sorted(_FIELD_TYPES)}"
            )
        preset = overrides.get("preset", data.get("preset", "demo"))
        return cls.from_preset(preset, **{**data, **overrides})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for name in _TUPLES:
            data[name] = list(data[name])
        return data


# Fields of several values (and the type of each), and fields that may be None.
_TUPLES = {"tasks": str, "strength_grid": float, "frame_size": int}
_OPTIONAL = {"data": str, "examples": str, "strength": float}
_FIELD_TYPES = {
    f.name: tuple if f.name in _TUPLES else _OPTIONAL.get(f.name) or type(f.default)
    for f in dataclasses.fields(PipelineConfig)
}


def _is_a(value, kind) -> bool:
    """`value` is of `kind`, where an int counts as a float and a bool as neither."""
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


#: Named settings. ``demo``: the tiny model on procedural scenes, the whole seven-task
#: sequence in minutes on a CPU. ``paper``: the paper's protocol (a GPU's work).
#: ``smoke``: a few steps of everything, for tests.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": {},
    # one epoch: 1,200 frames of 512 x 640 (HM-TIR's training split), 12 windows each
    "paper": dict(
        model="paper",
        crop_size=256,
        frame_size=(512, 640),
        stride=128,
        train_length=1200,
        test_length=300,
        test_size=512,
        batch_size=24,
        pretrain_epochs=100,
        epochs=100,
        finetune_epochs=20,
        lr=1e-4,
        sep_pool=300,
        device="cuda",
        out="runs/paper",
        baseline="paper-baseline",
        tune_epochs=20,
    ),
    "smoke": dict(
        crop_size=16,
        train_length=4,
        test_length=2,
        test_size=24,
        batch_size=2,
        pretrain_epochs=1,
        epochs=1,
        finetune_epochs=1,
        sep_pool=2,
        recognizer_epochs=1,
        out="runs/smoke",
        baseline="tiny",
        tune_epochs=1,
        importance_batches=1,
    ),
}


@dataclass
class Report:
    """What a run measured; ``report.json`` holds the same as plain data."""

    config: dict[str, Any]
    tasks: list[str] = field(default_factory=list)
    # metrics[i][j]: task j evaluated after learning task i (j <= i), {"psnr", "ssim"}
    metrics: list[list[dict[str, float]]] = field(default_factory=list)
    degraded: dict[str, dict[str, float]] = field(default_factory=dict)
    pruning: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    pretrain: dict[str, float] = field(default_factory=dict)
    # real degraded/clean pairs (config.examples): per image, degraded input, our
    # restoration and, where present, the peer's restoration (PSNR/SSIM)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    # the baselines: the strength used and its tuning, joint training's batches per task
    strategy: dict[str, Any] = field(default_factory=dict)
    # the degradation recognizer: letters, size, and its scores after each task
    recognizer: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(**data)

    @property
    def method(self) -> str:
        return self.config.get("method", "ecmrnet")

    def row_labels(self) -> list[str]:
        """What each row of ``metrics`` comes after (joint training has one row)."""
        return ["all tasks"] if self.method == JOINT else list(self.tasks[: len(self.metrics)])

    def forgetting(self) -> dict[str, float]:
        """Per task: PSNR right after learning it minus PSNR at the end (0 = no forgetting).

        Empty for joint training, which learns every task at once.
        """
        if self.method == JOINT:
            return {}
        out = {}
        for j, name in enumerate(self.tasks):
            out[name] = self.metrics[j][j]["psnr"] - self.metrics[-1][j]["psnr"]
        return out


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
        configuration must equal `config`, except that `config` may append tasks.
    overwrite : bool
        Start afresh even if ``config.out`` holds a run.
    progress : bool
        Show progress bars (tqdm).
    stop_after : str, optional
        Stop after the stage of this name (e.g. ``"C:train"``): what a crash would do,
        for tests of resuming.
    """
    out = Path(config.out)
    _quiet_numba_threads()
    _device(config.device)
    joined = not torch.distributed.is_initialized()
    ctx = init_distributed(config.device)
    try:
        return _run(config, ctx, out, resume, overwrite, progress, stop_after)
    finally:
        if joined and ctx.distributed:
            torch.distributed.destroy_process_group()


def _run(config, ctx: DistContext, out, resume, overwrite, progress, stop_after) -> Report:
    """:func:`run` in one process of `ctx`: every rank computes, rank 0 writes."""
    if ctx.distributed and config.method != "ecmrnet":
        raise InvalidInputError(
            f"`method` {config.method!r} runs in one process only; several processes "
            f"(torchrun, here {ctx.world_size}) need method 'ecmrnet'"
        )
    state = _start(config, out, resume=resume, overwrite=overwrite, ctx=ctx)
    device = device_of(ctx, config.device)
    model, report, done = state["model"].to(device), state["report"], state["done"]
    stages = _stages(config)
    if stop_after is not None and stop_after not in stages:
        raise InvalidInputError(f"`stop_after` must be one of {stages}; got {stop_after!r}")
    runner_class = _Runner if config.method == "ecmrnet" else _BaselineRunner
    runner = runner_class(config, model, report, device, progress and ctx.is_main, ctx=ctx)
    if state.get("regularizer") is not None:
        runner.load_regularizer(state["regularizer"])
    runner.recognizer = load_recognizer(state.get("recognizer"), device)
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
        _save_on_main(
            ctx,
            out / CHECKPOINT,
            {
                "config": config.to_dict(),
                "done": list(done),
                "model": model.state_dict(),
                "report": report.to_dict(),
                "rng": rng_state(),
                # the last training stage's optimizer and schedule, for inspection: every
                # stage builds its own, so resuming at a stage boundary does not need them
                "optimizer": runner.optimizer_state,
                "regularizer": runner.regularizer_state(),
                "recognizer": None if runner.recognizer is None else runner.recognizer.state_dict(),
            },
        )
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


# ----------------------------------------------------------------------------- stages


def _stages(config: PipelineConfig) -> list[str]:
    stages = ["pretrain"]
    if config.method == JOINT:
        return [*stages, f"{JOINT}:train", f"{JOINT}:evaluate"]
    if config.method != "ecmrnet":
        if config.method in REGULARIZED and config.strength is None:
            stages.append("tune")
        return stages + [f"{t}:{step}" for t in config.tasks for step in ("train", "evaluate")]
    for task in config.tasks:
        stages.append(f"{task}:train")
        if config.prune:
            stages.append(f"{task}:prune")
            if config.finetune_epochs > 0:
                stages.append(f"{task}:finetune")
        stages.append(f"{task}:evaluate")
        if config.recognizer != "none":
            stages.append(f"{task}:recognize")
    return stages


class _Runner:
    """Carries out one stage at a time on the model and the report."""

    def __init__(self, config, model, report, device, progress, *, ctx=None):
        self.config = config
        self.model = model
        self.report = report
        self.device = device
        self.progress = progress
        self.ctx = DistContext() if ctx is None else ctx
        self.optimizer_state: dict[str, Any] | None = None
        self.recognizer = None
        self.regularizer = None
        # what trains: the model, or its DDP / compiled wrapper (set by _fit)
        self._net: torch.nn.Module | None = None

    def regularizer_state(self) -> dict[str, Any] | None:
        return None if self.regularizer is None else self.regularizer.state_dict()

    def load_regularizer(self, state: dict[str, Any]) -> None:
        raise TaskStateError(f"method {self.config.method!r} has no regulariser to restore")

    def do(self, stage: str) -> None:
        if stage == "pretrain":
            self.report.pretrain = {"loss": self._fit(None, self.config.pretrain_epochs, stage)}
            return
        task, step = stage.rsplit(":", 1)
        if step == "train":
            self._add(task)
            self._fit(task, self.config.epochs, stage)
        elif step == "prune":
            self._prune(task, stage)
        elif step == "finetune":
            self._fit(task, self.config.finetune_epochs, stage)
            self.report.pruning[task]["after_finetuning"] = self._evaluate_one(task)
        elif step == "recognize":
            self.recognizer = recognizer_stage(
                self.config,
                self.recognizer,
                task,
                self.report,
                train_set=self._train_set(task, stage),
                test_sets={t: self._test_set(t) for t in self.report.tasks},
                seed=stage_seed(self.config, stage, 2),
                device=self.device,
                progress=self.progress,
            )
        else:
            self._evaluate(task)

    def _add(self, task: str) -> None:
        parts = parse_task(task)
        if len(parts) > 1:
            skmm = None if self.config.skmm == "none" else self.config.skmm
            self.model.add_task(_model_name(task), parts=parts, skmm=skmm)
        else:
            self.model.add_task(_model_name(task))
        self.model.to(self.device)
        self.report.tasks.append(task)

    def _fit(self, task: str | None, epochs: int, stage: str) -> float:
        """Train the trainable part (the backbone, or `task`'s branch) for `epochs`.

        ``task=None`` is clean-to-clean pretraining (never regularised).
        """
        cfg = self.config
        clean_only = task is None
        data, loader = self._loader(task, stage)
        self._prepare()
        optimizer = make_adam(self._trainable(), cfg.lr, impl=cfg.optimizer_impl)
        total = max(1, epochs * len(loader))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total, eta_min=cfg.lr / 100
        )
        loss_fn = LOSSES[cfg.loss]
        reg = None if clean_only else self.regularizer
        last = float("nan")
        bar = _bar(epochs * len(loader), stage, self.progress)
        self.model.train()
        self._net = self._training_net()
        for epoch in range(epochs):
            data.set_epoch(epoch)
            for degraded, clean in loader:
                degraded = degraded.to(self.device, non_blocking=True)
                clean = clean.to(self.device, non_blocking=True)
                source = clean if clean_only else degraded
                optimizer.zero_grad(set_to_none=True)
                with autocast(self.device, cfg.amp):
                    restored = self._forward(source, task)
                restored = restored.float()  # the loss in float32 whatever the precision
                loss = loss_fn(restored, clean)
                if reg is not None:
                    loss = loss + reg.penalty(self.model, source, restored)
                loss.backward()
                if reg is not None:
                    reg.before_step(self.model)
                optimizer.step()
                if reg is not None:
                    reg.after_step(self.model)
                scheduler.step()
                last = loss.item()
                bar.set_postfix(loss=f"{last:.4f}")
                bar.update()
        bar.close()
        self._net = None
        self.optimizer_state = {
            "stage": stage,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        log.info("%s: final training loss %.4f", stage, last)
        return round(last, 6)

    def _prune(self, task: str, stage: str) -> None:
        cfg = self.config
        data = self._train_set(task, stage)
        n = min(cfg.sep_pool, len(data.frame_items))
        mine = shard_range(n, self.ctx)  # this rank's part of the pool
        pool = _frame_batches([data.frame(i)[0] for i in mine], self.device)
        name = _model_name(task)
        before = {**self._size(task), **self._evaluate_one(task)}
        groups_before = list(self.model.task(name).groups)
        selection = select_groups(
            self.model,
            name,
            pool,
            similarity_kind=cfg.sep_similarity,
            method=cfg.sep_method,
            tie=cfg.sep_tie,
            rho=cfg.sep_rho,
            seed=cfg.seed,
            sample_ids=list(mine),
            reduce=self.ctx.all_reduce_sum if self.ctx.distributed else None,
        )
        prune(self.model, name, selection.keep)
        self.model.to(self.device)
        self.report.pruning[task] = PruneReport(
            task=task,
            groups_before=groups_before,
            groups_after=list(selection.kept_counts),
            pool=n,
            frequency={s: selection.frequency[s].round(4).tolist() for s in STAGE_NAMES},
            seconds={k: round(v, 4) for k, v in selection.seconds.items()},
            before=before,
            after_pruning={**self._size(task), **self._evaluate_one(task)},
        ).to_dict()
        log.info("%s: groups %s -> %s", stage, groups_before, list(selection.kept_counts))

    def _evaluate(self, task: str) -> None:
        self.report.metrics.append([self._evaluate_one(t) for t in self.report.tasks])
        self.report.degraded[task] = self._evaluate_one(task, identity=True)
        self._record_size(task)

    def _record_size(self, after: str) -> None:
        self.report.size.append(
            {
                "after": after,
                "total_params": sum(p.numel() for p in self.model.parameters()),
                "paths": {t: self._size(t) for t in self.report.tasks},
            }
        )

    def real_examples(self, folder: Path) -> dict[str, dict[str, Any]]:
        """Score the task ``examples_task`` on real pairs: ``folder/hard`` against
        ``folder/imgs`` (same file names), beside the peer's ``folder/enh_hard`` if any."""
        task = self.config.examples_task
        if task not in self.report.tasks:
            raise InvalidInputError(
                f"`examples_task` {task!r} is not one of the run's tasks {self.report.tasks}"
            )
        clean_dir, hard_dir, peer_dir = folder / "imgs", folder / "hard", folder / "enh_hard"
        if not (clean_dir.is_dir() and hard_dir.is_dir()):
            raise InvalidInputError(
                f"`examples` must hold the folders imgs/ and hard/; got {folder}"
            )
        out: dict[str, dict[str, Any]] = {}
        self.model.eval()
        with torch.no_grad():
            for path in list_images(hard_dir):
                clean = read_image(clean_dir / path.name).unsqueeze(0)
                hard = read_image(path).unsqueeze(0)
                ours = self._forward(hard.to(self.device), task).clamp(0, 1)
                row = {"degraded": _scores(hard, clean), "ours": _scores(ours.cpu(), clean)}
                if (peer_dir / path.name).is_file():
                    row["peer"] = _scores(read_image(peer_dir / path.name).unsqueeze(0), clean)
                out[path.stem] = row
        self.model.train()
        return out

    def strip(self) -> list[tuple]:
        """The first test image of every task: degraded, restored, clean."""
        rows = []
        self.model.eval()
        with torch.no_grad():
            for task in self.report.tasks:
                degraded, clean = self._test_set(task)[0]
                restored = self._forward(degraded.unsqueeze(0).to(self.device), task)
                restored = restored.clamp(0, 1)[0]
                rows.append((task, degraded, restored.cpu(), clean))
        self.model.train()
        return rows

    # -- helpers
    def _forward(self, x: torch.Tensor, task: str | None) -> torch.Tensor:
        """The model's restoration of `x` along `task`'s path (None: the backbone)."""
        return self._module()(x, task=None if task is None else _model_name(task))

    def _module(self) -> torch.nn.Module:
        """What runs a forward pass: the training wrapper while training, else the model."""
        return self.model if self._net is None else self._net

    def _prepare(self) -> None:
        """Apply the grouped-convolution algorithm and the memory layout of the config
        (again after every expansion or pruning: new modules start plain)."""
        set_grouped_conv(self.model, self.config.grouped_conv)
        if self.config.channels_last:
            to_channels_last(self.model)

    def _training_net(self) -> torch.nn.Module:
        """The model inside DDP when several processes train, compiled if asked."""
        net = wrap_model(self.model, self.ctx, self.device)
        return torch.compile(net) if self.config.compile else net

    def _trainable(self) -> list[torch.nn.Parameter]:
        return self.model.trainable_parameters()

    def _loader(self, task: str | None, stage: str):
        """The training set of `task` (clean images for None) and its seeded loader."""
        cfg = self.config
        data = self._train_set(task or "C", stage)
        g = torch.Generator().manual_seed(stage_seed(cfg, stage, 1))
        # the batches a shuffled DataLoader draws from `g`; each rank takes its part
        batches = ShardedBatchSampler(
            len(data),
            cfg.batch_size,
            generator=g,
            rank=self.ctx.rank,
            world_size=self.ctx.world_size,
            drop_last=len(data) >= cfg.batch_size,
            frame_items=data.frame_items,
        )
        options = loader_options(cfg.workers, cfg.pin_memory, self.device)
        return data, DataLoader(data, batch_sampler=batches, generator=g, **options)

    def _train_set(self, task: str, stage: str):
        return train_set(self.config, task, stage)

    @functools.cache  # noqa: B019 (one runner per run; the sets are fixed and reused)
    def _test_set(self, task: str):
        return test_set(self.config, task)

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, (1, 1, 512, 640), task=_model_name(task))
        return {"activated_params": c.activated_params, "macs": c.macs}

    @functools.cache  # noqa: B019
    def _val_set(self, task: str):
        """Fixed validation images of `task`: training-split images (never the test
        split) with their own seed, at the test size for procedural scenes."""
        cfg = self.config
        size = cfg.test_size if cfg.data is None else cfg.crop_size
        extra = {"length": cfg.test_length} if cfg.data is None else {}
        data = make_dataset(
            cfg.data,
            task,
            split="train",
            crop_size=size,
            preset=cfg.degradation_preset,
            seed=mix_seed(cfg.seed, _VALIDATION_SEED),
            **extra,
        )
        data.set_epoch(0)
        return data

    def _evaluate_one(self, task: str, *, identity: bool = False, data=None) -> dict[str, float]:
        """Mean PSNR/SSIM of `task` on its test set (or on `data`)."""
        data = self._test_set(task) if data is None else data

        def score(i: int) -> list[float]:
            degraded, clean = (t.unsqueeze(0).to(self.device) for t in data[i])
            restored = degraded if identity else self._forward(degraded, task).clamp(0, 1)
            return [float(psnr(restored, clean)), float(ssim(restored, clean))]

        self.model.eval()
        with torch.no_grad():  # each rank scores every world_size-th image
            values = scores_by_index(self.ctx, len(data), score, 2)
        self.model.train()
        return {k: round(float(np.mean(values[:, j])), 4) for j, k in enumerate(("psnr", "ssim"))}


class _BaselineRunner(_Runner):
    """The NAFNet strategies: one network for every task (see the module docstring)."""

    def do(self, stage: str) -> None:
        cfg = self.config
        if stage == "pretrain":
            super().do(stage)
        elif stage == "tune":
            self._tune()
        elif stage == f"{JOINT}:train":
            self.report.tasks = list(cfg.tasks)
            self._fit(JOINT, cfg.epochs, stage)
            sampler = self._joint_sampler
            self.report.strategy["joint_batches"] = dict(
                zip(sampler.data.tasks, sampler.counts, strict=True)
            )
        elif stage == f"{JOINT}:evaluate":
            self.report.metrics.append([self._evaluate_one(t) for t in self.report.tasks])
            for t in self.report.tasks:
                self.report.degraded[t] = self._evaluate_one(t, identity=True)
            self._record_size(JOINT)
        else:
            task, step = stage.rsplit(":", 1)
            if step == "train":
                self.report.tasks.append(task)
                self._ensure_regularizer()
                self._fit(task, cfg.epochs, stage)
                self._consolidate(task)
            else:
                self._evaluate(task)

    def load_regularizer(self, state: dict[str, Any]) -> None:
        self._ensure_regularizer()
        self.regularizer.load_state_dict(state, self.model)

    def _ensure_regularizer(self) -> None:
        cfg = self.config
        if self.regularizer is None and cfg.method in REGULARIZED:
            strength = cfg.strength
            if strength is None:
                strength = self.report.strategy["strength"]  # set by the tune stage
            self.report.strategy.setdefault("strength", strength)
            self.regularizer = make_regularizer(cfg.method, strength)

    def _consolidate(self, task: str) -> None:
        """The regulariser's end of task, on the first batches of a fresh training pass."""
        if self.regularizer is None:
            return
        _, loader = self._loader(task, f"{task}:consolidate")
        batches = []
        for degraded, clean in loader:
            batches.append((degraded.to(self.device), clean.to(self.device)))
            if len(batches) == self.config.importance_batches:
                break
        self.regularizer.end_task(self.model, batches)

    def _tune(self) -> None:
        """Pick the strength with the best validation PSNR on the first tasks."""
        cfg = self.config
        grid = cfg.strength_grid or DEFAULT_STRENGTH_GRIDS[cfg.method]
        tasks = list(cfg.tasks[: cfg.tune_tasks])
        trial_config = dataclasses.replace(cfg, tasks=tasks, epochs=cfg.tune_epochs)
        scores = []
        for strength in grid:
            trial = _BaselineRunner(
                dataclasses.replace(trial_config, strength=strength),
                copy.deepcopy(self.model),  # the pretrained network
                Report(trial_config.to_dict()),
                self.device,
                self.progress,
            )
            for t in tasks:
                trial.do(f"{t}:train")
            val = [trial._evaluate_one(t, data=self._val_set(t))["psnr"] for t in tasks]
            scores.append(round(float(np.mean(val)), 4))
            log.info(
                "tune %s: strength %g -> validation PSNR %.3f", cfg.method, strength, scores[-1]
            )
        best = int(np.argmax(scores))  # ties: the smaller strength (grids ascend)
        self.report.strategy.update(
            strength=grid[best],
            tuning={
                "grid": list(grid),
                "validation_psnr": scores,
                "tasks": tasks,
                "epochs": cfg.tune_epochs,
                "at_edge": best in (0, len(grid) - 1) and len(grid) > 1,
            },
        )

    def _forward(self, x: torch.Tensor, task: str | None) -> torch.Tensor:
        return self._module()(x)  # one network for every task

    def _trainable(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def _loader(self, task: str | None, stage: str):
        if task != JOINT:
            return super()._loader(task, stage)
        cfg = self.config
        # each task's stream is the one sequential training would see
        data = JointData({t: self._train_set(t, f"{t}:train") for t in cfg.tasks})
        g = torch.Generator().manual_seed(stage_seed(cfg, stage, 1))
        self._joint_sampler = TaskPerBatchSampler(data, cfg.batch_size, g)
        return data, DataLoader(data, batch_sampler=self._joint_sampler)

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, (1, 1, 512, 640))
        return {"activated_params": c.activated_params, "macs": c.macs}


def stage_seed(config: PipelineConfig, stage: str, *salt: int) -> int:
    """The seed of `stage`'s randomness (its data, batch order, ...; `salt` tells them
    apart): a function of ``(config.seed, stage)`` only, so a resumed run draws the same."""
    return mix_seed(config.seed, _hash(stage), *salt)


def train_set(config: PipelineConfig, task: str, stage: str):
    """The training images `stage` of a run with `config` uses for `task` (its crops and
    degradations follow :func:`stage_seed`)."""
    return make_dataset(
        config.data,
        task,
        split="train",
        crop_size=config.crop_size,
        preset=config.degradation_preset,
        seed=stage_seed(config, stage),
        stride=config.stride or None,
        repeat=config.repeat,
        **(
            {"length": config.train_length, "frame_size": config.frame_size or None}
            if config.data is None
            else {}
        ),
    )


def test_set(config: PipelineConfig, task: str, *, length: int | None = None):
    """The fixed test images of `task` in a run with `config`.

    For procedural data `length` (default ``config.test_length``) extends the set: item
    ``i`` depends on ``(seed, i)`` only, so the run's images are its first ones.
    """
    extra = {}
    if config.data is None:
        extra = {"length": length or config.test_length, "crop_size": config.test_size}
    return make_dataset(
        config.data, task, split="test", preset=config.degradation_preset, seed=config.seed, **extra
    )


def _frame_batches(frames: list[torch.Tensor], device, size: int = 4) -> list[torch.Tensor]:
    """Whole frames ``(1, H, W)`` as batches of up to `size` frames of one shape."""
    batches: list[list[torch.Tensor]] = []
    for frame in frames:
        if batches and len(batches[-1]) < size and batches[-1][0].shape == frame.shape:
            batches[-1].append(frame)
        else:
            batches.append([frame])
    return [torch.stack(b).to(device) for b in batches]


def _scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return {
        "psnr": round(float(psnr(restored, clean)), 4),
        "ssim": round(float(ssim(restored, clean)), 4),
    }


def _model_name(task: str) -> str:
    """The model's name of a task: ``"C+haze"`` becomes ``"C_haze"``."""
    return task.replace("+", "_")


def _hash(stage: str) -> int:
    return int.from_bytes(stage.encode()[:8].ljust(8, b"\0"), "little") ^ len(stage)


# ----------------------------------------------------------------------------- run state


def _start(
    config: PipelineConfig, out: Path, *, resume: bool, overwrite: bool, ctx: DistContext
) -> dict:
    """The run's state; every rank reads, rank 0 alone writes (after every rank checked)."""
    checkpoint = out / CHECKPOINT
    saved_config = out / CONFIG_FILE
    if resume:
        if not checkpoint.is_file():
            raise TaskStateError(f"`resume` needs a run in {out}; found no {CHECKPOINT} there")
        data = load_checkpoint(checkpoint)
        _check_resumable(PipelineConfig(**data["config"]), config, out)
        if config.method == "ecmrnet":
            model = ECMRNet.from_state_dict(data["model"])
        else:
            model = NAFNet(config.baseline)
            model.load_state_dict(data["model"])
        report = Report.from_dict(data["report"])
        report.config = config.to_dict()
        ctx.barrier()
        if ctx.is_main:
            _save_config(config, saved_config)
        ctx.barrier()
        log.info("resuming %s after %s", out, data["done"][-1] if data["done"] else "nothing")
        return {
            "model": model,
            "report": report,
            "done": list(data["done"]),
            "regularizer": data.get("regularizer"),
            "recognizer": data.get("recognizer"),
        }
    if (checkpoint.exists() or saved_config.exists()) and not overwrite:
        raise TaskStateError(
            f"{out} already holds a run; continue it with resume=True (--resume) or "
            "replace it with overwrite=True (--overwrite)"
        )
    ctx.barrier()
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.unlink(missing_ok=True)
        _save_config(config, saved_config)
    ctx.barrier()
    torch.manual_seed(config.seed)
    if config.method == "ecmrnet":
        model = ECMRNet.from_preset(config.model)
    else:
        model = NAFNet(config.baseline)
    return {"model": model, "report": Report(config.to_dict()), "done": []}


def _check_resumable(saved: PipelineConfig, new: PipelineConfig, out: Path) -> None:
    a, b = saved.to_dict(), new.to_dict()
    differ = sorted(k for k in a if k not in _MAY_CHANGE and a.get(k) != b.get(k))
    if differ:
        raise TaskStateError(
            f"the run in {out} was made with other settings ({', '.join(differ)}: "
            f"{[a[k] for k in differ]} there, {[b[k] for k in differ]} now); resume with the "
            "same configuration, or start a new run"
        )
    if list(new.tasks[: len(saved.tasks)]) != list(saved.tasks):
        raise TaskStateError(
            f"`tasks` must extend the run's tasks {list(saved.tasks)}; got {list(new.tasks)}"
        )
    if new.method == JOINT and new.tasks != saved.tasks:
        raise TaskStateError(
            f"joint training learns its tasks at once: `tasks` must stay {list(saved.tasks)} "
            f"to resume; got {list(new.tasks)}"
        )


# Settings a resumed run may change: the task list (extended) and the speed switches
# that leave the results unchanged (`amp` changes the rounding, so it stays).
_MAY_CHANGE = {
    "tasks",
    "channels_last",
    "compile",
    "optimizer_impl",
    "grouped_conv",
    "workers",
    "pin_memory",
}


def _save_on_main(ctx: DistContext, path: Path, payload: dict) -> None:
    """Rank 0 writes the checkpoint (atomically); every rank continues once it is there."""
    if ctx.is_main:
        save_checkpoint(path, payload)
    ctx.barrier()


def _save_config(config: PipelineConfig, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    tmp.replace(path)


def _quiet_numba_threads() -> None:
    """Use numba's workqueue threads unless the user chose a threading layer.

    sepkit's parallel kernels (SEP's batched partitions) otherwise start OpenMP
    workers that keep spinning after each call; on a busy CPU that slowed every later
    torch operation of the process about 15-fold. It must be set before numba's first
    parallel call, so the pipeline, an application, decides it here.
    """
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    import numba
    from numba.np.ufunc import parallel

    if not getattr(parallel, "_is_initialized", True):
        numba.config.THREADING_LAYER = "workqueue"


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("`device` is 'cuda' but no CUDA device is available; use 'cpu'")
    return torch.device(name)


def _choice(name, value, choices) -> None:
    if value not in choices:
        raise InvalidInputError(f"`{name}` must be one of {list(choices)}; got {value!r}")


def _check_sequence(tasks) -> None:
    """Known degradations, no repeats, and every compound task after its parts."""
    seen: set[str] = set()
    for task in tasks:
        parts = parse_task(task)
        if task in seen:
            raise InvalidInputError(f"`tasks` lists {task!r} twice")
        missing = [p for p in parts if len(parts) > 1 and p not in seen]
        if missing:
            raise InvalidInputError(
                f"`tasks`: compound task {task!r} must come after its parts; "
                f"{', '.join(map(repr, missing))} not learned before it in {list(tasks)}"
            )
        seen.add(task)


def _bar(total: int, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


class _NoBar:
    def set_postfix(self, **kwargs):
        pass

    def update(self, n=1):
        pass

    def close(self):
        pass


if __name__ == "__main__":  # python -m sepkit_torch.pipeline
    from sepkit_torch.cli import main

    raise SystemExit(main())
