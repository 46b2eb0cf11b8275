"""The kernels of ``codeseg_batch``: one per search path, chosen in Python by method and size.

A single batch kernel calling every path (game, exact, dense, multilevel) would compile all
of them, each again into the batch's own code, for any batch. Each kernel here runs one
graph per parallel iteration and holds only its own path.
"""

import numpy as np

from sepkit._jit import jit, jit_inline, jit_parallel, prange
from sepkit._kernels.codeseg import (
    cluster_state,
    dense_to_csr,
    detachment_serial,
    game,
    search_exact,
    search_multilevel,
)
from sepkit._kernels.codeseg import polish_seeds as _polish_seeds
from sepkit._kernels.dense import dense_search
from sepkit._kernels.entropy import entropy_from_clusters, node_terms
from sepkit._kernels.partition import compact, shuffle_into


@jit
def _setup(A):
    """CSR arrays, volume and H1 (natural log) of one dense graph."""
    indptr, indices, data, degree = dense_to_csr(A)
    V = degree.sum()
    h1 = node_terms(degree, V).sum() if V > 0.0 else 0.0
    return indptr, indices, data, degree, V, h1


@jit
def _score(indptr, indices, data, degree, lab, h1, V):
    """The labels made contiguous, and their H2 (natural log)."""
    lab, k = compact(lab)
    inn, vol, _ = cluster_state(indptr, indices, data, degree, lab, k)
    return lab, entropy_from_clusters(h1, inn, vol, V)


@jit_inline
def _store(b, lab, h, indptr, indices, data, degree, labels, entropy, detachment):
    """Graph b's labels, H2 and detachment costs into the outputs (inlined: the parallel
    loops type their index differently, which would make two versions of a kernel)."""
    labels[b] = lab
    entropy[b] = h
    k = lab.max() + 1 if lab.size else 0
    detachment[b] = detachment_serial(indptr, indices, data, degree, lab, k)


@jit_parallel
def batch_game(adjacency, order, seeds, max_iter, tau, leave_gate):
    """The game (``leave_gate``) or the sweep on every graph: in ``order`` when ``seeds`` is
    empty, else the lowest H2 of one seeded random order per seed (the first on ties)."""
    B, n, _ = adjacency.shape
    labels = np.empty((B, n), dtype=np.int64)
    entropy = np.empty(B)
    detachment = np.empty((B, n))
    for b in prange(B):
        indptr, indices, data, degree, V, h1 = _setup(adjacency[b])
        if seeds.size == 0:
            lab, _, _ = game(indptr, indices, data, degree, order, max_iter, tau, h1, leave_gate)
            best, best_h = _score(indptr, indices, data, degree, lab, h1, V)
        else:
            best = np.arange(n)
            best_h = np.inf
            for r in range(seeds.size):
                perm = np.arange(n)
                shuffle_into(perm, np.uint64(seeds[r]))
                lab, _, _ = game(indptr, indices, data, degree, perm, max_iter, tau, h1, leave_gate)
                lab, h = _score(indptr, indices, data, degree, lab, h1, V)
                if h < best_h:
                    best, best_h = lab, h
            best_h = best_h if V > 0.0 else 0.0
        _store(b, best, best_h, indptr, indices, data, degree, labels, entropy, detachment)
    return labels, entropy, detachment


@jit_parallel
def batch_exact(adjacency):
    """The exact optimum of every graph (at most ``EXACT_MAX_NODES`` nodes)."""
    B, n, _ = adjacency.shape
    labels = np.empty((B, n), dtype=np.int64)
    entropy = np.empty(B)
    detachment = np.empty((B, n))
    for b in prange(B):
        indptr, indices, data, degree, V, h1 = _setup(adjacency[b])
        lab, _, _, _ = search_exact(indptr, indices, data, degree)
        lab, h = _score(indptr, indices, data, degree, lab, h1, V)
        _store(b, lab, h if V > 0.0 else 0.0, indptr, indices, data, degree, labels, entropy,
               detachment)  # fmt: skip
    return labels, entropy, detachment


@jit_parallel
def batch_dense(adjacency, seeds, max_iter, tol):
    """The polished search on a dense matrix, best of the seeds, on every graph."""
    B, n, _ = adjacency.shape
    labels = np.empty((B, n), dtype=np.int64)
    entropy = np.empty(B)
    detachment = np.empty((B, n))
    for b in prange(B):
        indptr, indices, data, degree, V, h1 = _setup(adjacency[b])
        best = np.arange(n)
        best_h = np.inf
        for r in range(seeds.size):
            lab, _, _, _, _ = dense_search(adjacency[b], _polish_seeds(seeds[r]), max_iter, tol,
                                           False)  # fmt: skip
            lab, h = _score(indptr, indices, data, degree, lab, h1, V)
            if h < best_h:
                best, best_h = lab, h
        _store(b, best, best_h if V > 0.0 else 0.0, indptr, indices, data, degree, labels,
               entropy, detachment)  # fmt: skip
    return labels, entropy, detachment


@jit_parallel
def batch_multilevel(adjacency, seeds, max_iter, tol, polish):
    """The sparse multilevel search, best of the seeds, on every graph (one thread each)."""
    B, n, _ = adjacency.shape
    labels = np.empty((B, n), dtype=np.int64)
    entropy = np.empty(B)
    detachment = np.empty((B, n))
    for b in prange(B):
        indptr, indices, data, degree, V, h1 = _setup(adjacency[b])
        best = np.arange(n)
        best_h = np.inf
        for r in range(seeds.size):
            lab, _, _, _ = search_multilevel(
                indptr, indices, data, degree, seeds[r], max_iter, tol, polish
            )
            lab, h = _score(indptr, indices, data, degree, lab, h1, V)
            if h < best_h:
                best, best_h = lab, h
        _store(b, best, best_h if V > 0.0 else 0.0, indptr, indices, data, degree, labels,
               entropy, detachment)  # fmt: skip
    return labels, entropy, detachment
