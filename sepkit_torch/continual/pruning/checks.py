"""The checks of SEP's arguments, before any work: the selection's options, the stacks of
inter-group graphs and the pools of images. Every selection, whatever its tie rule, goes
through the same graph check (sepkit's, :func:`sepkit.graph.check_dense_stack`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from sepkit.graph import check_dense_stack
from sepkit_torch._checks import check_finite, check_int, check_real
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.pruning.budget import _check_budget
from sepkit_torch.models.backbone import check_images

__all__ = ["CRITERIA", "METHODS", "SIMILARITIES", "TIES", "check_selection"]


#: Channel similarities: Pearson correlation (the public code) and cosine (the paper).
SIMILARITIES = ("pearson", "cosine")
#: How SEP partitions the inter-group graphs (:func:`sepkit.codeseg_batch`): ``"sweep"``,
#: the published pruning's greedy sweep (index order, a node moves whenever that lowers
#: H2, at most 10 sweeps); ``"game"``, the reference CoDeSEG with its defaults (5 sweeps,
#: ``tau`` 0.3); ``"multilevel"``, sepkit's lowest-entropy search.
METHODS = ("sweep", "game", "multilevel")
#: What decides which groups represent the clusters. ``"published"`` (ECMRNet's rule): the
#: similarity graph alone is partitioned, and in each cluster the group with the largest
#: detachment cost represents it. ``"contribution"`` (this project's): each group also
#: gets a self-loop carrying its share of the stage's output energy (the self-loops
#: together weigh as much as the graph's edges), so a group that carries much of the
#: output is costly to merge and tends to stay alone; in each cluster the group
#: contributing most to the stage's output represents it.
CRITERIA = ("published", "contribution")
#: How SEP decides between groups of equal detachment cost in a cluster: ``"random"``
#: (this project's default), a seeded uniform choice per image that never depends on the
#: groups' order; ``"published"``, the public code's exact choice (its sweep and costs
#: in its float32 arithmetic, the first maximum: an isolated pair keeps its lower index
#: on every image; :mod:`~sepkit_torch.continual.pruning.published`); ``"index"``, the
#: lowest index among costs equal in float64; ``"contribution"``, the group whose features
#: add the most energy to the stage's exit convolution on that image.
TIES = ("random", "published", "index", "contribution")
#: The published threshold of SEP's rule ``frequency >= rho`` (the paper's default).
DEFAULT_RHO = 0.1
_SEED_MAX = 2**64 - 1


def check_selection(
    *,
    rho=DEFAULT_RHO,
    method="sweep",
    tie="random",
    criterion="published",
    budget=None,
    split: bool = False,
    seed=None,
    base=math.e,
) -> None:
    """Refuse the options :func:`select_groups` refuses, before any work: the one place
    these rules live (the pipeline checks its SEP settings with it before training).
    `split` says that the pool is scored by several processes (``reduce`` is given)."""
    check_real("rho", rho, low=0, high=1, low_open=True)
    if method not in METHODS:
        raise InvalidInputError(f"`method` must be one of {METHODS}; got {method!r}")
    if tie not in TIES:
        raise InvalidInputError(f"`tie` must be one of {TIES}; got {tie!r}")
    if criterion not in CRITERIA:
        raise InvalidInputError(f"`criterion` must be one of {CRITERIA}; got {criterion!r}")
    if tie == "published" and (method != "sweep" or criterion != "published"):
        raise InvalidInputError(
            '`tie="published"` is the public code\'s whole selection (its sweep, its costs): '
            f'it needs method="sweep" and criterion="published"; got method={method!r}, '
            f"criterion={criterion!r}"
        )
    if criterion == "contribution" and tie == "contribution":
        raise InvalidInputError(
            '`tie="contribution"` breaks ties of the detachment cost; with '
            '`criterion="contribution"` the contribution already decides: use "random" or "index"'
        )
    if budget is not None:
        _check_budget(budget)
        if rho != DEFAULT_RHO:  # a threshold the budget would silently override
            raise InvalidInputError(
                "`rho` is the published rule's threshold and `budget` replaces that rule "
                f"(its allocation sets every stage's count), so `rho` would be ignored: leave "
                f"`rho` at {DEFAULT_RHO} or `budget` at None; got rho={rho!r}, budget={budget!r}"
            )
        if split:
            raise InvalidInputError(
                "`budget` ranks groups by their contributions, which are not summed over "
                "processes: score the whole pool in one process"
            )
    if seed is not None:
        check_int("seed", seed, 0, _SEED_MAX)
    if check_real("base", base, low=0, low_open=True) == 1:
        raise InvalidInputError(f"`base` must be a finite number > 0 and != 1; got {base!r}")


def checked_graphs(graphs, tie: str, *, allow_empty: bool) -> dict[str, np.ndarray]:
    """Each stage's stack of graphs ``(N, G, G)``, checked as sepkit checks any graph.

    Returns float64 stacks: sepkit's checked copy for the ties sepkit decides; for
    ``tie="published"``, the values as given (its float32 arithmetic is the public
    code's), which must also hold in float32, sum in float32 and have a zero diagonal.
    `allow_empty`: a stack may hold no graph (a process that scored none of the pool).
    """
    if not isinstance(graphs, Mapping) or not graphs:
        raise InvalidInputError(
            f"`graphs` must map each stage to its (N, G, G) stack of graphs; got {graphs!r:.80}"
        )
    out = {}
    for stage, A in graphs.items():
        name = f"graphs[{stage!r}]"
        checked = check_dense_stack(A, name)
        if checked.shape[0] == 0 and not allow_empty:
            raise InvalidInputError(
                f"`{name}` must hold at least one graph (one per pool image); got shape "
                f"{checked.shape}"
            )
        if tie == "published":
            checked = np.asarray(A, dtype=np.float64)
            _check_float32(name, checked)
        out[stage] = checked
    return out


def _check_float32(name: str, A: np.ndarray) -> None:
    """The published selection's float32 arithmetic needs finite float32 weights and sums,
    and graphs without self-loops (the public code's graphs have none)."""
    with np.errstate(over="ignore"):
        A32 = A.astype(np.float32)
        volume = A32.sum(axis=(1, 2))
    if not np.isfinite(A32).all() or not np.isfinite(volume).all():
        b = int(np.flatnonzero(~np.isfinite(volume))[0]) if A.size else 0
        raise InvalidInputError(
            f'`{name}` must sum to less than float32\'s limit (3.4e38) for tie="published" '
            f"(the public code's float32 arithmetic); graph {b} sums to "
            f"{float(A[b].sum())!r}"
        )
    diagonal = np.diagonal(A, axis1=1, axis2=2)
    if (diagonal != 0).any():
        b, i = (int(x) for x in np.argwhere(diagonal != 0)[0])
        raise InvalidInputError(
            f'`{name}` must have a zero diagonal for tie="published" (the public code\'s '
            f"graphs have no self-loops); got {name}[{b}, {i}, {i}] = {float(A[b, i, i])!r}"
        )


def checked_contributions(contributions, graphs: Mapping[str, np.ndarray]) -> dict | None:
    """Each stage's contributions ``(N, G)``: finite, non-negative, one per graph node."""
    if contributions is None:
        return None
    if not isinstance(contributions, Mapping):
        raise InvalidInputError(
            f"`contributions` must map stages to (N, G) arrays; got {contributions!r:.80}"
        )
    return {
        stage: check_energy(
            f"contributions[{stage!r}]", c, graphs[stage].shape[:2] if stage in graphs else None
        )
        for stage, c in contributions.items()
    }


def check_energy(name: str, values, shape: tuple | None) -> np.ndarray:
    """Contributions ``(N, G)`` (of `shape` when given): finite and non-negative; float64."""
    try:
        c = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"`{name}` must be an array of numbers; got {values!r:.80}"
        ) from None
    if c.ndim != 2 or (shape is not None and c.shape != shape):
        expected = "(N, G)" if shape is None else str(shape)
        raise InvalidInputError(
            f"`{name}` must have shape {expected} (one per image and group); got shape {c.shape}"
        )
    check_finite(name, c)
    if (c < 0).any():
        raise InvalidInputError(f"`{name}` must be non-negative; got {float(c.min())!r}")
    return c


def check_pool(name: str, batch, in_channels: int) -> None:
    """One batch of a pool: a float (n, in_channels, H, W) tensor of finite values."""
    check_images(batch, in_channels, name)
    check_finite(name, batch)


def check_stage_output(features, groups) -> None:
    """A stage's output ``(B, C, H, W)``: finite, its ``C`` channels split into `groups`."""
    if not isinstance(features, torch.Tensor) or features.ndim != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise InvalidInputError(f"`features` must be a (B, C, H, W) tensor; got {got}")
    check_int("groups", groups, 1)
    if features.shape[1] % groups:
        raise InvalidInputError(
            f"`groups` must divide the {features.shape[1]} channels of `features`; got {groups}"
        )
    check_finite("features", features)


def check_features(features: torch.Tensor, stage: str, task: str) -> None:
    """A stage's features on the pool must be finite: a NaN would make its similarities
    0 (no edge), and every group would then represent itself."""
    if not bool(torch.isfinite(features).all()):
        raise InvalidInputError(
            f"`model`'s branch of task {task!r} gives non-finite features at stage {stage!r} "
            "on the pool: its weights hold NaN or infinite values, or they overflow"
        )
