"""The one input adapter: networkx, scipy.sparse and dense numpy become a frozen CSR :class:`Graph`.

Every public function of sepkit calls :func:`as_graph` first, so the kernels only
ever see int64 ``indptr``/``indices`` and float64 ``data`` (one compilation each,
and float64 accumulation everywhere).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import scipy.sparse as sp

from sepkit._errors import InvalidGraphError, InvalidTypeError
from sepkit._graph_checks import (
    _MAX_VOLUME_LOG2,
    _check_real_dtype,
    _check_symmetric,
    _check_volume,
    _checked_csr,
    _first_entry,
    _mirror_close,
    _row_sums,
    _validated_fields,
)
from sepkit._options import check_choice

__all__ = ["Graph", "as_graph", "symmetrize"]

# A graph whose largest weight is below 2**_MIN_TOP_LOG2 is multiplied by a power of two
# (exact) that brings it into [2**-64, 2**-63): entropy is scale-free, subnormal arithmetic
# is not. (Not into [1, 2): weight_scale, up to 2**1010, must stay a finite float.)
_MIN_TOP_LOG2 = -500
_LIFTED_TOP_LOG2 = -64


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
    weight_scale : float
        The stored weights are the input's times ``weight_scale``: 1.0, or a
        power of two: below 1 when the input's total weight would come near
        float64's limit, above 1 when its largest weight is below 2**-500, so
        that subnormal weights keep their precision (entropies do not depend on
        the scale of the weights).

    Build one with :func:`as_graph` (any input) or :meth:`Graph.from_csr`.
    Calling ``Graph(...)`` directly validates every field, converts the arrays
    to int64/float64 read-only copies and raises :class:`InvalidGraphError` for
    arrays that are not a canonical symmetric CSR matrix.

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
    weight_scale: float = 1.0
    _index: dict | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        fields = _validated_fields(self)
        shift = min(_scale_shift(fields["data"], fields["data"].size), 0)  # tiny weights only
        if shift:
            for name in ("data", "degree"):
                fields[name] = _rescale(fields[name], shift)
                fields[name].flags.writeable = False
            fields["volume"] = math.ldexp(fields["volume"], -shift)
            fields["weight_scale"] = math.ldexp(fields["weight_scale"], -shift)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_csr(cls, indptr, indices, data, *, nodes=None, check: bool = True) -> Graph:
        """A graph from the CSR arrays of a symmetric adjacency matrix; degrees are computed.

        Parameters
        ----------
        indptr, indices : array of int
            CSR structure: row ``i`` holds columns ``indices[indptr[i]:indptr[i + 1]]``,
            strictly increasing (no duplicates).
        data : array of float
            The weights, finite and positive; a self-loop ``A[i, i]`` stored once.
        nodes : sequence, optional
            Node labels, one per row (default ``range(n)``).
        check : bool, default True
            Validate the arrays (as ``Graph(...)`` does) and copy them. ``False``
            skips every check and copy, for arrays already known to be canonical
            (generated graphs in benchmarks): inconsistent arrays then give wrong
            results or crash the interpreter, and the arrays must not change later.

        Returns
        -------
        Graph

        Examples
        --------
        >>> from sepkit import Graph
        >>> G = Graph.from_csr([0, 1, 3, 4], [1, 0, 2, 1], [1.0, 1.0, 2.0, 2.0])
        >>> G.degree, G.volume
        (array([1., 3., 2.]), 6.0)
        >>> Graph.from_csr([0, 1, 1], [1], [1.0])
        Traceback (most recent call last):
            ...
        sepkit.InvalidGraphError: `G` must be symmetric (undirected); got A[0, 1] = 1.0 but ...
        """
        shift = 0
        if check:
            indptr, indices, data, nodes = _checked_csr(indptr, indices, data, nodes)
            shift = min(_scale_shift(data, data.size), 0)  # large ones: _check_volume refuses
            data = _rescale(data, shift)
            data.flags.writeable = False
        else:
            indptr = np.asarray(indptr, dtype=np.int64)
            indices = np.asarray(indices, dtype=np.int64)
            data = np.asarray(data, dtype=np.float64)
            nodes = range(indptr.size - 1) if nodes is None else nodes
        degree = _row_sums(indptr, data)
        if check:
            _check_volume(float(degree.sum()))
        return cls._trusted(indptr, indices, data, degree, nodes, math.ldexp(1.0, -shift))

    @classmethod
    def _trusted(
        cls, indptr, indices, data, degree, nodes, weight_scale: float = 1.0, index=None
    ) -> Graph:
        """A Graph from arrays already known to be canonical: no checks, no copies."""
        self = object.__new__(cls)
        degree.flags.writeable = False
        fields = {
            "indptr": indptr,
            "indices": indices,
            "data": data,
            "degree": degree,
            "volume": float(degree.sum()),
            "n_nodes": indptr.size - 1,
            "nodes": nodes,
            "weight_scale": weight_scale,
            "_index": index,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)
        return self

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
        InvalidGraphError (a ValueError)
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
    InvalidTypeError (a TypeError)
        For a directed networkx graph, a multigraph, or an unsupported type.
    InvalidGraphError (a ValueError)
        For a graph with no nodes, a non-square or asymmetric matrix, or a
        negative, NaN or infinite weight. The message names the offending entry.

    Notes
    -----
    Matrices must be symmetric up to rounding (relative difference at most
    1e-10, which is then averaged out); for anything else call
    :func:`symmetrize` first. Explicit zero entries are dropped: an edge of
    weight 0 changes no entropy. Weights so large that their total could
    overflow float64 are divided by a power of two (``Graph.weight_scale``),
    and weights all below 2**-500 (subnormal ones included) are multiplied by
    one, so that the kernels keep float64's full precision; no entropy
    changes, since all of them are invariant under scaling.

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
    raise InvalidTypeError(
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
    check_choice("how", how, ("max", "mean", "sum"))
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
        raise InvalidTypeError(
            "`G` must be an undirected graph; got a directed "
            f"{type(G).__name__} (use G.to_undirected() or sepkit.symmetrize on its matrix)"
        )
    if G.is_multigraph():
        raise InvalidTypeError(
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
        except OverflowError:
            raise InvalidGraphError(
                f"`G` has a non-finite weight (an integer beyond float64's range on edge "
                f"({u!r}, {v!r}))"
            ) from None
        except (TypeError, ValueError):
            raise InvalidGraphError(
                f"`G` has a non-numeric weight {w!r} on edge ({u!r}, {v!r})"
            ) from None
        if not np.isfinite(w) or w < 0:
            kind = "negative" if w < 0 else "non-finite"
            raise InvalidGraphError(f"`G` has a {kind} weight ({w!r} on edge ({u!r}, {v!r}))")
        rows[e], cols[e], vals[e] = index[u], index[v], w
    shift = _scale_shift(vals, 2 * m)
    vals = _rescale(vals, shift)
    loop = rows == cols
    r = np.concatenate([rows, cols[~loop]])
    c = np.concatenate([cols, rows[~loop]])
    d = np.concatenate([vals, vals[~loop]])
    return _build(sp.coo_array((d, (r, c)), shape=(n, n)), tuple(nodes), index, shift)


def _from_matrix(A) -> Graph:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InvalidGraphError(f"`G` must be a square adjacency matrix; got shape {A.shape}")
    n = A.shape[0]
    if n == 0:
        raise InvalidGraphError("`G` must have at least one node; got shape (0, 0)")
    _check_real_dtype(A.dtype, "G")
    # Rescale before COO -> CSR sums duplicates (two entries of 1e308 must not become inf);
    # then every check runs on the canonical form.
    if sp.issparse(A):
        if A.format not in ("csr", "csc", "coo", "bsr"):
            A = sp.coo_array(A)
        shift = _scale_shift(A.data, A.data.size)
        if shift:
            A = A.astype(np.float64, copy=True)
            A.data = _rescale(A.data, shift)
        M = sp.csr_array(A, dtype=np.float64)
    else:
        D = np.asarray(A, dtype=np.float64)
        shift = _scale_shift(D, D.size)
        M = sp.csr_array(_rescale(D, shift))
    M.sum_duplicates()
    return _build(M, range(n), None, shift)


def _scale_shift(values: np.ndarray, count: int) -> int:
    """The power of two to divide the weights by; 0 almost always.

    Positive so that no sum can overflow: ``count`` times the largest magnitude bounds the
    total weight. Negative when the largest magnitude is below 2**_MIN_TOP_LOG2: it is then
    brought into [2**-64, 2**-63), so no weight, sum or product of a weight with a log
    ratio is left with a subnormal's few bits (5e-324 holds one). Values that are not
    finite give 0 (they are rejected later, with their original value in the message).
    """
    if values.size == 0:
        return 0
    top = max(float(values.max()), -float(values.min()))
    if not math.isfinite(top) or top == 0.0:
        return 0
    if top < 2.0**_MIN_TOP_LOG2:
        return math.frexp(top)[1] - 1 - _LIFTED_TOP_LOG2
    bound = math.log2(top) + math.log2(max(count, 1))
    return 0 if bound <= _MAX_VOLUME_LOG2 else math.ceil(bound) - _MAX_VOLUME_LOG2


def _rescale(values: np.ndarray, shift: int) -> np.ndarray:
    """``values / 2**shift``, exact; an error if a positive weight would underflow to 0."""
    if shift == 0:
        return values
    scaled = np.ldexp(values, -shift)
    flushed = (scaled == 0) & (values != 0)
    if flushed.any():
        w = float(values[flushed].flat[0])
        raise InvalidGraphError(
            f"`G` has weights from {w!r} to {float(np.max(np.abs(values)))!r}: too wide a range "
            f"for float64 once the total is brought below 2**{_MAX_VOLUME_LOG2} (dividing by "
            f"2**{shift} makes {w!r} zero)"
        )
    return scaled


def _build(M, nodes, index, shift: int = 0) -> Graph:
    M = sp.csr_array(M, dtype=np.float64)
    M.sum_duplicates()  # also sorts indices
    bad = ~np.isfinite(M.data) | (M.data < 0)
    if bad.any():
        i, j, w = _first_entry(M, bad)
        kind = "negative" if w < 0 else "non-finite"
        w = math.ldexp(w, shift)  # the input's value
        raise InvalidGraphError(
            f"`G` has a {kind} weight ({w!r} on edge ({nodes[i]!r}, {nodes[j]!r}))"
        )
    M.eliminate_zeros()
    M = _check_symmetric(M, nodes, shift)
    indptr = M.indptr.astype(np.int64)
    indices = M.indices.astype(np.int64)
    data = M.data.astype(np.float64)
    degree = np.asarray(M.sum(axis=1), dtype=np.float64).ravel()
    for a in (indptr, indices, data):
        a.flags.writeable = False
    return Graph._trusted(indptr, indices, data, degree, nodes, math.ldexp(1.0, -shift), index)


def check_dense_stack(adjacency, name: str = "adjacency") -> np.ndarray:
    """Validate a ``(B, n, n)`` stack of symmetric non-negative matrices; float64 copy.

    The same rules as :func:`as_graph`: finite, non-negative, symmetric up to a
    relative 1e-10 (rounding-level asymmetry is averaged away), and each matrix
    whose total weight could overflow is divided by a power of two (or whose largest
    weight is below 2**-500 multiplied by one).
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
    top = A.max(axis=(1, 2)) if A.shape[0] else np.zeros(0)  # a stack may hold no graph
    huge = top > 2.0 ** (_MAX_VOLUME_LOG2 - 1) / A.shape[1] ** 2
    for b in np.flatnonzero(huge | ((top > 0) & (top < 2.0**_MIN_TOP_LOG2))):
        A = A.copy() if A is adjacency else A
        A[b] = _rescale(A[b], _scale_shift(A[b], A[b].size))
    return A
