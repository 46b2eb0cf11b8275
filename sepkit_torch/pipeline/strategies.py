"""How a run trains: one strategy class per method, each owning its stages, its model and
how it carries out a stage.

- :class:`ECMRNetStrategy` (``method="ecmrnet"``, the default): pretrain, then per task
  expand, train, SEP-prune, fine-tune, evaluate and grow the degradation recognizer.
- :class:`FineTuning` (``"finetune"``): one NAFNet trained on each task in turn with
  nothing against forgetting (the floor).
- :class:`Regularized` (``"ewc"``, ``"si"``, ``"mas"``, ``"lwf"``): fine-tuning with a
  regulariser of :mod:`sepkit_torch.continual.regularizers`, its strength tuned on a
  validation split first unless given.
- :class:`JointTraining` (``"joint"``): one NAFNet on every task at once (the all-in-one
  reference, not continual).

All of them use the same data, budgets and evaluation. :data:`STRATEGIES` maps the
pipeline's ``method`` names to their classes; adding a method is adding a class there.

A run is a list of :class:`Stage` objects (a step of a task, or a run-wide step such as
``pretrain``); a stage draws its randomness from named seed streams
(:func:`~sepkit_torch.pipeline.data.stage_seed`), never from what earlier stages left.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

import sepkit
from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.complexity import COUNT_SHAPE, complexity
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.continual.joint import JointData, TaskPerBatchSampler
from sepkit_torch.continual.pruning import compensate_exits, prune, select_groups
from sepkit_torch.continual.regularizers import (
    DEFAULT_STRENGTH_GRIDS,
    REGULARIZED,
    make_regularizer,
)
from sepkit_torch.data import parse_task
from sepkit_torch.distributed import (
    shard_range,
)
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.models.nafnet import NAFNet
from sepkit_torch.models.recognizer import DegradationRecognizer
from sepkit_torch.pipeline.data import (
    frame_batches,
    train_set,
)
from sepkit_torch.pipeline.recognition_stage import RECOGNIZE, recognizer_stage
from sepkit_torch.pipeline.report import PruneReport, Report
from sepkit_torch.pipeline.strategy_base import Stage, Strategy

__all__ = [
    "METHODS",
    "STRATEGIES",
    "ECMRNetStrategy",
    "FineTuning",
    "JointTraining",
    "Regularized",
    "Stage",
    "Strategy",
    "stage_names",
    "strategy_class",
]

log = logging.getLogger("sepkit_torch.pipeline")


class ECMRNetStrategy(Strategy):
    """ECMRNet: a branch per task (SCGE), SEP pruning and fine-tuning of each branch, SKMM
    for compound tasks, and the degradation recognizer grown task by task."""

    network = "ECMRNet"
    distributed = True
    restores = True

    def __init__(self, config, report: Report, device, progress: bool = True, *, ctx=None):
        super().__init__(config, report, device, progress, ctx=ctx)
        self.recognizer: DegradationRecognizer | None = None

    @classmethod
    def stages(cls, config) -> list[Stage]:
        stages = [Stage("pretrain")]
        for task in config.tasks:
            stages.append(Stage("train", task))
            if config.prune:
                stages.append(Stage("prune", task))
                if config.finetune_epochs > 0:
                    stages.append(Stage("finetune", task))
            stages.append(Stage("evaluate", task))
            if config.recognizer != "none":
                stages.append(Stage(RECOGNIZE, task))
        return stages

    @classmethod
    def new_model(cls, config) -> nn.Module:
        return ECMRNet.from_preset(config.model)

    @classmethod
    def model_from_state(cls, config, state) -> nn.Module:
        return ECMRNet.from_state_dict(state)

    @classmethod
    def model_label(cls, config) -> str:
        return f"ECMRNet {config['model']}"

    def state_dict(self) -> dict[str, Any]:
        recognizer = None if self.recognizer is None else self.recognizer.state_dict()
        return {**super().state_dict(), "recognizer": recognizer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("recognizer") is not None:
            recognizer = DegradationRecognizer.from_state_dict(state["recognizer"])
            self.recognizer = recognizer.to(self.device)

    def restore(self, x: torch.Tensor, task: str | None) -> torch.Tensor:
        return self._module()(x, task=self._model_task(task))

    def check_state(self, done: list[str], out) -> None:
        """The model has a path for each trained task, pruned to the size the report
        gives, and the recognizer a head for each single degradation it learned."""
        super().check_state(done, out)
        trained = self.trained(done)
        names = list(self.model.task_names)
        if names != [_model_name(t) for t in trained]:
            self._broken(out, done, f"its model holds the tasks {names}")
        for task in self.trained(done, "prune"):
            after = (self.report.pruning.get(task) or {}).get("groups_after")
            groups = list(self.model.task(_model_name(task)).groups)
            if groups != after:
                self._broken(
                    out, done, f"the path of {task!r} has groups {groups}, not {after} as pruned"
                )
        learned = [t for t in self.trained(done, RECOGNIZE) if len(parse_task(t)) == 1]
        letters = () if self.recognizer is None else self.recognizer.letters
        if any(t not in letters for t in learned):
            self._broken(out, done, f"its recognizer knows the letters {list(letters)}")

    def step_train(self, stage: Stage) -> None:
        task = stage.task
        parts = parse_task(task)
        if len(parts) > 1:
            skmm = None if self.config.skmm == "none" else self.config.skmm
            self.model.add_task(_model_name(task), parts=parts, skmm=skmm)
        else:
            self.model.add_task(_model_name(task))
        self.model.to(self.device)
        self.report.tasks.append(task)
        self._fit(task, self.config.epochs, stage)

    def step_prune(self, stage: Stage) -> None:
        cfg, task = self.config, stage.task
        data = train_set(cfg, task, stage.name)
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
            budget=cfg.sep_budget,
        )
        unpruned = copy.deepcopy(self.model) if cfg.sep_compensate else None
        prune(self.model, name, selection.keep)
        self.model.to(self.device)
        refit = None
        if unpruned is not None:  # exits refit to the unpruned stage outputs on the pool
            with torch.no_grad():
                refit = compensate_exits(self.model, name, unpruned, pool)
            del unpruned
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
        if refit is not None:
            self.report.pruning[task]["exit_refit_error"] = {
                s: round(v, 6) for s, v in refit.items()
            }
        log.info("%s: groups %s -> %s", stage, groups_before, list(selection.kept_counts))

    def step_finetune(self, stage: Stage) -> None:
        self._fit(stage.task, self.config.finetune_epochs, stage)
        self.report.pruning[stage.task]["after_finetuning"] = self._evaluate_one(stage.task)

    def step_recognize(self, stage: Stage) -> None:
        task = stage.task
        self.recognizer = recognizer_stage(
            self.config,
            self.recognizer,
            task,
            self.report,
            train_set=train_set(self.config, task, stage.name),
            test_sets={t: self.test_images(t) for t in self.report.tasks},
            seed=stage.seed(self.config, "recognizer"),
            device=self.device,
            progress=self.progress,
        )

    def _model_task(self, task: str | None) -> str | None:
        return None if task is None else _model_name(task)

    def _size(self, task: str) -> dict[str, int]:
        c = complexity(self.model, COUNT_SHAPE, task=_model_name(task))
        return {"activated_params": c.activated_params, "macs": c.macs}


class _NAFNetStrategy(Strategy):
    """The baselines' common ground: one NAFNet for every task, its whole set of
    parameters trained, one shared pretraining in a comparison."""

    network = "NAFNet"
    shares_pretraining = True

    @classmethod
    def new_model(cls, config) -> nn.Module:
        return NAFNet(config.baseline)

    @classmethod
    def model_from_state(cls, config, state) -> nn.Module:
        model = NAFNet(config.baseline)
        model.load_state_dict(state)
        return model

    @classmethod
    def model_label(cls, config) -> str:
        return f"NAFNet {config['baseline']}"

    def _trainable(self) -> list[nn.Parameter]:
        return list(self.model.parameters())


class FineTuning(_NAFNetStrategy):
    """Fine-tuning: one NAFNet trained on each task in turn, nothing against forgetting."""

    @classmethod
    def stages(cls, config) -> list[Stage]:
        return [
            Stage("pretrain"),
            *(Stage(step, t) for t in config.tasks for step in ("train", "evaluate")),
        ]

    def step_train(self, stage: Stage) -> None:
        self.report.tasks.append(stage.task)
        self._fit(stage.task, self.config.epochs, stage)


class Regularized(FineTuning):
    """Fine-tuning with a continual-learning regulariser (EWC, SI, MAS or LwF, by the
    config's ``method``), its strength tuned on a validation split unless given."""

    regularized = True

    def __init__(self, config, report: Report, device, progress: bool = True, *, ctx=None):
        super().__init__(config, report, device, progress, ctx=ctx)
        self.regularizer = None

    @classmethod
    def stages(cls, config) -> list[Stage]:
        stages = super().stages(config)
        return stages[:1] + [Stage("tune")] + stages[1:] if config.strength is None else stages

    def state_dict(self) -> dict[str, Any]:
        state = None if self.regularizer is None else self.regularizer.state_dict()
        return {**super().state_dict(), "regularizer": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if state.get("regularizer") is not None:
            self._ensure_regularizer()
            self.regularizer.load_state_dict(state["regularizer"], self.model)

    def check_state(self, done: list[str], out) -> None:
        """A run that learned a task has the regulariser's state (what protects it)."""
        super().check_state(done, out)
        if self.trained(done) and self.regularizer is None:
            self._broken(out, done, f"it holds no {self.config.method} regulariser state")

    def step_train(self, stage: Stage) -> None:
        self._ensure_regularizer()
        super().step_train(stage)
        self._consolidate(stage.task)

    def step_tune(self, stage: Stage) -> None:
        """Pick the strength with the best validation PSNR on the first tasks."""
        cfg = self.config
        grid = cfg.strength_grid or DEFAULT_STRENGTH_GRIDS[cfg.method]
        tasks = list(cfg.tasks[: cfg.tune_tasks])
        trial_config = dataclasses.replace(cfg, tasks=tasks, epochs=cfg.tune_epochs)
        scores = []
        for strength in grid:
            trial = type(self)(
                dataclasses.replace(trial_config, strength=strength),
                Report(trial_config.to_dict()),
                self.device,
                self.progress,
            )
            trial.model = copy.deepcopy(self.model)  # the pretrained network
            for t in tasks:
                trial.do(Stage("train", t))
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

    def _regularizer(self):
        return self.regularizer

    def _ensure_regularizer(self) -> None:
        cfg = self.config
        if self.regularizer is None:
            strength = cfg.strength
            if strength is None:
                strength = self.report.strategy["strength"]  # set by the tune stage
            self.report.strategy.setdefault("strength", strength)
            self.regularizer = make_regularizer(cfg.method, strength)

    def _consolidate(self, task: str) -> None:
        """The regulariser's end of task, on the first batches of a fresh training pass."""
        _, loader = self._loader(task, Stage("consolidate", task))
        batches = []
        for degraded, clean in loader:
            batches.append((degraded.to(self.device), clean.to(self.device)))
            if len(batches) == self.config.importance_batches:
                break
        self.regularizer.end_task(self.model, batches)


class JointTraining(_NAFNetStrategy):
    """Joint training: one NAFNet on every task at once, a task drawn per batch (the
    all-in-one reference, not continual)."""

    sequential = False
    #: The stages' task: every task at once.
    ALL_TASKS = "joint"

    @classmethod
    def stages(cls, config) -> list[Stage]:
        return [Stage("pretrain"), Stage("train", cls.ALL_TASKS), Stage("evaluate", cls.ALL_TASKS)]

    @classmethod
    def check_resume(cls, saved, new) -> None:
        if list(new.tasks) != list(saved.get("tasks") or []):
            raise TaskStateError(
                f"joint training learns its tasks at once: `tasks` must stay "
                f"{list(saved.get('tasks') or [])} to resume; got {list(new.tasks)}"
            )

    def step_train(self, stage: Stage) -> None:
        self.report.tasks = list(self.config.tasks)
        self._fit(stage.task, self.config.epochs, stage)
        sampler = self._joint_sampler
        self.report.strategy["joint_batches"] = dict(
            zip(sampler.data.tasks, sampler.counts, strict=True)
        )

    def step_evaluate(self, stage: Stage) -> None:
        self.report.metrics.append([self._evaluate_one(t) for t in self.report.tasks])
        for t in self.report.tasks:
            self.report.degraded[t] = self._evaluate_one(t, identity=True)
        self._record_size(stage.task)

    def _loader(self, task: str | None, stage: Stage):
        if task != self.ALL_TASKS:
            return super()._loader(task, stage)
        cfg = self.config
        # each task's stream is the one sequential training would see
        data = JointData({t: train_set(cfg, t, Stage("train", t).name) for t in cfg.tasks})
        g = torch.Generator().manual_seed(stage.seed(cfg, "batches"))
        self._joint_sampler = TaskPerBatchSampler(data, cfg.batch_size, g)
        return data, DataLoader(data, batch_sampler=self._joint_sampler)


#: The pipeline's methods (``config.method``) and their strategies, ECMRNet first.
STRATEGIES: dict[str, type[Strategy]] = {
    "ecmrnet": ECMRNetStrategy,
    "finetune": FineTuning,
    **{name: Regularized for name in REGULARIZED},
    JointTraining.ALL_TASKS: JointTraining,
}
#: Every method the pipeline runs.
METHODS = tuple(STRATEGIES)


def strategy_class(method: str) -> type[Strategy]:
    """The strategy of `method`.

    Examples
    --------
    >>> from sepkit_torch.pipeline.strategies import strategy_class
    >>> strategy_class("ewc").__name__
    'Regularized'
    >>> strategy_class("ewcc")
    Traceback (most recent call last):
        ...
    sepkit_torch.InvalidInputError: `method` must be one of ['ecmrnet', ...]; got 'ewcc'
    """
    try:
        return STRATEGIES[method]
    except (KeyError, TypeError):
        raise InvalidInputError(
            f"`method` must be one of {list(STRATEGIES)}; got {method!r}"
        ) from None


def stage_names(config) -> list[str]:
    """Every stage of a run with `config`, in order (``"pretrain"``, ``"C:train"``, ...)."""
    return [s.name for s in strategy_class(config.method).stages(config)]


def _model_name(task: str) -> str:
    """The model's name of a task: ``"C+haze"`` becomes ``"C_haze"``."""
    return task.replace("+", "_")
