"""The multilevel search on small graphs, held as dense matrices.

One start is the scheme of the sparse search (local moves to convergence,
refinement, aggregation, rounds until the upper levels move nothing), with every
node's weight to every cluster kept in an ``n x n`` matrix that a move updates in
``O(n)``: judging a node costs ``O(clusters)`` instead of a pass over its row, and the
work arrays are allocated once for all starts. Small graphs have many local optima
of nearly equal entropy, so the search keeps the best of several seeded starts.
"""

import numpy as np

from sepkit._jit import jit, jit_inline
from sepkit._kernels.candidates import BOUND_MARGIN, join_bounds
from sepkit._kernels.entropy import f_term, total
from sepkit._kernels.partition import shuffle_into


@jit
def _workspace(n):
    mats = np.zeros((3, n, n))  # two level matrices, node-to-cluster weights
    vecs = np.zeros((7, n))
    ints = np.zeros((13, n), dtype=np.int64)
    return mats, vecs, ints


@jit_inline
def _set_f(inn, vol, fc, lv, c, V):
    lv[c] = np.log(vol[c] / V) if vol[c] > 0.0 else 0.0
    fc[c] = inn[c] * lv[c] if inn[c] > 0.0 and vol[c] > 0.0 else 0.0


@jit
def _local_move(M, m, degree, loop, part, K, inn, vol, fc, lv, low, size, nonempty, where,
                free, order, queue, queued, V, tol):  # fmt: skip
    """Local moves to convergence on the level graph ``M[:m, :m]``, labels ``part`` in slots.

    ``K[v, c]`` is v's weight to cluster c (self-loop excluded). Returns the moves made.
    """
    for v in range(m):
        for c in range(m):
            K[v, c] = 0.0
    for c in range(m):
        inn[c] = 0.0
        vol[c] = 0.0
        size[c] = 0
    for v in range(m):
        for j in range(m):
            if j != v:
                K[v, part[j]] += M[v, j]
    for v in range(m):
        c = part[v]
        inn[c] += K[v, c] + loop[v]
        vol[c] += degree[v]
        size[c] += 1
    k = 0
    n_free = 0
    for c in range(m - 1, -1, -1):
        _set_f(inn, vol, fc, lv, c, V)
        if size[c] > 0:
            where[c] = k
            nonempty[k] = c
            k += 1
        else:
            free[n_free] = c
            n_free += 1
    for q in range(m):
        queue[q] = order[q]
        queued[q] = 1
    head = 0
    pending = m
    moves = 0
    while pending > 0:
        v = queue[head]
        head = (head + 1) % m
        pending -= 1
        queued[v] = 0
        d = degree[v]
        if d <= 0.0:
            continue
        a = part[v]
        s = loop[v]
        k_a = K[v, a]
        best = -1
        best_g = 0.0
        if size[a] > 1:  # a new singleton is a real alternative
            best = m
            best_g = f_term(s, d, V)
        # exact values only where the logarithm-free bounds leave a doubt
        best_high = best_g if best >= 0 else np.inf
        scale = 0.0
        for t in range(k):
            c = nonempty[t]
            w = K[v, c]
            if c == a or w <= 0.0:
                continue
            low[t], high, sc = join_bounds(inn[c], vol[c], lv[c], 2.0 * w + s, d)
            if high < best_high:
                best_high = high
                scale = sc
        cut = best_high + BOUND_MARGIN * scale
        for t in range(k):
            c = nonempty[t]
            w = K[v, c]
            if c == a or w <= 0.0 or low[t] > cut + BOUND_MARGIN * abs(low[t]):
                continue
            g = f_term(inn[c] + 2.0 * w + s, vol[c] + d, V) - fc[c]
            if best < 0 or g < best_g:
                best_g = g
                best = c
        if best < 0:
            continue
        rem = f_term(inn[a] - 2.0 * k_a - s, vol[a] - d, V) - fc[a]
        if rem + best_g >= -tol * d:
            continue
        if best == m:
            n_free -= 1
            best = free[n_free]
            where[best] = k
            nonempty[k] = best
            k += 1
        b = best
        inn[a] -= 2.0 * k_a + s
        vol[a] -= d
        size[a] -= 1
        inn[b] += 2.0 * K[v, b] + s
        vol[b] += d
        size[b] += 1
        _set_f(inn, vol, fc, lv, a, V)
        _set_f(inn, vol, fc, lv, b, V)
        if size[a] == 0:  # drop a from the list of clusters
            last = nonempty[k - 1]
            nonempty[where[a]] = last
            where[last] = where[a]
            k -= 1
            free[n_free] = a
            n_free += 1
        part[v] = b
        moves += 1
        for u in range(m):
            x = M[u, v]
            if u == v or x == 0.0:
                continue
            K[u, a] -= x
            K[u, b] += x
            if queued[u] == 0 and part[u] != b:
                queued[u] = 1
                queue[(head + pending) % m] = u
                pending += 1
    return moves


@jit
def _compact(labels, m, remap, out):
    """Relabel ``labels[:m]`` to ``0..k-1`` in order of first appearance into ``out``; returns k."""
    for c in range(m):
        remap[c] = -1
    k = 0
    for i in range(m):
        c = labels[i]
        if remap[c] < 0:
            remap[c] = k
            k += 1
        out[i] = remap[c]
    return k


@jit
def _refine(M, m, degree, loop, part, sub, size, K, inn, vol, order, V, tol, strongest):
    """Sub-clusters grown from singletons inside each cluster (as the sparse ``refine``)."""
    for v in range(m):
        sub[v] = v
        size[v] = 1
        inn[v] = loop[v]
        vol[v] = degree[v]
        for j in range(m):
            K[v, j] = M[v, j] if j != v and part[j] == part[v] else 0.0
    for q in range(m):
        v = order[q]
        a = sub[v]
        d = degree[v]
        if size[a] != 1 or d <= 0.0:
            continue
        s = loop[v]
        rem = -f_term(s, d, V)
        best = -1
        best_num = 0.0
        best_w = 0.0
        for c in range(m):
            w = K[v, c]
            if w <= 0.0 or c == a:
                continue
            num = rem + f_term(inn[c] + 2.0 * w + s, vol[c] + d, V) - f_term(inn[c], vol[c], V)
            if num >= -tol * d:
                continue
            if best < 0 or (w > best_w if strongest else num < best_num):
                best_num = num
                best_w = w
                best = c
        if best < 0:
            continue
        inn[a] = 0.0
        vol[a] = 0.0
        size[a] = 0
        inn[best] += 2.0 * best_w + s
        vol[best] += d
        size[best] += 1
        sub[v] = best
        for u in range(m):
            x = K[u, a]
            if x != 0.0:
                K[u, a] = 0.0
                K[u, best] += x


@jit
def _aggregate(M, m, sub, k, C, degree_out, loop_out):
    """``C[:k, :k]``: the level graph with each sub-cluster collapsed into one node."""
    for p in range(k):
        for q in range(k):
            C[p, q] = 0.0
    for i in range(m):
        p = sub[i]
        for j in range(m):
            C[p, sub[j]] += M[i, j]
    for p in range(k):
        loop_out[p] = C[p, p]
        d = 0.0
        for q in range(k):
            d += C[p, q]
        degree_out[p] = d


@jit
def one_start(A, degree0, loop0, V, state, max_rounds, tol, strongest, mats, vecs, ints):
    """One seeded start on the dense graph A (rounds as in the sparse ``multilevel``).

    Leaves the labels in ``ints[0]``. Returns (rounds, converged, state, ``V * (H2 - H1)``
    after each level and node pass). Written in whole-array steps between kernel calls, so
    that Python can run it as it stands (``one_start.py_func``: see :func:`best_of_starts`).
    """
    hist = [0.0]
    hist.pop()
    n = degree0.size
    labels = ints[0]
    part = ints[1]
    member = ints[2]
    sub = ints[3]
    order = ints[4]
    nonempty = ints[5]
    where = ints[6]
    free = ints[7]
    queue = ints[8]
    queued = ints[9]
    remap = ints[10]
    tmp = ints[11]
    size = ints[12]
    degree = vecs[0]
    loop = vecs[1]
    inn = vecs[2]
    vol = vecs[3]
    fc = vecs[4]
    lv = vecs[5]
    low = vecs[6]
    K = mats[2]
    labels[:] = np.arange(n)
    rounds = 0
    converged = False
    while rounds < max_rounds:
        rounds += 1
        # the descent: local moves, refinement, aggregation, level after level
        M = A
        m = n
        part[:] = labels
        member[:] = np.arange(n)
        degree[:] = degree0
        loop[:] = loop0
        moved = False
        level = 0
        buf = 0
        while True:
            order[:m] = np.arange(m)
            state = np.uint64(shuffle_into(order[:m], state))
            moves = _local_move(
                M, m, degree, loop, part, K, inn, vol, fc, lv, low, size, nonempty, where,
                free, order, queue, queued, V, tol,
            )  # fmt: skip
            moved = moved or (level > 0 and moves > 0)
            level += 1
            hist.append(total(fc[:m]))
            k = _compact(part, m, remap, tmp)
            part[:m] = tmp[:m]
            if k == m:
                break
            state = np.uint64(shuffle_into(order[:m], state))
            _refine(M, m, degree, loop, part, sub, size, K, inn, vol, order, V, tol, strongest)
            k_sub = _compact(sub, m, remap, tmp)
            if k_sub == m:  # refinement merged nothing: aggregate by the clusters
                k_sub = k
                tmp[:m] = part[:m]
            sub[:m] = tmp[:m]
            C = mats[buf]
            _aggregate(M, m, sub, k_sub, C, vol, inn)  # vol, inn as scratch: degrees, loops
            degree[:k_sub] = vol[:k_sub]
            loop[:k_sub] = inn[:k_sub]
            tmp[sub[:m]] = part[:m]  # sub-clusters lie inside clusters: any order
            part[:k_sub] = tmp[:k_sub]
            member[:] = sub[member]
            M = C
            m = k_sub
            buf = 1 - buf
        tmp[:] = part[member]
        # single-node moves on the result: the upper levels moved whole groups
        labels[:] = tmp
        degree[:] = degree0
        loop[:] = loop0
        order[:] = np.arange(n)
        state = np.uint64(shuffle_into(order, state))
        _local_move(
            A, n, degree, loop, labels, K, inn, vol, fc, lv, low, size, nonempty, where, free,
            order, queue, queued, V, tol,
        )  # fmt: skip
        hist.append(total(fc))
        if not moved:
            converged = True
            break
    return rounds, converged, state, np.array(hist)


@jit
def dense_setup(A):
    """Degrees, self-loops, volume and H1 (natural log) of the dense graph A."""
    n = A.shape[0]
    degree = np.zeros(n)
    loop = np.zeros(n)
    for i in range(n):
        loop[i] = A[i, i]
        for j in range(n):
            degree[i] += A[i, j]
    V = degree.sum()
    h1 = 0.0
    for i in range(n):
        if degree[i] > 0.0:
            h1 -= degree[i] / V * np.log(degree[i] / V)
    return degree, loop, V, h1


@jit
def dense_search(A, seeds, max_rounds, tol, strongest):
    """The best of one start per seed on the dense graph A (natural log).

    Returns (labels, H2, history of H2 after each level and node pass of the best
    start, its rounds, converged); ties (within ``tol * V``) keep the earliest seed.
    For kernels (the batch, the coding tree); Python calls :func:`best_of_starts`, which
    does not compile this loop over the starts again.
    """
    n = A.shape[0]
    degree, loop, V, h1 = dense_setup(A)
    best = np.arange(n)
    if V <= 0.0:
        return best, 0.0, np.empty(0), 0, True
    mats, vecs, ints = _workspace(n)
    best_hist = np.empty(0)
    best_total = np.inf
    best_rounds = 0
    best_converged = True
    for r in range(seeds.size):
        rounds, converged, _, hist = one_start(
            A, degree, loop, V, np.uint64(seeds[r]), max_rounds, tol, strongest, mats, vecs, ints
        )
        total = hist[-1]
        # lower by more than rounding: equal partitions must not swap with the weights' scale
        if total < best_total - tol * V:
            best_total = total
            best = ints[0].copy()
            best_hist = h1 + hist / V
            best_rounds = rounds
            best_converged = converged
    return best, h1 + best_total / V, best_hist, best_rounds, best_converged


def best_of_starts(A, seeds, max_rounds, tol, strongest):
    """:func:`dense_search` driven from Python: the same starts, the same result.

    Each start runs :func:`one_start` as Python between its kernels, so a first call
    compiles the local moves, refinement and aggregation but not the start that links them
    all into one module again (about a quarter of ``codeseg``'s first call on a small graph).
    """
    n = A.shape[0]
    degree, loop, V, h1 = dense_setup(A)
    best = np.arange(n)
    if V <= 0.0:
        return best, 0.0, np.empty(0), 0, True
    mats, vecs, ints = _workspace(n)
    best_hist = np.empty(0)
    best_total = np.inf
    best_rounds = 0
    best_converged = True
    for seed in seeds:
        rounds, converged, _, hist = one_start.py_func(
            A, degree, loop, V, np.uint64(seed), max_rounds, tol, strongest, mats, vecs, ints
        )
        total = hist[-1]
        if total < best_total - tol * V:
            best_total = total
            best = ints[0].copy()
            best_hist = h1 + hist / V
            best_rounds = rounds
            best_converged = converged
    return best, h1 + best_total / V, best_hist, best_rounds, best_converged
