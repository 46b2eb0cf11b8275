"""Partitions with exactly k clusters: greedy merges and splits to reach k, moves that keep k.

Natural log, ``V * H2`` arithmetic as in the CoDeSEG kernels: a partition is summarised
by each cluster's internal weight and volume, and ``f(in, vol) = in log(vol / V)``.
"""

import numpy as np

from sepkit._jit import jit
from sepkit._kernels.codeseg import (
    aggregate_with_loops,
    cluster_state,
    detachment_serial,
    gather_links,
    partition_entropy,
)
from sepkit._kernels.entropy import f_term, node_terms
from sepkit._kernels.partition import compact, shuffle_into, splitmix64
from sepkit._kernels.tree import requeue_neighbours

# Below this many clusters every pair is a merge candidate; above it, adjacent pairs and
# each cluster with the _FEW_SMALLEST clusters of least volume (merges across components).
_ALL_PAIRS_MAX = 64
_FEW_SMALLEST = 8


@jit
def _merge_cost(in1, v1, in2, v2, w12, V):
    """``V`` times the rise of H2 when two clusters joined by weight ``w12`` merge."""
    return f_term(in1 + in2 + 2.0 * w12, v1 + v2, V) - f_term(in1, v1, V) - f_term(in2, v2, V)


@jit
def merge_down(indptr, indices, data, degree, labels, k_target):
    """Merge, one pair at a time, the two clusters whose merge raises H2 least, down to k.

    Pairs joined by an edge are candidates, and pairs without one (so clusters can span
    connected components): all of them below ``_ALL_PAIRS_MAX`` clusters, each cluster
    with the few of least volume above. Works on the graph of the clusters, re-aggregated
    after every merge. Returns labels ``0..k_target-1``.
    """
    V = degree.sum()
    labels, k = compact(labels)
    c_indptr, c_indices, c_data, c_vol, c_in = aggregate_with_loops(
        indptr, indices, data, degree, labels, k
    )
    while k > k_target:
        best = np.inf
        b1 = -1
        b2 = -1
        for c1 in range(k):
            for p in range(c_indptr[c1], c_indptr[c1 + 1]):
                c2 = c_indices[p]
                if c2 <= c1:
                    continue
                cost = _merge_cost(c_in[c1], c_vol[c1], c_in[c2], c_vol[c2], c_data[p], V)
                if cost < best:
                    best, b1, b2 = cost, c1, c2
        # pairs without an edge between them (cost with w12 = 0; an adjacent pair's
        # cost found here is an upper bound of its true one, so it never wins wrongly)
        if k <= _ALL_PAIRS_MAX:
            for c1 in range(k):
                for c2 in range(c1 + 1, k):
                    cost = _merge_cost(c_in[c1], c_vol[c1], c_in[c2], c_vol[c2], 0.0, V)
                    if cost < best:
                        best, b1, b2 = cost, c1, c2
        else:
            few = np.argsort(c_vol, kind="mergesort")[:_FEW_SMALLEST]
            for c1 in range(k):
                for c2 in few:
                    if c2 == c1:
                        continue
                    cost = _merge_cost(c_in[c1], c_vol[c1], c_in[c2], c_vol[c2], 0.0, V)
                    if cost < best:
                        best, b1, b2 = cost, min(c1, c2), max(c1, c2)
        join = np.arange(k)
        join[b2] = b1
        join, k = compact(join)
        for i in range(labels.size):
            labels[i] = join[labels[i]]
        c_indptr, c_indices, c_data, c_vol, c_in = aggregate_with_loops(
            c_indptr, c_indices, c_data, c_vol, join, k
        )
    return labels


@jit
def split_up(indptr, indices, data, degree, labels, k_target):
    """Detach nodes into new singleton clusters, the cheapest first, up to k clusters.

    A round computes every detachment cost (the rise of H2 when a node leaves its
    cluster) and detaches the cheapest node of each of the cheapest clusters, at most
    one per cluster (the costs of a cluster's other nodes change when one leaves).
    Returns labels ``0..k_target-1``.
    """
    n = degree.size
    labels, k = compact(labels)
    while k < k_target:
        cost = detachment_serial(indptr, indices, data, degree, labels, k)
        _, _, size = cluster_state(indptr, indices, data, degree, labels, k)
        order = np.argsort(cost, kind="mergesort")
        used = np.zeros(k, dtype=np.bool_)
        for q in range(n):
            if k >= k_target:
                break
            o = order[q]
            c = labels[o]
            if size[c] < 2 or used[c]:
                continue
            used[c] = True
            labels[o] = k
            k += 1
    return labels


@jit
def moves_keeping_k(indptr, indices, data, degree, labels, k, order, tol):
    """Local moves that keep every cluster non-empty and create none, until none lowers H2.

    A node moves to the neighbouring cluster that lowers H2 most (by more than ``tol``
    times its degree), unless it is alone in its cluster. Returns the number of moves.
    """
    n = degree.size
    V = degree.sum()
    if V <= 0.0:
        return 0
    inn, vol, size = cluster_state(indptr, indices, data, degree, labels, k)
    stamp = np.full(k, -1, dtype=np.int64)
    weight = np.zeros(k)
    touched = np.empty(k, dtype=np.int64)
    queue = order.copy()
    queued = np.ones(n, dtype=np.bool_)
    head = 0
    pending = n
    moves = 0
    visit = 0
    while pending > 0:
        v = queue[head]
        head = (head + 1) % n
        pending -= 1
        queued[v] = False
        visit += 1
        a = labels[v]
        d = degree[v]
        if d <= 0.0 or size[a] <= 1:
            continue
        count, s = gather_links(
            indptr, indices, data, labels, v, visit, stamp, weight, touched, labels, -1
        )
        k_a = weight[a] if stamp[a] == visit else 0.0
        rem = f_term(inn[a] - 2.0 * k_a - s, vol[a] - d, V) - f_term(inn[a], vol[a], V)
        best_num = -tol * d
        best = -1
        for t in range(count):
            c = touched[t]
            if c == a:
                continue
            num = (
                rem
                + f_term(inn[c] + 2.0 * weight[c] + s, vol[c] + d, V)
                - f_term(inn[c], vol[c], V)
            )
            if num < best_num:
                best_num = num
                best = c
        if best < 0:
            continue
        inn[a] -= 2.0 * k_a + s
        vol[a] -= d
        size[a] -= 1
        inn[best] += 2.0 * weight[best] + s
        vol[best] += d
        size[best] += 1
        labels[v] = best
        moves += 1
        pending = requeue_neighbours(indptr, indices, v, queue, queued, head, pending)
    return moves


@jit
def to_k(indptr, indices, data, degree, labels, k_target, seed, tol):
    """``labels`` brought to exactly k clusters (merges or detachments), then moves keeping k."""
    labels, k = compact(labels.copy())
    if k > k_target:
        labels = merge_down(indptr, indices, data, degree, labels, k_target)
    elif k < k_target:
        labels = split_up(indptr, indices, data, degree, labels, k_target)
    order = np.arange(degree.size)
    shuffle_into(order, np.uint64(seed))
    moves_keeping_k(indptr, indices, data, degree, labels, k_target, order, tol)
    return labels


@jit
def polish_k(indptr, indices, data, degree, labels, k_target, seed, tol):
    """Iterated local search at fixed k, for small graphs.

    Starts also from singletons merged down to k and from one cluster split up to k;
    then kicks: merge two adjacent clusters, detach the cheapest node elsewhere, moves
    keeping k; a kick is kept when it lowers H2. Up to 4n kicks. Returns the best labels.
    """
    n = degree.size
    V = degree.sum()
    if V <= 0.0:
        return labels
    h1 = node_terms(degree, V).sum()
    state = np.uint64(seed)
    best = labels.copy()
    best_h = partition_entropy(indptr, indices, data, degree, best, h1, V)
    for start in range(2):
        init = np.arange(n) if start == 0 else np.zeros(n, dtype=np.int64)
        state, r = splitmix64(state)
        lab = to_k(indptr, indices, data, degree, init, k_target, r, tol)
        h = partition_entropy(indptr, indices, data, degree, lab, h1, V)
        if h < best_h - tol:
            best, best_h = lab, h
    budget = 4 * n
    improved = True
    while improved and budget > 0 and 1 < k_target < n:
        improved = False
        c_indptr, c_indices, _, _, _ = aggregate_with_loops(
            indptr, indices, data, degree, best, k_target
        )
        for c1 in range(k_target):
            for p in range(c_indptr[c1], c_indptr[c1 + 1]):
                c2 = c_indices[p]
                if c2 <= c1 or budget <= 0:
                    continue
                budget -= 1
                init = best.copy()
                for i in range(n):
                    if init[i] == c2:
                        init[i] = c1
                state, r = splitmix64(state)
                lab = to_k(indptr, indices, data, degree, init, k_target, r, tol)
                h = partition_entropy(indptr, indices, data, degree, lab, h1, V)
                if h < best_h - tol:
                    best, best_h = lab, h
                    improved = True
                    break
            if improved:
                break
    return best
