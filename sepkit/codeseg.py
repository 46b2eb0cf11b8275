"""CoDeSEG: partitions that minimise two-dimensional structural entropy.

Three methods share one set of O(degree) move deltas:

- ``"game"`` reproduces the reference CoDeSEG sweep (Xian et al., WWW 2025)
  exactly, in float64;
- ``"sweep"`` is the greedy sweep of ECMRNet's published pruning: a node moves
  whenever a move lowers H2, with no stopping threshold;
- ``"multilevel"`` (default) adds moves to new singletons, Leiden-style
  refinement, aggregation into super-nodes and seeded restarts, and reaches far
  lower entropy.

``codeseg_batch`` runs either on a stack of small dense graphs in one compiled,
parallel call.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import networkx as nx
import numba
import numpy as np
import scipy.sparse as sp

from sepkit import _multilevel
from sepkit._errors import InvalidOptionError
from sepkit._jit import serial_launches
from sepkit._kernels import batch as _kb
from sepkit._kernels import codeseg as _k
from sepkit._kernels import entropy as _ke
from sepkit._kernels import fixed_k as _kf
from sepkit._options import (
    MOVE_TOL,
    MULTILEVEL_MAX_ROUNDS,
    POLISH_MAX_NODES,
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_seed,
    log_scale,
    seed_sequence,
)
from sepkit.graph import Graph, as_graph, check_dense_stack

__all__ = ["BatchPartition", "Partition", "codeseg", "codeseg_batch"]

_METHODS = ("game", "multilevel", "sweep")
_ORDERS = ("index", "edges", "random")
_GAME_MAX_ITER = 5
_GAME_TAU = 0.3
_SWEEP_MAX_ITER = 10
# One seed per start is held in memory: a bound that keeps n_starts an honest count.
_MAX_STARTS = 2**20


@dataclass(frozen=True, eq=False)
class Partition:
    """The result of :func:`codeseg`.

    Attributes
    ----------
    labels : ndarray of int64, shape (n,)
        Cluster of every node, contiguous ``0..k-1`` in order of first node.
    entropy : float
        H2 of ``labels`` in the requested base (recomputed exactly).
    n_clusters : int
    n_iter : int
        Sweeps (``"game"``, ``"sweep"``) or rounds of the multilevel scheme.
    history : ndarray of float64
        H2 after each sweep (game, sweep) or each level (multilevel); never increases.
    converged : bool
        True when a stopping rule ended the search, False when ``max_iter`` did.
    memberships : tuple of tuples or None
        With ``overlap=True``: the clusters of every node, its own first.
    """

    labels: np.ndarray
    entropy: float
    n_clusters: int
    n_iter: int
    history: np.ndarray
    converged: bool
    memberships: tuple[tuple[int, ...], ...] | None = None
    nodes: Sequence[Hashable] = field(default=(), repr=False)

    def communities(self, *, overlapping: bool = False) -> list[set]:
        """Clusters as sets of the graph's original node labels (networkx's format).

        With ``overlapping=True`` (after ``overlap=True``), a node appears in
        every cluster it belongs to.
        """
        out: list[set] = [set() for _ in range(self.n_clusters)]
        if overlapping:
            if self.memberships is None:
                raise InvalidOptionError(
                    "`overlapping=True` needs a partition computed with overlap=True; "
                    "got one without memberships"
                )
            for i, clusters in enumerate(self.memberships):
                for c in clusters:
                    out[c].add(self.nodes[i])
        else:
            for i, c in enumerate(self.labels):
                out[c].add(self.nodes[i])
        return out


@dataclass(frozen=True, eq=False)
class BatchPartition:
    """The result of :func:`codeseg_batch`: one partition per matrix of the stack.

    Attributes
    ----------
    labels : ndarray of int64, shape (B, n)
    entropy : ndarray of float64, shape (B,)
        H2 of each partition, in the requested base.
    detachment : ndarray of float64, shape (B, n)
        Detachment costs of the final partitions, in the requested base.
    n_clusters : ndarray of int64, shape (B,)
    """

    labels: np.ndarray
    entropy: np.ndarray
    detachment: np.ndarray
    n_clusters: np.ndarray


@serial_launches
def codeseg(
    G,
    *,
    method: str = "multilevel",
    seed: int | None = None,
    max_iter: int | None = None,
    tau: float | None = None,
    base: float = 2.0,
    order=None,
    overlap: bool = False,
    gamma: float = 1.0,
    n_starts: int = 1,
    polish: bool | None = None,
    n_clusters: int | None = None,
) -> Partition:
    """Partition a graph by minimising its two-dimensional structural entropy.

    Parameters
    ----------
    G : graph-like
        Anything :func:`sepkit.as_graph` accepts.
    method : {"multilevel", "game", "sweep"}
        ``"game"``: the reference CoDeSEG rule. Start from singletons; sweep
        the nodes in ``order``; a node moves to the neighbouring cluster with
        the largest gain ``H2(now) - H2(moved)`` only when that gain beats
        ``max(0, H2(now) - H2(node alone))`` (the first cluster in the node's
        adjacency order wins ties); stop when a sweep moves nothing or its mean
        gain per move is at most ``tau * H1 / n``.
        ``"sweep"``: the greedy sweep of ECMRNet's published pruning. As the
        game, but a node moves whenever the best move has a gain above 0
        (even when leaving for a singleton would gain more; no node ever
        leaves), and only a sweep without moves or ``max_iter`` ends it.
        ``"multilevel"``: local moves to convergence (to any neighbouring
        cluster or a new singleton), refinement, aggregation, level after level,
        then a pass of single-node moves on the result; the best of
        ``n_starts`` seeded starts. On large graphs the moves run on all numba
        threads with the same result for any thread count.
    seed : int or None
        Seed of the random visiting orders (``None`` means 0: results are
        reproducible unless you vary the seed).
    max_iter : int, optional
        Game: most sweeps (default 5, as the reference). Sweep: most sweeps
        (default 10, as ECMRNet's pruning). Multilevel: most rounds of descent and
        node moves (default 1; more rounds seldom lower H2).
    tau : float, optional
        Game only: the reference's stopping threshold (default 0.3; 0 sweeps
        until nothing moves).
    base : float, default 2
    order : {"index", "edges", "random"} or array of int, optional
        Game and sweep: the sweep order. ``"index"`` (default): node order of the
        graph; ``"edges"``: first appearance in the input's edge list (what
        the reference binary does); ``"random"``: a seeded shuffle per start;
        or an explicit permutation of ``0..n-1``.
    overlap : bool, default False
        Run the reference's overlap pass after the partition: a node also joins
        a neighbouring cluster when its join gain exceeds ``gamma`` times the
        mean gain of that cluster's members. See ``Partition.memberships``.
    gamma : float, default 1
    n_starts : int, default 1
        Independent seeded starts (seeds ``seed, seed+1, ...``); the lowest H2
        is kept. Multilevel starts run one after the other, each on all threads.
    polish : bool or None, default None
        Multilevel only: the exact optimum on graphs of up to 10 nodes; on
        larger ones the best of 4 starts with a finer refinement (several times
        slower, finds the optimum of small graphs far more often). ``None``:
        only on graphs of up to 256 nodes.
    n_clusters : int, optional
        Multilevel only: return exactly this many non-empty clusters (1..n),
        minimising H2 under that constraint. The unconstrained result is
        brought to k clusters by merging the pair of clusters whose merge
        raises H2 least (pairs without an edge between them too: when k is
        below the number of connected components, clusters span components)
        or by detaching the nodes whose detachment costs least, then
        refined by moves that keep k; on graphs ``polish`` applies to, also
        from singletons and from one cluster, with merge-and-detach kicks.
        ``history`` then ends with the H2 of the k-cluster partition.

    Returns
    -------
    Partition

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import codeseg
    >>> G = nx.karate_club_graph()
    >>> best = codeseg(G, n_starts=10, seed=0)
    >>> best.n_clusters, round(best.entropy, 6)
    (6, 3.228749)
    >>> ref = codeseg(G, method="game", order="edges")
    >>> ref.n_clusters, round(ref.entropy, 5)
    (7, 3.28427)
    >>> two = codeseg(G, n_clusters=2)
    >>> two.n_clusters, round(two.entropy, 6)
    (2, 3.731039)
    """
    check_bool("overlap", overlap)
    gamma = check_real("gamma", gamma, 0.0)
    g = as_graph(G)
    opt = _resolve_options(
        method,
        base=base,
        seed=seed,
        n_starts=n_starts,
        max_iter=max_iter,
        tau=tau,
        order=order,
        polish=polish,
        n_nodes=g.n_nodes,
    )
    n_clusters = _check_n_clusters(n_clusters, method, g.n_nodes)

    if method != "multilevel":
        h1 = _ke.auto_node_terms(g.degree, g.volume).sum()
        if isinstance(order, str) and order == "random":
            candidates = []
            for s in opt.seeds:
                perm = np.arange(g.n_nodes)
                _k.shuffle_into(perm, np.uint64(s))
                candidates.append(perm)
        else:
            candidates = [_check_order("index" if order is None else order, G, g)]
        best = None
        for perm in candidates:
            lab, hist, conv = _k.game(
                g.indptr,
                g.indices,
                g.data,
                g.degree,
                perm,
                opt.max_iter,
                opt.tau,
                h1,
                method == "game",
            )
            h = _entropy(g, lab)
            if best is None or h < best[0]:
                best = (h, lab, hist, conv)
        _, labels, history, converged = best
        n_iter = history.size
    else:
        best = None
        for s in opt.seeds:  # each start runs in parallel on large graphs
            lab, hist, rounds, conv = _search(g, s, opt)
            h = _entropy(g, _k.compact(lab)[0])
            if best is None or h < best[0]:
                best = (h, lab, hist, rounds, conv)
        _, labels, history, n_iter, converged = best

    labels, k = _k.compact(labels)
    if n_clusters is not None:
        labels, k = _fixed_k(g, labels, n_clusters, opt)
        history = np.append(history, _entropy(g, labels))
    memberships = None
    if overlap:
        extra_node, extra_cluster = _k.overlap(
            g.indptr, g.indices, g.data, g.degree, labels, k, gamma
        )
        lists = [[int(c)] for c in labels]
        for i, c in zip(extra_node.tolist(), extra_cluster.tolist(), strict=True):
            lists[i].append(c)
        memberships = tuple(tuple(m) for m in lists)
    return Partition(
        labels=labels,
        entropy=float(_entropy(g, labels) * opt.scale),
        n_clusters=int(k),
        n_iter=int(n_iter),
        history=np.asarray(history) * opt.scale,
        converged=bool(converged),
        memberships=memberships,
        nodes=g.nodes,
    )


@serial_launches
def codeseg_batch(
    adjacency,
    *,
    method: str = "multilevel",
    seed: int | None = None,
    max_iter: int | None = None,
    tau: float | None = None,
    base: float = 2.0,
    order=None,
    n_starts: int = 1,
    polish: bool | None = None,
) -> BatchPartition:
    """Partition a stack of small dense graphs in one compiled, parallel call.

    Each matrix ``adjacency[b]`` gets exactly what ``codeseg(adjacency[b],
    ...)`` would give with the same options, plus its detachment costs.

    Parameters
    ----------
    adjacency : array_like, shape (B, n, n)
        Symmetric non-negative matrices (float32 is converted to float64).
    method, seed, max_iter, tau, base, n_starts, polish
        As for :func:`codeseg` (``polish=None`` decides by ``n``).
    order : {"index", "random"} or array of int, optional
        Game and sweep; one order for every graph.

    Returns
    -------
    BatchPartition

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit import codeseg_batch
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((100, 16, 16))
    >>> A = (X + X.transpose(0, 2, 1)) / 2
    >>> out = codeseg_batch(A, method="game")
    >>> out.labels.shape, out.entropy.shape, out.detachment.shape
    ((100, 16), (100,), (100, 16))
    """
    A = check_dense_stack(adjacency, "adjacency")
    B, n, _ = A.shape
    opt = _resolve_options(
        method,
        base=base,
        seed=seed,
        n_starts=n_starts,
        max_iter=max_iter,
        tau=tau,
        order=order,
        polish=polish,
        n_nodes=n,
    )
    seeds, order_arr = opt.seeds, np.arange(n)
    if method != "multilevel" and not (isinstance(order, str) and order == "random"):
        if isinstance(order, str) and order == "edges":
            raise InvalidOptionError(
                '`order="edges"` needs an edge list; a dense batch has none (use "index")'
            )
        order_arr = _check_order("index" if order is None else order, None, n_nodes=n)
        seeds = seeds[:0]  # one fixed order instead of seeded random ones
    # one kernel per search path, so that a batch compiles only the path it takes
    if method != "multilevel":
        out = _kb.batch_game(A, order_arr, seeds, opt.max_iter, opt.tau, method == "game")
    elif opt.polish and n <= _k.EXACT_MAX_NODES:
        out = _kb.batch_exact(A)
    elif opt.polish and n <= _k.DENSE_MAX_NODES:
        out = _kb.batch_dense(A, seeds, opt.max_iter, MOVE_TOL)
    else:
        out = _kb.batch_multilevel(A, seeds, opt.max_iter, MOVE_TOL, opt.polish)
    labels, entropy, detachment = out
    n_clusters = labels.max(axis=1) + 1 if B and n else np.zeros(B, dtype=np.int64)
    return BatchPartition(
        labels=labels,
        entropy=entropy * opt.scale,
        detachment=detachment * opt.scale,
        n_clusters=n_clusters.astype(np.int64),
    )


def _check_n_clusters(n_clusters, method: str, n_nodes: int) -> int | None:
    if n_clusters is None:
        return None
    if method != "multilevel":
        raise InvalidOptionError(
            f'`n_clusters` applies to method="multilevel" only; got {n_clusters!r}'
        )
    return check_int("n_clusters", n_clusters, 1, n_nodes)


def _fixed_k(g: Graph, labels: np.ndarray, k: int, opt) -> tuple:
    """The multilevel result brought to exactly ``k`` clusters (see codeseg)."""
    args = (g.indptr, g.indices, g.data, g.degree)
    seed = opt.seeds[0]
    labels = _kf.to_k(*args, labels, k, seed, MOVE_TOL)
    if opt.polish:
        labels = _kf.polish_k(*args, labels, k, seed, MOVE_TOL)
    return _k.compact(labels)


def _search(g: Graph, seed, opt) -> tuple:
    """``_k.search``, calling the one path this graph takes, so that only its kernels compile."""
    return _multilevel.search_by_size(
        g.indptr, g.indices, g.data, g.degree, seed, opt.max_iter, MOVE_TOL, opt.polish,
        numba.get_num_threads(),
    )  # fmt: skip


def _entropy(g: Graph, labels: np.ndarray) -> float:
    k = int(labels.max()) + 1
    return _ke.auto_entropy_2d(g.indptr, g.indices, g.data, g.degree, labels, k, g.volume)


def _check_polish(polish, n_nodes: int) -> bool:
    if check_bool("polish", polish, none=True) is None:
        return n_nodes <= POLISH_MAX_NODES
    return bool(polish)


class _Options(NamedTuple):
    scale: float
    seeds: np.ndarray
    max_iter: int
    tau: float
    polish: bool


def _resolve_options(method, *, base, seed, n_starts, max_iter, tau, order, polish, n_nodes):
    """Validate the options shared by codeseg and codeseg_batch and fill in defaults.

    Options of the other method are errors, not silently ignored.
    """
    check_choice("method", method, _METHODS)
    scale = log_scale(base)
    seed = check_seed(seed)
    n_starts = check_int("n_starts", n_starts, 1, _MAX_STARTS)
    seeds = seed_sequence(seed, n_starts)
    if method == "game":
        if polish is not None:
            raise InvalidOptionError(
                f'`polish` applies to method="multilevel" only; got {polish!r}'
            )
        max_iter = _GAME_MAX_ITER if max_iter is None else check_int("max_iter", max_iter, 1)
        tau = _GAME_TAU if tau is None else check_real("tau", tau, 0.0)
        return _Options(scale, seeds, max_iter, tau, False)
    if method == "sweep":
        if polish is not None:
            raise InvalidOptionError(
                f'`polish` applies to method="multilevel" only; got {polish!r}'
            )
        if tau is not None and tau != 0:
            raise InvalidOptionError(
                f'`tau` applies to method="game" only (a sweep runs until nothing moves); '
                f"got {tau!r}"
            )
        max_iter = _SWEEP_MAX_ITER if max_iter is None else check_int("max_iter", max_iter, 1)
        return _Options(scale, seeds, max_iter, 0.0, False)
    if tau is not None and tau != 0:
        raise InvalidOptionError(
            f'`tau` applies to method="game" only (multilevel moves to convergence); got {tau!r}'
        )
    if order is not None and not (isinstance(order, str) and order == "random"):
        raise InvalidOptionError(
            '`order` applies to methods "game" and "sweep" only (multilevel visits nodes in '
            f"seeded random order); got {order!r}"
        )
    max_iter = MULTILEVEL_MAX_ROUNDS if max_iter is None else check_int("max_iter", max_iter, 1)
    return _Options(scale, seeds, max_iter, 0.0, _check_polish(polish, n_nodes))


def _check_order(order, G, g: Graph | None = None, *, n_nodes: int | None = None) -> np.ndarray:
    n = g.n_nodes if g is not None else n_nodes
    if isinstance(order, str):
        if order == "index":
            return np.arange(n)
        if order == "edges":
            return _edge_order(G, g)
        raise InvalidOptionError(
            f'`order` must be "index", "edges", "random" or a permutation of 0..n-1; got {order!r}'
        )
    perm = np.asarray(order)
    if (
        perm.ndim != 1
        or perm.shape[0] != n
        or not np.issubdtype(perm.dtype, np.integer)
        or not np.array_equal(np.sort(perm), np.arange(n))
    ):
        raise InvalidOptionError(
            f"`order` must be a permutation of 0..{n - 1}; got an array of shape {perm.shape} "
            f"and dtype {perm.dtype} that is not one"
        )
    return perm.astype(np.int64)


def _edge_order(G, g: Graph) -> np.ndarray:
    """Nodes in order of first appearance in the input's edge list, then isolated nodes."""
    if isinstance(G, nx.Graph):
        flat = []
        for u, v in G.edges():
            flat.append(g.index_of(u))
            flat.append(g.index_of(v))
        flat = np.asarray(flat, dtype=np.int64)
    elif sp.issparse(G) and G.format == "coo":
        flat = np.column_stack([np.asarray(G.row), np.asarray(G.col)]).ravel()
    else:  # CSR rows / dense rows: the edge list read row by row
        rows = np.repeat(np.arange(g.n_nodes), np.diff(g.indptr))
        flat = np.column_stack([rows, g.indices]).ravel()
    return _k.first_appearance(np.ascontiguousarray(flat, dtype=np.int64), g.n_nodes)
