"""The multilevel search's engines: tiny graphs solved exactly, the same labels on any
thread count, and labels back in the caller's node order after the internal renumbering."""

from __future__ import annotations

import networkx as nx
import numba
import numpy as np
import pytest
import scipy.sparse as sp

from sepkit import as_graph, codeseg, codeseg_batch, structural_entropy_2d
from sepkit._kernels import levels
from sepkit._kernels import multilevel as ml
from tests.sepkit.brute_force import optimum_bits, random_connected_graph

# ---------------------------------------------------------------- tiny graphs: the optimum


def test_every_connected_graph_up_to_7_nodes_reaches_its_optimum():
    """Exhaustive: all 995 connected graphs of 2 to 7 nodes (networkx's graph atlas)."""
    misses = []
    atlas = [G for G in nx.graph_atlas_g() if len(G) >= 2 and nx.is_connected(G)]
    assert len(atlas) == 995
    for G in atlas:
        A = nx.to_numpy_array(G)
        found = codeseg(A).entropy
        best = optimum_bits(A)
        assert found >= best - 1e-9  # nothing beats the optimum
        if found > best + 1e-9:
            misses.append((sorted(G.edges()), found, best))
    assert not misses, f"{len(misses)} graphs missed their optimum, e.g. {misses[0]}"


@pytest.mark.parametrize("n", [8, 9])
def test_weighted_graphs_of_8_and_9_nodes_reach_their_optimum(n):
    """Seeded connected graphs, weighted or not, some with self-loops (the benchmark
    ``benchmarks/report_codeseg_speed.py --sections tiny`` checks thousands)."""
    rng = np.random.default_rng(100 + n)
    for _ in range(25):
        A = random_connected_graph(rng, n)
        assert codeseg(A).entropy == pytest.approx(optimum_bits(A), abs=1e-9)


def test_tiny_graph_optimum_also_in_batches():
    rng = np.random.default_rng(7)
    A = np.stack([random_connected_graph(rng, 9) for _ in range(20)])
    out = codeseg_batch(A)
    np.testing.assert_allclose(out.entropy, [optimum_bits(a) for a in A], atol=1e-9)


def test_polish_false_skips_the_exact_search():
    rng = np.random.default_rng(3)
    gaps = []
    for _ in range(40):
        A = random_connected_graph(rng, 9)
        gaps.append(codeseg(A, polish=False).entropy - optimum_bits(A))
    assert min(gaps) > -1e-9
    # the plain search misses some optima: the exact path is what finds them
    assert max(gaps) > 1e-6


# ---------------------------------------------------------------- same labels, any thread count


def _planted(n_blocks: int, size: int, k_in: int, k_out: int, seed: int) -> sp.csr_array:
    """A sparse planted-partition graph: ``k_in`` edges per node inside its block, ``k_out`` out."""
    rng = np.random.default_rng(seed)
    n = n_blocks * size
    u = np.repeat(np.arange(n), k_in + k_out)
    block = u // size
    inside = block * size + rng.integers(0, size, u.size)
    anywhere = rng.integers(0, n, u.size)
    v = np.where(np.tile(np.arange(k_in + k_out) < k_in, n), inside, anywhere)
    keep = u != v
    A = sp.coo_array((np.ones(keep.sum()), (u[keep], v[keep])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(float)
    perm = rng.permutation(n)  # a block is not a contiguous range of ids
    return sp.csr_array(A[perm][:, perm])


@pytest.fixture
def threads():
    """Run a block with a given numba thread count; restores the count afterwards."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs numba to run 2 threads")
    before = numba.get_num_threads()
    yield numba.set_num_threads
    numba.set_num_threads(before)


def test_same_labels_on_one_and_two_threads(threads):
    # large enough for the parallel path (nodes + stored entries >= PARALLEL_MIN_WORK)
    G = as_graph(_planted(120, 100, 10, 4, seed=1))
    assert G.n_nodes + G.indices.size >= ml.PARALLEL_MIN_WORK
    results = []
    for t in (1, 2, 1):
        threads(t)
        results.append(codeseg(G, seed=5))
    for other in results[1:]:
        np.testing.assert_array_equal(results[0].labels, other.labels)
        np.testing.assert_array_equal(results[0].history, other.history)
        assert results[0].entropy == other.entropy


def test_same_batch_on_one_and_two_threads(threads):
    X = np.random.default_rng(2).random((64, 14, 14))
    A = (X + X.transpose(0, 2, 1)) / 2
    outs = []
    for t in (1, 2):
        threads(t)
        outs.append(codeseg_batch(A, seed=1))
    np.testing.assert_array_equal(outs[0].labels, outs[1].labels)
    np.testing.assert_array_equal(outs[0].entropy, outs[1].entropy)


def test_colouring_is_proper_and_thread_independent(threads):
    G = as_graph(_planted(120, 100, 10, 4, seed=3))
    colours = []
    for t in (1, 2):
        threads(t)
        colour, n_colours = levels.greedy_colours(G.indptr, G.indices, t)
        colours.append(colour)
        rows = np.repeat(np.arange(G.n_nodes), np.diff(G.indptr))
        assert not np.any(colour[rows] == colour[G.indices])
        assert colour.max() + 1 == n_colours
    np.testing.assert_array_equal(colours[0], colours[1])


# ---------------------------------------------------------------- renumbering round trip


def test_permute_renames_nodes_and_keeps_the_graph():
    G = as_graph(_planted(5, 40, 6, 2, seed=4))
    n = G.n_nodes
    order = np.random.default_rng(0).permutation(n)
    indptr, indices, data, degree, loop = levels.permute(
        G.indptr, G.indices, G.data, G.degree, order, 1
    )
    P = sp.csr_array((data, indices, indptr), shape=(n, n))
    np.testing.assert_array_equal(P.toarray(), G.to_scipy().toarray()[order][:, order])
    np.testing.assert_array_equal(degree, G.degree[order])
    np.testing.assert_array_equal(loop, P.diagonal())


def test_prepare_level_groups_are_contiguous_independent_sets():
    G = as_graph(_planted(5, 40, 6, 2, seed=5))
    indptr, indices, _, _, _, groups, order = levels.prepare_level(
        G.indptr, G.indices, G.data, G.degree, 1
    )
    assert sorted(order) == list(range(G.n_nodes))
    assert groups[0] == 0 and groups[-1] == G.n_nodes and np.all(np.diff(groups) >= 0)
    group_of = np.repeat(np.arange(groups.size - 1), np.diff(groups))
    rows = np.repeat(np.arange(G.n_nodes), np.diff(indptr))
    off_diagonal = rows != indices
    assert not np.any(group_of[rows[off_diagonal]] == group_of[indices[off_diagonal]])


@pytest.mark.parametrize("polish", [False, True])
def test_labels_come_back_in_the_callers_order(polish):
    # The search records H2 on its own renumbered graph; the returned labels, read in
    # the caller's node order, must give that same H2 (over 256 nodes: the sparse search).
    A = _planted(10, 30, 5, 2, seed=6)
    nodes = [f"v{i}" for i in np.random.default_rng(1).permutation(A.shape[0])]
    G = nx.relabel_nodes(nx.from_scipy_sparse_array(A), dict(enumerate(nodes)))
    p = codeseg(G, polish=polish, seed=2)
    assert p.history[-1] == pytest.approx(p.entropy, abs=1e-12)
    assert structural_entropy_2d(G, dict(zip(G.nodes, p.labels, strict=True))) == pytest.approx(
        p.entropy, abs=1e-12
    )
