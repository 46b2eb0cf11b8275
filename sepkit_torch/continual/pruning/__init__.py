"""SEP: structural-entropy pruning of a task branch, and the MP / SRP baselines.

- :mod:`~sepkit_torch.continual.pruning.sep`: which groups to keep, by 2D structural
  entropy (:func:`select_groups`; ECMRNet, Eqs. 4-10).
- :mod:`~sepkit_torch.continual.pruning.budget`: a parameter budget across the stages
  (:func:`allocate_budget`), the expensive stages first.
- :mod:`~sepkit_torch.continual.pruning.surgery`: the groups' physical removal
  (:func:`prune`, :func:`prune_branch`).
- :mod:`~sepkit_torch.continual.pruning.baselines`: magnitude (MP) and sparse-regularised
  (SRP) scores and :func:`top_groups`, for the comparison at equal size.
- :mod:`~sepkit_torch.continual.pruning.slimming`: SRP as the paper describes it, Network
  Slimming on channel groups (:func:`slim_branch`).
- :mod:`~sepkit_torch.continual.pruning.checks`: the checks of SEP's options, graph stacks
  and pools, made before any work (:func:`check_selection`).
"""

from sepkit_torch.continual.pruning.baselines import gate_scores, magnitude_scores, top_groups
from sepkit_torch.continual.pruning.budget import allocate_budget, group_parameters
from sepkit_torch.continual.pruning.sep import (
    CRITERIA,
    DEFAULT_RHO,
    METHODS,
    SIMILARITIES,
    TIES,
    GroupSelection,
    check_selection,
    group_contributions,
    group_graphs,
    select_groups,
    selection_from_graphs,
    similarity,
    with_contribution_loops,
)
from sepkit_torch.continual.pruning.slimming import fold_gates, slim_branch
from sepkit_torch.continual.pruning.surgery import compensate_exits, prune, prune_branch

__all__ = [
    "GroupSelection",
    "CRITERIA",
    "DEFAULT_RHO",
    "METHODS",
    "SIMILARITIES",
    "TIES",
    "allocate_budget",
    "check_selection",
    "compensate_exits",
    "fold_gates",
    "gate_scores",
    "group_contributions",
    "group_graphs",
    "group_parameters",
    "magnitude_scores",
    "prune",
    "prune_branch",
    "select_groups",
    "selection_from_graphs",
    "similarity",
    "slim_branch",
    "top_groups",
    "with_contribution_loops",
]
