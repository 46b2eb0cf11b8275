"""CoDeSEG kernels: the reference game sweep, the overlap pass, and the entry points of
the multilevel search for one graph (:func:`search`; ``batch.py`` for a stack of small
dense ones).

The search itself lives in ``multilevel.py`` (any size, parallel; its level graphs in
``levels.py``), ``dense.py`` (small graphs held as dense matrices) and ``exact.py`` (tiny
graphs, exactly). All arithmetic is float64 in natural logs. A partition is held as
per-cluster sums ``inn`` (internal weight, each internal edge twice, self-loops once) and
``vol`` (volume); moving a node changes two clusters' sums in O(1), so a move's delta is
O(degree). Randomness comes only from an explicit seed (splitmix64), so results are
identical on every machine and thread count.
"""

import numpy as np

from sepkit._jit import jit, jit_inline, serial_twin
from sepkit._kernels.dense import dense_search
from sepkit._kernels.entropy import (
    entropy_from_clusters,
    f_term,
    move_delta_from_sums,
    node_links,
    node_terms,
)
from sepkit._kernels.exact import exact_partition
from sepkit._kernels.levels import aggregate
from sepkit._kernels.multilevel import multilevel_serial
from sepkit._kernels.partition import (
    compact,
    self_loops,
    shuffle_into,  # noqa: F401 (callers use it from here)
    splitmix64,
)


@jit
def cluster_state(indptr, indices, data, degree, labels, n_slots):
    """Per-cluster internal weight, volume and size for labels in ``0..n_slots-1``."""
    inn = np.zeros(n_slots)
    vol = np.zeros(n_slots)
    size = np.zeros(n_slots, dtype=np.int64)
    for i in range(labels.size):
        c = labels[i]
        vol[c] += degree[i]
        size[c] += 1
        for p in range(indptr[i], indptr[i + 1]):
            if labels[indices[p]] == c:
                inn[c] += data[p]
    return inn, vol, size


@jit
def partition_entropy(indptr, indices, data, degree, labels, h1, V):
    """H2 (natural log) of labels in ``0..k-1``."""
    k = labels.max() + 1
    inn, vol, _ = cluster_state(indptr, indices, data, degree, labels, k)
    return entropy_from_clusters(h1, inn, vol, V)


# serial: this module's kernels run once per graph or group, inside parallel loops of their own
_aggregate = serial_twin(aggregate)


@jit
def aggregate_with_loops(indptr, indices, data, degree, labels, k):
    """Each cluster (labels ``0..k-1``) as a super-node, serially, with its self-loop.

    Returns (indptr, indices, data, degree, self-loops) of the k-node graph: a
    super-node's self-loop is its cluster's internal weight, its degree the volume.
    """
    a_indptr, a_indices, a_data, a_degree = _aggregate(indptr, indices, data, degree, labels, k, 1)
    return a_indptr, a_indices, a_data, a_degree, self_loops(a_indptr, a_indices, a_data)


@jit
def first_appearance(flat, n):
    """Nodes ``0..n-1`` in order of first appearance in ``flat``, then the unseen ones."""
    seen = np.zeros(n, dtype=np.bool_)
    out = np.empty(n, dtype=np.int64)
    k = 0
    for v in flat:
        if not seen[v]:
            seen[v] = True
            out[k] = v
            k += 1
    for v in range(n):
        if not seen[v]:
            out[k] = v
            k += 1
    return out


@jit
def gather_links(indptr, indices, data, labels, v, mark, stamp, weight, touched, within, group):
    """Weight from node v to each neighbouring cluster (self-loop excluded).

    Only neighbours j with ``within[j] == group`` count, unless ``group < 0``.
    Fills ``touched[:count]`` with the clusters in order of first appearance in
    v's row and ``weight[c]`` with the weight; ``stamp[c] == mark`` marks them.
    `mark` must differ from every earlier call's on the same `stamp` (a visit
    number, not v: a node visited twice would read its first visit's weights).
    Returns (count, self-loop weight).
    """
    count = 0
    s = 0.0
    for p in range(indptr[v], indptr[v + 1]):
        j = indices[p]
        if j == v:
            s += data[p]
            continue
        if group >= 0 and within[j] != group:
            continue
        c = labels[j]
        if stamp[c] != mark:
            stamp[c] = mark
            weight[c] = 0.0
            touched[count] = c
            count += 1
        weight[c] += data[p]
    return count, s


@jit
def game(indptr, indices, data, degree, order, max_iter, tau, h1, leave_gate):
    """The reference CoDeSEG sweep (natural log), or ECMRNet's greedy sweep.

    Singletons; nodes visited in ``order``; node v moves to the neighbouring
    cluster with the largest gain ``H2(now) - H2(moved)`` when that gain beats
    ``max(0, H2(now) - H2(v alone))`` (``leave_gate``, CoDeSEG) or just 0
    (ECMRNet); the first cluster (in v's row order) wins ties. Stops when a
    sweep moves nothing, when the mean gain of a sweep's moves is at most
    ``tau * h1 / n``, or after ``max_iter`` sweeps.

    Returns (labels, history of H2 after each sweep, converged flag).
    """
    n = degree.size
    V = degree.sum()
    labels = np.arange(n)
    loop = self_loops(indptr, indices, data)
    inn = loop.copy()
    vol = degree.copy()
    stamp = np.full(n, -1, dtype=np.int64)
    visit = -1
    weight = np.zeros(n)
    touched = np.empty(n, dtype=np.int64)
    history = np.empty(min(max_iter, 16))  # grown on demand: max_iter may be huge
    n_iter = 0
    converged = False
    if V <= 0.0:
        return labels, history[:0], True
    while n_iter < max_iter:
        moves = 0
        gain_sum = 0.0
        for v in order:
            a = labels[v]
            visit += 1
            count, s = gather_links(
                indptr, indices, data, labels, v, visit, stamp, weight, touched, labels, -1
            )
            d = degree[v]
            k_a = weight[a] if stamp[a] == visit else 0.0
            rem = f_term(inn[a] - 2.0 * k_a - s, vol[a] - d, V) - f_term(inn[a], vol[a], V)
            detach_gain = -(rem + f_term(s, d, V)) / V
            best_gain = 0.0
            best = -1
            for t in range(count):
                c = touched[t]
                if c == a:
                    continue
                add = f_term(inn[c] + 2.0 * weight[c] + s, vol[c] + d, V) - f_term(
                    inn[c], vol[c], V
                )
                gain = -(rem + add) / V
                if best < 0 or gain > best_gain:
                    best_gain = gain
                    best = c
            if best >= 0 and best_gain > (max(0.0, detach_gain) if leave_gate else 0.0):
                inn[a] -= 2.0 * k_a + s
                vol[a] -= d
                inn[best] += 2.0 * weight[best] + s
                vol[best] += d
                labels[v] = best
                moves += 1
                gain_sum += best_gain
        if n_iter == history.size:
            history = np.concatenate((history, np.empty(history.size)))
        history[n_iter] = entropy_from_clusters(h1, inn, vol, V)
        n_iter += 1
        if moves == 0:
            converged = True
            break
        if gain_sum / moves <= tau * h1 / n:
            converged = True
            break
    return labels, history[:n_iter], converged


@jit
def detachment_serial(indptr, indices, data, degree, labels, k):
    """Detachment costs of a partition, serially (for use inside parallel batch loops)."""
    n = degree.size
    V = degree.sum()
    out = np.zeros(n)
    if V <= 0.0:
        return out
    inn, vol, _ = cluster_state(indptr, indices, data, degree, labels, k)
    for o in range(n):
        c = labels[o]
        k_c, _, s = node_links(indptr, indices, data, labels, o, c, -1)
        out[o] = move_delta_from_sums(inn[c], vol[c], 0.0, 0.0, k_c, 0.0, s, degree[o], V)
    return out


@jit
def overlap(indptr, indices, data, degree, labels, k, gamma):
    """The reference's overlap pass (natural log).

    Node i (in index order) also joins a neighbouring cluster c when its join
    gain ``H2(i alone) - H2(i added to c)`` exceeds ``gamma`` times the mean gain
    of c's members so far (a member's gain is its detachment cost; each join
    adds its gain to c's total and one to its count, as the reference does).
    Returns (node, cluster) pairs of the extra memberships.
    """
    n = degree.size
    V = degree.sum()
    extra_node = np.empty(0, dtype=np.int64)
    extra_cluster = np.empty(0, dtype=np.int64)
    if V <= 0.0:
        return extra_node, extra_cluster
    inn, vol, size = cluster_state(indptr, indices, data, degree, labels, k)
    cost = detachment_serial(indptr, indices, data, degree, labels, k)
    total = np.zeros(k)
    for i in range(n):
        total[labels[i]] += cost[i]
    count = size.astype(np.float64)
    stamp = np.full(k, -1, dtype=np.int64)
    weight = np.zeros(k)
    touched = np.empty(k, dtype=np.int64)
    nodes = []
    clusters = []
    for i in range(n):
        cnt, s = gather_links(
            indptr, indices, data, labels, i, i, stamp, weight, touched, labels, -1
        )
        for t in range(cnt):
            c = touched[t]
            if c == labels[i]:
                continue
            # from a singleton {i} (sums s, d) into c
            d = degree[i]
            join = -move_delta_from_sums(s, d, inn[c], vol[c], 0.0, weight[c], s, d, V)
            if join > gamma * total[c] / count[c]:
                nodes.append(i)
                clusters.append(c)
                total[c] += join
                count[c] += 1.0
    extra_node = np.empty(len(nodes), dtype=np.int64)
    extra_cluster = np.empty(len(nodes), dtype=np.int64)
    for t in range(len(nodes)):
        extra_node[t] = nodes[t]
        extra_cluster[t] = clusters[t]
    return extra_node, extra_cluster


@jit
def dense_to_csr(A):
    """CSR arrays of a dense symmetric matrix (zeros skipped)."""
    n = A.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for j in range(n):
            if A[i, j] != 0.0:
                indptr[i + 1] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    indices = np.empty(indptr[n], dtype=np.int64)
    data = np.empty(indptr[n])
    degree = np.zeros(n)
    p = 0
    for i in range(n):
        for j in range(n):
            if A[i, j] != 0.0:
                indices[p] = j
                data[p] = A[i, j]
                degree[i] += A[i, j]
                p += 1
    return indptr, indices, data, degree


# A polished search on at most this many nodes is exact (``O(3^n)`` subset recursion).
EXACT_MAX_NODES = 10
# ... on at most this many nodes works on a dense matrix (``n * n`` floats).
DENSE_MAX_NODES = 256
# ... keeps the best of this many seeded starts.
POLISH_STARTS = 4


@jit
def polish_seeds(seed):
    """The seeds of a polished search's starts, drawn from ``seed``."""
    state = np.uint64(seed)
    out = np.empty(POLISH_STARTS, dtype=np.uint64)
    for i in range(POLISH_STARTS):
        state, out[i] = splitmix64(state)
    return out


def polish_seeds_py(seed):
    """:func:`polish_seeds` in Python (no kernel to compile)."""
    mask = (1 << 64) - 1
    state = int(seed) & mask
    out = np.empty(POLISH_STARTS, dtype=np.uint64)
    for i in range(POLISH_STARTS):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out[i] = z ^ (z >> 31)
    return out


@jit
def csr_to_dense(indptr, indices, data):
    n = indptr.size - 1
    A = np.zeros((n, n))
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            A[i, indices[p]] += data[p]
    return A


# The three paths of :func:`search`, inlined into it (as ordinary kernels they would add a
# level of linking: numba compiles everything below a kernel again into each caller). Python
# (codeseg) runs the same paths through sepkit/_multilevel.py and dense.best_of_starts, one
# kernel per step, so that it compiles no chain of them.


@jit_inline
def search_exact(indptr, indices, data, degree):
    """The exact optimum (at most ``EXACT_MAX_NODES`` nodes); returns as :func:`search`."""
    V = degree.sum()
    labels = exact_partition(indptr, indices, data, degree)
    h = 0.0
    if V > 0.0:
        lab, k = compact(labels)
        inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
        h = entropy_from_clusters(node_terms(degree, V).sum(), inn, vol, V)
    return labels, np.array([h]), 1, True


@jit_inline
def search_dense(indptr, indices, data, seed, max_rounds, tol):
    """The polished search on a dense matrix (at most ``DENSE_MAX_NODES`` nodes)."""
    labels, _, history, rounds, converged = dense_search(
        csr_to_dense(indptr, indices, data), polish_seeds(seed), max_rounds, tol, False
    )
    return labels, history, rounds, converged


@jit_inline
def search_multilevel(indptr, indices, data, degree, seed, max_rounds, tol, polish):
    """The multilevel search (serial): one start, or with ``polish`` the best of
    ``POLISH_STARTS``."""
    n = degree.size
    V = degree.sum()
    seeds = polish_seeds(seed) if polish else np.array([np.uint64(seed)])
    h1 = node_terms(degree, V).sum() if V > 0.0 else 0.0
    best = np.arange(n)
    best_h = np.inf
    best_history = np.empty(0)
    best_rounds = 0
    best_converged = True
    for r in range(seeds.size):
        labels, history, rounds, converged = multilevel_serial(
            indptr, indices, data, degree, np.arange(n), seeds[r], max_rounds, tol, not polish, 1
        )
        lab, k = compact(labels)
        inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
        h = entropy_from_clusters(h1, inn, vol, V)
        if h < best_h - tol:  # ties within rounding keep the earliest start
            best, best_h = labels, h
            best_history, best_rounds, best_converged = history, rounds, converged
    return best, best_history, best_rounds, best_converged


@jit
def search(indptr, indices, data, degree, seed, max_rounds, tol, polish, n_threads):
    """One start of the multilevel search from singletons (natural log).

    Without ``polish``: ``multilevel`` with the strongest-link refinement, seeded by
    ``seed``. With ``polish``: the exact optimum on at most ``EXACT_MAX_NODES``
    nodes; else the best of ``POLISH_STARTS`` starts with the finer refinement
    (on a dense matrix up to ``DENSE_MAX_NODES`` nodes). Serial, for kernels that run
    one search per graph or group in parallel loops of their own: ``n_threads`` is not
    used (the results never depend on it).
    Returns (labels, history, rounds, converged).
    """
    n = degree.size
    if polish and n <= EXACT_MAX_NODES:
        return search_exact(indptr, indices, data, degree)
    if polish and n <= DENSE_MAX_NODES:
        return search_dense(indptr, indices, data, seed, max_rounds, tol)
    return search_multilevel(indptr, indices, data, degree, seed, max_rounds, tol, polish)
