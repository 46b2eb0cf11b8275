"""Render the coding-tree figure of docs/trees.md into docs/images/coding_tree_karate.png.

    OMP_NUM_THREADS=1 .venv/bin/python docs/scripts/render_tree_figure.py

The height-3 coding tree that ``sepkit.coding_tree`` finds for Zachary's karate club
(weighted, seed 0), drawn as a dendrogram: the vertices along the bottom (ordered so
that every cluster is contiguous), their clusters above them, the groups of clusters
above those, the root on top. Each vertex is coloured by its faction (the graph's
``club`` attribute), so the figure also shows how the tree relates to the real split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import sepkit  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "images" / "coding_tree_karate.png"
FACTION_COLOURS = {"Mr. Hi": "#1f77b4", "Officer": "#d62728"}


def draw(tree: sepkit.CodingTree, G: nx.Graph, path: Path) -> None:
    fine, coarse = tree.levels
    # leaf order: by group, then by cluster, then by vertex, so every subtree is contiguous
    order = np.lexsort((np.arange(fine.size), fine, coarse))
    x_leaf = np.empty(fine.size)
    x_leaf[order] = np.arange(fine.size)
    x_fine = np.array([x_leaf[fine == c].mean() for c in range(fine.max() + 1)])
    x_coarse = np.array(
        [x_fine[np.unique(fine[coarse == d])].mean() for d in range(coarse.max() + 1)]
    )
    x_root = x_coarse.mean()
    y = {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}

    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=120)

    def elbow(x_child, y_child, x_parent, y_parent, **style):
        ax.plot([x_child, x_child, x_parent], [y_child, y_parent, y_parent], **style)

    line = {"color": "0.35", "linewidth": 1.1}
    for v in range(fine.size):
        elbow(x_leaf[v], y[0], x_fine[fine[v]], y[1], **line)
    for c in range(fine.max() + 1):
        d = coarse[fine == c][0]
        elbow(x_fine[c], y[1], x_coarse[d], y[2], **line)
    for d in range(coarse.max() + 1):
        elbow(x_coarse[d], y[2], x_root, y[3], **line)
    ax.plot([x_coarse.min(), x_coarse.max()], [y[3], y[3]], **line)

    club = [G.nodes[v]["club"] for v in G]
    for v in range(fine.size):
        ax.scatter(x_leaf[v], y[0], s=110, color=FACTION_COLOURS[club[v]], zorder=3)
        ax.text(x_leaf[v], y[0] - 0.22, str(v), ha="center", va="top", fontsize=7)
    ax.scatter(x_fine, np.full(x_fine.size, y[1]), s=40, color="0.2", zorder=3)
    ax.scatter(x_coarse, np.full(x_coarse.size, y[2]), s=55, color="0.2", zorder=3)
    ax.scatter([x_root], [y[3]], s=70, color="0.2", zorder=3)
    ax.set_yticks([0, 1, 2, 3])
    ax.set_yticklabels(
        [
            "vertices",
            f"clusters ({tree.n_clusters[0]})",
            f"groups ({tree.n_clusters[1]})",
            "root",
        ]
    )
    ax.set_xticks([])
    ax.set_ylim(-0.6, 3.3)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=c, label=f"faction {name}")
        for name, c in FACTION_COLOURS.items()
    ]
    ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=8)
    ax.set_title(
        f"Karate club, coding tree of height 3 (sepkit.coding_tree, seed 0): "
        f"{tree.entropy:.4f} bits (height 2: {tree.history[1]:.4f}, H1: {tree.history[0]:.4f})",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    G = nx.karate_club_graph()
    draw(sepkit.coding_tree(G, height=3, seed=0), G, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
