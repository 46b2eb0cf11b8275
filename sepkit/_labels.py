"""Validation of partitions (shared by every public function that takes ``labels``)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from sepkit._errors import InvalidLabelsError
from sepkit.graph import Graph

_COLLECTIONS = (set, frozenset, list, tuple, range)


class Labels:
    """A validated partition: ``codes`` in ``0..k-1`` and the user's label of each code."""

    __slots__ = ("codes", "k", "values")

    def __init__(self, codes: np.ndarray, values: np.ndarray):
        self.codes = codes
        self.values = values
        self.k = int(values.size)

    def code_of(self, label) -> int:
        """Code of a user label; ``None`` means a new cluster (code ``k``)."""
        if label is None:
            return self.k
        if isinstance(label, numbers.Integral) and not isinstance(label, bool):
            pos = int(np.searchsorted(self.values, label))
            if pos < self.k and self.values[pos] == label:
                return pos
        raise InvalidLabelsError(
            f"`target` must be a label in use ({_preview(self.values)}) or None; got {label!r}"
        )


def as_labels(G: Graph, labels, name: str = "labels") -> Labels:
    """Validate ``labels`` against ``G`` and encode them.

    Accepts an integer array of length n (any integer values), a list of
    disjoint node sets that cover the graph (the set at position c gets label
    c), or a dict node -> integer label. Messages call the argument ``name``.
    """
    n = G.n_nodes
    if isinstance(labels, Mapping):
        return _encode(_from_mapping(G, labels, name))
    if (
        isinstance(labels, (list, tuple))
        and len(labels) > 0
        and all(isinstance(c, _COLLECTIONS) for c in labels)
    ):
        return _encode(_from_communities(G, labels, name))
    arr = _as_array(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidLabelsError(
            f"`{name}` must have one entry per node (length {n}); got shape {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.integer) and not _python_ints(arr):
        raise InvalidLabelsError(f"`{name}` must be integers; got dtype {arr.dtype}")
    return _encode(arr)


def _as_array(labels) -> np.ndarray:
    """``labels`` as an array; integers beyond the int64/uint64 range as an object array."""
    if isinstance(labels, (list, tuple)) and all(_is_int(x) for x in labels):
        # numpy turns a list holding 2**63 into float64: keep such labels exact.
        try:
            return np.array(labels, dtype=np.int64)
        except OverflowError:
            return np.array(labels, dtype=object)
    return np.asarray(labels)


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def _python_ints(arr: np.ndarray) -> bool:
    return arr.dtype == object and all(_is_int(x) for x in arr.ravel())


def _encode(arr: np.ndarray) -> Labels:
    if arr.dtype == object:
        # Integers beyond int64 (and uint64): sorted and encoded by Python comparison.
        values, codes = np.unique(arr, return_inverse=True)
        return Labels(codes.astype(np.int64).ravel(), values)
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        # uint64 labels beyond the int64 range: keep their values (a cast would wrap them).
        values, codes = np.unique(arr, return_inverse=True)
        return Labels(codes.astype(np.int64), values)
    arr = arr.astype(np.int64, copy=False)
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0 and hi < 2 * arr.size + 16:
        # Labels already small: an O(n) remap instead of sorting.
        present = np.zeros(hi + 1, dtype=bool)
        present[arr] = True
        values = np.flatnonzero(present)
        remap = np.cumsum(present) - 1
        codes = remap[arr] if values.size != hi + 1 else arr
        return Labels(np.ascontiguousarray(codes, dtype=np.int64), values)
    values, codes = np.unique(arr, return_inverse=True)
    return Labels(codes.astype(np.int64), values)


def _from_mapping(G: Graph, mapping: Mapping, name: str) -> np.ndarray:
    out = np.full(G.n_nodes, -1, dtype=np.int64)
    seen = np.zeros(G.n_nodes, dtype=bool)
    for node, lab in mapping.items():
        i = _index(G, node, name)
        if not _is_int(lab):
            raise InvalidLabelsError(
                f"`{name}` must map nodes to integers; got {lab!r} for node {node!r}"
            )
        if out.dtype != object and not -(2**63) <= lab < 2**63:
            out = out.astype(object)  # a label beyond int64: keep every label exact
        out[i] = lab
        seen[i] = True
    _require_cover(G, seen, name)
    return out


def _from_communities(G: Graph, communities, name: str) -> np.ndarray:
    out = np.full(G.n_nodes, -1, dtype=np.int64)
    for c, members in enumerate(communities):
        for node in members:
            i = _index(G, node, name)
            if out[i] >= 0:
                raise InvalidLabelsError(
                    f"`{name}` must be disjoint node sets; node {node!r} is in sets "
                    f"{int(out[i])} and {c}"
                )
            out[i] = c
    _require_cover(G, out >= 0, name)
    return out


def _index(G: Graph, node, name: str) -> int:
    try:
        return G.index_of(node)
    except ValueError:
        raise InvalidLabelsError(f"`{name}` names an unknown node: {node!r}") from None


def _require_cover(G: Graph, seen: np.ndarray, name: str) -> None:
    if not seen.all():
        missing = G.nodes[int(np.flatnonzero(~seen)[0])]
        raise InvalidLabelsError(
            f"`{name}` must cover every node; node {missing!r} has no label "
            f"({int((~seen).sum())} nodes missing)"
        )


def _preview(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (", ..." if values.size > 8 else "")
