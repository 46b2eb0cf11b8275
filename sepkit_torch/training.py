"""Training: the optimizer over exactly the trainable parameters, one step, and ``fit``,
the one training loop (pretraining, task training, fine-tuning, the baselines and the
benchmarks all use it)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sepkit_torch._errors import InvalidInputError, SepkitTorchError, TaskStateError
from sepkit_torch._progress import progress_bar
from sepkit_torch.continual.expansion import ECMRNet
from sepkit_torch.metrics import LOSSES
from sepkit_torch.speed import autocast

__all__ = [
    "OPTIMIZER_IMPLS",
    "FitResult",
    "TrainingDivergedError",
    "fit",
    "make_optimizer",
    "train_step",
    "trainable_parameters",
]

#: Adam's update kernels (:func:`make_optimizer`); every one computes the same update.
OPTIMIZER_IMPLS = ("default", "foreach", "fused", "for-loop")
_IMPL_FLAGS = {
    "default": {},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "for-loop": {"foreach": False},
}


class TrainingDivergedError(SepkitTorchError, FloatingPointError):
    """The training loss became NaN or infinite; the step was not applied."""


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a training step may change.

    For an :class:`~sepkit_torch.ECMRNet` this follows its task state (the whole
    backbone before any task, then the newest task's branch and, for a compound task,
    its SKMM), not the ``requires_grad`` flags; for any other module, the parameters
    with ``requires_grad``.

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
    if isinstance(model, ECMRNet):
        return model.trainable_parameters()
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(
    model: nn.Module | Iterable[nn.Parameter], lr: float = 1e-4, *, impl: str = "default", **kwargs
) -> torch.optim.Adam:
    """Adam (the paper's optimizer) over :func:`trainable_parameters` of `model` (or over
    the given parameters), with the update kernels `impl` (:data:`OPTIMIZER_IMPLS`).

    Call it again after every :meth:`~sepkit_torch.ECMRNet.add_task` (and after
    ``load_state_dict``); :func:`train_step` refuses an optimizer that is out of date.
    ``"fused"`` needs every parameter on a device with the fused kernel (CUDA, and the
    CPU since torch 2.4). `kwargs` go to :class:`torch.optim.Adam`.
    """
    if impl not in OPTIMIZER_IMPLS:
        raise InvalidInputError(f"`impl` must be one of {list(OPTIMIZER_IMPLS)}; got {impl!r}")
    _check_lr(lr)
    params = trainable_parameters(model) if isinstance(model, nn.Module) else list(model)
    if not params:
        raise TaskStateError(f"{type(model).__name__} has no trainable parameter to optimize")
    return torch.optim.Adam(params, lr=lr, **_IMPL_FLAGS[impl], **kwargs)


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
    return _step(model, forward, optimizer, degraded, clean, _loss(loss), amp, None)


@dataclass
class FitResult:
    """What :func:`fit` did: the last loss, the steps taken, and the optimizer's and
    schedule's final states (for inspection; a new fit builds its own)."""

    loss: float
    steps: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]


def fit(
    model: nn.Module,
    batches,
    *,
    lr: float,
    epochs: int = 1,
    steps: int | None = None,
    task: str | None = None,
    clean_to_clean: bool = False,
    loss: str = "paper",
    optimizer_impl: str = "default",
    amp: str = "none",
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    parameters: list[nn.Parameter] | None = None,
    regularizer=None,
    set_epoch: Callable[[int], None] | None = None,
    device: torch.device | str | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = False,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `batches` with Adam and a cosine schedule (to ``lr / 100``).

    Parameters
    ----------
    model : nn.Module
        What trains: its :func:`trainable_parameters` (or `parameters`) are optimized.
    batches : iterable of (degraded, clean)
        One epoch of batches; iterated once per epoch (a DataLoader, a list, ...).
    lr : float in (0, 1]
    epochs : int
        Passes over `batches`; the schedule spans ``epochs * len(batches)`` steps.
    steps : int, optional
        A budget in steps instead: passes over `batches` until `steps` steps are done.
    task : str, optional
        The path that trains (ECMRNet); None trains the model itself.
    clean_to_clean : bool
        Learn clean -> clean (the backbone's pretraining): the input is the clean image.
    loss : str
        One of :data:`~sepkit_torch.metrics.LOSSES`, computed in float32.
    optimizer_impl : str
        Adam's kernels (:data:`OPTIMIZER_IMPLS`).
    amp : {"none", "bf16"}
        Precision of the forward passes.
    forward : callable, optional
        ``forward(x) -> restored`` (default: ``model(x, task=task)`` for ECMRNet, else
        ``model(x)``); pass the DDP- or compile-wrapped model's call here.
    regularizer : optional
        A continual-learning regularizer (``penalty``, ``before_step``, ``after_step``;
        :mod:`sepkit_torch.continual.regularizers`); not used for clean-to-clean.
    set_epoch : callable, optional
        Called with the epoch number before each pass (``dataset.set_epoch``).
    device : optional
        Where batches go (default: where they are).
    on_step : callable, optional
        ``on_step(step, loss)`` after every step.
    progress : bool
        A progress bar named `desc`.

    Returns
    -------
    FitResult

    Raises
    ------
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
    """
    _check_lr(lr)
    _check_task(model, task)
    per_epoch = len(batches)
    total = epochs * per_epoch if steps is None else steps
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise InvalidInputError(f"`steps` must be an int >= 0; got {total!r}")
    params = trainable_parameters(model) if parameters is None else parameters
    optimizer = make_optimizer(params, lr, impl=optimizer_impl)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, total), eta_min=lr / 100
    )
    loss_fn = _loss(loss)
    run = forward or _default_forward(model, task)
    reg = None if clean_to_clean else regularizer
    bar = progress_bar(total, desc, progress)
    model.train()
    step, epoch, last = 0, 0, math.nan
    try:
        while step < total:
            if set_epoch is not None:
                set_epoch(epoch)
            for degraded, clean in batches:
                if device is not None:
                    degraded = degraded.to(device, non_blocking=True)
                    clean = clean.to(device, non_blocking=True)
                source = clean if clean_to_clean else degraded
                last = _step(model, run, optimizer, source, clean, loss_fn, amp, reg)
                scheduler.step()
                step += 1
                bar.set_postfix(loss=f"{last:.4f}")
                bar.update()
                if on_step is not None:
                    on_step(step, last)
                if step == total:
                    break
            epoch += 1
            if per_epoch == 0:
                break
    finally:
        bar.close()
    return FitResult(last, step, optimizer.state_dict(), scheduler.state_dict())


# ----------------------------------------------------------------------------- inside


def _step(model, forward, optimizer, source, clean, loss_fn, amp, regularizer) -> float:
    optimizer.zero_grad(set_to_none=True)
    with autocast(source.device, amp):
        restored = forward(source)
    restored = restored.float()  # the loss in float32 whatever the precision
    loss = loss_fn(restored, clean)
    if regularizer is not None:
        loss = loss + regularizer.penalty(model, source, restored)
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the training loss became {value}; the learning rate may be too high for this "
            "model (the last finite weights are kept)"
        )
    loss.backward()
    if regularizer is not None:
        regularizer.before_step(model)
    optimizer.step()
    if regularizer is not None:
        regularizer.after_step(model)
    return value


def _default_forward(model, task):
    if isinstance(model, ECMRNet):
        return lambda x: model(x, task=task)
    return model


def _loss(name):
    if name not in LOSSES:
        raise InvalidInputError(f"`loss` must be one of {sorted(LOSSES)}; got {name!r}")
    return LOSSES[name]


def _check_lr(lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 1:
        raise InvalidInputError(f"`lr` must be a number in (0, 1]; got {lr!r}")


def _check_task(model, task) -> None:
    if isinstance(model, ECMRNet) and task != model.trainable_task:
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
