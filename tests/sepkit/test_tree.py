"""Coding trees: the entropy of nested partitions against the definition, the tree search,
and partitions with a fixed number of clusters, against exhaustive optima on tiny graphs."""

from __future__ import annotations

import re

import networkx as nx
import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import sepkit
from sepkit import InvalidLabelsError, InvalidOptionError, coding_tree, structural_entropy_tree
from sepkit._kernels import tree as _kt
from tests.sepkit import brute_force, naive
from tests.sepkit.strategies import all_formats, graphs, partition_dict

TOL = {"rtol": 1e-12, "atol": 1e-12}


@st.composite
def nested_levels(draw, n: int, max_levels: int = 3):
    """Up to ``max_levels`` nested partitions of n nodes, finest first, with arbitrary labels."""
    levels = []
    current = np.array(draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n)))
    for _ in range(draw(st.integers(0, max_levels))):
        levels.append(current)
        k = int(current.max()) + 1
        group = np.array(draw(st.lists(st.integers(0, max(k - 1, 0)), min_size=k, max_size=k)))
        current = group[current]
    # arbitrary label values: each level shifted and scaled
    return [lab * 7 - 3 for lab in levels]


def _dicts(G, levels):
    return [partition_dict(G, lab) for lab in levels]


@st.composite
def graph_and_levels(draw, max_nodes: int = 8, max_levels: int = 3):
    G = draw(graphs(max_nodes=max_nodes))
    return G, draw(nested_levels(G.number_of_nodes(), max_levels))


# --- structural_entropy_tree against the definition ----------------------------------------


@given(graph_and_levels())
def test_tree_entropy_equals_the_definition_in_every_format(case):
    G, levels = case
    expected = naive.structural_entropy_tree(G, _dicts(G, levels))
    for name, obj in all_formats(G).items():
        got = structural_entropy_tree(obj, levels)
        assert_allclose(got, expected, **TOL, err_msg=name)


@given(graph_and_levels(max_levels=1), st.sampled_from([2.0, np.e, 10.0]))
def test_one_level_is_h2_and_no_level_is_h1(case, base):
    # The tree kernel and the 1D/2D kernels sum the same terms in different orders, so
    # they agree to rounding, not bit for bit (a 7-node case differs in the last bit).
    G, levels = case
    same = dict(rel=1e-14, abs=1e-15)
    h1 = sepkit.structural_entropy_1d(G, base=base)
    assert structural_entropy_tree(G, [], base=base) == pytest.approx(h1, **same)
    if levels:
        h2 = sepkit.structural_entropy_2d(G, levels[0], base=base)
        assert structural_entropy_tree(G, levels, base=base) == pytest.approx(h2, **same)


@given(graph_and_levels(), st.randoms(use_true_random=False))
def test_relabelling_invariance(case, rnd):
    G, levels = case
    h = structural_entropy_tree(G, levels)
    # new node order and new node labels
    order = list(G)
    rnd.shuffle(order)
    H = nx.Graph()
    H.add_nodes_from(f"v{v}" for v in order)
    H.add_edges_from((f"v{u}", f"v{v}", d) for u, v, d in G.edges(data=True))
    moved = [{f"v{v}": int(lab[v]) for v in G} for lab in levels]
    assert_allclose(structural_entropy_tree(H, moved), h, **TOL)
    # new label values, level by level
    renamed = [np.array([hash((c, "x")) % 1000 for c in lab]) for lab in levels]
    if all(len(set(r)) == len(set(lab)) for r, lab in zip(renamed, levels, strict=True)):
        assert_allclose(structural_entropy_tree(G, renamed), h, **TOL)


@given(graph_and_levels(), st.floats(1e-3, 1e3))
def test_weight_scale_invariance(case, c):
    G, levels = case
    A = nx.to_numpy_array(G, nodelist=sorted(G))
    assert_allclose(
        structural_entropy_tree(A * c, levels), structural_entropy_tree(A, levels), **TOL
    )


@given(graph_and_levels(), st.data())
def test_a_copied_level_changes_nothing(case, data):
    G, levels = case
    if not levels:
        return
    i = data.draw(st.integers(0, len(levels) - 1))
    copied = levels[: i + 1] + [levels[i] + 100] + levels[i + 1 :]
    assert_allclose(structural_entropy_tree(G, copied), structural_entropy_tree(G, levels), **TOL)
    # a level that merges everything, under the root, is a copy of the root
    top = levels + [np.zeros(G.number_of_nodes(), dtype=int)]
    assert_allclose(structural_entropy_tree(G, top), structural_entropy_tree(G, levels), **TOL)


def test_a_singleton_level_is_not_free_with_self_loops():
    # Leaves count their whole degree as cut (the convention), a singleton cluster only its
    # degree minus its self-loop: the level below explains the self-loop.
    G = nx.Graph([(0, 1), (1, 2), (2, 2)])
    top = [0, 1, 1]
    with_singletons = structural_entropy_tree(G, [[0, 1, 2], top])
    assert with_singletons < structural_entropy_tree(G, [top]) - 1e-3
    G.remove_edge(2, 2)
    assert_allclose(structural_entropy_tree(G, [[0, 1, 2], top]), structural_entropy_tree(G, [top]))


def test_degenerate_graphs():
    assert structural_entropy_tree(np.zeros((4, 4)), [[0, 0, 1, 1], [0, 0, 0, 0]]) == 0.0
    assert structural_entropy_tree(nx.empty_graph(1), [[5], [5]]) == 0.0
    G = nx.barbell_graph(4, 0)
    H = G.copy()
    H.add_nodes_from([8, 9])  # isolated nodes change nothing, wherever they sit
    levels = [[0, 0, 0, 0, 1, 1, 1, 1], [0] * 8]
    assert_allclose(
        structural_entropy_tree(H, [levels[0] + [1, 0], levels[1] + [0, 0]]),
        structural_entropy_tree(G, levels),
        **TOL,
    )


def test_levels_as_a_2d_array_and_as_node_sets(karate):
    fine = np.array([v // 6 for v in karate])
    coarse = fine // 3
    h = structural_entropy_tree(karate, [fine, coarse])
    assert structural_entropy_tree(karate, np.stack([fine, coarse])) == h
    sets = [
        [{v for v in karate if lab[v] == c} for c in range(lab.max() + 1)] for lab in (fine, coarse)
    ]
    assert structural_entropy_tree(karate, sets) == h


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (
            [[0, 0, 1, 1], [0, 1, 1, 1]],
            "`levels[1]` must be a coarsening of `levels[0]`; nodes 0 and 1 share a cluster in "
            "levels[0] but not in levels[1]",
        ),
        (
            [[0, 0, 1, 1], [0, 0, 1]],
            "`levels[1]` must have one entry per node (length 4); got shape (3,)",
        ),
        ([[0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0]], "`levels[1]` must be integers; got dtype float64"),
        (
            np.array([0, 0, 1, 1]),
            "`levels` must be a list of partitions, finest first (a 2-D array: one per row); "
            "got ndarray (wrap a single partition in a list)",
        ),
        (
            "01",
            "`levels` must be a list of partitions, finest first (a 2-D array: one per row); "
            "got str",
        ),
        (
            [[{0, 1}, {2, 3}], [{0, 1, 2}, {3}]],
            "nodes 2 and 3 share a cluster in levels[0] but not in levels[1]",
        ),
    ],
    ids=["not-nested", "length", "float", "1d-array", "str", "sets-not-nested"],
)
def test_bad_levels(levels, message):
    with pytest.raises(InvalidLabelsError, match=re.escape(message)):
        structural_entropy_tree(nx.path_graph(4), levels)


# --- coding_tree --------------------------------------------------------------------------------


def _test_graphs():
    planted = nx.planted_partition_graph(4, 8, 0.8, 0.05, seed=3)
    return {
        "karate": nx.karate_club_graph(),
        "les_miserables": nx.les_miserables_graph(),
        "florentine": nx.florentine_families_graph(),
        "barbell": nx.barbell_graph(5, 2),
        "planted": planted,
        "two_components": nx.disjoint_union(nx.cycle_graph(5), nx.complete_graph(4)),
    }


@pytest.mark.parametrize("name", list(_test_graphs()))
def test_height_two_is_codeseg_and_minimum_never_rises_with_height(name):
    G = _test_graphs()[name]
    for seed in (0, 7):
        part = sepkit.codeseg(G, seed=seed)
        trees = [coding_tree(G, height=h, seed=seed) for h in (1, 2, 3, 4)]
        assert_array_equal(trees[1].levels[0], part.labels)
        assert trees[1].entropy == part.entropy
        assert_allclose(trees[0].entropy, sepkit.structural_entropy_1d(G), **TOL)
        found = [t.entropy for t in trees]
        assert all(b <= a + 1e-12 for a, b in zip(found, found[1:], strict=False)), found
        for t in trees:
            assert len(t.levels) == t.height - 1
            assert t.entropy == pytest.approx(structural_entropy_tree(G, list(t.levels)), abs=1e-12)
            assert t.history.size == t.height and t.history[-1] == pytest.approx(t.entropy)
            assert np.all(np.diff(t.history) <= 1e-12)
            # the history of height h holds the trees of every lower height
            assert_allclose(t.history, found[: t.height], rtol=1e-12)


@given(G=graphs(max_nodes=12), height=st.integers(1, 5), seed=st.integers(0, 2**64 - 1))
def test_coding_tree_is_a_consistent_tree(G, height, seed):
    t = coding_tree(G, height=height, seed=seed)
    n = G.number_of_nodes()
    for lab in t.levels:
        assert lab.dtype == np.int64 and lab.shape == (n,)
        _, first = np.unique(lab, return_index=True)
        assert_array_equal(lab[np.sort(first)], np.arange(lab.max() + 1))
    expected = naive.structural_entropy_tree(G, _dicts(G, t.levels))
    assert_allclose(t.entropy, expected, **TOL)
    again = coding_tree(G, height=height, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(t.levels, again.levels, strict=True))


def test_same_tree_whatever_the_thread_count():
    G = nx.planted_partition_graph(6, 12, 0.6, 0.04, seed=1)
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            results.append(coding_tree(G, height=4, seed=5))
        finally:
            numba.set_num_threads(before)
    a, b = results
    assert a.entropy == b.entropy
    for x, y in zip(a.levels, b.levels, strict=True):
        assert_array_equal(x, y)


def test_tree_structure_accessors(karate):
    t = coding_tree(karate, height=3, seed=0)
    n = karate.number_of_nodes()
    k1, k2 = t.n_clusters
    parent = t.parent
    assert parent.size == n + k1 + k2 + 1 and parent[-1] == -1
    assert_array_equal(parent[:n], n + t.levels[0])
    T = t.to_networkx()
    assert nx.is_arborescence(T)
    assert {T.nodes[i]["label"] for i in range(n)} == set(karate)
    assert [T.nodes[x]["level"] for x in (0, n, n + k1, n + k1 + k2)] == [0, 1, 2, 3]
    assert all(T.nodes[p]["level"] == T.nodes[c]["level"] + 1 for p, c in T.edges)
    for level in (1, 2):
        communities = t.communities(level)
        assert sorted(v for c in communities for v in c) == sorted(karate)
        assert len(communities) == t.n_clusters[level - 1]
    # every cluster of level 1 lies inside one of level 2
    assert all(any(c <= d for d in t.communities(2)) for c in t.communities(1))
    with pytest.raises(InvalidOptionError, match=r"`level` must be in 1\.\.2 .*; got 3"):
        t.communities(3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"height": 0}, InvalidOptionError, "`height` must be an integer in 1..64 or None; got 0"),
        (
            {"height": 65},
            InvalidOptionError,
            "`height` must be an integer in 1..64 or None; got 65",
        ),
        (
            {"height": "3"},
            InvalidOptionError,
            "`height` must be an integer in 1..64 or None; got '3'",
        ),
        ({"seed": -1}, InvalidOptionError, "`seed` must be an integer in 0..2**64-1 or None"),
        ({"polish": 1}, sepkit.InvalidTypeError, "`polish` must be a bool or None; got 1"),
        ({"base": 1}, InvalidOptionError, "`base` must be a finite real number > 0 and != 1"),
    ],
)
def test_coding_tree_bad_options(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        coding_tree(nx.path_graph(4), **kwargs)


def test_coding_tree_degenerate_graphs():
    t = coding_tree(np.zeros((5, 5)), height=3)
    assert t.entropy == 0.0 and len(t.levels) == 2
    single = coding_tree(nx.empty_graph(1), height=4)
    assert single.entropy == 0.0 and single.n_clusters == (1, 1, 1)


def test_tree_local_move_never_raises_the_entropy():
    rng = np.random.default_rng(11)
    for _ in range(40):
        n = int(rng.integers(2, 12))
        A = brute_force.random_graph(rng, n)
        g = sepkit.as_graph(A)
        L = int(rng.integers(1, 4))
        levels = [rng.integers(0, n, n)]
        for _ in range(L - 1):
            levels.append(rng.integers(0, n, n)[levels[-1]])
        codes = np.stack([np.unique(lab, return_inverse=True)[1] for lab in levels])
        before = structural_entropy_tree(A, list(codes))
        order = rng.permutation(n)
        anchors = bool(rng.random() < 0.5)
        _kt.tree_local_move(
            g.indptr, g.indices, g.data, g.degree, codes, order, g.volume, 1e-12, anchors, 10 * n
        )
        after = structural_entropy_tree(A, list(codes))
        assert after <= before + 1e-12
        # each level still a coarsening of the one below (else the call above had failed)
        assert codes.min() >= 0


# --- exhaustive optima on tiny graphs -------------------------------------------------------------


@pytest.fixture(scope="module")
def table():
    return {k: brute_force.partitions(k) for k in range(1, 9)}


def test_brute_force_helpers_agree_with_the_definition(table):
    rng = np.random.default_rng(4)
    A = brute_force.random_graph(rng, 5)
    G = nx.from_numpy_array(A)
    for p1, p2, h in brute_force.tree3_all(A, table):
        for j in rng.choice(len(p2), min(3, len(p2)), replace=False):
            levels = [dict(enumerate(p1.tolist())), dict(enumerate(p2[j][p1].tolist()))]
            assert h[j] == pytest.approx(naive.structural_entropy_tree(G, levels), abs=1e-12)
    parts = table[5]
    h2 = brute_force.h2_all(A, parts)
    for i in rng.choice(len(parts), 10, replace=False):
        assert h2[i] == pytest.approx(sepkit.structural_entropy_2d(A, parts[i]), abs=1e-12)


@pytest.mark.slow
def test_height_three_reaches_the_brute_force_optimum(table):
    """Seeded random graphs of 3 to 8 nodes, default settings; docs/trees.md gives the rate
    on more graphs (benchmarks/report_trees.py)."""
    rng = np.random.default_rng(2025)
    hits = total = 0
    for _ in range(60):
        A = brute_force.random_graph(rng, int(rng.integers(3, 9)))
        if A.sum() == 0:
            continue
        optimum = brute_force.tree3_min(A, table)
        found = coding_tree(A, height=3).entropy
        assert found >= optimum - 1e-9  # nothing beats the optimum
        hits += found <= optimum + 1e-9
        total += 1
    assert hits / total >= 0.95, f"optimum reached on {hits}/{total} graphs"


# --- codeseg(n_clusters=k) ----------------------------------------------------------------------


def test_fixed_k_against_brute_force(table):
    """Every k on seeded random graphs of 2 to 7 nodes, and the optimum's own k."""
    rng = np.random.default_rng(7)
    hits = total = at_optimum = graphs_seen = 0
    for _ in range(15):
        n = int(rng.integers(2, 8))
        A = brute_force.random_graph(rng, n)
        if A.sum() == 0:
            continue
        best = brute_force.h2_min_per_k(A, table[n])
        for k in range(1, n + 1):
            p = sepkit.codeseg(A, n_clusters=k)
            assert p.n_clusters == k and len(np.unique(p.labels)) == k
            assert p.entropy >= best[k] - 1e-9
            hits += p.entropy <= best[k] + 1e-9
            total += 1
        k_star = min(best, key=best.get)  # the unconstrained optimum's k
        optimum = sepkit.codeseg(A, n_clusters=k_star).entropy
        at_optimum += optimum <= best[k_star] + 1e-9
        graphs_seen += 1
    assert hits / total >= 0.95, f"optimum reached for {hits}/{total} (graph, k) pairs"
    assert at_optimum / graphs_seen >= 0.9, f"{at_optimum}/{graphs_seen} at the optimum's k"


@pytest.mark.parametrize("name", list(_test_graphs()))
def test_fixed_k_at_the_unconstrained_k_gives_the_same_entropy(name):
    G = _test_graphs()[name]
    free = sepkit.codeseg(G, seed=3)
    fixed = sepkit.codeseg(G, seed=3, n_clusters=free.n_clusters)
    assert fixed.n_clusters == free.n_clusters
    assert fixed.entropy == pytest.approx(free.entropy, abs=1e-12)
    for k in (1, 2, free.n_clusters + 3):
        p = sepkit.codeseg(G, seed=3, n_clusters=k)
        assert p.n_clusters == k and p.entropy >= free.entropy - 1e-12
        assert p.entropy == pytest.approx(sepkit.structural_entropy_2d(G, p.labels), abs=1e-12)


def test_fixed_k_below_the_number_of_components_spans_components():
    G = nx.disjoint_union_all([nx.complete_graph(4) for _ in range(3)])
    p = sepkit.codeseg(G, n_clusters=2)
    assert p.n_clusters == 2
    sizes = sorted(len(c) for c in p.communities())
    assert sizes == [4, 8]  # two of the three cliques share a cluster
    assert sepkit.codeseg(G, n_clusters=1).entropy == pytest.approx(
        sepkit.structural_entropy_1d(G), abs=1e-12
    )


def test_fixed_k_karate_two_beside_the_factions(karate):
    factions = [{v for v in karate if karate.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]
    two = sepkit.codeseg(karate, n_clusters=2)
    assert two.n_clusters == 2
    assert two.entropy <= sepkit.structural_entropy_2d(karate, factions) + 1e-12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_clusters": 0}, "`n_clusters` must be an integer in 1..4; got 0"),
        ({"n_clusters": 5}, "`n_clusters` must be an integer in 1..4; got 5"),
        ({"n_clusters": 2.0}, "`n_clusters` must be an integer in 1..4; got 2.0"),
        ({"n_clusters": 2, "method": "game"}, '`n_clusters` applies to method="multilevel" only'),
    ],
)
def test_fixed_k_bad_options(kwargs, message):
    with pytest.raises(InvalidOptionError, match=re.escape(message)):
        sepkit.codeseg(nx.path_graph(4), **kwargs)
