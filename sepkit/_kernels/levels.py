"""The graphs of the multilevel search: each level renumbered for the sweeps, coarsened,
and its cluster sums.

- **Renumbering** (:func:`prepare_level`): the nodes are coloured (no two neighbours
  alike) and, in windows of ``_WINDOW`` consecutive nodes, grouped by colour, so that
  each (window, colour) group is a contiguous range of ids whose rows are read in one
  stream and whose labels and cluster sums stay in the cache while it is worked on.
- **Aggregation** (:func:`aggregate`): each cluster becomes a super-node; the fine rows
  are copied, relabelled, into their coarse row's room in parallel, then each coarse row
  sums its entries by neighbour.
- Work splitting for the parallel loops: contiguous ranges of about equal stored entries.

Each parallel loop runs serially for one thread or below ``PARALLEL_MIN_WORK`` (the
same arithmetic in the same order either way), and no result depends on the thread count.
"""

import numpy as np

from sepkit._jit import PARALLEL_CHUNKS, PARALLEL_MIN_WORK, jit, jit_parallel, prange
from sepkit._kernels.entropy import first_at_least

# Nodes per window: a window's rows, labels and cluster sums stay in the cache while its
# colour groups are visited one after the other (measured best among 2^11..2^16).
_WINDOW = 1 << 13


# ----------------------------------------------------------------------------- work splitting


@jit
def split_rows(indptr, parts):
    """Split the rows into ``parts`` ranges holding about as many stored entries each."""
    n = indptr.size - 1
    nnz = indptr[n] - indptr[0]
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0] = 0
    for t in range(1, parts):
        b = first_at_least(indptr, indptr[0] + (nnz * t) // parts)
        bounds[t] = max(bounds[t - 1], min(b, n))
    bounds[parts] = n
    return bounds


@jit
def split_nodes(indptr, nodes, count, parts):
    """Split ``nodes[:count]`` into ``parts`` ranges with about equal stored entries."""
    total = 0
    for q in range(count):
        v = nodes[q]
        total += indptr[v + 1] - indptr[v] + 1
    bounds = np.empty(parts + 1, dtype=np.int64)
    bounds[0] = 0
    t = 1
    acc = 0
    for q in range(count):
        v = nodes[q]
        acc += indptr[v + 1] - indptr[v] + 1
        while t < parts and acc * parts >= total * t:
            bounds[t] = q + 1
            t += 1
    while t <= parts:
        bounds[t] = count
        t += 1
    return bounds


@jit
def longest_row(indptr):
    out = 0
    for i in range(indptr.size - 1):
        out = max(out, indptr[i + 1] - indptr[i])
    return out


# ----------------------------------------------------------------------------- renumbering


@jit
def _permute_rows(
    indptr, indices, data, order, rank, new_indptr, new_indices, new_data, new_loop, lo, hi
):  # fmt: skip
    for i in range(lo, hi):
        old = order[i]
        q = new_indptr[i]
        s = 0.0
        for p in range(indptr[old], indptr[old + 1]):
            j = rank[indices[p]]
            new_indices[q] = j
            new_data[q] = data[p]
            s += data[p] if j == i else 0.0
            q += 1
        new_loop[i] = s


@jit_parallel
def _permute_chunks(
    indptr, indices, data, order, rank, new_indptr, new_indices, new_data, new_loop, bounds
):  # fmt: skip
    for t in prange(bounds.size - 1):
        _permute_rows(
            indptr, indices, data, order, rank, new_indptr, new_indices, new_data, new_loop,
            bounds[t], bounds[t + 1],
        )  # fmt: skip


@jit
def permute(indptr, indices, data, degree, order, n_threads):
    """The graph with node ``order[i]`` renamed ``i``, with int32 column indices.

    Returns (indptr, indices, data, degree, self-loops).
    """
    n = degree.size
    rank = np.empty(n, dtype=np.int32)
    for i in range(n):
        rank[order[i]] = i
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    new_degree = np.empty(n)
    for i in range(n):
        old = order[i]
        new_indptr[i + 1] = new_indptr[i] + indptr[old + 1] - indptr[old]
        new_degree[i] = degree[old]
    new_indices = np.empty(indices.size, dtype=np.int32)
    new_data = np.empty(indices.size)
    new_loop = np.empty(n)
    if n_threads > 1 and n + indices.size >= PARALLEL_MIN_WORK:
        _permute_chunks(
            indptr, indices, data, order, rank, new_indptr, new_indices, new_data, new_loop,
            split_rows(new_indptr, n_threads),
        )  # fmt: skip
    else:
        _permute_rows(
            indptr, indices, data, order, rank, new_indptr, new_indices, new_data, new_loop, 0, n
        )
    return new_indptr, new_indices, new_data, new_degree, new_loop


@jit
def _colour_range(indptr, indices, lo, hi, colour, max_row):
    """Greedy colouring of nodes ``lo..hi-1`` in order, seeing only the neighbours in that range."""
    seen = np.full(max_row + 2, -1, dtype=np.int64)  # seen[c] == v: colour c is taken
    for v in range(lo, hi):
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            if lo <= j < v:
                seen[colour[j]] = v
        c = 0
        while seen[c] == v:
            c += 1
        colour[v] = c


@jit
def _clash_range(indptr, indices, lo, hi, colour, clash):
    """Flag the nodes of ``lo..hi-1`` that share a colour with a neighbour below ``lo``."""
    for v in range(lo, hi):
        bad = False
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            bad = bad or (j < lo and colour[j] == colour[v])
        clash[v] = bad


@jit_parallel
def _colour_chunks(indptr, indices, bounds, colour, max_row):
    for t in prange(bounds.size - 1):
        _colour_range(indptr, indices, bounds[t], bounds[t + 1], colour, max_row)


@jit_parallel
def _clash_chunks(indptr, indices, bounds, colour, clash):
    for t in prange(bounds.size - 1):
        _clash_range(indptr, indices, bounds[t], bounds[t + 1], colour, clash)


@jit
def greedy_colours(indptr, indices, n_threads):
    """A colouring of the nodes (no two neighbours alike), greedy in node order.

    The nodes are cut into ``PARALLEL_CHUNKS`` ranges, each coloured greedily on
    its own (in parallel); a node that ends up with the colour of a neighbour from
    an earlier range then takes, in node order, the smallest colour none of its
    neighbours has. The ranges do not depend on the thread count, so neither do the
    colours. Returns (colour, number of colours).
    """
    n = indptr.size - 1
    max_row = longest_row(indptr)
    colour = np.empty(n, dtype=np.int64)
    clash = np.empty(n, dtype=np.bool_)
    bounds = np.empty(PARALLEL_CHUNKS + 1, dtype=np.int64)
    for t in range(PARALLEL_CHUNKS + 1):
        bounds[t] = (n * t) // PARALLEL_CHUNKS
    if n_threads > 1 and n + indptr[n] >= PARALLEL_MIN_WORK:
        _colour_chunks(indptr, indices, bounds, colour, max_row)
        _clash_chunks(indptr, indices, bounds, colour, clash)
    else:
        for t in range(PARALLEL_CHUNKS):
            _colour_range(indptr, indices, bounds[t], bounds[t + 1], colour, max_row)
        for t in range(PARALLEL_CHUNKS):
            _clash_range(indptr, indices, bounds[t], bounds[t + 1], colour, clash)
    seen = np.full(max_row + 2, -1, dtype=np.int64)
    for v in range(n):
        if not clash[v]:
            continue
        for p in range(indptr[v], indptr[v + 1]):
            j = indices[p]
            if j != v:
                seen[colour[j]] = v
        c = 0
        while seen[c] == v:
            c += 1
        colour[v] = c
    n_colours = 0
    for v in range(n):
        n_colours = max(n_colours, colour[v] + 1)
    return colour, n_colours


@jit
def prepare_level(indptr, indices, data, degree, n_threads):
    """Renumber a graph for the sweeps: colour classes grouped per window of nodes.

    The nodes are coloured (:func:`greedy_colours`). Cut into windows of
    ``_WINDOW`` consecutive nodes; within a window the nodes are regrouped by colour
    (node order within a colour), so that each (window, colour) group is a
    contiguous range of the new ids and a group's rows are read in one stream.
    Returns (indptr, indices, data, degree, self-loops, group_ptr, order): group
    ``g = window * n_colours + colour`` holds the new nodes ``group_ptr[g]:group_ptr[g +
    1]``, and new node ``i`` is old node ``order[i]``.
    """
    n = degree.size
    colour, n_colours = greedy_colours(indptr, indices, n_threads)
    n_windows = (n + _WINDOW - 1) // _WINDOW
    group_ptr = np.zeros(n_windows * n_colours + 1, dtype=np.int64)
    for v in range(n):
        group_ptr[(v // _WINDOW) * n_colours + colour[v] + 1] += 1
    for g in range(n_windows * n_colours):
        group_ptr[g + 1] += group_ptr[g]
    fill = group_ptr[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for v in range(n):
        g = (v // _WINDOW) * n_colours + colour[v]
        order[fill[g]] = v
        fill[g] += 1
    g_indptr, g_indices, g_data, g_degree, g_loop = permute(
        indptr, indices, data, degree, order, n_threads
    )
    return g_indptr, g_indices, g_data, g_degree, g_loop, group_ptr, order


@jit
def group_count(group_ptr, n):
    """(windows, colours) of a level's group layout (see :func:`prepare_level`)."""
    n_windows = (n + _WINDOW - 1) // _WINDOW
    return n_windows, (group_ptr.size - 1) // max(n_windows, 1)


# ----------------------------------------------------------------------------- aggregation


@jit
def _scatter_rows(indptr, indices, data, labels, offset, lo, hi, buf_indices, buf_data):
    # Fine rows are read in node order (a stream); each lands in its coarse row's room.
    for i in range(lo, hi):
        q = offset[i]
        for p in range(indptr[i], indptr[i + 1]):
            buf_indices[q] = labels[indices[p]]
            buf_data[q] = data[p]
            q += 1


@jit_parallel
def _scatter_chunks(indptr, indices, data, labels, offset, bounds, buf_indices, buf_data):
    for t in prange(bounds.size - 1):
        _scatter_rows(
            indptr, indices, data, labels, offset, bounds[t], bounds[t + 1], buf_indices, buf_data
        )


@jit
def _merge_rows(buf_ptr, buf_indices, buf_data, lo, hi, row_len, links):
    """Sum the entries of each coarse row by neighbour, in place (first appearance order)."""
    for c in range(lo, hi):
        stamp = float(c)
        base = buf_ptr[c]
        count = 0
        for q in range(buf_ptr[c], buf_ptr[c + 1]):
            e = buf_indices[q]
            w = buf_data[q]
            if links[e, 0] != stamp:
                links[e, 0] = stamp
                links[e, 1] = count
                buf_indices[base + count] = e
                buf_data[base + count] = w
                count += 1
            else:
                buf_data[base + np.int64(links[e, 1])] += w
        row_len[c] = count


@jit_parallel
def _merge_chunks(buf_ptr, buf_indices, buf_data, bounds, row_len, links):
    for t in prange(bounds.size - 1):
        _merge_rows(buf_ptr, buf_indices, buf_data, bounds[t], bounds[t + 1], row_len, links[t])


@jit
def _copy_rows(buf_ptr, buf_indices, buf_data, new_indptr, new_indices, new_data, lo, hi):
    for c in range(lo, hi):
        src = buf_ptr[c]
        for q in range(new_indptr[c], new_indptr[c + 1]):
            new_indices[q] = buf_indices[src]
            new_data[q] = buf_data[src]
            src += 1


@jit_parallel
def _copy_chunks(buf_ptr, buf_indices, buf_data, new_indptr, new_indices, new_data, bounds):
    for t in prange(bounds.size - 1):
        _copy_rows(
            buf_ptr, buf_indices, buf_data, new_indptr, new_indices, new_data,
            bounds[t], bounds[t + 1],
        )  # fmt: skip


@jit
def aggregate(indptr, indices, data, degree, labels, k, n_threads):
    """Collapse each cluster (labels ``0..k-1``) into a super-node.

    The super-node's self-loop is the cluster's internal weight and its degree the
    cluster's volume, so H2 of any partition of the super-nodes equals H2 of the
    induced partition of the nodes. The fine rows are read once in node order and
    copied, relabelled, into their coarse row's room; each coarse row then sums its
    entries by neighbour, listing neighbours in order of first appearance over its
    members' rows (members in node order), whatever the thread count.
    Returns (indptr, indices, data, degree) of the k-node graph.
    """
    n = degree.size
    parallel = n_threads > 1 and n + indptr[n] >= PARALLEL_MIN_WORK
    parts = n_threads if parallel else 1
    buf_ptr = np.zeros(k + 1, dtype=np.int64)  # room for each coarse row: its members' entries
    new_degree = np.zeros(k)
    for i in range(n):
        buf_ptr[labels[i] + 1] += indptr[i + 1] - indptr[i]
        new_degree[labels[i]] += degree[i]
    for c in range(k):
        buf_ptr[c + 1] += buf_ptr[c]
    offset = np.empty(n, dtype=np.int64)  # where row i lands
    fill = buf_ptr[:-1].copy()
    for i in range(n):
        c = labels[i]
        offset[i] = fill[c]
        fill[c] += indptr[i + 1] - indptr[i]
    buf_indices = np.empty(indices.size, dtype=np.int64)
    buf_data = np.empty(indices.size)
    row_len = np.zeros(k, dtype=np.int64)
    links = np.zeros((parts, k, 2))  # (stamp of the row that met a neighbour, its slot)
    links[:, :, 0] = -1.0
    if parallel:
        _scatter_chunks(
            indptr, indices, data, labels, offset, split_rows(indptr, parts), buf_indices,
            buf_data,
        )  # fmt: skip
        _merge_chunks(buf_ptr, buf_indices, buf_data, split_rows(buf_ptr, parts), row_len, links)
    else:
        _scatter_rows(indptr, indices, data, labels, offset, 0, n, buf_indices, buf_data)
        _merge_rows(buf_ptr, buf_indices, buf_data, 0, k, row_len, links[0])
    new_indptr = np.zeros(k + 1, dtype=np.int64)
    for c in range(k):
        new_indptr[c + 1] = new_indptr[c] + row_len[c]
    new_indices = np.empty(new_indptr[k], dtype=np.int64)
    new_data = np.empty(new_indptr[k])
    if parallel:
        _copy_chunks(
            buf_ptr, buf_indices, buf_data, new_indptr, new_indices, new_data,
            split_rows(new_indptr, parts),
        )  # fmt: skip
    else:
        _copy_rows(buf_ptr, buf_indices, buf_data, new_indptr, new_indices, new_data, 0, k)
    return new_indptr, new_indices, new_data, new_degree


# ----------------------------------------------------------------------------- cluster sums


@jit
def _own_range(indptr, indices, data, labels, lo, hi, own):
    for i in range(lo, hi):
        c = labels[i]
        w = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            w += data[p] if labels[indices[p]] == c else 0.0
        own[i] = w


@jit_parallel
def _own_chunks(indptr, indices, data, labels, bounds, own):
    for t in prange(bounds.size - 1):
        _own_range(indptr, indices, data, labels, bounds[t], bounds[t + 1], own)


@jit
def cluster_state(indptr, indices, data, degree, labels, n_slots, n_threads):
    """Per-cluster internal weight, volume and size, summed in node order."""
    n = degree.size
    own = np.empty(n)
    if n_threads > 1 and n + indptr[n] >= PARALLEL_MIN_WORK:
        _own_chunks(indptr, indices, data, labels, split_rows(indptr, n_threads), own)
    else:
        _own_range(indptr, indices, data, labels, 0, n, own)
    inn = np.zeros(n_slots)
    vol = np.zeros(n_slots)
    size = np.zeros(n_slots, dtype=np.int64)
    for i in range(n):
        c = labels[i]
        inn[c] += own[i]
        vol[c] += degree[i]
        size[c] += 1
    return inn, vol, size
