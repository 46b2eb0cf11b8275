"""Bad input gets an error naming the argument, the expectation and what was received;
degenerate graphs get their documented results. One test per case."""

from __future__ import annotations

import math
import re
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import sepkit
from sepkit import (
    InvalidGraphError,
    InvalidLabelsError,
    InvalidOptionError,
    InvalidTypeError,
    SepkitError,
)

PUBLIC_ON_GRAPH = [
    lambda G: sepkit.structural_entropy_1d(G),
    lambda G: sepkit.node_entropy_1d(G),
    lambda G: sepkit.structural_entropy_2d(G, [0, 0, 1]),
    lambda G: sepkit.move_delta(G, [0, 0, 1], 0, 1),
    lambda G: sepkit.detachment_cost(G, [0, 0, 1]),
]


def test_errors_are_catchable_as_builtins():
    for cls in (InvalidGraphError, InvalidLabelsError, InvalidOptionError):
        assert issubclass(cls, SepkitError) and issubclass(cls, ValueError)
    assert issubclass(InvalidTypeError, SepkitError) and issubclass(InvalidTypeError, TypeError)
    assert InvalidOptionError.__module__ == "sepkit"  # tracebacks show the public name


# --- containers ------------------------------------------------------------------------------


@pytest.mark.parametrize("func", PUBLIC_ON_GRAPH)
def test_directed_networkx_graph(func):
    with pytest.raises(
        InvalidTypeError, match=r"`G` must be an undirected graph; got a directed DiGraph"
    ):
        func(nx.DiGraph([(0, 1), (1, 2)]))


def test_multigraph():
    with pytest.raises(InvalidTypeError, match=r"`G` must be a simple graph; got a MultiGraph"):
        sepkit.as_graph(nx.MultiGraph([(0, 1), (0, 1)]))


def test_directed_multigraph():
    with pytest.raises(
        InvalidTypeError, match=r"`G` must be an undirected graph; got a directed Multi"
    ):
        sepkit.as_graph(nx.MultiDiGraph([(0, 1)]))


@pytest.mark.parametrize("obj", ["abc", [[0, 1], [1, 0]], None, 3.0], ids=repr)
def test_unsupported_container(obj):
    message = rf"`G` must be a networkx.Graph.*; got {type(obj).__name__}"
    with pytest.raises(InvalidTypeError, match=message):
        sepkit.as_graph(obj)


# --- matrices --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matrix", "shape"),
    [
        (np.zeros((3, 4)), "(3, 4)"),
        (sp.csr_array((3, 4)), "(3, 4)"),
        (sp.coo_matrix((4, 3)), "(4, 3)"),
        (np.zeros(3), "(3,)"),
        (np.zeros((2, 2, 2)), "(2, 2, 2)"),
    ],
    ids=["dense", "csr", "coo", "1d", "3d"],
)
def test_non_square_matrix(matrix, shape):
    message = f"`G` must be a square adjacency matrix; got shape {shape}"
    with pytest.raises(InvalidGraphError, match=re.escape(message)):
        sepkit.as_graph(matrix)


@pytest.mark.parametrize("kind", ["dense", "csr", "coo"])
def test_asymmetric_matrix_names_first_pair(kind):
    A = np.zeros((5, 5))
    A[0, 1] = A[1, 0] = 1.0  # symmetric
    A[1, 3], A[3, 1] = 2.0, 1.0  # first asymmetric pair in row order
    A[2, 4] = 7.0  # mirror missing, later in row order
    M = {"dense": A, "csr": sp.csr_array(A), "coo": sp.coo_array(A)}[kind]
    with pytest.raises(
        InvalidGraphError,
        match=re.escape("`G` must be symmetric (undirected); got A[1, 3] = 2.0 but A[3, 1] = 1.0"),
    ):
        sepkit.as_graph(M)


def test_asymmetric_matrix_missing_mirror():
    A = np.zeros((4, 4))
    A[3, 1] = 2.0
    with pytest.raises(
        InvalidGraphError,
        match=re.escape("got A[1, 3] = 0.0 but A[3, 1] = 2.0 (use sepkit.symmetrize)"),
    ):
        sepkit.as_graph(A)


def test_rounding_level_asymmetry_is_averaged():
    A = np.array([[0.0, 1.0], [1.0 + 1e-14, 0.0]])
    g = sepkit.as_graph(A)
    assert_array_equal(g.to_scipy().toarray(), g.to_scipy().toarray().T)
    assert_allclose(g.data, [1.0 + 5e-15, 1.0 + 5e-15], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("how", "expected"),
    [("max", [[0, 3], [3, 1]]), ("mean", [[0, 2], [2, 1]]), ("sum", [[0, 4], [4, 2]])],
)
def test_symmetrize(how, expected):
    A = np.array([[0.0, 1.0], [3.0, 1.0]])
    dense = sepkit.symmetrize(A, how=how)
    assert isinstance(dense, np.ndarray)
    assert_array_equal(dense, expected)
    sparse = sepkit.symmetrize(sp.coo_array(A), how=how)
    assert sp.issparse(sparse)
    assert_array_equal(sparse.toarray(), expected)
    # The result is accepted, and the input was not modified.
    assert_array_equal(sepkit.as_graph(dense).degree, np.sum(expected, axis=1))
    assert_array_equal(A, [[0.0, 1.0], [3.0, 1.0]])


def test_symmetrize_default_is_max():
    A = np.array([[0.0, 1.0], [3.0, 0.0]])
    assert_array_equal(sepkit.symmetrize(A), [[0, 3], [3, 0]])


def test_symmetrize_bad_how():
    with pytest.raises(
        InvalidOptionError, match=r'`how` must be one of "max", "mean", "sum"; got \'min\''
    ):
        sepkit.symmetrize(np.eye(2), how="min")


def test_symmetrize_non_square():
    with pytest.raises(InvalidGraphError, match=re.escape("`A` must be square; got shape (2, 3)")):
        sepkit.symmetrize(np.zeros((2, 3)))


@pytest.mark.parametrize("dtype", [complex, str, object])
def test_non_real_matrix(dtype):
    with pytest.raises(InvalidGraphError, match=r"`G` must hold real numbers; got dtype"):
        sepkit.as_graph(np.array([["1", "0"], ["0", "1"]]).astype(dtype))


# --- weights ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (-0.5, "`G` has a negative weight (-0.5 on edge (2, 7))"),
        (float("nan"), "`G` has a non-finite weight (nan on edge (2, 7))"),
        (float("inf"), "`G` has a non-finite weight (inf on edge (2, 7))"),
        (float("-inf"), "`G` has a negative weight (-inf on edge (2, 7))"),
    ],
    ids=["negative", "nan", "inf", "-inf"],
)
def test_bad_weight_networkx(w, message):
    G = nx.Graph()
    G.add_edge(2, 7, weight=w)
    G.add_edge(7, 1, weight=1.0)
    with pytest.raises(InvalidGraphError, match=re.escape(message)):
        sepkit.as_graph(G)


def test_bad_weight_networkx_names_string_nodes():
    G = nx.Graph()
    G.add_edge("a", "b", weight=-2)
    with pytest.raises(InvalidGraphError, match=re.escape("(-2.0 on edge ('a', 'b'))")):
        sepkit.structural_entropy_1d(G)


def test_bad_weight_networkx_self_loop():
    G = nx.Graph()
    G.add_edge("a", "a", weight=float("nan"))
    with pytest.raises(InvalidGraphError, match=re.escape("(nan on edge ('a', 'a'))")):
        sepkit.as_graph(G)


def test_non_numeric_weight_networkx():
    G = nx.Graph()
    G.add_edge(0, 1, weight="heavy")
    with pytest.raises(InvalidGraphError, match=r"`G` has a non-numeric weight 'heavy' on edge"):
        sepkit.as_graph(G)


@pytest.mark.parametrize(
    ("w", "message"),
    [
        (-0.5, "`G` has a negative weight (-0.5 on edge (2, 3))"),
        (np.nan, "`G` has a non-finite weight (nan on edge (2, 3))"),
        (np.inf, "`G` has a non-finite weight (inf on edge (2, 3))"),
    ],
    ids=["negative", "nan", "inf"],
)
@pytest.mark.parametrize("kind", ["dense", "csr", "coo"])
def test_bad_weight_matrix(w, message, kind):
    A = np.zeros((4, 4))
    A[0, 1] = A[1, 0] = 1.0
    A[2, 3] = A[3, 2] = w
    M = {"dense": A, "csr": sp.csr_array(A), "coo": sp.coo_array(A)}[kind]
    with pytest.raises(InvalidGraphError, match=re.escape(message)):
        sepkit.as_graph(M)


def test_bad_weight_on_diagonal():
    A = np.eye(3)
    A[1, 1] = -1.0
    with pytest.raises(InvalidGraphError, match=re.escape("(-1.0 on edge (1, 1))")):
        sepkit.as_graph(A)


# --- empty graphs ----------------------------------------------------------------------------


def test_networkx_graph_without_nodes():
    with pytest.raises(
        InvalidGraphError, match="`G` must have at least one node; got an empty graph"
    ):
        sepkit.structural_entropy_1d(nx.Graph())


@pytest.mark.parametrize(
    "matrix", [np.zeros((0, 0)), sp.csr_array((0, 0))], ids=["dense", "sparse"]
)
def test_matrix_without_nodes(matrix):
    with pytest.raises(
        InvalidGraphError, match=re.escape("`G` must have at least one node; got shape (0, 0)")
    ):
        sepkit.as_graph(matrix)


# --- labels ----------------------------------------------------------------------------------


@pytest.fixture
def path3():
    return nx.path_graph(3)


@pytest.mark.parametrize(
    ("labels", "shape"),
    [([0, 1], "(2,)"), ([0, 1, 1, 0], "(4,)"), (np.zeros((3, 1), int), "(3, 1)"), (5, "()")],
    ids=["short", "long", "2d", "scalar"],
)
def test_labels_of_wrong_length(path3, labels, shape):
    with pytest.raises(
        InvalidLabelsError,
        match=re.escape(f"`labels` must have one entry per node (length 3); got shape {shape}"),
    ):
        sepkit.structural_entropy_2d(path3, labels)


@pytest.mark.parametrize(
    ("labels", "dtype"),
    [([0.0, 1.0, 1.0], "float64"), ([True, False, True], "bool"), (["a", "b", "b"], "<U1")],
    ids=["float", "bool", "str"],
)
def test_non_integer_labels(path3, labels, dtype):
    with pytest.raises(
        InvalidLabelsError, match=re.escape(f"`labels` must be integers; got dtype {dtype}")
    ):
        sepkit.detachment_cost(path3, labels)


def test_non_integer_label_in_dict(path3):
    with pytest.raises(
        InvalidLabelsError, match=r"`labels` must map nodes to integers; got 1.5 for node 2"
    ):
        sepkit.structural_entropy_2d(path3, {0: 0, 1: 0, 2: 1.5})


def test_overlapping_sets(path3):
    with pytest.raises(
        InvalidLabelsError,
        match=r"`labels` must be disjoint node sets; node 1 is in sets 0 and 1",
    ):
        sepkit.structural_entropy_2d(path3, [{0, 1}, {1, 2}])


def test_sets_missing_a_node(path3):
    with pytest.raises(
        InvalidLabelsError,
        match=re.escape("`labels` must cover every node; node 2 has no label (1 nodes missing)"),
    ):
        sepkit.structural_entropy_2d(path3, [{0, 1}])


def test_dict_missing_a_node(path3):
    with pytest.raises(InvalidLabelsError, match=r"`labels` must cover every node; node 2"):
        sepkit.structural_entropy_2d(path3, {0: 0, 1: 0})


def test_unknown_node_in_sets(path3):
    with pytest.raises(InvalidLabelsError, match=r"`labels` names an unknown node: 5"):
        sepkit.structural_entropy_2d(path3, [{0, 1}, {2, 5}])


def test_unknown_node_in_dict():
    G = nx.path_graph(["a", "b", "c"])
    with pytest.raises(InvalidLabelsError, match=r"`labels` names an unknown node: 'z'"):
        sepkit.structural_entropy_2d(G, {"a": 0, "b": 0, "c": 1, "z": 1})


def test_unknown_node_in_dict_for_matrix():
    with pytest.raises(InvalidLabelsError, match=r"`labels` names an unknown node: 3"):
        sepkit.structural_entropy_2d(np.ones((3, 3)), {0: 0, 1: 0, 2: 1, 3: 1})


def test_unknown_move_delta_node(path3):
    with pytest.raises(InvalidGraphError, match=r"`node` must be a node of the graph; got 9"):
        sepkit.move_delta(path3, [0, 0, 1], 9, 1)


@pytest.mark.parametrize("target", [7, -1, "0", 1.0, True], ids=repr)
def test_unknown_move_delta_target(path3, target):
    with pytest.raises(
        InvalidLabelsError,
        match=re.escape(f"`target` must be a label in use (0, 1) or None; got {target!r}"),
    ):
        sepkit.move_delta(path3, [0, 0, 1], 0, target)


def test_move_delta_target_of_list_of_sets_is_its_position(path3):
    with pytest.raises(InvalidLabelsError, match=r"`target` must be a label in use \(0, 1\)"):
        sepkit.move_delta(path3, [{0, 1}, {2}], 0, 2)


def test_labels_with_unsigned_values_beyond_int64(path3):
    labels = np.array([2**64 - 1, 2**64 - 1, 2**63], dtype=np.uint64)
    expected = sepkit.move_delta(path3, [1, 1, 0], 1, 0)
    assert sepkit.structural_entropy_2d(path3, labels) == sepkit.structural_entropy_2d(
        path3, [1, 1, 0]
    )
    assert sepkit.move_delta(path3, labels, 1, 2**63) == expected
    with pytest.raises(InvalidLabelsError, match=r"`target` must be a label in use"):
        sepkit.move_delta(path3, labels, 1, -1)


# --- base ------------------------------------------------------------------------------------

CALLS_WITH_BASE = {
    "structural_entropy_1d": lambda G, b: sepkit.structural_entropy_1d(G, base=b),
    "node_entropy_1d": lambda G, b: sepkit.node_entropy_1d(G, base=b),
    "structural_entropy_2d": lambda G, b: sepkit.structural_entropy_2d(G, [0, 0, 1], base=b),
    "move_delta": lambda G, b: sepkit.move_delta(G, [0, 0, 1], 0, 1, base=b),
    "detachment_cost": lambda G, b: sepkit.detachment_cost(G, [0, 0, 1], base=b),
}


def _base_message(base):
    return re.escape(f"`base` must be a finite real number > 0 and != 1; got {base!r}")


@pytest.mark.parametrize("base", [0, 0.0, -2.0, float("-inf")], ids=repr)
@pytest.mark.parametrize("call", CALLS_WITH_BASE.values(), ids=CALLS_WITH_BASE.keys())
def test_base_not_positive(path3, call, base):
    with pytest.raises(InvalidOptionError, match=_base_message(base)):
        call(path3, base)


@pytest.mark.parametrize("base", [1, 1.0], ids=repr)
@pytest.mark.parametrize("call", CALLS_WITH_BASE.values(), ids=CALLS_WITH_BASE.keys())
def test_base_one(path3, call, base):
    with pytest.raises(InvalidOptionError, match=_base_message(base)):
        call(path3, base)


@pytest.mark.parametrize(
    "base", [float("nan"), float("inf"), True, "2", None, 10**400], ids=lambda b: repr(b)[:12]
)
def test_base_not_a_finite_real(path3, base):
    with pytest.raises(InvalidOptionError, match=_base_message(base)):
        sepkit.structural_entropy_2d(path3, [0, 0, 1], base=base)


# --- degenerate graphs: defined results ------------------------------------------------------


@pytest.mark.parametrize(
    "graph",
    [
        nx.empty_graph(5),
        np.zeros((5, 5)),
        sp.csr_array((5, 5)),
        sp.coo_array(([0.0, 0.0], ([0, 1], [1, 0])), shape=(5, 5)),
    ],
    ids=["networkx", "dense", "csr", "coo-explicit-zeros"],
)
def test_zero_volume_graph(graph):
    labels = [0, 0, 1, 1, 2]
    g = sepkit.as_graph(graph)
    assert g.volume == 0.0
    assert g.n_nodes == 5
    assert sepkit.structural_entropy_1d(graph) == 0.0
    assert_array_equal(sepkit.node_entropy_1d(graph), np.zeros(5))
    assert sepkit.structural_entropy_2d(graph, labels) == 0.0
    assert_array_equal(sepkit.detachment_cost(graph, labels), np.zeros(5))
    for v in range(5):
        for target in (0, 1, 2, None):
            assert sepkit.move_delta(graph, labels, v, target) == 0.0


def test_single_node():
    for graph in (nx.empty_graph(1), np.zeros((1, 1)), np.array([[2.5]])):
        assert sepkit.structural_entropy_1d(graph) == 0.0
        assert sepkit.structural_entropy_2d(graph, [3]) == 0.0
        assert_array_equal(sepkit.detachment_cost(graph, [3]), [0.0])
        assert sepkit.move_delta(graph, [3], 0, None) == 0.0


def test_isolated_nodes_cost_nothing():
    G = nx.barbell_graph(4, 0)
    G.add_nodes_from([8, 9])
    labels = [0, 0, 0, 0, 1, 1, 1, 1, 0, 1]  # isolated nodes sit in non-singleton clusters
    cost = sepkit.detachment_cost(G, labels)
    assert cost[8] == cost[9] == 0.0
    assert (cost[:8] > 0).all()
    assert_array_equal(sepkit.node_entropy_1d(G)[8:], [0.0, 0.0])
    for target in (0, 1, None):
        assert sepkit.move_delta(G, labels, 8, target) == 0.0
    # Isolated nodes change no entropy.
    H = nx.barbell_graph(4, 0)
    assert sepkit.structural_entropy_1d(G) == pytest.approx(sepkit.structural_entropy_1d(H))
    assert sepkit.structural_entropy_2d(G, labels) == pytest.approx(
        sepkit.structural_entropy_2d(H, labels[:8])
    )


def test_singleton_costs_nothing():
    cost = sepkit.detachment_cost(nx.path_graph(4), [0, 0, 0, 1])
    assert cost[3] == 0.0
    assert sepkit.move_delta(nx.path_graph(4), [0, 0, 0, 1], 3, None) == 0.0


def test_self_loop_row_sum_convention(messy_graph):
    """A self-loop of weight s adds s to the degree once (networkx's degree adds 2s)."""
    g = sepkit.as_graph(messy_graph)
    assert messy_graph.degree("d", weight="weight") == 6.0
    assert g.degree[3] == 4.5  # c-d 3 + d-d 1.5
    assert_array_equal(g.degree, [2.5, 3.0, 4.5, 4.5, 0.0])
    assert g.volume == 14.5
    assert_array_equal(g.self_loops, [0.0, 0.0, 0.0, 1.5, 0.0])
    assert g.n_edges == 5
    # The same in every format: A[d, d] = 1.5, stored once.
    A = nx.to_numpy_array(messy_graph)
    assert A[3, 3] == 1.5
    for obj in (A, sp.csr_array(A), sp.coo_array(A)):
        assert_array_equal(sepkit.as_graph(obj).degree, g.degree)
    # H1 from the row sums.
    p = g.degree[:4] / 14.5
    assert_allclose(sepkit.structural_entropy_1d(messy_graph), -(p * np.log2(p)).sum(), rtol=1e-14)
    # in_C counts the self-loop once: one cluster {d} holds in = 1.5 of vol 4.5.
    h1 = sepkit.structural_entropy_1d(messy_graph)
    h2 = sepkit.structural_entropy_2d(messy_graph, [0, 1, 2, 3, 4])
    assert_allclose(h1 - h2, 1.5 / 14.5 * math.log2(14.5 / 4.5), rtol=1e-13)


def test_nothing_is_changed_in_place(messy_graph):
    A = nx.to_numpy_array(messy_graph)
    before = A.copy()
    labels = np.array([5, 5, -1, -1, 5])
    sepkit.detachment_cost(A, labels)
    sepkit.move_delta(A, labels, 0, -1)
    assert_array_equal(A, before)
    assert_array_equal(labels, [5, 5, -1, -1, 5])


def test_asymmetry_error_names_the_pair_beyond_rounding():
    # (0, 1) differs only by rounding and is accepted; (2, 3) has no mirror at all.
    A = np.zeros((4, 4))
    A[0, 1], A[1, 0], A[2, 3] = 1.0, 1.0 + 1e-14, 1.0
    with pytest.raises(InvalidGraphError, match=r"got A\[2, 3\] = 1.0 but A\[3, 2\] = 0.0"):
        sepkit.as_graph(sp.csr_array(A))


# --- options: every bad value is an InvalidOptionError, never a leaked OverflowError --------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"seed": 2**64},
            "`seed` must be an integer in 0..2**64-1 or None; got 18446744073709551616",
        ),
        ({"seed": -1}, "`seed` must be an integer in 0..2**64-1 or None; got -1"),
        (
            {"max_iter": 2**63},
            "`max_iter` must be an integer in 1..2**63-1; got 9223372036854775808",
        ),
        ({"max_iter": 2**70, "method": "game"}, "`max_iter` must be an integer in 1..2**63-1"),
        ({"n_starts": 2**70}, "`n_starts` must be an integer in 1..1048576; got 1180591620717"),
        ({"tau": 10**400, "method": "game"}, "`tau` must be a finite number >= 0; got 1000"),
        ({"gamma": 10**400}, "`gamma` must be a finite number >= 0; got 1000"),
        ({"base": 10**400}, "`base` must be a finite real number > 0 and != 1; got 1000"),
    ],
    ids=["seed", "negative-seed", "max_iter", "max_iter-game", "n_starts", "tau", "gamma", "base"],
)
def test_huge_integer_options(kwargs, message):
    with pytest.raises(InvalidOptionError, match=re.escape(message)):
        sepkit.codeseg(nx.path_graph(4), **kwargs)


def test_largest_seed_and_max_iter_are_accepted():
    G = nx.barbell_graph(4, 0)
    a = sepkit.codeseg(G, seed=2**64 - 1, n_starts=3, max_iter=2**63 - 1)
    b = sepkit.codeseg(G, seed=2**64 - 1, n_starts=3)
    assert_array_equal(a.labels, b.labels)
    # The game keeps a history per sweep: an unbounded max_iter must not allocate one up front.
    game = sepkit.codeseg(G, method="game", tau=0.0, max_iter=2**63 - 1)
    assert game.converged and game.n_iter == game.history.size >= 1


def test_batch_huge_seed():
    with pytest.raises(InvalidOptionError, match=r"`seed` must be an integer in 0\.\.2\*\*64-1"):
        sepkit.codeseg_batch(np.ones((1, 3, 3)), seed=2**64)


def test_overlap_must_be_a_bool():
    with pytest.raises(InvalidTypeError, match=r"`overlap` must be a bool; got 1"):
        sepkit.codeseg(nx.path_graph(3), overlap=1)


# --- label values beyond int64 -----------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        [2**70, 2**70, -(2**70)],
        [2**63, 2**63, -1],  # numpy alone would turn this list into float64
        np.array([2**70, 2**70, -(2**70)], dtype=object),
        {0: 2**70, 1: 2**70, 2: 5},
    ],
    ids=["list", "list-2**63", "object-array", "dict"],
)
def test_labels_beyond_int64_are_exact(path3, labels):
    expected = sepkit.structural_entropy_2d(path3, [1, 1, 0])
    assert sepkit.structural_entropy_2d(path3, labels) == expected
    assert_array_equal(
        sepkit.detachment_cost(path3, labels), sepkit.detachment_cost(path3, [1, 1, 0])
    )


def test_move_delta_target_beyond_int64(path3):
    labels = [2**70, 2**70, 3]
    assert sepkit.move_delta(path3, labels, 1, 3) == sepkit.move_delta(path3, [1, 1, 0], 1, 0)
    with pytest.raises(InvalidLabelsError, match=r"`target` must be a label in use \(3, 1180"):
        sepkit.move_delta(path3, labels, 1, 2**71)


def test_object_labels_that_are_not_integers(path3):
    with pytest.raises(InvalidLabelsError, match=r"`labels` must be integers; got dtype object"):
        sepkit.structural_entropy_2d(path3, np.array([1, "a", 2**70], dtype=object))


# --- weights whose total overflows float64 ---------------------------------------------------


def _huge(G: nx.Graph, w: float = 1e308) -> nx.Graph:
    H = nx.Graph()
    H.add_nodes_from(sorted(G))  # rows of the matrix forms = node labels
    H.add_edges_from(G.edges(), weight=w)
    return H


@pytest.mark.parametrize("kind", ["networkx", "dense", "csr", "coo"])
def test_total_weight_beyond_float64_is_exact(kind):
    """Every weight 1e308: the volume overflows float64, yet entropy is scale-invariant."""
    G = nx.barbell_graph(5, 1)
    unit = _huge(G, 1.0)
    H = _huge(G)
    A = nx.to_numpy_array(H)
    obj = {"networkx": H, "dense": A, "csr": sp.csr_array(A), "coo": sp.coo_array(A)}[kind]
    labels = [0] * 5 + [1] + [2] * 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning either
        g = sepkit.as_graph(obj)
        h1 = sepkit.structural_entropy_1d(obj)
        h2 = sepkit.structural_entropy_2d(obj, labels)
        cost = sepkit.detachment_cost(obj, labels)
        delta = sepkit.move_delta(obj, labels, 5, 0)
        part = sepkit.codeseg(obj, seed=0)
    assert np.isfinite(g.volume) and 0 < g.weight_scale < 1
    assert_allclose(g.data / g.weight_scale, 1e308, rtol=1e-15)
    assert_allclose(h1, sepkit.structural_entropy_1d(unit), rtol=1e-14)
    assert_allclose(h2, sepkit.structural_entropy_2d(unit, labels), rtol=1e-14)
    assert_allclose(cost, sepkit.detachment_cost(unit, labels), rtol=1e-12, atol=1e-15)
    assert_allclose(delta, sepkit.move_delta(unit, labels, 5, 0), rtol=1e-12)
    ref = sepkit.codeseg(unit, seed=0)
    assert_array_equal(part.labels, ref.labels)
    assert_allclose(part.entropy, ref.entropy, rtol=1e-14)


def test_duplicate_coo_entries_near_float64_max_are_summed():
    # Two entries of 1e308 at (0, 1) sum to 2e308: more than float64 holds, unless rescaled.
    M = sp.coo_array(([1e308] * 4 + [1.0, 1.0], ([0, 0, 1, 1, 1, 2], [1, 1, 0, 0, 2, 1])), (3, 3))
    g = sepkit.as_graph(M)
    assert g.to_scipy().toarray()[0, 1] == 2 * (1e308 * g.weight_scale)  # exact: a power of 2
    assert_allclose(sepkit.structural_entropy_1d(M), 1.0, rtol=1e-14)  # two nodes of equal degree


def test_batch_total_weight_beyond_float64():
    rng = np.random.default_rng(0)
    X = rng.random((3, 6, 6))
    A = (X + X.transpose(0, 2, 1)) / 2
    big = A.copy()
    big[1] *= 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = sepkit.codeseg_batch(big)
    ref = sepkit.codeseg_batch(A)
    assert_array_equal(out.labels, ref.labels)
    assert_allclose(out.entropy, ref.entropy, rtol=1e-13)
    assert_allclose(out.detachment, ref.detachment, rtol=1e-12, atol=1e-15)
    assert big[1, 0, 1] == A[1, 0, 1] * 1e308  # the input is not rescaled in place


def test_weights_too_wide_for_float64():
    A = np.array([[0.0, 1e308, 0.0], [1e308, 0.0, 1e-320], [0.0, 1e-320, 0.0]])
    with pytest.raises(InvalidGraphError, match=r"too wide a range for float64.*makes 1e-320 zero"):
        sepkit.as_graph(A)


def test_bad_weight_named_with_its_input_value_after_rescaling():
    A = np.array([[0.0, 1e308, -1.0], [1e308, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    with pytest.raises(InvalidGraphError, match=re.escape("negative weight (-1.0 on edge (0, 2))")):
        sepkit.as_graph(A)


def test_networkx_integer_weight_beyond_float64():
    with pytest.raises(InvalidGraphError, match=r"non-finite weight \(an integer beyond float64"):
        sepkit.as_graph(nx.Graph([(0, 1, {"weight": 10**400})]))


# --- Graph built by hand ----------------------------------------------------------------------


def _fields(**change):
    """The fields of the path 0 - 1 - 2 (weights 1 and 2), with some replaced."""
    fields = {
        "indptr": np.array([0, 1, 3, 4]),
        "indices": np.array([1, 0, 2, 1]),
        "data": np.array([1.0, 1.0, 2.0, 2.0]),
        "degree": np.array([1.0, 3.0, 2.0]),
        "volume": 6.0,
        "n_nodes": 3,
        "nodes": range(3),
    }
    fields.update(change)
    return fields


def test_hand_built_graph_is_validated_and_copied():
    indices = np.array([1, 0, 2, 1], dtype=np.int32)
    g = sepkit.Graph(**_fields(indices=indices))
    assert g.indices.dtype == np.int64 and not g.indices.flags.writeable
    indices[0] = 99  # the graph holds its own copy
    assert g.indices[0] == 1
    assert_allclose(
        sepkit.structural_entropy_2d(g, [0, 0, 1]),
        sepkit.structural_entropy_2d(np.array([[0, 1, 0], [1, 0, 2], [0, 2, 0]]), [0, 0, 1]),
        rtol=1e-15,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indptr": np.array([0, 1, 3, 9])}, "`indptr` must rise from 0 to len(indices)"),
        ({"indptr": np.array([0, 3, 1, 4])}, "(not non-decreasing)"),
        ({"indptr": np.array([1, 1, 3, 4])}, "got indptr from 1 to 4"),
        ({"indices": np.array([1, 0, 7, 1])}, "`indices` must lie in 0..2; got 7"),
        ({"indices": np.array([1, 0, -1, 1])}, "`indices` must lie in 0..2; got -1"),
        ({"indices": np.array([1, 2, 0, 1])}, "strictly increasing within each row; row 1"),
        ({"indices": np.array([1.0, 0, 2, 1])}, "`indices` must be a 1-D array of integer"),
        (
            {"data": np.array([1.0, 1.0, -2.0, -2.0])},
            "finite positive weights; got -2.0 at A[1, 2]",
        ),
        ({"data": np.array([1.0, 1.0, np.nan, np.nan])}, "got nan at A[1, 2]"),
        ({"data": np.array([1.0, 1.0, 2.0, 3.0])}, "must be symmetric (undirected); got A[1, 2]"),
        ({"data": np.array([1.0, 1.0, 2.0])}, "4 indices and 3 weights"),
        ({"degree": np.array([1.0, 3.0, 5.0])}, "degree[2] = 5.0 but row 2 sums to 2.0"),
        ({"degree": np.array([1.0, 3.0])}, "`degree` must have n_nodes = 3 entries; got 2"),
        ({"volume": 7.0}, "`volume` must be the sum of the degrees (6.0); got 7.0"),
        ({"n_nodes": 4, "nodes": range(4)}, "`indptr` must have n_nodes + 1 = 5 entries; got 4"),
        ({"n_nodes": 0}, "`n_nodes` must be an integer >= 1; got 0"),
        ({"nodes": ("a", "b")}, "`nodes` must be 3 distinct hashable labels"),
        ({"nodes": ("a", "b", "a")}, "`nodes` must be 3 distinct hashable labels"),
        ({"weight_scale": 0.0}, "`weight_scale` must be a finite number > 0; got 0.0"),
    ],
)
def test_inconsistent_hand_built_graph(change, message):
    with pytest.raises(InvalidGraphError, match=re.escape(message)):
        sepkit.Graph(**_fields(**change))


def test_hand_built_graph_with_overflowing_volume():
    big = _fields(
        data=np.array([1.0, 1.0, 2.0, 2.0]) * 1e300,
        degree=np.array([1.0, 3.0, 2.0]) * 1e300,
        volume=6e300,
    )
    with pytest.raises(
        InvalidGraphError, match=r"`volume` must be at most 2\*\*960 .*; got 6e\+300"
    ):
        sepkit.Graph(**big)


def test_from_csr():
    g = sepkit.Graph.from_csr([0, 1, 3, 4], [1, 0, 2, 1], [1.0, 1.0, 2.0, 2.0], nodes="abc")
    assert_array_equal(g.degree, [1.0, 3.0, 2.0])
    assert g.volume == 6.0 and g.index_of("c") == 2
    with pytest.raises(InvalidGraphError, match=r"`indices` must lie in 0\.\.2; got 5"):
        sepkit.Graph.from_csr([0, 1, 3, 4], [1, 0, 5, 1], [1.0, 1.0, 2.0, 2.0])
    with pytest.raises(InvalidGraphError, match=r"at least one node"):
        sepkit.Graph.from_csr([0], [], [])
    # check=False takes canonical arrays as they are: no copy.
    indptr = np.array([0, 1, 3, 4])
    fast = sepkit.Graph.from_csr(
        indptr, np.array([1, 0, 2, 1]), np.array([1.0, 1, 2, 2]), check=False
    )
    assert fast.indptr is indptr
    assert sepkit.structural_entropy_2d(fast, [0, 0, 1]) == sepkit.structural_entropy_2d(
        g, [0, 0, 1]
    )


# --- every deliberate raise is a SepkitError ----------------------------------------------------


def test_every_raise_in_sepkit_is_a_sepkit_error():
    import ast
    from pathlib import Path

    root = Path(sepkit.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                    name = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                    cls = getattr(sepkit, name, None)
                    if not (isinstance(cls, type) and issubclass(cls, SepkitError)):
                        offenders.append(f"{path.relative_to(root)}:{node.lineno} raises {name}")
    assert not offenders, offenders
