"""The multilevel search on large graphs: parallel, deterministic and cache-friendly.

- **Locality.** Every level is renumbered by :func:`~sepkit._kernels.levels.prepare_level`
  (windows of consecutive ids, each window's colour classes as contiguous ranges). Each
  coarse level numbers its nodes by first appearance, which keeps the order of the level
  below. Labels go back to the caller's order at the end.
- **Parallel local moves with the same result on any number of threads.** The nodes
  are split into colour classes (no two neighbours share a colour). Within a window,
  the active nodes of one class choose their best move in parallel against the state
  of that moment; the moves are then committed one by one in node order, each
  re-checked against the cluster sums of its moment and taken only while it still
  lowers H2. No two nodes of a class are adjacent, so the link weights each node
  gathered are still exact when it is committed; only the sums of clusters that
  another node of the class changed call for the re-check. Every decision depends on
  the graph and the seed only; the thread count only splits the work.
- **Refinement** (sub-clusters grown inside each cluster from singletons) by the same
  classes, then aggregation (:mod:`sepkit._kernels.levels`): each sub-cluster a super-node.

Each parallel loop runs serially for one thread or below ``PARALLEL_MIN_WORK`` (the
same arithmetic in the same order either way).
"""

import numpy as np

from sepkit._jit import PARALLEL_MIN_WORK, jit, jit_inline, jit_parallel, prange, serial_twin
from sepkit._kernels.candidates import (
    INN,
    LOG,
    VOL,
    F,
    best_join,
    gather,
    join_bounds,
    records,
    refresh,
    scratch,
)
from sepkit._kernels.entropy import entropy_from_clusters, f_term, node_terms
from sepkit._kernels.levels import (
    aggregate,
    cluster_state,
    group_count,
    longest_row,
    prepare_level,
    split_nodes,
)
from sepkit._kernels.partition import compact, shuffle_into

# A group of proposals is split between threads only when it has at least this many nodes.
_MIN_PARALLEL_GROUP = 256


@jit_inline
def _collect(lo, hi, keep, nodes):
    """The nodes of ``lo..hi-1`` whose ``keep`` flag is set, into ``nodes``; clears the flags."""
    count = 0
    for v in range(lo, hi):
        if keep[v]:
            keep[v] = False
            nodes[count] = v
            count += 1
    return count


# ----------------------------------------------------------------------------- local moves


@jit
def _propose_range(
    indptr, indices, data, degree, loop, labels, cl, size, V, tol,
    nodes, lo, hi, target, k_own, k_target, links, touched, low, visit,
):  # fmt: skip
    """Best move of each of ``nodes[lo:hi]`` against the current state (nothing changes).

    ``target[v]``: -1 to stay, ``n`` for a new singleton, else a cluster.
    Returns the last visit stamp used.
    """
    n = degree.size
    for q in range(lo, hi):
        v = nodes[q]
        visit += 1.0
        d = degree[v]
        a = labels[v]
        s = loop[v]
        count = gather(indptr, indices, data, labels, v, links, touched, visit, labels, -1)
        k_a = links[a, 1] - s if links[a, 0] == visit else 0.0
        best = -1
        best_g = 0.0
        if size[a] > 1:  # a new singleton is a real alternative
            best = n
            best_g = f_term(s, d, V)
        best, best_g, k_b = best_join(touched, count, links, low, cl, a, s, d, V, best, best_g, 0.0)
        if best >= 0:
            rem = f_term(cl[a, INN] - 2.0 * k_a - s, cl[a, VOL] - d, V) - cl[a, F]
            if rem + best_g >= -tol * d:
                best = -1
        target[v] = best
        k_own[v] = k_a
        k_target[v] = k_b if best < n else 0.0
    return visit


@jit_parallel
def _propose_chunks(
    indptr, indices, data, degree, loop, labels, cl, size, V, tol,
    nodes, bounds, target, k_own, k_target, links, touched, low, visits,
):  # fmt: skip
    for t in prange(bounds.size - 1):
        visits[t] = _propose_range(
            indptr, indices, data, degree, loop, labels, cl, size, V, tol,
            nodes, bounds[t], bounds[t + 1], target, k_own, k_target,
            links[t], touched[t], low[t], visits[t],
        )  # fmt: skip


@jit
def _mark_range(indptr, indices, labels, moved, lo, hi, active):
    for q in range(lo, hi):
        v = moved[q]
        c = labels[v]
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            if labels[j] != c:
                active[j] = True


@jit_parallel
def _mark_chunks(indptr, indices, labels, moved, bounds, active):
    # Several threads may set the same flag; they all write True, in any order.
    for t in prange(bounds.size - 1):
        _mark_range(indptr, indices, labels, moved, bounds[t], bounds[t + 1], active)


@jit
def local_move(
    indptr, indices, data, degree, loop, labels, inn, vol, size, group_ptr, state, V, tol,
    n_threads, max_sweeps,
):  # fmt: skip
    """Move nodes to their best cluster (or a new singleton) until no move lowers H2.

    A sweep visits the windows in order and, in each, its colour groups (see
    :func:`prepare_level`) in a seeded random order, one order per sweep. The active
    nodes of a group propose a move (in parallel), then the proposals are committed
    in node order, each only if it still lowers ``V * H2`` by more than ``tol *
    degree`` with the sums of that moment. A moved node activates its neighbours
    outside its new cluster; a proposal turned down keeps its node active. Stops when
    a sweep finds no active node, or after ``max_sweeps`` sweeps. ``labels`` use slots
    ``0..n-1``; ``inn``/``vol``/``size`` are updated in place.
    Returns (moves, new RNG state).
    """
    n = degree.size
    parallel = n_threads > 1 and n + indptr[n] >= PARALLEL_MIN_WORK
    parts = n_threads if parallel else 1
    links, touched, low, visits = scratch(parts, n, longest_row(indptr))
    cl = records(inn, vol, V)
    free = np.empty(n, dtype=np.int64)  # stack of empty cluster slots
    n_free = 0
    for c in range(n - 1, -1, -1):
        if size[c] == 0:
            free[n_free] = c
            n_free += 1
    active = np.zeros(n, dtype=np.bool_)
    for v in range(n):
        active[v] = degree[v] > 0.0
    target = np.empty(n, dtype=np.int64)
    k_own = np.empty(n)
    k_target = np.empty(n)
    nodes = np.empty(n, dtype=np.int64)
    moved = np.empty(n, dtype=np.int64)
    changed = np.full(n, -1, dtype=np.int64)  # changed[c] == step: c's sums moved in this step
    n_windows, n_colours = group_count(group_ptr, n)
    colour_order = np.arange(n_colours)
    moves = 0
    step = 0
    for _ in range(max_sweeps):
        state = shuffle_into(colour_order, state)
        visited = 0
        for window in range(n_windows):
            for col in colour_order:
                g = window * n_colours + col
                count = _collect(group_ptr[g], group_ptr[g + 1], active, nodes)
                if count == 0:
                    continue
                visited += count
                step += 1
                if parallel and count >= _MIN_PARALLEL_GROUP:
                    _propose_chunks(
                        indptr, indices, data, degree, loop, labels, cl, size, V, tol,
                        nodes, split_nodes(indptr, nodes, count, parts), target, k_own,
                        k_target, links, touched, low, visits,
                    )  # fmt: skip
                else:
                    visits[0] = _propose_range(
                        indptr, indices, data, degree, loop, labels, cl, size, V, tol,
                        nodes, 0, count, target, k_own, k_target, links[0], touched[0],
                        low[0], visits[0],
                    )  # fmt: skip
                n_moved = 0
                for q in range(count):
                    v = nodes[q]
                    b = target[v]
                    if b < 0:
                        continue
                    a = labels[v]
                    d = degree[v]
                    s = loop[v]
                    k_a = k_own[v]
                    k_b = k_target[v]
                    if changed[a] == step or (b < n and changed[b] == step):
                        # another node of this group changed a or b: re-check with today's sums
                        if b == n and size[a] <= 1:
                            continue
                        rem = f_term(cl[a, INN] - 2.0 * k_a - s, cl[a, VOL] - d, V) - cl[a, F]
                        if b == n:
                            gain = f_term(s, d, V)
                        else:
                            gain = f_term(cl[b, INN] + 2.0 * k_b + s, cl[b, VOL] + d, V) - cl[b, F]
                        if rem + gain >= -tol * d:
                            active[v] = True  # try again next sweep
                            continue
                    if b == n:
                        n_free -= 1
                        b = free[n_free]
                    cl[a, INN] -= 2.0 * k_a + s
                    cl[a, VOL] -= d
                    size[a] -= 1
                    if size[a] == 0:
                        free[n_free] = a
                        n_free += 1
                    cl[b, INN] += 2.0 * k_b + s
                    cl[b, VOL] += d
                    size[b] += 1
                    refresh(cl, a, V)
                    refresh(cl, b, V)
                    changed[a] = step
                    changed[b] = step
                    labels[v] = b
                    moved[n_moved] = v
                    n_moved += 1
                moves += n_moved
                if parallel and n_moved >= _MIN_PARALLEL_GROUP:
                    _mark_chunks(
                        indptr, indices, labels, moved,
                        split_nodes(indptr, moved, n_moved, parts), active,
                    )  # fmt: skip
                else:
                    _mark_range(indptr, indices, labels, moved, 0, n_moved, active)
        if visited == 0:
            break
    for c in range(n):
        inn[c] = cl[c, INN]
        vol[c] = cl[c, VOL]
    return moves, state


# ----------------------------------------------------------------------------- refinement


@jit
def _refine_range(
    indptr, indices, data, degree, loop, labels, sub, cl, V, tol, strongest,
    nodes, lo, hi, target, k_target, links, touched, low, visit,
):  # fmt: skip
    for q in range(lo, hi):
        v = nodes[q]
        visit += 1.0
        d = degree[v]
        s = loop[v]
        count = gather(indptr, indices, data, sub, v, links, touched, visit, labels, labels[v])
        own = sub[v]  # v is alone: its slot gathered only the self-loop
        rem = -f_term(s, d, V)
        best = -1
        best_w = 0.0
        if strongest:
            # the heaviest link among the joins that lower H2 (the first of equal weights)
            for t in range(count):
                c = touched[t]
                w = links[c, 1]
                if c == own or (best >= 0 and w <= best_w):
                    continue
                low_g, high_g, _ = join_bounds(cl[c, INN], cl[c, VOL], cl[c, LOG], 2.0 * w + s, d)
                if rem + low_g >= -tol * d:
                    continue
                if rem + high_g >= -tol * d:
                    g = f_term(cl[c, INN] + 2.0 * w + s, cl[c, VOL] + d, V) - cl[c, F]
                    if rem + g >= -tol * d:
                        continue
                best = c
                best_w = w
        else:
            best, best_g, best_w = best_join(
                touched, count, links, low, cl, own, s, d, V, -1, 0.0, 0.0
            )
            if best >= 0 and rem + best_g >= -tol * d:
                best = -1
        target[v] = best
        k_target[v] = best_w
    return visit


@jit_parallel
def _refine_chunks(
    indptr, indices, data, degree, loop, labels, sub, cl, V, tol, strongest,
    nodes, bounds, target, k_target, links, touched, low, visits,
):  # fmt: skip
    for t in prange(bounds.size - 1):
        visits[t] = _refine_range(
            indptr, indices, data, degree, loop, labels, sub, cl, V, tol, strongest,
            nodes, bounds[t], bounds[t + 1], target, k_target, links[t], touched[t], low[t],
            visits[t],
        )  # fmt: skip


@jit
def refine(
    indptr, indices, data, degree, loop, labels, group_ptr, state, V, tol, strongest, n_threads
):
    """Split each cluster into well-joined sub-clusters (Leiden-style refinement).

    Starting from singletons, each node still alone (groups as in :func:`local_move`,
    one seeded colour order) joins a neighbouring sub-cluster of its own cluster that
    lowers H2: the one that lowers it most, or with ``strongest`` the one it has the
    most weight to. Proposals of one group are made in parallel and committed in node
    order, each re-checked against the sums of that moment.
    Returns (sub-cluster labels in slots ``0..n-1``, new RNG state).
    """
    n = degree.size
    parallel = n_threads > 1 and n + indptr[n] >= PARALLEL_MIN_WORK
    parts = n_threads if parallel else 1
    sub = np.arange(n)
    cl = records(loop, degree, V)
    links, touched, low, visits = scratch(parts, n, longest_row(indptr))
    alone = np.empty(n, dtype=np.bool_)
    for v in range(n):
        alone[v] = degree[v] > 0.0
    target = np.empty(n, dtype=np.int64)
    k_target = np.empty(n)
    nodes = np.empty(n, dtype=np.int64)
    changed = np.full(n, -1, dtype=np.int64)
    n_windows, n_colours = group_count(group_ptr, n)
    colour_order = np.arange(n_colours)
    state = shuffle_into(colour_order, state)
    step = 0
    for window in range(n_windows):
        for col in colour_order:
            g = window * n_colours + col
            count = _collect(group_ptr[g], group_ptr[g + 1], alone, nodes)
            if count == 0:
                continue
            step += 1
            if parallel and count >= _MIN_PARALLEL_GROUP:
                _refine_chunks(
                    indptr, indices, data, degree, loop, labels, sub, cl, V, tol, strongest,
                    nodes, split_nodes(indptr, nodes, count, parts), target, k_target,
                    links, touched, low, visits,
                )  # fmt: skip
            else:
                visits[0] = _refine_range(
                    indptr, indices, data, degree, loop, labels, sub, cl, V, tol, strongest,
                    nodes, 0, count, target, k_target, links[0], touched[0], low[0],
                    visits[0],
                )  # fmt: skip
            for q in range(count):
                v = nodes[q]
                b = target[v]
                if b < 0:
                    continue
                d = degree[v]
                s = loop[v]
                w = k_target[v]
                if changed[b] == step:
                    gain = f_term(cl[b, INN] + 2.0 * w + s, cl[b, VOL] + d, V) - cl[b, F]
                    if gain - f_term(s, d, V) >= -tol * d:
                        continue
                a = sub[v]
                cl[a, INN] = 0.0
                cl[a, VOL] = 0.0
                refresh(cl, a, V)
                cl[b, INN] += 2.0 * w + s
                cl[b, VOL] += d
                refresh(cl, b, V)
                changed[b] = step
                sub[v] = b
                alone[b] = False  # slot b is named after the node it started from
    return sub, state


# ----------------------------------------------------------------------------- the search


@jit
def _descend(
    g_indptr, g_indices, g_data, g_degree, g_loop, groups, labels, state, V, h1, tol, coarse,
    n_threads, hist,
):  # fmt: skip
    """One multilevel descent from ``labels`` (the clusters of level 0, updated in place).

    Local moves, refinement and aggregation, level after level, until a level has one
    node per cluster; H2 after each level is appended to ``hist``.
    Returns (whether a level above the nodes moved anything, new RNG state).
    """
    n = g_degree.size
    part = labels.copy()
    member = np.arange(n)  # level-0 node -> its node on the current level
    moved = False
    level = 0
    while True:
        n_g = g_degree.size
        inn, vol, size = cluster_state(g_indptr, g_indices, g_data, g_degree, part, n_g, n_threads)
        moves, state = local_move(
            g_indptr, g_indices, g_data, g_degree, g_loop, part, inn, vol, size, groups,
            state, V, tol, n_threads, n_g + 1,
        )  # fmt: skip
        moved = moved or (level > 0 and moves > 0)
        level += 1
        hist.append(entropy_from_clusters(h1, inn, vol, V))
        part, k = compact(part)
        if k == n_g:
            break
        sub, state = refine(
            g_indptr, g_indices, g_data, g_degree, g_loop, part, groups, state, V, tol, coarse,
            n_threads,
        )  # fmt: skip
        sub, k_sub = compact(sub)
        if k_sub == n_g:  # refinement merged nothing: aggregate by the clusters
            sub, k_sub = part, k
        c_indptr, c_indices, c_data, c_degree = aggregate(
            g_indptr, g_indices, g_data, g_degree, sub, k_sub, n_threads
        )
        g_indptr, g_indices, g_data, g_degree, g_loop, groups, order = prepare_level(
            c_indptr, c_indices, c_data, c_degree, n_threads
        )
        rank = np.empty(k_sub, dtype=np.int64)
        for i in range(k_sub):
            rank[order[i]] = i
        next_part = np.empty(k_sub, dtype=np.int64)
        for i in range(n_g):
            next_part[rank[sub[i]]] = part[i]
        for i in range(n):
            member[i] = rank[sub[member[i]]]
        part = next_part
    for i in range(n):
        labels[i] = part[member[i]]
    return moved, state


@jit
def multilevel(indptr, indices, data, degree, init, seed, max_rounds, tol, coarse, n_threads):
    """Multilevel 2D-SE minimisation from the partition ``init`` (natural log).

    A round is a descent (local moves, refinement, aggregation, level after level,
    until a level has one node per cluster) followed by moves of single nodes on the
    result, which the upper levels moved in whole groups. Rounds repeat, each from
    the last result, until the upper levels of a descent move nothing or
    ``max_rounds`` is reached. Every level is renumbered by :func:`prepare_level`;
    labels come back in the caller's order. ``coarse`` selects the strongest-link
    refinement (larger sub-clusters: fewer, smaller upper levels).
    Returns (labels, H2 after each level and node pass, rounds, converged).
    """
    n = degree.size
    V = degree.sum()
    labels, _ = compact(init)
    if V <= 0.0:
        return labels, np.empty(0), 0, True
    h1 = node_terms(degree, V).sum()
    l_indptr, l_indices, l_data, l_degree, l_loop, l_groups, l_order = prepare_level(
        indptr, indices, data, degree, n_threads
    )
    part = np.empty(n, dtype=np.int64)
    for i in range(n):
        part[i] = labels[l_order[i]]
    hist = []
    state = np.uint64(seed)
    rounds = 0
    converged = False
    while rounds < max_rounds:
        rounds += 1
        moved, state = _descend(
            l_indptr, l_indices, l_data, l_degree, l_loop, l_groups, part, state, V, h1, tol,
            coarse, n_threads, hist,
        )  # fmt: skip
        part, _ = compact(part)
        inn, vol, size = cluster_state(l_indptr, l_indices, l_data, l_degree, part, n, n_threads)
        local_move(
            l_indptr, l_indices, l_data, l_degree, l_loop, part, inn, vol, size, l_groups,
            state, V, tol, n_threads, n + 1,
        )  # fmt: skip
        hist.append(entropy_from_clusters(h1, inn, vol, V))
        if not moved:
            converged = True
            break
    for i in range(n):
        labels[l_order[i]] = part[i]
    labels, _ = compact(labels)
    return labels, np.array(hist), rounds, converged


# The search as kernels call it (one graph or group per call, on one thread): the same
# source without its parallel kernels. codeseg drives the levels from Python instead
# (sepkit/_multilevel.py).
multilevel_serial = serial_twin(multilevel)
