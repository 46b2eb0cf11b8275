"""Seeded synthetic graphs for the benchmarks, built straight into a :class:`sepkit.Graph`.

Everything is vectorised numpy (no python loop over nodes or edges), so a graph of
1e7 undirected edges takes a few seconds. The partitioner benchmarks reuse
:func:`planted_partition`.

>>> G, labels = planted_partition(10_000, seed=0)
>>> G.n_edges, G.n_nodes, labels.dtype
(10000, 1000, dtype('int64'))
"""

from __future__ import annotations

import numpy as np

from sepkit import Graph

__all__ = [
    "SIZES",
    "degree_corrected_planted",
    "graph_from_edges",
    "planted_partition",
    "two_level_planted",
]

# The benchmark sizes, in undirected edges, by name.
SIZES = {"1e4": 10_000, "1e6": 1_000_000, "1e7": 10_000_000}


def planted_partition(
    n_edges: int,
    *,
    seed: int,
    block_size: int = 100,
    p_in: float = 0.85,
    avg_degree: float = 20.0,
    shuffle: bool = True,
) -> tuple[Graph, np.ndarray]:
    """A random unweighted planted-partition graph with exactly ``n_edges`` edges.

    Parameters
    ----------
    n_edges : int
        Number of distinct undirected edges (no self-loops, no duplicates).
    seed : int
        Seed of the ``numpy.random.Generator``; the same arguments give the same graph.
    block_size : int, default 100
        Nodes per planted block (the last block may be smaller).
    p_in : float, default 0.85
        Fraction of the edges that join two nodes of the same block (exact up to rounding).
    avg_degree : float, default 20
        Sets the number of nodes, ``n = round(2 * n_edges / avg_degree)`` (``m / 10`` by default).
    shuffle : bool, default True
        Give nodes a random order, so that a block is not a contiguous range of rows
        (memory access then looks like that of a real graph).

    Returns
    -------
    graph : sepkit.Graph
        Canonical CSR, all weights 1.
    labels : ndarray of int64, shape (n,)
        The planted block of every node, in ``0 .. n // block_size``.
    """
    if n_edges < 1:
        raise ValueError(f"`n_edges` must be >= 1; got {n_edges}")
    if not 0.0 <= p_in <= 1.0:
        raise ValueError(f"`p_in` must be in [0, 1]; got {p_in}")
    rng = np.random.default_rng(seed)
    n = max(2 * block_size, int(round(2 * n_edges / avg_degree)))
    labels = np.arange(n, dtype=np.int64) // block_size
    n_blocks = int(labels[-1]) + 1
    starts = np.arange(n_blocks, dtype=np.int64) * block_size
    sizes = np.minimum(block_size, n - starts)

    m_in = int(round(p_in * n_edges))
    m_out = n_edges - m_in
    capacity_in = int((sizes * (sizes - 1) // 2).sum())
    if m_in > capacity_in // 2:
        raise ValueError(
            f"{m_in} intra-block edges do not fit sparsely in blocks of {block_size} nodes; "
            "raise `block_size` or `avg_degree`"
        )

    def intra(count):
        b = rng.integers(0, n_blocks, size=count)
        u = starts[b] + (rng.random(count) * sizes[b]).astype(np.int64)
        v = starts[b] + (rng.random(count) * sizes[b]).astype(np.int64)
        return u, v

    def inter(count):
        u = rng.integers(0, n, size=count)
        v = rng.integers(0, n, size=count)
        keep = labels[u] != labels[v]
        return u[keep], v[keep]

    keys = np.concatenate([_distinct(intra, m_in, n, rng), _distinct(inter, m_out, n, rng)])
    if shuffle:
        perm = rng.permutation(n)  # old id -> new id
        u, v = perm[keys // n], perm[keys % n]
        new_labels = np.empty_like(labels)
        new_labels[perm] = labels
        labels = new_labels
    else:
        u, v = keys // n, keys % n
    return graph_from_edges(u, v, n), labels


def degree_corrected_planted(
    n_edges: int,
    *,
    seed: int,
    mu: float = 0.3,
    avg_degree: float = 20.0,
    degree_exponent: float = 2.5,
    degree_spread: float = 50.0,
    size_exponent: float = 1.5,
    min_community: int = 20,
    max_community: int = 1000,
    shuffle: bool = True,
) -> tuple[Graph, np.ndarray]:
    """A degree-corrected planted partition with power-law degrees and community sizes.

    The degree-corrected stochastic block model (Karrer & Newman, 2011) with
    Chung-Lu edges: every node gets a weight from a power law, an edge inside a
    community joins two of its members drawn in proportion to their weights, and
    an edge between communities two nodes drawn so from the whole graph. A
    fraction ``mu`` of the edges runs between communities (the LFR benchmark's
    mixing parameter), so the planted structure is that of LFR graphs, built
    without python loops in a few seconds at 1e7 edges.

    Parameters
    ----------
    n_edges : int
        Number of distinct undirected edges (no self-loops, no duplicates).
    seed : int
        Seed of the ``numpy.random.Generator``; the same arguments give the same graph.
    mu : float, default 0.3
        Fraction of the edges that join two communities (exact up to rounding).
    avg_degree : float, default 20
        Sets the number of nodes, ``n = round(2 * n_edges / avg_degree)``.
    degree_exponent : float, default 2.5
        Exponent ``t`` of the node weights' density ``x**-t``.
    degree_spread : float, default 50
        Largest over smallest node weight. A node's expected degree is its weight
        times ``avg_degree / mean weight`` (about 7 to 370 with the defaults); a node of
        a small community cannot have more inner neighbours than its community
        holds, so its realised degree can stay below that.
    size_exponent : float, default 1.5
        Exponent of the community sizes' density.
    min_community, max_community : int, default 20, 1000
        Range of the community sizes (the last community may be smaller).
    shuffle : bool, default True
        Give nodes a random order, so that a community is not a contiguous range of rows.

    Returns
    -------
    graph : sepkit.Graph
        Canonical CSR, all weights 1.
    labels : ndarray of int64, shape (n,)
        The planted community of every node.
    """
    if n_edges < 1:
        raise ValueError(f"`n_edges` must be >= 1; got {n_edges}")
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"`mu` must be in [0, 1]; got {mu}")
    rng = np.random.default_rng(seed)
    n = max(2 * max_community, int(round(2 * n_edges / avg_degree)))
    weight = _power_law(rng, n, degree_exponent, 1.0, degree_spread)
    sizes = []
    total = 0
    while total < n:  # about n / 140 communities with the defaults
        draw = _power_law(
            rng, max(16, (n - total) // 100), size_exponent, min_community, max_community + 1
        ).astype(np.int64)
        sizes.append(draw)
        total += int(draw.sum())
    sizes = np.concatenate(sizes)
    stop = int(np.searchsorted(np.cumsum(sizes), n))
    sizes = sizes[: stop + 1]
    sizes[-1] -= int(sizes.sum()) - n
    labels = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)  # communities are row ranges
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    # Inverse-CDF sampling of nodes by weight, globally and within a community.
    cum = np.cumsum(weight)
    cum_before = np.concatenate([[0.0], cum])

    def pick_in(c, count):
        lo = cum_before[starts[c]]
        hi = cum_before[starts[c] + sizes[c]]
        x = lo + rng.random(count) * (hi - lo)
        return np.minimum(np.searchsorted(cum, x, side="right"), starts[c] + sizes[c] - 1)

    community_weight = np.add.reduceat(weight, starts)
    share = community_weight / community_weight.sum()  # inner degree of a node ~ its weight

    def intra(count):
        c = rng.choice(sizes.size, size=count, p=share)
        return pick_in(c, count), pick_in(c, count)

    def inter(count):
        u = np.searchsorted(cum, rng.random(count) * cum[-1], side="right")
        v = np.searchsorted(cum, rng.random(count) * cum[-1], side="right")
        u, v = np.minimum(u, n - 1), np.minimum(v, n - 1)
        keep = labels[u] != labels[v]
        return u[keep], v[keep]

    m_out = int(round(mu * n_edges))
    keys = np.concatenate(
        [_distinct(intra, n_edges - m_out, n, rng), _distinct(inter, m_out, n, rng)]
    )
    u, v = keys // n, keys % n
    if shuffle:
        perm = rng.permutation(n)  # old id -> new id
        u, v = perm[u], perm[v]
        new_labels = np.empty_like(labels)
        new_labels[perm] = labels
        labels = new_labels
    return graph_from_edges(u, v, n), labels


def _power_law(rng, count, exponent, low, high):
    """``count`` draws from the density ``x**-exponent`` on ``[low, high)`` (inverse CDF)."""
    a = 1.0 - exponent
    u = rng.random(count)
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def two_level_planted(
    n_edges: int,
    *,
    seed: int,
    n_super: int = 10,
    blocks_per_super: int = 10,
    avg_degree: float = 20.0,
    p_block: float = 0.7,
    p_super: float = 0.25,
) -> tuple[Graph, np.ndarray, np.ndarray]:
    """A random unweighted graph with a planted two-level hierarchy and exactly ``n_edges`` edges.

    ``n_super`` super-blocks of ``blocks_per_super`` equal blocks each; a fraction
    ``p_block`` of the edges joins two nodes of the same block, ``p_super`` two nodes
    of different blocks of the same super-block, the rest two nodes of different
    super-blocks. Node ids are shuffled.

    Returns
    -------
    graph : sepkit.Graph
    blocks, supers : ndarray of int64, shape (n,)
        The planted block and super-block of every node.

    >>> G, blocks, supers = two_level_planted(20_000, seed=0)
    >>> G.n_edges, int(blocks.max()) + 1, int(supers.max()) + 1
    (20000, 100, 10)
    """
    if not 0.0 <= p_block <= 1.0 or not 0.0 <= p_super <= 1.0 - p_block:
        raise ValueError(
            f"`p_block` and `p_super` must be fractions summing to at most 1; got "
            f"{p_block}, {p_super}"
        )
    rng = np.random.default_rng(seed)
    n_blocks = n_super * blocks_per_super
    block_size = max(2, int(round(2 * n_edges / avg_degree / n_blocks)))
    n = n_blocks * block_size
    blocks = np.arange(n, dtype=np.int64) // block_size
    supers = blocks // blocks_per_super
    super_size = block_size * blocks_per_super
    m_block = int(round(p_block * n_edges))
    m_super = int(round(p_super * n_edges))
    m_out = n_edges - m_block - m_super

    def in_block(count):
        b = rng.integers(0, n_blocks, size=count)
        return b * block_size + rng.integers(0, block_size, count), b * block_size + rng.integers(
            0, block_size, count
        )

    def in_super(count):  # same super-block, different blocks
        s = rng.integers(0, n_super, size=count)
        u = s * super_size + rng.integers(0, super_size, count)
        v = s * super_size + rng.integers(0, super_size, count)
        keep = blocks[u] != blocks[v]
        return u[keep], v[keep]

    def across(count):
        u = rng.integers(0, n, size=count)
        v = rng.integers(0, n, size=count)
        keep = supers[u] != supers[v]
        return u[keep], v[keep]

    keys = np.concatenate(
        [
            _distinct(in_block, m_block, n, rng),
            _distinct(in_super, m_super, n, rng),
            _distinct(across, m_out, n, rng),
        ]
    )
    perm = rng.permutation(n)  # old id -> new id
    new_blocks = np.empty_like(blocks)
    new_blocks[perm] = blocks
    new_supers = np.empty_like(supers)
    new_supers[perm] = supers
    return graph_from_edges(perm[keys // n], perm[keys % n], n), new_blocks, new_supers


def graph_from_edges(u: np.ndarray, v: np.ndarray, n: int) -> Graph:
    """A :class:`sepkit.Graph` of weight-1 edges ``(u[e], v[e])``, built without python loops.

    The edges must be distinct undirected pairs with ``u != v`` (as
    :func:`planted_partition` makes them); both directions are stored.
    """
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    key = np.concatenate([u * n + v, v * n + u])
    key.sort()
    rows = key // n
    indices = key - rows * n
    counts = np.bincount(rows, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = np.ones(key.size, dtype=np.float64)
    for a in (indptr, indices, data):
        a.flags.writeable = False
    # Canonical by construction (sorted distinct keys, both directions): skip the checks.
    return Graph.from_csr(indptr, indices, data, check=False)


def _distinct(draw, count, n, rng):
    """``count`` distinct keys ``min(u, v) * n + max(u, v)`` with ``u != v`` from ``draw``."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    want = count
    while True:
        u, v = draw(int(want * 1.15) + 16)
        ok = u != v
        u, v = u[ok], v[ok]
        keys = _sorted_unique(np.concatenate([keys, np.minimum(u, v) * n + np.maximum(u, v)]))
        if keys.size >= count:
            break
        want = count - keys.size
    # A uniform random subset of exactly `count` keys.
    drop = rng.choice(keys.size, size=keys.size - count, replace=False)
    keep = np.ones(keys.size, dtype=bool)
    keep[drop] = False
    return keys[keep]


def _sorted_unique(a):
    # Sort-based; faster than np.unique's hash path on 1e7 int64 keys.
    a.sort()
    keep = np.empty(a.size, dtype=bool)
    keep[:1] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]
