"""Print sepkit's first-call times from an empty kernel cache, and compiled versions per kernel.

Every case runs in a fresh Python process with its own empty ``NUMBA_CACHE_DIR``, so each
figure is what a new user waits for on a first call::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_cold_start.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_cold_start.py --cases codeseg,cli

For each case it prints the import time, the first call's time, wall-clock and CPU (for
``cli``: the whole ``python -m sepkit`` run; on a loaded machine the CPU time is the one
to compare, compilation being one thread; for ``warmup-jobsN``, ``python -m sepkit warmup
--jobs N``: wall-clock, and CPU of all its processes), the same call again in the same
process (warm) and the number of kernels compiled. Then, after ``warmup`` and after a set of
ordinary calls (every public function on networkx, scipy.sparse and dense input, in the
process of ``warmup``), every kernel holding more than one compiled version, with its
signatures.
``docs/performance.md`` ("First calls") quotes this script's output.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

# What each case runs, after ``import networkx as nx, numpy as np, sepkit`` and ``G =
# nx.karate_club_graph()``; ``first`` is timed once cold, then once more warm.
CASES = {
    "structural_entropy_2d": (
        "labels = [0 if G.nodes[v]['club'] == 'Mr. Hi' else 1 for v in G]",
        "sepkit.structural_entropy_2d(G, labels)",
    ),
    "structural_entropy_tree": (
        "fine = [v // 6 for v in G]",
        "sepkit.structural_entropy_tree(G, [fine, [c // 3 for c in fine]])",
    ),
    "detachment_cost": (
        "labels = [v // 6 for v in G]",
        "sepkit.detachment_cost(G, labels)",
    ),
    "codeseg": ("", "sepkit.codeseg(G)"),
    "codeseg_game": ("", "sepkit.codeseg(G, method='game')"),
    "codeseg_batch": (
        "A = np.stack([nx.to_numpy_array(nx.cycle_graph(8)) for _ in range(4)])",
        "sepkit.codeseg_batch(A)",
    ),
    "coding_tree": ("", "sepkit.coding_tree(G, height=3)"),
    # the large first call: the multilevel path on 1e5 edges (numba's default threads)
    "codeseg_1e5": (
        "from benchmarks.graphs import degree_corrected_planted\n"
        "G = degree_corrected_planted(100_000, seed=20250101)[0]",
        "sepkit.codeseg(G)",
    ),
    "warmup": ("", "sepkit.warmup()"),
}
DEFAULT = [
    "structural_entropy_2d",
    "structural_entropy_tree",
    "detachment_cost",
    "codeseg",
    "codeseg_game",
    "codeseg_batch",
    "coding_tree",
    "cli",
    "versions",
]

# Ordinary calls after warmup: the same functions on the three input kinds, other sizes,
# float32 weights and int32 or list labels.
ORDINARY = """
import scipy.sparse as sp
H = nx.les_miserables_graph()
inputs = (G, nx.to_scipy_sparse_array(G), nx.to_numpy_array(G), H, nx.path_graph(5),
          sp.coo_matrix(nx.to_numpy_array(H)).astype(np.float32))
for g in inputs:
    part = sepkit.codeseg(g)
    sepkit.structural_entropy_1d(g)
    sepkit.node_entropy_1d(g)
    sepkit.structural_entropy_2d(g, list(part.labels))
    node = next(iter(g)) if isinstance(g, nx.Graph) else 0
    sepkit.move_delta(g, part.labels.astype(np.int32), node, None)
    cost = sepkit.detachment_cost(g, part.labels)
    sepkit.representatives(part.labels, cost)
    sepkit.codeseg(g, method="game")
    sepkit.codeseg(g, n_clusters=2)
    tree = sepkit.coding_tree(g)
    sepkit.structural_entropy_tree(g, tree.levels)
sepkit.codeseg_batch(np.stack([nx.to_numpy_array(nx.cycle_graph(8))] * 3))
ring = nx.to_numpy_array(nx.cycle_graph(6))
sepkit.codeseg_batch(np.stack([ring, ring], dtype=np.float32), method="game")
"""

# Leaves ``versions``: kernel name -> the signatures it was compiled for in this process.
COUNT_VERSIONS = """
import importlib, pkgutil
import sepkit._kernels as kernels
versions = {}
for info in pkgutil.iter_modules(kernels.__path__):
    module = importlib.import_module("sepkit._kernels." + info.name)
    for name, value in vars(module).items():
        sigs = getattr(value, "signatures", None)
        if sigs and getattr(value, "__module__", "") == module.__name__:
            versions[info.name + "." + name] = [str(s) for s in sigs]
"""

CHILD = """
import json, sys, time
c0, t0 = time.process_time(), time.perf_counter()
import networkx as nx, numpy as np, sepkit
c1, t1 = time.process_time(), time.perf_counter()
G = nx.karate_club_graph()
{setup}
c2, t2 = time.process_time(), time.perf_counter()
{first}
c3, t3 = time.process_time(), time.perf_counter()
{first}
t4 = time.perf_counter()
{more}
{count}
print(json.dumps({{
    "import": t1 - t0, "import_cpu": c1 - c0, "first": t3 - t2, "first_cpu": c3 - c2,
    "warm": t4 - t3, "versions": versions,
}}))
"""


PROFILE = """
import collections
from numba.core import event
import networkx as nx, numpy as np, sepkit
G = nx.karate_club_graph()
{setup}
with event.install_recorder("numba:compile") as rec:
    {first}
stack, own = [], collections.Counter()  # stack: [name, start, seconds in callees]
for ts, ev in rec.buffer:
    d = ev.data["dispatcher"]
    name = d.py_func.__module__ + "." + d.py_func.__qualname__
    if ev.is_start:
        stack.append([name, ts, 0.0])
    else:
        name, start, inner = stack.pop()
        own[name] += ts - start - inner
        if stack:
            stack[-1][2] += ts - start
print(f"compile time {{sum(own.values()):.1f}} s; per kernel, its callees excluded:")
for name, seconds in own.most_common(25):
    print(f"  {{seconds:6.2f}}  {{name}}")
"""


def profile_case(name: str) -> None:
    """Print where the first call of a case spends its compile time, kernel by kernel."""
    setup, first = CASES[name]
    cache = tempfile.mkdtemp(prefix="sepkit-cold-")
    try:
        code = PROFILE.format(setup=setup, first=first)
        subprocess.run([sys.executable, "-c", code], env=_env(cache), check=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _env(cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_case(name: str, more: str = "") -> dict:
    setup, first = CASES[name]
    code = CHILD.format(setup=setup, first=first, more=more, count=COUNT_VERSIONS)
    cache = tempfile.mkdtemp(prefix="sepkit-cold-")
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], env=_env(cache), capture_output=True, text=True
        )
        if out.returncode:
            raise RuntimeError(f"case {name} failed:\n{out.stderr[-3000:]}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _timed_cli(cache: str, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -m sepkit`` run (its own children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sepkit", *args], env=_env(cache), capture_output=True, check=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_cli() -> tuple:
    cache = tempfile.mkdtemp(prefix="sepkit-cold-")
    try:
        return _timed_cli(cache), _timed_cli(cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def run_warmup_jobs(jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds (all processes) of ``python -m sepkit warmup --jobs N``."""
    cache = tempfile.mkdtemp(prefix="sepkit-cold-")
    try:
        return _timed_cli(cache, "warmup", "--jobs", str(jobs))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _load() -> str:
    return os.popen("uptime").read().strip().split("load average:")[-1].strip()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*CASES, "cli", "warmup-jobsN", "versions"]
    parser.add_argument(
        "--cases",
        default=",".join(DEFAULT),
        help=f"among {','.join(names)} (N: a number of processes); versions also times "
        "warmup (default: all but warmup and codeseg_1e5)",
    )
    parser.add_argument(
        "--profile", choices=list(CASES), help="only print where this case's compile time goes"
    )
    args = parser.parse_args(argv)
    if args.profile:
        print(f"load average before: {_load()}")
        profile_case(args.profile)
        print(f"load average after: {_load()}")
        return
    chosen = args.cases.split(",")

    print(f"load average before: {_load()}\n")
    print("| case | import (s) | first call (s) | first call, CPU (s) | warm call (s) | kernels |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in chosen:
        if name == "cli":
            (cold, cold_cpu), (warm, _) = run_cli()
            print(
                f"| python -m sepkit (whole run) | | {cold:.1f} | {cold_cpu:.1f} | {warm:.2f} | |"
            )
        elif name.startswith("warmup-jobs"):
            jobs = int(name.removeprefix("warmup-jobs"))
            wall, cpu = run_warmup_jobs(jobs)
            print(f"| python -m sepkit warmup --jobs {jobs} | | {wall:.1f} | {cpu:.1f} | | |")
        elif name in CASES:
            r = run_case(name)
            print(
                f"| {name} | {r['import']:.2f} | {r['first']:.1f} | {r['first_cpu']:.1f} "
                f"| {r['warm']:.4f} | {len(r['versions'])} |"
            )
        sys.stdout.flush()
    if "versions" in chosen:
        r = run_case("warmup", more=ORDINARY)
        print(
            f"\n| warmup() | {r['import']:.2f} | {r['first']:.1f} | {r['first_cpu']:.1f} "
            f"| {r['warm']:.4f} | |"
        )
        many = {k: v for k, v in r["versions"].items() if len(v) > 1}
        total = sum(len(v) for v in r["versions"].values())
        print(
            f"\nafter warmup() and ordinary calls: {len(r['versions'])} kernels, "
            f"{total} compiled versions; kernels with more than one: {len(many)}"
        )
        for k, sigs in sorted(many.items()):
            print(f"  {k}: {len(sigs)}")
            for s in sigs:
                print(f"      {s}")
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
