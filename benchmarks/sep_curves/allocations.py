"""How many groups each stage keeps at a given size: the four allocations of the curves.

Every allocation removes groups one at a time until the removed stage parameters reach
a target, and every stage keeps at least one group. They differ in which stage gives up
the next group:

- ``SE``: structural entropy's own counts, the published rule ``p(o) >= rho`` with the
  threshold moved until the size is reached: the next group to leave is the one least
  often a representative, whatever its stage (equal frequencies: the stage that has given
  up the smallest share of its groups, then the earlier stage);
- ``uniform``: the same share of groups in every stage (the stage whose share removed
  would be smallest after the removal goes next; equal shares, the dearer groups first);
- ``budget``: the cost-aware budget of
  :func:`~sepkit_torch.continual.pruning.allocate_budget` (the expensive stages first);
- ``global``: one ranking across stages, as Network Slimming prunes: the group with the
  smallest gate leaves first, whatever its stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from sepkit_torch.continual.pruning import allocate_budget

__all__ = ["ALLOCATIONS", "allocate", "counts_at_rho", "removed_parameters"]

ALLOCATIONS = ("SE", "uniform", "budget", "global")


def removed_parameters(
    groups: Mapping[str, int], parameters: Mapping[str, float], counts: Mapping[str, int]
) -> float:
    """Stage parameters that keeping `counts` groups removes."""
    return float(sum((groups[s] - counts[s]) * parameters[s] for s in groups))


def counts_at_rho(frequency: Mapping[str, np.ndarray], rho: float) -> dict[str, int]:
    """The published SEP's counts: groups with ``frequency >= rho`` (at least one)."""
    return {s: max(1, int((np.asarray(f) >= rho).sum())) for s, f in frequency.items()}


def allocate(
    kind: str,
    target: float,
    parameters: Mapping[str, float],
    *,
    frequency: Mapping[str, np.ndarray],
    contribution: Mapping[str, np.ndarray],
    gates: Mapping[str, np.ndarray],
    budget_frequency: Mapping[str, np.ndarray],
) -> dict[str, int]:
    """Groups kept per stage by allocation `kind` so that the removed stage parameters
    reach `target` (or every stage is down to one group).

    `frequency` is SE's representation frequency (published rule), `gates` the Network
    Slimming gates, `budget_frequency` and `contribution` what ``allocate_budget`` ranks.
    """
    groups = {s: len(np.asarray(f)) for s, f in frequency.items()}
    total = sum(groups[s] * parameters[s] for s in groups)
    if not 0 <= target < total:
        raise ValueError(f"`target` must be in [0, {total}); got {target!r}")
    if kind == "budget":
        if target == 0:
            return dict(groups)
        keep = allocate_budget(budget_frequency, contribution, parameters, target / total)
        return {s: int(k.sum()) for s, k in keep.items()}
    stages = list(groups)
    if kind == "SE":
        ordered = {s: np.sort(np.asarray(frequency[s], dtype=np.float64)) for s in stages}

        def next_key(s, removed):
            return (ordered[s][removed[s]], removed[s] / groups[s], stages.index(s))

    elif kind == "uniform":

        def next_key(s, removed):
            return ((removed[s] + 1) / groups[s], -parameters[s], stages.index(s))

    elif kind == "global":
        ordered = {s: np.sort(np.asarray(gates[s], dtype=np.float64)) for s in stages}

        def next_key(s, removed):
            return (ordered[s][removed[s]], stages.index(s))

    else:
        raise ValueError(f"`kind` must be one of {ALLOCATIONS}; got {kind!r}")
    return _greedy(groups, parameters, target, next_key)


def _greedy(groups, parameters, target, next_key: Callable) -> dict[str, int]:
    removed = dict.fromkeys(groups, 0)
    gone = 0.0
    while gone < target:
        open_ = [s for s in groups if groups[s] - removed[s] > 1]
        if not open_:
            break
        s = min(open_, key=lambda s: next_key(s, removed))
        removed[s] += 1
        gone += parameters[s]
    return {s: groups[s] - removed[s] for s in groups}
