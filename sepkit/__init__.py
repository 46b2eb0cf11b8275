"""sepkit: structural entropy on graphs.

Exact (float64) 1D and 2D structural entropy, move deltas and detachment costs
of any weighted undirected graph given as networkx, scipy.sparse or numpy,
computed by numba kernels.

>>> import networkx as nx
>>> import sepkit
>>> G = nx.karate_club_graph()
>>> round(sepkit.structural_entropy_1d(G), 4)
4.634
"""

from sepkit._errors import (
    InvalidGraphError,
    InvalidLabelsError,
    InvalidOptionError,
    InvalidTypeError,
    SepkitError,
)
from sepkit.codeseg import BatchPartition, Partition, codeseg, codeseg_batch
from sepkit.detachment import detachment_cost, representatives
from sepkit.entropy import (
    move_delta,
    node_entropy_1d,
    structural_entropy_1d,
    structural_entropy_2d,
)
from sepkit.graph import Graph, as_graph, symmetrize
from sepkit.tree import CodingTree, coding_tree, structural_entropy_tree

__version__ = "0.1.0"

__all__ = [
    "BatchPartition",
    "CodingTree",
    "Graph",
    "InvalidGraphError",
    "InvalidLabelsError",
    "InvalidOptionError",
    "InvalidTypeError",
    "Partition",
    "SepkitError",
    "as_graph",
    "codeseg",
    "codeseg_batch",
    "coding_tree",
    "detachment_cost",
    "move_delta",
    "node_entropy_1d",
    "representatives",
    "structural_entropy_1d",
    "structural_entropy_2d",
    "structural_entropy_tree",
    "symmetrize",
    "warmup",
]


def warmup(jobs: int | None = 1) -> None:
    """Compile every numba kernel now, on small graphs, instead of on first use.

    Compiled kernels are kept in the kernel cache (``docs/api.md``, "The kernel cache"),
    so this is slow only the first time on a machine (and after an upgrade); the Makefile's
    install step runs it.

    Parameters
    ----------
    jobs : int or None, default 1
        Processes compiling at once, sharing the cache (None: one per CPU). The kernels
        land in the cache; this process loads them on first use. Where no cache folder is
        writable, everything compiles in this process.

    Examples
    --------
    >>> import sepkit
    >>> sepkit.warmup()
    """
    from sepkit._warmup import warmup as _warmup

    _warmup(jobs)
