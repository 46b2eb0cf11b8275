"""Coding-tree kernels: the entropy of a tree given as nested partitions, and the
regrouping step of the tree search (a 2D search inside every group, in parallel).

Natural log. A tree of L levels below the root is held as ``codes`` (L, n): the
cluster of every vertex at every level, finest first, each level a coarsening of
the one before. The clusters of all levels share flat arrays: level l's clusters
are ``offsets[l] .. offsets[l + 1] - 1``, and ``parent[q]`` is the code (in level
l + 1) of the cluster above flat cluster q (unused for the top level).

With ``in_b`` the weight of the stored entries with both ends below tree node b
(each edge twice, a self-loop once) and ``vol_b`` its volume,

    H^T = H1 + (1/V) sum over tree nodes b other than the leaves and the root of
          in_b * log(vol_b / vol_parent(b)),

the definition's sum of ``-(g_b/V) log(vol_b/vol_parent(b))`` regrouped by node;
for one level it is the identity of H2.
"""

import numpy as np

from sepkit._jit import jit, jit_parallel, prange
from sepkit._kernels.codeseg import aggregate_with_loops, partition_entropy, search
from sepkit._kernels.entropy import cluster_totals, f_term, node_terms
from sepkit._kernels.multilevel import multilevel_serial
from sepkit._kernels.partition import compact, splitmix64

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@jit
def level_sums(indptr, indices, data, degree, codes, offsets, parent):
    """``in`` and ``vol`` of the clusters of every level (flat arrays, see the module).

    Level 0 takes the 2D kernel's sums (so one level gives H2 bit for bit); an entry
    whose ends lie in different level-0 clusters is added at the first level where
    they meet, then every level's sums are passed up to its parents.
    """
    L = codes.shape[0]
    n = degree.size
    inner = np.zeros(offsets[L])
    vol = np.zeros(offsets[L])
    inner0, vol0, _, _ = cluster_totals(indptr, indices, data, degree, codes[0], offsets[1])
    inner[: offsets[1]] = inner0
    vol[: offsets[1]] = vol0
    if L > 1:
        for i in range(n):
            c0 = codes[0, i]
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                if codes[0, j] == c0:
                    continue
                for l in range(1, L):
                    c = codes[l, i]
                    if codes[l, j] == c:
                        inner[offsets[l] + c] += data[p]
                        break
    for l in range(L - 1):
        for q in range(offsets[l], offsets[l + 1]):
            up = offsets[l + 1] + parent[q]
            inner[up] += inner[q]
            vol[up] += vol[q]
    return inner, vol


@jit
def tree_sum(inner, vol, offsets, parent, V):
    """``sum_b in_b log(vol_b / vol_parent(b))`` over the clusters of every level."""
    L = offsets.size - 1
    acc = 0.0
    for l in range(L):
        for q in range(offsets[l], offsets[l + 1]):
            ref = V if l == L - 1 else vol[offsets[l + 1] + parent[q]]
            acc += f_term(inner[q], vol[q], ref)
    return acc


@jit
def tree_entropy(indptr, indices, data, degree, codes, offsets, parent, V):
    """H^T of the tree whose levels are ``codes`` (natural log); H1 for no level."""
    if V <= 0.0:
        return 0.0
    h1 = node_terms(degree, V).sum()
    if codes.shape[0] == 0:
        return h1
    inner, vol = level_sums(indptr, indices, data, degree, codes, offsets, parent)
    return h1 + tree_sum(inner, vol, offsets, parent, V) / V


@jit
def aggregate_loopless(indptr, indices, data, degree, labels, k):
    """The graph of the clusters, without self-loops, each cluster's degree its volume.

    On this graph a 2D search over groupings of the clusters minimises the
    entropy of the tree with one more level above them: a cluster's own internal
    weight is already counted in its own term, so it carries no self-loop.
    """
    a_indptr, a_indices, a_data, a_degree, _ = aggregate_with_loops(
        indptr, indices, data, degree, labels, k
    )
    out_indptr = np.zeros(k + 1, dtype=np.int64)
    out_indices = np.empty(a_indices.size, dtype=np.int64)
    out_data = np.empty(a_indices.size)
    pos = 0
    for c in range(k):
        for p in range(a_indptr[c], a_indptr[c + 1]):
            if a_indices[p] != c:
                out_indices[pos] = a_indices[p]
                out_data[pos] = a_data[p]
                pos += 1
        out_indptr[c + 1] = pos
    return out_indptr, out_indices[:pos].copy(), out_data[:pos].copy(), a_degree


@jit
def _first_seen(labels):
    """Labels of any non-negative values renumbered ``0..k-1`` in order of first appearance."""
    remap = np.full(labels.max() + 1, -1, dtype=np.int64)
    out = np.empty(labels.size, dtype=np.int64)
    k = 0
    for i in range(labels.size):
        c = labels[i]
        if remap[c] < 0:
            remap[c] = k
            k += 1
        out[i] = remap[c]
    return out


@jit
def _group_members(group, n_groups):
    """Nodes sorted by group (stable), each group's start, each node's index in its group."""
    n = group.size
    start = np.zeros(n_groups + 1, dtype=np.int64)
    for i in range(n):
        start[group[i] + 1] += 1
    for g in range(n_groups):
        start[g + 1] += start[g]
    members = np.empty(n, dtype=np.int64)
    local = np.empty(n, dtype=np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        g = group[i]
        members[fill[g]] = i
        local[i] = fill[g] - start[g]
        fill[g] += 1
    return members, start, local


@jit
def _induced(graph, group, g, members, lo, hi, local):
    """CSR of the subgraph group g induces; its nodes keep their full degrees."""
    indptr, indices, data, degree = graph
    m = hi - lo
    count = 0
    for q in range(lo, hi):
        i = members[q]
        for p in range(indptr[i], indptr[i + 1]):
            if group[indices[p]] == g:
                count += 1
    s_indptr = np.zeros(m + 1, dtype=np.int64)
    s_indices = np.empty(count, dtype=np.int64)
    s_data = np.empty(count)
    s_degree = np.empty(m)
    pos = 0
    for q in range(lo, hi):
        i = members[q]
        s_degree[q - lo] = degree[i]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if group[j] == g:
                s_indices[pos] = local[j]
                s_data[pos] = data[p]
                pos += 1
        s_indptr[q - lo + 1] = pos
    return s_indptr, s_indices, s_data, s_degree


@jit
def _regroup_one(graph, group, parts, g, init, options, sub, k_of):
    """The 2D search of group g (see :func:`regroup`); writes its nodes' labels into ``sub``.

    ``graph`` is (indptr, indices, data, degree), ``parts`` (members, start, local) of
    :func:`_group_members`, ``options`` (seed, max_rounds, tol, polish).
    """
    members, start, local = parts
    seed, max_rounds, tol, polish = options
    lo, hi = start[g], start[g + 1]
    if hi == lo:
        return
    sg = _induced(graph, group, g, members, lo, hi, local)
    _, r = splitmix64(np.uint64(seed) + np.uint64(g) * _GOLDEN)
    if init.size == group.size:
        start_labels = np.empty(hi - lo, dtype=np.int64)
        for q in range(lo, hi):
            start_labels[q - lo] = init[members[q]]
        start_labels = _first_seen(start_labels)
        lab, _, _, _ = multilevel_serial(*sg, start_labels, r, max_rounds, tol, False, 1)
        if polish:
            fresh, _, _, _ = search(*sg, r, max_rounds, tol, polish, 1)
            V = sg[3].sum()
            if V > 0.0:
                h1 = node_terms(sg[3], V).sum()
                if partition_entropy(*sg, fresh, h1, V) < partition_entropy(*sg, lab, h1, V) - tol:
                    lab = fresh
    else:
        lab, _, _, _ = search(*sg, r, max_rounds, tol, polish, 1)
    lab, k = compact(lab)
    k_of[g] = k
    for q in range(lo, hi):
        sub[members[q]] = lab[q - lo]


@jit_parallel
def _regroup_chunks(graph, group, parts, n_groups, init, options, sub, k_of):
    for g in prange(n_groups):
        _regroup_one(graph, group, parts, np.int64(g), init, options, sub, k_of)


@jit
def _regroup_setup(group, n_groups, seed, max_rounds, tol, polish):
    """The groups' members, the search options and the output arrays of :func:`regroup`."""
    parts = _group_members(group, n_groups)
    options = (np.uint64(seed), max_rounds, tol, polish)
    sub = np.empty(group.size, dtype=np.int64)
    k_of = np.zeros(n_groups, dtype=np.int64)
    return parts, options, sub, k_of


@jit
def _regroup_labels(group, sub, k_of):
    """Group-local labels ``sub`` made unique over the graph, group by group; their count."""
    n_groups = k_of.size
    first = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        first[g + 1] = first[g] + k_of[g]
    out = np.empty(group.size, dtype=np.int64)
    for i in range(group.size):
        out[i] = first[group[i]] + sub[i]
    return out, first[n_groups]


@jit
def regroup(indptr, indices, data, degree, group, n_groups, init, seed, max_rounds, tol, polish):
    """Partition every group's nodes by a 2D search on the subgraph the group induces.

    The nodes keep their full degrees, so a group's volume is the reference of its
    search: the search minimises ``sum_C in_C log(vol_C / vol_group)``, which is
    what the tree entropy asks of the clusters directly below a fixed tree node.
    ``init`` (one label per node, or empty) starts a warm search from the current
    clusters: the multilevel scheme from ``init`` (never worse than ``init``) and,
    with ``polish``, a fresh search too; the lower is kept. Without ``init``, a
    fresh search. Group g's search is seeded from ``seed`` and g alone, so the
    result does not depend on the thread count or on :func:`regroup_parallel`
    running the groups in parallel instead.

    Returns (labels unique over the graph, group by group, and their count).
    """
    graph = (indptr, indices, data, degree)
    parts, options, sub, k_of = _regroup_setup(group, n_groups, seed, max_rounds, tol, polish)
    for g in range(n_groups):
        _regroup_one(graph, group, parts, g, init, options, sub, k_of)
    return _regroup_labels(group, sub, k_of)


@jit
def regroup_parallel(
    indptr, indices, data, degree, group, n_groups, init, seed, max_rounds, tol, polish
):
    """:func:`regroup` with the groups in parallel (the same result). A separate kernel,
    called for large graphs only, so that small ones never compile the parallel loop."""
    graph = (indptr, indices, data, degree)
    parts, options, sub, k_of = _regroup_setup(group, n_groups, seed, max_rounds, tol, polish)
    _regroup_chunks(graph, group, parts, n_groups, init, options, sub, k_of)
    return _regroup_labels(group, sub, k_of)


@jit
def requeue_neighbours(indptr, indices, v, queue, queued, head, pending):
    """Put v's neighbours that are not queued at the back of the circular queue; new pending."""
    n = queued.size
    for p in range(indptr[v], indptr[v + 1]):
        j = indices[p]
        if not queued[j]:
            queued[j] = True
            queue[(head + pending) % n] = j
            pending += 1
    return pending


@jit
def _tree_state(indptr, indices, data, degree, codes):
    """Per level and cluster slot: size, in, vol, parent, and S (the sum of the children's in)."""
    L, n = codes.shape
    size = np.zeros((L, n), dtype=np.int64)
    inn = np.zeros((L, n))
    vol = np.zeros((L, n))
    S = np.zeros((L, n))
    par = np.full((L, n), -1, dtype=np.int64)
    for i in range(n):
        for l in range(L):
            c = codes[l, i]
            size[l, c] += 1
            vol[l, c] += degree[i]
            if l + 1 < L:
                par[l, c] = codes[l + 1, i]
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            for l in range(L):
                if codes[l, i] == codes[l, j]:
                    for u in range(l, L):
                        inn[u, codes[u, i]] += data[p]
                    break
    for l in range(L - 1):
        for c in range(n):
            if size[l, c] > 0:
                S[l + 1, par[l, c]] += inn[l, c]
    return size, inn, vol, S, par


@jit
def _side_delta(inn, vol, S, l, c, child, k, s, d, sign, ref_old, ref_new, alone):
    """Change of the terms of cluster c (level l) and of its other children when vertex v
    (degree d, self-loop s, weight k to the rest of c) leaves (sign -1) or joins (+1) it.
    ``alone``: v is c's only vertex, so leaving empties it (its new terms are exactly 0,
    whatever rounding left in the running sums)."""
    i_old = inn[l, c]
    v_old = vol[l, c]
    if alone:
        return -f_term(i_old, v_old, ref_old)
    i_new = i_old + sign * (2.0 * k + s)
    v_new = v_old + sign * d
    out = f_term(i_new, v_new, ref_new) - f_term(i_old, v_old, ref_old)
    if l >= 1:
        others = S[l, c] - (inn[l - 1, child] if child >= 0 else 0.0)
        if others > 0.0 and v_new > 0.0 and v_old > 0.0:
            out -= others * np.log(v_new / v_old)
    return out


@jit
def _leaving(inn, vol, S, size, codes, v, ka, s, d, V, out):
    """``out[l, moved]``: the change of v's level-l ancestor's terms when v leaves it, with
    its parent's volume unchanged (moved = 0) or losing d too (moved = 1)."""
    L = codes.shape[0]
    for l in range(L):
        ref = vol[l + 1, codes[l + 1, v]] if l + 1 < L else V
        child = codes[l - 1, v] if l >= 1 else -1
        a = codes[l, v]
        alone = size[l, a] == 1
        out[l, 0] = _side_delta(inn, vol, S, l, a, child, ka[l], s, d, -1.0, ref, ref, alone)
        if l + 1 < L:
            out[l, 1] = _side_delta(
                inn, vol, S, l, a, child, ka[l], s, d, -1.0, ref, ref - d, alone
            )


@jit
def _candidate_delta(inn, vol, S, codes, v, path, t, leave, weight, stamp, visit, s, d, V):
    """``V`` times the entropy change of moving v onto ``path[:t]`` (-1: a new cluster)."""
    L = codes.shape[0]
    delta = 0.0
    for l in range(t):
        b = path[l]
        moved = l + 1 < t  # the parents differ: their volumes change too
        delta += leave[l, 1] if moved else leave[l, 0]
        if l + 1 < L:
            if moved:
                ref_b = vol[l + 1, path[l + 1]] if path[l + 1] >= 0 else 0.0
            else:
                ref_b = vol[l + 1, codes[l + 1, v]]
        else:
            ref_b = V
        if b >= 0:
            kb = weight[l, b] if stamp[l, b] == visit else 0.0
            child = path[l - 1] if l >= 1 else -1
            delta += _side_delta(
                inn, vol, S, l, b, child, kb, s, d, 1.0, ref_b, ref_b + d if moved else ref_b,
                False,
            )  # fmt: skip
        else:
            delta += f_term(s, d, ref_b + d if moved else ref_b)
    return delta


@jit
def tree_local_move(indptr, indices, data, degree, codes, order, V, tol, anchors, max_visits):
    """Move single vertices between the clusters of a whole tree while that lowers its entropy.

    ``codes`` (L, n), labels in ``0..n-1`` at every level, is updated in place. A
    vertex may join any cluster holding one of its neighbours (in any branch of the
    tree: the clusters on the paths from its old and new places up to their common
    ancestor change), or become a new singleton cluster under any of its ancestors
    (with new clusters on the levels in between); with ``anchors``, also a new
    cluster under any ancestor of a neighbour's cluster. Each candidate's exact delta
    costs O(L) after one O(L deg) gathering of the vertex's weight to every cluster
    of its neighbours; every S[l, c] (the in of c's children) keeps the children's
    terms O(1) when c's volume changes. A move is taken when it lowers
    ``V * H^T`` by more than ``tol * degree``; a moved vertex's neighbours are queued
    again, and the queue stops after ``max_visits`` visits (or when it is empty).
    Returns the number of moves.
    """
    L, n = codes.shape
    size, inn, vol, S, par = _tree_state(indptr, indices, data, degree, codes)
    free = np.empty((L, n), dtype=np.int64)
    n_free = np.zeros(L, dtype=np.int64)
    for l in range(L):
        for c in range(n - 1, -1, -1):
            if size[l, c] == 0:
                free[l, n_free[l]] = c
                n_free[l] += 1
    stamp = np.full((L, n), -1, dtype=np.int64)
    weight = np.zeros((L, n))
    touched = np.empty(n, dtype=np.int64)
    ka = np.empty(L)
    path = np.empty(L + 1, dtype=np.int64)
    full = np.empty(L + 1, dtype=np.int64)
    best_path = np.empty(L + 1, dtype=np.int64)
    fresh = np.zeros(L, dtype=np.bool_)
    leave = np.zeros((L, 2))
    queue = order.copy()
    queued = np.ones(n, dtype=np.bool_)
    head = 0
    pending = n
    moves = 0
    visit = 0  # stamps are visit numbers: a stamp from an earlier visit of v is stale
    while pending > 0 and visit < max_visits:
        visit += 1
        v = queue[head]
        head = (head + 1) % n
        pending -= 1
        queued[v] = False
        d = degree[v]
        if d <= 0.0:
            continue
        count = 0
        s = 0.0
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            if j == v:
                s += data[p]
                continue
            for l in range(L):
                c = codes[l, j]
                if stamp[l, c] != visit:
                    stamp[l, c] = visit
                    weight[l, c] = 0.0
                    if l == 0:
                        touched[count] = c
                        count += 1
                weight[l, c] += data[p]
        for l in range(L):
            a = codes[l, v]
            ka[l] = weight[l, a] if stamp[l, a] == visit else 0.0
        _leaving(inn, vol, S, size, codes, v, ka, s, d, V, leave)
        best = -tol * d
        best_t = -1
        # Candidates: a neighbour's cluster at level 0 (m = 0), or new clusters on levels
        # 0..m-1 under an ancestor at level m of a neighbour's cluster (m = 1..t-1) or of
        # v's own (then t = m; m = L: under the root). t: the level where the paths meet.
        for q in range(count + L):
            if q < count:
                b = touched[q]
                if b == codes[0, v]:
                    continue
                t = L
                for l in range(L):
                    full[l] = b
                    if b == codes[l, v]:
                        t = l
                        break
                    if l + 1 < L:
                        b = par[l, b]
                m_lo, m_hi = 0, (t if anchors else 1)
            else:
                t = q - count + 1
                if size[t - 1, codes[t - 1, v]] <= 1:
                    continue  # v is alone below its level-t ancestor already
                m_lo, m_hi = t, t + 1
            for m in range(m_lo, m_hi):
                ok = True
                for l in range(min(m, t)):
                    path[l] = -1
                    ok = ok and n_free[l] > 0
                if not ok:
                    continue
                for l in range(m, t):
                    path[l] = full[l]
                delta = _candidate_delta(
                    inn, vol, S, codes, v, path, t, leave, weight, stamp, visit, s, d, V
                )
                if delta < best:
                    best = delta
                    best_t = t
                    for l in range(t):
                        best_path[l] = path[l]
        if best_t < 0:
            continue
        t = best_t
        for l in range(t):
            fresh[l] = best_path[l] < 0
            if fresh[l]:
                n_free[l] -= 1
                best_path[l] = free[l, n_free[l]]
        for l in range(t):
            if fresh[l]:
                par[l, best_path[l]] = (
                    best_path[l + 1] if l + 1 < t else (codes[t, v] if t < L else -1)
                )
        for l in range(t):
            a = codes[l, v]
            b = best_path[l]
            da = 2.0 * ka[l] + s
            db = 2.0 * (weight[l, b] if not fresh[l] and stamp[l, b] == visit else 0.0) + s
            inn[l, a] -= da
            vol[l, a] -= d
            size[l, a] -= 1
            inn[l, b] += db
            vol[l, b] += d
            size[l, b] += 1
            if l + 1 < L:
                up_a = codes[l + 1, v]
                up_b = best_path[l + 1] if l + 1 < t else up_a
                S[l + 1, up_a] -= da
                S[l + 1, up_b] += db
            if size[l, a] == 0:  # exact zeros, not what rounding left, for its reuse
                inn[l, a] = 0.0
                vol[l, a] = 0.0
                S[l, a] = 0.0
                free[l, n_free[l]] = a
                n_free[l] += 1
        for l in range(t):
            codes[l, v] = best_path[l]
        moves += 1
        pending = requeue_neighbours(indptr, indices, v, queue, queued, head, pending)
    return moves
