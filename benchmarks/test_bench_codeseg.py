"""sepkit.codeseg against the peer partitioners, same graphs, same run.

- ``test_multilevel``: sepkit's multilevel mode against igraph ``community_multilevel``
  and ``community_leiden(objective_function="modularity")``, leidenalg
  ``ModularityVertexPartition``, networkx ``louvain_communities`` and networkit PLM
  (one thread).
- ``test_game``: sepkit's reference mode against the reference CoDeSEG binary at equal
  settings (same ``max_iter``/``tau``, same sweep order: first appearance in the edge
  file the binary reads): the reference defaults (``-n 5 -e 0.3``) and ``tau=0``.
- ``test_batch``: ``codeseg_batch`` on 10,000 random symmetric 32-node graphs.

Graphs: ``benchmarks/codeseg_cases.py`` (planted partition 1e4 .. 1e7 edges, LFR at
mu = 0.1/0.3/0.5). ``benchmark.extra_info`` holds H2 (bits), clusters and NMI against
the planted labels. Single-graph benchmarks run with one numba thread (peers are
single-threaded too); the batch runs with numba's default thread count.

Timing: only the partitioning call is timed; every peer's graph object is built
before. For the reference binary the benchmark's own time is the wall time of the
process (it includes parsing the edge file and writing the result); its compute time,
the binary's ``detection done in X sec`` line, is in ``extra_info["compute_s"]``.

Slow cases (1e7 edges, leidenalg on 1e6 edges, networkx on 1e5 edges) carry
``@pytest.mark.slow`` and are skipped unless ``SEPKIT_BENCH_SLOW=1``::

    SEPKIT_BENCH_SLOW=1 make bench
    SEPKIT_BENCH_SLOW=1 .venv/bin/python -m pytest benchmarks/test_bench_codeseg.py \
        --benchmark-only -o addopts=""

``benchmarks/report_codeseg.py`` prints the same comparison as Markdown tables.
Peers missing from the environment are skipped (install them with ``make bench-peers``).
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

import sepkit
from benchmarks import peers
from benchmarks.codeseg_cases import LFR_CASES, case_graph, score

RUN_SLOW = os.environ.get("SEPKIT_BENCH_SLOW", "") not in ("", "0")
SLOW = [
    pytest.mark.slow,
    pytest.mark.skipif(not RUN_SLOW, reason="slow case: set SEPKIT_BENCH_SLOW=1 to run it"),
]

SMALL = ["planted-1e4", "planted-1e5", *LFR_CASES]
LARGE = "planted-1e6"
HUGE = "planted-1e7"

MULTILEVEL_PEERS = [
    "igraph multilevel",
    "igraph leiden",
    "leidenalg",
    "networkx louvain",
    "networkit PLM",
]
# (case, peer) pairs that take more than ~10 s a round.
SLOW_PEERS = {(LARGE, "leidenalg"), ("planted-1e5", "networkx louvain")}

GAME_SETTINGS = {"default": {"max_iter": 5, "tau": 0.3}, "tau0": {"max_iter": 5, "tau": 0.0}}

BATCH_SHAPE = (10_000, 32, 32)


def _cases(methods, *, slow_pairs=frozenset(), huge=()):
    out = []
    for case in [*SMALL, LARGE]:
        for method in methods:
            marks = SLOW if (case, method) in slow_pairs else []
            out.append(pytest.param(case, method, marks=marks, id=f"{case}-{method}"))
    for method in huge:
        out.append(pytest.param(HUGE, method, marks=SLOW, id=f"{HUGE}-{method}"))
    return out


def _rounds(graph, *, slow_peer=False):
    """(warmup_rounds, rounds): three timed rounds up to 1e5 edges, fewer above."""
    if graph.n_edges >= 5_000_000:
        return 0, 1
    if graph.n_edges >= 500_000:
        return (0, 1) if slow_peer else (1, 2)
    return (0, 1) if slow_peer else (1, 3)


@pytest.fixture
def one_numba_thread():
    """Single-graph comparisons run sepkit on one thread, like the single-threaded peers."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.fixture(scope="session")
def reference_files():
    """A cache ``case -> ReferenceEdgeFile``: each edge file is written once per session."""
    cache: dict = {}

    def get(case):
        if case not in cache:
            cache[case] = peers.ReferenceEdgeFile(case_graph(case)[0])
        return cache[case]

    yield get
    for ef in cache.values():
        ef.close()


def _record(benchmark, case, graph, truth, labels, **extra):
    benchmark.extra_info.update(case=case, n_nodes=graph.n_nodes, n_edges=graph.n_edges, **extra)
    benchmark.extra_info.update(score(graph, labels, truth))


def _run(benchmark, prepared, graph, slow_peer=False):
    """Time ``prepared.run`` with pedantic; return the last labels and every own-time."""
    results = []

    def call():
        results.append(prepared.run())

    warmup, rounds = _rounds(graph, slow_peer=slow_peer)
    try:
        benchmark.pedantic(call, warmup_rounds=warmup, rounds=rounds, iterations=1)
        finished = [prepared.finish(raw) for raw in results[warmup:]]
    finally:
        prepared.cleanup()
    return finished[-1][0], [own for _, own in finished if own is not None]


def _prepare_or_skip(name, graph, **options):
    try:
        return peers.prepare(name, graph, **options)
    except peers.PeerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    ("case", "method"),
    _cases(
        ["sepkit multilevel", *MULTILEVEL_PEERS], slow_pairs=SLOW_PEERS, huge=["sepkit multilevel"]
    ),
)
def test_multilevel(benchmark, one_numba_thread, case, method):
    graph, truth = case_graph(case)
    prepared = _prepare_or_skip(method, graph, seed=0)
    benchmark.group = f"multilevel {case}"
    labels, _ = _run(benchmark, prepared, graph, slow_peer=(case, method) in SLOW_PEERS)
    _record(benchmark, case, graph, truth, labels, method=method, note=prepared.note)


_GAME_IMPLS = [f"{impl} {s}" for s in GAME_SETTINGS for impl in ("sepkit", "binary")]


@pytest.mark.parametrize(
    ("case", "impl"),
    _cases(_GAME_IMPLS, huge=[f"sepkit {s}" for s in GAME_SETTINGS]),
)
def test_game(benchmark, one_numba_thread, reference_files, case, impl):
    graph, truth = case_graph(case)
    who, setting = impl.split()
    options = GAME_SETTINGS[setting]
    if case == HUGE:  # no binary run on 1e7 edges: only the order of its edge file
        prepared = _prepare_or_skip("sepkit game", graph, order=peers.edge_order(graph), **options)
    else:
        ef = reference_files(case)
        if who == "sepkit":
            prepared = _prepare_or_skip("sepkit game", graph, order=ef.order, **options)
        else:
            prepared = _prepare_or_skip("CoDeSEG binary", graph, edge_file=ef, **options)
    benchmark.group = f"game {setting} {case}"
    labels, own = _run(benchmark, prepared, graph, slow_peer=who == "binary")
    extra = {"compute_s": own} if own else {}
    _record(benchmark, case, graph, truth, labels, method=impl, settings=options, **extra)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    X = rng.random(BATCH_SHAPE)
    A = (X + X.transpose(0, 2, 1)) / 2
    A[:, np.arange(BATCH_SHAPE[1]), np.arange(BATCH_SHAPE[1])] = 0.0
    return A


BATCH_VARIANTS = {
    "multilevel": {"method": "multilevel"},
    "multilevel-nopolish": {"method": "multilevel", "polish": False},
    "game": {"method": "game"},
}


@pytest.mark.parametrize("variant", list(BATCH_VARIANTS))
def test_batch(benchmark, batch, variant):
    """10,000 graphs of 32 nodes, numba's default thread count (target: under 1 s)."""
    benchmark.group = "codeseg_batch 10000 x 32"
    benchmark.extra_info.update(shape=list(BATCH_SHAPE), numba_threads=numba.get_num_threads())
    out = benchmark.pedantic(
        sepkit.codeseg_batch,
        args=(batch,),
        kwargs=BATCH_VARIANTS[variant],
        warmup_rounds=1,
        rounds=3,
    )
    benchmark.extra_info.update(
        mean_h2_bits=float(out.entropy.mean()), mean_clusters=float(out.n_clusters.mean())
    )
