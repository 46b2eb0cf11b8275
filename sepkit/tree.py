"""Coding trees of any height: their structural entropy, and a search for low-entropy trees.

A coding tree is given by nested partitions, finest first: ``levels[0]`` groups the
vertices, ``levels[1]`` groups the clusters of ``levels[0]``, and so on; the root
sits above the last level. A tree of height k has k - 1 levels. See
``docs/trees.md`` for the formulas and the search.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from sepkit._errors import InvalidLabelsError, InvalidOptionError
from sepkit._jit import serial_launches
from sepkit._labels import as_labels
from sepkit._options import check_bool, check_seed, log_scale
from sepkit._tree_search import _entropy, _padded, _search, _stack
from sepkit.codeseg import codeseg
from sepkit.entropy import structural_entropy_1d
from sepkit.graph import Graph, as_graph

__all__ = ["CodingTree", "coding_tree", "structural_entropy_tree"]

# Deeper trees than this are never useful (a level must at least halve the clusters
# of the one below to change anything): a bound that keeps `height` a plain count.
_MAX_HEIGHT = 64
# height=None adds levels while one lowers the entropy by more than this fraction of it.
HEIGHT_TOL = 1e-6


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
        Distance from the root to the leaves (with ``height=None``, the height chosen).
    history : ndarray of float64, shape (heights tried,)
        ``history[h - 1]``: the entropy of the best tree of height h found on the
        way (``history[0]`` is H1, ``history[1]`` the height-2 partition's H2);
        never increases. ``height`` entries for a given height; with
        ``height=None``, also the first height that did not lower the entropy by
        more than the tolerance (``height + 1`` entries, unless the search
        reached height 64).
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
    height: int | None = None,
    *,
    seed: int | None = None,
    base: float = 2.0,
    n_starts: int = 1,
    polish: bool | None = None,
) -> CodingTree:
    """A coding tree with low structural entropy: of the given height, or of any height.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    height : int or None, default None
        Height of the tree, 1..64: 1 is the root over the leaves (entropy H1),
        2 a partition (the result of :func:`sepkit.codeseg`), 3 a partition and
        a grouping of its clusters, and so on. ``None``: the lowest entropy over
        all heights (Li and Pan's structural entropy of the graph): heights 1,
        2, 3, ... in turn, while a height lowers the entropy by more than a
        millionth of it, up to 64. (Changed: the default was 3 in sepkit
        0.1.0.)
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

    With ``height=None`` the result is the tree of the last height that
    helped; it is within the tolerance of every deeper tree the search finds.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import codeseg, coding_tree
    >>> G = nx.karate_club_graph()
    >>> best = coding_tree(G, seed=0)           # any height
    >>> best.height, round(best.entropy, 4)
    (7, 2.4526)
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
    if height is not None:
        whole = isinstance(height, numbers.Integral) and not isinstance(height, (bool, np.bool_))
        if not whole or not 1 <= height <= _MAX_HEIGHT:
            raise InvalidOptionError(
                f"`height` must be an integer in 1..{_MAX_HEIGHT} or None; got {height!r}"
            )
        height = int(height)
    seed = check_seed(seed)
    check_bool("polish", polish, none=True)
    g = as_graph(G)
    h1 = _entropy(g, np.empty((0, g.n_nodes), dtype=np.int64))
    if height == 1:
        levels, history = [], [h1]
    else:
        part = codeseg(g, seed=seed, n_starts=n_starts, polish=polish)
        h2 = _entropy(g, _stack([part.labels], g.n_nodes))
        if height is not None:
            levels, history, _ = _search(g, part.labels, h2, height, seed, polish)
        elif h1 - h2 <= HEIGHT_TOL * h1:
            levels, history, height = [], [h2], 1  # no partition helps
        else:
            levels, history, height = _search(
                g, part.labels, h2, _MAX_HEIGHT, seed, polish, stop=HEIGHT_TOL
            )
        history = [h1, *history]
    levels = _padded(levels, height - 1, g.n_nodes)
    return CodingTree(
        levels=tuple(levels),
        entropy=(  # the levels are the search's own: no validation
            float(_entropy(g, _stack(levels, g.n_nodes)) * scale)
            if levels
            else structural_entropy_1d(g, base=base)
        ),
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
