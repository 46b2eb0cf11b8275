"""Ordinary use compiles one version of each kernel (each version is a full compilation)."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.report_cold_start import COUNT_VERSIONS, ORDINARY

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

SCRIPT = f"""
import json
import networkx as nx, numpy as np, sepkit
G = nx.karate_club_graph()
sepkit.warmup()
{ORDINARY}
{COUNT_VERSIONS}
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
