"""1D and 2D structural entropy, per-node terms and the O(1) move delta.

See ``docs/definitions.md`` for the formulas and conventions.
"""

from __future__ import annotations

import numpy as np

from sepkit._jit import serial_launches
from sepkit._kernels import entropy as _k
from sepkit._labels import as_labels
from sepkit._options import log_scale
from sepkit.graph import as_graph

__all__ = ["structural_entropy_1d", "node_entropy_1d", "structural_entropy_2d", "move_delta"]


@serial_launches
def structural_entropy_1d(G, *, base: float = 2.0) -> float:
    """One-dimensional structural entropy of a graph.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    base : float, default 2
        Logarithm base (2: bits; ``math.e``: nats, as the CoDeSEG code).

    Returns
    -------
    float
        ``H1``; 0.0 for a graph without edges.

    Notes
    -----
    ``H1 = - sum_i (d_i/V) log(d_i/V)`` with ``d_i`` the row sums of the
    adjacency matrix and ``V = sum_i d_i``.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import structural_entropy_1d
    >>> round(structural_entropy_1d(nx.karate_club_graph(), base=2), 6)
    4.634008
    >>> unweighted = nx.Graph(nx.karate_club_graph().edges())
    >>> round(structural_entropy_1d(unweighted), 6)
    4.704423
    """
    return float(node_entropy_1d(G, base=base).sum())


@serial_launches
def node_entropy_1d(G, *, base: float = 2.0) -> np.ndarray:
    """Per-node terms ``-(d_i/V) log(d_i/V)`` of the 1D structural entropy.

    Their sum is :func:`structural_entropy_1d`. Isolated nodes get 0.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import node_entropy_1d
    >>> node_entropy_1d(nx.star_graph(2)).round(4)
    array([0.5, 0.5, 0.5])
    """
    scale = log_scale(base)
    g = as_graph(G)
    return _k.auto_node_terms(g.degree, g.volume) * scale


@serial_launches
def structural_entropy_2d(G, labels, *, base: float = 2.0) -> float:
    """Two-dimensional structural entropy of a graph under a partition.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    labels : array of int, list of node sets, or dict
        The partition: an integer label per node (any integer values), a list
        of disjoint node sets covering the graph (networkx's community format),
        or a dict node -> integer label.
    base : float, default 2

    Returns
    -------
    float
        ``H2``; 0.0 for a graph without edges.

    Notes
    -----
    ``H2 = - sum_C [ (g_C/V) log(vol_C/V) + sum_{o in C} (d_o/V) log(d_o/vol_C) ]``,
    computed in O(n + m) through the identity
    ``H2 = H1 + (1/V) sum_C in_C log(vol_C/V)``.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import structural_entropy_2d
    >>> G = nx.karate_club_graph()
    >>> factions = [{v for v in G if G.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]
    >>> round(structural_entropy_2d(nx.Graph(G.edges()), factions), 4)
    3.8467
    """
    scale = log_scale(base)
    g = as_graph(G)
    lab = as_labels(g, labels)
    h = _k.auto_entropy_2d(g.indptr, g.indices, g.data, g.degree, lab.codes, lab.k, g.volume)
    return float(h * scale)


@serial_launches
def move_delta(G, labels, node, target, *, base: float = 2.0) -> float:
    """Change of H2 when ``node`` moves into the cluster labelled ``target``.

    Parameters
    ----------
    G : graph-like
    labels : partition (see :func:`structural_entropy_2d`)
        With a list of node sets, the label of a set is its position.
    node : node label
        A networkx node label, or a row index for matrices.
    target : int or None
        A label in use, or ``None`` to move ``node`` into a new singleton cluster.
    base : float, default 2

    Returns
    -------
    float
        ``H2(after) - H2(before)``; negative when the move lowers the entropy.

    Notes
    -----
    With ``f(in, vol) = in log(vol/V)``, ``k_A``/``k_B`` the node's weight to
    the rest of its cluster A and to B, ``d`` its degree and ``s`` its self-loop:
    ``Delta = (1/V)[f(in_A - 2k_A - s, vol_A - d) - f(in_A, vol_A)
    + f(in_B + 2k_B + s, vol_B + d) - f(in_B, vol_B)]``.
    The delta itself is O(deg(node)); summarising the clusters costs O(n + m).

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import move_delta
    >>> G = nx.barbell_graph(4, 0)          # two 4-cliques joined by edge (3, 4)
    >>> labels = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> move_delta(G, labels, 3, 1) > 0     # node 3 belongs with its clique
    True
    """
    scale = log_scale(base)
    g = as_graph(G)
    lab = as_labels(g, labels)
    v = g.index_of(node)
    t = lab.code_of(target)
    if target is None and int(np.count_nonzero(lab.codes == lab.codes[v])) == 1:
        return 0.0  # already alone: a new singleton is the same partition
    d = _k.auto_move_delta(g.indptr, g.indices, g.data, g.degree, lab.codes, lab.k, g.volume, v, t)
    return float(d * scale)
