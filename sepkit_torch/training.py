"""Training: the optimizer over exactly the trainable parameters, one step, and ``fit``,
the one training loop (pretraining, task training, fine-tuning, the baselines, the
recognizer's heads, the SRP gates and the benchmarks all use it).

Models are not named here: a model that says which of its parameters train has a
``trainable_parameters()`` method, and one with tasks (ECMRNet) a ``trainable_task``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sepkit_torch._checks import check_real
from sepkit_torch._errors import InvalidInputError, TaskStateError, TrainingDivergedError
from sepkit_torch._fit_state import (
    Average,
    check_fit,
    check_recipe,
    check_resume,
    check_score,
    load_schedule,
    non_finite_batch,
)
from sepkit_torch._fit_state import schedule as _schedule
from sepkit_torch._progress import progress_bar
from sepkit_torch.metrics import LOSSES
from sepkit_torch.speed import autocast

__all__ = [
    "OPTIMIZER_IMPLS",
    "RECIPES",
    "FitResult",
    "Recipe",
    "TrainingDivergedError",
    "fit",
    "make_optimizer",
    "train_step",
    "trainable_parameters",
]

#: Adam's update kernels (:func:`make_optimizer`); every one computes the same update.
OPTIMIZER_IMPLS = ("default", "foreach", "fused", "for-loop")
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
_IMPL_FLAGS = {
    "default": {},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "for-loop": {"foreach": False},
}


@dataclass(frozen=True)
class Recipe:
    """How :func:`fit` trains, apart from the data and the learning rate.

    Attributes
    ----------
    name : str
    optimizer : {"adam", "adamw"}
    weight_decay : float
        AdamW's decoupled weight decay (0 for Adam).
    warmup_epochs : int
        Epochs of linear warm-up from ``lr / 100`` before the cosine (an epoch is
        ``len(batches)`` steps).
    min_lr : float or None
        Where the cosine ends; None means ``lr / 100``.
    ema_decay : float or None
        Decay of an exponential moving average of the trainable weights, updated after
        every step and used for validation (:attr:`FitResult.averaged`); None keeps none.
    clip_norm : float or None
        Gradient-norm clipping of the trainable parameters before each step.
    loss : str
        One of :data:`~sepkit_torch.metrics.LOSSES`.
    patience : int or None
        Early stopping: with a `validate` callback, training stops after this many
        validations in a row without a better score (None: never stops early).
    """

    name: str
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_epochs: int = 0
    min_lr: float | None = None
    ema_decay: float | None = None
    clip_norm: float | None = None
    loss: str = "paper"
    patience: int | None = None

    def __post_init__(self):
        check_recipe(self, _OPTIMIZERS, LOSSES)


#: The training recipes by name. ``"paper"`` (the default), what the paper's text says:
#: Adam, cosine to ``lr / 100``, L1. ``"code"``, what the public training code does:
#: AdamW (weight decay 1e-5), one epoch of linear warm-up then cosine to 1e-6, an EMA of
#: the weights (0.999) for validation, gradient clipping at 1.0, the loss
#: ``L1 + 0.5 (1 - MS-SSIM) + 0.1 Sobel L1`` and early stopping after 3 validations
#: without improvement (the paper trains 100 epochs per task and fine-tunes 20).
RECIPES = {
    "paper": Recipe("paper"),
    "code": Recipe(
        "code",
        optimizer="adamw",
        weight_decay=1e-5,
        warmup_epochs=1,
        min_lr=1e-6,
        ema_decay=0.999,
        clip_norm=1.0,
        loss="code",
        patience=3,
    ),
}


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a training step may change.

    A model's own ``trainable_parameters()`` when it has one: an
    :class:`~sepkit_torch.ECMRNet`'s follow its task state (the whole backbone before any
    task, then the newest task's branch and, for a compound task, its SKMM), not the
    ``requires_grad`` flags; the degradation recognizer's are its newest head. For any
    other module, the parameters with ``requires_grad``.

    Examples
    --------
    >>> from sepkit_torch import ECMRNet, trainable_parameters
    >>> model = ECMRNet.from_preset("tiny")
    >>> before = sum(p.numel() for p in trainable_parameters(model))
    >>> _ = model.add_task("C")
    >>> after = sum(p.numel() for p in trainable_parameters(model))
    >>> before, after  # the backbone, then one branch (no stem, bottom, out)
    (114337, 97672)
    """
    own = getattr(model, "trainable_parameters", None)
    if callable(own):
        return list(own())
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(
    model: nn.Module | Iterable[nn.Parameter],
    lr: float = 1e-4,
    *,
    impl: str = "default",
    kind: str = "adam",
    **kwargs,
) -> torch.optim.Optimizer:
    """Adam (the paper's optimizer; ``kind="adamw"``: AdamW, the public code's) over
    :func:`trainable_parameters` of `model` (or over the given parameters), with the
    update kernels `impl` (:data:`OPTIMIZER_IMPLS`).

    Call it again after every :meth:`~sepkit_torch.ECMRNet.add_task` (and after
    ``load_state_dict``); :func:`train_step` refuses an optimizer that is out of date.
    ``"fused"`` needs every parameter on a device with the fused kernel (CUDA, and the
    CPU since torch 2.4). `kwargs` go to :class:`torch.optim.Adam` (or ``AdamW``).
    """
    if impl not in OPTIMIZER_IMPLS:
        raise InvalidInputError(f"`impl` must be one of {list(OPTIMIZER_IMPLS)}; got {impl!r}")
    if kind not in _OPTIMIZERS:
        raise InvalidInputError(f"`kind` must be one of {sorted(_OPTIMIZERS)}; got {kind!r}")
    _check_lr(lr)
    params = trainable_parameters(model) if isinstance(model, nn.Module) else list(model)
    if not params:
        raise TaskStateError(f"{type(model).__name__} has no trainable parameter to optimize")
    return _OPTIMIZERS[kind](params, lr=lr, **_IMPL_FLAGS[impl], **kwargs)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    degraded: torch.Tensor,
    clean: torch.Tensor,
    task: str | None = None,
    *,
    loss: str = "paper",
    amp: str = "none",
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """One step of `model` on ``(degraded, clean)`` along `task`'s path; returns the loss.

    The loss is one of :data:`~sepkit_torch.metrics.LOSSES` (default the paper's L1),
    computed in float32 whatever `amp` is. `forward` replaces ``model(x, task=task)``
    (e.g. a compiled or DDP-wrapped model's call).

    Raises
    ------
    TaskStateError
        If `optimizer` does not hold exactly the trainable parameters (built before the
        last ``add_task``), or `task` is not the one that currently trains.
    InvalidInputError
        If `clean` and `degraded` differ in shape.
    TrainingDivergedError
        If the loss is not finite (the step is not applied).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch import ECMRNet, make_optimizer, train_step
    >>> model = ECMRNet.from_preset("tiny")
    >>> _ = model.add_task("C")
    >>> opt = make_optimizer(model, lr=1e-3)
    >>> clean = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> loss = train_step(model, opt, 0.5 * clean, clean, task="C")
    >>> loss > 0
    True
    """
    _check_task(model, task)
    _check_optimizer(model, optimizer)
    if not isinstance(clean, torch.Tensor) or clean.shape != getattr(degraded, "shape", None):
        raise InvalidInputError(
            f"`clean` must be a tensor of the shape of `degraded` "
            f"{tuple(getattr(degraded, 'shape', ()))}; got {tuple(getattr(clean, 'shape', ()))}"
        )
    model.train()
    forward = forward or _default_forward(model, task)
    objective = _restoration(model, forward, _loss(loss), amp, None, False, None)
    return _step(optimizer, lambda: objective((degraded, clean)), batch=(degraded, clean))


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes
    ----------
    loss : float
        The last training loss.
    steps : int
        Steps taken (fewer than asked when early stopping ended the training).
    optimizer, scheduler : dict
        Their final states (for inspection; a new fit builds its own).
    averaged : list of Tensor or None
        With a recipe that keeps an EMA: the averaged trainable weights (the best
        validated ones when `validate` was given), in the order of the optimized
        parameters; :meth:`use_averaged` copies them into the model. The model itself
        keeps its last raw weights.
    scores : list of (int, float)
        ``(step, score)`` of every validation.
    best_step : int or None
        The step of the best validation score.
    stopped_early : bool
    """

    loss: float
    steps: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    averaged: list[torch.Tensor] | None = None
    scores: list[tuple[int, float]] = field(default_factory=list)
    best_step: int | None = None
    stopped_early: bool = False
    parameters: list[nn.Parameter] = field(default_factory=list, repr=False)

    @torch.no_grad()
    def use_averaged(self) -> None:
        """Copy :attr:`averaged` into the trained parameters (the reporting weights)."""
        if self.averaged is None:
            raise TaskStateError("this fit kept no weight average (its recipe has no EMA)")
        torch._foreach_copy_(self.parameters, self.averaged)


def fit(
    model: nn.Module,
    batches,
    *,
    lr: float,
    epochs: int = 1,
    steps: int | None = None,
    task: str | None = None,
    clean_to_clean: bool = False,
    recipe: str = "paper",
    loss: str | None = None,
    optimizer_impl: str = "default",
    amp: str = "none",
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    parameters: Iterable[nn.Parameter] | None = None,
    objective: Callable[[Any], torch.Tensor] | None = None,
    regularizer=None,
    set_epoch: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
    validate: Callable[[], float] | None = None,
    validate_every: int | None = None,
    warmup_steps: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
    progress: bool = False,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `batches` by a `recipe` (:data:`RECIPES`): by default Adam with a
    cosine schedule to ``lr / 100`` and the L1 loss (the paper's text).

    By default `model` learns to restore: ``(degraded, clean)`` batches, the recipe's (or
    `loss`'s) restoration loss. With `objective`, `fit` minimises any loss of any
    `parameters` instead (the recognizer's heads, the SRP gates): the schedule, the
    divergence check, clipping, the average, validation and the progress bar stay the same.

    Parameters
    ----------
    model : nn.Module
        What trains: its :func:`trainable_parameters` (or `parameters`) are optimized.
    batches : sized iterable
        One epoch of batches; iterated once per epoch (a DataLoader, a list, ...): pairs
        ``(degraded, clean)``, or whatever `objective` takes.
    lr : float in (0, 1]
    epochs : int
        Passes over `batches`; the schedule spans ``epochs * len(batches)`` steps.
    steps : int, optional
        A budget in steps instead: passes over `batches` until `steps` steps are done.
    task : str, optional
        The path that trains (ECMRNet); None trains the model itself.
    clean_to_clean : bool
        Learn clean -> clean (the backbone's pretraining): the input is the clean image.
    recipe : str or Recipe
        ``"paper"`` or ``"code"`` (the public training code's: AdamW, warm-up, EMA,
        clipping, its loss, early stopping), or a :class:`Recipe` of one's own (with
        ``min_lr`` equal to `lr`, a constant rate).
    loss : str, optional
        One of :data:`~sepkit_torch.metrics.LOSSES`, computed in float32 (default: the
        recipe's).
    optimizer_impl : str
        The optimizer's kernels (:data:`OPTIMIZER_IMPLS`).
    amp : {"none", "bf16"}
        Precision of the forward passes.
    forward : callable, optional
        ``forward(x) -> restored`` (default: ``model(x, task=task)`` for ECMRNet, else
        ``model(x)``); pass the DDP- or compile-wrapped model's call here.
    parameters : iterable of nn.Parameter, optional
        What is optimized (default: :func:`trainable_parameters` of `model`).
    objective : callable, optional
        ``objective(batch) -> loss``, a scalar tensor to minimise over `parameters`, in
        place of the restoration loss; `task`, `clean_to_clean`, `loss`, `amp`,
        `forward`, `regularizer` and `device` are then not used (`objective` moves its
        batch where it needs it).
    regularizer : optional
        A continual-learning regularizer (``penalty``, ``before_step``, ``after_step``;
        :mod:`sepkit_torch.continual.regularizers`); not used for clean-to-clean.
    set_epoch : callable, optional
        Called with the epoch number before each pass (``dataset.set_epoch``).
    device : optional
        Where batches go (default: where they are).
    validate : callable, optional
        ``validate() -> score`` (lower is better), called every `validate_every` steps
        and at the end, with the weight average in the model when the recipe keeps one
        (the raw weights are put back afterwards). The recipe's `patience` stops the
        training early; the best average is :attr:`FitResult.averaged`.
    validate_every : int, optional
        Steps between validations (default: one epoch, ``len(batches)``).
    warmup_steps : int, optional
        Steps of the recipe's linear warm-up (default: its ``warmup_epochs`` epochs).
    on_step : callable, optional
        ``on_step(step, loss)`` after every step.
    on_epoch : callable, optional
        ``on_epoch(state)`` after every full pass over `batches` that leaves steps to do:
        `state` is a dict of tensors and plain data (the step, the trained weights, the
        optimizer, the schedule, the average, the validations) to save at once
        (``torch.save``) and pass back as `resume`.
    resume : dict, optional
        A `state` given to `on_epoch`: the training goes on from it as if it had never
        stopped, given the same arguments and the same batches from that pass on (a
        caller that shuffles saves its generator's state beside it).
    progress : bool
        A progress bar named `desc`.

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidInputError
        Before any step, for an argument out of its range (no batches, a count that is
        not an integer, a callback that is not callable, a `resume` state with a NaN or
        a step that is not an integer); at the first validation, for a `validate` that
        returns anything but a finite number.
    TrainingDivergedError
        As soon as a loss is NaN or infinite (the model keeps its last finite step).

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch import ECMRNet, fit
    >>> model = ECMRNet.from_preset("tiny")
    >>> _ = model.add_task("C")
    >>> clean = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> batches = [(0.5 * clean[i : i + 4], clean[i : i + 4]) for i in (0, 4)]
    >>> result = fit(model, batches, lr=1e-3, epochs=3, task="C")
    >>> result.steps, result.loss > 0
    (6, True)
    >>> result = fit(model, batches, lr=1e-3, epochs=3, task="C", recipe="code")
    >>> len(result.averaged) == len(model.trainable_parameters())
    True
    """
    _check_lr(lr)
    if objective is None:
        _check_task(model, task)
    if not isinstance(recipe, Recipe) and not (isinstance(recipe, str) and recipe in RECIPES):
        raise InvalidInputError(f"`recipe` must be one of {sorted(RECIPES)}; got {recipe!r}")
    how = recipe if isinstance(recipe, Recipe) else RECIPES[recipe]
    callbacks = {"forward": forward, "objective": objective, "set_epoch": set_epoch}
    callbacks |= {"validate": validate, "on_step": on_step, "on_epoch": on_epoch}
    per_epoch, total = check_fit(batches, epochs, steps, validate_every, warmup_steps, callbacks)
    every = per_epoch if validate_every is None else validate_every
    params = trainable_parameters(model) if parameters is None else list(parameters)
    extra = {"weight_decay": how.weight_decay} if how.optimizer == "adamw" else {}
    optimizer = make_optimizer(params, lr, impl=optimizer_impl, kind=how.optimizer, **extra)
    warmup = how.warmup_epochs * per_epoch if warmup_steps is None else warmup_steps
    scheduler = _schedule(optimizer, lr, total, min(warmup, total), how)
    reg = None
    if objective is None:
        reg = None if clean_to_clean else regularizer
        run = forward or _default_forward(model, task)
        loss_fn = _loss(how.loss if loss is None else loss)
        objective = _restoration(model, run, loss_fn, amp, reg, clean_to_clean, device)
    average = Average(params, how.ema_decay) if how.ema_decay is not None else None
    result = FitResult(math.nan, 0, {}, {}, parameters=params)
    best = math.inf
    step, epoch, last = 0, 0, math.nan
    if resume is not None:
        check_resume(resume, params, total, average)
        load_schedule(resume, optimizer, scheduler)  # before the weights: it may fail
        with torch.no_grad():
            torch._foreach_copy_(params, resume["weights"])
        if average is not None:
            average.values = [v.clone() for v in resume["average"]]
        result.scores = [tuple(s) for s in resume["scores"]]
        result.averaged, result.best_step = resume["averaged"], resume["best_step"]
        best, step, epoch, last = resume["best"], resume["step"], resume["epoch"], resume["loss"]

    def state() -> dict[str, Any]:
        return copy.deepcopy(
            {
                "step": step,
                "epoch": epoch,
                "loss": last,
                "weights": [p.detach() for p in params],
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "average": None if average is None else average.values,
                "averaged": result.averaged,
                "scores": result.scores,
                "best": best,
                "best_step": result.best_step,
            }
        )

    def check(step) -> bool:
        """Validate at `step`; True when early stopping ends the training."""
        nonlocal best
        with average.swapped() if average is not None else contextlib.nullcontext():
            score = check_score(validate(), step)
            model.train()
        result.scores.append((step, score))
        if score < best:
            best, result.best_step = score, step
            if average is not None:
                result.averaged = average.copy()
        waited = sum(1 for s, _ in result.scores if s > result.best_step)
        return how.patience is not None and waited >= how.patience

    bar = progress_bar(total, desc, progress)
    bar.update(step)
    model.train()
    try:
        while step < total and not result.stopped_early:
            if set_epoch is not None:
                set_epoch(epoch)
            for batch in batches:
                compute = lambda b=batch: objective(b)  # noqa: E731
                last = _step(optimizer, compute, params, how.clip_norm, reg, model, batch)
                scheduler.step()
                if average is not None:
                    average.update()
                step += 1
                bar.set_postfix(loss=f"{last:.4f}")
                bar.update()
                if on_step is not None:
                    on_step(step, last)
                if validate is not None and step % every == 0 and step < total and check(step):
                    result.stopped_early = True
                    break
                if step == total:
                    break
            epoch += 1
            if per_epoch == 0:
                break
            if on_epoch is not None and step < total and not result.stopped_early:
                on_epoch(state())
        if validate is not None and not result.stopped_early and step > 0:
            check(step)
    finally:
        bar.close()
    if average is not None and result.averaged is None:
        result.averaged = average.copy()
    result.loss, result.steps = last, step
    result.optimizer, result.scheduler = optimizer.state_dict(), scheduler.state_dict()
    return result


# ----------------------------------------------------------------------------- inside


def _restoration(model, forward, loss_fn, amp, regularizer, clean_to_clean, device):
    """The objective of a ``(degraded, clean)`` batch: the restoration loss (in float32
    whatever the precision of the forward pass) plus the regularizer's penalty."""

    def objective(batch) -> torch.Tensor:
        degraded, clean = batch
        if device is not None:
            degraded = degraded.to(device, non_blocking=True)
            clean = clean.to(device, non_blocking=True)
        source = clean if clean_to_clean else degraded
        with autocast(source.device, amp):
            restored = forward(source)
        restored = restored.float()
        loss = loss_fn(restored, clean)
        if regularizer is not None:
            loss = loss + regularizer.penalty(model, source, restored)
        return loss

    return objective


def _step(optimizer, compute, params=None, clip=None, regularizer=None, model=None, batch=None):
    """One optimizer step on the loss ``compute()`` of `batch`; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss = compute()
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the training loss became {value}; "
            + (non_finite_batch(batch) or "the learning rate may be too high for this model")
            + " (the last finite weights are kept)"
        )
    loss.backward()
    if regularizer is not None:
        regularizer.before_step(model)
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    if regularizer is not None:
        regularizer.after_step(model)
    return value


def _has_tasks(model) -> bool:
    """A model whose forward pass takes the path of a task (ECMRNet)."""
    return hasattr(model, "trainable_task")


def _default_forward(model, task):
    if _has_tasks(model):
        return lambda x: model(x, task=task)
    return model


def _loss(name):
    if name not in LOSSES:
        raise InvalidInputError(f"`loss` must be one of {sorted(LOSSES)}; got {name!r}")
    return LOSSES[name]


def _check_lr(lr) -> None:
    check_real("lr", lr, low=0, high=1, low_open=True)


def _check_task(model, task) -> None:
    if _has_tasks(model) and task != model.trainable_task:
        raise TaskStateError(
            f"only {model.trainable_task!r} trains now (the newest task, None = the "
            f"pretraining backbone); got `task`={task!r}"
        )


def _check_optimizer(model, optimizer) -> None:
    expected = {id(p) for p in trainable_parameters(model)}
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if held != expected:
        raise TaskStateError(
            f"`optimizer` must hold exactly the {len(expected)} trainable tensors of the "
            f"model; it holds {len(held)}, {len(held & expected)} of them trainable. Build it "
            "again with make_optimizer(model) after add_task or load_state_dict"
        )
