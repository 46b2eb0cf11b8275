"""sepkit's H2 and detachment costs against the vectorised numpy/scipy peer, same graphs, same run.

Run with ``make bench`` (or ``pytest benchmarks --benchmark-only -p no:doctest``). Each
benchmark group is one function at one graph size, so the table pytest-benchmark prints
shows the sepkit/numpy ratio directly. ``benchmarks/report_entropy.py`` prints the same
comparison as the Markdown table quoted in ``docs/performance.md``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import sepkit
from benchmarks import baseline_numpy

# Timed rounds per size: enough for a stable median without making 1e7 take minutes.
ROUNDS = {"1e4": 200, "1e6": 15, "1e7": 5}

FUNCTIONS = {
    "structural_entropy_2d": (sepkit.structural_entropy_2d, baseline_numpy.structural_entropy_2d),
    "detachment_cost": (sepkit.detachment_cost, baseline_numpy.detachment_cost),
}


def assert_agree(ours, peer, *, rtol=1e-9):
    """The two implementations agree to ``rtol`` of the largest magnitude."""
    ours, peer = np.asarray(ours), np.asarray(peer)
    scale = max(float(np.abs(peer).max()), np.finfo(float).tiny)
    err = float(np.abs(ours - peer).max()) / scale
    assert err <= rtol, f"sepkit and numpy differ by {err:.3g} (relative)"


@pytest.mark.parametrize("impl", ["sepkit", "numpy"])
@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("size", list(ROUNDS))
def test_entropy(benchmark, planted_graphs, size, function, impl):
    G, labels = planted_graphs(size)
    ours, peer = FUNCTIONS[function]
    assert_agree(ours(G, labels), peer(G, labels))

    benchmark.group = f"{function} m={size}"
    benchmark.extra_info.update(n_nodes=G.n_nodes, n_edges=G.n_edges)
    target = ours if impl == "sepkit" else peer
    benchmark.pedantic(target, args=(G, labels), warmup_rounds=1, rounds=ROUNDS[size])


_COLD_START = textwrap.dedent(
    """
    import time
    t = time.perf_counter()
    import sepkit
    sepkit.warmup()
    print(time.perf_counter() - t)
    """
)


def _run_cold_start(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = subprocess.run(
        [sys.executable, "-c", _COLD_START], env=env, check=True, capture_output=True, text=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("cache", ["empty", "filled"])
def test_cold_start(benchmark, tmp_path_factory, cache):
    """``import sepkit; sepkit.warmup()`` in a fresh interpreter.

    ``empty``: a new, empty ``NUMBA_CACHE_DIR`` every round, so every kernel compiles
    (what the first use on a new machine costs). ``filled``: the cache of a previous run,
    so kernels load from disk (every later process). The time includes starting python.
    """
    benchmark.group = "cold start: python -c 'import sepkit; sepkit.warmup()'"
    filled = tmp_path_factory.mktemp("numba-cache-filled")
    if cache == "filled":
        _run_cold_start(filled)
    inner = []

    def setup():
        where = filled if cache == "filled" else tmp_path_factory.mktemp("numba-cache-empty")
        return (where,), {}

    def run(where):
        inner.append(_run_cold_start(where))

    # Compiling everything takes about a minute on a 2-core machine: two rounds suffice.
    benchmark.pedantic(run, setup=setup, rounds=2 if cache == "empty" else 5, warmup_rounds=0)
    benchmark.extra_info["import_and_warmup_s"] = inner
