"""Structural-entropy kernels: node terms, cluster summaries, 2D entropy, deltas, detachment."""

import numpy as np

from sepkit._jit import jit, jit_parallel, prange


@jit
def f_term(inner, vol, V):
    """``inner * log(vol / V)``, with 0 when ``inner`` or ``vol`` is not positive."""
    if inner <= 0.0 or vol <= 0.0:
        return 0.0
    return inner * np.log(vol / V)


@jit_parallel
def node_terms(degree, V):
    """Per-node 1D terms ``-(d/V) log(d/V)`` (0 for d = 0 or V = 0)."""
    n = degree.size
    out = np.zeros(n)
    if V <= 0.0:
        return out
    for i in prange(n):
        p = degree[i] / V
        if p > 0.0:
            out[i] = -p * np.log(p)
    return out


@jit_parallel
def internal_weight(indptr, indices, data, labels):
    """``w_i = sum_{j in C(i)} A_ij`` for every node (self-loop included once)."""
    n = indptr.size - 1
    out = np.zeros(n)
    for i in prange(n):
        c = labels[i]
        acc = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            if labels[indices[p]] == c:
                acc += data[p]
        out[i] = acc
    return out


@jit
def cluster_sums(labels, values, k):
    """``out[c] = sum of values[i] over nodes i with labels[i] == c``."""
    out = np.zeros(k)
    for i in range(labels.size):
        out[labels[i]] += values[i]
    return out


@jit
def entropy_from_clusters(h1, inner, vol, V):
    """``H2 = H1 + (1/V) sum_C in_C log(vol_C / V)``, natural log."""
    if V <= 0.0:
        return 0.0
    acc = 0.0
    for c in range(inner.size):
        acc += f_term(inner[c], vol[c], V)
    return h1 + acc / V


@jit
def entropy_1d(degree, V):
    return node_terms(degree, V).sum()


@jit
def entropy_2d(indptr, indices, data, degree, labels, k, V):
    """H2 of a partition, natural log, in O(n + m)."""
    if V <= 0.0:
        return 0.0
    inner = cluster_sums(labels, internal_weight(indptr, indices, data, labels), k)
    vol = cluster_sums(labels, degree, k)
    return entropy_from_clusters(entropy_1d(degree, V), inner, vol, V)


@jit
def move_delta_from_sums(in_a, vol_a, in_b, vol_b, k_a, k_b, s, d, V):
    """H2 after minus before moving a node (degree d, self-loop s) from cluster A to B.

    ``k_a`` is the node's weight to the rest of A, ``k_b`` its weight to B;
    B empty (``in_b = vol_b = 0``) is a new singleton. Natural log.
    """
    if V <= 0.0:
        return 0.0
    return (
        f_term(in_a - 2.0 * k_a - s, vol_a - d, V)
        - f_term(in_a, vol_a, V)
        + f_term(in_b + 2.0 * k_b + s, vol_b + d, V)
        - f_term(in_b, vol_b, V)
    ) / V


@jit
def node_links(indptr, indices, data, labels, v, a, b):
    """Weight from node v to cluster a (others than v), to cluster b, and its self-loop."""
    k_a = 0.0
    k_b = 0.0
    s = 0.0
    for p in range(indptr[v], indptr[v + 1]):
        j = indices[p]
        if j == v:
            s += data[p]
        elif labels[j] == a:
            k_a += data[p]
        elif labels[j] == b:
            k_b += data[p]
    return k_a, k_b, s


@jit
def move_delta(indptr, indices, data, degree, labels, k, V, v, target):
    """Delta of H2 for moving v into cluster ``target`` (``target == k``: a new singleton)."""
    a = labels[v]
    if target == a:
        return 0.0
    inner = cluster_sums(labels, internal_weight(indptr, indices, data, labels), k)
    vol = cluster_sums(labels, degree, k)
    k_a, k_b, s = node_links(indptr, indices, data, labels, v, a, target)
    in_b = inner[target] if target < k else 0.0
    vol_b = vol[target] if target < k else 0.0
    return move_delta_from_sums(inner[a], vol[a], in_b, vol_b, k_a, k_b, s, degree[v], V)


@jit_parallel
def detachment_from_sums(indptr, indices, data, degree, labels, inner, vol, V):
    """Detachment cost of every node given the cluster sums, natural log.

    ``D(o) = (1/V)[f(in_C - 2k - s, vol_C - d) - f(in_C, vol_C) + f(s, d)]``.
    """
    n = degree.size
    out = np.zeros(n)
    if V <= 0.0:
        return out
    for o in prange(n):
        c = labels[o]
        k_c = 0.0
        s = 0.0
        for p in range(indptr[o], indptr[o + 1]):
            j = indices[p]
            if j == o:
                s += data[p]
            elif labels[j] == c:
                k_c += data[p]
        d = degree[o]
        if d <= 0.0 or vol[c] - d <= 0.0:
            continue  # isolated node, or alone in its cluster: leaving changes nothing
        out[o] = (
            f_term(inner[c] - 2.0 * k_c - s, vol[c] - d, V)
            - f_term(inner[c], vol[c], V)
            + f_term(s, d, V)
        ) / V
    return out


@jit
def detachment_costs(indptr, indices, data, degree, labels, k, V):
    """All n detachment costs in one O(n + m) pass, natural log."""
    inner = cluster_sums(labels, internal_weight(indptr, indices, data, labels), k)
    vol = cluster_sums(labels, degree, k)
    return detachment_from_sums(indptr, indices, data, degree, labels, inner, vol, V)
