"""A parameter budget across a branch's stages: which groups leave so that a share of the
stages' parameters goes, the expensive stages first (``select_groups(budget=...)``)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from torch import nn

from sepkit_torch._checks import check_finite, check_real
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

    Raises
    ------
    InvalidInputError
        Unless `frequency` maps each stage to a non-empty 1-D array of values in
        [0, 1], `contribution` (when given) to finite non-negative values, one per
        group, and `parameters` every stage to a finite number > 0.

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
    frequency, contribution, parameters = _checked(frequency, contribution, parameters)
    queues, shares = {}, {}
    for s, f in frequency.items():
        c = None if contribution is None else contribution[s]
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
    check_real("budget", budget, low=0, high=1, low_open=True, high_open=True)


def _checked(frequency, contribution, parameters):
    """allocate_budget's arguments, checked: float64 arrays per stage, float parameters."""
    if not isinstance(frequency, Mapping) or not frequency:
        raise InvalidInputError(
            f"`frequency` must map each stage to its groups' frequencies; got {frequency!r:.80}"
        )
    freq = {}
    for s, f in frequency.items():
        freq[s] = _groups(f"frequency[{s!r}]", f, None)
        if ((freq[s] < 0) | (freq[s] > 1)).any():
            raise InvalidInputError(
                f"`frequency[{s!r}]` must hold fractions in [0, 1]; got {freq[s].tolist()}"
            )
    contrib = None
    if contribution is not None:
        if not isinstance(contribution, Mapping) or set(contribution) != set(freq):
            got = sorted(contribution) if isinstance(contribution, Mapping) else contribution
            raise InvalidInputError(
                f"`contribution` must be None or map the stages of `frequency` {sorted(freq)}; "
                f"got {got!r:.80}"
            )
        contrib = {s: _groups(f"contribution[{s!r}]", contribution[s], len(freq[s])) for s in freq}
        for s, c in contrib.items():
            if (c < 0).any():
                raise InvalidInputError(
                    f"`contribution[{s!r}]` must be non-negative; got {c.tolist()}"
                )
    if not isinstance(parameters, Mapping) or not set(freq) <= set(parameters):
        got = sorted(parameters) if isinstance(parameters, Mapping) else parameters
        raise InvalidInputError(
            f"`parameters` must map every stage of `frequency` {sorted(freq)} to its "
            f"parameters per group; got {got!r:.80}"
        )
    params = {
        s: check_real(f"parameters[{s!r}]", parameters[s], low=0, low_open=True) for s in freq
    }
    return freq, contrib, params


def _groups(name: str, values, size: int | None) -> np.ndarray:
    """A non-empty 1-D float64 array of finite values (of `size` entries when given)."""
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"`{name}` must be a 1-D array of numbers; got {values!r:.80}"
        ) from None
    if a.ndim != 1 or a.size == 0 or (size is not None and a.size != size):
        expected = "at least one group" if size is None else f"{size} groups"
        raise InvalidInputError(f"`{name}` must be a 1-D array of {expected}; got shape {a.shape}")
    check_finite(name, a)
    return a
