"""Ordinary use compiles one version of each kernel (each version is a full compilation)."""

from __future__ import annotations

import json
import subprocess
import sys

# Kernels with a second version by design, for a second integer width: own_links passes
# int32 labels (a smaller footprint for the random label loads) and int64 ones on graphs of
# more than 2**31 - 1 nodes, both branches of one kernel; the multilevel search's level
# graphs hold int32 column indices (levels.permute), the graphs given to aggregate_with_loops
# int64 ones.
TWO_WIDTHS = {
    "entropy._own_links_into",
    "entropy._links_range",
    "entropy._links_chunks",
    "levels.aggregate",
    "levels._scatter_rows",
    "levels._scatter_chunks",
}

SCRIPT = """
import importlib, json, pkgutil
import networkx as nx, numpy as np, scipy.sparse as sp
import sepkit
import sepkit._kernels as kernels

sepkit.warmup()
G, H = nx.karate_club_graph(), nx.les_miserables_graph()
inputs = (G, nx.to_scipy_sparse_array(G), nx.to_numpy_array(G), H, nx.path_graph(5),
          sp.coo_matrix(nx.to_numpy_array(H)).astype(np.float32))
for g in inputs:
    part = sepkit.codeseg(g)
    sepkit.structural_entropy_1d(g)
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

versions = {}
for info in pkgutil.iter_modules(kernels.__path__):
    module = importlib.import_module("sepkit._kernels." + info.name)
    for name, value in vars(module).items():
        sigs = getattr(value, "signatures", None)
        if sigs and getattr(value, "__module__", "") == module.__name__:
            versions[info.name + "." + name] = [str(s) for s in sigs]
print(json.dumps(versions))
"""


def test_one_compiled_version_per_kernel():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=900, check=True
    )
    versions = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(versions) > 50  # the kernels were found
    many = {
        name: sigs
        for name, sigs in versions.items()
        if len(sigs) > (2 if name in TWO_WIDTHS else 1)
    }
    assert not many, json.dumps(many, indent=1)
