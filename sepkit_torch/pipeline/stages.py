"""The stages of a task sequence and who carries them out.

``config.method`` picks the strategy: ``"ecmrnet"`` (the default: pretrain, then per task
expand, train, SEP-prune, fine-tune, evaluate and grow the degradation recognizer) or one
of the NAFNet baselines of :mod:`sepkit_torch.continual.baselines` (``finetune``, ``ewc``,
``si``, ``mas``, ``lwf``: pretrain, [tune the regulariser's strength on a validation
split], then per task train and evaluate; ``joint``: pretrain, one training on every task
at once, evaluate), with the same data, budgets and evaluation.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

import sepkit
from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.complexity import COUNT_SHAPE, complexity
from sepkit_torch.continual.baselines import (
    DEFAULT_STRENGTH_GRIDS,
    JOINT,
    REGULARIZED,
    JointData,
    TaskPerBatchSampler,
    make_regularizer,
)
from sepkit_torch.continual.pruning import PruneReport, prune, select_groups
from sepkit_torch.data import list_images, parse_task, read_image
from sepkit_torch.distributed import (
    DistContext,
    ShardedBatchSampler,
    scores_by_index,
    shard_range,
    wrap_model,
)
from sepkit_torch.metrics import psnr, ssim
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.pipeline.data import (
    frame_batches,
    stage_seed,
    test_set,
    train_set,
    validation_set,
)
from sepkit_torch.pipeline.recognizer import recognizer_stage
from sepkit_torch.pipeline.report import Report
from sepkit_torch.speed import loader_options, set_grouped_conv, to_channels_last
from sepkit_torch.training import fit

__all__ = ["BaselineRunner", "Runner", "make_runner", "stage_names"]

log = logging.getLogger("sepkit_torch.pipeline")


def stage_names(config) -> list[str]:
    """Every stage of a run with `config`, in order (``"pretrain"``, ``"C:train"``, ...)."""
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


class Runner:
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
        # the fixed evaluation sets, made once per run
        self._test_sets: dict[str, Any] = {}
        self._val_sets: dict[str, Any] = {}

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
                seed=stage_seed(self.config, stage, "recognizer"),
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
                task=None if task is None else _model_name(task),
                clean_to_clean=task is None,
                recipe=cfg.recipe,
                loss=cfg.loss,
                optimizer_impl=cfg.optimizer_impl,
                amp=cfg.amp,
                forward=lambda x: self._forward(x, task),
                parameters=self._trainable(),
                regularizer=self.regularizer,
                set_epoch=data.set_epoch,
                device=self.device,
                progress=self.progress,
                desc=stage,
            )
        finally:
            self._net = None
        self.optimizer_state = {
            "stage": stage,
            "optimizer": result.optimizer,
            "scheduler": result.scheduler,
        }
        log.info("%s: final training loss %.4f", stage, result.loss)
        return round(result.loss, 6)

    def _prune(self, task: str, stage: str) -> None:
        cfg = self.config
        data = self._train_set(task, stage)
        n = min(cfg.sep_pool, len(data.frame_items))
        mine = shard_range(n, self.ctx)  # this rank's part of the pool
        pool = frame_batches([data.frame(i)[0] for i in mine], self.device)
        name = _model_name(task)
        before = {**self._size(task), **self._evaluate_one(task)}
        groups_before = list(self.model.task(name).groups)
        sepkit.warmup()  # numba compiles (or loads) its kernels outside the timed selection
        selection = select_groups(
            self.model,
            name,
            pool,
            similarity_kind=cfg.sep_similarity,
            method=cfg.sep_method,
            tie=cfg.sep_tie,
            criterion=cfg.sep_criterion,
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
        g = torch.Generator().manual_seed(stage_seed(cfg, stage, "batches"))
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

    def _test_set(self, task: str):
        if task not in self._test_sets:
            self._test_sets[task] = test_set(self.config, task)
        return self._test_sets[task]

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, COUNT_SHAPE, task=_model_name(task))
        return {"activated_params": c.activated_params, "macs": c.macs}

    def _val_set(self, task: str):
        if task not in self._val_sets:
            self._val_sets[task] = validation_set(self.config, task)
        return self._val_sets[task]

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


class BaselineRunner(Runner):
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
            trial = BaselineRunner(
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
        g = torch.Generator().manual_seed(stage_seed(cfg, stage, "batches"))
        self._joint_sampler = TaskPerBatchSampler(data, cfg.batch_size, g)
        return data, DataLoader(data, batch_sampler=self._joint_sampler)

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, COUNT_SHAPE)
        return {"activated_params": c.activated_params, "macs": c.macs}


def _scores(restored: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return {
        "psnr": round(float(psnr(restored, clean)), 4),
        "ssim": round(float(ssim(restored, clean)), 4),
    }


def _model_name(task: str) -> str:
    """The model's name of a task: ``"C+haze"`` becomes ``"C_haze"``."""
    return task.replace("+", "_")


def _model_name(task: str) -> str:
    """The model's name of a task: ``"C+haze"`` becomes ``"C_haze"``."""
    return task.replace("+", "_")


def make_runner(config, model, report: Report, device, progress: bool, *, ctx=None) -> Runner:
    """The runner of `config`'s method: ECMRNet's, or the NAFNet baselines'."""
    kind = Runner if config.method == "ecmrnet" else BaselineRunner
    return kind(config, model, report, device, progress, ctx=ctx)
