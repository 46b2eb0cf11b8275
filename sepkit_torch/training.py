"""The optimizer over exactly the trainable parameters, and one training step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sepkit_torch._errors import InvalidInputError, TaskStateError
from sepkit_torch.continual.expansion import ECMRNet

__all__ = ["make_optimizer", "train_step", "trainable_parameters"]


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


def make_optimizer(model: nn.Module, lr: float = 1e-4, **kwargs) -> torch.optim.Adam:
    """Adam (the paper's optimizer) over exactly :func:`trainable_parameters` of `model`.

    Call it again after every :meth:`~sepkit_torch.ECMRNet.add_task` (and after
    ``load_state_dict``); :func:`train_step` refuses an optimizer that is out of date.
    `kwargs` go to :class:`torch.optim.Adam`.
    """
    params = trainable_parameters(model)
    if not params:
        raise TaskStateError(f"{type(model).__name__} has no trainable parameter to optimize")
    return torch.optim.Adam(params, lr=lr, **kwargs)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    degraded: torch.Tensor,
    clean: torch.Tensor,
    task: str | None = None,
) -> float:
    """One L1 step of `model` on ``(degraded, clean)`` along `task`'s path; returns the loss.

    Raises
    ------
    TaskStateError
        If `optimizer` does not hold exactly the trainable parameters (built before the
        last ``add_task``), or `task` is not the one that currently trains.
    InvalidInputError
        If `clean` and `degraded` differ in shape.

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
    if isinstance(model, ECMRNet) and task != model.trainable_task:
        raise TaskStateError(
            f"only {model.trainable_task!r} trains now (the newest task, None = the "
            f"pretraining backbone); got `task`={task!r}"
        )
    expected = {id(p) for p in trainable_parameters(model)}
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if held != expected:
        raise TaskStateError(
            f"`optimizer` must hold exactly the {len(expected)} trainable tensors of the "
            f"model; it holds {len(held)}, {len(held & expected)} of them trainable. Build it "
            "again with make_optimizer(model) after add_task or load_state_dict"
        )
    if not isinstance(clean, torch.Tensor) or clean.shape != getattr(degraded, "shape", None):
        raise InvalidInputError(
            f"`clean` must be a tensor of the shape of `degraded` "
            f"{tuple(getattr(degraded, 'shape', ()))}; got {tuple(getattr(clean, 'shape', ()))}"
        )
    model.train()
    optimizer.zero_grad(set_to_none=True)
    kwargs = {} if task is None else {"task": task}
    loss = F.l1_loss(model(degraded, **kwargs), clean)
    loss.backward()
    optimizer.step()
    return loss.item()
