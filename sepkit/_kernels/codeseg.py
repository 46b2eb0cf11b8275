"""CoDeSEG kernels: the reference game sweep, multilevel local moving, refinement, aggregation.

All arithmetic is float64 in natural logs. A partition is held as per-cluster sums
``inn`` (internal weight, each internal edge twice, self-loops once) and ``vol``
(volume); moving a node changes two clusters' sums in O(1), so a move's delta is
O(degree). Randomness comes only from an explicit seed (splitmix64), so results
are identical on every machine and thread count.
"""

import numpy as np

from sepkit._jit import jit, jit_parallel, prange
from sepkit._kernels.entropy import (
    entropy_from_clusters,
    f_term,
    move_delta_from_sums,
    node_links,
    node_terms,
)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@jit
def splitmix64(state):
    """One step of splitmix64: returns (new state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@jit
def shuffle_into(order, state):
    """Fisher-Yates shuffle of ``order`` in place; returns the new RNG state."""
    for i in range(order.size - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return state


@jit
def self_loops(indptr, indices, data):
    n = indptr.size - 1
    out = np.zeros(n)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            if indices[p] == i:
                out[i] += data[p]
    return out


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
def compact(labels):
    """Relabel to ``0..k-1`` in order of first appearance; returns (labels, k)."""
    n = labels.size
    remap = np.full(n, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        c = labels[i]
        if remap[c] < 0:
            remap[c] = k
            k += 1
        out[i] = remap[c]
    return out, k


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
def gather_links(indptr, indices, data, labels, v, stamp, weight, touched, within, group):
    """Weight from node v to each neighbouring cluster (self-loop excluded).

    Only neighbours j with ``within[j] == group`` count, unless ``group < 0``.
    Fills ``touched[:count]`` with the clusters in order of first appearance in
    v's row and ``weight[c]`` with the weight; ``stamp[c] == v`` marks them.
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
        if stamp[c] != v:
            stamp[c] = v
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
            count, s = gather_links(
                indptr, indices, data, labels, v, stamp, weight, touched, labels, -1
            )
            d = degree[v]
            k_a = weight[a] if stamp[a] == v else 0.0
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
def local_move(indptr, indices, data, degree, loop, labels, inn, vol, size, order, V, tol):
    """Move nodes to their best cluster (or a new singleton) until no move lowers H2.

    A queue, seeded with ``order``, holds the nodes to visit; when a node moves,
    its neighbours outside its new cluster are queued again. A move is taken
    when it lowers ``V * H2`` by more than ``tol * degree``. ``labels`` use
    slots ``0..n-1``; ``inn``/``vol``/``size`` are updated in place.
    Returns the number of moves.
    """
    n = degree.size
    stamp = np.full(n, -1, dtype=np.int64)
    weight = np.zeros(n)
    touched = np.empty(n, dtype=np.int64)
    queue = order.copy()
    queued = np.ones(n, dtype=np.bool_)
    free = np.empty(n, dtype=np.int64)  # stack of empty cluster slots
    n_free = 0
    for c in range(n - 1, -1, -1):
        if size[c] == 0:
            free[n_free] = c
            n_free += 1
    # f(inn, vol) of every cluster, kept current: one log per candidate instead of two
    fc = np.empty(n)
    for c in range(n):
        fc[c] = f_term(inn[c], vol[c], V)
    head = 0
    pending = n
    moves = 0
    while pending > 0:
        v = queue[head]
        head = (head + 1) % n
        pending -= 1
        queued[v] = False
        d = degree[v]
        if d <= 0.0:
            continue
        a = labels[v]
        count, s = gather_links(
            indptr, indices, data, labels, v, stamp, weight, touched, labels, -1
        )
        k_a = weight[a] if stamp[a] == v else 0.0
        rem = f_term(inn[a] - 2.0 * k_a - s, vol[a] - d, V) - fc[a]
        best_num = 0.0
        best = -1
        if size[a] > 1:  # a new singleton is a real alternative
            best_num = rem + f_term(s, d, V)
            best = n  # marker: take a free slot
        for t in range(count):
            c = touched[t]
            if c == a:
                continue
            num = rem + f_term(inn[c] + 2.0 * weight[c] + s, vol[c] + d, V) - fc[c]
            if best < 0 or num < best_num:
                best_num = num
                best = c
        if best < 0 or best_num >= -tol * d:
            continue
        if best == n:
            n_free -= 1
            best = free[n_free]
            k_b = 0.0
        else:
            k_b = weight[best]
        inn[a] -= 2.0 * k_a + s
        vol[a] -= d
        size[a] -= 1
        if size[a] == 0:
            free[n_free] = a
            n_free += 1
        inn[best] += 2.0 * k_b + s
        vol[best] += d
        size[best] += 1
        fc[a] = f_term(inn[a], vol[a], V)
        fc[best] = f_term(inn[best], vol[best], V)
        labels[v] = best
        moves += 1
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            if not queued[j] and labels[j] != best:
                queued[j] = True
                queue[(head + pending) % n] = j
                pending += 1
    return moves


@jit
def refine(indptr, indices, data, degree, loop, labels, order, V, tol, strongest):
    """Split each cluster into well-joined sub-clusters (Leiden-style refinement).

    Starting from singletons, each node still alone (visited in ``order``)
    merges into a neighbouring sub-cluster of its own cluster that lowers H2:
    the one that lowers it most, or with ``strongest`` the one it has the most
    weight to (larger sub-clusters, so the next level is smaller and faster).
    Returns sub-cluster labels in slots ``0..n-1``.
    """
    n = degree.size
    sub = np.arange(n)
    inn = loop.copy()
    vol = degree.copy()
    size = np.ones(n, dtype=np.int64)
    stamp = np.full(n, -1, dtype=np.int64)
    weight = np.zeros(n)
    touched = np.empty(n, dtype=np.int64)
    for v in order:
        a = sub[v]
        d = degree[v]
        if size[a] != 1 or d <= 0.0:
            continue
        # links to the sub-clusters of v's own cluster only
        count, s = gather_links(
            indptr, indices, data, sub, v, stamp, weight, touched, labels, labels[v]
        )
        rem = -f_term(s, d, V)
        best_num = 0.0
        best_w = 0.0
        best = -1
        for t in range(count):
            c = touched[t]
            num = (
                rem
                + f_term(inn[c] + 2.0 * weight[c] + s, vol[c] + d, V)
                - f_term(inn[c], vol[c], V)
            )
            if num >= -tol * d:
                continue
            if best < 0 or (weight[c] > best_w if strongest else num < best_num):
                best_num = num
                best_w = weight[c]
                best = c
        if best < 0:
            continue
        inn[a] = 0.0
        vol[a] = 0.0
        size[a] = 0
        inn[best] += 2.0 * weight[best] + s
        vol[best] += d
        size[best] += 1
        sub[v] = best
    return sub


@jit
def aggregate(indptr, indices, data, degree, labels, k):
    """Collapse each cluster into a super-node.

    The super-node's self-loop is the cluster's internal weight and its degree
    the cluster's volume, so H2 of any partition of the super-nodes equals H2
    of the induced partition of the original nodes.
    Returns (indptr, indices, data, degree, self-loops) of the k-node graph.
    """
    n = degree.size
    start = np.zeros(k + 1, dtype=np.int64)
    for i in range(n):
        start[labels[i] + 1] += 1
    for c in range(k):
        start[c + 1] += start[c]
    members = np.empty(n, dtype=np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        c = labels[i]
        members[fill[c]] = i
        fill[c] += 1
    new_indptr = np.zeros(k + 1, dtype=np.int64)
    new_indices = np.empty(indices.size, dtype=np.int64)
    new_data = np.empty(indices.size)
    new_degree = np.zeros(k)
    new_loop = np.zeros(k)
    stamp = np.full(k, -1, dtype=np.int64)
    acc = np.zeros(k)
    touched = np.empty(k, dtype=np.int64)
    pos = 0
    for c in range(k):
        count = 0
        for q in range(start[c], start[c + 1]):
            i = members[q]
            new_degree[c] += degree[i]
            for p in range(indptr[i], indptr[i + 1]):
                e = labels[indices[p]]
                if stamp[e] != c:
                    stamp[e] = c
                    acc[e] = 0.0
                    touched[count] = e
                    count += 1
                acc[e] += data[p]
        for t in range(count):
            e = touched[t]
            new_indices[pos] = e
            new_data[pos] = acc[e]
            pos += 1
            if e == c:
                new_loop[c] = acc[e]
        new_indptr[c + 1] = pos
    return new_indptr, new_indices[:pos].copy(), new_data[:pos].copy(), new_degree, new_loop


@jit
def multilevel(indptr, indices, data, degree, init, seed, max_rounds, tol, coarse):
    """Multilevel 2D-SE minimisation from the partition ``init`` (natural log).

    One round: local moves to convergence on the current graph, refinement of
    each cluster into sub-clusters, aggregation by the sub-clusters (clusters
    carried over as the next level's start), repeated until a level has one
    node per cluster. Rounds restart from the original graph with the result
    until a round's upper levels move nothing (its result is then the node-level
    local optimum the round began with) or ``max_rounds`` is reached. ``coarse``
    selects the strongest-link refinement (faster on large graphs).
    Returns (labels, history of H2 after each level, rounds, converged).
    """
    n = degree.size
    V = degree.sum()
    labels, _ = compact(init)
    history = np.empty(0)
    if V <= 0.0:
        return labels, history, 0, True
    h1 = node_terms(degree, V).sum()
    loop0 = self_loops(indptr, indices, data)
    hist = []
    state = np.uint64(seed)
    rounds = 0
    converged = False
    while rounds < max_rounds:
        rounds += 1
        g_indptr, g_indices, g_data, g_degree, g_loop = indptr, indices, data, degree, loop0
        part = labels.copy()
        member = np.arange(n)
        moved = False  # did a level above the nodes move anything?
        level = 0
        while True:
            n_g = g_degree.size
            inn, vol, size = cluster_state(g_indptr, g_indices, g_data, g_degree, part, n_g)
            order = np.arange(n_g)
            state = shuffle_into(order, state)
            moves = local_move(
                g_indptr, g_indices, g_data, g_degree, g_loop, part, inn, vol, size, order, V, tol
            )
            moved = moved or (level > 0 and moves > 0)
            level += 1
            hist.append(entropy_from_clusters(h1, inn, vol, V))
            part, k = compact(part)
            if k == n_g:
                break
            state = shuffle_into(order, state)
            sub, k_sub = compact(
                refine(g_indptr, g_indices, g_data, g_degree, g_loop, part, order, V, tol, coarse)
            )
            if k_sub == n_g:  # refinement merged nothing: aggregate by the clusters
                sub, k_sub = part, k
            next_part = np.empty(k_sub, dtype=np.int64)
            for i in range(n_g):
                next_part[sub[i]] = part[i]
            g_indptr, g_indices, g_data, g_degree, g_loop = aggregate(
                g_indptr, g_indices, g_data, g_degree, sub, k_sub
            )
            for i in range(n):
                member[i] = sub[member[i]]
            part = next_part
        for i in range(n):
            labels[i] = part[member[i]]
        labels, _ = compact(labels)
        if not moved:
            converged = True
            break
    return labels, np.array(hist), rounds, converged


@jit
def partition_entropy(indptr, indices, data, degree, labels, h1, V):
    """H2 (natural log) of labels in ``0..k-1``."""
    k = labels.max() + 1
    inn, vol, _ = cluster_state(indptr, indices, data, degree, labels, k)
    return entropy_from_clusters(h1, inn, vol, V)


@jit
def search(indptr, indices, data, degree, seed, max_rounds, tol, polish):
    """Multilevel from singletons; with ``polish``, also from one cluster, then kicks.

    Without ``polish`` (large graphs) the refinement is the coarse, faster one.

    A kick merges two adjacent clusters of the best partition so far and runs
    the multilevel scheme from there; it is kept when the result is lower.
    Kicks repeat until none of the adjacent pairs helps (iterated local search,
    meant for small graphs). Returns (labels, history, rounds, converged).
    """
    n = degree.size
    V = degree.sum()
    labels, history, rounds, converged = multilevel(
        indptr, indices, data, degree, np.arange(n), seed, max_rounds, tol, not polish
    )
    if not polish or V <= 0.0:
        return labels, history, rounds, converged
    h1 = node_terms(degree, V).sum()
    best_h = partition_entropy(indptr, indices, data, degree, labels, h1, V)
    budget = 4 * n
    # H2 after each improvement: the one-cluster start and every kept kick
    gains = np.empty(budget + 1)
    n_gains = 0
    state = np.uint64(seed) ^ _GOLDEN
    state, r = splitmix64(state)
    lab, _, _, _ = multilevel(
        indptr, indices, data, degree, np.zeros(n, dtype=np.int64), r, max_rounds, tol, False
    )
    h = partition_entropy(indptr, indices, data, degree, lab, h1, V)
    if h < best_h - tol:
        best_h = h
        labels = lab
        gains[n_gains] = h
        n_gains += 1
    improved = True
    while improved and budget > 0:
        improved = False
        k = labels.max() + 1
        c_indptr, c_indices, _, _, _ = aggregate(indptr, indices, data, degree, labels, k)
        for c1 in range(k):
            for p in range(c_indptr[c1], c_indptr[c1 + 1]):
                c2 = c_indices[p]
                if c2 <= c1 or budget <= 0:
                    continue
                budget -= 1
                init = labels.copy()
                for i in range(n):
                    if init[i] == c2:
                        init[i] = c1
                state, r = splitmix64(state)
                lab, _, _, _ = multilevel(
                    indptr, indices, data, degree, init, r, max_rounds, tol, False
                )
                h = partition_entropy(indptr, indices, data, degree, lab, h1, V)
                if h < best_h - tol:
                    best_h = h
                    labels = lab
                    gains[n_gains] = h
                    n_gains += 1
                    improved = True
                    break
            if improved:
                break
    return labels, np.concatenate((history, gains[:n_gains])), rounds, converged


@jit_parallel
def search_starts(indptr, indices, data, degree, seeds, max_rounds, tol, polish):
    """``search`` once per seed, in parallel; returns every start's labels and H2."""
    n_starts = seeds.size
    n = degree.size
    all_labels = np.empty((n_starts, n), dtype=np.int64)
    entropy = np.empty(n_starts)
    rounds = np.empty(n_starts, dtype=np.int64)
    converged = np.empty(n_starts, dtype=np.bool_)
    V = degree.sum()
    h1 = node_terms(degree, V).sum() if V > 0.0 else 0.0
    for r in prange(n_starts):
        lab, _, rounds[r], converged[r] = search(
            indptr, indices, data, degree, seeds[r], max_rounds, tol, polish
        )
        all_labels[r] = lab
        k = lab.max() + 1
        inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
        entropy[r] = entropy_from_clusters(h1, inn, vol, V)
    return all_labels, entropy, rounds, converged


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
        cnt, s = gather_links(indptr, indices, data, labels, i, stamp, weight, touched, labels, -1)
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


@jit
def best_of_starts(indptr, indices, data, degree, method, seeds, max_iter, tau, tol, polish):
    """Run one method once per seed (serially) and keep the lowest H2 (first on ties).

    ``method`` 0 (game) or 2 (sweep) in a seeded random order, 1 is multilevel.
    Returns (labels, entropy) in natural log.
    """
    n = degree.size
    V = degree.sum()
    h1 = node_terms(degree, V).sum() if V > 0.0 else 0.0
    best = np.arange(n)
    best_h = np.inf
    for r in range(seeds.size):
        if method != 1:
            order = np.arange(n)
            shuffle_into(order, np.uint64(seeds[r]))
            lab, _, _ = game(indptr, indices, data, degree, order, max_iter, tau, h1, method == 0)
        else:
            lab, _, _, _ = search(indptr, indices, data, degree, seeds[r], max_iter, tol, polish)
        lab, k = compact(lab)
        inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
        h = entropy_from_clusters(h1, inn, vol, V)
        if h < best_h:
            best_h = h
            best = lab
    return best, (best_h if V > 0.0 else 0.0)


@jit_parallel
def batch(adjacency, method, order, seeds, max_iter, tau, tol, polish):
    """Partition every matrix of a (B, n, n) stack; returns labels, H2, detachment costs.

    ``method`` 0 (game) or 2 (sweep): in ``order`` (when ``seeds`` is empty) or in
    seeded random orders; 1: multilevel with ``seeds``. One graph per parallel iteration.
    """
    B, n, _ = adjacency.shape
    labels = np.empty((B, n), dtype=np.int64)
    entropy = np.empty(B)
    detachment = np.empty((B, n))
    for b in prange(B):
        indptr, indices, data, degree = dense_to_csr(adjacency[b])
        if method != 1 and seeds.size == 0:
            V = degree.sum()
            h1 = node_terms(degree, V).sum() if V > 0.0 else 0.0
            lab, _, _ = game(indptr, indices, data, degree, order, max_iter, tau, h1, method == 0)
            lab, k = compact(lab)
            inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
            h = entropy_from_clusters(h1, inn, vol, V)
        else:
            lab, h = best_of_starts(
                indptr, indices, data, degree, method, seeds, max_iter, tau, tol, polish
            )
            k = lab.max() + 1
        labels[b] = lab
        entropy[b] = h
        detachment[b] = detachment_serial(indptr, indices, data, degree, lab, k)
    return labels, entropy, detachment
