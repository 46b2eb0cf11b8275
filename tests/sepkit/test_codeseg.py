"""The CoDeSEG partitioner: reference behaviour, best-known values, properties, batch, errors."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import sepkit
from sepkit import (
    InvalidGraphError,
    InvalidOptionError,
    InvalidTypeError,
    codeseg,
    codeseg_batch,
    representatives,
    structural_entropy_2d,
)
from tests.sepkit import brute_force
from tests.sepkit.strategies import graphs, to_dense

# First appearance of each node in networkx's karate edge list (the design page's list).
KARATE_EDGE_ORDER = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 17, 19, 21, 31, 30, 9, 27, 28, 32, 16,
    33, 14, 15, 18, 20, 22, 23, 25, 29, 24, 26,
]  # fmt: skip


def unweighted_karate() -> nx.Graph:
    G = nx.Graph()
    G.add_nodes_from(range(34))
    G.add_edges_from(nx.karate_club_graph().edges())
    return G


# ---------------------------------------------------------------- reference game mode


def test_game_reproduces_reference_on_unweighted_karate():
    G = unweighted_karate()
    by_edges = codeseg(G, method="game", order="edges")
    explicit = codeseg(G, method="game", order=KARATE_EDGE_ORDER)
    assert by_edges.n_clusters == 9
    assert by_edges.entropy == pytest.approx(3.476142, abs=1e-6)
    assert codeseg(G, method="game", order="edges", base=math.e).entropy == pytest.approx(
        2.409478, abs=1e-6
    )
    np.testing.assert_array_equal(by_edges.labels, explicit.labels)


def test_game_in_index_order_differs():
    p = codeseg(unweighted_karate(), method="game")
    assert p.n_clusters == 10
    assert p.entropy == pytest.approx(3.483836, abs=1e-6)


def test_game_weighted_karate_reference_order():
    p = codeseg(nx.karate_club_graph(), method="game", order="edges")
    assert p.n_clusters == 7
    assert p.entropy == pytest.approx(3.28427, abs=1e-5)


def test_edges_order_follows_input_kind():
    G = unweighted_karate()
    A = nx.to_scipy_sparse_array(G, format="coo")
    # networkx's edge list and a COO list in the same order give the same sweep
    edges = np.array(list(G.edges()))
    coo = sp.coo_array(
        (np.ones(2 * len(edges)), (edges.ravel(), edges[:, ::-1].ravel())), shape=A.shape
    )
    a = codeseg(G, method="game", order="edges")
    b = codeseg(coo, method="game", order="edges")
    np.testing.assert_array_equal(a.labels, b.labels)


def test_tau_zero_sweeps_until_nothing_moves():
    G = unweighted_karate()
    default = codeseg(G, method="game", order="edges")
    full = codeseg(G, method="game", order="edges", tau=0.0, max_iter=50)
    assert full.converged
    assert full.n_iter >= default.n_iter
    assert full.entropy <= default.entropy + 1e-12


def test_max_iter_caps_sweeps():
    p = codeseg(unweighted_karate(), method="game", tau=0.0, max_iter=1)
    assert p.n_iter == 1 and not p.converged


# ---------------------------------------------------------------- multilevel quality

BEST_KNOWN = [
    ("karate unweighted", unweighted_karate, 3.352000, 6),
    ("karate weighted", nx.karate_club_graph, 3.228749, 6),
    ("les_miserables", nx.les_miserables_graph, 3.4417, 13),
    ("florentine_families", nx.florentine_families_graph, 2.4370, 5),
]


@pytest.mark.parametrize("name, make, h2, k", BEST_KNOWN, ids=[b[0] for b in BEST_KNOWN])
def test_multilevel_reaches_best_known(name, make, h2, k):
    p = codeseg(make(), n_starts=10, seed=0)
    assert p.entropy == pytest.approx(h2, abs=1e-4)
    assert p.n_clusters == k


def test_multilevel_beats_game_and_louvain_on_karate():
    G = unweighted_karate()
    louvain = nx.community.louvain_communities(G, seed=0)
    ml = codeseg(G)
    assert ml.entropy < codeseg(G, method="game", order="edges").entropy
    assert ml.entropy < structural_entropy_2d(G, louvain)


def planted_partition(n_blocks: int, size: int, p_in: float, p_out: float, seed: int):
    rng = np.random.default_rng(seed)
    n = n_blocks * size
    block = np.repeat(np.arange(n_blocks), size)
    same = block[:, None] == block[None, :]
    P = np.where(same, p_in, p_out)
    upper = np.triu(rng.random((n, n)) < P, 1)
    A = (upper | upper.T).astype(float)
    return A, block


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilevel_no_worse_than_planted_and_louvain(seed):
    A, block = planted_partition(8, 25, 0.3, 0.02, seed)
    G = nx.from_numpy_array(A)
    p = codeseg(A, seed=seed)
    assert p.entropy <= structural_entropy_2d(A, block) + 1e-12
    louvain = nx.community.louvain_communities(G, seed=seed)
    assert p.entropy <= structural_entropy_2d(G, louvain) + 1e-12


def test_multilevel_finds_brute_force_optimum_on_tiny_graphs():
    rng = np.random.default_rng(2024)
    partitions = {n: brute_force.partitions(n) for n in range(3, 10)}
    hits = total = 0
    for _ in range(150):
        n = int(rng.integers(3, 10))
        A = brute_force.random_graph(rng, n)
        if A.sum() == 0:
            continue
        optimum = brute_force.h2_all(A, partitions[n]).min()
        found = codeseg(A).entropy
        assert found >= optimum - 1e-9  # nothing beats the optimum
        hits += found <= optimum + 1e-9
        total += 1
    assert hits == total, f"optimum reached on {hits}/{total} graphs"


# ---------------------------------------------------------------- properties

methods = st.sampled_from(["game", "multilevel"])


@given(G=graphs(max_nodes=12), method=methods, seed=st.integers(0, 2**32))
def test_result_is_a_consistent_partition(G, method, seed):
    p = codeseg(G, method=method, seed=seed)
    n = G.number_of_nodes()
    assert p.labels.dtype == np.int64 and p.labels.shape == (n,)
    # contiguous 0..k-1, numbered in order of first node
    _, first = np.unique(p.labels, return_index=True)
    np.testing.assert_array_equal(p.labels[np.sort(first)], np.arange(p.n_clusters))
    assert p.entropy == pytest.approx(structural_entropy_2d(G, p.labels), abs=1e-12)
    assert np.all(np.diff(p.history) <= 1e-12)
    communities = p.communities()
    assert sorted(v for c in communities for v in c) == sorted(G.nodes)


@given(G=graphs(max_nodes=12), seed=st.integers(0, 2**32))
def test_multilevel_result_is_locally_optimal(G, seed):
    p = codeseg(G, seed=seed)
    lowest = 0.0
    for v in G.nodes:
        targets = [None, *range(p.n_clusters)]
        for t in targets:
            lowest = min(lowest, sepkit.move_delta(G, p.labels, v, t))
    assert lowest >= -1e-9


@given(G=graphs(max_nodes=12), method=methods, seed=st.integers(0, 2**32))
def test_same_seed_same_labels(G, method, seed):
    order = "random" if method == "game" else None
    a = codeseg(G, method=method, seed=seed, order=order, n_starts=2)
    b = codeseg(G, method=method, seed=seed, order=order, n_starts=2)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.entropy == b.entropy


def test_polish_on_and_off_and_needs_a_bool():
    A, block = planted_partition(4, 8, 0.5, 0.1, 3)
    planted = structural_entropy_2d(A, block)
    for polish in (False, True):
        p = codeseg(A, polish=polish, seed=1)
        assert p.entropy <= planted + 1e-12
        assert np.all(np.diff(p.history) <= 1e-12)
    with pytest.raises(InvalidTypeError, match=r"`polish` must be a bool or None; got 'yes'"):
        codeseg(A, polish="yes")


def test_more_starts_never_worse():
    A, _ = planted_partition(6, 12, 0.4, 0.05, 7)
    one = codeseg(A, seed=3)
    five = codeseg(A, seed=3, n_starts=5)
    assert five.entropy <= one.entropy + 1e-12


def test_edgeless_graph_gives_singletons():
    for method in ("game", "multilevel"):
        p = codeseg(np.zeros((4, 4)), method=method)
        np.testing.assert_array_equal(p.labels, np.arange(4))
        assert p.entropy == 0.0


# ---------------------------------------------------------------- overlap


def test_overlap_memberships_extend_the_partition():
    G = unweighted_karate()
    p = codeseg(G, method="game", order="edges", overlap=True)
    assert p.memberships is not None and len(p.memberships) == 34
    for i, m in enumerate(p.memberships):
        assert m[0] == p.labels[i] and len(set(m)) == len(m)
    assert any(len(m) > 1 for m in p.memberships)
    over = p.communities(overlapping=True)
    plain = p.communities()
    assert all(a <= b for a, b in zip(plain, over, strict=True))
    # a larger gamma admits fewer extra memberships
    strict = codeseg(G, method="game", order="edges", overlap=True, gamma=5.0)
    assert sum(map(len, strict.memberships)) <= sum(map(len, p.memberships))


def test_overlapping_communities_need_overlap():
    with pytest.raises(InvalidOptionError, match="overlap=True"):
        codeseg(unweighted_karate()).communities(overlapping=True)


# ---------------------------------------------------------------- batch


def _random_stack(B: int, n: int, seed: int, zeros: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.random((B, n, n)) * (rng.random((B, n, n)) > zeros)
    return (X + X.transpose(0, 2, 1)) / 2


@pytest.mark.parametrize(
    "options",
    [
        {"method": "game"},
        {"method": "game", "tau": 0.0, "max_iter": 20},
        {"method": "game", "order": "random", "n_starts": 3, "seed": 5},
        {"method": "multilevel"},
        {"method": "multilevel", "n_starts": 3, "seed": 11},
        {"method": "multilevel", "polish": False},
    ],
    ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()),
)
def test_batch_equals_codeseg_graph_by_graph(options):
    A = _random_stack(12, 10, seed=1)
    out = codeseg_batch(A, **options)
    for b in range(A.shape[0]):
        p = codeseg(A[b], **options)
        np.testing.assert_array_equal(out.labels[b], p.labels)
        assert out.entropy[b] == pytest.approx(p.entropy, abs=1e-12)
        assert out.n_clusters[b] == p.n_clusters
        np.testing.assert_allclose(
            out.detachment[b], sepkit.detachment_cost(A[b], p.labels), rtol=1e-12, atol=1e-12
        )


def test_batch_accepts_float32_and_base():
    A = _random_stack(4, 8, seed=2).astype(np.float32)
    bits = codeseg_batch(A)
    nats = codeseg_batch(A, base=math.e)
    np.testing.assert_allclose(bits.entropy * math.log(2), nats.entropy, rtol=1e-12)
    np.testing.assert_array_equal(bits.labels, codeseg_batch(A.astype(np.float64)).labels)


# ---------------------------------------------------------------- representatives


@pytest.mark.parametrize("tie", ["index", "random", "priority"])
def test_representatives_one_per_cluster_with_the_largest_cost(tie):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(50, 12))
    costs = rng.random((50, 12)).round(1)  # rounding makes ties common
    priority = rng.random((50, 12)).round(1)  # ... and ties of the priorities too
    mask = representatives(labels, costs, tie=priority if tie == "priority" else tie, seed=1)
    for b in range(50):
        for c in np.unique(labels[b]):
            members = np.flatnonzero(labels[b] == c)
            chosen = members[mask[b, members]]
            assert chosen.size == 1
            tied = members[costs[b, members] == costs[b, members].max()]
            assert chosen[0] in tied
            if tie == "index":
                assert chosen[0] == tied.min()
            elif tie == "priority":
                best = tied[priority[b, tied] == priority[b, tied].max()]
                assert chosen[0] == best.min()
    if tie == "random":  # graph b draws row b: the first graph alone draws as in the batch
        alone = representatives(labels[0], costs[0], tie="random", seed=1)
        np.testing.assert_array_equal(alone, mask[0])
    else:
        rule = priority[3] if tie == "priority" else tie
        np.testing.assert_array_equal(representatives(labels[3], costs[3], tie=rule), mask[3])


def test_representatives_random_ties_ignore_the_position():
    """Under the default rule a tied pair is split about evenly, wherever the pair sits."""
    B = 4000
    for i, j in [(0, 1), (0, 5), (3, 4), (6, 2)]:
        labels = np.tile(np.arange(7), (B, 1))
        labels[:, j] = labels[:, i]  # the pair shares a cluster, every other node is alone
        costs = np.zeros((B, 7))
        costs[:, [i, j]] = 0.25  # equal costs, as in an isolated two-node cluster
        share = representatives(labels, costs, seed=i + 10 * j)[:, [i, j]].mean(axis=0)
        np.testing.assert_allclose(share, [0.5, 0.5], atol=0.03)  # 4 sd of a fair coin
    index = representatives(labels, costs, tie="index")[:, [i, j]].mean(axis=0)
    np.testing.assert_array_equal(index, [0.0, 1.0] if j < i else [1.0, 0.0])


def test_representatives_near_equal_costs_tie_but_clear_winners_do_not():
    labels = np.zeros((2000, 2), dtype=np.int64)
    costs = np.tile([0.3, 0.3 * (1 + 1e-14)], (2000, 1))  # equal up to rounding
    assert 0.4 < representatives(labels, costs)[:, 0].mean() < 0.6
    costs[:, 1] = 0.3 * (1 + 1e-9)
    assert not representatives(labels, costs)[:, 0].any()


def test_representatives_on_batch_output():
    out = codeseg_batch(_random_stack(5, 9, seed=3))
    mask = representatives(out.labels, out.detachment)
    np.testing.assert_array_equal(mask.sum(axis=1), out.n_clusters)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "louvain"}, r"`method` must be one of .*'louvain'"),
        ({"method": "game", "tau": -0.1}, r"`tau` must be a finite number >= 0; got -0.1"),
        ({"max_iter": 0}, r"`max_iter` must be an integer in 1\.\.2\*\*63-1; got 0"),
        ({"n_starts": 0}, r"`n_starts` must be an integer in 1\.\.1048576; got 0"),
        ({"seed": -1}, r"`seed` must be an integer in 0\.\.2\*\*64-1 or None; got -1"),
        ({"method": "game", "order": [0, 0, 1, 2]}, r"`order` must be a permutation of 0..3"),
        ({"method": "game", "order": [0, 1, 2]}, r"`order` must be a permutation of 0..3"),
        ({"method": "game", "order": "sorted"}, r'`order` must be "index", "edges", "random"'),
        ({"tau": 0.3}, r'`tau` applies to method="game" only'),
        ({"order": "index"}, r'`order` applies to methods "game" and "sweep" only'),
        ({"method": "sweep", "tau": 0.3}, r'`tau` applies to method="game" only'),
        ({"method": "sweep", "polish": False}, r'`polish` applies to method="multilevel" only'),
        ({"gamma": -1.0}, r"`gamma` must be a finite number >= 0; got -1.0"),
        ({"base": 1}, r"`base` must be a finite real number > 0 and != 1; got 1"),
        ({"method": "game", "polish": True}, r'`polish` applies to method="multilevel" only'),
    ],
)
def test_codeseg_bad_options(kwargs, match):
    with pytest.raises(InvalidOptionError, match=match):
        codeseg(nx.path_graph(4), **kwargs)


def test_codeseg_bad_graph():
    with pytest.raises(InvalidTypeError, match="undirected"):
        codeseg(nx.DiGraph([(0, 1)]))


@pytest.mark.parametrize(
    "A, match",
    [
        (np.zeros((3, 3)), r"`adjacency` must have shape \(B, n, n\); got shape \(3, 3\)"),
        (np.zeros((2, 3, 4)), r"`adjacency` must have shape \(B, n, n\); got shape \(2, 3, 4\)"),
        (np.zeros((2, 0, 0)), r"`adjacency` must have at least one node"),
        (
            np.array([[[0.0, 1.0], [2.0, 0.0]]]),
            r"`adjacency` must be symmetric; got "
            r"adjacency\[0, 0, 1\] = 1.0 but adjacency\[0, 1, 0\] = 2.0",
        ),
        (np.array([[[0.0, -1.0], [-1.0, 0.0]]]), r"negative weight \(-1.0 at \[0, 0, 1\]\)"),
        (np.array([[[0.0, np.nan], [np.nan, 0.0]]]), r"non-finite weight"),
    ],
    ids=["2d", "not-square", "no-nodes", "asymmetric", "negative", "nan"],
)
def test_batch_bad_input(A, match):
    with pytest.raises(InvalidGraphError, match=match):
        codeseg_batch(A)


def test_batch_edges_order_is_an_error():
    with pytest.raises(InvalidOptionError, match="needs an edge list"):
        codeseg_batch(np.ones((1, 3, 3)), method="game", order="edges")


@pytest.mark.parametrize(
    "labels, costs, match",
    [
        (np.zeros((2, 2, 2), dtype=int), np.zeros((2, 2, 2)), r"shape \(n,\) or \(B, n\)"),
        ([0, 1], [0.1], r"`costs` must have the shape of `labels`"),
        ([0.0, 1.0], [0.1, 0.2], r"`labels` must be integers"),
        ([0, 1], [0.1, np.nan], r"`costs` must be finite"),
        ([0, 1], [0.1, np.inf], r"`costs` must be finite"),
    ],
)
def test_representatives_bad_input(labels, costs, match):
    with pytest.raises(sepkit.InvalidLabelsError, match=match):
        representatives(labels, costs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tie": "first"}, r"`tie` must be one of \('random', 'index'\) or an array.*'first'"),
        ({"tie": [1.0]}, r"`tie` priorities must have the shape of `labels` \(2,\); got shape"),
        ({"tie": [1.0, np.nan]}, r"`tie` priorities must be finite"),
        ({"seed": -2}, r"`seed` must be an integer in 0\.\.2\*\*64-1 or None; got -2"),
    ],
)
def test_representatives_bad_options(kwargs, match):
    with pytest.raises(sepkit.InvalidOptionError, match=match):
        representatives([0, 0], [0.1, 0.1], **kwargs)


def test_brute_force_helper_agrees_with_sepkit():
    """The test's own enumerator is checked against sepkit on a few partitions."""
    rng = np.random.default_rng(5)
    A = to_dense(nx.les_miserables_graph().subgraph(list(nx.les_miserables_graph())[:7]))
    parts = brute_force.partitions(7)
    h = brute_force.h2_all(A, parts)
    for i in rng.choice(len(parts), 20, replace=False):
        assert h[i] == pytest.approx(structural_entropy_2d(A, parts[i]), abs=1e-12)
    assert len(parts) == 877  # Bell(7)


@given(graphs(max_nodes=40), st.integers(min_value=0, max_value=2**32))
def test_the_dense_start_run_from_python_is_the_kernel_bit_for_bit(G, seed):
    """codeseg runs the dense search's starts as Python between kernels (a shorter first
    call); the batch runs them inside one kernel. Both must give the same search."""
    from sepkit._kernels import codeseg as _kc
    from sepkit._kernels import dense as _kd

    A = to_dense(G)
    seeds = _kc.polish_seeds_py(seed)
    in_python = _kd.best_of_starts(A, seeds, 20, 1e-12, False)
    kernel = _kd.dense_search(A, seeds, 20, 1e-12, False)
    np.testing.assert_array_equal(in_python[0], kernel[0])
    assert in_python[1] == kernel[1]
    np.testing.assert_array_equal(in_python[2], kernel[2])
    assert in_python[3:] == kernel[3:]
