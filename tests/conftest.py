"""Shared test configuration: hypothesis profile, numba warm-up and small example graphs."""

from __future__ import annotations

import os

import networkx as nx
import pytest
from hypothesis import HealthCheck, settings

import sepkit

# deadline=None: the first call of a kernel in a process may compile (or load from cache).
# Modest example counts keep the whole suite to seconds on a 2-core machine; raise them
# locally with HYPOTHESIS_PROFILE=thorough.
settings.register_profile(
    "sepkit",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    parent=settings.get_profile("sepkit"),
    max_examples=1000,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "sepkit"))


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Compile (or load) every kernel once, so no single test pays for it."""
    sepkit.warmup()


@pytest.fixture
def karate():
    """Zachary's karate club with its edge weights."""
    return nx.karate_club_graph()


@pytest.fixture
def karate_factions(karate):
    """The two real factions of the karate club, as a list of node sets."""
    return [{v for v in karate if karate.nodes[v]["club"] == c} for c in ("Mr. Hi", "Officer")]


@pytest.fixture
def messy_graph():
    """A small weighted graph with string labels, a self-loop and an isolated node.

    Nodes in order: a, b, c, d, e (isolated). Edges: a-b 2, b-c 1, c-a 0.5, c-d 3,
    self-loop d-d 1.5.
    """
    G = nx.Graph()
    G.add_nodes_from("abcde")
    G.add_weighted_edges_from(
        [("a", "b", 2.0), ("b", "c", 1.0), ("c", "a", 0.5), ("c", "d", 3.0), ("d", "d", 1.5)]
    )
    return G
