"""Slow, obviously correct structural entropy, straight from the formulas of the design page.

Plain Python loops over a networkx graph; nothing here uses sepkit or the identity
``H2 = H1 + (1/V) sum_C in_C log(vol_C/V)``. Every sepkit function is compared with
these in the tests.

Conventions (design page): the degree of a node is the row sum of the symmetric
adjacency matrix, so a self-loop of weight ``s`` adds ``s`` to the degree (once, not
twice as ``networkx.Graph.degree`` counts it) and ``s`` to ``in_C`` (once).
``0 log 0 = 0``; a graph without edges has every entropy and cost equal to 0.

A partition is a dict node -> label.
"""

from __future__ import annotations

import math

import networkx as nx


def xlogy(x: float, y: float) -> float:
    """``x * ln(y)`` with ``0 * ln(anything) = 0``."""
    if x == 0.0:
        return 0.0
    return x * math.log(y)


def weighted_edges(G: nx.Graph, weight: str | None = "weight"):
    """``(u, v, w)`` for every edge, missing weights (or ``weight=None``) counting 1."""
    for u, v, data in G.edges(data=True):
        w = 1.0 if weight is None else float(data.get(weight, 1.0))
        yield u, v, w


def degrees(G: nx.Graph, weight: str | None = "weight") -> dict:
    """Row sums of the adjacency matrix: a self-loop counts once."""
    d = {v: 0.0 for v in G}
    for u, v, w in weighted_edges(G, weight):
        if u == v:
            d[u] += w
        else:
            d[u] += w
            d[v] += w
    return d


def volume(G: nx.Graph, weight: str | None = "weight") -> float:
    return sum(degrees(G, weight).values())


def node_entropy_1d(G: nx.Graph, *, base: float = 2.0, weight: str | None = "weight") -> list:
    """``-(d_i/V) log(d_i/V)`` per node, in ``G``'s node order."""
    d = degrees(G, weight)
    V = sum(d.values())
    if V == 0.0:
        return [0.0 for _ in G]
    return [-xlogy(d[v] / V, d[v] / V) / math.log(base) for v in G]


def structural_entropy_1d(G: nx.Graph, *, base: float = 2.0, weight: str | None = "weight"):
    return sum(node_entropy_1d(G, base=base, weight=weight))


def clusters(partition: dict) -> dict:
    """label -> set of nodes."""
    out: dict = {}
    for v, c in partition.items():
        out.setdefault(c, set()).add(v)
    return out


def structural_entropy_2d(
    G: nx.Graph, partition: dict, *, base: float = 2.0, weight: str | None = "weight"
) -> float:
    """``- sum_C [ (g_C/V) log(vol_C/V) + sum_{o in C} (d_o/V) log(d_o/vol_C) ]``."""
    assert set(partition) == set(G), "the partition must cover the graph exactly"
    d = degrees(G, weight)
    V = sum(d.values())
    if V == 0.0:
        return 0.0
    h = 0.0
    for members in clusters(partition).values():
        vol = sum(d[o] for o in members)
        inner = 0.0  # sum_{i, j in C} A_ij: each internal edge twice, a self-loop once
        for u, v, w in weighted_edges(G, weight):
            if u in members and v in members:
                inner += w if u == v else 2.0 * w
        cut = vol - inner
        h -= xlogy(cut / V, vol / V)
        for o in members:
            if d[o] > 0.0:  # then vol >= d[o] > 0; an isolated node contributes 0 log 0 = 0
                h -= xlogy(d[o] / V, d[o] / vol)
    return h / math.log(base)


def _fresh_label(partition: dict):
    return max(partition.values()) + 1


def move_delta(
    G: nx.Graph, partition: dict, node, target, *, base: float = 2.0, weight="weight"
) -> float:
    """H2 after minus H2 before moving ``node`` into ``target`` (None: a new singleton)."""
    after = dict(partition)
    after[node] = _fresh_label(partition) if target is None else target
    return structural_entropy_2d(G, after, base=base, weight=weight) - structural_entropy_2d(
        G, partition, base=base, weight=weight
    )


def detachment_cost(G: nx.Graph, partition: dict, *, base: float = 2.0, weight="weight") -> list:
    """Rise of H2 when each node leaves its cluster for a new singleton, in node order."""
    return [move_delta(G, partition, o, None, base=base, weight=weight) for o in G]


def structural_entropy_2d_dense(A, labels, *, base: float = math.e) -> float:
    """:func:`structural_entropy_2d` of a dense symmetric matrix and a label sequence."""
    n = len(labels)
    d = [sum(A[i][j] for j in range(n)) for i in range(n)]
    V = sum(d)
    if V == 0.0:
        return 0.0
    h = 0.0
    for c in set(labels):
        members = [i for i in range(n) if labels[i] == c]
        vol = sum(d[o] for o in members)
        inner = sum(A[i][j] for i in members for j in members)
        h -= xlogy((vol - inner) / V, vol / V)
        for o in members:
            if d[o] > 0.0:
                h -= xlogy(d[o] / V, d[o] / vol)
    return h / math.log(base)


def published_sweep(A, *, max_iter: int = 10):
    """The greedy sweep of ECMRNet's published pruning, from its rule.

    From singletons, sweep the nodes in index order, skipping nodes of degree 0. A node
    looks at the clusters of its neighbours (other than its own) in the order of its
    neighbours' indices, and moves to the one whose move lowers H2 most (the first such
    cluster on a tie), if any lowers it. Stop after a sweep without moves, or after
    `max_iter` sweeps. H2 is recomputed from scratch for every candidate.

    Returns ``(labels, margin)``: the final labels and the smallest gap between two
    numbers a decision compared (a move's change against 0, or two candidates'
    changes). A margin near rounding noise means float rounding may decide.
    """
    n = len(A)
    labels = list(range(n))
    margin = math.inf
    for _ in range(max_iter):
        moved = False
        for i in range(n):
            if sum(A[i]) == 0.0:
                continue
            now = structural_entropy_2d_dense(A, labels)
            candidates, changes = [], []
            for j in range(n):
                c = labels[j]
                if A[i][j] > 0.0 and c != labels[i] and c not in candidates:
                    moved_labels = labels.copy()
                    moved_labels[i] = c
                    candidates.append(c)
                    changes.append(structural_entropy_2d_dense(A, moved_labels) - now)
            if not candidates:
                continue
            best = min(range(len(changes)), key=lambda k: (changes[k], k))
            margin = min(
                [margin, abs(changes[best])]
                + [abs(x - changes[best]) for k, x in enumerate(changes) if k != best]
            )
            if changes[best] < 0.0:
                labels[i] = candidates[best]
                moved = True
        if not moved:
            break
    return labels, margin


def structural_entropy_tree(
    G: nx.Graph, levels: list, *, base: float = 2.0, weight: str | None = "weight"
) -> float:
    """Entropy of the coding tree given by nested partitions (dicts node -> label, finest first).

    ``- sum over tree nodes a other than the root of (g_a / V) log(vol_a / vol_parent(a))``,
    with ``g_a`` the weight of the edges with exactly one end below ``a`` (a leaf: its
    degree) and ``vol_a`` the sum of the degrees below ``a``. The tree is built as
    explicit vertex sets: a leaf is ``{v}``; a level-l node is a set of vertices.
    """
    d = degrees(G, weight)
    V = sum(d.values())
    if V == 0.0:
        return 0.0
    edges = list(weighted_edges(G, weight))

    def cut(members: frozenset) -> float:
        return sum(w for u, v, w in edges if (u in members) != (v in members))

    def vol(members: frozenset) -> float:
        return sum(d[o] for o in members)

    # the tree node above each vertex at every level, as frozensets; the root last
    above = [{v: frozenset(c) for c in clusters(level).values() for v in c} for level in levels]
    root = frozenset(G)
    h = 0.0
    for v in G:  # leaves: g = d
        parent = above[0][v] if levels else root
        if d[v] > 0:
            h -= xlogy(d[v] / V, d[v] / vol(parent))
    for l, level in enumerate(levels):
        for members in clusters(level).values():
            node = frozenset(members)
            v = next(iter(node))
            parent = above[l + 1][v] if l + 1 < len(levels) else root
            g = cut(node)
            if g > 0:
                h -= xlogy(g / V, vol(node) / vol(parent))
    return h / math.log(base)
