"""Detachment costs: how much H2 rises when a node leaves its cluster."""

from __future__ import annotations

import numpy as np

from sepkit._errors import InvalidLabelsError, InvalidOptionError
from sepkit._jit import serial_launches
from sepkit._kernels import entropy as _k
from sepkit._labels import as_labels
from sepkit._options import check_seed, log_scale
from sepkit.graph import as_graph

__all__ = ["TIE_RULES", "detachment_cost", "representatives"]


@serial_launches
def detachment_cost(G, labels, *, base: float = 2.0) -> np.ndarray:
    """Detachment cost of every node: the rise of H2 if it left its cluster for a singleton.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    labels : partition (see :func:`sepkit.structural_entropy_2d`)
    base : float, default 2

    Returns
    -------
    ndarray of float64, shape (n,)
        ``D(o)`` per node in graph order. 0 for a node alone in its cluster,
        for isolated nodes and for a graph without edges.

    Notes
    -----
    With ``k = w(o, C \\ {o})``, ``s = A_oo``, ``d`` the degree of ``o`` and
    ``f(in, vol) = in log(vol/V)``:
    ``D(o) = (1/V)[f(in_C - 2k - s, vol_C - d) - f(in_C, vol_C) + f(s, d)]``
    (ECMRNet Eqs. 7-8). All n costs take one O(n + m) pass.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import detachment_cost
    >>> G = nx.barbell_graph(4, 0)
    >>> cost = detachment_cost(G, [0, 0, 0, 0, 1, 1, 1, 1])
    >>> cost.round(3)
    array([0.143, 0.143, 0.143, 0.108, 0.108, 0.143, 0.143, 0.143])
    """
    scale = log_scale(base)
    g = as_graph(G)
    lab = as_labels(g, labels)
    cost = _k.auto_detachment_costs(
        g.indptr, g.indices, g.data, g.degree, lab.codes, lab.k, g.volume
    )
    return cost * scale


#: Tie rules of :func:`representatives` besides an array of priorities.
TIE_RULES = ("random", "index")
# Costs within this fraction of a cluster's largest |cost| tie with it: symmetric
# nodes (e.g. the two of an isolated pair) have equal costs in exact arithmetic.
_TIE_RTOL = 1e-12


def representatives(labels, costs, *, tie="random", seed: int | None = None) -> np.ndarray:
    """Mark, in every cluster, the node with the largest detachment cost.

    Parameters
    ----------
    labels : array of int, shape (n,) or (B, n)
        One partition, or one per graph of a batch (any integer labels).
    costs : array of float, same shape
        Detachment costs, e.g. from :func:`detachment_cost` or
        ``codeseg_batch(...).detachment``.
    tie : {"random", "index"} or array of float of the same shape
        Which node a cluster marks when several share its largest cost (within
        a relative 1e-12). In an isolated two-node cluster both costs are always
        equal, so this decides often. ``"random"`` (default): a seeded uniform
        choice, drawn independently for every graph of a batch, so no node wins
        by its position. ``"index"``: the lowest index. An array: the tied node
        with the largest value (for example a feature energy), then the lowest
        index.
    seed : int or None
        Seed of the ``"random"`` choices (None means 0, so results reproduce).
        Graph ``b`` of a batch draws row ``b`` of
        ``numpy.random.default_rng(seed).random((B, n))``.

    Returns
    -------
    ndarray of bool, same shape
        True at exactly one node per cluster (per graph).

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit import representatives
    >>> representatives([0, 0, 1, 1, 1], [0.2, 0.5, 0.1, 0.1, 0.0], tie="index")
    array([False,  True,  True, False, False])
    >>> pair = np.array([[0, 0]] * 1000)  # an isolated pair: both costs equal
    >>> representatives(pair, np.full((1000, 2), 0.3)).mean(axis=0)
    array([0.532, 0.468])
    """
    lab = np.asarray(labels)
    cost = np.asarray(costs, dtype=np.float64)
    if lab.ndim not in (1, 2):
        raise InvalidLabelsError(f"`labels` must have shape (n,) or (B, n); got shape {lab.shape}")
    if cost.shape != lab.shape:
        raise InvalidLabelsError(
            f"`costs` must have the shape of `labels` {lab.shape}; got shape {cost.shape}"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise InvalidLabelsError(f"`labels` must be integers; got dtype {lab.dtype}")
    if not np.isfinite(cost).all():
        raise InvalidLabelsError("`costs` must be finite; got NaN or infinite values")
    lab2 = lab.reshape(-1, lab.shape[-1])
    cost2 = cost.reshape(lab2.shape).ravel()
    B, n = lab2.shape
    graph = np.repeat(np.arange(B), n)
    node = np.tile(np.arange(n), B)
    # cluster id of every node, unique over the batch
    by_cluster = np.lexsort((lab2.ravel(), graph))
    g_s, l_s = graph[by_cluster], lab2.ravel()[by_cluster]
    new = np.ones(B * n, dtype=bool)
    new[1:] = (g_s[1:] != g_s[:-1]) | (l_s[1:] != l_s[:-1])
    cluster = np.empty(B * n, dtype=np.int64)
    cluster[by_cluster] = np.cumsum(new) - 1
    largest = np.full(int(new.sum()), -np.inf)
    np.maximum.at(largest, cluster, cost2)
    top = largest[cluster]
    tied = cost2 >= top - _TIE_RTOL * np.abs(top)
    priority = _tie_priority(tie, seed, lab2.shape, lab.shape).ravel()
    # per cluster: tied nodes first, then the highest priority, then the lowest index
    key = np.lexsort((node, -priority, ~tied, cluster))
    first = np.ones(B * n, dtype=bool)
    first[1:] = cluster[key[1:]] != cluster[key[:-1]]
    mask = np.zeros(B * n, dtype=bool)
    mask[key[first]] = True
    return mask.reshape(lab.shape)


def _tie_priority(tie, seed, shape: tuple[int, int], user_shape: tuple) -> np.ndarray:
    """The secondary key of :func:`representatives`: higher wins among tied nodes."""
    if isinstance(tie, str):
        if tie == "index":
            return np.zeros(shape)
        if tie == "random":
            return np.random.default_rng(check_seed(seed)).random(shape)
        raise InvalidOptionError(
            f"`tie` must be one of {TIE_RULES} or an array of priorities; got {tie!r}"
        )
    priority = np.asarray(tie, dtype=np.float64)
    if priority.shape != user_shape:
        raise InvalidOptionError(
            f"`tie` priorities must have the shape of `labels` {user_shape}; "
            f"got shape {priority.shape}"
        )
    if not np.isfinite(priority).all():
        raise InvalidOptionError("`tie` priorities must be finite; got NaN or infinite values")
    return priority.reshape(shape)
