"""One node's candidate moves: its links to the neighbouring clusters, and the join that
lowers H2 most.

Shared by the multilevel search (:mod:`sepkit._kernels.multilevel`) and the dense-matrix
search (:mod:`sepkit._kernels.dense`). A cluster's sums are kept as a record row (internal
weight, volume, ``f(inn, vol)``, ``log(vol / V)``) so that a candidate costs one
logarithm at most, and logarithm-free bounds skip most of those.
"""

import numpy as np

from sepkit._jit import jit, jit_inline
from sepkit._kernels.entropy import f_term

# A candidate is evaluated exactly unless its lower bound exceeds the best upper bound by
# more than this relative margin (far above the rounding of the exact evaluation).
BOUND_MARGIN = 1e-12
# Columns of the per-cluster records: internal weight, volume, f(inn, vol), log(vol / V).
INN, VOL, F, LOG = 0, 1, 2, 3


@jit
def scratch(n_threads, n_slots, max_row):
    """Per-thread work arrays for gathering one row's links.

    ``links[t, c]`` holds (stamp of the last visit that met cluster c, weight).
    """
    links = np.zeros((n_threads, n_slots, 2))
    links[:, :, 0] = -1.0
    touched = np.empty((n_threads, max_row + 1), dtype=np.int64)
    low = np.empty((n_threads, max_row + 1))
    visits = np.zeros(n_threads)
    return links, touched, low, visits


@jit_inline
def gather(indptr, indices, data, labels, v, links, touched, visit, within, group):
    """Weight from node v to each neighbouring cluster, its self-loop included.

    Fills ``touched[:count]`` with the clusters in order of first appearance in v's
    row, and ``links[c, 1]`` with the weights (``links[c, 0] == visit`` marks them;
    ``visit`` must be new for each call). Only neighbours with ``within[j] == group``
    count, unless ``group < 0``. Returns ``count``.

    Branch-free on purpose: whether a cluster was met before in the row is close to
    random, and a mispredicted branch would also cancel the label loads in flight.
    """
    count = 0
    for p in range(indptr[v], indptr[v + 1]):
        j = indices[p]
        c = labels[j]
        fresh = links[c, 0] != visit
        # arithmetic, not a conditional, so that the compiler emits no branch
        links[c, 1] = links[c, 1] * (1.0 - fresh) + data[p]
        links[c, 0] = visit
        touched[count] = c
        count += fresh & ((group < 0) | (within[j] == group))
    return count


@jit_inline
def join_bounds(inn_c, vol_c, lv_c, delta, d):
    """Bounds on ``f(inn_c + delta, vol_c + d) - f(inn_c, vol_c)`` that need no logarithm.

    With ``lv_c = log(vol_c / V)`` and ``x = d / vol_c`` the difference is
    ``delta * lv_c + (inn_c + delta) * log1p(x)``, and ``x - x^2/2 <= log1p(x) <= x -
    x^2/2 + x^3/3`` for ``x >= 0`` (tight when the node is small beside the cluster,
    the common case; one division). Returns (lower, upper, a scale of the terms for
    rounding margins).
    """
    if vol_c <= 0.0:
        return -np.inf, np.inf, 0.0
    x = d / vol_c
    base = delta * lv_c
    total = inn_c + delta
    x2 = 0.5 * x * x
    low = base + total * (x - x2)
    high = base + total * (x - x2 + (2.0 / 3.0) * x2 * x)
    return low, high, total * (abs(lv_c) + x)


@jit_inline
def refresh(cl, c, V):
    """Recompute the cached ``f(inn_c, vol_c)`` and ``log(vol_c / V)`` of record c."""
    if cl[c, VOL] > 0.0:
        cl[c, LOG] = np.log(cl[c, VOL] / V)
        cl[c, F] = cl[c, INN] * cl[c, LOG] if cl[c, INN] > 0.0 else 0.0
    else:
        cl[c, LOG] = 0.0
        cl[c, F] = 0.0


@jit
def records(inn, vol, V):
    cl = np.empty((inn.size, 4))
    for c in range(inn.size):
        cl[c, INN] = inn[c]
        cl[c, VOL] = vol[c]
        refresh(cl, c, V)
    return cl


@jit_inline
def best_join(touched, count, links, low, cl, skip, s, d, V, best, best_g, best_w):
    """The candidate cluster that lowers ``f`` most, as if each were evaluated exactly.

    ``best``/``best_g``/``best_w`` describe the alternative so far (``best < 0``:
    none); candidates are taken in ``touched`` order, ``skip`` excluded, and the first
    of equal values wins. The link weights in ``links`` exclude the self-loop ``s``.
    Candidates whose lower bound cannot beat the best upper bound skip their
    logarithm, so most visits take one or two instead of one per candidate.
    Returns the updated (best, best_g, best_w).
    """
    best_high = best_g if best >= 0 else np.inf
    scale = 0.0
    for t in range(count):
        c = touched[t]
        if c == skip:
            continue
        low[t], high, sc = join_bounds(cl[c, INN], cl[c, VOL], cl[c, LOG], 2.0 * links[c, 1] + s, d)
        if high < best_high:
            best_high = high
            scale = sc
    cut = best_high + BOUND_MARGIN * scale
    for t in range(count):
        c = touched[t]
        if c == skip or low[t] > cut + BOUND_MARGIN * abs(low[t]):
            continue
        w = links[c, 1]
        g = f_term(cl[c, INN] + 2.0 * w + s, cl[c, VOL] + d, V) - cl[c, F]
        if best < 0 or g < best_g:
            best_g = g
            best = c
            best_w = w
    return best, best_g, best_w
