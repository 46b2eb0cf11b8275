"""Exhaustive optima over every coding tree of a tiny graph, of any height.

A coding tree here is any rooted tree whose leaves are the vertices (a *hierarchy*):
leaves may sit at different depths, and a tree node may have a single child. Its
entropy (in bits) is ``- sum over tree nodes a != root of (g_a / V) log(vol_a / vol_parent(a))``
with ``g_a`` the weight of the edges with exactly one end below ``a`` (a leaf: its degree),
straight from the definition; the same conventions as ``naive`` (a self-loop counts once).

Two independent ways to the optimum:

- :func:`every_tree` lists every hierarchy (each internal node with at least two
  children, and every leaf either directly under its parent or under a tree node of its
  own: the only chains that can change the entropy, see below), for n <= 5;
- :func:`optimum_per_height` is a dynamic programme over vertex subsets: below a tree
  node S, the terms of the subtree depend on S only through ``vol_S``, so the best
  subtree of every S (per height bound) is a minimum over the partitions of S into its
  children. O(h 4^n) for n vertices and heights up to h.

Why single-child chains need no enumeration: a node whose only child covers the same
vertices adds ``g log 1 = 0``, except above a leaf, where the node's ``g`` is the
degree minus the self-loop while the leaf counts its whole degree: wrapping a leaf
with a self-loop in a node of its own lowers the entropy (by
``(s / V) log(vol_parent / d)``), and a second wrapper adds nothing more. Each is
checked against ``naive`` in the tests.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _stats(A: np.ndarray):
    """Degrees, self-loops, volume, and vol / cut of every vertex subset (bitmask)."""
    n = A.shape[0]
    d = A.sum(1)
    loops = np.diag(A).copy()
    V = float(d.sum())
    vol = np.zeros(1 << n)
    cut = np.zeros(1 << n)
    for S in range(1, 1 << n):
        inside = np.array([(S >> i) & 1 for i in range(n)], dtype=bool)
        vol[S] = d[inside].sum()
        cut[S] = A[np.ix_(inside, ~inside)].sum()
    return d, loops, V, vol, cut


def _term(g: float, vol: float, vol_parent: float, V: float) -> float:
    """``-(g / V) log2(vol / vol_parent)``, 0 when ``g`` or ``vol`` is 0."""
    if g <= 0.0 or vol <= 0.0:
        return 0.0
    return -(g / V) * math.log2(vol / vol_parent)


def optimum_per_height(A: np.ndarray, max_height: int | None = None) -> np.ndarray:
    """``out[h - 1]``: the lowest entropy (bits) over coding trees of height at most h.

    ``h`` runs from 1 (the root over the leaves: H1) to ``max_height`` (default n + 1,
    enough for every tree that matters: n - 1 nested levels of merges and a wrapper).
    0 for a graph without edges.
    """
    A = np.asarray(A, dtype=float)
    n = A.shape[0]
    H = n + 1 if max_height is None else max_height
    d, loops, V, vol, cut = _stats(A)
    if V <= 0.0:
        return np.zeros(H)
    full = (1 << n) - 1
    inf = math.inf
    # best[S][h - 1]: lowest sum of the terms strictly below tree node S, subtree height <= h
    best = {1 << i: np.zeros(H) for i in range(n)}
    for S in sorted(range(1, full + 1), key=lambda s: bin(s).count("1")):
        if S & (S - 1) == 0:
            continue
        members = [i for i in range(n) if (S >> i) & 1]
        vs = vol[S]
        subsets = [
            sum(1 << members[j] for j in range(len(members)) if (k >> j) & 1)
            for k in range(1, 1 << len(members))
        ]
        # cost[B][h - 1]: child B of S in a subtree of height <= h (B at depth 1)
        cost = {}
        for B in subsets:
            if B == S:
                continue
            c = np.full(H, inf)
            if B & (B - 1) == 0:  # a leaf, or a leaf under a node of its own
                i = B.bit_length() - 1
                c[:] = _term(d[i], d[i], vs, V)
                c[1:] = np.minimum(c[1:], _term(d[i] - loops[i], d[i], vs, V))
            else:
                c[1:] = _term(cut[B], vol[B], vs, V) + best[B][:-1]
            cost[B] = c
        # part[T]: best split of T (a subset of S) into children of S, per height
        part = {0: np.zeros(H)}
        for T in sorted(subsets, key=lambda s: bin(s).count("1")):
            low = T & -T
            rest = T ^ low
            out = np.full(H, inf)
            B_rest = rest
            while True:  # every B = low + a subset of rest; B == S is not a split
                B = low | B_rest
                if B != S:
                    np.minimum(out, cost[B] + part[T ^ B], out=out)
                if B_rest == 0:
                    break
                B_rest = (B_rest - 1) & rest
            part[T] = out
        best[S] = part[S]
    return np.minimum.accumulate(best[full])


def every_tree(n: int):
    """Every hierarchy on vertices 0..n-1 (see the module), as nested tuples.

    A tree node is a tuple of its children; a leaf is a vertex (an int); a leaf
    under a node of its own is ``(v,)``. The root is the outer tuple.
    """

    def set_partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for part in set_partitions(rest):
            yield [[first], *part]
            for k in range(len(part)):
                yield [*part[:k], [first, *part[k]], *part[k + 1 :]]

    def trees(items):
        for part in set_partitions(items):
            if len(part) < 2:
                continue
            options = []
            for block in part:
                if len(block) == 1:
                    options.append([block[0], (block[0],)])
                else:
                    options.append(list(trees(block)))
            yield from itertools.product(*options)

    if n == 1:
        yield from ((0,), ((0,),))
        return
    for t in trees(list(range(n))):
        yield tuple(t)


def tree_entropy(A: np.ndarray, tree) -> float:
    """Entropy (bits) of a hierarchy from :func:`every_tree`, from the definition."""
    A = np.asarray(A, dtype=float)
    n = A.shape[0]
    d = A.sum(1)
    V = float(d.sum())
    if V <= 0.0:
        return 0.0

    def leaves(node):
        return [node] if isinstance(node, int) else [v for c in node for v in leaves(c)]

    def vol_cut(vs):
        inside = np.zeros(n, dtype=bool)
        inside[vs] = True
        return d[inside].sum(), A[np.ix_(inside, ~inside)].sum()

    def walk(node, parent_vol):
        if isinstance(node, int):
            return _term(d[node], d[node], parent_vol, V)
        vol_a, cut_a = vol_cut(leaves(node))
        return _term(cut_a, vol_a, parent_vol, V) + sum(walk(c, vol_a) for c in node)

    return sum(walk(c, V) for c in tree)


def tree_height(tree) -> int:
    """Edges from the root down to the deepest leaf."""
    if isinstance(tree, int):
        return 0
    return 1 + max(tree_height(c) for c in tree)
