"""numba kernels: flat arrays and scalars in, arrays and scalars out, no validation.

Every kernel works in natural logarithms; the public layer rescales to the
requested base. Graphs arrive as CSR (int64 ``indptr``/``indices``, float64
``data``) and partitions as int64 labels in ``0..k-1``.
"""
