"""The pruning baselines of ECMRNet's Table 7: magnitude (MP) and sparse-regularised (SRP).

Both score every channel group of a branch; :func:`top_groups` keeps the best ones, at
the counts SEP kept, so that the comparison is at equal size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from sepkit_torch._checks import check_finite, check_int, check_real
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.models.backbone import STAGE_NAMES, BackboneConfig, Branch
from sepkit_torch.training import Recipe, fit

__all__ = ["gate_scores", "magnitude_scores", "top_groups"]

# The gates' training: Adam at a constant rate (a cosine from `lr` to `lr`).
_GATES = Recipe("srp-gates", min_lr=1.0)


def magnitude_scores(branch: Branch, config: BackboneConfig) -> dict[str, np.ndarray]:
    """MP baseline: the L1 norm of every weight of each group (entrance rows, GResBlock
    convolutions, attention and norm, exit columns), per stage."""
    scores = {}
    with torch.no_grad():
        for i, s in enumerate(STAGE_NAMES):
            stage = getattr(branch, s)
            g, m = stage.groups, config.group_widths[i]
            per_channel = stage.entrance.weight.abs().flatten(1).sum(1)
            per_channel = per_channel + stage.exit.weight.abs().transpose(0, 1).flatten(1).sum(1)
            for block in stage.blocks:
                for name in ("conv1", "conv2", "attn"):
                    per_channel = per_channel + getattr(block, name).weight.abs().flatten(1).sum(1)
                per_channel = per_channel + block.norm.weight.abs()
            scores[s] = per_channel.reshape(g, m).sum(1).double().cpu().numpy()
    return scores


def gate_scores(
    model: nn.Module,
    task: str,
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    penalty: float = 1e-3,
    lr: float = 1e-2,
    epochs: int = 1,
) -> dict[str, np.ndarray]:
    """SRP baseline: learn one gate per group, with an L1 penalty, and return |gate|.

    Every stage's exit convolution sees its input multiplied by a per-group gate
    (initialised to 1). Only the gates train, for `epochs` passes over `pairs` of
    ``(degraded, clean)`` batches, on ``L1(restored, clean) + penalty * sum |gates|``;
    the branch's weights stay as they are (no fine-tuning). The model is left unchanged.
    """
    check_real("penalty", penalty, low=0)

    def objective(batch) -> torch.Tensor:
        degraded, clean = batch
        loss = torch.nn.functional.l1_loss(model(degraded, task=task), clean)
        return loss + penalty * sum(g.abs().sum() for g in gates.values())

    batches = pairs if hasattr(pairs, "__len__") else list(pairs)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    with gated_exits(model, task) as gates:
        try:
            model.requires_grad_(False)
            fit(
                model,
                batches,
                lr=lr,
                epochs=epochs,
                recipe=_GATES,
                parameters=list(gates.values()),
                objective=objective,
            )
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
            model.train(was_training)
    return {s: gates[s].detach().abs().double().cpu().numpy() for s in STAGE_NAMES}


@contextlib.contextmanager
def gated_exits(model: nn.Module, task: str):
    """One trainable gate per channel group (initialised to 1) on the input of every
    stage's exit convolution of `task`'s branch, for the time of the ``with`` block;
    yields the gates, per stage."""
    branch = model.branches[model.task(task).name]
    widths = dict(zip(STAGE_NAMES, model.config.group_widths, strict=True))
    gates = {
        s: torch.ones(getattr(branch, s).groups, device=branch.a.device, requires_grad=True)
        for s in STAGE_NAMES
    }

    def gate(stage):
        def pre_hook(module, args):
            g = gates[stage].repeat_interleave(widths[stage]).view(1, -1, 1, 1)
            return (args[0] * g,)

        return pre_hook

    hooks = [getattr(branch, s).exit.register_forward_pre_hook(gate(s)) for s in STAGE_NAMES]
    try:
        yield gates
    finally:
        for h in hooks:
            h.remove()


def top_groups(scores: Mapping[str, np.ndarray], counts: Mapping[str, int]) -> dict:
    """Keep masks with the `counts` highest-scoring groups per stage (lowest index on ties).

    Scores must be finite (a NaN would rank anywhere); every stage of `scores` needs an
    integer count in ``1 .. len(scores[stage])``.
    """
    keep = {}
    for s, score in scores.items():
        score = np.asarray(score, dtype=np.float64)
        if score.ndim != 1:
            raise InvalidInputError(
                f"`scores[{s!r}]` must be a 1-D array, one score per group; got shape {score.shape}"
            )
        check_finite(f"scores[{s!r}]", score)
        if not isinstance(counts, Mapping) or s not in counts:
            raise InvalidInputError(f"`counts` must give a count for stage {s!r}; got {counts!r}")
        k = check_int(f"counts[{s!r}]", counts[s], 1, score.size)
        order = np.lexsort((np.arange(score.size), -score))
        mask = np.zeros(score.size, dtype=bool)
        mask[order[:k]] = True
        keep[s] = mask
    return keep
