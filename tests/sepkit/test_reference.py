"""Every public function against the slow reference in ``naive.py``, and input formats."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from numpy.testing import assert_allclose, assert_array_equal

import sepkit
from tests.sepkit import naive
from tests.sepkit.strategies import (
    all_formats,
    communities,
    graphs,
    graphs_and_labels,
    partition_dict,
    to_dense,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}
BASES = [2.0, math.e, 10.0]


def targets_of(labels):
    """Every label in use, then None (a new singleton)."""
    return [*sorted({int(c) for c in labels}), None]


# --- the reference itself, on hand-checked values -------------------------------------------


def test_naive_matches_hand_computation():
    # Triangle of unit weights: every degree 2, V = 6, H1 = log2(3).
    G = nx.cycle_graph(3)
    assert_allclose(naive.structural_entropy_1d(G), math.log2(3), **TOL)
    # One cluster: H2 = H1. Singletons (no self-loops): H2 = H1 as well.
    assert_allclose(naive.structural_entropy_2d(G, {0: 0, 1: 0, 2: 0}), math.log2(3), **TOL)
    assert_allclose(naive.structural_entropy_2d(G, {0: 0, 1: 1, 2: 2}), math.log2(3), **TOL)
    # {0, 1} | {2}: vol = 4 and 2, g = 2 and 2.
    # H2 = -[(2/6) log2(4/6) + 2 (2/6) log2(2/4)] - [(2/6) log2(2/6) + (2/6) log2(1)]
    expected = -(
        (2 / 6) * math.log2(4 / 6) + 2 * (2 / 6) * math.log2(2 / 4) + (2 / 6) * math.log2(2 / 6)
    )
    assert_allclose(naive.structural_entropy_2d(G, {0: 0, 1: 0, 2: 1}), expected, **TOL)


def test_naive_self_loop_counts_once(messy_graph):
    d = naive.degrees(messy_graph)
    assert d == {"a": 2.5, "b": 3.0, "c": 4.5, "d": 4.5, "e": 0.0}


# --- known values (design page) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("graph", "h1"),
    [
        (nx.karate_club_graph(), 4.634008),
        (nx.Graph(nx.karate_club_graph().edges()), 4.704423),
        (nx.les_miserables_graph(), 5.3362),
        (nx.florentine_families_graph(), 3.7210),
    ],
    ids=["karate-weighted", "karate-unweighted", "les-miserables", "florentine"],
)
def test_known_h1(graph, h1):
    decimals = len(str(h1).split(".")[1])
    assert round(sepkit.structural_entropy_1d(graph), decimals) == h1
    assert_allclose(sepkit.structural_entropy_1d(graph), naive.structural_entropy_1d(graph), **TOL)


def test_known_h2_karate_factions(karate, karate_factions):
    unweighted = nx.Graph(karate.edges())
    assert round(sepkit.structural_entropy_2d(unweighted, karate_factions), 4) == 3.8467


# --- every public function against the reference ---------------------------------------------


@given(graphs())
def test_1d_matches_naive(G):
    for base in BASES:
        assert_allclose(
            sepkit.node_entropy_1d(G, base=base), naive.node_entropy_1d(G, base=base), **TOL
        )
        assert_allclose(
            sepkit.structural_entropy_1d(G, base=base),
            naive.structural_entropy_1d(G, base=base),
            **TOL,
        )


@given(graphs_and_labels())
def test_2d_matches_naive(case):
    G, labels = case
    part = partition_dict(G, labels)
    for base in BASES:
        assert_allclose(
            sepkit.structural_entropy_2d(G, labels, base=base),
            naive.structural_entropy_2d(G, part, base=base),
            **TOL,
        )


@given(graphs_and_labels())
def test_move_delta_matches_naive_for_every_node_and_target(case):
    G, labels = case
    part = partition_dict(G, labels)
    for node in G:
        for target in targets_of(labels):
            assert_allclose(
                sepkit.move_delta(G, labels, node, target),
                naive.move_delta(G, part, node, target),
                **TOL,
                err_msg=f"node {node} -> {target}",
            )


@given(graphs_and_labels())
def test_detachment_cost_matches_naive(case):
    G, labels = case
    part = partition_dict(G, labels)
    for base in BASES:
        assert_allclose(
            sepkit.detachment_cost(G, labels, base=base),
            naive.detachment_cost(G, part, base=base),
            **TOL,
        )


def test_every_function_matches_naive_on_weighted_karate(karate, karate_factions):
    labels = np.zeros(karate.number_of_nodes(), dtype=np.int64)
    for c, members in enumerate(karate_factions):
        labels[sorted(members)] = c
    part = partition_dict(karate, labels)
    assert_allclose(sepkit.node_entropy_1d(karate), naive.node_entropy_1d(karate), **TOL)
    assert_allclose(
        sepkit.structural_entropy_2d(karate, karate_factions),
        naive.structural_entropy_2d(karate, part),
        **TOL,
    )
    assert_allclose(
        sepkit.detachment_cost(karate, karate_factions),
        naive.detachment_cost(karate, part),
        **TOL,
    )
    for node in (0, 8, 33):
        for target in (0, 1, None):
            assert_allclose(
                sepkit.move_delta(karate, labels, node, target),
                naive.move_delta(karate, part, node, target),
                **TOL,
            )


def test_string_node_labels_match_naive(messy_graph):
    part = {"a": 7, "b": 7, "c": -3, "d": -3, "e": 7}
    assert_allclose(
        sepkit.structural_entropy_2d(messy_graph, part),
        naive.structural_entropy_2d(messy_graph, part),
        **TOL,
    )
    assert_allclose(
        sepkit.detachment_cost(messy_graph, part), naive.detachment_cost(messy_graph, part), **TOL
    )
    for node in messy_graph:
        for target in (7, -3, None):
            assert_allclose(
                sepkit.move_delta(messy_graph, part, node, target),
                naive.move_delta(messy_graph, part, node, target),
                **TOL,
            )


def test_unweighted_networkx_input():
    G = nx.Graph()
    G.add_edge(0, 1, weight=5.0)
    G.add_edge(1, 2, weight=0.5)
    G.add_edge(2, 2, weight=3.0)
    g = sepkit.as_graph(G, weight=None)
    assert_array_equal(g.degree, [1.0, 2.0, 2.0])
    assert_allclose(sepkit.node_entropy_1d(g), naive.node_entropy_1d(G, weight=None), **TOL)
    # Another attribute name; edges without it weigh 1.
    H = nx.Graph()
    H.add_edge("x", "y", w=4.0)
    H.add_edge("y", "z")
    assert_array_equal(sepkit.as_graph(H, weight="w").degree, [4.0, 5.0, 1.0])


# --- the same graph in every format gives identical results ----------------------------------


def _results(obj, labels, node_targets):
    return {
        "h1": sepkit.structural_entropy_1d(obj),
        "terms": sepkit.node_entropy_1d(obj),
        "h2": sepkit.structural_entropy_2d(obj, labels),
        "cost": sepkit.detachment_cost(obj, labels),
        "delta": [sepkit.move_delta(obj, labels, v, t) for v, t in node_targets],
    }


@given(graphs_and_labels())
def test_all_input_formats_give_identical_results(case):
    G, labels = case
    formats = all_formats(G)
    formats["Graph"] = sepkit.as_graph(G)
    node_targets = [(v, t) for v in G for t in targets_of(labels)]
    reference = sepkit.as_graph(G)
    expected = _results(G, labels, node_targets)
    for name, obj in formats.items():
        g = sepkit.as_graph(obj)
        assert g.n_nodes == reference.n_nodes, name
        for field in ("indptr", "indices", "data", "degree"):
            assert_array_equal(getattr(g, field), getattr(reference, field), err_msg=name)
        assert g.indptr.dtype == g.indices.dtype == np.int64
        assert g.data.dtype == g.degree.dtype == np.float64
        assert g.volume == reference.volume, name
        got = _results(obj, labels, node_targets)
        for key, value in expected.items():
            assert_array_equal(got[key], value, err_msg=f"{name}: {key}")


def test_graph_input_is_returned_as_is(messy_graph):
    g = sepkit.as_graph(messy_graph)
    assert sepkit.as_graph(g) is g
    assert list(g.nodes) == ["a", "b", "c", "d", "e"]
    assert list(sepkit.as_graph(to_dense(messy_graph)).nodes) == [0, 1, 2, 3, 4]


def test_graph_is_frozen(messy_graph):
    g = sepkit.as_graph(messy_graph)
    with pytest.raises(AttributeError):
        g.volume = 1.0
    for name in ("indptr", "indices", "data", "degree"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(g, name)[0] = 1


# --- the three label formats ---------------------------------------------------------------


@given(graphs_and_labels())
def test_label_formats_agree(case):
    G, labels = case
    sets = communities(G, labels)
    mapping = partition_dict(G, labels)
    # Position of each user label in the list of sets.
    position = {int(labels[[*G].index(next(iter(s)))]): c for c, s in enumerate(sets)}
    contiguous = np.array([position[int(c)] for c in labels])
    h2 = sepkit.structural_entropy_2d(G, labels)
    cost = sepkit.detachment_cost(G, labels)
    others = [sets, mapping, contiguous, labels.tolist(), tuple(labels.tolist())]
    if np.all(np.abs(labels) < 2**31):
        others.append(labels.astype(np.int32))
    for other in others:
        # Not bitwise: the label format decides the order in which clusters are summed.
        assert_allclose(sepkit.structural_entropy_2d(G, other), h2, **TOL)
        assert_allclose(sepkit.detachment_cost(G, other), cost, **TOL)
    for node in G:
        for target in targets_of(labels):
            expected = sepkit.move_delta(G, labels, node, target)
            as_set = None if target is None else position[target]
            assert_allclose(sepkit.move_delta(G, mapping, node, target), expected, **TOL)
            assert_allclose(sepkit.move_delta(G, sets, node, as_set), expected, **TOL)
            assert_allclose(sepkit.move_delta(G, contiguous, node, as_set), expected, **TOL)
            if target is not None:
                assert sepkit.move_delta(G, labels, node, np.int64(target)) == expected
