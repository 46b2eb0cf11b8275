"""Coding trees of any height: their structural entropy, and a search for low-entropy trees.

A coding tree is given by nested partitions, finest first: ``levels[0]`` groups the
vertices, ``levels[1]`` groups the clusters of ``levels[0]``, and so on; the root
sits above the last level. A tree of height k has k - 1 levels. See
``docs/trees.md`` for the formulas and the search.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from sepkit._errors import InvalidLabelsError, InvalidOptionError
from sepkit._jit import PARALLEL_MIN_WORK, serial_launches
from sepkit._kernels import codeseg as _kc
from sepkit._kernels import entropy as _ke
from sepkit._kernels import tree as _k
from sepkit._labels import as_labels
from sepkit._options import (
    MOVE_TOL,
    MULTILEVEL_MAX_ROUNDS,
    POLISH_MAX_NODES,
    check_bool,
    check_int,
    check_seed,
    log_scale,
)
from sepkit.codeseg import codeseg
from sepkit.entropy import structural_entropy_1d
from sepkit.graph import Graph, as_graph

__all__ = ["CodingTree", "coding_tree", "structural_entropy_tree"]

# Deeper trees than this are never useful (a level must at least halve the clusters
# of the one below to change anything): a bound that keeps `height` a plain count.
_MAX_HEIGHT = 64
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


@dataclass(frozen=True, eq=False)
class CodingTree:
    """The result of :func:`coding_tree`: a coding tree as nested partitions.

    Attributes
    ----------
    levels : tuple of ndarray of int64, shape (n,) each
        ``height - 1`` partitions of the vertices, finest first, each a coarsening
        of the one before; labels contiguous ``0..k-1`` in order of first vertex.
        Levels that would not lower the entropy are copies of the level below.
    entropy : float
        Structural entropy of the tree, in the requested base (recomputed exactly).
    height : int
        Distance from the root to the leaves.
    history : ndarray of float64, shape (height,)
        ``history[h - 1]``: the entropy of the best tree of height h found on the
        way (``history[0]`` is H1, ``history[1]`` the height-2 partition's H2);
        never increases.
    """

    levels: tuple[np.ndarray, ...]
    entropy: float
    height: int
    history: np.ndarray
    nodes: Sequence[Hashable] = field(default=(), repr=False)

    @property
    def n_clusters(self) -> tuple[int, ...]:
        """Clusters per level, finest first."""
        return tuple(int(lab.max()) + 1 for lab in self.levels)

    @property
    def parent(self) -> np.ndarray:
        """The tree as a parent array over its nodes.

        Nodes ``0..n-1`` are the leaves (the vertices, in graph order), then the
        clusters of ``levels[0]``, of ``levels[1]``, ..., and the root last;
        ``parent[root] == -1``.
        """
        n = len(self.nodes)
        ks = self.n_clusters
        first = n + np.concatenate(([0], np.cumsum(ks))).astype(np.int64)
        root = int(first[-1])
        parent = np.full(root + 1, -1, dtype=np.int64)
        below = np.arange(n)  # tree node of every vertex at the current level
        for lab, start in zip(self.levels, first[:-1], strict=True):
            parent[below] = start + lab
            below = start + lab
        parent[np.unique(below)] = root
        return parent

    def to_networkx(self) -> nx.DiGraph:
        """The tree as a ``networkx.DiGraph`` with edges from parent to child.

        Tree nodes are numbered as in :attr:`parent`. Each has a ``level``
        attribute (0 for the leaves, ``height`` for the root); each leaf has a
        ``label``, the vertex's label in the graph.
        """
        parent = self.parent
        n = len(self.nodes)
        level = np.zeros(parent.size, dtype=np.int64)
        start = n
        for depth, k in enumerate(self.n_clusters, start=1):
            level[start : start + k] = depth
            start += k
        level[-1] = self.height
        T = nx.DiGraph()
        T.add_nodes_from((int(t), {"level": int(level[t])}) for t in range(parent.size))
        for i in range(n):
            T.nodes[i]["label"] = self.nodes[i]
        T.add_edges_from((int(p), int(c)) for c, p in enumerate(parent) if p >= 0)
        return T

    def communities(self, level: int = 1) -> list[set]:
        """The clusters of ``levels[level - 1]`` as sets of node labels (networkx's format).

        ``level`` counts from the leaves: 1 is the finest partition, ``height - 1``
        the coarsest.
        """
        if not 1 <= level <= len(self.levels):
            raise InvalidOptionError(
                f"`level` must be in 1..{len(self.levels)} (the tree's levels below the "
                f"root); got {level!r}"
            )
        lab = self.levels[level - 1]
        out: list[set] = [set() for _ in range(int(lab.max()) + 1)]
        for i, c in enumerate(lab):
            out[c].add(self.nodes[i])
        return out


@serial_launches
def structural_entropy_tree(G, levels, *, base: float = 2.0) -> float:
    """Structural entropy of a graph under the coding tree given by nested partitions.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    levels : sequence of partitions, or 2-D array of int
        The tree's levels below the root, finest first; each level a partition
        in any form :func:`sepkit.structural_entropy_2d` accepts, and a
        coarsening of the one before. A tree of height k has k - 1 levels:
        ``[]`` is the height-1 tree, ``[labels]`` the height-2 one.
    base : float, default 2

    Returns
    -------
    float
        ``H^T``; H1 for ``[]``, ``structural_entropy_2d(G, labels)`` for
        ``[labels]``, 0.0 for a graph without edges.

    Notes
    -----
    With ``g_a`` the weight of the edges with exactly one end below tree node
    ``a`` (a leaf's degree for a leaf), ``vol_a`` its volume and ``V`` the
    graph's: ``H^T = - sum_{a != root} (g_a / V) log(vol_a / vol_parent(a))``.
    Computed as ``H1 + (1/V) sum_b in_b log(vol_b / vol_parent(b))`` over the
    clusters b of every level, ``in_b`` the weight inside b, in one pass over
    the edges: O(n k + m d), where d <= k - 1 is the mean number of levels an
    edge climbs before its ends meet.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import structural_entropy_2d, structural_entropy_tree
    >>> G = nx.karate_club_graph()
    >>> fine = [v // 6 for v in G]              # 6 clusters of consecutive nodes
    >>> coarse = [c // 3 for c in fine]         # 2 groups of those clusters
    >>> round(structural_entropy_tree(G, [fine, coarse]), 6)
    3.586004
    >>> structural_entropy_tree(G, [fine]) == structural_entropy_2d(G, fine)
    True
    """
    scale = log_scale(base)
    g = as_graph(G)
    codes = _tree_codes(g, levels)
    if codes.shape[0] == 0:  # the same sum, in the same order, as H1
        return structural_entropy_1d(g, base=base)
    return float(_entropy(g, codes) * scale)


@serial_launches
def coding_tree(
    G,
    height: int = 3,
    *,
    seed: int | None = None,
    base: float = 2.0,
    n_starts: int = 1,
    polish: bool | None = None,
) -> CodingTree:
    """A coding tree of the given height with low structural entropy.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    height : int, default 3
        Height of the tree, 1..64: 1 is the root over the leaves (entropy H1),
        2 a partition (the result of :func:`sepkit.codeseg`), 3 a partition and
        a grouping of its clusters, and so on.
    seed : int or None
        Seed of every random choice (``None`` means 0): the same seed gives the
        same tree, whatever the number of threads.
    base : float, default 2
    n_starts, polish
        Passed to :func:`sepkit.codeseg` for the height-2 partition; ``polish``
        also decides the searches inside the tree (``None``: on (sub)graphs of up
        to 256 nodes).

    Returns
    -------
    CodingTree

    Notes
    -----
    The height-2 tree is ``codeseg(G, seed=seed, n_starts=n_starts,
    polish=polish)``. Each greater height extends a chain of nested partitions
    by one level above (the clusters grouped by a 2D search on the graph of the
    clusters) and one below (every cluster split by a 2D search inside it),
    picks the best ``height - 1`` levels of the chain (dynamic programming),
    then refines the levels one at a time (each re-searched inside the clusters
    of the level above) while the entropy drops. Every step minimises the exact
    tree entropy; the result is never worse than the tree of the height below.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import codeseg, coding_tree
    >>> G = nx.karate_club_graph()
    >>> tree = coding_tree(G, height=3, seed=0)
    >>> tree.n_clusters, round(tree.entropy, 6)
    ((11, 4), 2.779562)
    >>> flat = coding_tree(G, height=2, seed=0)
    >>> bool((flat.levels[0] == codeseg(G, seed=0).labels).all())
    True
    >>> tree.history.round(4)                   # the best of heights 1, 2, 3
    array([4.634 , 3.2287, 2.7796])
    """
    scale = log_scale(base)
    height = check_int("height", height, 1, _MAX_HEIGHT)
    seed = check_seed(seed)
    check_bool("polish", polish, none=True)
    g = as_graph(G)
    h1 = _entropy(g, np.empty((0, g.n_nodes), dtype=np.int64))
    if height == 1:
        levels, history = [], [h1]
    else:
        part = codeseg(g, seed=seed, n_starts=n_starts, polish=polish)
        levels, history = _search(g, part.labels, height, seed, polish)
        history = [h1, *history]
    levels = _padded(levels, height - 1, g.n_nodes)
    return CodingTree(
        levels=tuple(levels),
        entropy=structural_entropy_tree(g, levels, base=base),
        height=height,
        history=np.asarray(history) * scale,
        nodes=g.nodes,
    )


# --- validation ------------------------------------------------------------------------------


def _tree_codes(g: Graph, levels) -> np.ndarray:
    """Validate nested partitions; their codes as an (L, n) array, finest first."""
    if isinstance(levels, np.ndarray) and levels.ndim == 2:
        levels = list(levels)
    elif not isinstance(levels, (list, tuple)):
        raise InvalidLabelsError(
            "`levels` must be a list of partitions, finest first (a 2-D array: one per row); "
            f"got {type(levels).__name__}"
            + (" (wrap a single partition in a list)" if isinstance(levels, np.ndarray) else "")
        )
    codes = [as_labels(g, lab, f"levels[{i}]").codes for i, lab in enumerate(levels)]
    for i in range(len(codes) - 1):
        _check_nested(g, codes[i], codes[i + 1], i)
    return _stack(codes, g.n_nodes)


def _check_nested(g: Graph, fine: np.ndarray, coarse: np.ndarray, i: int) -> None:
    up = np.empty(int(fine.max()) + 1, dtype=np.int64)
    up[fine] = coarse
    bad = np.flatnonzero(up[fine] != coarse)
    if bad.size:
        a = int(bad[0])
        b = int(np.flatnonzero((fine == fine[a]) & (coarse != coarse[a]))[0])
        a, b = sorted((a, b))
        raise InvalidLabelsError(
            f"`levels[{i + 1}]` must be a coarsening of `levels[{i}]`; nodes {g.nodes[a]!r} "
            f"and {g.nodes[b]!r} share a cluster in levels[{i}] but not in levels[{i + 1}]"
        )


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


def _search(g: Graph, base: np.ndarray, height: int, seed: int, polish):
    """The best trees of heights 2..height (their levels, and each height's entropy).

    Every chain starts from a 2D partition: ``base``, and on small graphs also the
    partitions of further seeds (other local optima, so other chains).
    """
    best = [base]
    best_h = _entropy(g, _stack(best, g.n_nodes))
    history = [best_h]
    small = _polish(polish, g.n_nodes)
    starts = [base]
    for r in range(_RESTARTS if small else 0):
        other = codeseg(g, seed=_derive(seed, 5, r), polish=polish).labels
        if not any(np.array_equal(other, s) for s in starts):
            starts.append(other)
    chains = [_Chain([s]) for s in starts]
    for h in range(3, height + 1):
        for r, chain in enumerate(chains):
            chain.grow(g, _derive(seed, 8 * r + 1, h), _derive(seed, 8 * r + 2, h), polish)
            start = _best_subchain(g, chain.levels, h - 1)
            levels, h_new = _refine(g, start, _derive(seed, 8 * r + 3, h), polish)
            if h_new < best_h - _IMPROVE * abs(best_h):
                best, best_h = levels, h_new
        if small and len(best) > 0:
            levels, h_new = _kicks(
                g, _padded(best, h - 1, g.n_nodes), best_h, _derive(seed, 4, h), polish
            )
            if h_new < best_h - _IMPROVE * abs(best_h):
                best, best_h = levels, h_new
        history.append(best_h)
    return best, history


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


def _best_subchain(g: Graph, chain: list, budget: int) -> list:
    """The at most ``budget`` levels of a nested chain with the lowest tree entropy.

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
    return picked[::-1]


def _refine(g: Graph, levels: list, seed: int, polish, passes: int | None = None):
    """Re-search every level inside the clusters of the level above, while the entropy drops.

    Level l's clusters are regrouped from the nodes of level l - 1 (the vertices for
    l = 0), inside each cluster of level l + 1 (the root for the top level), warm
    started from the current clusters. Returns (levels, entropy).
    """
    n = g.n_nodes
    levels = list(_stack(levels, n))  # contiguous codes: no empty cluster below
    h = _entropy(g, _stack(levels, n))
    small = _polish(polish, n)
    if passes is None:
        passes = _REFINE_PASSES if small else 1
    for step in range(passes):
        improved = False
        for l in range(len(levels)):
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
            g.indptr, g.indices, g.data, g.degree, codes, order, g.volume, MOVE_TOL, small
        ):
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
