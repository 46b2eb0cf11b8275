"""Exhaustive optima on tiny graphs: every partition, every nested pair of partitions.

Vectorised numpy over all candidates at once (in chunks), straight from the formulas of
the design page (in bits); each is checked against ``naive`` on samples in the tests.
Independent of sepkit's kernels. Also used by the benchmarks' large seeded samples.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def partitions(n: int) -> np.ndarray:
    """Every set partition of n nodes, as canonical label arrays (restricted growth strings).

    Cached (Bell(n) rows): do not modify the returned array.
    """
    out = []

    def extend(prefix, top):
        if len(prefix) == n:
            out.append(list(prefix))
            return
        for c in range(top + 2):
            extend([*prefix, c], max(top, c))

    extend([0], 0)
    return np.array(out)


def _h1(d: np.ndarray, V: float) -> float:
    p = d[d > 0] / V
    return float(-(p * np.log2(p)).sum())


def h2_all(A: np.ndarray, parts: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """H2 in bits of every partition (rows of ``parts``): H1 + (1/V) sum_C in_C log(vol_C/V)."""
    d = A.sum(1)
    V = d.sum()
    h1 = _h1(d, V)
    out = np.empty(len(parts))
    for lo in range(0, len(parts), chunk):  # bounded memory: Bell(10) is 115,975 rows
        part = parts[lo : lo + chunk]
        same = part[:, :, None] == part[:, None, :]
        vol_of = same @ d
        log_vol = np.log2(np.where(vol_of > 0, vol_of, V) / V)
        out[lo : lo + chunk] = h1 + (A[None] * same * log_vol[:, :, None]).sum((1, 2)) / V
    return out


def optimum_bits(A: np.ndarray) -> float:
    """The lowest H2 (bits) over all partitions of the dense graph ``A``."""
    return float(h2_all(A, partitions(A.shape[0])).min())


def tree3_all(A: np.ndarray, table: dict):
    """Height-3 entropy (bits) of every nested pair (P1, P2): yields (P1, P2 rows, entropies).

    ``H = H1 + (1/V) [sum_{C in P1} in_C log(vol_C / vol_D(C))
    + sum_{D in P2} in_D log(vol_D / V)]``, with ``table[k]`` the partitions of k items (P2
    groups the clusters of P1).
    """
    n = A.shape[0]
    d = A.sum(1)
    V = d.sum()
    h1 = _h1(d, V)
    for p1 in table[n]:
        k = int(p1.max()) + 1
        Z = np.zeros((n, k))
        Z[np.arange(n), p1] = 1.0
        A1 = Z.T @ A @ Z
        vol1 = Z.T @ d
        in1 = np.diag(A1)
        p2 = table[k]
        same = p2[:, :, None] == p2[:, None, :]
        vol_d = same @ vol1  # (m, k): volume of the group of each cluster
        safe_d = np.where(vol_d > 0, vol_d, V)
        lower = np.where(in1 > 0, in1 * np.log2(np.where(vol1 > 0, vol1, 1.0) / safe_d), 0.0)
        upper = (A1[None] * same * np.log2(safe_d / V)[:, :, None]).sum((1, 2))
        yield p1, p2, h1 + (lower.sum(1) + upper) / V


def tree3_min(A: np.ndarray, table: dict) -> float:
    return min(float(h.min()) for _, _, h in tree3_all(A, table))


def h2_min_per_k(A: np.ndarray, parts: np.ndarray) -> dict:
    """The lowest H2 (bits) over partitions with exactly k clusters, for every k."""
    h = h2_all(A, parts)
    k = parts.max(axis=1) + 1
    return {int(c): float(h[k == c].min()) for c in np.unique(k)}


def random_graph(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random symmetric adjacency: sparse or dense, weighted or not, some self-loops."""
    W = np.triu(rng.random((n, n)) * (rng.random((n, n)) < rng.uniform(0.2, 0.9)), 1)
    if rng.random() < 0.5:
        W = (W > 0).astype(float)
    if rng.random() < 0.3:
        W[np.diag_indices(n)] = rng.random(n) * (rng.random(n) < 0.5)
    return W + np.triu(W, 1).T


def random_connected_graph(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random connected symmetric adjacency on ``n`` nodes.

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
