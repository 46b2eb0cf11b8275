"""Physical removal of channel groups from a task branch: the pruned branch is smaller.

The kept groups (of :func:`sepkit_torch.continual.pruning.select_groups` or a baseline)
are copied into a new, narrower :class:`~sepkit_torch.models.backbone.Branch`, and the
model records the kept indices so that the pruned model reloads from its checkpoint.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from sepkit_torch._checks import check_int, check_real
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.pruning.checks import check_pool
from sepkit_torch.models.backbone import STAGE_NAMES, BackboneConfig, Branch

__all__ = ["compensate_exits", "prune", "prune_branch"]


def prune_branch(branch: Branch, config: BackboneConfig, keep: Mapping[str, np.ndarray]) -> Branch:
    """A new, smaller :class:`Branch` holding only the kept groups of `branch`.

    Removes, per stage, the entrance convolution's output channels of the dropped
    groups, those channels in every GResBlock (norm, both convolutions, attention,
    beta) and the exit convolution's input channels. The stage interfaces and the
    skip scales stay. Its output equals `branch`'s output with the dropped groups'
    inputs to the exit convolutions set to zero.

    Parameters
    ----------
    branch : Branch
    config : BackboneConfig
        The backbone configuration `branch` was built from.
    keep : mapping of stage name -> bool mask or int indices
        Groups to keep in each stage, in terms of `branch`'s current groups; at least
        one per stage.
    """
    kept = {s: _kept_indices(keep, s, getattr(branch, s).groups) for s in STAGE_NAMES}
    new = Branch(config, groups=[len(kept[s]) for s in STAGE_NAMES])
    new.to(device=branch.a.device, dtype=branch.a.dtype)
    with torch.no_grad():
        for s in STAGE_NAMES:
            old_stage, new_stage = getattr(branch, s), getattr(new, s)
            channels = _channels(kept[s], config.group_widths[STAGE_NAMES.index(s)])
            ch = torch.as_tensor(channels, device=branch.a.device)
            new_stage.entrance.weight.copy_(old_stage.entrance.weight[ch])
            new_stage.entrance.bias.copy_(old_stage.entrance.bias[ch])
            for old_block, new_block in zip(old_stage.blocks, new_stage.blocks, strict=True):
                for name in ("norm", "conv1", "conv2", "attn"):
                    getattr(new_block, name).weight.copy_(getattr(old_block, name).weight[ch])
                    getattr(new_block, name).bias.copy_(getattr(old_block, name).bias[ch])
                new_block.beta.copy_(old_block.beta[:, ch])
            new_stage.exit.weight.copy_(old_stage.exit.weight[:, ch])
            new_stage.exit.bias.copy_(old_stage.exit.bias)
        for name in ("a", "b", "c"):
            getattr(new, name).copy_(getattr(branch, name))
    new.requires_grad_(branch.a.requires_grad)
    return new


def prune(model: nn.Module, task: str, keep: Mapping[str, np.ndarray]):
    """Remove the groups not in `keep` from `task`'s branch of `model`, for real.

    The branch is rebuilt smaller (:func:`prune_branch`) and the kept-group indices are
    stored in the model's task state, so a pruned model reloads from its checkpoint
    (``ECMRNet.from_state_dict``). Rebuild the optimizer afterwards.

    Returns
    -------
    TaskInfo
        The task's new state (``groups`` and ``kept``).

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit_torch import ECMRNet, complexity
    >>> from sepkit_torch.continual.pruning import prune
    >>> model = ECMRNet.from_preset("tiny")
    >>> _ = model.add_task("C")
    >>> keep = {s: np.arange(g) % 2 == 0 for s, g in zip(  # every other group
    ...     ("e1", "e2", "e3", "d1", "d2", "d3"), model.config.groups)}
    >>> before = complexity(model, (1, 1, 64, 64), task="C").activated_params
    >>> prune(model, "C", keep).groups
    (2, 4, 16, 16, 4, 2)
    >>> complexity(model, (1, 1, 64, 64), task="C").activated_params < before
    True
    """
    info = model.task(task)
    branch = model.branches[info.name]
    kept = [_kept_indices(keep, s, getattr(branch, s).groups) for s in STAGE_NAMES]
    new = prune_branch(branch, model.config, dict(zip(STAGE_NAMES, kept, strict=True)))
    return model.replace_branch(info.name, new, [k.tolist() for k in kept])


def _kept_indices(keep, stage: str, groups: int) -> np.ndarray:
    if not isinstance(keep, Mapping) or set(keep) - set(STAGE_NAMES):
        got = sorted(keep) if isinstance(keep, Mapping) else type(keep).__name__
        raise InvalidInputError(f"`keep` must map the stages {STAGE_NAMES}; got {got}")
    if stage not in keep:
        raise InvalidInputError(f"`keep` must name every stage {STAGE_NAMES}; {stage!r} missing")
    k = np.asarray(keep[stage])
    if k.size == 0 or (k.dtype == bool and not k.any()):
        raise InvalidInputError(
            f"`keep[{stage!r}]` must keep at least one group of stage {stage!r}; got none"
        )
    if k.dtype == bool:
        if k.shape != (groups,):
            raise InvalidInputError(
                f"`keep[{stage!r}]` must be a mask of {groups} groups; got shape {k.shape}"
            )
        k = np.flatnonzero(k)
    elif not np.issubdtype(k.dtype, np.integer) or k.ndim != 1:
        raise InvalidInputError(
            f"`keep[{stage!r}]` must be a bool mask or int indices; got {keep[stage]!r}"
        )
    k = np.unique(k)
    if k[0] < 0 or k[-1] >= groups:
        raise InvalidInputError(
            f"`keep[{stage!r}]` indices must lie in 0..{groups - 1}; got {k.tolist()}"
        )
    return k


def _channels(groups: np.ndarray, width: int) -> list[int]:
    return [g * width + j for g in groups.tolist() for j in range(width)]


@torch.no_grad()
def compensate_exits(
    model: nn.Module,
    task: str,
    original: nn.Module,
    pool: torch.Tensor,
    *,
    batch_size: int = 8,
    ridge: float = 1e-4,
) -> dict[str, float]:
    """Refit each stage's exit convolution of `task`'s pruned branch so that it
    reproduces the unpruned branch's stage outputs on `pool` (least squares).

    A group that pruning removed was often redundant with groups that stay (what SEP's
    clusters say); its part of the exit convolution's output can then be rebuilt from
    theirs. Stage by stage, in order, the exit convolution's weights and bias are set to
    the ridge-regularised least-squares map from the pruned branch's features (with the
    stages before it already refitted) to `original`'s outputs of that stage. Only the
    exit convolutions change; the pruned branch keeps its size.

    Parameters
    ----------
    model : ECMRNet
        Holds the pruned branch of `task` (changed in place).
    original : ECMRNet
        The same model before pruning (the targets).
    pool : Tensor (N, 1, H, W) or list of such batches
        Degraded training images of the task (batches may differ in image size).
    ridge : float
        Added to the Gram matrix's diagonal, relative to its mean diagonal entry.

    Returns
    -------
    dict of str -> float
        Per stage, the relative squared error of the refitted exit on the pool
        (0: the unpruned outputs rebuilt exactly).

    Raises
    ------
    InvalidInputError
        For a `ridge` that is not a finite number >= 0, a pool with a NaN or infinite
        pixel, non-finite outputs of `original` or a least-squares fit that is not finite
        (``ridge=0`` on a singular problem): nothing is changed then, the exit
        convolutions keep their weights.
    """
    check_real("ridge", ridge, low=0)
    check_int("batch_size", batch_size, 1)
    batches = _pool_batches(pool, batch_size)
    for batch in batches:
        check_pool("pool", batch, model.config.in_channels)
    branch = model.branches[model.task(task).name]
    unpruned = original.branches[original.task(task).name]
    for s in STAGE_NAMES:
        want, got = getattr(branch, s).exit.out_channels, getattr(unpruned, s).exit.out_channels
        if want != got:
            raise InvalidInputError(
                f"`original` must be `model` before pruning; its stage {s!r} gives {got} "
                f"channels, the pruned branch's {want}"
            )
    saved = {s: _exit_state(getattr(branch, s).exit) for s in STAGE_NAMES}
    targets = _exit_outputs(original, task, batches)
    for s in STAGE_NAMES:
        if not all(bool(torch.isfinite(t).all()) for t in targets[s]):
            raise InvalidInputError(
                f"`original` gives non-finite outputs at stage {s!r} on the pool: its weights "
                "hold NaN or infinite values, or they overflow"
            )
    try:
        return {s: _refit(model, task, batches, s, targets[s], ridge) for s in STAGE_NAMES}
    except BaseException:
        for s, state in saved.items():  # all or nothing: later stages depend on earlier
            getattr(branch, s).exit.load_state_dict(state)
        raise


def _exit_state(conv: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in conv.state_dict().items()}


def _refit(model, task, batches, s, targets, ridge) -> float:
    """Refit stage `s`'s exit convolution in place; returns its relative squared error."""
    exit_conv = getattr(model.branches[model.task(task).name], s).exit
    gram, cross, target_energy = _normal_equations(model, task, batches, s, targets)
    c = gram.shape[0] - 1  # the last row/column is the bias's constant input
    scale = gram.diagonal()[:c].mean().clamp_min(1e-12)
    regularised = gram + ridge * scale * torch.diag(
        torch.cat([torch.ones(c, dtype=gram.dtype), torch.zeros(1, dtype=gram.dtype)])
    )
    try:
        solution = torch.linalg.solve(regularised, cross.T).T  # (C_out, c + 1)
    except torch.linalg.LinAlgError:
        solution = torch.full_like(cross, math.nan)
    if not bool(torch.isfinite(solution).all()):
        raise InvalidInputError(
            f"the least-squares refit of stage {s!r}'s exit is singular or not finite with "
            f"`ridge`={ridge!r}: use a `ridge` > 0"
        )
    residual = target_energy - 2 * (solution * cross).sum() + (solution @ gram * solution).sum()
    exit_conv.weight.copy_(solution[:, :c].reshape(exit_conv.weight.shape))
    exit_conv.bias.copy_(solution[:, c])
    return float(residual / target_energy.clamp_min(1e-300))


def _pool_batches(pool, batch_size: int) -> list[torch.Tensor]:
    """`pool` as a list of ``(n, 1, H, W)`` batches (a tensor is split into `batch_size`)."""
    if isinstance(pool, torch.Tensor):
        if pool.ndim != 4 or pool.shape[0] == 0:
            raise InvalidInputError(
                f"`pool` must be a non-empty (N, 1, H, W) tensor or list of such batches; "
                f"got a tensor of shape {tuple(pool.shape)}"
            )
        return list(pool.split(batch_size))
    batches = list(pool) if isinstance(pool, (list, tuple)) else None
    if not batches or not all(isinstance(b, torch.Tensor) and b.ndim == 4 for b in batches):
        raise InvalidInputError(
            f"`pool` must be a non-empty (N, 1, H, W) tensor or list of such batches; got {pool!r}"
        )
    return batches


def _exit_outputs(model, task, batches) -> dict[str, list[torch.Tensor]]:
    """Every stage's exit-convolution output on each batch, float64."""
    seen: dict[str, list[torch.Tensor]] = {s: [] for s in STAGE_NAMES}
    with _exit_hooks(model, task, STAGE_NAMES, lambda s, args, out: seen[s].append(out)):
        for batch in batches:
            model(batch, task=task)
    return {s: [t.to(torch.float64) for t in v] for s, v in seen.items()}


def _normal_equations(model, task, batches, stage, targets):
    """For `stage`: the Gram matrix of its exit inputs (a constant 1 appended for the
    bias), their cross products with `targets` (one per batch) and the targets' energy,
    float64."""
    sums = {"gram": 0.0, "cross": 0.0, "energy": 0.0}
    seen = 0

    def accumulate(s, args, out):
        nonlocal seen
        x = args[0].to(torch.float64)
        x = x.transpose(0, 1).reshape(x.shape[1], -1)
        x = torch.cat([x, torch.ones(1, x.shape[1], dtype=x.dtype, device=x.device)])
        y = targets[seen]
        y = y.transpose(0, 1).reshape(y.shape[1], -1)
        seen += 1
        sums["gram"] = sums["gram"] + x @ x.T
        sums["cross"] = sums["cross"] + y @ x.T
        sums["energy"] = sums["energy"] + (y * y).sum()

    with _exit_hooks(model, task, (stage,), accumulate):
        for batch in batches:
            model(batch, task=task)
    return sums["gram"].cpu(), sums["cross"].cpu(), sums["energy"].cpu()


@contextlib.contextmanager
def _exit_hooks(model, task, stages, hook):
    """`hook(stage, inputs, output)` on the exit convolutions of `stages`, in eval mode."""
    branch = model.branches[model.task(task).name]
    handles = [
        getattr(branch, s).exit.register_forward_hook(
            lambda mod, args, out, s=s: hook(s, args, out)
        )
        for s in stages
    ]
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
