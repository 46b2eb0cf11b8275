"""The graphs and scores of the partitioner benchmarks, shared by ``test_bench_codeseg.py``
and ``report_codeseg.py``.

- Planted-partition graphs (:func:`benchmarks.graphs.planted_partition`, seed of
  ``benchmarks/conftest.py``) of 1e4 .. 1e7 edges: 100-node blocks, 85% of the edges
  inside blocks, average degree 20.
- LFR graphs (``networkx.LFR_benchmark_graph``): n=5000, tau1=3, tau2=1.5, average
  degree 20, max degree 100, communities of 20..200 nodes, mu = 0.1 / 0.3 / 0.5, seed 0
  (a seed for which generation succeeds at every mu). networkx puts a few self-loops
  into LFR graphs; they are removed, because every peer counts a loop differently.
- Scores: H2 in bits (``sepkit.structural_entropy_2d``), number of clusters, NMI
  against the planted labels (:func:`nmi`, arithmetic normalisation as scikit-learn's
  ``normalized_mutual_info_score``).

>>> a = np.array([0, 0, 1, 1]); round(nmi(a, a), 6), round(nmi(a, np.array([0, 1, 0, 1])), 6)
(1.0, 0.0)
"""

from __future__ import annotations

import functools

import numpy as np

import sepkit
from benchmarks.graphs import planted_partition
from sepkit import Graph

__all__ = [
    "LFR_CASES",
    "PLANTED_SEED",
    "PLANTED_SIZES",
    "CASES",
    "case_graph",
    "nmi",
    "score",
]

PLANTED_SEED = 20250101  # the seed of benchmarks/conftest.py
PLANTED_SIZES = {"1e4": 10_000, "1e5": 100_000, "1e6": 1_000_000, "1e7": 10_000_000}
LFR_N = 5_000
LFR_SEED = 0
LFR_CASES = {"lfr-mu0.1": 0.1, "lfr-mu0.3": 0.3, "lfr-mu0.5": 0.5}

# Every benchmark graph, by name.
CASES = [f"planted-{s}" for s in PLANTED_SIZES] + list(LFR_CASES)


@functools.cache
def case_graph(name: str) -> tuple[Graph, np.ndarray]:
    """``(graph, planted labels)`` of a benchmark case, built once per process."""
    if name.startswith("planted-"):
        return planted_partition(PLANTED_SIZES[name.removeprefix("planted-")], seed=PLANTED_SEED)
    if name in LFR_CASES:
        return lfr_graph(LFR_CASES[name])
    raise ValueError(f"`name` must be one of {CASES}; got {name!r}")


def lfr_graph(mu: float, *, n: int = LFR_N, seed: int = LFR_SEED) -> tuple[Graph, np.ndarray]:
    """A seeded networkx LFR graph (self-loops removed) and its planted communities."""
    import networkx as nx

    G = nx.LFR_benchmark_graph(
        n,
        tau1=3,
        tau2=1.5,
        mu=mu,
        average_degree=20,
        max_degree=100,
        min_community=20,
        max_community=200,
        seed=seed,
    )
    G.remove_edges_from(list(nx.selfloop_edges(G)))
    ids: dict[frozenset, int] = {}
    labels = np.array(
        [ids.setdefault(frozenset(G.nodes[v]["community"]), len(ids)) for v in G],
        dtype=np.int64,
    )
    return sepkit.as_graph(G), labels


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information, ``MI / mean(H(a), H(b))`` (natural logs)."""
    a = np.unique(np.asarray(a), return_inverse=True)[1].ravel()
    b = np.unique(np.asarray(b), return_inverse=True)[1].ravel()
    n = a.size
    if n == 0:
        raise ValueError("`a` and `b` must not be empty")
    kb = int(b.max()) + 1
    pair, count = np.unique(a * kb + b, return_counts=True)
    pa = np.bincount(a) / n
    pb = np.bincount(b) / n
    pab = count / n
    mi = float(np.sum(pab * np.log(pab / (pa[pair // kb] * pb[pair % kb]))))
    ha = float(-np.sum(pa * np.log(pa)))
    hb = float(-np.sum(pb * np.log(pb)))
    if ha == 0.0 and hb == 0.0:  # both a single cluster: identical
        return 1.0
    return max(0.0, mi / ((ha + hb) / 2))


def score(graph: Graph, labels: np.ndarray, truth: np.ndarray) -> dict:
    """``h2_bits``, ``clusters`` and ``nmi`` of ``labels`` against the planted ``truth``."""
    labels = np.unique(np.asarray(labels), return_inverse=True)[1].astype(np.int64).ravel()
    return {
        "h2_bits": float(sepkit.structural_entropy_2d(graph, labels)),
        "clusters": int(labels.max()) + 1,
        "nmi": nmi(labels, truth),
    }
