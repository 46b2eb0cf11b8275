"""Small helpers shared by the partition kernels: seeded orders, self-loops, relabelling.

Randomness comes only from an explicit seed (splitmix64), so results are identical on
every machine and thread count.
"""

import numpy as np

from sepkit._jit import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@jit
def splitmix64(state):
    """One step of splitmix64: returns (new state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@jit
def shuffle_into(order, state):
    """Fisher-Yates shuffle of ``order`` in place; returns the new RNG state."""
    for i in range(order.size - 1, 0, -1):
        state, r = splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]
    return state


@jit
def self_loops(indptr, indices, data):
    n = indptr.size - 1
    out = np.zeros(n)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            if indices[p] == i:
                out[i] += data[p]
    return out


@jit
def compact(labels):
    """Relabel to ``0..k-1`` in order of first appearance; returns (labels, k)."""
    n = labels.size
    remap = np.full(n, -1, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    k = 0
    for i in range(n):
        c = labels[i]
        if remap[c] < 0:
            remap[c] = k
            k += 1
        out[i] = remap[c]
    return out, k
