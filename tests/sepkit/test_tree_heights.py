"""coding_tree(height=None): the lowest entropy over every height, against the exact optimum
over all coding trees (every hierarchy) of tiny graphs, and the gallery of reference graphs."""

from __future__ import annotations

import re

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import sepkit
from sepkit import coding_tree, structural_entropy_tree
from sepkit.tree import HEIGHT_TOL
from tests.sepkit import all_trees, brute_force, naive
from tests.sepkit.strategies import graphs, partition_dict, to_dense

# --- the exhaustive optimum itself -------------------------------------------------------------


def _levels_of(tree, n: int, height: int) -> list[np.ndarray]:
    """A hierarchy of ``all_trees.every_tree`` as ``height - 1`` nested partitions: level l
    holds the tree nodes at depth ``height - 1 - l``, and a leaf above that depth sits in
    a singleton (exact without self-loops)."""
    paths = {}  # vertex -> ids of its ancestors at depths 1, 2, ...
    ids = iter(range(n, 10**6))

    def walk(node, path):
        if isinstance(node, int):
            paths[node] = path
            return
        for c in node:
            walk(c, path if isinstance(c, int) else [*path, next(ids)])

    walk(tree, [])
    levels = []
    for l in range(height - 1):
        depth = height - 1 - l
        levels.append(
            np.array([p[depth - 1] if depth <= len(p) else v for v, p in sorted(paths.items())])
        )
    return levels


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_the_dynamic_programme_equals_the_enumeration_of_every_tree(n):
    rng = np.random.default_rng(40 + n)
    trees = list(all_trees.every_tree(n))
    heights = np.array([all_trees.tree_height(t) for t in trees])
    for _ in range(4):
        A = brute_force.random_graph(rng, n)
        found = np.array([all_trees.tree_entropy(A, t) for t in trees])
        by_height = [
            found[heights <= h].min() if (heights <= h).any() else np.inf for h in range(1, n + 2)
        ]
        expected = np.minimum.accumulate(by_height)
        assert_allclose(all_trees.optimum_per_height(A), expected, rtol=0, atol=1e-12)


def test_the_dynamic_programme_agrees_with_the_partition_enumerators():
    rng = np.random.default_rng(3)
    table = {k: brute_force.partitions(k) for k in range(1, 8)}
    for _ in range(12):
        A = brute_force.random_graph(rng, int(rng.integers(2, 8)))
        if A.sum() == 0:
            continue
        opt = all_trees.optimum_per_height(A)
        assert opt[0] == pytest.approx(sepkit.structural_entropy_1d(A), abs=1e-12)
        assert opt[1] == pytest.approx(brute_force.optimum_bits(A), abs=1e-12)
        assert opt[2] == pytest.approx(brute_force.tree3_min(A, table), abs=1e-12)
        assert np.all(np.diff(opt) <= 0)


def test_tree_entropy_of_the_enumeration_is_the_definition():
    """Without self-loops, padding a leaf with singletons changes nothing, so every
    hierarchy is a set of nested partitions that ``naive`` evaluates."""
    rng = np.random.default_rng(5)
    for n in (3, 4, 5):
        A = brute_force.random_graph(rng, n)
        A[np.diag_indices(n)] = 0.0
        G = nx.from_numpy_array(A)
        trees = list(all_trees.every_tree(n))
        for i in rng.choice(len(trees), 12, replace=False):
            t = trees[i]
            h = all_trees.tree_height(t)
            levels = _levels_of(t, n, h)
            dicts = [partition_dict(G, lab) for lab in levels]
            assert all_trees.tree_entropy(A, t) == pytest.approx(
                naive.structural_entropy_tree(G, dicts), abs=1e-12
            )


# --- height=None ------------------------------------------------------------------------------


def _check_none(G, A, opt):
    t = coding_tree(G)
    n = A.shape[0]
    assert len(t.levels) == t.height - 1
    assert t.entropy == pytest.approx(structural_entropy_tree(G, list(t.levels)), abs=1e-12)
    assert t.entropy >= opt[-1] - 1e-9  # nothing beats the optimum over every tree
    k = min(t.history.size, opt.size)
    assert np.all(t.history[:k] >= opt[:k] - 1e-9)  # nor the optimum of its height
    assert np.all(np.diff(t.history) <= 1e-12)
    # the stopping rule: every height kept gained more than the tolerance, the next did not
    gains = -np.diff(t.history)
    scale = HEIGHT_TOL * np.abs(t.history)  # (abs: a zero entropy may round below 0)
    assert np.all(gains[: t.height - 1] > scale[: t.height - 1])
    if t.history.size > t.height:
        assert gains[t.height - 1] <= scale[t.height - 1]
    assert t.entropy == pytest.approx(t.history[t.height - 1], abs=1e-12)
    for lab in t.levels:
        assert lab.shape == (n,)
    return t


@given(G=graphs(max_nodes=7))
def test_height_none_never_beats_and_its_history_matches_the_optimum(G):
    A = to_dense(G)
    _check_none(G, A, all_trees.optimum_per_height(A))


def test_height_none_reaches_the_optimum_over_every_tree():
    """Seeded random graphs of 3 to 8 nodes; docs/trees.md states the rate on more."""
    rng = np.random.default_rng(2026)
    hits = total = 0
    worst = 0.0
    for i in range(80):
        n = int(rng.integers(3, 9))
        A = (brute_force.random_graph if i % 2 else brute_force.random_connected_graph)(rng, n)
        if A.sum() == 0:
            continue
        opt = all_trees.optimum_per_height(A)
        t = _check_none(A, A, opt)
        gap = t.entropy - opt[-1]
        hits += gap <= HEIGHT_TOL * opt[0]
        worst = max(worst, gap)
        total += 1
    assert hits / total >= 0.95, f"optimum reached on {hits}/{total} graphs (worst {worst:.4f})"


def test_height_none_is_the_fixed_height_search_stopped_early(karate):
    t = coding_tree(karate, seed=3)
    fixed = coding_tree(karate, height=t.height, seed=3)
    assert fixed.entropy == t.entropy
    for a, b in zip(fixed.levels, t.levels, strict=True):
        assert_array_equal(a, b)
    assert_allclose(t.history[: t.height], fixed.history, rtol=1e-12)
    assert t.history.size == t.height + 1  # the height that did not help
    deeper = coding_tree(karate, height=t.height + 1, seed=3)
    assert deeper.entropy == pytest.approx(t.history[-1], rel=1e-12)


def test_height_none_on_graphs_without_structure():
    empty = coding_tree(nx.empty_graph(4))
    assert empty.height == 1 and empty.levels == () and empty.entropy == 0.0
    # one edge: every partition has the entropy of the root over the leaves
    edge = coding_tree(nx.path_graph(2))
    assert edge.height == 1 and edge.levels == ()
    assert edge.entropy == pytest.approx(1.0) and edge.history.size == 2


# The optimised trees of the closest Python library's gallery (selib, docs/gallery.json),
# in bits, for graphs as networkx builds them (karate and Les Misérables with their weights).
GALLERY = {
    "karate": (nx.karate_club_graph, 2.485631),
    "les_miserables": (nx.les_miserables_graph, 2.629379),
    "florentine_families": (nx.florentine_families_graph, 1.923424),
    "caveman_4x6": (lambda: nx.connected_caveman_graph(4, 6), 2.210942),
    "petersen": (nx.petersen_graph, 2.273433),
    "balanced_tree_2_4": (lambda: nx.balanced_tree(2, 4), 1.754928),
    "grid_6x6": (lambda: nx.grid_2d_graph(6, 6), 2.558285),
}


@pytest.mark.parametrize("name", list(GALLERY))
def test_gallery_at_or_below_the_published_trees(name):
    make, published = GALLERY[name]
    t = coding_tree(make(), seed=0)
    # the published values have six decimals
    assert round(t.entropy, 6) <= published, (t.entropy, t.height, t.n_clusters)


def test_the_tour_shows_the_tree_of_any_height(capsys):
    from sepkit.__main__ import main

    main([])
    out = capsys.readouterr().out
    tree = coding_tree(nx.karate_club_graph(), seed=0)
    line = re.search(r"coding tree of any height .*: H = ([0-9.]+) bits at height (\d+)", out)
    assert float(line.group(1)) == pytest.approx(tree.entropy, abs=1e-6)
    assert int(line.group(2)) == tree.height
