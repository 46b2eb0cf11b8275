"""The minimum-H2 partition of a tiny graph by trying every set partition.

Independent of sepkit's kernels: the partitions are listed as restricted growth
strings and scored all at once with numpy, from ``H2 = H1 + (1/V) sum_C in_C
log(vol_C / V)`` (checked against the plain-loop definition in ``naive.py`` by the
property tests). Used by the tiny-graph tests and by the large seeded sample in
``benchmarks/tiny_optimum.py``.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def set_partitions(n: int) -> np.ndarray:
    """Every partition of ``n`` nodes, as canonical label arrays (Bell(n) rows)."""
    out = []

    def extend(prefix, top):
        if len(prefix) == n:
            out.append(list(prefix))
            return
        for c in range(top + 2):
            extend([*prefix, c], max(top, c))

    extend([0], 0)
    return np.array(out)


def all_h2_bits(A: np.ndarray, partitions: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """H2 in bits of every partition (rows of ``partitions``) of the dense graph ``A``."""
    d = A.sum(1)
    V = d.sum()
    p = d[d > 0] / V
    h1 = -(p * np.log2(p)).sum()
    out = np.empty(len(partitions))
    for lo in range(0, len(partitions), chunk):
        part = partitions[lo : lo + chunk]
        same = part[:, :, None] == part[:, None, :]
        vol_of = same @ d
        log_vol = np.log2(np.where(vol_of > 0, vol_of, V) / V)
        out[lo : lo + chunk] = h1 + (A[None] * same * log_vol[:, :, None]).sum((1, 2)) / V
    return out


def optimum_bits(A: np.ndarray) -> float:
    """The lowest H2 (bits) over all partitions of the dense graph ``A``."""
    return float(all_h2_bits(A, set_partitions(A.shape[0])).min())


def random_tiny_graph(rng: np.random.Generator, n: int) -> np.ndarray:
    """A seeded random connected graph on ``n`` nodes as a dense symmetric matrix.

    A random spanning tree plus random extra edges; weights uniform in (0, 1] or all
    1 (half the graphs), and self-loops on some nodes (a third of the graphs).
    """
    A = np.zeros((n, n))
    order = rng.permutation(n)
    for i in range(1, n):
        u, v = order[i], order[rng.integers(0, i)]
        A[u, v] = A[v, u] = 1.0
    extra = np.triu(rng.random((n, n)) < rng.uniform(0.0, 0.8), 1)
    A = np.maximum(A, (extra | extra.T).astype(float))
    if rng.random() < 0.5:
        W = np.triu(rng.uniform(1e-3, 1.0, (n, n)), 1)
        A = A * (W + W.T)
    if rng.random() < 1 / 3:
        A[np.diag_indices(n)] = rng.random(n) * (rng.random(n) < 0.5)
    return A
