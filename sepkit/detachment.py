"""Detachment costs: how much H2 rises when a node leaves its cluster."""

from __future__ import annotations

import numpy as np

from sepkit._kernels import entropy as _k
from sepkit._labels import as_labels, log_scale
from sepkit.graph import as_graph

__all__ = ["detachment_cost"]


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
    cost = _k.detachment_costs(g.indptr, g.indices, g.data, g.degree, lab.codes, lab.k, g.volume)
    return cost * scale


def representatives(labels, costs) -> np.ndarray:
    """Mark, in every cluster, the node with the largest detachment cost.

    Parameters
    ----------
    labels : array of int, shape (n,) or (B, n)
        One partition, or one per graph of a batch (any integer labels).
    costs : array of float, same shape
        Detachment costs, e.g. from :func:`detachment_cost` or
        ``codeseg_batch(...).detachment``.

    Returns
    -------
    ndarray of bool, same shape
        True at exactly one node per cluster (per graph): the one with the
        largest cost, the lowest index on ties.

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit import representatives
    >>> representatives([0, 0, 1, 1, 1], [0.2, 0.5, 0.1, 0.1, 0.0])
    array([False,  True,  True, False, False])
    """
    lab = np.asarray(labels)
    cost = np.asarray(costs, dtype=np.float64)
    if lab.ndim not in (1, 2):
        raise ValueError(f"`labels` must have shape (n,) or (B, n); got shape {lab.shape}")
    if cost.shape != lab.shape:
        raise ValueError(
            f"`costs` must have the shape of `labels` {lab.shape}; got shape {cost.shape}"
        )
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"`labels` must be integers; got dtype {lab.dtype}")
    if np.isnan(cost).any():
        raise ValueError("`costs` must not contain NaN")
    lab2 = lab.reshape(-1, lab.shape[-1]) if lab.ndim == 2 else lab[None, :]
    cost2 = cost.reshape(lab2.shape)
    B, n = lab2.shape
    graph = np.repeat(np.arange(B), n)
    node = np.tile(np.arange(n), B)
    # sort by graph, then cluster, then cost descending, then index ascending
    key = np.lexsort((node, -cost2.ravel(), lab2.ravel(), graph))
    g_sorted = graph[key]
    l_sorted = lab2.ravel()[key]
    first = np.ones(key.size, dtype=bool)
    first[1:] = (g_sorted[1:] != g_sorted[:-1]) | (l_sorted[1:] != l_sorted[:-1])
    mask = np.zeros(B * n, dtype=bool)
    mask[key[first]] = True
    return mask.reshape(lab.shape)
