"""The checks of public arguments, at the boundary: the one place their rules live.

Every check raises :class:`~sepkit_torch.InvalidInputError` (a ``ValueError``) naming
the argument, what it accepts and the value received, before any work starts. NaN and
infinite values are refused wherever they would spread (a NaN compares false with every
bound, so each range check is written to fail on it).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
import torch

from sepkit_torch._errors import InvalidInputError

__all__ = ["check_callable", "check_finite", "check_int", "check_real"]


def check_real(
    name: str,
    value,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number (not a bool) within the bounds; returned as a float.

    Examples
    --------
    >>> from sepkit_torch._checks import check_real
    >>> check_real("rho", 0.5, low=0, high=1, low_open=True)
    0.5
    >>> check_real("rho", float("nan"), low=0, high=1, low_open=True)
    Traceback (most recent call last):
        ...
    sepkit_torch.InvalidInputError: `rho` must be a number in (0, 1]; got nan
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            x = float(value)
        except OverflowError:  # an int beyond float64
            x = math.inf
        ok = math.isfinite(x)
        if ok and low is not None:
            ok = x > low if low_open else x >= low
        if ok and high is not None:
            ok = x < high if high_open else x <= high
    if not ok:
        raise InvalidInputError(
            f"`{name}` must be {_expected(low, high, low_open, high_open)}; got {value!r}"
        )
    return x


def check_int(name: str, value, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float such as 1.5 or 2.0) in ``minimum..maximum``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if not ok or value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise InvalidInputError(f"`{name}` must be an integer >= {minimum}{upper}; got {value!r}")
    return int(value)


def check_finite(name: str, values, where: str = "") -> None:
    """Every entry of a tensor or array is finite; the message names the first that is not.

    Examples
    --------
    >>> import torch
    >>> from sepkit_torch._checks import check_finite
    >>> check_finite("pool", torch.tensor([[0.5, float("nan")]]))
    Traceback (most recent call last):
        ...
    sepkit_torch.InvalidInputError: `pool` must be finite; got nan at index (0, 1)
    """
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point() and not values.is_complex():
            return
        bad = ~torch.isfinite(values)
        if not bool(bad.any()):
            return
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        value = values[index].item()
    else:
        a = np.asarray(values)
        if not np.issubdtype(a.dtype, np.inexact):
            return
        bad = ~np.isfinite(a)
        if not bad.any():
            return
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        value = a[index].item()
    raise InvalidInputError(f"`{name}` must be finite{where}; got {value!r} at index {index}")


def check_callable(name: str, value, *, none: bool = True) -> Callable | None:
    """A callable, or None where `none` allows it."""
    if (value is None and none) or callable(value):
        return value
    expected = "a callable or None" if none else "a callable"
    raise InvalidInputError(f"`{name}` must be {expected}; got {value!r}")


def _expected(low, high, low_open, high_open) -> str:
    if low is None and high is None:
        return "a finite number"
    if high is None:
        return f"a finite number {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"a finite number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
