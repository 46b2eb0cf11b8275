"""Structural-entropy kernels: node terms, cluster summaries, 2D entropy, deltas, detachment.

Two chains: the kernels named without ``_chunks`` are serial and are the ones other kernels
call; the ``_chunks`` kernels hold the ``prange`` loops and are called only from Python, by
the ``auto_*`` functions at the end, on graphs of ``PARALLEL_MIN_WORK`` or more. numba
compiles every kernel a kernel may call, so a serial kernel that could reach a parallel one
would compile it (and start the threading layer) even on a 34-node graph.
"""

import numpy as np

from sepkit._jit import PARALLEL_CHUNKS, PARALLEL_MIN_WORK, jit, jit_parallel, prange

_INT32_MAX = 2**31 - 1


@jit
def f_term(inner, vol, V):
    """``inner * log(vol / V)``, with 0 when ``inner`` or ``vol`` is not positive."""
    if inner <= 0.0 or vol <= 0.0:
        return 0.0
    return inner * np.log(vol / V)


@jit
def _node_terms_range(degree, V, lo, hi, out):
    for i in range(lo, hi):
        p = degree[i] / V
        if p > 0.0:
            out[i] = -p * np.log(p)


@jit_parallel
def _node_terms_chunks(degree, V, bounds, out):
    for c in prange(bounds.size - 1):
        _node_terms_range(degree, V, bounds[c], bounds[c + 1], out)


@jit
def node_terms(degree, V):
    """Per-node 1D terms ``-(d/V) log(d/V)`` (0 for d = 0 or V = 0)."""
    n = degree.size
    out = np.zeros(n)
    if V > 0.0:
        _node_terms_range(degree, V, 0, n, out)
    return out


@jit
def even_bounds(n):
    """Split ``0..n`` into ``PARALLEL_CHUNKS`` contiguous ranges of (almost) equal length."""
    bounds = np.empty(PARALLEL_CHUNKS + 1, dtype=np.int64)
    for c in range(PARALLEL_CHUNKS + 1):
        bounds[c] = (n * c) // PARALLEL_CHUNKS
    return bounds


@jit
def first_at_least(values, target):
    """The first index of sorted ``values`` whose value is at least ``target`` (``values.size``
    if none): ``np.searchsorted(values, target)``, whose generic version compiles slowly."""
    lo = 0
    hi = values.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if values[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@jit
def edge_bounds(indptr):
    """Split the nodes into ``PARALLEL_CHUNKS`` ranges holding about as many stored entries each."""
    n = indptr.size - 1
    nnz = indptr[n]
    bounds = np.empty(PARALLEL_CHUNKS + 1, dtype=np.int64)
    bounds[0] = 0
    for c in range(1, PARALLEL_CHUNKS):
        b = first_at_least(indptr, (nnz * c) // PARALLEL_CHUNKS)
        bounds[c] = max(bounds[c - 1], min(b, n))
    bounds[PARALLEL_CHUNKS] = n
    return bounds


@jit
def _links_range(indptr, indices, data, labels, lo, hi, own, loop):
    # Branch-free on purpose: whether a neighbour shares the cluster is close to random,
    # and a mispredicted branch also cancels the label loads already in flight.
    # Adding 0.0 leaves a sum unchanged, so this equals the branchy loop bit for bit.
    for i in range(lo, hi):
        c = labels[i]
        acc = 0.0
        s = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            x = data[p]
            acc += x if labels[j] == c else 0.0
            s += x if j == i else 0.0
        own[i] = acc
        loop[i] = s


@jit_parallel
def _links_chunks(indptr, indices, data, labels, bounds, own, loop):
    for c in prange(bounds.size - 1):
        _links_range(indptr, indices, data, labels, bounds[c], bounds[c + 1], own, loop)


@jit
def own_links(indptr, indices, data, labels):
    """Per node: ``w``, its weight to its own cluster (self-loop included once), and ``s``,
    its self-loop. One serial pass over the stored entries."""
    n = indptr.size - 1
    own = np.empty(n)
    loop = np.empty(n)
    _links_range(indptr, indices, data, labels, 0, n, own, loop)
    return own, loop


@jit
def sum_by_cluster(labels, own, degree, k):
    """``(in_C, vol_C)`` of every cluster from each node's own-cluster weight and degree."""
    inner = np.zeros(k)
    vol = np.zeros(k)
    for i in range(labels.size):
        c = labels[i]
        inner[c] += own[i]
        vol[c] += degree[i]
    return inner, vol


@jit
def cluster_totals(indptr, indices, data, degree, labels, k):
    """``(in_C, vol_C)`` of every cluster and ``(w, s)`` of every node (see :func:`own_links`)."""
    own, loop = own_links(indptr, indices, data, labels)
    inner, vol = sum_by_cluster(labels, own, degree, k)
    return inner, vol, own, loop


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
def total(values):
    """``values.sum()`` in a kernel's order of summation (numpy's pairwise sum may differ)."""
    return values.sum()


@jit
def entropy_2d(indptr, indices, data, degree, labels, k, V):
    """H2 of a partition, natural log, in O(n + m)."""
    if V <= 0.0:
        return 0.0
    # the leaves called directly, not through cluster_totals and node_terms: numba compiles
    # every level of kernels below a kernel again into it
    n = degree.size
    own = np.empty(n)
    loop = np.empty(n)
    _links_range(indptr, indices, data, labels, 0, n, own, loop)
    inner, vol = sum_by_cluster(labels, own, degree, k)
    terms = np.zeros(n)
    _node_terms_range(degree, V, 0, n, terms)
    return entropy_from_clusters(terms.sum(), inner, vol, V)


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
    inner, vol, _, _ = cluster_totals(indptr, indices, data, degree, labels, k)
    k_a, k_b, s = node_links(indptr, indices, data, labels, v, a, target)
    in_b = inner[target] if target < k else 0.0
    vol_b = vol[target] if target < k else 0.0
    return move_delta_from_sums(inner[a], vol[a], in_b, vol_b, k_a, k_b, s, degree[v], V)


@jit
def _detachment_range(degree, labels, own, loop, inner, vol, f_own, V, lo, hi, out):
    for o in range(lo, hi):
        c = labels[o]
        d = degree[o]
        if d <= 0.0 or vol[c] - d <= 0.0:
            out[o] = 0.0  # isolated node, or alone in its cluster: leaving changes nothing
            continue
        s = loop[o]
        k_o = own[o] - s  # weight to the other members of the cluster
        out[o] = (f_term(inner[c] - 2.0 * k_o - s, vol[c] - d, V) - f_own[c] + f_term(s, d, V)) / V


@jit_parallel
def _detachment_chunks(degree, labels, own, loop, inner, vol, f_own, V, bounds, out):
    for c in prange(bounds.size - 1):
        _detachment_range(
            degree, labels, own, loop, inner, vol, f_own, V, bounds[c], bounds[c + 1], out
        )


@jit
def detachment_costs(indptr, indices, data, degree, labels, k, V):
    """All n detachment costs in one O(n + m) pass, natural log.

    ``D(o) = (1/V)[f(in_C - 2k - s, vol_C - d) - f(in_C, vol_C) + f(s, d)]``.
    """
    n = degree.size
    out = np.zeros(n)
    if V <= 0.0:
        return out
    own = np.empty(n)
    loop = np.empty(n)
    _links_range(indptr, indices, data, labels, 0, n, own, loop)
    inner, vol = sum_by_cluster(labels, own, degree, k)
    _detachment_range(degree, labels, own, loop, inner, vol, f_terms(inner, vol, V), V, 0, n, out)
    return out


@jit
def f_terms(inner, vol, V):
    """``f(in_C, vol_C)`` of every cluster."""
    out = np.empty(inner.size)
    for c in range(inner.size):
        out[c] = f_term(inner[c], vol[c], V)
    return out


# --- from Python: the serial kernels above, or the parallel ones on large graphs -----------


def _large(indptr) -> bool:
    """Whether a pass over the stored entries runs in parallel."""
    return indptr.size - 1 + indptr[-1] >= PARALLEL_MIN_WORK


def auto_node_terms(degree, V):
    """:func:`node_terms`, in parallel from ``PARALLEL_MIN_WORK`` nodes."""
    n = degree.size
    if n < PARALLEL_MIN_WORK or V <= 0.0:
        return node_terms(degree, V)
    out = np.zeros(n)
    _node_terms_chunks(degree, V, even_bounds(n), out)
    return out


def auto_cluster_totals(indptr, indices, data, degree, labels, k):
    """:func:`cluster_totals`, its pass over the stored entries in parallel on large graphs."""
    if not _large(indptr):
        return cluster_totals(indptr, indices, data, degree, labels, k)
    n = indptr.size - 1
    own = np.empty(n)
    loop = np.empty(n)
    # The random label loads dominate once the graph outgrows the cache; an int32 copy
    # halves their footprint (about 15% faster at 1e7 edges).
    narrow = labels.astype(np.int32) if n <= _INT32_MAX else labels
    _links_chunks(indptr, indices, data, narrow, edge_bounds(indptr), own, loop)
    inner, vol = sum_by_cluster(labels, own, degree, k)
    return inner, vol, own, loop


def auto_entropy_2d(indptr, indices, data, degree, labels, k, V):
    """:func:`entropy_2d`, in parallel on large graphs."""
    if V <= 0.0 or not _large(indptr):
        return entropy_2d(indptr, indices, data, degree, labels, k, V)
    inner, vol, _, _ = auto_cluster_totals(indptr, indices, data, degree, labels, k)
    # summed by a kernel, as entropy_2d sums: numpy's pairwise sum may differ in the last bit
    return entropy_from_clusters(total(auto_node_terms(degree, V)), inner, vol, V)


def auto_move_delta(indptr, indices, data, degree, labels, k, V, v, target):
    """:func:`move_delta`, its cluster sums in parallel on large graphs."""
    if labels[v] == target:
        return 0.0
    if not _large(indptr):
        return move_delta(indptr, indices, data, degree, labels, k, V, v, target)
    inner, vol, _, _ = auto_cluster_totals(indptr, indices, data, degree, labels, k)
    a = labels[v]
    k_a, k_b, s = node_links(indptr, indices, data, labels, v, a, target)
    in_b = inner[target] if target < k else 0.0
    vol_b = vol[target] if target < k else 0.0
    return move_delta_from_sums(inner[a], vol[a], in_b, vol_b, k_a, k_b, s, degree[v], V)


def auto_detachment_costs(indptr, indices, data, degree, labels, k, V):
    """:func:`detachment_costs`, in parallel on large graphs."""
    n = degree.size
    if V <= 0.0 or not _large(indptr):
        return detachment_costs(indptr, indices, data, degree, labels, k, V)
    inner, vol, own, loop = auto_cluster_totals(indptr, indices, data, degree, labels, k)
    f_own = f_terms(inner, vol, V)
    out = np.zeros(n)
    if n < PARALLEL_MIN_WORK:
        _detachment_range(degree, labels, own, loop, inner, vol, f_own, V, 0, n, out)
    else:
        _detachment_chunks(degree, labels, own, loop, inner, vol, f_own, V, even_bounds(n), out)
    return out
