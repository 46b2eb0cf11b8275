"""The minimum-H2 partition of a tiny graph, exactly, by dynamic programming over node subsets.

``H2(P) = H1 + (1/V) sum_C f(in_C, vol_C)`` is a sum of one term per cluster, so the
best partition of a node set ``S`` is the best split of ``S`` into a cluster ``T``
(holding the lowest node of ``S``) and the best partition of ``S \\ T``. Every subset
is a bit mask; the recursion visits each pair ``(S, T)`` once, ``O(3^n)`` in all,
against the Bell number of partitions a plain enumeration would visit.

Only connected clusters are considered: splitting a cluster into two parts without an
edge between them keeps ``in`` and lowers each part's volume, so it never raises H2
(``f(in_1 + in_2, vol) >= f(in_1, vol_1) + f(in_2, vol_2)``). The optimum is therefore
reached, and nodes without edges stay singletons.
"""

import numpy as np

from sepkit._jit import jit
from sepkit._kernels.entropy import f_term


@jit
def _lowest_bit(mask):
    """Index of the lowest set bit of a positive mask."""
    i = 0
    while (mask >> i) & 1 == 0:
        i += 1
    return i


@jit
def exact_partition(indptr, indices, data, degree):
    """Labels of a minimum-H2 partition of a graph of at most ~16 nodes.

    Ties go to the first split met: the larger cluster holding the lowest node.
    """
    n = degree.size
    V = degree.sum()
    labels = np.arange(n)
    if V <= 0.0 or n < 2:
        return labels
    full = (1 << n) - 1
    loop = np.zeros(n)
    weight = np.zeros((n, n))
    neighbours = np.zeros(n, dtype=np.int64)  # bit mask of each node's other neighbours
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j == i:
                loop[i] += data[p]
            else:
                weight[i, j] += data[p]
                if data[p] > 0.0:
                    neighbours[i] |= 1 << j
    # f(in_T, vol_T) of every connected subset T; +inf marks the disconnected ones
    term = np.empty(full + 1)
    inner = np.zeros(full + 1)
    vol = np.zeros(full + 1)
    term[0] = 0.0
    for T in range(1, full + 1):
        v = _lowest_bit(T)
        rest = T & (T - 1)
        link = 0.0
        for u in range(v + 1, n):
            if (rest >> u) & 1:
                link += weight[v, u]
        inner[T] = inner[rest] + loop[v] + 2.0 * link
        vol[T] = vol[rest] + degree[v]
        reach = 1 << v
        while True:
            grown = reach
            for u in range(n):
                if (reach >> u) & 1:
                    grown |= neighbours[u] & T
            if grown == reach:
                break
            reach = grown
        term[T] = f_term(inner[T], vol[T], V) if reach == T else np.inf
    best = np.empty(full + 1)
    choice = np.zeros(full + 1, dtype=np.int64)
    best[0] = 0.0
    for S in range(1, full + 1):
        low = S & -S
        rest = S ^ low
        best_value = np.inf
        best_T = low
        T = rest
        while True:  # every subset T of rest, largest first; the cluster is T | low
            cluster = T | low
            value = term[cluster] + best[S ^ cluster]
            if value < best_value:
                best_value = value
                best_T = cluster
            if T == 0:
                break
            T = (T - 1) & rest
        best[S] = best_value
        choice[S] = best_T
    S = full
    c = 0
    while S:
        T = choice[S]
        for u in range(n):
            if (T >> u) & 1:
                labels[u] = c
        c += 1
        S ^= T
    return labels
