"""The one place where numba options are chosen.

Kernels import ``jit`` (serial) or ``jit_parallel`` from here so that every
kernel shares the same settings. No ``fastmath``: the partitioner accepts or
rejects moves on the sign of small entropy deltas, and reassociated sums can
flip that sign.
"""

import numba

jit = numba.njit(cache=True, nogil=True)
jit_parallel = numba.njit(cache=True, nogil=True, parallel=True)
# For small helpers called once per node or per move: inlined into the caller, so that
# passing arrays costs no reference counting (an atomic increment and decrement each).
jit_inline = numba.njit(cache=True, nogil=True, inline="always")
prange = numba.prange

# Kernels with a serial and a parallel path take the parallel one only when the
# loop's work (nodes, plus stored entries for a loop over edges) reaches
# PARALLEL_MIN_WORK: below that, starting the threads costs more than the loop.
# The parallel path splits the work into PARALLEL_CHUNKS contiguous ranges (a few
# per thread, for balance). Results do not depend on the path: every output
# element is computed by the same sequential loop.
# These are compile-time constants of the cached kernels: after changing one,
# clear the numba cache (sepkit/_kernels/__pycache__).
PARALLEL_MIN_WORK = 200_000
PARALLEL_CHUNKS = 64
