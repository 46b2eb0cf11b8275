"""A slow, literal reference of the public pruning code's selection, one graph at a time
in scalar Python, written from its rule (docs/pruning.md, "SEP as published"): float32
graph, degrees and volume; float64 running sums; every term divided by the float32
volume computed in float32 (NumPy 2's rule for a Python float beside a float32 scalar);
``math.log``; a failed logarithm leaves its term 0; the first maximum wins."""

from __future__ import annotations

import math

import numpy as np


def leave_delta(g, deg, vol, vol_left, cut, cut_left):
    """H2(after the node leaves) - H2(now), in the public code's scalar arithmetic."""

    def term(factor, x):
        try:
            return factor * math.log(x)  # float32 * Python float -> float32
        except ValueError:
            return 0.0

    total = term(-(cut_left / g), vol_left / g)
    total = total + term(cut / g, vol / g)
    total = total + term(vol_left / g, vol_left / vol)
    return total + term(deg / g, g / vol)


def public_sweep(graph):
    """(labels, recorded costs) of one graph."""
    A = np.asarray(graph, dtype=np.float32)
    n = A.shape[0]
    g = A.sum()  # a float32 scalar
    deg = [float(x) for x in A.sum(axis=1)]
    vol, cut = deg[:], deg[:]
    inner = [0.0] * n
    label = list(range(n))
    costs = [0.0] * n
    neighbours = [[(j, float(A[i, j])) for j in range(n) if A[i, j] != 0] for i in range(n)]
    for _ in range(10):
        moves = 0
        for i in range(n):
            if deg[i] == 0.0:
                continue
            src = label[i]
            if abs(vol[src] - deg[i]) < 1e-8:
                leave = 0.0
            else:
                leave = leave_delta(
                    g,
                    deg[i],
                    vol[src],
                    vol[src] - deg[i],
                    cut[src],
                    cut[src] + 2 * inner[i] - deg[i],
                )
            costs[i] = leave
            links = {}
            for j, w in neighbours[i]:
                if label[j] != src:
                    links[label[j]] = links.get(label[j], 0) + w
            best, target = 0, None
            for k, link in links.items():
                joined = leave_delta(
                    g, deg[i], vol[k] + deg[i], vol[k], cut[k] - 2 * link + deg[i], cut[k]
                )
                if leave - joined < best:
                    best, target = leave - joined, k
            if target is None:
                continue
            link = links[target]
            vol[src] -= deg[i]
            cut[src] = cut[src] + 2 * inner[i] - deg[i] if vol[src] > 0 else 0
            label[i] = target
            vol[target] += deg[i]
            cut[target] = cut[target] - 2 * link + deg[i]
            inner[i] = link
            for j, w in neighbours[i]:
                if label[j] == src:
                    inner[j] -= w
                if label[j] == target:
                    inner[j] += w
            moves += 1
        if moves == 0:
            break
    return label, costs


def public_representatives(graph):
    """The groups the public rule keeps on one graph: each cluster's first maximum."""
    label, costs = public_sweep(graph)
    clusters = {}
    for i, k in enumerate(label):
        clusters.setdefault(k, []).append(i)
    return sorted(max(members, key=lambda i: costs[i]) for members in clusters.values())
