"""Print the partitioner comparison of ``docs/performance.md`` as Markdown tables.

One process runs every method once on every graph of ``benchmarks/codeseg_cases.py``
(not through pytest), so all ratios in a table come from the same run::

    make bench-peers
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_codeseg.py

Options: ``--quick`` leaves out the 1e7-edge graph and the slow peers (leidenalg on
1e6 edges, networkx on the 1e5-edge planted graph); ``--cases`` picks graphs; ``--json
PATH`` also writes the raw rows. On 1e7 edges only sepkit runs, plus networkit PLM as
the scaling reference of the near-linearity table.

Timing rules (the same as ``benchmarks/test_bench_codeseg.py``):

- sepkit: ``sepkit.codeseg(graph, ...)`` on a prebuilt ``sepkit.Graph``, after
  ``sepkit.warmup()`` and a warm-up call on the same graph (1e7 edges: on the 1e6 one),
  with ``numba.set_num_threads(1)``; ``codeseg_batch`` with numba's default thread
  count (and again with one thread).
- peers: their graph objects are built before the clock starts; only the
  partitioning call is timed. The reference CoDeSEG binary's time is its own
  ``detection done in X sec`` line (10 ms resolution), which leaves out parsing the
  edge file, building its hash maps and writing the output; its wall time is listed
  beside it.
- a run shorter than 1 s is repeated (three runs in all) and the fastest is kept.

The 1-minute load average is printed at the start and the end: on a shared 2-core
machine, keep a run where it stayed low.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import sepkit  # noqa: E402
from benchmarks import peers  # noqa: E402
from benchmarks.codeseg_cases import CASES, case_graph, score  # noqa: E402

log = logging.getLogger("report_codeseg")

GAME = {"defaults": {"max_iter": 5, "tau": 0.3}, "tau=0": {"max_iter": 5, "tau": 0.0}}
MODULARITY_PEERS = [
    "igraph multilevel",
    "igraph leiden",
    "leidenalg",
    "networkx louvain",
    "networkit PLM",
]
BIG = 5_000_000  # edges: sepkit (and networkit, for scale) only above this
BATCH_SHAPE = (10_000, 32, 32)
# polish=None (the default) polishes graphs this small: the best of 4 dense starts.
BATCH_VARIANTS = {
    "multilevel": {"method": "multilevel"},
    "multilevel, polish=False": {"method": "multilevel", "polish": False},
    "game": {"method": "game"},
}


def timed(prepared, *, repeat_below: float = 1.0, repeats: int = 3):
    """Run ``prepared`` (``repeats`` times when the first run is short); keep the fastest."""
    best = None
    walls = []
    for i in range(repeats):
        t0 = time.perf_counter()
        raw = prepared.run()
        wall = time.perf_counter() - t0
        labels, own = prepared.finish(raw)
        seconds = wall if own is None else own
        walls.append(wall)
        if best is None or seconds < best[1]:
            best = (labels, seconds, wall)
        if i == 0 and wall >= repeat_below:
            break
    prepared.cleanup()
    return best


def run_case(case: str, *, quick: bool, warm_graph) -> list[dict]:
    graph, truth = case_graph(case)
    rows = []
    log.info("%s: %d nodes, %d edges", case, graph.n_nodes, graph.n_edges)

    def add(method, settings, prepared, note=""):
        labels, seconds, wall = timed(prepared)
        row = dict(case=case, method=method, settings=settings, time_s=seconds, wall_s=wall)
        row.update(score(graph, labels, truth), note=note or prepared.note)
        rows.append(row)
        log.info(
            "  %-26s %-18s %8.3f s  H2 %.4f  k %d  NMI %.4f",
            method,
            settings,
            seconds,
            row["h2_bits"],
            row["clusters"],
            row["nmi"],
        )

    rows.append(
        dict(
            case=case,
            method="planted labels",
            settings="",
            time_s=None,
            wall_s=None,
            note="",
            **score(graph, truth, truth),
        )
    )

    # sepkit, warmed on this graph (or the 1e6 one for 1e7)
    sepkit.codeseg(graph if graph.n_edges < BIG else warm_graph, method="multilevel")
    add("sepkit multilevel", "seed 0", peers.prepare("sepkit multilevel", graph, seed=0))

    # game against the binary, equal settings, the binary's sweep order
    big = graph.n_edges >= BIG
    ef = None if big else peers.ReferenceEdgeFile(graph)
    order = peers.edge_order(graph) if big else ef.order
    for label, opts in GAME.items():
        settings = f"-n {opts['max_iter']} -e {opts['tau']:g}"
        sepkit.codeseg(warm_graph if big else graph, method="game", **opts)
        add(
            "sepkit game",
            settings,
            peers.prepare("sepkit game", graph, order=order, **opts),
            note=f"reference {label}",
        )
        if big:
            continue
        reason = peers.unavailable("CoDeSEG binary")
        if reason:
            rows.append(dict(case=case, method="CoDeSEG binary", settings=settings, note=reason))
            continue
        add(
            "CoDeSEG binary",
            settings,
            peers.prepare("CoDeSEG binary", graph, edge_file=ef, **opts),
            note=f"reference {label}",
        )
    if ef is not None:
        ef.close()

    # 1e7 edges: networkit PLM only, a scaling reference for the near-linearity table
    for name in ["networkit PLM"] if big else MODULARITY_PEERS:
        reason = peers.unavailable(name, graph)
        if (
            reason is None
            and quick
            and (
                (name == "leidenalg" and graph.n_edges >= 500_000)
                or (name == "networkx louvain" and graph.n_edges > 50_000 and "planted" in case)
            )
        ):
            reason = "left out by --quick"
        if reason:
            rows.append(dict(case=case, method=name, settings="", note=reason))
            continue
        add(name, "seed 0", peers.prepare(name, graph, seed=0))
    return rows


def batch_matrices() -> np.ndarray:
    """The batch rows' input: random symmetric matrices of ``BATCH_SHAPE``, zero diagonal."""
    rng = np.random.default_rng(0)
    X = rng.random(BATCH_SHAPE)
    A = (X + X.transpose(0, 2, 1)) / 2
    A[:, np.arange(BATCH_SHAPE[1]), np.arange(BATCH_SHAPE[1])] = 0.0
    return A


def batch_rows() -> list[dict]:
    A = batch_matrices()
    rows = []
    default_threads = numba.config.NUMBA_NUM_THREADS
    for threads in sorted({default_threads, 1}, reverse=True):
        numba.set_num_threads(threads)
        for method, options in BATCH_VARIANTS.items():
            sepkit.codeseg_batch(A, **options)  # warm-up (thread pool, caches)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                out = sepkit.codeseg_batch(A, **options)
                times.append(time.perf_counter() - t0)
            rows.append(
                dict(
                    method=method,
                    threads=threads,
                    time_s=min(times),
                    mean_h2_bits=float(out.entropy.mean()),
                    mean_clusters=float(out.n_clusters.mean()),
                )
            )
            log.info("batch %s threads=%d: %.3f s", method, threads, min(times))
    numba.set_num_threads(1)
    return rows


def fmt(x, digits=3):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def fmt_time(row):
    t = row.get("time_s")
    if t is None:
        return ""
    if row["method"] == "CoDeSEG binary" and t < 0.01:
        return "< 0.01"
    return f"{t:.3f}" if t < 10 else f"{t:.1f}"


def markdown(rows, batch, meta) -> str:
    out = []
    p = out.append
    p(
        f"Machine: {meta['machine']}; OMP_NUM_THREADS={meta['omp']}; numba threads: 1 for single "
        f"graphs, {meta['numba_default']} (default) for the batch. "
        f"1-minute load average {meta['load_start']:.2f} at the start, {meta['load_end']:.2f} "
        f"at the end; total {meta['total_s']:.0f} s."
    )
    p("")
    for case in dict.fromkeys(r["case"] for r in rows):
        sub = [r for r in rows if r["case"] == case]
        graph, _ = case_graph(case)
        ref = next(r["time_s"] for r in sub if r["method"] == "sepkit multilevel")
        p(f"### {case}: {graph.n_nodes:,} nodes, {graph.n_edges:,} edges")
        p("")
        p(
            "| method | settings | time s | H2 bits | clusters | NMI | time / sepkit multilevel "
            "| note |"
        )
        p("|---|---|---:|---:|---:|---:|---:|---|")
        for r in sub:
            if "h2_bits" not in r:
                p(f"| {r['method']} | {r['settings']} | skipped | | | | | {r['note']} |")
                continue
            ratio = "" if r["time_s"] is None else f"{r['time_s'] / ref:.2f}"
            note = r["note"]
            if r["method"] == "CoDeSEG binary":
                note = f"{note}; process wall {r['wall_s']:.2f} s"
            p(
                f"| {r['method']} | {r['settings']} | {fmt_time(r)} | {r['h2_bits']:.4f} "
                f"| {r['clusters']:,} | {r['nmi']:.4f} | {ratio} | {note} |"
            )
        p("")
    p(f"### codeseg_batch: {BATCH_SHAPE[0]:,} random symmetric {BATCH_SHAPE[1]}-node graphs")
    p("")
    p("| method | numba threads | time s | per graph µs | mean H2 bits | mean clusters |")
    p("|---|---:|---:|---:|---:|---:|")
    for b in batch:
        p(
            f"| {b['method']} | {b['threads']} | {b['time_s']:.3f} "
            f"| {b['time_s'] / BATCH_SHAPE[0] * 1e6:.1f} | {b['mean_h2_bits']:.4f} "
            f"| {b['mean_clusters']:.2f} |"
        )
    p("")
    planted = [c for c in dict.fromkeys(r["case"] for r in rows) if c.startswith("planted-")]
    if planted:
        p("### Near-linearity: time per edge on the planted graphs (1 thread)")
        p("")
        p(
            "| edges | multilevel s | multilevel ns/edge | game defaults s | game ns/edge "
            "| game tau=0 s | game tau=0 ns/edge | networkit PLM s | networkit ns/edge |"
        )
        p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for case in planted:
            m = case_graph(case)[0].n_edges
            cells = []
            for method, note in (
                ("sepkit multilevel", ""),
                ("sepkit game", "reference defaults"),
                ("sepkit game", "reference tau=0"),
                ("networkit PLM", None),
            ):
                r = next(
                    (
                        r
                        for r in rows
                        if r["case"] == case
                        and r["method"] == method
                        and r.get("time_s") is not None
                        and (note is None or r["note"] == note)
                    ),
                    None,
                )
                cells += (
                    ["", ""]
                    if r is None
                    else [f"{r['time_s']:.3f}", f"{r['time_s'] / m * 1e9:.0f}"]
                )
            p(f"| {m:,} | " + " | ".join(cells) + " |")
        p("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument(
        "--quick", action="store_true", help="leave out 1e7 edges and the slow peers"
    )
    parser.add_argument("--json", type=Path, help="also write the raw rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    cases = [c for c in args.cases if not (args.quick and c == "planted-1e7")]

    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    log.info("load average at start: %.2f", load_start)
    sepkit.warmup()
    numba.set_num_threads(1)
    warm_graph = case_graph("planted-1e6")[0] if "planted-1e7" in cases else None
    rows = []
    for case in cases:
        rows += run_case(case, quick=args.quick, warm_graph=warm_graph)
    batch = batch_rows()
    meta = dict(
        machine=f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        omp=os.environ.get("OMP_NUM_THREADS"),
        numba_default=numba.config.NUMBA_NUM_THREADS,
        load_start=load_start,
        load_end=os.getloadavg()[0],
        total_s=time.perf_counter() - t_start,
    )
    print(markdown(rows, batch, meta))
    if args.json:
        args.json.write_text(json.dumps(dict(meta=meta, rows=rows, batch=batch), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
