"""``python -m sepkit``: a short tour on Zachary's karate club."""

from __future__ import annotations

import argparse

import networkx as nx
import numpy as np

import sepkit


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m sepkit",
        description="Structural entropy of Zachary's karate club split into its two factions.",
    )
    parser.add_argument("--base", type=float, default=2.0, help="logarithm base (default 2: bits)")
    args = parser.parse_args(argv)

    G = nx.karate_club_graph()
    factions = [{v for v in G if G.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]
    unit = {2.0: "bits", float(np.e): "nats"}.get(args.base, f"log base {args.base:g}")

    h1 = sepkit.structural_entropy_1d(G, base=args.base)
    h2 = sepkit.structural_entropy_2d(G, factions, base=args.base)
    cost = sepkit.detachment_cost(G, factions, base=args.base)
    print(f"karate club: {G.number_of_nodes()} nodes, {G.number_of_edges()} weighted edges")
    print(f"H1                      = {h1:.6f} {unit}")
    print(f"H2 (the two factions)   = {h2:.6f} {unit}")
    print(f"H1 - H2                 = {h1 - h2:.6f} {unit} of structure explained")
    print("detachment cost per node (largest first):")
    for v in np.argsort(-cost, kind="stable")[:5]:
        club = G.nodes[int(v)]["club"]
        print(f"  node {int(v):2d} ({club:7s}) {cost[v]:.6f} {unit}")
    weakest = int(np.argmin(cost))
    print(f"  ... node {weakest} is the loosest member ({cost[weakest]:.6f} {unit})")


if __name__ == "__main__":
    main()
