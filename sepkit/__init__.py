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


def warmup() -> None:
    """Compile every numba kernel now, on small graphs, instead of on first use.

    Compiled kernels are cached on disk (numba ``cache=True``), so this is slow
    only the first time on a machine.

    Examples
    --------
    >>> import sepkit
    >>> sepkit.warmup()
    """
    import numpy as np

    A = np.array(
        [[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 2.0, 0.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]
    )
    labels = np.array([0, 0, 1, 1])
    structural_entropy_1d(A)
    structural_entropy_2d(A, labels)
    move_delta(A, labels, 0, 1)
    detachment_cost(A, labels)
    representatives(labels, detachment_cost(A, labels))
    structural_entropy_tree(A, [labels, np.zeros(4, dtype=np.int64)])
    coding_tree(A, height=3)
    coding_tree(A, height=3, polish=False)
    codeseg(A, n_clusters=3)
    for method in ("game", "multilevel"):
        codeseg(A, method=method, overlap=True)
        codeseg(A, method=method, n_starts=2, **({"order": "random"} if method == "game" else {}))
        codeseg_batch(A[None], method=method)
        codeseg_batch(A[None], method=method, n_starts=2)
    # the multilevel search's other paths: without polish, and on a dense matrix (11+ nodes)
    ring = np.roll(np.eye(12), 1, axis=1)
    ring = ring + ring.T
    for polish in (False, True):
        codeseg(ring, polish=polish)
        codeseg_batch(ring[None], polish=polish)
    # what only large graphs reach: the coding-tree search's groups in parallel
    from sepkit._tree_search import _regroup

    g = as_graph(A)
    _regroup(g.indptr, g.indices, g.data, g.degree, labels, 2, labels[:0], 0, True, parallel=True)
