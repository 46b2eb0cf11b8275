"""The one input adapter: networkx, scipy.sparse and dense numpy become a frozen CSR :class:`Graph`.

Every public function of sepkit calls :func:`as_graph` first, so the kernels only
ever see int64 ``indptr``/``indices`` and float64 ``data`` (one compilation each,
and float64 accumulation everywhere).
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import scipy.sparse as sp

from sepkit._errors import InvalidGraphError

__all__ = ["Graph", "as_graph", "symmetrize"]

# Entries a and b of a matrix count as symmetric when |a - b| <= _SYM_RTOL * max(|a|, |b|):
# rounding-level asymmetry from a product like X @ X.T is accepted and averaged away.
_SYM_RTOL = 1e-10


def _mirror_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where ``a`` and its mirror ``b`` agree within the symmetry tolerance."""
    return np.abs(a - b) <= _SYM_RTOL * np.maximum(np.abs(a), np.abs(b))


def _check_real_dtype(dtype, name: str) -> None:
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise InvalidGraphError(f"`{name}` must hold real numbers; got dtype {dtype}")


@dataclass(frozen=True, eq=False)
class Graph:
    """An undirected weighted graph in canonical CSR form (read-only).

    Attributes
    ----------
    indptr, indices : ndarray of int64
        CSR structure of the symmetric adjacency matrix; column indices sorted in
        each row, duplicates summed, explicit zeros removed.
    data : ndarray of float64
        Edge weights, finite and positive. A self-loop ``A[i, i]`` is stored once.
    degree : ndarray of float64
        Row sums of the adjacency matrix (a self-loop counts once).
    volume : float
        ``degree.sum()``.
    n_nodes : int
        Number of nodes, including isolated ones.
    nodes : sequence
        The original node labels: networkx node labels, or ``range(n_nodes)``
        for matrices. Position ``i`` is row ``i``.

    Examples
    --------
    >>> import networkx as nx
    >>> from sepkit import as_graph
    >>> G = as_graph(nx.path_graph(["a", "b", "c"]))
    >>> G.n_nodes, G.volume, list(G.nodes)
    (3, 4.0, ['a', 'b', 'c'])
    >>> G.degree
    array([1., 2., 1.])
    """

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    degree: np.ndarray
    volume: float
    n_nodes: int
    nodes: Sequence[Hashable]
    _index: dict | None = field(default=None, repr=False, compare=False)

    @property
    def n_edges(self) -> int:
        """Number of undirected edges, self-loops included."""
        n_loops = int(np.count_nonzero(self.self_loops))
        return (self.indices.size - n_loops) // 2 + n_loops

    @property
    def self_loops(self) -> np.ndarray:
        """Self-loop weight of every node (0 where there is none)."""
        rows = np.repeat(np.arange(self.n_nodes), np.diff(self.indptr))
        loops = np.zeros(self.n_nodes)
        on_diag = rows == self.indices
        loops[rows[on_diag]] = self.data[on_diag]
        return loops

    def index_of(self, node: Hashable) -> int:
        """Row index of the original node label ``node``.

        Raises
        ------
        ValueError
            If ``node`` is not a node of the graph.
        """
        if isinstance(self.nodes, range):
            if isinstance(node, numbers.Integral) and 0 <= node < self.n_nodes:
                return int(node)
        else:
            index = self._index
            if index is None:
                index = {v: i for i, v in enumerate(self.nodes)}
                object.__setattr__(self, "_index", index)
            if node in index:
                return index[node]
        raise InvalidGraphError(f"`node` must be a node of the graph; got {node!r}")

    def to_scipy(self) -> sp.csr_array:
        """The adjacency matrix as a ``scipy.sparse.csr_array`` (a copy)."""
        n = self.n_nodes
        return sp.csr_array(
            (self.data.copy(), self.indices.copy(), self.indptr.copy()), shape=(n, n)
        )

    def __repr__(self) -> str:
        return f"Graph(n_nodes={self.n_nodes}, n_edges={self.n_edges}, volume={self.volume!r})"


def as_graph(obj, *, weight: str | None = "weight") -> Graph:
    """Convert a graph or adjacency matrix into a :class:`Graph`.

    Parameters
    ----------
    obj : networkx.Graph, scipy.sparse matrix or array, numpy.ndarray or Graph
        An undirected networkx graph (node labels are kept), any scipy.sparse
        matrix or array (duplicate COO entries are summed), a square dense
        array, or an existing :class:`Graph` (returned as is).
    weight : str or None, default "weight"
        Edge attribute holding the weight of a networkx edge; edges without it
        weigh 1. ``None`` makes every edge weigh 1. Ignored for matrices.

    Returns
    -------
    Graph

    Raises
    ------
    TypeError
        For a directed networkx graph, a multigraph, or an unsupported type.
    InvalidGraphError (a ValueError)
        For a graph with no nodes, a non-square or asymmetric matrix, or a
        negative, NaN or infinite weight. The message names the offending entry.

    Notes
    -----
    Matrices must be symmetric up to rounding (relative difference at most
    1e-10, which is then averaged out); for anything else call
    :func:`symmetrize` first. Explicit zero entries are dropped: an edge of
    weight 0 changes no entropy.

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit import as_graph
    >>> G = as_graph(np.array([[0, 2], [2, 1]]))
    >>> G.degree, G.volume
    (array([2., 3.]), 5.0)
    """
    if isinstance(obj, Graph):
        return obj
    if isinstance(obj, nx.Graph):
        return _from_networkx(obj, weight)
    if sp.issparse(obj):
        return _from_matrix(obj)
    if isinstance(obj, np.ndarray) or (
        hasattr(obj, "__array__") and not isinstance(obj, (str, bytes))
    ):
        return _from_matrix(np.asarray(obj))
    raise TypeError(
        "`G` must be a networkx.Graph, a scipy.sparse matrix or array, a square numpy "
        f"array or a sepkit.Graph; got {type(obj).__name__}"
    )


def symmetrize(A, how: str = "max"):
    """Make a square matrix symmetric so that :func:`as_graph` accepts it.

    Parameters
    ----------
    A : scipy.sparse matrix/array or numpy.ndarray
        A square matrix, e.g. the adjacency of a directed graph.
    how : {"max", "mean", "sum"}
        How ``A[i, j]`` and ``A[j, i]`` are combined.

    Returns
    -------
    The same kind of object (a scipy.sparse result is a csr_array).

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit import symmetrize
    >>> symmetrize(np.array([[0.0, 1.0], [3.0, 0.0]]), how="mean")
    array([[0., 2.],
           [2., 0.]])
    """
    if how not in ("max", "mean", "sum"):
        raise ValueError(f'`how` must be one of "max", "mean", "sum"; got {how!r}')
    sparse = sp.issparse(A)
    M = sp.csr_array(A) if sparse else np.asarray(A)
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise InvalidGraphError(f"`A` must be square; got shape {M.shape}")
    T = M.T
    if how == "max":
        return M.maximum(T) if sparse else np.maximum(M, T)
    if how == "sum":
        return M + T
    return (M + T) / 2


def _from_networkx(G: nx.Graph, weight: str | None) -> Graph:
    if G.is_directed():
        raise TypeError(
            "`G` must be an undirected graph; got a directed "
            f"{type(G).__name__} (use G.to_undirected() or sepkit.symmetrize on its matrix)"
        )
    if G.is_multigraph():
        raise TypeError(
            f"`G` must be a simple graph; got a {type(G).__name__} "
            "(sum parallel edges into one weighted edge first)"
        )
    nodes = list(G.nodes())
    n = len(nodes)
    if n == 0:
        raise InvalidGraphError("`G` must have at least one node; got an empty graph")
    index = {v: i for i, v in enumerate(nodes)}
    m = G.number_of_edges()
    rows = np.empty(m, dtype=np.int64)
    cols = np.empty(m, dtype=np.int64)
    vals = np.empty(m, dtype=np.float64)
    edges = G.edges(data=weight, default=1) if weight is not None else G.edges(data=True)
    for e, (u, v, w) in enumerate(edges):
        if weight is None:
            w = 1.0
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise InvalidGraphError(
                f"`G` has a non-numeric weight {w!r} on edge ({u!r}, {v!r})"
            ) from None
        if not np.isfinite(w) or w < 0:
            kind = "negative" if w < 0 else "non-finite"
            raise InvalidGraphError(f"`G` has a {kind} weight ({w!r} on edge ({u!r}, {v!r}))")
        rows[e], cols[e], vals[e] = index[u], index[v], w
    loop = rows == cols
    r = np.concatenate([rows, cols[~loop]])
    c = np.concatenate([cols, rows[~loop]])
    d = np.concatenate([vals, vals[~loop]])
    return _build(sp.coo_array((d, (r, c)), shape=(n, n)), tuple(nodes), index)


def _from_matrix(A) -> Graph:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InvalidGraphError(f"`G` must be a square adjacency matrix; got shape {A.shape}")
    n = A.shape[0]
    if n == 0:
        raise InvalidGraphError("`G` must have at least one node; got shape (0, 0)")
    _check_real_dtype(A.dtype, "G")
    # COO -> CSR sums duplicates; then every check runs on the canonical form.
    M = (
        sp.csr_array(A, dtype=np.float64)
        if sp.issparse(A)
        else sp.csr_array(np.asarray(A, dtype=np.float64))
    )
    M.sum_duplicates()
    return _build(M, range(n), None)


def _build(M, nodes, index) -> Graph:
    M = sp.csr_array(M, dtype=np.float64)
    M.sum_duplicates()  # also sorts indices
    bad = ~np.isfinite(M.data) | (M.data < 0)
    if bad.any():
        i, j, w = _first_entry(M, bad)
        kind = "negative" if w < 0 else "non-finite"
        raise InvalidGraphError(
            f"`G` has a {kind} weight ({w!r} on edge ({nodes[i]!r}, {nodes[j]!r}))"
        )
    M.eliminate_zeros()
    M = _check_symmetric(M, nodes)
    indptr = M.indptr.astype(np.int64)
    indices = M.indices.astype(np.int64)
    data = M.data.astype(np.float64)
    degree = np.asarray(M.sum(axis=1), dtype=np.float64).ravel()
    for a in (indptr, indices, data, degree):
        a.flags.writeable = False
    return Graph(
        indptr=indptr,
        indices=indices,
        data=data,
        degree=degree,
        volume=float(degree.sum()),
        n_nodes=M.shape[0],
        nodes=nodes,
        _index=index,
    )


def _first_entry(M, mask):
    """Row, column and value of the first flagged CSR entry."""
    k = int(np.flatnonzero(mask)[0])
    i = int(np.searchsorted(M.indptr, k, side="right") - 1)
    return i, int(M.indices[k]), float(M.data[k])


def _check_symmetric(M, nodes):
    T = M.T.tocsr()
    T.sum_duplicates()
    if (
        M.nnz == T.nnz
        and np.array_equal(M.indptr, T.indptr)
        and np.array_equal(M.indices, T.indices)
    ):
        if np.array_equal(M.data, T.data):
            return M
        close = _mirror_close(M.data, T.data)
        if close.all():
            return sp.csr_array(((M.data + T.data) / 2, M.indices, M.indptr), shape=M.shape)
        i, j, w = _first_entry(M, ~close)
    else:
        # Structures differ (error path only): the first entry that is not within
        # tolerance of its mirror, which may be missing.
        D = (M - T).tocsr()
        D.eliminate_zeros()
        D.sort_indices()
        rows = np.repeat(np.arange(D.shape[0]), np.diff(D.indptr))
        a = np.asarray(M[rows, D.indices]).ravel()
        b = np.asarray(T[rows, D.indices]).ravel()
        far = ~_mirror_close(a, b)
        i, j, _ = _first_entry(D, far)
        w = float(M[i, j])
    raise InvalidGraphError(
        f"`G` must be symmetric (undirected); got A[{nodes[i]!r}, {nodes[j]!r}] = {w!r} but "
        f"A[{nodes[j]!r}, {nodes[i]!r}] = {float(M[j, i])!r} (use sepkit.symmetrize)"
    )


def check_dense_stack(adjacency, name: str = "adjacency") -> np.ndarray:
    """Validate a ``(B, n, n)`` stack of symmetric non-negative matrices; float64 copy.

    The same rules as :func:`as_graph`: finite, non-negative, symmetric up to a
    relative 1e-10 (rounding-level asymmetry is averaged away).
    """
    A = np.asarray(adjacency)
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        raise InvalidGraphError(f"`{name}` must have shape (B, n, n); got shape {A.shape}")
    if A.shape[1] == 0:
        raise InvalidGraphError(f"`{name}` must have at least one node; got shape {A.shape}")
    _check_real_dtype(A.dtype, name)
    A = np.ascontiguousarray(A, dtype=np.float64)
    bad = ~np.isfinite(A) | (A < 0)
    if bad.any():
        b, i, j = (int(x) for x in np.argwhere(bad)[0])
        w = float(A[b, i, j])
        kind = "negative" if w < 0 else "non-finite"
        raise InvalidGraphError(f"`{name}` has a {kind} weight ({w!r} at [{b}, {i}, {j}])")
    T = A.transpose(0, 2, 1)
    if not np.array_equal(A, T):
        close = _mirror_close(A, T)
        if not close.all():
            b, i, j = (int(x) for x in np.argwhere(~close)[0])
            raise InvalidGraphError(
                f"`{name}` must be symmetric; got {name}[{b}, {i}, {j}] = {float(A[b, i, j])!r} "
                f"but {name}[{b}, {j}, {i}] = {float(A[b, j, i])!r} (use sepkit.symmetrize)"
            )
        A = (A + T) / 2
    return A
