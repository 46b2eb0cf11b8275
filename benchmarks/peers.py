"""Thin adapters that run the peer partitioners on a :class:`sepkit.Graph`.

Every adapter has two halves, so that a benchmark can time the compute alone:

- :func:`prepare` builds the peer's own graph object (igraph ``Graph``, networkit
  ``Graph``, networkx ``Graph``, or the edge-list file of the reference CoDeSEG
  binary). This is never timed.
- the returned :class:`Prepared` has ``run()``, the call that is timed, and
  ``finish(raw)``, which turns its raw result into ``(labels, seconds)``.

:func:`run_peer` does both and returns ``(labels, compute seconds)``. ``seconds`` is
``time.perf_counter`` around ``run()`` for the in-process peers, and the binary's own
``detection done in X sec`` line for the reference CoDeSEG (its wall time also
contains parsing the edge file, building its hash maps and writing the output; see
``docs/performance.md``).

A peer whose package is missing raises :class:`PeerUnavailable` (with the reason) from
:func:`prepare`; :func:`unavailable` returns that reason without building anything.
The peers are installed only in the benchmark environment: ``make bench-peers``.

>>> from benchmarks.graphs import planted_partition
>>> G, _ = planted_partition(1_000, seed=0)
>>> out = run_peer("sepkit multilevel", G)
>>> out[0].shape
(100,)
"""

from __future__ import annotations

import importlib.util
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import sepkit
from sepkit import Graph

__all__ = [
    "NETWORKX_MAX_EDGES",
    "PEERS",
    "PeerUnavailable",
    "Prepared",
    "ReferenceEdgeFile",
    "codeseg_binary",
    "edge_order",
    "prepare",
    "run_peer",
    "unavailable",
]

# networkx Louvain is pure python (about 76 s on 1e6 edges): skipped above this size.
NETWORKX_MAX_EDGES = 200_000


class PeerUnavailable(Exception):
    """The peer cannot run here; ``str(exc)`` is the reason (missing package, size limit)."""


@dataclass
class Prepared:
    """A peer ready to run on one graph.

    ``run()`` is the timed call; ``finish(raw)`` maps its result to ``(labels, seconds)``,
    where ``seconds`` is ``None`` unless the peer reports its own compute time.
    """

    name: str
    run: Callable[[], object]
    finish: Callable[[object], tuple[np.ndarray, float | None]]
    note: str = ""
    cleanup: Callable[[], None] = field(default=lambda: None)

    def measure(self) -> tuple[np.ndarray, float]:
        """Run once: ``(labels, compute seconds)``."""
        t0 = time.perf_counter()
        raw = self.run()
        wall = time.perf_counter() - t0
        labels, own = self.finish(raw)
        return labels, wall if own is None else own


# ----------------------------------------------------------------------------- helpers


def _edges(graph: Graph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges ``u < v`` in CSR row order, and their weights."""
    rows = np.repeat(np.arange(graph.n_nodes, dtype=np.int64), np.diff(graph.indptr))
    cols = np.asarray(graph.indices)
    if np.any(rows == cols):
        raise ValueError(
            "the peer adapters take graphs without self-loops (each peer counts a loop "
            "differently); remove them first"
        )
    upper = rows < cols
    return rows[upper], cols[upper], np.asarray(graph.data)[upper]


def _unweighted(weights: np.ndarray) -> bool:
    return bool(np.all(weights == 1.0))


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise PeerUnavailable(
            f"`{module}` is not installed (benchmark-only peer: `make bench-peers`)"
        )


def _as_labels(membership) -> np.ndarray:
    return np.asarray(membership, dtype=np.int64)


# ----------------------------------------------------------------------------- sepkit


def _prepare_sepkit(graph: Graph, *, seed: int = 0, **options) -> Prepared:
    """``sepkit.codeseg(graph, seed=seed, **options)`` on the prebuilt CSR graph."""

    def run():
        return sepkit.codeseg(graph, seed=seed, **options)

    return Prepared("sepkit", run, lambda p: (p.labels, None))


def _prepare_sepkit_multilevel(graph, *, seed=0, **options):
    return _prepare_sepkit(graph, seed=seed, method="multilevel", **options)


def _prepare_sepkit_game(graph, *, seed=0, **options):
    return _prepare_sepkit(graph, seed=seed, method="game", **options)


# ----------------------------------------------------------------------------- igraph


def _igraph_graph(graph: Graph):
    import igraph as ig

    u, v, w = _edges(graph)
    g = ig.Graph(n=graph.n_nodes, edges=np.column_stack([u, v]), directed=False)
    weights = None
    if not _unweighted(w):
        g.es["weight"] = w.tolist()
        weights = "weight"
    return g, weights


def _prepare_igraph_multilevel(graph: Graph, *, seed: int = 0) -> Prepared:
    _need("igraph")
    import igraph as ig

    g, weights = _igraph_graph(graph)

    def run():
        ig.set_random_number_generator(random.Random(seed))
        return g.community_multilevel(weights=weights)

    return Prepared("igraph multilevel", run, lambda cl: (_as_labels(cl.membership), None))


def _prepare_igraph_leiden(graph: Graph, *, seed: int = 0, n_iterations: int = 2) -> Prepared:
    _need("igraph")
    import igraph as ig

    g, weights = _igraph_graph(graph)

    def run():
        ig.set_random_number_generator(random.Random(seed))
        return g.community_leiden(
            objective_function="modularity", weights=weights, n_iterations=n_iterations
        )

    return Prepared(
        "igraph leiden",
        run,
        lambda cl: (_as_labels(cl.membership), None),
        note=f'objective_function="modularity", n_iterations={n_iterations}',
    )


# ----------------------------------------------------------------------------- leidenalg


def _prepare_leidenalg(graph: Graph, *, seed: int = 0) -> Prepared:
    _need("igraph")
    _need("leidenalg")
    import leidenalg as la

    g, weights = _igraph_graph(graph)

    def run():
        return la.find_partition(g, la.ModularityVertexPartition, weights=weights, seed=seed)

    return Prepared("leidenalg", run, lambda p: (_as_labels(p.membership), None))


# ----------------------------------------------------------------------------- networkx


def _prepare_networkx(graph: Graph, *, seed: int = 0, max_edges: int = NETWORKX_MAX_EDGES):
    import networkx as nx

    if graph.n_edges > max_edges:
        raise PeerUnavailable(
            f"networkx louvain_communities skipped above {max_edges:,} edges "
            f"(pure python, about 76 s on 1e6 edges); this graph has {graph.n_edges:,}"
        )
    u, v, w = _edges(graph)
    G = nx.Graph()
    G.add_nodes_from(range(graph.n_nodes))
    G.add_weighted_edges_from(zip(u.tolist(), v.tolist(), w.tolist(), strict=True))

    def run():
        return nx.community.louvain_communities(G, weight="weight", seed=seed)

    def finish(communities):
        labels = np.empty(graph.n_nodes, dtype=np.int64)
        for c, members in enumerate(communities):
            labels[np.fromiter(members, dtype=np.int64, count=len(members))] = c
        return labels, None

    return Prepared("networkx louvain", run, finish)


# ----------------------------------------------------------------------------- networkit


def _prepare_networkit(graph: Graph, *, seed: int = 0, threads: int = 1) -> Prepared:
    _need("networkit")
    import networkit as nk

    u, v, w = _edges(graph)
    weighted = not _unweighted(w)
    G = nk.GraphFromCoo(
        (w, (u.astype(np.uint64), v.astype(np.uint64))),
        n=graph.n_nodes,
        weighted=weighted,
        directed=False,
    )
    nk.setNumberOfThreads(threads)  # a process-wide setting; set before timing

    def run():
        nk.engineering.setSeed(seed, True)
        plm = nk.community.PLM(G)
        plm.run()
        return plm.getPartition()

    return Prepared(
        "networkit PLM",
        run,
        lambda part: (_as_labels(part.getVector()), None),
        note=f"{threads} thread(s), default options (refine=False, turbo=True)",
    )


# ----------------------------------------------------------------------------- reference CoDeSEG

_DETECTION = re.compile(r"detection done in ([0-9.eE+-]+) sec")


def codeseg_binary() -> str:
    """Path of the reference binary: ``$CODESEG_BIN``, or the one the PyPI ``codeseg`` built."""
    path = os.environ.get("CODESEG_BIN")
    if path:
        if not os.access(path, os.X_OK):
            raise PeerUnavailable(f"$CODESEG_BIN={path!r} is not an executable file")
        return path
    spec = importlib.util.find_spec("codeseg")
    if spec is None or not spec.submodule_search_locations:
        raise PeerUnavailable(
            "`codeseg` is not installed (benchmark-only peer: `make bench-peers`)"
        )
    here = list(spec.submodule_search_locations)[0]
    path = os.path.join(here, "bin", "CoDeSEG.exe" if os.name == "nt" else "CoDeSEG")
    if not os.access(path, os.X_OK):
        raise PeerUnavailable(f"`codeseg` is installed but its binary is missing: {path}")
    return path


def edge_order(graph: Graph) -> np.ndarray:
    """Nodes in order of first appearance in :class:`ReferenceEdgeFile`'s edge list.

    That is the reference binary's node numbering, hence its sweep order; isolated
    nodes (absent from the file) come last.
    """
    u, v, _ = _edges(graph)
    flat = np.concatenate([np.column_stack([u, v]).ravel(), np.arange(graph.n_nodes)])
    _, first = np.unique(flat, return_index=True)
    return flat[np.sort(first)]


class ReferenceEdgeFile:
    """The edge-list file of one graph for the reference binary, written once.

    One ``u v`` line per undirected edge ``u < v`` in CSR row order (``u v w`` with
    ``weighted``). The binary numbers nodes by first appearance and sweeps them in that
    order; ``order`` is that order, to give ``sepkit.codeseg(..., order=order)`` equal
    settings. Isolated nodes do not appear in the file (the binary cannot take them).
    """

    def __init__(self, graph: Graph, directory: str | None = None):
        u, v, w = _edges(graph)
        self.n_nodes = graph.n_nodes
        self.weighted = not _unweighted(w)
        self._own_dir = directory is None
        self.directory = tempfile.mkdtemp(prefix="codeseg-") if directory is None else directory
        self.path = os.path.join(self.directory, "edges.txt")
        pairs = np.column_stack([u, v])
        with open(self.path, "w") as f:
            if self.weighted:
                lines = (
                    f"{a} {b} {c!r}\n" for (a, b), c in zip(pairs.tolist(), w.tolist(), strict=True)
                )
                f.writelines(lines)
            else:
                # One formatted block per chunk: ~10x faster than np.savetxt on 1e6 lines.
                for start in range(0, len(pairs), 1_000_000):
                    chunk = pairs[start : start + 1_000_000]
                    f.write("\n".join(f"{a} {b}" for a, b in chunk.tolist()))
                    f.write("\n")
        self.order = edge_order(graph)

    def close(self) -> None:
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _prepare_reference(
    graph: Graph,
    *,
    seed: int = 0,
    max_iter: int = 5,
    tau: float = 0.3,
    threads: int = 1,
    edge_file: ReferenceEdgeFile | None = None,
) -> Prepared:
    """The reference binary with ``-n max_iter -e tau -p threads`` (it has no seed)."""
    binary = codeseg_binary()
    own = edge_file is None
    ef = ReferenceEdgeFile(graph) if own else edge_file
    out = tempfile.NamedTemporaryFile(prefix="codeseg-", suffix=".txt", delete=False)
    out.close()
    args = [binary, "-i", ef.path, "-o", out.name, "-n", str(max_iter), "-e", repr(float(tau))]
    args += ["-p", str(threads)] + (["-w"] if ef.weighted else [])

    def run():
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout

    def finish(stdout):
        m = _DETECTION.search(stdout)
        if m is None:
            raise RuntimeError(f"no 'detection done in X sec' line in CoDeSEG's output:\n{stdout}")
        labels = np.full(graph.n_nodes, -1, dtype=np.int64)
        k = 0
        with open(out.name) as f:
            for line in f:
                ids = line.split()
                if ids:
                    labels[np.asarray(ids, dtype=np.int64)] = k
                    k += 1
        missing = labels < 0  # isolated nodes: not in the file, so singletons
        labels[missing] = k + np.arange(int(missing.sum()))
        return labels, float(m.group(1))

    def cleanup():
        os.unlink(out.name)
        if own:
            ef.close()

    return Prepared(
        "CoDeSEG binary",
        run,
        finish,
        note=f"-n {max_iter} -e {tau:g} -p {threads}; time = its 'detection done in' line",
        cleanup=cleanup,
    )


# ----------------------------------------------------------------------------- registry

PEERS: dict[str, Callable[..., Prepared]] = {
    "sepkit multilevel": _prepare_sepkit_multilevel,
    "sepkit game": _prepare_sepkit_game,
    "CoDeSEG binary": _prepare_reference,
    "igraph multilevel": _prepare_igraph_multilevel,
    "igraph leiden": _prepare_igraph_leiden,
    "leidenalg": _prepare_leidenalg,
    "networkx louvain": _prepare_networkx,
    "networkit PLM": _prepare_networkit,
}

_MODULES = {
    "CoDeSEG binary": None,
    "igraph multilevel": ("igraph",),
    "igraph leiden": ("igraph",),
    "leidenalg": ("igraph", "leidenalg"),
    "networkit PLM": ("networkit",),
}


def unavailable(name: str, graph: Graph | None = None) -> str | None:
    """Why ``name`` cannot run (on ``graph``), or ``None`` when it can."""
    if name not in PEERS:
        raise ValueError(f"`name` must be one of {sorted(PEERS)}; got {name!r}")
    try:
        if name == "CoDeSEG binary":
            codeseg_binary()
        for module in _MODULES.get(name) or ():
            _need(module)
    except PeerUnavailable as exc:
        return str(exc)
    if name == "networkx louvain" and graph is not None and graph.n_edges > NETWORKX_MAX_EDGES:
        return (
            f"skipped above {NETWORKX_MAX_EDGES:,} edges (pure python, about 76 s on 1e6 "
            f"edges); this graph has {graph.n_edges:,}"
        )
    return None


def prepare(name: str, graph: Graph, **options) -> Prepared:
    """Build ``name``'s graph object for ``graph`` (not timed); raises :class:`PeerUnavailable`."""
    reason = unavailable(name, graph)
    if reason is not None:
        raise PeerUnavailable(reason)
    return PEERS[name](graph, **options)


def run_peer(name: str, graph: Graph, **options) -> tuple[np.ndarray, float] | None:
    """``(labels, compute seconds)`` of one run of ``name``, or ``None`` when it cannot run."""
    try:
        prepared = prepare(name, graph, **options)
    except PeerUnavailable:
        return None
    try:
        return prepared.measure()
    finally:
        prepared.cleanup()
