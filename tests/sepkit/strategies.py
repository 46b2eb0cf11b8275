"""Hypothesis strategies and converters: one graph in every input format sepkit accepts."""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st

# Weights span four orders of magnitude but stay far from under/overflow.
weights = st.floats(min_value=0.01, max_value=100.0, allow_nan=False, allow_infinity=False)

# Cluster labels as a user might have them: negative, huge, non-contiguous.
label_values = st.lists(
    st.one_of(
        st.integers(min_value=-(2**62), max_value=2**62),
        st.integers(min_value=-5, max_value=40),
    ),
    min_size=1,
    max_size=5,
    unique=True,
)


@st.composite
def graphs(draw, *, max_nodes: int = 8, self_loops: bool = True) -> nx.Graph:
    """A weighted undirected graph on nodes ``0..n-1`` (in that order).

    Isolated nodes and self-loops are common; graphs without any edge occur too.
    """
    n = draw(st.integers(min_value=1, max_value=max_nodes))
    node = st.integers(min_value=0, max_value=n - 1)
    m = draw(st.integers(min_value=0, max_value=2 * n))  # uniform: few graphs without edges
    edges = draw(st.lists(st.tuples(node, node, weights), min_size=m, max_size=m))
    G = nx.Graph()
    G.add_nodes_from(range(n))
    for u, v, w in edges:
        if u == v and not self_loops:
            continue
        G.add_edge(u, v, weight=w)
    return G


@st.composite
def graphs_and_labels(draw, *, max_nodes: int = 8, self_loops: bool = True):
    """A graph and an integer label per node, the labels drawn from arbitrary integer values."""
    G = draw(graphs(max_nodes=max_nodes, self_loops=self_loops))
    values = draw(label_values)
    picks = draw(
        st.lists(
            st.integers(min_value=0, max_value=len(values) - 1),
            min_size=G.number_of_nodes(),
            max_size=G.number_of_nodes(),
        )
    )
    labels = np.array([values[p] for p in picks], dtype=np.int64)
    return G, labels


def edge_list(G: nx.Graph):
    """``(i, j, w)`` with row indices in ``G``'s node order."""
    index = {v: i for i, v in enumerate(G)}
    return [(index[u], index[v], float(w)) for u, v, w in G.edges(data="weight", default=1.0)]


def to_dense(G: nx.Graph) -> np.ndarray:
    """Symmetric adjacency matrix; a self-loop of weight s gives ``A[i, i] = s``."""
    n = G.number_of_nodes()
    A = np.zeros((n, n))
    for i, j, w in edge_list(G):
        A[i, j] = w
        A[j, i] = w
    return A


def to_csr(G: nx.Graph) -> sp.csr_array:
    return sp.csr_array(to_dense(G))


def to_coo_with_duplicates(G: nx.Graph, seed: int = 0) -> sp.coo_array:
    """The same matrix as COO: every entry split into two halves, in shuffled order.

    Halving is exact in binary floating point, so summing the duplicates gives back
    exactly the same weights. Explicit zero entries are added as well.
    """
    n = G.number_of_nodes()
    rows, cols, vals = [], [], []
    for i, j, w in edge_list(G):
        mirror = [(i, j)] if i == j else [(i, j), (j, i)]
        for a, b in mirror:
            rows += [a, a, a]
            cols += [b, b, b]
            vals += [w / 2, w / 2, 0.0]
    order = np.random.default_rng(seed).permutation(len(vals))
    rows, cols, vals = (np.asarray(x)[order] for x in (rows, cols, vals))
    return sp.coo_array((vals.astype(float), (rows, cols)), shape=(n, n))


def all_formats(G: nx.Graph) -> dict:
    """The same graph as networkx, dense, csr_array, csr_matrix, coo with duplicates."""
    return {
        "networkx": G,
        "dense": to_dense(G),
        "csr_array": to_csr(G),
        "csr_matrix": sp.csr_matrix(to_dense(G)),
        "coo_duplicates": to_coo_with_duplicates(G),
    }


def partition_dict(G: nx.Graph, labels) -> dict:
    """node -> label (Python ints), labels given in ``G``'s node order."""
    return {v: int(c) for v, c in zip(G, labels, strict=True)}


def communities(G: nx.Graph, labels) -> list[set]:
    """networkx's community format, sets ordered by the first appearance of their label."""
    sets: dict = {}
    for v, c in zip(G, labels, strict=True):
        sets.setdefault(int(c), set()).add(v)
    return list(sets.values())
