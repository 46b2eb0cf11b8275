"""The multilevel search of :func:`sepkit.codeseg`, its levels and rounds driven from Python.

The same steps, in the same order and with the same arithmetic, as the kernel
:func:`sepkit._kernels.multilevel.multilevel` (which kernels that run a search per graph
or per group call), but every step is a kernel called from here: numba compiles each
step once, instead of once more into every kernel above it. On graphs below
``PARALLEL_MIN_WORK``, or with one thread, the steps are the serial twins, so such a
graph never compiles a ``prange`` kernel. Each call costs a few microseconds, against
milliseconds for a level of a graph large enough to matter.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from sepkit._jit import PARALLEL_MIN_WORK, serial_twin
from sepkit._kernels import codeseg as _kc
from sepkit._kernels import dense as _kd
from sepkit._kernels import entropy as _ke
from sepkit._kernels import levels as _kl
from sepkit._kernels import multilevel as _km
from sepkit._kernels.partition import compact


class _Steps(NamedTuple):
    prepare_level: object
    cluster_state: object
    local_move: object
    refine: object
    aggregate: object


_PARALLEL = _Steps(_kl.prepare_level, _kl.cluster_state, _km.local_move, _km.refine, _kl.aggregate)
_SERIAL = _Steps(*(serial_twin(k) for k in _PARALLEL))


def _steps(indptr: np.ndarray, n_threads: int, parallel: bool | None) -> _Steps:
    """The parallel kernels where the top level may use them (each level still decides by
    its own size, as the kernel does), else their serial twins; ``parallel`` forces it."""
    if parallel is None:
        n = indptr.size - 1
        parallel = n_threads > 1 and n + indptr[-1] >= PARALLEL_MIN_WORK
    return _PARALLEL if parallel else _SERIAL


def multilevel(
    indptr, indices, data, degree, init, seed, max_rounds, tol, coarse, n_threads, parallel=None
):
    """:func:`sepkit._kernels.multilevel.multilevel`: the same arguments and results
    (``parallel`` forces the choice of kernels, for ``warmup``)."""
    k = _steps(indptr, n_threads, parallel)
    n = degree.size
    V = _ke.total(degree)
    labels, _ = compact(init)
    if V <= 0.0:
        return labels, np.empty(0), 0, True
    h1 = _ke.total(_ke.node_terms(degree, V))
    l_indptr, l_indices, l_data, l_degree, l_loop, l_groups, l_order = k.prepare_level(
        indptr, indices, data, degree, n_threads
    )
    part = labels[l_order]
    hist: list[float] = []
    state = np.uint64(seed)
    rounds = 0
    converged = False
    level0 = (l_indptr, l_indices, l_data, l_degree, l_loop, l_groups)
    while rounds < max_rounds:
        rounds += 1
        moved, state = _descend(k, *level0, part, state, V, h1, tol, coarse, n_threads, hist)
        part, _ = compact(part)
        inn, vol, size = k.cluster_state(l_indptr, l_indices, l_data, l_degree, part, n, n_threads)
        k.local_move(
            l_indptr, l_indices, l_data, l_degree, l_loop, part, inn, vol, size, l_groups,
            state, V, tol, n_threads, n + 1,
        )  # fmt: skip
        hist.append(_ke.entropy_from_clusters(h1, inn, vol, V))
        if not moved:
            converged = True
            break
    labels[l_order] = part
    labels, _ = compact(labels)
    return labels, np.array(hist), rounds, converged


def _descend(
    k, g_indptr, g_indices, g_data, g_degree, g_loop, groups, labels, state, V, h1, tol, coarse,
    n_threads, hist,
):  # fmt: skip
    """:func:`sepkit._kernels.multilevel._descend`, one kernel call per step."""
    n = g_degree.size
    part = labels.copy()
    member = np.arange(n)  # level-0 node -> its node on the current level
    moved = False
    level = 0
    while True:
        n_g = g_degree.size
        inn, vol, size = k.cluster_state(
            g_indptr, g_indices, g_data, g_degree, part, n_g, n_threads
        )
        moves, state = k.local_move(
            g_indptr, g_indices, g_data, g_degree, g_loop, part, inn, vol, size, groups,
            state, V, tol, n_threads, n_g + 1,
        )  # fmt: skip
        state = np.uint64(state)  # numba returns a uint64 as a Python int
        moved = moved or (level > 0 and moves > 0)
        level += 1
        hist.append(_ke.entropy_from_clusters(h1, inn, vol, V))
        part, k_part = compact(part)
        if k_part == n_g:
            break
        sub, state = k.refine(
            g_indptr, g_indices, g_data, g_degree, g_loop, part, groups, state, V, tol, coarse,
            n_threads,
        )  # fmt: skip
        state = np.uint64(state)
        sub, k_sub = compact(sub)
        if k_sub == n_g:  # refinement merged nothing: aggregate by the clusters
            sub, k_sub = part, k_part
        c_indptr, c_indices, c_data, c_degree = k.aggregate(
            g_indptr, g_indices, g_data, g_degree, sub, k_sub, n_threads
        )
        g_indptr, g_indices, g_data, g_degree, g_loop, groups, order = k.prepare_level(
            c_indptr, c_indices, c_data, c_degree, n_threads
        )
        rank = np.empty(k_sub, dtype=np.int64)
        rank[order] = np.arange(k_sub)
        next_part = np.empty(k_sub, dtype=np.int64)
        next_part[rank[sub]] = part  # a sub-cluster lies in one cluster: any member's label
        member = rank[sub[member]]
        part = next_part
    labels[:] = part[member]
    return moved, state


def search(indptr, indices, data, degree, seed, max_rounds, tol, polish, n_threads):
    """:func:`sepkit._kernels.codeseg.search_multilevel`: one start, or with ``polish`` the
    best of ``POLISH_STARTS``; the same arguments and results."""
    n = degree.size
    V = _ke.total(degree)
    seeds = _kc.polish_seeds_py(seed) if polish else np.array([seed], dtype=np.uint64)
    h1 = _ke.total(_ke.node_terms(degree, V)) if V > 0.0 else 0.0
    best = np.arange(n)
    best_h = np.inf
    best_history = np.empty(0)
    best_rounds = 0
    best_converged = True
    for s in seeds:
        labels, history, rounds, converged = multilevel(
            indptr, indices, data, degree, np.arange(n), s, max_rounds, tol, not polish, n_threads
        )
        lab, k = compact(labels)
        inn, vol, _ = _kc.cluster_state(indptr, indices, data, degree, lab, k)
        h = _ke.entropy_from_clusters(h1, inn, vol, V)
        if h < best_h - tol:  # ties within rounding keep the earliest start
            best, best_h = labels, h
            best_history, best_rounds, best_converged = history, rounds, converged
    return best, best_history, best_rounds, best_converged


def search_by_size(indptr, indices, data, degree, seed, max_rounds, tol, polish, n_threads):
    """:func:`sepkit._kernels.codeseg.search` (the exact optimum, the dense search or the
    multilevel one, by size), its path chosen and driven here so that only that path's
    steps compile; the same arguments and results."""
    n = degree.size
    if polish and n <= _kc.EXACT_MAX_NODES:
        return _kc.search_exact(indptr, indices, data, degree)
    if polish and n <= _kc.DENSE_MAX_NODES:
        A = sp.csr_matrix((data, indices, indptr), shape=(n, n)).toarray()  # no kernel
        labels, _, history, rounds, converged = _kd.best_of_starts(
            A, _kc.polish_seeds_py(seed), max_rounds, tol, False
        )
        return labels, history, rounds, converged
    return search(indptr, indices, data, degree, seed, max_rounds, tol, polish, n_threads)
