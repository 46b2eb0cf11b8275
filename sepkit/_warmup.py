"""``sepkit.warmup``: every kernel compiled ahead of use, in one process or several.

The work is cut into tasks, each a few public calls on small graphs (and the parallel
kernels called directly: small graphs never reach them). With ``jobs > 1`` the tasks run
in that many fresh processes that share the kernel cache (its writes are locked, see
``sepkit/_jit.py``); the calling process compiles the kernels every task needs first, so
that the others load them instead of compiling them again each.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import sepkit
from sepkit._jit import cache_dirs
from sepkit._options import check_int


def _small():
    A = np.array(
        [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]
    )
    return A, np.array([0, 0, 1, 1])


def _ring(n: int = 12) -> np.ndarray:
    ring = np.roll(np.eye(n), 1, axis=1)
    return ring + ring.T


def task_entropy() -> None:
    """The entropy functions (serial kernels: what every other task calls too)."""
    A, labels = _small()
    sepkit.structural_entropy_1d(A)
    sepkit.structural_entropy_2d(A, labels)
    sepkit.move_delta(A, labels, 0, 1)
    sepkit.representatives(labels, sepkit.detachment_cost(A, labels))


def task_entropy_parallel() -> None:
    """The parallel kernels of the entropy functions (graphs of PARALLEL_MIN_WORK or more)."""
    from sepkit._kernels import entropy as ke

    g = sepkit.as_graph(_ring())
    n = g.n_nodes
    labels = np.arange(n) // 3
    own, loop, out = np.empty(n), np.empty(n), np.zeros(n)
    ke._node_terms_chunks(g.degree, g.volume, ke.even_bounds(n), out)
    bounds = ke.edge_bounds(g.indptr)
    ke._links_chunks(g.indptr, g.indices, g.data, labels.astype(np.int32), bounds, own, loop)
    inner, vol = ke.sum_by_cluster(labels, own, g.degree, 4)
    f_own = ke.f_terms(inner, vol, g.volume)
    ke.entropy_from_clusters(ke.total(out), inner, vol, g.volume)
    ke._detachment_chunks(
        g.degree, labels, own, loop, inner, vol, f_own, g.volume, ke.even_bounds(n), out
    )


def task_codeseg() -> None:
    """codeseg's exact, dense and game paths, overlaps, fixed k and several starts."""
    A, _ = _small()
    sepkit.codeseg(A, n_clusters=3)
    for method in ("game", "multilevel"):
        sepkit.codeseg(A, method=method, overlap=True)
        random = {"order": "random"} if method == "game" else {}
        sepkit.codeseg(A, method=method, n_starts=2, **random)
    sepkit.codeseg(_ring(), polish=True)


def task_codeseg_multilevel() -> None:
    """codeseg's sparse multilevel search (larger graphs, or without polish)."""
    sepkit.codeseg(_ring(), polish=False)


def task_multilevel_parallel() -> None:
    """The parallel kernels of codeseg's multilevel search (graphs of PARALLEL_MIN_WORK or
    more, with several threads), compiled on a small graph."""
    from sepkit import _multilevel

    g = sepkit.as_graph(_ring())
    n = g.n_nodes
    args = (g.indptr, g.indices, g.data, g.degree, np.arange(n), 0, 1, 1e-12, True, 2)
    _multilevel.multilevel(*args, parallel=True)


def task_batch() -> None:
    """codeseg_batch's game, exact and dense kernels."""
    A, _ = _small()
    for method in ("game", "multilevel"):
        sepkit.codeseg_batch(A[None], method=method)
        sepkit.codeseg_batch(A[None], method=method, n_starts=2)
    sepkit.codeseg_batch(_ring()[None], polish=True)


def task_batch_multilevel() -> None:
    """codeseg_batch's sparse multilevel kernel."""
    sepkit.codeseg_batch(_ring()[None], polish=False)


def task_tree() -> None:
    """The coding tree: its search, its entropy and its groups in parallel."""
    A, labels = _small()
    sepkit.structural_entropy_tree(A, [labels, np.zeros(4, dtype=np.int64)])
    sepkit.coding_tree(A)
    sepkit.coding_tree(A, height=3)
    sepkit.coding_tree(A, height=3, polish=False)
    from sepkit._tree_search import _regroup

    g = sepkit.as_graph(A)
    _regroup(g.indptr, g.indices, g.data, g.degree, labels, 2, labels[:0], 0, True, parallel=True)


# What every task calls: compiled first, by the calling process.
_FIRST = ("task_entropy",)
# The others, the longest first (so that a pool of processes ends about together).
_REST = (
    "task_tree",
    "task_batch",
    "task_codeseg",
    "task_batch_multilevel",
    "task_multilevel_parallel",
    "task_codeseg_multilevel",
    "task_entropy_parallel",
)


def _run(name: str) -> None:
    globals()[name]()


def warmup(jobs: int | None = 1) -> None:
    """See :func:`sepkit.warmup`."""
    if jobs is not None:
        jobs = check_int("jobs", jobs, 1)
    else:
        jobs = os.cpu_count() or 1
    for name in _FIRST:
        _run(name)
    if jobs == 1 or not cache_dirs():  # one process, or no cache to share: compile here
        for name in _REST:
            _run(name)
        return
    # spawn, not fork: a forked child would inherit a started threading layer
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(_REST)), mp_context=context) as pool:
        for future in [pool.submit(_run, name) for name in _REST]:
            future.result()
