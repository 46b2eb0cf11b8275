"""Shared fixtures of the benchmarks: seeded planted-partition graphs, built once per session."""

from __future__ import annotations

import pytest

import sepkit
from benchmarks.graphs import SIZES, planted_partition

SEED = 20250101


@pytest.fixture(scope="session", autouse=True)
def _warm_kernels():
    """Load or compile every kernel before any timing."""
    sepkit.warmup()


@pytest.fixture(scope="session")
def planted_graphs():
    """A cache ``size name -> (Graph, int64 labels)``; a graph is built on first request."""
    cache: dict = {}

    def get(size: str):
        if size not in cache:
            cache[size] = planted_partition(SIZES[size], seed=SEED)
        return cache[size]

    return get
