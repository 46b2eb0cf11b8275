"""Print the Markdown table of ``docs/performance.md``: sepkit against the numpy/scipy peer.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.report_entropy

For each graph size and function: one untimed warm-up call of each implementation
(numba compilation and first-touch costs stay out), then ``rounds`` timed calls that
alternate sepkit and numpy, so both see the same machine load. Times are medians;
the ratio is numpy time / sepkit time from the same run. The two results are checked
to agree to 1e-9 before timing. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time

import numba
import numpy as np
import scipy

import sepkit
from benchmarks.graphs import SIZES, planted_partition
from benchmarks.test_bench_entropy import FUNCTIONS, assert_agree

log = logging.getLogger("report_entropy")

DEFAULT_ROUNDS = {"1e4": 301, "1e6": 31, "1e7": 11}
SEED = 20250101  # the seed of benchmarks/conftest.py


def time_pair(ours, peer, args, rounds):
    """Median seconds of ``ours(*args)`` and ``peer(*args)`` over alternating rounds."""
    ours(*args)
    peer(*args)
    t_ours, t_peer = [], []
    for _ in range(rounds):
        for f, acc in ((ours, t_ours), (peer, t_peer)):
            start = time.perf_counter()
            f(*args)
            acc.append(time.perf_counter() - start)
    return float(np.median(t_ours)), float(np.median(t_peer))


def environment() -> list[str]:
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = "not started"
    return [
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"numba {numba.__version__}, sepkit {sepkit.__version__}",
        f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
        f"numba threads {numba.get_num_threads()} ({layer} layer), "
        f"load average before the run {load}",
    ]


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed rounds per size (default: 301/31/11)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    sepkit.warmup()
    header = environment()
    rows = []
    for size in args.sizes:
        log.info("building the planted-partition graph with %s edges", size)
        G, labels = planted_partition(SIZES[size], seed=SEED)
        for name, (ours, peer) in FUNCTIONS.items():
            assert_agree(ours(G, labels), peer(G, labels))
            rounds = args.rounds or DEFAULT_ROUNDS[size]
            log.info("timing %s at %s edges (%d rounds)", name, size, rounds)
            t_ours, t_peer = time_pair(ours, peer, (G, labels), rounds)
            rows.append(
                f"| `{name}` | {size} | {G.n_nodes:,} | {G.n_edges:,} | {_fmt_ms(t_ours)} | "
                f"{_fmt_ms(t_peer)} | {t_peer / t_ours:.1f}x | {t_ours / G.n_edges * 1e9:.1f} |"
            )
        del G, labels

    for line in header:
        print(line + "  ")
    print()
    print("| function | size | n | m | sepkit ms | numpy ms | speed-up | sepkit ns/edge |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
