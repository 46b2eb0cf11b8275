"""SRP as the paper describes it: Network Slimming on channel groups.

Network Slimming (Liu et al., 2017) trains a network with an L1 penalty on per-channel
scale factors, then prunes the channels whose factors are smallest. Here each channel
group of a branch stage gets one gate on its input to the stage's exit convolution, and
the gates train *together with the branch's weights* on ``loss + penalty * sum |gate|``.
The gates are then folded into the exit convolutions (exactly: a gate scales its group's
input columns), so the slimmed branch computes what it computed with its gates, and
their magnitudes rank the groups. :func:`~sepkit_torch.continual.pruning.gate_scores`
is the lighter variant that trains the gates alone, the weights frozen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from sepkit_torch._checks import check_int, check_real
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.pruning.baselines import gated_exits
from sepkit_torch.models.backbone import STAGE_NAMES
from sepkit_torch.training import RECIPES, Recipe, fit, trainable_parameters

__all__ = ["fold_gates", "slim_branch"]


class _GatePenalty:
    """The L1 penalty on the gates, as a :func:`~sepkit_torch.training.fit` regularizer."""

    def __init__(self, gates: dict[str, torch.Tensor], penalty: float):
        self.gates, self.penalty_weight = gates, penalty

    def penalty(self, model, source, restored) -> torch.Tensor:
        return self.penalty_weight * sum(g.abs().sum() for g in self.gates.values())

    def before_step(self, model) -> None:
        pass

    def after_step(self, model) -> None:
        pass


def slim_branch(
    model: nn.Module,
    task: str,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    penalty: float = 1e-3,
    lr: float = 2e-4,
    steps: int = 100,
    recipe: str | Recipe = "paper",
    set_epoch: Callable[[int], None] | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Network Slimming of `task`'s branch: train group gates with its weights, fold them in.

    Every stage's exit convolution sees its input multiplied by one gate per channel
    group (initialised to 1). The gates and the branch's trainable weights train
    together for `steps` steps of `recipe` on the restoration loss plus
    ``penalty * sum |gates|``; then each gate is folded into the exit convolution's
    weights of its group, so `model` (changed in place) computes exactly what it computed
    with the gates, and no hook stays behind.

    Parameters
    ----------
    model : ECMRNet
        Its newest task must be `task` (the branch that trains).
    task : str
    batches : sized iterable of (degraded, clean) batches
        One epoch; iterated until `steps` steps are done.
    penalty : float >= 0
        Weight of the gates' L1 norm.
    lr : float in (0, 1]
    steps : int >= 1
    recipe : str or Recipe
        The schedule and loss (:data:`~sepkit_torch.training.RECIPES`); its early
        stopping and weight average are not used (there is no validation).
    set_epoch : callable, optional
        Called with the epoch number before each pass over `batches` (a dataset's
        fresh degradations per epoch).

    Returns
    -------
    dict of str -> ndarray of float64
        Per stage ``e1 .. d3``, each group's ``|gate|`` (larger: more important).
    """
    check_real("penalty", penalty, low=0)
    check_int("steps", steps, 1)
    how = RECIPES[recipe] if isinstance(recipe, str) and recipe in RECIPES else recipe
    if not isinstance(how, Recipe):
        raise InvalidInputError(f"`recipe` must be one of {sorted(RECIPES)}; got {recipe!r}")
    branch = model.branches[model.task(task).name]
    weights = trainable_parameters(model)
    with gated_exits(model, task) as gates:
        fit(
            model,
            batches,
            lr=lr,
            steps=steps,
            task=task,
            recipe=dataclasses.replace(how, ema_decay=None, patience=None),
            parameters=[*weights, *gates.values()],
            regularizer=_GatePenalty(gates, penalty),
            set_epoch=set_epoch,
            progress=progress,
            desc=f"{task}: slimming",
        )
    fold_gates(branch, model.config, gates)
    return {s: gates[s].detach().abs().double().cpu().numpy() for s in STAGE_NAMES}


@torch.no_grad()
def fold_gates(branch: nn.Module, config, gates: Mapping[str, torch.Tensor]) -> None:
    """Scale each stage's exit-convolution columns by their group's gate (in place): the
    branch then computes what it computed with the gates on the exits' inputs."""
    for s, width in zip(STAGE_NAMES, config.group_widths, strict=True):
        exit_conv = getattr(branch, s).exit
        scale = torch.as_tensor(gates[s]).detach().repeat_interleave(width).view(1, -1, 1, 1)
        exit_conv.weight.mul_(scale.to(exit_conv.weight))
