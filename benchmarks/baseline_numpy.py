"""The numpy/scipy peer of the benchmarks: H2 and detachment costs, fully vectorised.

The same formulas as sepkit (``docs/definitions.md``) on the same CSR arrays, written
the way one would without numba: ``np.repeat`` for the row of every stored entry,
``np.bincount`` for every per-node and per-cluster sum, masked logs; no python loop
over nodes or edges. Results are in bits.

Both functions take ``labels`` as integer codes in ``0 .. k-1`` (what
:func:`benchmarks.graphs.planted_partition` returns).
"""

from __future__ import annotations

import math

import numpy as np

from sepkit import Graph

__all__ = ["structural_entropy_2d", "detachment_cost"]

_LN2 = math.log(2.0)


def structural_entropy_2d(G: Graph, labels: np.ndarray) -> float:
    """``H2 = H1 + (1/V) sum_C in_C log(vol_C / V)``, in bits."""
    V = G.volume
    if V <= 0.0:
        return 0.0
    k = int(labels.max()) + 1
    inner, vol, _, _ = _cluster_sums(G, labels, k)
    return (_entropy_1d(G.degree, V) + float(_f(inner, vol, V).sum()) / V) / _LN2


def detachment_cost(G: Graph, labels: np.ndarray) -> np.ndarray:
    """``D(o) = (1/V)[f(in_C - 2k - s, vol_C - d) - f(in_C, vol_C) + f(s, d)]``, in bits."""
    n, V = G.n_nodes, G.volume
    if V <= 0.0:
        return np.zeros(n)
    k = int(labels.max()) + 1
    inner, vol, w, s = _cluster_sums(G, labels, k)
    d = G.degree
    in_c = inner[labels]
    vol_c = vol[labels]
    k_c = w - s  # weight to the rest of the cluster
    cost = (_f(in_c - 2.0 * k_c - s, vol_c - d, V) - _f(in_c, vol_c, V) + _f(s, d, V)) / V
    cost[(d <= 0.0) | (vol_c - d <= 0.0)] = 0.0
    return cost / _LN2


def _cluster_sums(G: Graph, labels: np.ndarray, k: int):
    """``in_C`` and ``vol_C`` per cluster; internal weight ``w`` and self-loop ``s`` per node."""
    n = G.n_nodes
    rows = np.repeat(np.arange(n), np.diff(G.indptr))
    same = labels[rows] == labels[G.indices]
    w = np.bincount(rows[same], weights=G.data[same], minlength=n)
    loop = rows == G.indices
    s = np.bincount(rows[loop], weights=G.data[loop], minlength=n)
    inner = np.bincount(labels, weights=w, minlength=k)
    vol = np.bincount(labels, weights=G.degree, minlength=k)
    return inner, vol, w, s


def _entropy_1d(degree: np.ndarray, V: float) -> float:
    p = degree[degree > 0.0] / V
    return float(-(p * np.log(p)).sum())


def _f(inner: np.ndarray, vol: np.ndarray, V: float) -> np.ndarray:
    """``inner * log(vol / V)``, 0 where ``inner`` or ``vol`` is not positive."""
    ok = (inner > 0.0) & (vol > 0.0)
    out = np.zeros(np.broadcast(inner, vol).shape)
    out[ok] = inner[ok] * np.log(vol[ok] / V)
    return out
