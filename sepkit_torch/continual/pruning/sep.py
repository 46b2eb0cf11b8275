"""SEP's selection: which channel groups of a task branch represent the others.

For every image of a pool and every stage of the task's branch, the output of the
stage's GResBlock stack is split into its channel groups. Inside a group, a channel
similarity graph gives each channel a 1D structural-entropy weight; the weighted sum
of the group's channels is the group feature. Between the group features a second
similarity graph is partitioned by 2D structural-entropy minimisation
(:func:`sepkit.codeseg_batch`, by default the greedy sweep of the published pruning),
and in every cluster the group with the largest detachment cost represents it
(:func:`sepkit.representatives`; equal costs, as in every isolated pair, are decided by
``tie``: the public code keeps the lower index of an isolated pair on every image,
``tie="published"``; this project's default draws one at random per image). A group is
kept when it represented its cluster in at least ``rho`` of the pool's images (ECMRNet,
Eqs. 4-10).

The similarities are computed on the model's device, batched over the pool; each
stage's stack of graphs crosses to sepkit once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

import sepkit
from sepkit_torch._checks import check_callable, check_int
from sepkit_torch._errors import InvalidInputError
from sepkit_torch.continual.pruning.budget import allocate_budget, group_parameters
from sepkit_torch.continual.pruning.checks import (
    CRITERIA,
    DEFAULT_RHO,
    METHODS,
    SIMILARITIES,
    TIES,
    check_energy,
    check_features,
    check_pool,
    check_selection,
    check_stage_output,
    checked_contributions,
    checked_graphs,
)
from sepkit_torch.continual.pruning.published import published_representatives, published_sweep
from sepkit_torch.models.backbone import STAGE_NAMES

__all__ = [
    "GroupSelection",
    "CRITERIA",
    "DEFAULT_RHO",
    "METHODS",
    "SIMILARITIES",
    "TIES",
    "check_selection",
    "group_contributions",
    "group_graphs",
    "select_groups",
    "selection_from_graphs",
    "with_contribution_loops",
]

# Within a group, negative similarities become this tiny weight (as the public code).
_NEGATIVE_INTRA = 1e-8
# The contribution criterion's self-loops weigh this much, relative to the edges.
_LOOP_WEIGHT = 1.0


@dataclass(frozen=True)
class GroupSelection:
    """Which channel groups of a branch SEP keeps, and why (read-only).

    Attributes
    ----------
    frequency : dict of str -> ndarray of float64
        Per stage ``e1 .. d3``, the fraction of pool images in which each group was
        its cluster's representative, ``p(o)``.
    keep : dict of str -> ndarray of bool
        Per stage, ``frequency >= rho``.
    rho : float
    n_samples : int
        Images in the pool.
    seconds : dict of str -> float
        Time spent in the forward passes (``"forward"``), the similarity graphs
        (``"similarity"``) and the sepkit calls (``"graph"``).
    contribution : dict of str -> ndarray of float64, or None
        Per stage, each group's mean contribution to the stage's exit convolution over
        the pool (:func:`group_contributions`), when the selection computed it.
    budget : float or None
        The share of the stages' parameters a budgeted selection removes
        (:func:`allocate_budget`); None when ``keep`` is ``frequency >= rho``.
    """

    frequency: dict[str, np.ndarray]
    keep: dict[str, np.ndarray]
    rho: float
    n_samples: int
    seconds: dict[str, float] = field(default_factory=dict)
    contribution: dict[str, np.ndarray] | None = None
    budget: float | None = None

    @property
    def kept_counts(self) -> tuple[int, ...]:
        """Groups kept per stage, ``e1 .. d3``."""
        return tuple(int(self.keep[s].sum()) for s in STAGE_NAMES)


def similarity(x: torch.Tensor, kind: str = "pearson") -> torch.Tensor:
    """Pairwise similarity of the rows of ``x`` (``(..., k, d)`` -> ``(..., k, k)``), float64.

    ``"pearson"``: correlation of the centred rows; ``"cosine"``: cosine of the rows.
    A row without variance (Pearson) or of norm 0 (cosine) is similar to nothing (0).
    The result is exactly symmetric.
    """
    if kind not in SIMILARITIES:
        raise InvalidInputError(f"`similarity` must be one of {SIMILARITIES}; got {kind!r}")
    x = x.to(torch.float64)
    if kind == "pearson":
        x = x - x.mean(dim=-1, keepdim=True)
    norm = x.norm(dim=-1, keepdim=True)
    y = torch.where(norm > 0, x / torch.where(norm > 0, norm, 1.0), 0.0)
    s = y @ y.transpose(-1, -2)
    # a blocked matrix product rounds (i, j) and (j, i) differently, enough to fail a
    # symmetry check on near-zero entries: make the matrix exactly symmetric
    return (s + s.transpose(-1, -2)) / 2


def group_graphs(
    features: torch.Tensor, groups: int, *, similarity_kind: str = "pearson", base: float = math.e
) -> torch.Tensor:
    """The inter-group similarity graphs of a batch of stage outputs (Eqs. 4-8).

    Parameters
    ----------
    features : Tensor, shape (B, C, H, W)
        Output of a stage's GResBlock stack; ``C`` splits into `groups` groups.
    groups : int
    similarity_kind : {"pearson", "cosine"}
    base : float
        Logarithm base of the channels' 1D structural entropy (natural log, as the
        public code; it changes the softmax weights).

    Returns
    -------
    Tensor, shape (B, groups, groups), float64
        Symmetric, non-negative, zero diagonal.
    """
    check_stage_output(features, groups)  # a NaN would make its similarities 0: no edge
    check_selection(base=base)
    B, C = features.shape[:2]
    m = C // groups
    x = features.reshape(B, groups, m, -1).to(torch.float64)
    if m == 1:
        group_features = x[:, :, 0]
    else:
        intra = similarity(x, similarity_kind)  # (B, G, m, m)
        intra = intra.clamp(min=0.0).masked_fill(intra < 0, _NEGATIVE_INTRA)
        intra = intra * (1 - torch.eye(m, dtype=intra.dtype, device=intra.device))
        degree = intra.sum(-1)
        volume = degree.sum(-1, keepdim=True)
        p = torch.where(volume > 0, degree / torch.where(volume > 0, volume, 1.0), 0.0)
        terms = torch.where(p > 0, -p * torch.log(torch.where(p > 0, p, 1.0)), 0.0)
        weights = torch.softmax(terms / math.log(base), dim=-1)  # (B, G, m)
        group_features = (weights.unsqueeze(-1) * x).sum(dim=2)  # (B, G, HW)
    inter = similarity(group_features, similarity_kind).clamp(min=0.0)
    return inter * (1 - torch.eye(groups, dtype=inter.dtype, device=inter.device))


def group_contributions(
    features: torch.Tensor, groups: int, exit_weight: torch.Tensor
) -> torch.Tensor:
    """Each group's contribution to the stage's exit convolution, per image.

    The mean over pixels of ``||W_g x_g||^2``: ``x_g`` the group's channels of the
    GResBlock stack's output, ``W_g`` the exit 1x1 convolution's weights on them (bias
    excluded). It measures how much of the stage's output the group carries.

    Parameters
    ----------
    features : Tensor, shape (B, C, H, W)
    groups : int
    exit_weight : Tensor, shape (C_out, C, 1, 1)

    Returns
    -------
    Tensor, shape (B, groups), float64
    """
    check_stage_output(features, groups)
    B, C = features.shape[:2]
    W = exit_weight.reshape(exit_weight.shape[0], -1).to(torch.float64)
    if W.shape[1] != C:
        raise InvalidInputError(
            f"`exit_weight` must take the {C} channels of `features`; got {W.shape[1]} inputs"
        )
    x = features.reshape(B, groups, C // groups, -1).to(torch.float64)
    gram = x @ x.transpose(-1, -2) / x.shape[-1]  # (B, G, m, m): mean of x_i x_j
    w = W.T.reshape(groups, C // groups, -1)  # (G, m, C_out): W_g transposed
    return (gram * (w @ w.transpose(-1, -2))).sum((-1, -2))


def selection_from_graphs(
    graphs: Mapping[str, np.ndarray],
    *,
    rho: float = DEFAULT_RHO,
    method: str = "sweep",
    tie: str = "random",
    criterion: str = "published",
    base: float = math.e,
    seed: int | None = None,
    contributions: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Selection frequencies from each stage's stack of graphs ``(N, G, G)``.

    `contributions` (per stage, ``(N, G)``, from :func:`group_contributions`) is needed
    by ``tie="contribution"`` and ``criterion="contribution"``. Returns (frequency per
    stage, keep mask per stage, seconds spent in sepkit).

    Every tie rule takes the graphs sepkit takes (:func:`sepkit.codeseg_batch`: square,
    symmetric, finite, non-negative) and refuses the others with the same error;
    ``tie="published"`` also needs them to sum below float32's limit and to have no
    self-loops (its arithmetic is the public code's float32). A stack must hold at least
    one graph.
    """
    check_selection(rho=rho, method=method, tie=tie, criterion=criterion, seed=seed, base=base)
    graphs = checked_graphs(graphs, tie, allow_empty=False)
    counts, seconds = _selection_counts(
        graphs,
        method=method,
        tie=tie,
        criterion=criterion,
        base=base,
        seed=seed,
        contributions=contributions,
    )
    n = {stage: A.shape[0] for stage, A in graphs.items()}
    frequency = {stage: c / n[stage] for stage, c in counts.items()}
    keep = {stage: f >= rho for stage, f in frequency.items()}
    return frequency, keep, seconds


def _selection_counts(
    graphs, *, method, tie, criterion, base, seed, contributions=None, sample_ids=None
) -> tuple[dict[str, np.ndarray], float]:
    """Per stage, how many of the graphs chose each group as a representative.

    Image ``i`` of the pool (``sample_ids[i]``, default ``i``) breaks random ties with
    row ``sample_ids[i]`` of its stage's draws, so the choice of an image does not
    depend on which process scores it or on what else is in the batch.
    """
    graphs = checked_graphs(graphs, tie, allow_empty=True)  # every tie, the same check
    contributions = checked_contributions(contributions, graphs)
    counts = {}
    seconds = 0.0
    for index, (stage, A) in enumerate(graphs.items()):
        start = time.perf_counter()
        if A.shape[0] == 0:  # this process scored no image of the pool
            counts[stage] = np.zeros(A.shape[1], dtype=np.int64)
            continue
        energy = None
        if "contribution" in (tie, criterion):
            if contributions is None or stage not in contributions:
                raise InvalidInputError(
                    f"`tie` or `criterion` 'contribution' needs the groups' contributions "
                    f"of stage {stage!r}"
                )
            energy = np.asarray(contributions[stage], dtype=np.float64)
        if tie == "published":
            chosen = published_representatives(*published_sweep(A))
            seconds += time.perf_counter() - start
            counts[stage] = chosen.sum(axis=0, dtype=np.int64)
            continue
        if criterion == "contribution":
            A = with_contribution_loops(A, energy)
        result = sepkit.codeseg_batch(A, base=base, **_PARTITION_OPTIONS[method])
        if tie == "random":
            ids = np.arange(A.shape[0]) if sample_ids is None else _ids(sample_ids, A.shape[0])
            draws = np.random.default_rng([0 if seed is None else seed, index])
            rule = draws.random((int(ids.max()) + 1, A.shape[1]))[ids]
        elif tie == "contribution":
            rule = energy
        else:
            rule = "index"
        score = energy if criterion == "contribution" else result.detachment
        chosen = sepkit.representatives(result.labels, score, tie=rule)
        seconds += time.perf_counter() - start
        counts[stage] = chosen.sum(axis=0, dtype=np.int64)
    return counts, seconds


def with_contribution_loops(graphs: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """The contribution criterion's graphs: each node gets a self-loop equal to its share
    of `energy` (per graph) times the graph's edge volume.

    Parameters
    ----------
    graphs : ndarray, shape (N, G, G)
    energy : ndarray, shape (N, G)
        Non-negative contributions (:func:`group_contributions`).

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit_torch.continual.pruning import with_contribution_loops
    >>> A = np.array([[[0.0, 1.0], [1.0, 0.0]]])  # volume 2
    >>> with_contribution_loops(A, np.array([[3.0, 1.0]]))[0]
    array([[1.5, 1. ],
           [1. , 0.5]])
    """
    graphs = np.asarray(graphs, dtype=np.float64)
    energy = check_energy("energy", energy, graphs.shape[:2])
    total = energy.sum(axis=1, keepdims=True)
    share = np.divide(energy, total, out=np.zeros_like(energy), where=total > 0)
    volume = graphs.sum(axis=(1, 2))[:, None]
    out = graphs.copy()
    nodes = np.arange(graphs.shape[1])
    out[:, nodes, nodes] += _LOOP_WEIGHT * share * volume
    return out


# The partitioner of each SEP method: the published sweep, or sepkit's two others.
_PARTITION_OPTIONS = {
    "sweep": {"method": "sweep", "order": "index", "max_iter": 10},
    "game": {"method": "game"},
    "multilevel": {"method": "multilevel"},
}


def select_groups(
    model: nn.Module,
    task: str,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    similarity_kind: str = "pearson",
    method: str = "sweep",
    tie: str = "random",
    criterion: str = "published",
    rho: float = DEFAULT_RHO,
    base: float = math.e,
    batch_size: int = 4,
    seed: int | None = None,
    sample_ids=None,
    reduce: Callable[[np.ndarray], np.ndarray] | None = None,
    budget: float | None = None,
) -> GroupSelection:
    """Score every channel group of `task`'s branch on a pool of degraded images (SEP).

    Parameters
    ----------
    model : ECMRNet
    task : str
        The task whose branch is scored.
    images : Tensor (N, 1, H, W) or iterable of such batches
        The pool: degraded training images of the task (paper: N = 300, full size).
    similarity_kind : {"pearson", "cosine"}
        Channel similarity; ``"pearson"`` (default) as the public code, ``"cosine"``
        as the paper's text.
    method : {"sweep", "game", "multilevel"}
        How the inter-group graphs are partitioned (:data:`METHODS`); ``"sweep"``
        (default) is the rule of the published pruning.
    tie : {"random", "published", "index", "contribution"}
        Which group represents a cluster when several share its largest detachment
        cost (:data:`TIES`); ``"random"`` (default, this project's choice) never depends
        on the groups' order; ``"published"`` is the public code's exact selection (the
        lower index of an isolated pair, every time).
    criterion : {"published", "contribution"}
        What represents the clusters (:data:`CRITERIA`): the published detachment cost
        on the similarity graph (default), or the groups' contributions to the stage
        output, carried into the graph as self-loops.
    rho : float in (0, 1]
        Keep a group represented in at least this fraction of the pool.
    base : float
        Logarithm base of the entropies (natural, as the public code).
    batch_size : int
        Pool images per forward pass when `images` is one tensor.
    seed : int, optional
        Seed of the random tie choices (None means 0).
    sample_ids : sequence of int, optional
        The pool's image numbers, default ``0 .. N-1``: image ``i`` draws its random
        tie choices from its number alone, so a pool split over processes (pass each
        process's numbers) selects as one process would.
    reduce : callable, optional
        Sums an int64 array over the processes that each scored a part of the pool
        (:meth:`sepkit_torch.distributed.DistContext.all_reduce_sum`): the selection
        counts and the image count are summed, so every process keeps the same groups,
        those one process scoring the whole pool would keep. `images` is then this
        process's part, possibly empty.
    budget : float in (0, 1), optional
        This project's cost-aware allocation instead of one `rho` for every stage:
        remove this share of the branch's stage parameters (:func:`allocate_budget`):
        in each stage the groups represented least often go first, and the expensive
        stages give up groups before the cheap full-resolution ones.

    Returns
    -------
    GroupSelection
    """
    # checked up front: the forward passes over the pool come first
    check_selection(
        rho=rho,
        method=method,
        tie=tie,
        criterion=criterion,
        budget=budget,
        split=reduce is not None,
        seed=seed,
        base=base,
    )
    if similarity_kind not in SIMILARITIES:
        raise InvalidInputError(
            f"`similarity_kind` must be one of {SIMILARITIES}; got {similarity_kind!r}"
        )
    check_int("batch_size", batch_size, 1)
    check_callable("reduce", reduce)
    branch = model.branches[model.task(task).name]
    groups = {s: getattr(branch, s).groups for s in STAGE_NAMES}
    captured: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(branch, s).blocks.register_forward_hook(_capture(captured, s)) for s in STAGE_NAMES
    ]
    per_stage: dict[str, list[torch.Tensor]] = {s: [] for s in STAGE_NAMES}
    energy: dict[str, list[torch.Tensor]] = {s: [] for s in STAGE_NAMES}
    seconds = {"forward": 0.0, "similarity": 0.0, "graph": 0.0}
    n_samples = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in _batches(images, batch_size):
                check_pool("images", batch, model.config.in_channels)
                start = time.perf_counter()
                model(batch, task=task)
                _sync(batch)
                seconds["forward"] += time.perf_counter() - start
                start = time.perf_counter()
                for s in STAGE_NAMES:
                    check_features(captured[s], s, task)
                    per_stage[s].append(
                        group_graphs(
                            captured[s], groups[s], similarity_kind=similarity_kind, base=base
                        )
                    )
                    if "contribution" in (tie, criterion) or budget is not None:
                        exit_weight = getattr(branch, s).exit.weight
                        energy[s].append(group_contributions(captured[s], groups[s], exit_weight))
                _sync(batch)
                seconds["similarity"] += time.perf_counter() - start
                n_samples += batch.shape[0]
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if reduce is None and n_samples == 0:
        raise InvalidInputError("`images` must hold at least one image; got an empty pool")
    # One transfer per stage to sepkit.
    graphs = {
        s: torch.cat(per_stage[s]).cpu().numpy()
        if per_stage[s]
        else np.zeros((0, groups[s], groups[s]))
        for s in STAGE_NAMES
    }
    contributions = None
    if "contribution" in (tie, criterion) or budget is not None:
        contributions = {s: torch.cat(energy[s]).cpu().numpy() for s in STAGE_NAMES if energy[s]}
    if sample_ids is not None:
        _ids(sample_ids, n_samples)
    counts, seconds["graph"] = _selection_counts(
        graphs,
        method=method,
        tie=tie,
        criterion=criterion,
        base=base,
        seed=seed,
        contributions=contributions,
        sample_ids=sample_ids,
    )
    if reduce is not None:
        # one collective call: the counts of every stage and the number of images
        flat = np.concatenate([counts[s] for s in STAGE_NAMES] + [np.array([n_samples])])
        flat = np.asarray(reduce(flat.astype(np.int64)), dtype=np.int64)
        n_samples = int(flat[-1])
        if n_samples == 0:
            raise InvalidInputError("`images` must hold at least one image; got an empty pool")
        bounds = np.cumsum([0] + [groups[s] for s in STAGE_NAMES])
        counts = {s: flat[bounds[i] : bounds[i + 1]] for i, s in enumerate(STAGE_NAMES)}
    frequency = {s: counts[s] / n_samples for s in STAGE_NAMES}
    mean_contribution = None
    if contributions is not None and reduce is None:
        mean_contribution = {s: c.mean(axis=0) for s, c in contributions.items()}
    if budget is None:
        keep = {s: frequency[s] >= rho for s in STAGE_NAMES}
    else:
        keep = allocate_budget(frequency, mean_contribution, group_parameters(branch), budget)
    return GroupSelection(
        frequency=frequency,
        keep=keep,
        rho=float(rho),
        n_samples=n_samples,
        seconds=seconds,
        contribution=mean_contribution,
        budget=budget,
    )


def _ids(sample_ids, n_samples: int) -> np.ndarray:
    """`sample_ids` as int64: one number >= 0 per image of the pool."""
    ids = np.asarray(sample_ids)
    if (
        ids.shape != (n_samples,)
        or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0)
        or (ids.size and ids.min() < 0)
    ):
        raise InvalidInputError(
            f"`sample_ids` must number every image of the pool ({n_samples}) with integers "
            f">= 0; got {sample_ids!r:.80}"
        )
    return ids.astype(np.int64)


def _capture(store: dict, stage: str):
    def hook(module, args, output):
        store[stage] = output.detach()

    return hook


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def _batches(images, batch_size: int):
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise InvalidInputError(
                f"`images` must be a (N, 1, H, W) tensor; got shape {tuple(images.shape)}"
            )
        yield from images.split(batch_size)
    else:
        yield from images
