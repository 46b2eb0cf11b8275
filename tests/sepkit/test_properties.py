"""Hypothesis properties of the entropy maths on random weighted graphs.

The graphs (``strategies.graphs``) have isolated nodes, self-loops and sometimes no edge.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import sepkit
from tests.sepkit import naive
from tests.sepkit.strategies import graphs, graphs_and_labels, partition_dict, to_dense

TOL = {"rtol": 1e-12, "atol": 1e-12}


@given(graphs_and_labels())
def test_h2_at_most_h1(case):
    G, labels = case
    h1 = sepkit.structural_entropy_1d(G)
    h2 = sepkit.structural_entropy_2d(G, labels)
    assert h2 <= h1 + 1e-12
    assert h2 >= -1e-12


@given(graphs_and_labels())
def test_h1_minus_h2_is_the_explained_structure(case):
    # H1 - H2 = sum_C (in_C/V) log(V/vol_C), from the design page.
    G, labels = case
    d = naive.degrees(G)
    V = sum(d.values())
    explained = 0.0
    for members in naive.clusters(partition_dict(G, labels)).values():
        inner = sum(
            (w if u == v else 2 * w)
            for u, v, w in naive.weighted_edges(G)
            if u in members and v in members
        )
        vol = sum(d[o] for o in members)
        if inner > 0:
            explained += inner / V * math.log2(V / vol)
    assert_allclose(
        sepkit.structural_entropy_1d(G) - sepkit.structural_entropy_2d(G, labels), explained, **TOL
    )


@given(graphs(), st.integers(min_value=-(2**40), max_value=2**40))
def test_h2_of_one_cluster_is_h1(G, label):
    labels = np.full(G.number_of_nodes(), label)
    assert_allclose(sepkit.structural_entropy_2d(G, labels), sepkit.structural_entropy_1d(G), **TOL)


@given(graphs(self_loops=False))
def test_h2_of_singletons_is_h1_without_self_loops(G):
    singletons = np.arange(G.number_of_nodes())
    assert_allclose(
        sepkit.structural_entropy_2d(G, singletons), sepkit.structural_entropy_1d(G), **TOL
    )


@given(graphs())
def test_h2_of_singletons_is_lower_with_self_loops(G):
    singletons = np.arange(G.number_of_nodes())
    h1 = sepkit.structural_entropy_1d(G)
    h2 = sepkit.structural_entropy_2d(G, singletons)
    d = naive.degrees(G)
    V = sum(d.values())
    # A self-loop s on a node of degree d < V explains (s/V) log(V/d) > 0.
    explained = sum(w / V * math.log2(V / d[u]) for u, v, w in naive.weighted_edges(G) if u == v)
    assert_allclose(h1 - h2, explained, **TOL)
    if any(u == v and d[u] < V for u, v, _ in naive.weighted_edges(G)):
        assert h2 < h1


@given(graphs_and_labels(), st.randoms(use_true_random=False))
def test_invariant_under_node_relabelling(case, rnd):
    G, labels = case
    n = G.number_of_nodes()
    perm = np.array(rnd.sample(range(n), n))  # new row i is old row perm[i]
    A = to_dense(G)
    B = A[np.ix_(perm, perm)]
    labels_b = labels[perm]
    assert_allclose(sepkit.structural_entropy_1d(B), sepkit.structural_entropy_1d(A), **TOL)
    assert_allclose(sepkit.node_entropy_1d(B), sepkit.node_entropy_1d(A)[perm], **TOL)
    assert_allclose(
        sepkit.structural_entropy_2d(B, labels_b),
        sepkit.structural_entropy_2d(A, labels),
        **TOL,
    )
    assert_allclose(
        sepkit.detachment_cost(B, labels_b), sepkit.detachment_cost(A, labels)[perm], **TOL
    )
    for i in range(n):
        for target in (int(labels[0]), None):
            assert_allclose(
                sepkit.move_delta(B, labels_b, i, target),
                sepkit.move_delta(A, labels, int(perm[i]), target),
                **TOL,
            )
    # The same through networkx: nodes renamed and inserted in another order.
    H = nx.Graph()
    H.add_nodes_from(f"v{perm[i]}" for i in range(n))
    H.add_weighted_edges_from((f"v{u}", f"v{v}", w) for u, v, w in naive.weighted_edges(G))
    by_name = {f"v{v}": int(c) for v, c in zip(G, labels, strict=True)}
    assert_allclose(
        sepkit.structural_entropy_2d(H, by_name), sepkit.structural_entropy_2d(G, labels), **TOL
    )


@given(
    graphs_and_labels(),
    st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False),
)
def test_invariant_under_weight_scaling(case, c):
    G, labels = case
    A = to_dense(G)
    B = c * A
    assert_allclose(sepkit.structural_entropy_1d(B), sepkit.structural_entropy_1d(A), **TOL)
    assert_allclose(sepkit.node_entropy_1d(B), sepkit.node_entropy_1d(A), **TOL)
    assert_allclose(
        sepkit.structural_entropy_2d(B, labels), sepkit.structural_entropy_2d(A, labels), **TOL
    )
    assert_allclose(sepkit.detachment_cost(B, labels), sepkit.detachment_cost(A, labels), **TOL)
    for v in range(G.number_of_nodes()):
        assert_allclose(
            sepkit.move_delta(B, labels, v, None), sepkit.move_delta(A, labels, v, None), **TOL
        )


@given(graphs_and_labels())
def test_move_delta_is_the_recomputed_difference(case):
    # leidenalg's test_move_nodes: apply every move and recompute H2 from scratch.
    G, labels = case
    before = sepkit.structural_entropy_2d(G, labels)
    fresh = int(labels.max()) + 1 if labels.max() < 2**62 else int(labels.min()) - 1
    for v in range(G.number_of_nodes()):
        for target in [*np.unique(labels).tolist(), None]:
            after = labels.copy()
            after[v] = fresh if target is None else target
            assert_allclose(
                sepkit.move_delta(G, labels, v, target),
                sepkit.structural_entropy_2d(G, after) - before,
                **TOL,
                err_msg=f"node {v} -> {target}",
            )


@given(graphs_and_labels())
def test_detachment_cost_is_the_recomputed_difference(case):
    G, labels = case
    before = sepkit.structural_entropy_2d(G, labels)
    fresh = int(labels.max()) + 1 if labels.max() < 2**62 else int(labels.min()) - 1
    cost = sepkit.detachment_cost(G, labels)
    for v in range(G.number_of_nodes()):
        after = labels.copy()
        after[v] = fresh
        assert_allclose(cost[v], sepkit.structural_entropy_2d(G, after) - before, **TOL)
        assert_allclose(cost[v], sepkit.move_delta(G, labels, v, None), **TOL)


@given(graphs_and_labels())
def test_detachment_cost_is_zero_for_singletons_and_isolated_nodes(case):
    G, labels = case
    cost = sepkit.detachment_cost(G, labels)
    d = sepkit.as_graph(G).degree
    _, counts = np.unique(labels, return_inverse=False, return_counts=True)
    size = dict(zip(np.unique(labels).tolist(), counts.tolist(), strict=True))
    for v in range(G.number_of_nodes()):
        if d[v] == 0 or size[int(labels[v])] == 1:
            assert cost[v] == 0.0


@given(graphs_and_labels(), st.sampled_from([0.5, 3.0, math.e, 10.0, 1e6]))
def test_base_only_scales_results(case, base):
    G, labels = case
    to_nats = math.log(base)
    checks = [
        (sepkit.structural_entropy_1d, ()),
        (sepkit.node_entropy_1d, ()),
        (sepkit.structural_entropy_2d, (labels,)),
        (sepkit.detachment_cost, (labels,)),
        (sepkit.move_delta, (labels, 0, None)),
        (sepkit.move_delta, (labels, 0, int(labels[-1]))),
    ]
    for func, args in checks:
        nats = np.asarray(func(G, *args, base=math.e))
        assert_allclose(np.asarray(func(G, *args, base=base)) * to_nats, nats, **TOL)
        assert_allclose(np.asarray(func(G, *args, base=2)) * math.log(2), nats, **TOL)
        assert_allclose(np.asarray(func(G, *args)), np.asarray(func(G, *args, base=2.0)), **TOL)
