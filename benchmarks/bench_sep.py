"""SEP's overhead beyond the pool's forward passes, at the paper preset.

Prints a Markdown table: forward time, similarity time, sepkit (graph) time per
pool image, the scoring/forward ratio, and the sepkit time for a pool of 300
images (six stages, 1,800 graphs), for every partition method.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_sep [--side 256] [--n 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from sepkit_torch import ECMRNet
from sepkit_torch.continual.pruning import METHODS, select_groups, selection_from_graphs
from sepkit_torch.models.backbone import STAGE_NAMES


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256, help="pool images are side x 1.25 side")
    parser.add_argument("--n", type=int, default=8, help="pool images timed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = ECMRNet.from_preset("paper")
    model.add_task("C")
    with torch.no_grad():  # trained-like weights: GResBlocks active (beta != 0)
        for p in model.branches["C"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    h, w = args.side, args.side * 5 // 4
    pool = torch.rand(args.n, 1, h, w, generator=torch.Generator().manual_seed(1))
    select_groups(model, "C", pool[:1], batch_size=1)  # warm-up (numba compile, allocators)

    print(f"paper preset, pool images {h} x {w}, {args.n} timed, torch threads {args.threads}\n")
    print("| method | forward s/img | similarity s/img | sepkit s/img | scoring / forward |")
    print("|---|---:|---:|---:|---:|")
    for method in METHODS:
        sel = select_groups(model, "C", pool, batch_size=1, method=method)
        s = {k: v / args.n for k, v in sel.seconds.items()}
        ratio = (s["similarity"] + s["graph"]) / s["forward"]
        print(
            f"| {method} | {s['forward']:.3f} | {s['similarity']:.4f} | {s['graph']:.5f} "
            f"| {ratio:.1%} |"
        )

    # The graph part alone for the paper's pool of N = 300 (all six stages).
    rng = np.random.default_rng(0)
    graphs = {}
    for stage, g in zip(STAGE_NAMES, model.config.groups, strict=True):
        X = rng.random((300, g, g))
        A = (X + X.transpose(0, 2, 1)) / 2
        A[:, np.arange(g), np.arange(g)] = 0.0
        graphs[stage] = A
    print("\n| method | sepkit time for N = 300 (1,800 graphs of 8-32 nodes) |")
    print("|---|---:|")
    for method in METHODS:
        selection_from_graphs(graphs, method=method)
        start = time.perf_counter()
        selection_from_graphs(graphs, method=method)
        print(f"| {method} | {time.perf_counter() - start:.3f} s |")


if __name__ == "__main__":
    main()
