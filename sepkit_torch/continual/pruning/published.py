"""SEP's selection exactly as the public pruning code computes it (``tie="published"``).

The public code partitions every inter-group graph with a greedy sweep (nodes in index
order, each moves to the neighbouring cluster that lowers H2 most, never to a singleton;
at most 10 sweeps, a sweep without moves ends it) and records each node's leave-delta
(its detachment cost) when the sweep visits it. Its arithmetic decides ties, so this
module reproduces it, not just its rule:

- the graph is float32 (the public code builds it in float32); degrees and the volume
  are float32 sums of it, every later sum is float64 (Python floats);
- the entropy terms divide by the float32 volume, so each follows NumPy 2's rule for a
  Python float meeting a float32 scalar: the float is rounded to float32 first and the
  operation is done in float32; logarithms are the C library's (``math.log``), whose
  results are rounded to float32 before they multiply;
- a logarithm of a non-positive number leaves its term 0 (the public code catches it);
- in each cluster the first member, in index order, with the largest recorded cost is
  the representative (Python's ``max``).

In an isolated pair both recorded costs are bitwise equal, so the lower index represents
the pair on every image; with outside edges, rounding decides. Everything is vectorised
over the stack of graphs; only the logarithms go through ``math.log`` one by one, since
NumPy's vectorised logarithm can differ from the C library's in the last bit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["published_representatives", "published_sweep"]

# The public code's sweep budget and its "this node is alone" tolerance.
_MAX_SWEEPS = 10
_ALONE = 1e-8
_log = np.frompyfunc(math.log, 1, 1)


def published_sweep(graphs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The public code's partition and recorded costs of a stack of graphs.

    Parameters
    ----------
    graphs : array, shape (B, n, n)
        Symmetric, non-negative, zero diagonal; rounded to float32 first.

    Returns
    -------
    labels : ndarray of int64, shape (B, n)
        Each node's cluster (the index of a node that started it).
    costs : ndarray of float32, shape (B, n)
        Each node's leave-delta when the last sweep visited it (0 for a node without
        edges, which the sweep skips).
    """
    A = np.ascontiguousarray(graphs, dtype=np.float32)
    B, n = A.shape[:2]
    # float32 sums exactly as NumPy takes them over each graph and each row
    volume = np.array([a.sum() for a in A], dtype=np.float32)
    degree = np.stack([a.sum(axis=1) for a in A]).astype(np.float64) if B else np.zeros((0, n))
    weight = A.astype(np.float64)
    label = np.tile(np.arange(n), (B, 1))
    vol = degree.copy()
    cut = degree.copy()
    inner = np.zeros((B, n))
    costs = np.zeros((B, n), dtype=np.float32)
    rows = np.arange(B)
    active = np.ones(B, dtype=bool)
    for _ in range(_MAX_SWEEPS):
        moved = np.zeros(B, dtype=bool)
        for i in range(n):
            d = degree[:, i]
            visit = active & (d != 0.0)
            if not visit.any():
                continue
            src = label[:, i]
            # the cost of leaving: its own cluster, as recorded
            v, c = vol[rows, src], cut[rows, src]
            leave = _delta(volume, d, v, v - d, c, c + 2 * inner[:, i] - d)
            leave[np.abs(v - d) < _ALONE] = 0.0
            costs[visit, i] = leave[visit]
            # links to the neighbouring clusters, summed in neighbour order
            link = np.zeros((B, n))
            first = np.full((B, n), n)
            for j in range(n):
                w = weight[:, i, j]
                k = label[:, j]
                add = visit & (w != 0.0) & (k != src)
                link[rows[add], k[add]] += w[add]
                first[rows[add], k[add]] = np.minimum(first[rows[add], k[add]], j)
            candidate = first < n
            dv = d[:, None]
            joined = _delta(volume[:, None], dv, vol + dv, vol, cut - 2 * link + dv, cut)
            gain = np.where(candidate, (leave[:, None] - joined).astype(np.float32), np.inf)
            best = gain.min(axis=1)
            # the first candidate in neighbour order that reaches the minimum
            order = np.where(candidate & (gain == best[:, None]), first, n)
            target = order.argmin(axis=1)
            move = visit & (best < 0)
            if not move.any():
                continue
            b, t, s = rows[move], target[move], src[move]
            ii = link[b, t]
            dm = d[move]
            vol[b, s] -= dm
            still = vol[b, s] > 0
            cut[b, s] = np.where(still, cut[b, s] + 2 * inner[b, i] - dm, 0.0)
            label[b, i] = t
            vol[b, t] += dm
            cut[b, t] = cut[b, t] - 2 * ii + dm
            inner[b, i] = ii
            w = weight[b, i, :]
            lab = label[b]
            inner[b] += np.where(lab == t[:, None], w, 0.0) - np.where(lab == s[:, None], w, 0.0)
            moved[b] = True
        active &= moved
        if not active.any():
            break
    return label, costs


def _delta(volume, d, v, v_left, c, c_left):
    """The change of H2 when a node of degree `d` leaves a cluster of volume `v` and cut
    `c` (leaving volume `v_left` and cut `c_left`), in the public code's arithmetic."""
    g = volume
    f32 = np.float32
    shape = np.broadcast_shapes(np.shape(v), np.shape(d), np.shape(g))
    v, v_left, c, c_left = (np.broadcast_to(x, shape) for x in (v, v_left, c, c_left))
    d, g = np.broadcast_to(d, shape), np.broadcast_to(g, shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        left_share = v_left.astype(f32) / g
        share = v.astype(f32) / g
        t1 = _term(-(c_left.astype(f32) / g), left_share)
        t2 = _term(c.astype(f32) / g, share)
        t3 = _term(left_share, v_left / v)
        t4 = _term(d.astype(f32) / g, g / v.astype(f32))
    return ((t1 + t2) + t3) + t4


def _term(factor: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``factor * float32(math.log(x))`` in float32, elementwise; 0 where the logarithm
    fails (``x <= 0``), as the public code's ``except ValueError``."""
    x = np.asarray(x, dtype=np.float64)
    log = np.zeros(x.shape, dtype=np.float64)
    ok = x > 0
    if ok.any():
        log[ok] = _log(x[ok]).astype(np.float64)
    return np.where(ok, factor * log.astype(np.float32), np.float32(0))


def published_representatives(labels: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """In every cluster, the first member (index order) of the largest cost, per graph.

    Examples
    --------
    >>> import numpy as np
    >>> from sepkit_torch.continual.pruning.published import published_representatives
    >>> published_representatives(np.array([[0, 0, 2, 2]]), np.array([[0.5, 0.5, 0.1, 0.3]]))
    array([[ True, False, False,  True]])
    """
    labels, costs = np.asarray(labels), np.asarray(costs)
    chosen = np.zeros(labels.shape, dtype=bool)
    n = labels.shape[1]
    for b in range(labels.shape[0]):
        best: dict[int, int] = {}
        for i in range(n):
            k = int(labels[b, i])
            if k not in best or costs[b, i] > costs[b, best[k]]:
                best[k] = i
        chosen[b, list(best.values())] = True
    return chosen
