"""A parameter budget across a branch's stages: which groups leave so that a share of the
stages' parameters goes, the expensive stages first (``select_groups(budget=...)``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import nn

from sepkit_torch._errors import InvalidInputError
from sepkit_torch.models.backbone import STAGE_NAMES

__all__ = ["allocate_budget", "group_parameters"]


def group_parameters(branch: nn.Module) -> dict[str, float]:
    """Parameters per channel group of each stage of `branch` (a stage's parameters over
    its groups: removing a group removes about this many)."""
    return {
        s: sum(p.numel() for p in getattr(branch, s).parameters()) / getattr(branch, s).groups
        for s in STAGE_NAMES
    }


def allocate_budget(
    frequency: Mapping[str, np.ndarray],
    contribution: Mapping[str, np.ndarray] | None,
    parameters: Mapping[str, float],
    budget: float,
) -> dict[str, np.ndarray]:
    """Keep masks that remove `budget` of the stages' parameters, across all stages.

    Inside a stage, groups leave in order of their representation frequency (a group
    that never represents its cluster goes first; equal frequencies, the one
    contributing least to the stage's output first). Across stages, the next group to
    leave is the one whose share of its stage's output energy per parameter is
    smallest: a group of a cheap full-resolution stage carries a large share of that
    stage's output for few parameters, so the expensive stages give up their groups
    first. Groups leave until the removed parameters reach ``budget`` of the total;
    every stage keeps at least one group. Without contributions every group of a stage
    counts as an equal share.

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit_torch.continual.pruning import allocate_budget
    >>> freq = {"cheap": np.array([0.0, 0.5]), "dear": np.array([0.0, 0.2, 0.1, 0.9])}
    >>> keep = allocate_budget(freq, None, {"cheap": 1.0, "dear": 10.0}, budget=0.4)
    >>> keep["cheap"].tolist(), keep["dear"].tolist()
    ([True, True], [False, True, False, True])
    """
    _check_budget(budget)
    queues, shares = {}, {}
    for s, f in frequency.items():
        f = np.asarray(f, dtype=np.float64)
        c = None if contribution is None else np.asarray(contribution[s], dtype=np.float64)
        share = np.full(len(f), 1.0 / len(f)) if c is None or c.sum() <= 0 else c / c.sum()
        shares[s] = share
        queues[s] = list(np.lexsort((np.arange(len(f)), share, f)))  # leaving order
    total = sum(parameters[s] * len(f) for s, f in frequency.items())
    keep = {s: np.ones(len(f), dtype=bool) for s, f in frequency.items()}
    removed = 0.0
    while removed < budget * total:
        open_ = [s for s in queues if keep[s].sum() > 1]
        if not open_:
            break
        s = min(open_, key=lambda s: (shares[s][queues[s][0]] / parameters[s], -parameters[s]))
        keep[s][queues[s].pop(0)] = False
        removed += parameters[s]
    return keep


def _check_budget(budget) -> None:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < 1:
        raise InvalidInputError(f"`budget` must be a number in (0, 1); got {budget!r}")
