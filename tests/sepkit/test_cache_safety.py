"""The kernel cache and the threading layer under hostile orders of processes and threads.

Each scenario runs in fresh Python processes that share one fresh ``NUMBA_CACHE_DIR``, as
separate scripts of a new user would. Before ``sepkit/_jit.py``'s own cache class, the
sequences below left cache entries that made a later process jump to address 0 (SIGSEGV),
and two threads under numba's workqueue layer aborted the process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import pytest

PRELUDE = """
import networkx as nx, numpy as np, sepkit
G = nx.karate_club_graph()
"""

# One public call each, on the karate club (small graphs: the hazard is in loading code,
# not in running it).
CALLS = {
    "nothing": "pass",
    "entropy_1d": "sepkit.structural_entropy_1d(G)",
    "node_entropy_1d": "sepkit.node_entropy_1d(G)",
    "entropy_2d": (
        "sepkit.structural_entropy_2d(G, [0 if G.nodes[v]['club'] == 'Mr. Hi' else 1 for v in G])"
    ),
    "tree_entropy": (
        "fine = [v // 6 for v in G]\n"
        "sepkit.structural_entropy_tree(G, [fine, [c // 3 for c in fine]])"
    ),
    "move_delta": "sepkit.move_delta(G, np.arange(34, dtype=np.int32) // 6, 0, 2)",
    "detachment_cost": "sepkit.detachment_cost(nx.to_scipy_sparse_array(G), [v // 6 for v in G])",
    "representatives": (
        "labels = [v // 6 for v in G]\n"
        "sepkit.representatives(labels, sepkit.detachment_cost(G, labels))"
    ),
    "codeseg": "sepkit.codeseg(nx.to_numpy_array(G, dtype=np.float32))",
    "codeseg_batch": "sepkit.codeseg_batch(np.stack([nx.to_numpy_array(nx.cycle_graph(8))] * 2))",
    "coding_tree": "sepkit.coding_tree(G)",
}


def _env(cache) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), OMP_NUM_THREADS="1")
    env.pop("NUMBA_THREADING_LAYER", None)
    return env


def _script(*names: str) -> str:
    return PRELUDE + "\n".join(CALLS[name] for name in names)


def _start(cache, *names: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _script(*names)],
        env=env or _env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(proc: subprocess.Popen, what: str, timeout: float = 600) -> None:
    _, err = proc.communicate(timeout=timeout)
    # -11 is SIGSEGV: the crash of a kernel loaded without its threading layer
    assert proc.returncode == 0, f"{what} exited with {proc.returncode}:\n{err[-2000:]}"


def _run(cache, *names: str) -> None:
    _check(_start(cache, *names), " then ".join(names) or "import")


# Each sequence crashed at its last process on a fresh cache: the second process compiles
# a kernel whose parallel callees it loaded from the cache, the third loads that kernel.
HOSTILE = [
    ("entropy_2d", "tree_entropy", "tree_entropy"),
    ("entropy_2d", "move_delta", "move_delta"),
    ("detachment_cost", "move_delta", "move_delta"),
]


@pytest.mark.parametrize("sequence", HOSTILE, ids=["-".join(s) for s in HOSTILE])
def test_hostile_sequence_of_processes(tmp_path, sequence):
    for name in sequence:
        _run(tmp_path, name)


BARRIER = """
import os, time
open(os.path.join({folder!r}, "ready-{i}"), "w").close()
deadline = time.monotonic() + 600
while sum(f.startswith("ready-") for f in os.listdir({folder!r})) < 4:
    if time.monotonic() > deadline:
        raise SystemExit("the other processes never got ready")
    time.sleep(0.05)
"""


@pytest.mark.slow
def test_four_processes_at_once_then_every_public_function(tmp_path):
    """Four processes start together on a fresh cache, each makes one call (or none),
    waits for the others to have made theirs, then makes another; then every public
    function runs in a new process of its own, on what they left in the cache.

    The second calls of the processes that made none compile kernels whose parallel
    callees the others have just written: the entries that numba saved without their
    reload step.
    """
    cache, folder = tmp_path / "cache", tmp_path / "barrier"
    folder.mkdir()
    orders = [
        ("entropy_2d", "entropy_1d"),
        ("detachment_cost", "representatives"),
        ("nothing", "tree_entropy"),
        ("nothing", "move_delta"),
    ]
    procs = []
    for i, (first, second) in enumerate(orders):
        code = PRELUDE + CALLS[first] + BARRIER.format(folder=str(folder), i=i) + CALLS[second]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=_env(cache),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc, order in zip(procs, orders, strict=True):
        _check(proc, " then ".join(order))
    for name in CALLS:
        _run(cache, name)
    # and what they all compiled: one version per kernel (each version is a full compilation)
    versions = _versions(cache)
    assert len(versions) > 50  # the kernels were found
    many = {k: n for k, n in versions.items() if n > (2 if k in TWO_WIDTHS else 1)}
    assert not many, many


# Kernels with a second version by design, for a second integer width: the parallel pass of
# the entropy functions gets int32 labels (a smaller footprint for the random label loads),
# the serial one the int64 codes (and the parallel one too beyond 2**31 - 1 nodes); the
# multilevel search's level
# graphs hold int32 column indices (levels.permute), the graphs given to aggregate_with_loops
# int64 ones (both through the serial twin of aggregate, see _jit.serial_twin).
TWO_WIDTHS = {
    "entropy._links_range",
    "entropy._links_chunks",
    "levels.aggregate",
    "levels.aggregate_serial",
    "levels._scatter_rows",
    "levels._scatter_chunks",
    "levels._scatter_chunks_serial",
}


def _versions(cache) -> dict[str, int]:
    """Kernel name -> how many compiled versions the cache holds (numba's index files)."""
    counts = {}
    for index in cache.rglob("*.nbi"):
        with open(index, "rb") as f:
            pickle.load(f)  # the numba version
            _stamp, overloads = pickle.loads(f.read())
        counts[index.name.split("-")[0]] = len(overloads)
    return counts


def test_fork_after_import(tmp_path):
    """Importing sepkit starts no threads: children forked after it run parallel kernels.

    (Under GNU OpenMP a child forked after the threading layer started aborts on its first
    parallel loop, and ``Pool.map`` then waits for ever.)
    """
    code = textwrap.dedent(
        """
        import multiprocessing as mp
        import numpy as np, scipy.sparse as sp, sepkit
        from sepkit._jit import PARALLEL_MIN_WORK

        def work(seed):
            n = PARALLEL_MIN_WORK + 2  # the parallel path
            rows = np.arange(0, n - 1, 2)
            A = sp.coo_matrix((np.full(rows.size, 1.0 + seed), (rows, rows + 1)), shape=(n, n))
            return sepkit.structural_entropy_1d(A + A.T)

        with mp.get_context("fork").Pool(2) as pool:
            print(pool.map_async(work, range(2)).get(timeout=240))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_cache_folder_is_stamped_and_can_be_cleared(tmp_path):
    def sepkit_main(*args: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "sepkit", *args], env=_env(tmp_path), capture_output=True,
            text=True, timeout=300, check=True,
        )  # fmt: skip
        return proc.stdout.splitlines()

    (folder,) = sepkit_main("--cache-dir")
    name = os.path.basename(folder)
    assert folder.startswith(str(tmp_path)) and name.startswith("sepkit-cache")
    assert "numba" in name and "llvmlite" in name
    _run(tmp_path, "entropy_1d")
    assert any(f.endswith(".nbc") for f in os.listdir(folder))
    old = os.path.join(os.path.dirname(folder), "sepkit-cache0-an-older-version")
    os.makedirs(old)
    removed = sepkit_main("--clear-cache")
    assert removed == [f"removed {old}", f"removed {folder}"]
    assert not os.path.exists(folder) and not os.path.exists(old)


THREADS = """
import threading
import numpy as np, scipy.sparse as sp, sepkit
from sepkit._jit import PARALLEL_MIN_WORK
n = PARALLEL_MIN_WORK + 2   # large enough for the parallel paths; 1 edge per 2 nodes
rows = np.arange(0, n - 1, 2)
A = sp.coo_matrix((np.ones(rows.size), (rows, rows + 1)), shape=(n, n)).tocsr()
A = A + A.T
labels = np.arange(n) // 10
want = sepkit.structural_entropy_1d(A), sepkit.detachment_cost(A, labels)
bad = []

def work():
    for _ in range(20):
        if sepkit.structural_entropy_1d(A) != want[0]:
            bad.append("H1")
        if not np.array_equal(sepkit.detachment_cost(A, labels), want[1]):
            bad.append("detachment")

threads = [threading.Thread(target=work) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
import numba
assert numba.threading_layer() == "workqueue", numba.threading_layer()
assert not bad, bad
"""


def test_threads_under_the_workqueue_layer(tmp_path):
    """numba's workqueue layer aborts on concurrent parallel launches: sepkit serialises them."""
    env = dict(_env(tmp_path), NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run(
        [sys.executable, "-c", THREADS], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exited with {proc.returncode}:\n{proc.stderr[-2000:]}"


# --- a damaged or missing cache ----------------------------------------------------------------

ENTROPY = PRELUDE + "print(repr(" + CALLS["entropy_2d"] + "))"


def _entropy_run(env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", ENTROPY], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"exited with {proc.returncode}:\n{proc.stderr[-2000:]}"
    return proc


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path) -> None:
    path.write_bytes(b"\x80\x04 no pickle here " * 4)


@pytest.mark.parametrize(
    ("suffix", "damage"),
    [(".nbc", _truncate), (".nbi", _truncate), (".nbc", _garble), (".nbi", _garble)],
    ids=["truncated-data", "truncated-index", "garbled-data", "garbled-index"],
)
def test_damaged_cache_entries_are_dropped_and_compiled_again(tmp_path, suffix, damage):
    """numba raises (UnpicklingError, EOFError) on such a file at every later call; sepkit
    treats it as a miss, compiles the kernel again and replaces the entry."""
    env = _env(tmp_path)
    first = _entropy_run(env)
    damaged = sorted(tmp_path.rglob("*" + suffix))
    assert damaged
    for path in damaged:
        damage(path)
    second = _entropy_run(env)
    assert second.stdout == first.stdout
    assert "KernelCacheWarning" in second.stderr and "dropped" in second.stderr
    # the entries were written again: a third process loads them, with nothing to report
    third = _entropy_run(env)
    assert third.stdout == first.stdout
    assert "KernelCacheWarning" not in third.stderr
    assert all(v == 1 for v in _versions(tmp_path).values())


def test_without_a_writable_cache_location_kernels_compile_in_memory(tmp_path):
    """numba finds no cache folder (its only locator here points below a file, which no
    user can create): importing sepkit and calling it still work, with a warning, and
    nothing is written."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = dict(
        _env(blocker / "cache"),
        NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator",
    )
    proc = _entropy_run(env)
    assert float(proc.stdout) > 0
    assert "compile in memory" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    cli = subprocess.run(
        [sys.executable, "-m", "sepkit", "--cache-dir"], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "in memory" in cli.stdout


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2", True])
def test_warmup_jobs_must_be_a_positive_integer(jobs):
    import sepkit

    with pytest.raises(sepkit.InvalidOptionError, match="`jobs` must be an integer in 1"):
        sepkit.warmup(jobs=jobs)
