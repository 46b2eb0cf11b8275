"""The one place where numba options are chosen.

Kernels import ``jit`` (serial) or ``jit_parallel`` from here so that every
kernel shares the same settings. No ``fastmath``: the partitioner accepts or
rejects moves on the sign of small entropy deltas, and reassociated sums can
flip that sign.
"""

import numba

jit = numba.njit(cache=True, nogil=True)
jit_parallel = numba.njit(cache=True, nogil=True, parallel=True)
prange = numba.prange
