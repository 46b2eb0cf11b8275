"""Entropy is scale-free: every result is the same for the weights times any c > 0,
subnormal weights (5e-324 upwards) and weights near float64's limit included."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import sepkit
from sepkit import Graph

TOL = {"rtol": 1e-12, "atol": 1e-12}
TINY = 5e-324  # the smallest positive float64: 2**-1074, one bit of precision


@st.composite
def integer_graphs(draw, max_nodes: int = 7):
    """A dense symmetric matrix of small integer weights and an integer label per node.

    Integer weights times any float64 c are exact in the subnormal range (c is a multiple
    of 2**-1074 there), so scaled graphs are exactly the scaled graph.
    """
    n = draw(st.integers(2, max_nodes))
    upper = draw(st.lists(st.integers(0, 100), min_size=n * n, max_size=n * n))
    A = np.triu(np.array(upper, dtype=np.float64).reshape(n, n))
    A = A + np.triu(A, 1).T
    labels = np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)))
    return A, labels


def results(A, labels) -> dict:
    """Everything sepkit computes from weights, for one graph and partition."""
    n = A.shape[0]
    return {
        "h1": sepkit.structural_entropy_1d(A),
        "node_terms": sepkit.node_entropy_1d(A),
        "h2": sepkit.structural_entropy_2d(A, labels),
        "detachment": sepkit.detachment_cost(A, labels),
        "deltas": np.array(
            [sepkit.move_delta(A, labels, v, t) for v in range(n) for t in (int(labels[0]), None)]
        ),
        "tree": sepkit.structural_entropy_tree(A, [labels, labels // 2]),
        "codeseg": sepkit.codeseg(A, seed=0).entropy,
        "batch": sepkit.codeseg_batch(A[None], seed=0).entropy[0],
    }


def test_issue_case_subnormal_path():
    # A 3-node path of weights 5e-324 once gave 1.1393 bits, against 1.2925 with weight 1.
    A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float64)
    labels = np.array([0, 0, 1])
    assert sepkit.structural_entropy_2d(A * TINY, labels) == sepkit.structural_entropy_2d(A, labels)
    assert_allclose(sepkit.structural_entropy_2d(A, labels), 1.2924812503605778, rtol=1e-15)
    for key, value in results(A * TINY, labels).items():
        assert_array_equal(value, results(A, labels)[key], err_msg=key)


@given(integer_graphs(), st.integers(-1074, 1000))
def test_power_of_two_scale_changes_no_bit(case, k):
    # Scaling by 2**k is exact, and so is sepkit's rescaling: the results are bit-identical.
    A, labels = case
    ref = results(A, labels)
    for key, value in results(A * 2.0**k, labels).items():
        assert_array_equal(value, ref[key], err_msg=f"{key} at scale 2**{k}")


@given(integer_graphs(), st.floats(min_value=1e-320, max_value=1e300, allow_subnormal=True))
def test_any_positive_scale_from_1e_320_to_1e300(case, c):
    A, labels = case
    ref = results(A, labels)
    for key, value in results(A * c, labels).items():
        assert_allclose(value, ref[key], **TOL, err_msg=f"{key} at scale {c!r}")


@pytest.mark.parametrize("kind", ["networkx", "dense", "csr", "coo", "from_csr", "Graph"])
def test_every_input_route_lifts_subnormal_weights(kind):
    G = nx.karate_club_graph()
    A = nx.to_numpy_array(G, weight=None)
    tiny = A * TINY
    g0 = sepkit.as_graph(sp.csr_array(tiny))
    if kind == "networkx":
        H = nx.Graph()
        H.add_nodes_from(G)
        H.add_weighted_edges_from((u, v, TINY) for u, v in G.edges())
        obj = H
    elif kind == "from_csr":
        obj = Graph.from_csr(g0.indptr, g0.indices, np.full(g0.data.size, TINY))
    elif kind == "Graph":
        deg = tiny.sum(axis=1)
        obj = Graph(
            indptr=g0.indptr,
            indices=g0.indices,
            data=np.full(g0.data.size, TINY),
            degree=deg,
            volume=float(deg.sum()),
            n_nodes=34,
            nodes=range(34),
        )
    else:
        obj = {"dense": tiny, "csr": sp.csr_array(tiny), "coo": sp.coo_array(tiny)}[kind]
    g = sepkit.as_graph(obj)
    # A power of two, and the stored weights recover the input exactly.
    assert g.weight_scale > 1 and math.frexp(g.weight_scale)[0] == 0.5
    assert_array_equal(g.data / g.weight_scale, TINY)
    assert 2.0**-64 <= g.data.max() < 2.0**-63
    labels = [0 if G.nodes[v]["club"] == "Mr. Hi" else 1 for v in G]
    assert sepkit.structural_entropy_2d(g, labels) == sepkit.structural_entropy_2d(A, labels)
    assert_array_equal(sepkit.detachment_cost(g, labels), sepkit.detachment_cost(A, labels))


def test_ordinary_weights_are_not_rescaled():
    # The lift is for tiny weights only: graphs users see every day keep their stored values.
    for w in (1e-150, 1.0, 1e200):
        g = sepkit.as_graph(np.array([[0.0, w], [w, 0.0]]))
        assert g.weight_scale == 1.0 and g.data[0] == w


def test_wide_range_keeps_its_large_weights_exact():
    # 1e-320 beside 1.0: no lift (the largest is ordinary); the tiny edge contributes what
    # float64 can hold of it, and the entropy of the rest is exact.
    A = np.array([[0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0, 1e-320], [0, 0, 1e-320, 0]])
    g = sepkit.as_graph(A)
    assert g.weight_scale == 1.0
    assert_allclose(sepkit.structural_entropy_1d(A), 1.0, rtol=1e-15)


def test_batch_lifts_each_graph_on_its_own():
    A = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=np.float64)
    stack = np.stack([A, A * TINY, A * 1e300])
    part = sepkit.codeseg_batch(stack, seed=0)
    assert part.entropy[1] == part.entropy[0]
    assert_allclose(part.entropy[2], part.entropy[0], rtol=1e-14)
