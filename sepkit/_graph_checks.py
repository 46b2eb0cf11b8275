"""The checks of :mod:`sepkit.graph`: a CSR graph's arrays, labels, volume and symmetry.

A leaf module (it knows :class:`~sepkit.graph.Graph` only by its fields), so the adapter
in ``graph.py`` keeps the Graph and the conversions, and both use one set of checks.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import scipy.sparse as sp

from sepkit._errors import InvalidGraphError

# Entries a and b of a matrix count as symmetric when |a - b| <= _SYM_RTOL * max(|a|, |b|):
# rounding-level asymmetry from a product like X @ X.T is accepted and averaged away.
_SYM_RTOL = 1e-10

# Weights whose total could pass 2**_MAX_VOLUME_LOG2 are divided by a power of two (exact in
# binary floating point): every entropy, delta and cost is invariant under scaling the weights,
# and below this bound no sum of the kernels overflows (a sum over clusters of
# in_C * log(vol_C / V) is at most V * ln(n) in magnitude).
_MAX_VOLUME_LOG2 = 960
# A hand-built Graph's degrees must match its rows to this relative tolerance.
_DEGREE_RTOL = 1e-9


def _mirror_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where ``a`` and its mirror ``b`` agree within the symmetry tolerance."""
    return np.abs(a - b) <= _SYM_RTOL * np.maximum(np.abs(a), np.abs(b))


def _check_real_dtype(dtype, name: str) -> None:
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise InvalidGraphError(f"`{name}` must hold real numbers; got dtype {dtype}")


def _row_sums(indptr: np.ndarray, data: np.ndarray) -> np.ndarray:
    n = indptr.size - 1
    rows = np.repeat(np.arange(n), np.diff(indptr))
    return np.bincount(rows, weights=data, minlength=n).astype(np.float64)


def _array(value, name: str, kind: str, dtype) -> np.ndarray:
    """A read-only 1-D copy of ``value`` as ``dtype``, if its dtype is of ``kind``."""
    a = np.asarray(value)
    ok = (
        np.issubdtype(a.dtype, np.integer)
        if kind == "integer"
        else (np.issubdtype(a.dtype, np.number) and not np.issubdtype(a.dtype, np.complexfloating))
    )
    if a.ndim != 1 or not (ok or a.size == 0) or a.dtype == np.bool_:
        raise InvalidGraphError(
            f"`{name}` must be a 1-D array of {kind} numbers; got dtype {a.dtype} and shape "
            f"{a.shape}"
        )
    a = np.array(a, dtype=dtype, copy=True)
    a.flags.writeable = False
    return a


def _checked_csr(indptr, indices, data, nodes):
    """Validate and copy CSR arrays that must already be canonical and symmetric.

    Every kernel indexes with these arrays unchecked, so this is what stands between a
    hand-built graph and a crash. Returns (indptr, indices, data, nodes).
    """
    indptr = _array(indptr, "indptr", "integer", np.int64)
    n = indptr.size - 1
    if n < 1:
        raise InvalidGraphError(
            f"`indptr` must have n + 1 >= 2 entries (at least one node); got {indptr.size}"
        )
    indices = _array(indices, "indices", "integer", np.int64)
    data = _array(data, "data", "real", np.float64)
    nnz = indices.size
    if indptr[0] != 0 or indptr[-1] != nnz or data.size != nnz or (np.diff(indptr) < 0).any():
        raise InvalidGraphError(
            "`indptr` must rise from 0 to len(indices) == len(data); got indptr from "
            f"{int(indptr[0])} to {int(indptr[-1])}, {nnz} indices and {data.size} weights"
            + (" (not non-decreasing)" if (np.diff(indptr) < 0).any() else "")
        )
    if nnz and (indices.min() < 0 or indices.max() >= n):
        bad = int(indices[(indices < 0) | (indices >= n)][0])
        raise InvalidGraphError(f"`indices` must lie in 0..{n - 1}; got {bad}")
    rows = np.repeat(np.arange(n), np.diff(indptr))
    unsorted = (indices[1:] <= indices[:-1]) & (rows[1:] == rows[:-1])
    if unsorted.any():
        i = int(rows[1:][unsorted][0])
        raise InvalidGraphError(
            f"`indices` must be strictly increasing within each row; row {i} is not"
        )
    bad = ~np.isfinite(data) | (data <= 0)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise InvalidGraphError(
            f"`data` must hold finite positive weights; got {float(data[p])!r} at "
            f"A[{int(rows[p])}, {int(indices[p])}]"
        )
    nodes = range(n) if nodes is None else nodes
    _check_nodes(nodes, n)
    _check_symmetric(sp.csr_array((data, indices, indptr), shape=(n, n)), nodes)
    return indptr, indices, data, nodes


def _check_nodes(nodes, n: int) -> None:
    if isinstance(nodes, range):
        ok = len(nodes) == n
    else:
        try:
            ok = len(nodes) == n and len(set(nodes)) == n
        except TypeError:  # not sized, or unhashable labels
            ok = False
    if not ok:
        raise InvalidGraphError(
            f"`nodes` must be {n} distinct hashable labels, one per row; got {nodes!r:.80}"
        )


def _check_volume(volume: float) -> None:
    if not volume <= 2.0**_MAX_VOLUME_LOG2:
        raise InvalidGraphError(
            f"`volume` must be at most 2**{_MAX_VOLUME_LOG2} (sepkit.as_graph divides larger "
            f"weights by a power of two); got {volume!r}"
        )


def _validated_fields(g) -> dict:
    """Every field of a directly constructed Graph, checked and converted (see Graph).

    ``g`` is read by its fields only: this module imports nothing of ``graph.py``, which
    imports it.
    """
    n = g.n_nodes
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise InvalidGraphError(f"`n_nodes` must be an integer >= 1; got {n!r}")
    if np.size(g.indptr) != n + 1:
        raise InvalidGraphError(
            f"`indptr` must have n_nodes + 1 = {n + 1} entries; got {np.size(g.indptr)}"
        )
    indptr, indices, data, nodes = _checked_csr(g.indptr, g.indices, g.data, g.nodes)
    degree = _array(g.degree, "degree", "real", np.float64)
    rows = _row_sums(indptr, data)
    if degree.size != n:
        raise InvalidGraphError(f"`degree` must have n_nodes = {n} entries; got {degree.size}")
    off = ~np.isclose(degree, rows, rtol=_DEGREE_RTOL, atol=0.0)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InvalidGraphError(
            f"`degree` must be the row sums of the adjacency matrix; got degree[{i}] = "
            f"{float(degree[i])!r} but row {i} sums to {float(rows[i])!r}"
        )
    volume = g.volume
    if not isinstance(volume, numbers.Real) or not math.isclose(
        volume, float(rows.sum()), rel_tol=_DEGREE_RTOL
    ):
        raise InvalidGraphError(
            f"`volume` must be the sum of the degrees ({float(rows.sum())!r}); got {volume!r}"
        )
    _check_volume(float(volume))
    scale = g.weight_scale
    if not isinstance(scale, numbers.Real) or not (math.isfinite(scale) and scale > 0):
        raise InvalidGraphError(f"`weight_scale` must be a finite number > 0; got {scale!r}")
    return {
        "indptr": indptr,
        "indices": indices,
        "data": data,
        "degree": degree,
        "volume": float(volume),
        "n_nodes": int(n),
        "nodes": nodes,
        "weight_scale": float(scale),
        "_index": None,
    }


def _first_entry(M, mask):
    """Row, column and value of the first flagged CSR entry."""
    k = int(np.flatnonzero(mask)[0])
    i = int(np.searchsorted(M.indptr, k, side="right") - 1)
    return i, int(M.indices[k]), float(M.data[k])


def _check_symmetric(M, nodes, shift: int = 0):
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
    w, w_mirror = math.ldexp(w, shift), math.ldexp(float(M[j, i]), shift)
    raise InvalidGraphError(
        f"`G` must be symmetric (undirected); got A[{nodes[i]!r}, {nodes[j]!r}] = {w!r} but "
        f"A[{nodes[j]!r}, {nodes[i]!r}] = {w_mirror!r} (use sepkit.symmetrize)"
    )
