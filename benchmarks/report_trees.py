"""Print the coding-tree figures of ``docs/performance.md`` ("Coding trees") as Markdown.

One process measures everything, so every ratio in a table comes from the same run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/report_trees.py --sep PATH

- **Hierarchy recovery**: :func:`benchmarks.graphs.two_level_planted` (1e5 edges, 10
  super-blocks of 10 blocks), heights 2 and 3, NMI of every level against both planted
  levels.
- **Gallery**: ``coding_tree(G, seed=0)`` (height=None) on the deterministic graphs of
  the closest Python library's gallery, beside the entropy of its published optimised
  trees (facts quoted in :data:`GALLERY`).
- **Speed**: ``coding_tree(height=3)`` and ``coding_tree()`` (height=None) against
  ``codeseg`` (multilevel) on the planted graphs of the partitioner benchmarks
  (``--sizes``, default 1e5 and 1e6 edges; each fixed height up to None's on graphs of
  up to 1e6 edges), one numba thread, warm kernels, fastest of three runs each (one
  above 1e6 edges).
- **Anchors** on graphs small enough for them: SEP's ``PartitionTree`` (k = 2 and 3)
  and ``pyseat``'s ``SEAT``, against ``coding_tree`` of the same height; the entropy of
  every tree is recomputed exactly by ``sepkit.structural_entropy_tree``.
- **Fixed k**: ``codeseg(karate, n_clusters=2)`` beside the two factions.
- **Exhaustive optima**: the rate at which ``coding_tree(height=3)`` and
  ``codeseg(n_clusters=k)`` reach the brute-force optimum on seeded random graphs of
  up to 8 nodes (the generator and enumerators of the test suite), and
  ``coding_tree()`` the optimum over every coding tree (``tests/sepkit/all_trees.py``).

Anchors (benchmark environment only, never dependencies of sepkit):

- SEP (Wu et al., ICML 2022) is not on PyPI. ``--sep PATH`` names a checkout of
  https://github.com/Wu-Junran/SEP kept outside this repository (``git clone`` it
  anywhere); ``PATH/SEPN/codingTree.py`` is loaded from there. Without ``--sep`` its
  rows are left out.
- pyseat 0.0.1.4 (``benchmarks/requirements-peers.txt``) was written for networkx 2 and
  scikit-learn < 1.6: it is run with two shims, ``networkx.from_numpy_matrix`` set to
  ``networkx.from_numpy_array`` and ``SEAT._validate_data`` returning the matrix as a
  float array. It is given the graph as both its affinity and its sparsified graph
  (``affinity="precomputed", sparsification="precomputed"``), and its tree is read as
  its "clubs" under its clusters (a tree of height 3).

``--quick`` uses 100 random graphs instead of 300 and leaves out the speed runs;
``--only-gallery-and-speed`` runs those two sections only.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import networkx as nx  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402

import sepkit  # noqa: E402
from benchmarks.codeseg_cases import PLANTED_SEED, nmi  # noqa: E402
from benchmarks.graphs import planted_partition, two_level_planted  # noqa: E402
from tests.sepkit import brute_force  # noqa: E402

HIERARCHY_EDGES = 100_000
SPEED_EDGES = 1_000_000  # larger graphs: one run per call, no per-height table


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def fastest(run, repeats: int = 3):
    """(result of the last run, fastest wall time) of ``repeats`` runs."""
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - t0)
    return out, best


def hierarchy() -> list[str]:
    G, blocks, supers = two_level_planted(HIERARCHY_EDGES, seed=PLANTED_SEED)
    sepkit.coding_tree(G, height=3)  # warm-up on this graph
    lines = [
        f"Graph: `two_level_planted({HIERARCHY_EDGES:_}, seed={PLANTED_SEED})`: "
        f"{G.n_nodes:,} nodes, {G.n_edges:,} edges, {int(supers.max()) + 1} super-blocks of "
        f"{(int(blocks.max()) + 1) // (int(supers.max()) + 1)} blocks; planted tree entropy "
        f"{sepkit.structural_entropy_tree(G, [blocks, supers]):.4f} bits.",
        "",
        "| height | time s | entropy bits | clusters per level | NMI vs blocks | "
        "NMI vs super-blocks |",
        "|---:|---:|---:|---|---|---|",
    ]
    for h in (2, 3):
        tree, seconds = fastest(lambda h=h: sepkit.coding_tree(G, height=h, seed=0))
        vs_b = ", ".join(f"{nmi(lab, blocks):.4f}" for lab in tree.levels)
        vs_s = ", ".join(f"{nmi(lab, supers):.4f}" for lab in tree.levels)
        lines.append(
            f"| {h} | {seconds:.3f} | {tree.entropy:.4f} | {tree.n_clusters} | {vs_b} | {vs_s} |"
        )
    return lines


def speed(n_edges: int, per_height: bool) -> list[str]:
    """codeseg, height 3 and height=None on one planted graph, in one process; with
    ``per_height``, every fixed height up to the one None chooses too."""
    G, _ = planted_partition(n_edges, seed=PLANTED_SEED)
    repeats = 3 if n_edges <= SPEED_EDGES else 1
    sepkit.codeseg(G, seed=0)
    sepkit.coding_tree(G, height=3, seed=0)
    start = load()
    part, t2 = fastest(lambda: sepkit.codeseg(G, seed=0), repeats)
    rows = [("`codeseg(G, seed=0)`", t2, part.entropy, (part.n_clusters,))]
    tree, t3 = fastest(lambda: sepkit.coding_tree(G, height=3, seed=0), repeats)
    rows.append(("`coding_tree(G, height=3, seed=0)`", t3, tree.entropy, tree.n_clusters))
    best, tn = fastest(lambda: sepkit.coding_tree(G, seed=0), repeats)
    rows.append(
        (
            f"`coding_tree(G, seed=0)` (None: height {best.height})",
            tn,
            best.entropy,
            best.n_clusters,
        )
    )
    if per_height:
        for h in range(4, best.height + 1):
            t, th = fastest(lambda h=h: sepkit.coding_tree(G, height=h, seed=0), repeats)
            rows.append((f"`coding_tree(G, height={h}, seed=0)`", th, t.entropy, t.n_clusters))
    lines = [
        f"Graph: `planted_partition({n_edges:_}, seed={PLANTED_SEED})`: {G.n_nodes:,} "
        f"nodes, {G.n_edges:,} edges; one numba thread; fastest of {repeats}; load "
        f"{start} before, {load()} after.",
        "",
        "| call | time s | entropy bits | clusters per level | time / codeseg |",
        "|---|---:|---:|---|---:|",
    ]
    for name, t, h, ks in rows:
        lines.append(f"| {name} | {t:.3f} | {h:.4f} | {ks} | {t / t2:.2f} |")
    lines += [
        "",
        f"Entropy per height on the way (`history` of height=None): {best.history.round(4)}",
    ]
    return lines


# The optimised trees of the closest Python library's gallery (selib, docs/gallery.json):
# (graph, its published entropy in bits).
GALLERY = {
    "karate (weighted)": (nx.karate_club_graph, 2.485631),
    "Les Misérables (weighted)": (nx.les_miserables_graph, 2.629379),
    "Florentine families": (nx.florentine_families_graph, 1.923424),
    "caveman 4x6 (connected)": (lambda: nx.connected_caveman_graph(4, 6), 2.210942),
    "Petersen": (nx.petersen_graph, 2.273433),
    "balanced tree b=2 d=4": (lambda: nx.balanced_tree(2, 4), 1.754928),
    "grid 6x6": (lambda: nx.grid_2d_graph(6, 6), 2.558285),
}


def gallery() -> list[str]:
    lines = [
        "| graph | n | m | published bits | `coding_tree(G, seed=0)` bits | height | "
        "clusters per level | vs published | time s | height 3 bits |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, (make, published) in GALLERY.items():
        G = make()
        sepkit.coding_tree(G, seed=0)
        tree, seconds = fastest(lambda G=G: sepkit.coding_tree(G, seed=0))
        three = sepkit.coding_tree(G, height=3, seed=0)
        lines.append(
            f"| {name} | {G.number_of_nodes()} | {G.number_of_edges()} | {published:.6f} | "
            f"{tree.entropy:.6f} | {tree.height} | {tree.n_clusters} | "
            f"{100 * (tree.entropy / published - 1):+.2f}% | {seconds:.3f} | {three.entropy:.4f} |"
        )
    return lines


def all_trees_optimum(n_graphs: int) -> list[str]:
    """``coding_tree(G)`` (height=None) against the optimum over every coding tree."""
    from tests.sepkit import all_trees

    rng = np.random.default_rng(PLANTED_SEED)
    hits = total = 0
    gaps = []
    for i in range(n_graphs):
        n = int(rng.integers(3, 9))
        make = brute_force.random_graph if i % 2 else brute_force.random_connected_graph
        A = make(rng, n)
        if A.sum() == 0:
            continue
        optimum = all_trees.optimum_per_height(A)[-1]
        found = sepkit.coding_tree(A).entropy
        gap = found - optimum
        hits += gap <= 1e-6 * optimum
        total += 1
        if gap > 1e-6 * optimum:
            gaps.append(gap)
    worst = max(gaps, default=0.0)
    return [
        f"- `coding_tree(G)` (height=None) reached the optimum over **every coding tree** (all "
        f"hierarchies, any height: `tests/sepkit/all_trees.py`) on **{hits}/{total} graphs "
        f"({hits / total:.1%})** of 3 to 8 nodes (`random_graph` and `random_connected_graph` "
        f"alternately, seed {PLANTED_SEED}); misses by {len(gaps)} graphs, largest "
        f"{worst:.4f} bits, mean {np.mean(gaps) if gaps else 0.0:.4f} bits.",
    ]


def _sep_module(path: str | None):
    if path is None:
        return None
    file = Path(path) / "SEPN" / "codingTree.py"
    spec = importlib.util.spec_from_file_location("sep_coding_tree", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sep_levels(tree) -> list[np.ndarray]:
    """Nested partitions of a SEP PartitionTree whose leaves all lie at one depth."""
    nodes = tree.tree_node
    n = tree.g_num_nodes
    leaf = {nd.partition[0]: i for i, nd in nodes.items() if not nd.children}
    levels = []
    current = [leaf[v] for v in range(n)]
    while True:
        current = [nodes[x].parent for x in current]
        if current[0] == tree.root_id:
            break
        levels.append(np.unique(current, return_inverse=True)[1])
    return levels


def _pyseat():
    try:
        if not hasattr(nx, "from_numpy_matrix"):  # removed in networkx 3
            nx.from_numpy_matrix = nx.from_numpy_array
        from pyseat.SEAT import SEAT
    except ImportError:
        return None
    if not hasattr(SEAT, "_validate_data"):  # removed in scikit-learn 1.6

        def _validate_data(self, X, **kwargs):
            return np.asarray(X, dtype=np.float64)

        SEAT._validate_data = _validate_data
    return SEAT


def anchor_graphs() -> dict[str, np.ndarray]:
    small, _, _ = two_level_planted(4_000, seed=PLANTED_SEED, n_super=4, blocks_per_super=4)
    return {
        "florentine_families": nx.to_numpy_array(nx.florentine_families_graph()),
        "karate (weighted)": nx.to_numpy_array(nx.karate_club_graph()),
        "les_miserables": nx.to_numpy_array(nx.les_miserables_graph()),
        "two-level planted, 4,000 edges": small.to_scipy().toarray(),
    }


def anchors(sep_path: str | None) -> list[str]:
    sep = _sep_module(sep_path)
    SEAT = _pyseat()
    lines = [
        "| graph | n | method | height | time s | entropy bits (exact) | their own figure | "
        "sepkit's entropy / theirs | their time / sepkit's | ... / sepkit's, `polish=False` |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, A in anchor_graphs().items():
        lines += _anchor_rows(name, A, sep, SEAT)
    return lines


def _anchor_rows(name: str, A: np.ndarray, sep, SEAT) -> list[str]:
    n = A.shape[0]
    rows = []
    mine = {}
    for h in (2, 3):
        for polish in (None, False):
            sepkit.coding_tree(A, height=h, polish=polish)
            tree, seconds = fastest(
                lambda h=h, polish=polish: sepkit.coding_tree(A, height=h, seed=0, polish=polish)
            )
            mine[h, polish] = (tree.entropy, seconds)
            label = "sepkit `coding_tree`" + (", `polish=False`" if polish is False else "")
            rows.append(
                f"| {name} | {n} | {label} | {h} | {seconds:.4f} | {tree.entropy:.4f} | | | | |"
            )

    def versus(h, seconds, exact):
        return (
            f"{mine[h, None][0] / exact:.3f} | {seconds / mine[h, None][1]:.2f} | "
            f"{seconds / mine[h, False][1]:.2f} |"
        )

    if sep is not None:
        for k in (2, 3):

            def build(k=k):
                pt = sep.PartitionTree(adj_matrix=A.copy())
                pt.build_coding_tree(k=k, mode="v2")
                return pt

            build()  # its numba helper compiles on the first call
            pt, seconds = fastest(build)
            exact = sepkit.structural_entropy_tree(A, _sep_levels(pt))
            rows.append(
                f"| {name} | {n} | SEP `PartitionTree` | {k} | {seconds:.4f} | {exact:.4f} | "
                f"{pt.entropy():.4f} (+1 smoothing) | " + versus(k, seconds, exact)
            )
    if SEAT is not None:

        def fit():
            model = SEAT(affinity="precomputed", sparsification="precomputed", knn_m=A.copy())
            return model.fit(A.copy())

        model, seconds = fastest(fit)
        exact = sepkit.structural_entropy_tree(
            A, [np.asarray(model.clubs), np.asarray(model.labels_)]
        )
        rows.append(
            f"| {name} | {n} | pyseat `SEAT` (clubs, clusters) | 3 | {seconds:.4f} | "
            f"{exact:.4f} | {len(set(model.clubs))} clubs, {model.optimal_k} clusters | "
            + versus(3, seconds, exact)
        )
    return rows


def fixed_k() -> list[str]:
    G = nx.karate_club_graph()
    factions = [{v for v in G if G.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]
    club = np.array([0 if v in factions[0] else 1 for v in G])
    two = sepkit.codeseg(G, n_clusters=2, seed=0)
    side = [sorted(c) for c in two.communities()]
    # each cluster stands for the faction most of its nodes belong to
    faction_of = np.array(
        [np.bincount(club[two.labels == c], minlength=2).argmax() for c in (0, 1)]
    )
    differ = [int(v) for v in np.flatnonzero(faction_of[two.labels] != club)]
    return [
        "| partition of karate (weighted) | H2 bits | clusters |",
        "|---|---:|---|",
        f"| the two factions (`club` attribute) | "
        f"{sepkit.structural_entropy_2d(G, factions):.6f} | {[sorted(c) for c in factions]} |",
        f"| `codeseg(G, n_clusters=2, seed=0)` | {two.entropy:.6f} | {side} |",
        f"| `codeseg(G, seed=0)` (unconstrained) | {sepkit.codeseg(G, seed=0).entropy:.6f} | "
        f"{sepkit.codeseg(G, seed=0).n_clusters} clusters |",
        "",
        f"NMI between the k=2 partition and the factions: {nmi(two.labels, club):.4f}; "
        f"nodes on the other side than their faction: {differ}.",
    ]


def exhaustive(n_graphs: int) -> list[str]:
    table = {k: brute_force.partitions(k) for k in range(1, 9)}
    rng = np.random.default_rng(PLANTED_SEED)
    tree_hits = tree_total = k_hits = k_total = 0
    worst = 0.0
    for _ in range(n_graphs):
        n = int(rng.integers(3, 9))
        A = brute_force.random_graph(rng, n)
        if A.sum() == 0:
            continue
        optimum = brute_force.tree3_min(A, table)
        found = sepkit.coding_tree(A, height=3).entropy
        tree_hits += found <= optimum + 1e-9
        tree_total += 1
        worst = max(worst, found - optimum)
        best = brute_force.h2_min_per_k(A, table[n])
        for k in range(1, n + 1):
            k_hits += sepkit.codeseg(A, n_clusters=k).entropy <= best[k] + 1e-9
            k_total += 1
    return [
        f"Seeded random graphs of 3 to 8 nodes (`tests/sepkit/brute_force.random_graph`, seed "
        f"{PLANTED_SEED}), default settings:",
        "",
        f"- `coding_tree(height=3)` reached the exhaustive optimum (every nested pair of "
        f"partitions) on **{tree_hits}/{tree_total} graphs ({tree_hits / tree_total:.1%})**; "
        f"largest gap {worst:.4f} bits.",
        f"- `codeseg(n_clusters=k)` reached the optimum over partitions with exactly k clusters "
        f"for **{k_hits}/{k_total} (graph, k) pairs ({k_hits / k_total:.1%})**.",
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sep", help="a checkout of github.com/Wu-Junran/SEP (outside this repo)")
    parser.add_argument("--quick", action="store_true", help="fewer random graphs, no speed run")
    parser.add_argument(
        "--sizes", default="1e5,1e6", help="edges of the planted speed graphs (e.g. 1e5,1e6,1e7)"
    )
    parser.add_argument(
        "--only-gallery-and-speed", action="store_true", help="leave out the other sections"
    )
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    warnings.filterwarnings("ignore", module="pyseat")  # its NaN score differences
    sepkit.warmup()
    print(
        f"sepkit {sepkit.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}; one numba thread; load at start {load()}\n"
    )
    sections = [("Gallery", gallery)]
    if not args.only_gallery_and_speed:
        sections.append(("Hierarchy recovery", hierarchy))
    if not args.quick:
        for size in args.sizes.split(","):
            m = int(float(size))
            sections.append((f"Speed, {m:,} edges", lambda m=m: speed(m, m <= SPEED_EDGES)))
    if not args.only_gallery_and_speed:
        sections += [
            ("Anchors", lambda: anchors(args.sep)),
            ("Fixed k", fixed_k),
            ("Exhaustive optima", lambda: exhaustive(100 if args.quick else 300)),
            ("Every coding tree", lambda: all_trees_optimum(100 if args.quick else 300)),
        ]
    for title, section in sections:
        print(f"### {title}\n")
        print("\n".join(section()))
        print()
    print(f"Load at the end: {load()}")


if __name__ == "__main__":
    main()
