"""The coding-tree search of :func:`sepkit.coding_tree`, and the flat arrays of a tree that
its kernels read: chains of nested partitions grown by merges and splits, the best
sub-chain of each height, level-by-level refinement and, on small graphs, kicks.
See ``docs/trees.md``."""

from __future__ import annotations

import numpy as np

from sepkit._jit import PARALLEL_MIN_WORK
from sepkit._kernels import codeseg as _kc
from sepkit._kernels import entropy as _ke
from sepkit._kernels import tree as _k
from sepkit._options import MOVE_TOL, MULTILEVEL_MAX_ROUNDS, POLISH_MAX_NODES
from sepkit.codeseg import codeseg
from sepkit.graph import Graph

# The search takes a new tree only when it lowers the entropy by this fraction of it.
_IMPROVE = 1e-12
# On graphs the polish applies to, chains also start from the 2D partitions of this many
# further seeds (other local optima; it lifted the brute-force hit rate at height 3).
_RESTARTS = 2
# Kicks (perturb, refine briefly, keep if lower) on small graphs: at most this many, each
# refined by this many passes.
_MAX_KICKS = 32
_KICK_PASSES = 2
# Passes of level-by-level refinement (each pass revisits every level once) on graphs the
# polish applies to; larger graphs get one pass (later ones gained about 0.1% of the
# entropy on the planted benchmark graphs, at the cost of a whole pass each).
_REFINE_PASSES = 8
# Vertex moves across the tree visit at most this many vertices per vertex of the graph
# (a move queues its vertex's neighbours again).
_MAX_VISITS = 8


# --- the tree as flat arrays -----------------------------------------------------------------


def _stack(levels, n: int) -> np.ndarray:
    """Levels as an (L, n) int64 array of contiguous codes."""
    out = np.empty((len(levels), n), dtype=np.int64)
    for l, lab in enumerate(levels):
        out[l], _ = _kc.compact(np.ascontiguousarray(lab, dtype=np.int64))
    return out


def _layout(codes: np.ndarray):
    """(offsets, parent) of the flat per-cluster arrays of the tree kernels."""
    L = codes.shape[0]
    ks = codes.max(axis=1) + 1 if codes.size else np.zeros(L, dtype=np.int64)
    offsets = np.zeros(L + 1, dtype=np.int64)
    np.cumsum(ks, out=offsets[1:])
    parent = np.zeros(offsets[-1], dtype=np.int64)
    for l in range(L - 1):
        parent[offsets[l] + codes[l]] = codes[l + 1]
    return offsets, parent


def _entropy(g: Graph, codes: np.ndarray) -> float:
    """Tree entropy in natural log."""
    offsets, parent = _layout(codes)
    return _k.tree_entropy(g.indptr, g.indices, g.data, g.degree, codes, offsets, parent, g.volume)


def _padded(levels: list, count: int, n: int) -> list:
    """``count`` levels: copies of the coarsest fill the top (they change no entropy)."""
    levels = [np.asarray(lab, dtype=np.int64) for lab in _stack(levels, n)]
    top = levels[-1] if levels else np.zeros(n, dtype=np.int64)
    return levels + [top.copy() for _ in range(count - len(levels))]


# --- the search ------------------------------------------------------------------------------


def _search(g: Graph, base: np.ndarray, base_h: float, height: int, seed: int, polish, stop=None):
    """The best trees of heights 2..height: the levels, each height's entropy, the height.

    Every chain starts from a 2D partition: ``base``, and on small graphs also the
    partitions of further seeds (other local optima, so other chains). With ``stop``
    (a fraction), the search ends after the first height that lowers the entropy by
    no more than ``stop`` times the best so far; that height's entropy is the last
    of the history, and the levels returned are those of the height before it.
    """
    best = [base]
    best_h = base_h  # the entropy of the partition ``base``
    history = [best_h]
    small = _polish(polish, g.n_nodes)
    starts = [base]
    for r in range(_RESTARTS if small else 0):
        other = codeseg(g, seed=_derive(seed, 5, r), polish=polish).labels
        if not any(np.array_equal(other, s) for s in starts):
            starts.append(other)
    chains = [_Chain([s]) for s in starts]
    kept = best
    loops = bool(g.self_loops.any())
    for h in range(3, height + 1):
        for r, chain in enumerate(chains):
            chain.grow(g, _derive(seed, 8 * r + 1, h), _derive(seed, 8 * r + 2, h), polish)
            levels, h_new = _best_subchain(g, chain.levels, h - 1)
            if small:  # (large graphs: refined once, at the end)
                levels, h_new = _refine(g, levels, _derive(seed, 8 * r + 3, h), polish, h=h_new)
            if h_new < best_h - _IMPROVE * abs(best_h):
                best, best_h = levels, h_new
        if loops:  # a level of singletons below lowers the terms of self-loops only
            levels = [np.arange(g.n_nodes), *kept]
            h_new = _entropy(g, _stack(levels, g.n_nodes))
            if h_new < best_h - _IMPROVE * abs(best_h):
                best, best_h = levels, h_new
        if small:  # the best tree of the height below, with one more level anywhere
            for r, start in enumerate(_insertions(g, kept, _derive(seed, 6, h), polish)):
                levels, h_new = _refine(g, start, _derive(seed, 8 * r + 7, h), polish)
                if h_new < best_h - _IMPROVE * abs(best_h):
                    best, best_h = levels, h_new
        if small and len(best) > 0:
            levels, h_new = _kicks(
                g, _padded(best, h - 1, g.n_nodes), best_h, _derive(seed, 4, h), polish
            )
            if h_new < best_h - _IMPROVE * abs(best_h):
                best, best_h = levels, h_new
        if stop is not None and history[-1] - best_h <= stop * abs(history[-1]):
            history.append(best_h)
            return (*_finish(g, kept, history, h - 1, seed, polish, small), h - 1)
        kept = best
        history.append(best_h)
    return (*_finish(g, best, history, height, seed, polish, small), height)


def _finish(g: Graph, levels: list, history: list, height: int, seed: int, polish, small: bool):
    """On large graphs, the chosen tree's one refinement (every height's tree on small ones)."""
    if small or height < 3:
        return levels, history
    levels, h = _refine(g, levels, _derive(seed, 3, height), polish, h=history[height - 2])
    if h < history[height - 2]:  # history[height - 2]: this height's entropy (no H1 here)
        history = history[: height - 2] + [h] + [min(x, h) for x in history[height - 1 :]]
    return levels, history


class _Chain:
    """Nested partitions grown one level up (merges) and one down (splits) per height."""

    def __init__(self, levels: list):
        self.levels = levels
        self.up = self.down = True

    def grow(self, g: Graph, seed_up: int, seed_down: int, polish) -> None:
        if self.up:
            up = _merge_step(g, self.levels[-1], seed_up, polish)
            self.up = up is not None
            self.levels = self.levels + [up] if self.up else self.levels
        if self.down:
            down = _split_step(g, self.levels[0], seed_down, polish)
            self.down = down is not None
            self.levels = [down] + self.levels if self.down else self.levels


def _derive(seed: int, step: int, height: int) -> int:
    """A seed for one step of the search, a fixed function of the user's seed."""
    return (seed + 0x9E3779B97F4A7C15 * (4 * height + step)) % 2**64


def _polish(polish, n_nodes: int) -> bool:
    return n_nodes <= POLISH_MAX_NODES if polish is None else bool(polish)


def _regroup(indptr, indices, data, degree, group, n_groups, init, seed, polish, parallel=None):
    # The groups run in parallel on large graphs only: a small graph never compiles the
    # parallel kernel (the results are the same). ``parallel`` forces the choice.
    if parallel is None:
        parallel = n_groups > 1 and degree.size + indices.size >= PARALLEL_MIN_WORK
    kernel = _k.regroup_parallel if parallel else _k.regroup
    return kernel(
        indptr,
        indices,
        data,
        degree,
        group,
        n_groups,
        init,
        np.uint64(seed),
        MULTILEVEL_MAX_ROUNDS,
        MOVE_TOL,
        _polish(polish, degree.size),
    )


_NO_INIT = np.empty(0, dtype=np.int64)


def _merge_step(g: Graph, labels: np.ndarray, seed: int, polish):
    """A level above ``labels`` (its clusters grouped), or None when no grouping helps."""
    k = int(labels.max()) + 1
    if k <= 2:  # two clusters: together or apart, both add nothing
        return None
    agg = _k.aggregate_loopless(g.indptr, g.indices, g.data, g.degree, labels, k)
    up, k_up = _regroup(*agg, np.zeros(k, dtype=np.int64), 1, _NO_INIT, seed, polish)
    return None if k_up in (1, k) else up[labels]


def _split_step(g: Graph, labels: np.ndarray, seed: int, polish):
    """A level below ``labels`` (each cluster split), or None when no split helps."""
    k = int(labels.max()) + 1
    down, k_down = _regroup(
        g.indptr, g.indices, g.data, g.degree, labels, k, _NO_INIT, seed, polish
    )
    return None if k_down == k else down


def _insertions(g: Graph, levels: list, seed: int, polish):
    """``levels`` with one level added at every place: the nodes of a level (or the
    vertices) grouped by a fresh 2D search inside every cluster of the level above (or
    the root). Places where the search groups nothing (or everything) are left out."""
    n = g.n_nodes
    levels = list(_stack(levels, n))
    for p in range(len(levels) + 1):
        if p == 0:
            graph, below = (g.indptr, g.indices, g.data, g.degree), np.arange(n)
        else:
            below = levels[p - 1]
            graph = _k.aggregate_loopless(
                g.indptr, g.indices, g.data, g.degree, below, int(below.max()) + 1
            )
        size = graph[3].size
        group = np.zeros(size, dtype=np.int64)
        n_groups = 1
        if p < len(levels):
            group[below] = levels[p]
            n_groups = int(levels[p].max()) + 1
        new, k = _regroup(*graph, group, n_groups, _NO_INIT, _derive(seed, p, 0), polish)
        if n_groups < k and (k < size or p == 0):  # singletons: wrappers of self-loops
            yield levels[:p] + [new[below]] + levels[p:]


def _best_subchain(g: Graph, chain: list, budget: int):
    """The at most ``budget`` levels of a nested chain with the lowest tree entropy, and
    that entropy.

    The entropy is H1 plus a sum over consecutive chosen levels (a, b) of
    ``cost(a, b) = sum_{C in a} in_C log(vol_C / vol_parent_b(C))`` (b the root
    for the last one), so a shortest-path recursion over the chain finds the best.
    """
    L = len(chain)
    stats = []
    for lab in chain:
        k = int(lab.max()) + 1
        inner, vol, _, _ = _ke.cluster_totals(g.indptr, g.indices, g.data, g.degree, lab, k)
        stats.append((inner, vol))

    def cost(a, b):
        inner, vol = stats[a]
        if b == L:
            ref = np.full(vol.size, g.volume)
        else:
            up = np.empty(vol.size, dtype=np.int64)
            up[chain[a]] = chain[b]
            ref = stats[b][1][up]
        ok = (inner > 0) & (vol > 0)
        return float(np.sum(inner[ok] * np.log(vol[ok] / ref[ok])))

    # best[j][b]: lowest sum of costs over j chosen levels ending at level b
    inf = float("inf")
    best = [[inf] * L for _ in range(budget + 1)]
    prev = [[-1] * L for _ in range(budget + 1)]
    for b in range(L):
        if budget >= 1:
            best[1][b] = 0.0
    for j in range(2, budget + 1):
        for b in range(L):
            for a in range(b):
                if best[j - 1][a] < inf:
                    v = best[j - 1][a] + cost(a, b)
                    if v < best[j][b]:
                        best[j][b], prev[j][b] = v, a
    choice, total = (0, -1), 0.0  # no level at all: H1
    for j in range(1, budget + 1):
        for b in range(L):
            if best[j][b] < inf:
                v = best[j][b] + cost(b, L)
                if v < total:
                    choice, total = (j, b), v
    picked = []
    j, b = choice
    while j > 0:
        picked.append(chain[b])
        b, j = prev[j][b], j - 1
    h1 = _entropy(g, np.empty((0, g.n_nodes), dtype=np.int64))
    return picked[::-1], (h1 + total / g.volume if g.volume > 0 else 0.0)


def _refine(g: Graph, levels: list, seed: int, polish, passes: int | None = None, h=None):
    """Re-search every level inside the clusters of the level above, while the entropy drops.

    Level l's clusters are regrouped from the nodes of level l - 1 (the vertices for
    l = 0), inside each cluster of level l + 1 (the root for the top level), warm
    started from the current clusters. ``h``: the entropy of ``levels``, if known.
    Returns (levels, entropy).
    """
    n = g.n_nodes
    levels = list(_stack(levels, n))  # contiguous codes: no empty cluster below
    h = _entropy(g, _stack(levels, n)) if h is None else h
    small = _polish(polish, n)
    if passes is None:
        passes = _REFINE_PASSES if small else 1
    # On large graphs the vertices' own level is left to the vertex moves below: its
    # group-wise searches cost about a codeseg call and gained <0.05% on planted graphs.
    first = 1 if polish is not True and n > POLISH_MAX_NODES else 0
    for step in range(passes):
        improved = False
        for l in range(first, len(levels)):
            if l == 0:
                graph = (g.indptr, g.indices, g.data, g.degree)
                below = np.arange(n)
            else:
                below = levels[l - 1]
                k_below = int(below.max()) + 1
                graph = _k.aggregate_loopless(g.indptr, g.indices, g.data, g.degree, below, k_below)
            size = graph[3].size
            init = np.empty(size, dtype=np.int64)
            init[below] = levels[l]
            if l + 1 < len(levels):
                group = np.empty(size, dtype=np.int64)
                group[below] = levels[l + 1]
                n_groups = int(levels[l + 1].max()) + 1
            else:
                group, n_groups = np.zeros(size, dtype=np.int64), 1
            new, _ = _regroup(*graph, group, n_groups, init, _derive(seed, step, l), polish)
            candidate = levels[:l] + [new[below]] + levels[l + 1 :]
            h_new = _entropy(g, _stack(candidate, n))
            if h_new < h - _IMPROVE * abs(h):
                levels, h, improved = candidate, h_new, True
        # single vertices across the branches of the tree
        codes = _stack(levels, n)
        order = np.arange(n)
        _kc.shuffle_into(order, np.uint64(_derive(seed, step, -1)))
        if _k.tree_local_move(
            g.indptr, g.indices, g.data, g.degree, codes, order, g.volume, MOVE_TOL, small,
            _MAX_VISITS * n,
        ):  # fmt: skip
            h_new = _entropy(g, _stack(codes, n))
            if h_new < h - _IMPROVE * abs(h):
                levels, h, improved = list(_stack(codes, n)), h_new, True
        if not improved:
            break
    return levels, h


def _kicks(g: Graph, levels: list, h: float, seed: int, polish):
    """Iterated local search for small graphs: perturb, refine, keep the result if lower.

    Perturbations: merge two sibling clusters (two adjacent clusters of a level with
    the same parent; of the top level, any two adjacent ones), or put a vertex with a
    neighbour at every level. The first one that ends lower is kept and the scan
    starts again, up to 4n perturbations in all (at most _MAX_KICKS).
    """
    budget = min(4 * g.n_nodes, _MAX_KICKS)
    improved = True
    while improved and budget > 0:
        improved = False
        for start in _perturbations(g, levels):
            if budget <= 0:
                break
            budget -= 1
            # a short refinement with warm searches only: kicks are many
            cand, h_new = _refine(g, start, _derive(seed, budget, 0), False, _KICK_PASSES)
            if h_new < h - _IMPROVE * abs(h):
                levels, h, improved = cand, h_new, True
                break
    return levels, h


def _perturbations(g: Graph, levels: list):
    """The perturbed trees of :func:`_kicks`, lazily, merges first."""
    if not levels:
        return
    for l in range(len(levels) - 1, -1, -1):
        lab = levels[l]
        k = int(lab.max()) + 1
        a_indptr, a_indices, _, _ = _k.aggregate_loopless(
            g.indptr, g.indices, g.data, g.degree, lab, k
        )
        up = np.zeros(k, dtype=np.int64)
        if l + 1 < len(levels):
            up[lab] = levels[l + 1]
        for c1 in range(k):
            for c2 in a_indices[a_indptr[c1] : a_indptr[c1 + 1]]:
                if c2 > c1 and up[c2] == up[c1]:
                    merged = np.where(lab == c2, c1, lab)
                    yield levels[:l] + [merged] + levels[l + 1 :]
    codes = _stack(levels, g.n_nodes)
    for v in range(g.n_nodes):
        for u in g.indices[g.indptr[v] : g.indptr[v + 1]]:
            if u != v and codes[0, u] != codes[0, v]:
                moved = codes.copy()
                moved[:, v] = codes[:, u]
                yield list(moved)
