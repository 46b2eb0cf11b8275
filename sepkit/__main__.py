"""``python -m sepkit``: a short tour on Zachary's karate club; ``python -m sepkit warmup``
compiles every kernel ahead of use."""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np

import sepkit
from sepkit._jit import cache_dirs, clear_cache


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sepkit",
        description="Structural entropy, the CoDeSEG partitioner, detachment costs and a "
        "coding trees (height 3, and of any height) on Zachary's karate club; or, with "
        "`warmup`, compile every kernel into the kernel cache now.",
    )
    parser.add_argument(
        "command", nargs="?", choices=("tour", "warmup"), default="tour",
        help="tour (default) or warmup",
    )  # fmt: skip
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="warmup: processes compiling at once (default 1; 0: one per CPU)",
    )
    parser.add_argument("--base", type=float, default=2.0, help="logarithm base (default 2: bits)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the multilevel search")
    parser.add_argument(
        "--cache-dir",
        action="store_true",
        help="print the folder of sepkit's compiled kernels and exit",
    )
    parser.add_argument(
        "--clear-cache",
        action="store_true",
        help="delete sepkit's compiled kernels (every version's) and exit; the next calls "
        "compile them again",
    )
    args = parser.parse_args(argv)
    if args.command == "warmup":
        start = time.perf_counter()
        sepkit.warmup(jobs=args.jobs or None)
        where = ", ".join(cache_dirs()) or "memory only (no writable cache folder)"
        print(f"sepkit's kernels compiled in {time.perf_counter() - start:.0f} s: {where}")
        return
    if args.cache_dir or args.clear_cache:
        if not cache_dirs():
            print("none: no writable folder, kernels compile in memory (set NUMBA_CACHE_DIR)")
        for path in cache_dirs():
            if args.clear_cache:
                for folder in clear_cache(path):
                    print(f"removed {folder}")
            else:
                print(path)
        return

    G = nx.karate_club_graph()
    unit = {2.0: "bits", float(np.e): "nats"}.get(args.base, f"log base {args.base:g}")
    factions = [{v for v in G if G.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]

    game = sepkit.codeseg(G, method="game", order="edges", base=args.base)
    best = sepkit.codeseg(G, seed=args.seed, base=args.base)
    rows = [
        ("H1 (no partition)", sepkit.structural_entropy_1d(G, base=args.base)),
        ("H2 (the two real factions)", sepkit.structural_entropy_2d(G, factions, base=args.base)),
        (f"H2 (reference CoDeSEG game, k={game.n_clusters})", game.entropy),
        (f"H2 (sepkit multilevel, k={best.n_clusters})", best.entropy),
    ]
    print(f"karate club: {G.number_of_nodes()} nodes, {G.number_of_edges()} weighted edges")
    for name, value in rows:
        print(f"{name:38s} = {value:.6f} {unit}")

    cost = sepkit.detachment_cost(G, best.labels, base=args.base)
    keep = sepkit.representatives(best.labels, cost)
    print("\nclusters of the multilevel partition; * marks each cluster's representative")
    print("(the node whose detachment would raise H2 the most):")
    for c, members in enumerate(best.communities()):
        shown = ", ".join(f"{v}*" if keep[v] else str(v) for v in sorted(members))
        print(f"  {c}: {shown}")
    order = np.argsort(-cost, kind="stable")
    print("\nlargest detachment costs:")
    for v in order[:5]:
        print(f"  node {int(v):2d}  {cost[v]:.6f} {unit}")

    tree = sepkit.coding_tree(G, height=3, seed=args.seed, base=args.base)
    fine, coarse = tree.levels
    print(
        f"\ncoding tree of height 3: H = {tree.entropy:.6f} {unit} "
        f"(height 2: {tree.history[1]:.6f}); {tree.n_clusters[1]} groups of "
        f"{tree.n_clusters[0]} clusters"
    )
    for d in range(tree.n_clusters[1]):
        print(f"  group {d}")
        for c in np.unique(fine[coarse == d]):
            members = ", ".join(str(v) for v in np.flatnonzero(fine == c))
            print(f"    cluster {int(c)}: {members}")

    deep = sepkit.coding_tree(G, seed=args.seed, base=args.base)  # any height
    print(
        f"\ncoding tree of any height (the graph's structural entropy): H = "
        f"{deep.entropy:.6f} {unit} at height {deep.height}; clusters per level "
        f"{', '.join(map(str, deep.n_clusters))} (finest first)"
    )


if __name__ == "__main__":
    main()
