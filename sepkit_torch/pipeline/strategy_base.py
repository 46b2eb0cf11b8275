"""What every training strategy of the pipeline shares: a :class:`Stage` of a run and the
:class:`Strategy` base class (the model, the device, the data of a stage, training through
:func:`~sepkit_torch.training.fit`, evaluation and the strategy's part of the
checkpoint). The strategies themselves are in :mod:`sepkit_torch.pipeline.strategies`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sepkit_torch._errors import CheckpointError, TaskStateError
from sepkit_torch.complexity import COUNT_SHAPE, complexity
from sepkit_torch.distributed import (
    DistContext,
    ShardedBatchSampler,
    scores_by_index,
    wrap_model,
)
from sepkit_torch.metrics import psnr, ssim
from sepkit_torch.pipeline.data import (
    stage_seed,
    test_set,
    train_set,
    validation_set,
)
from sepkit_torch.pipeline.report import Report
from sepkit_torch.speed import loader_options, set_grouped_conv, to_channels_last
from sepkit_torch.training import fit

__all__ = ["Stage", "Strategy"]

log = logging.getLogger("sepkit_torch.pipeline")


@dataclass(frozen=True)
class Stage:
    """One stage of a run: `step` of `task` (None: a run-wide step, ``pretrain`` or
    ``tune``). Its :attr:`name` (``"pretrain"``, ``"C:train"``) is what checkpoints,
    logs, ``stop_after`` and the report's timings use.

    Examples
    --------
    >>> from sepkit_torch.pipeline.strategies import Stage
    >>> Stage("train", "C+haze").name, Stage.parse("C+haze:train") == Stage("train", "C+haze")
    ('C+haze:train', True)
    """

    step: str
    task: str | None = None

    @property
    def name(self) -> str:
        return self.step if self.task is None else f"{self.task}:{self.step}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> Stage:
        task, colon, step = name.rpartition(":")
        return cls(step, task) if colon else cls(name)

    def seed(self, config, stream: str = "data") -> int:
        """The seed of one random stream of this stage (:func:`stage_seed`)."""
        return stage_seed(config, self.name, stream)


class Strategy:
    """How a run of one method trains: its stages, its model, how it does each stage and
    what of it the checkpoint keeps.

    A subclass names its stages (:meth:`stages`), builds its model (:meth:`new_model`,
    :meth:`model_from_state`) and does each step of a stage with a method
    ``step_<step>(stage)``. The run (:func:`~sepkit_torch.pipeline.run`) builds the
    strategy of ``config.method``, gives it a model (:meth:`start`, or
    :meth:`load_state_dict` when resuming) and calls :meth:`do` for every stage not done.
    """

    #: The network, as reports name it.
    network: ClassVar[str] = ""
    #: Learns its tasks one after another (a row of scores per task, forgetting).
    sequential: ClassVar[bool] = True
    #: May run in several processes (torchrun).
    distributed: ClassVar[bool] = False
    #: Its finished runs restore images (a weights file, ``sepkit_torch.load``).
    restores: ClassVar[bool] = False
    #: A comparison runs the pretraining once for every method that shares it.
    shares_pretraining: ClassVar[bool] = False
    #: Has a regulariser whose strength the config sets or the run tunes.
    regularized: ClassVar[bool] = False

    def __init__(self, config, report: Report, device, progress: bool = True, *, ctx=None):
        self.config = config
        self.report = report
        self.device = device
        self.progress = progress
        self.ctx = DistContext() if ctx is None else ctx
        self.model: nn.Module | None = None
        # what trains: the model, or its DDP / compiled wrapper (set by _fit)
        self._net: nn.Module | None = None
        # the fixed evaluation sets, made once per run
        self._test_sets: dict[str, Any] = {}
        self._val_sets: dict[str, Any] = {}

    # -- what a method defines
    @classmethod
    def stages(cls, config) -> list[Stage]:
        """Every stage of a run with `config`, in order."""
        raise NotImplementedError

    @classmethod
    def new_model(cls, config) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def model_from_state(cls, config, state: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def model_label(cls, config: dict[str, Any]) -> str:
        """The network and its size, as the comparison names it (``"NAFNet demo"``)."""
        raise NotImplementedError

    @classmethod
    def check_resume(cls, saved, new) -> None:
        """A run saved with the settings `saved` (a dict) may continue with config `new`
        (beyond the rules of every run, :func:`~sepkit_torch.pipeline.state.check_resumable`)."""

    # -- the run's interface
    def start(self) -> None:
        """A fresh model, its initial weights from ``config.seed``."""
        torch.manual_seed(self.config.seed)
        self.model = self.new_model(self.config).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        """The strategy's part of a checkpoint: the model, and the recognizer and the
        regulariser's state where the method has them (None otherwise)."""
        return {"model": self.model.state_dict(), "recognizer": None, "regularizer": None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`state_dict`."""
        self.model = self.model_from_state(self.config, state["model"]).to(self.device)

    def check_state(self, done: list[str], out) -> None:
        """After :meth:`load_state_dict`: the checkpoint holds what its stages `done` made
        (its report has learned the tasks whose ``train`` stage is done, in order), else a
        :class:`CheckpointError` before any stage runs."""
        trained = self.trained(done)
        if self.sequential and list(self.report.tasks) != trained:
            self._broken(out, done, f"its report has learned the tasks {self.report.tasks}")

    @staticmethod
    def trained(done: list[str], step: str = "train") -> list[str]:
        """The tasks whose `step` is among the stages `done`, in order."""
        stages = [Stage.parse(name) for name in done]
        return [s.task for s in stages if s.step == step and s.task is not None]

    @staticmethod
    def _broken(out, done: list[str], found: str) -> None:
        raise CheckpointError(
            f"the checkpoint in {out} lists the stages {done} as done, but {found}: it "
            "cannot be resumed (start the run again with overwrite=True, --overwrite)"
        )

    def do(self, stage: Stage) -> None:
        """Carry out `stage` (its step's ``step_<step>`` method)."""
        step = getattr(self, f"step_{stage.step}", None)
        if step is None:
            raise TaskStateError(
                f"{type(self).__name__} has no step {stage.step!r} (stage {stage.name!r})"
            )
        step(stage)

    def restore(self, x: torch.Tensor, task: str | None) -> torch.Tensor:
        """The model's restoration of `x` (the path of `task` where the model has tasks)."""
        return self._module()(x)

    @contextlib.contextmanager
    def evaluating(self):
        """The model in evaluation mode without gradients, for the duration; yields
        :meth:`restore` of an input on any device."""
        self.model.eval()
        try:
            with torch.no_grad():
                yield lambda x, task: self.restore(x.to(self.device), task)
        finally:
            self.model.train()

    # -- the steps every method has
    def step_pretrain(self, stage: Stage) -> None:
        self.report.pretrain = {"loss": self._fit(None, self.config.pretrain_epochs, stage)}

    def step_evaluate(self, stage: Stage) -> None:
        task = stage.task
        self.report.metrics.append([self._evaluate_one(t) for t in self.report.tasks])
        self.report.degraded[task] = self._evaluate_one(task, identity=True)
        self._record_size(task)

    # -- helpers
    def _fit(self, task: str | None, epochs: int, stage: Stage) -> float:
        """Train the trainable parameters on `task`'s data for `epochs`.

        ``task=None`` is clean-to-clean pretraining (never regularised).
        """
        cfg = self.config
        data, loader = self._loader(task, stage)
        self._prepare()
        self.model.train()
        self._net = self._training_net()
        try:
            result = fit(
                self.model,
                loader,
                lr=cfg.lr,
                epochs=epochs,
                task=self._model_task(task),
                clean_to_clean=task is None,
                recipe=cfg.recipe,
                loss=cfg.loss,
                optimizer_impl=cfg.optimizer_impl,
                amp=cfg.amp,
                forward=lambda x: self.restore(x, task),
                parameters=self._trainable(),
                regularizer=self._regularizer(),
                set_epoch=data.set_epoch,
                device=self.device,
                progress=self.progress,
                desc=stage.name,
            )
        finally:
            self._net = None
        log.info("%s: final training loss %.4f", stage, result.loss)
        return round(result.loss, 6)

    def _model_task(self, task: str | None) -> str | None:
        """The `task` argument of :func:`fit` (the path that trains; None: the model)."""
        return None

    def _regularizer(self):
        return None

    def _record_size(self, after: str) -> None:
        self.report.size.append(
            {
                "after": after,
                "total_params": sum(p.numel() for p in self.model.parameters()),
                "paths": {t: self._size(t) for t in self.report.tasks},
            }
        )

    def _module(self) -> nn.Module:
        """What runs a forward pass: the training wrapper while training, else the model."""
        return self.model if self._net is None else self._net

    def _prepare(self) -> None:
        """Apply the grouped-convolution algorithm and the memory layout of the config
        (again after every expansion or pruning: new modules start plain)."""
        set_grouped_conv(self.model, self.config.grouped_conv)
        if self.config.channels_last:
            to_channels_last(self.model)

    def _training_net(self) -> nn.Module:
        """The model inside DDP when several processes train, compiled if asked."""
        net = wrap_model(self.model, self.ctx, self.device)
        return torch.compile(net) if self.config.compile else net

    def _trainable(self) -> list[nn.Parameter]:
        return self.model.trainable_parameters()

    def _loader(self, task: str | None, stage: Stage):
        """The training set of `task` (clean images for None) and its seeded loader."""
        cfg = self.config
        data = train_set(cfg, task or "C", stage.name)
        g = torch.Generator().manual_seed(stage.seed(cfg, "batches"))
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

    def test_images(self, task: str):
        """The fixed test set of `task` (:func:`~sepkit_torch.pipeline.data.test_set`),
        made once per run."""
        if task not in self._test_sets:
            self._test_sets[task] = test_set(self.config, task)
        return self._test_sets[task]

    def _val_set(self, task: str):
        if task not in self._val_sets:
            self._val_sets[task] = validation_set(self.config, task)
        return self._val_sets[task]

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, COUNT_SHAPE)
        return {"activated_params": c.activated_params, "macs": c.macs}

    def _evaluate_one(self, task: str, *, identity: bool = False, data=None) -> dict[str, float]:
        """Mean PSNR/SSIM of `task` on its test set (or on `data`)."""
        data = self.test_images(task) if data is None else data

        def score(i: int) -> list[float]:
            degraded, clean = (t.unsqueeze(0).to(self.device) for t in data[i])
            restored = degraded if identity else self.restore(degraded, task).clamp(0, 1)
            return [float(psnr(restored, clean)), float(ssim(restored, clean))]

        self.model.eval()
        with torch.no_grad():  # each rank scores every world_size-th image
            values = scores_by_index(self.ctx, len(data), score, 2)
        self.model.train()
        return {k: round(float(np.mean(values[:, j])), 4) for j, k in enumerate(("psnr", "ssim"))}
