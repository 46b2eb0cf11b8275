"""Validation of keyword options shared by the public functions (``base``, ``seed``, ...).

Every check raises :class:`InvalidOptionError` (a ``ValueError``) for a value out of range
and :class:`InvalidTypeError` (a ``TypeError``) for a flag that is not a bool, naming the
option, what it accepts and what it got. Integer options are bounded by what the kernels
hold (int64; uint64 for seeds), so no value leaks an ``OverflowError`` from numpy or numba.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from sepkit._errors import InvalidOptionError, InvalidTypeError

INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

# The searches' defaults, shared by codeseg and coding_tree.
# A move is taken only when it lowers V * H2 by more than MOVE_TOL * (node degree):
# float noise can never make the search cycle.
MOVE_TOL = 1e-12
# One descent and a pass of single-node moves: further rounds seldom lower H2.
MULTILEVEL_MAX_ROUNDS = 1
# Graphs up to this many nodes are polished by default: solved exactly up to 10
# nodes, else the best of several starts (cheap there, where local optima abound).
POLISH_MAX_NODES = 256


def log_scale(base) -> float:
    """``1 / ln(base)``: converts natural-log results to ``base``."""
    if not _is_real(base) or not _finite(base) or base <= 0 or base == 1:
        raise InvalidOptionError(f"`base` must be a finite real number > 0 and != 1; got {base!r}")
    return 1.0 / math.log(base)


def check_seed(seed) -> int:
    """``None`` means 0; otherwise an integer in ``0 .. 2**64 - 1`` (the kernels' uint64)."""
    if seed is None:
        return 0
    if not _is_int(seed) or not 0 <= seed <= UINT64_MAX:
        raise InvalidOptionError(f"`seed` must be an integer in 0..2**64-1 or None; got {seed!r}")
    return int(seed)


def seed_sequence(seed: int, count: int) -> np.ndarray:
    """``seed, seed + 1, ...`` as uint64, wrapping around at ``2**64``."""
    return np.array([(seed + i) % (UINT64_MAX + 1) for i in range(count)], dtype=np.uint64)


def check_int(name: str, value, minimum: int, maximum: int = INT64_MAX) -> int:
    if not _is_int(value) or not minimum <= value <= maximum:
        upper = "2**63-1" if maximum == INT64_MAX else str(maximum)
        raise InvalidOptionError(
            f"`{name}` must be an integer in {minimum}..{upper}; got {value!r}"
        )
    return int(value)


def check_real(name: str, value, minimum: float) -> float:
    if not _is_real(value) or not _finite(value) or value < minimum:
        raise InvalidOptionError(f"`{name}` must be a finite number >= {minimum:g}; got {value!r}")
    return float(value)


def check_bool(name: str, value, *, none: bool = False) -> bool | None:
    if value is None and none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        expected = "a bool or None" if none else "a bool"
        raise InvalidTypeError(f"`{name}` must be {expected}; got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(f'"{c}"' for c in choices)
        raise InvalidOptionError(f"`{name}` must be one of {listed}; got {value!r}")
    return value


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a Python int beyond float64's range
        return False
